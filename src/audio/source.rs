//! TODO(helper): source

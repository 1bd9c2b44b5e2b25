//! TODO(helper): recorder

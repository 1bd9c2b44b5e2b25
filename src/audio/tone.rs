//! TODO(helper): tone

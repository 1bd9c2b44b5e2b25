//! TODO(helper): codec

//! TODO(helper): jitter

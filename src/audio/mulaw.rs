//! TODO(helper): mulaw

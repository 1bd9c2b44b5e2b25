//! TODO(helper): mixer

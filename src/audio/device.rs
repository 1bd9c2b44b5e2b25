//! TODO: cpal devices, being written.

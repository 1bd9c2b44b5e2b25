//! Operator commands (settings, config, call actions).

//! Operator commands behind `main.rs`: each returns friendly errors.

pub mod dial;
pub mod ops;

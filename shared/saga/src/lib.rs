//! The persona saga.

pub mod personas;

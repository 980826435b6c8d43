//! The local stack: throw-away PostgreSQL and AWS emulator, resources created from
//! `template.yaml`, the HTTP router on 127.0.0.1 and one poller per SQS event source. The test
//! harness builds on the same pieces.

pub mod children;
pub mod demo;
pub mod emulator;
pub mod poller;
pub mod postgres;
pub mod provision;
pub mod python;
pub mod seed;
pub mod soak;
pub mod stack;
pub mod template;

/// The SAM template, compiled in so every run provisions what this build deploys.
pub const TEMPLATE: &str = include_str!("../../../template.yaml");

//! git-sprint: run many AI coding agents on one codebase, with every decision
//! recorded as a commit on `refs/ai-sprint`.
//!
//! The binary (`src/main.rs`) is a thin clap layer over this library; tests and
//! benchmarks call the library directly.

pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod fleet;
pub mod gates;
pub mod hooks;
pub mod ingest;
pub mod prompt;
pub mod refinery;
pub mod spec;
pub mod stages;
pub mod state;
pub mod sync;
pub mod view;
pub mod worker;

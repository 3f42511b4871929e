//! One integration-test binary, so linking happens once; a module per area.

mod cli;
mod containment;
mod demo;
mod fleet;
mod ingest;
mod sprint;
mod state;
mod support;

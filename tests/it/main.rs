//! One integration-test binary, so linking happens once; a module per area.

mod attempts;
mod cli;
mod demo;
mod fleet;
mod hygiene;
mod ingest;
mod sprint;
mod state;
mod support;

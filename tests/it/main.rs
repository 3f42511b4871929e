//! One integration-test binary, so linking happens once; a module per area.

mod attempts;
mod cli;
mod demo;
mod fleet;
mod ingest;
mod integrity;
mod sprint;
mod state;
mod support;

//! One integration-test binary, so linking happens once; a module per area.

mod attempts;
mod base;
mod board;
mod cdp;
mod cli;
mod containment;
mod demo;
mod fleet;
mod gates;
mod hygiene;
mod ingest;
mod integrity;
mod orchestrator;
mod planning;
mod policy;
mod pool;
mod realcli;
mod review;
mod safety;
mod shell;
mod sprint;
mod state;
mod support;
mod transcript;
mod watch;

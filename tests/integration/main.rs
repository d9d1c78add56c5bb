//! One integration test binary: every test gets its own database cloned from a migrated
//! template, and runs the real service on a free port.

mod analytics;
mod benchmarks;
mod common;
mod dashboard;
mod deploy;
mod export;
mod faults;
mod grafana;
mod health;
mod hostile;
mod ingest;
mod metrics;
mod nodes;
mod openapi;
mod outage;
mod package;
mod process;
mod purge;
mod reputation;
mod schema;
mod security;
mod writer;

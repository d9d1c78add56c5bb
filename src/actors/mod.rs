//! The actors behind the sockets and the API.
//!
//! - `writer`: batches node-session events into PostgreSQL.
//! - `purge`: retention, on a timer.
//! - `derive`: folds new messages into the network analytics tables, on a timer.
//! - `instance`: this instance's heartbeat; ends instances that died, and their sessions.
//! - `cache`: the latest state of every node session, refreshed from the database.

pub mod cache;
pub mod derive;
pub mod instance;
pub mod purge;
pub mod writer;

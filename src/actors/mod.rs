//! The actors behind the sockets and the API.
//!
//! - `writer`: batches node-session events into PostgreSQL.
//! - `purge`: retention, on a timer.

pub mod purge;
pub mod writer;

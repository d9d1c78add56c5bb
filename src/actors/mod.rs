//! The actors behind the sockets and the API.
//!
//! - `writer`: batches node-session events into PostgreSQL.

pub mod writer;

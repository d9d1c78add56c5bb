//! The ingest path: socket → parse → events for the DB writer.
//!
//! - `wire`: serde types exactly as nodes send them.
//! - `parse`: frame → normalised row; never panics, returns the drop reason instead.
//! - `session`: one actix-ws session per connection, liveness and back-pressure.
//! - `socket`: the TCP socket under a session, to cut off a client that stopped reading.

pub mod parse;
pub mod session;
pub mod socket;
pub mod wire;

//! The ingest path: socket → parse → events for the DB writer.
//!
//! - `wire`: serde types exactly as nodes send them.
//! - `parse`: frame → normalised row; never panics, returns the drop reason instead.
//! - `session`: one actix-ws session per connection, liveness and back-pressure.

pub mod parse;
pub mod session;
pub mod wire;

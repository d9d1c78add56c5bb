//! Who may talk to the service, and how much.
//!
//! - `cidr`: address ranges as settings give them, and the key per-address limits count by.
//! - `client`: the client's address behind trusted proxies (`TRUSTED_PROXIES`).
//! - `gate`: telemetry sockets admitted or refused before the upgrade (allow-list, blocks, caps).
//! - `http`: the write token of the JSON API and CORS.
//!
//! The per-connection limits (ids, byte rate) live with the session in `ingest::session`, which
//! enforces them as frames arrive.

pub mod cidr;
pub mod client;
pub mod gate;
pub mod http;

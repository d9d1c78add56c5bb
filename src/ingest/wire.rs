//! Serde types for what nodes send, exactly as they send it (see `../shared/PROTOCOL.md`).
//!
//! Borrowing types read a frame in one pass without copying the payload; `ConnectedWire` reads
//! the fields of `system.connected`, whose types drift between client versions, leniently.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// The top level of any frame: the envelope fields of the tracing and modern eras, and `msg`,
/// which only the flat (slog) era has at the top. Everything else is skipped unread.
#[derive(Deserialize)]
pub struct FrameProbe<'a> {
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub ts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub msg: Option<Cow<'a, str>>,
}

/// The `msg` of an envelope's payload.
#[derive(Deserialize)]
pub struct PayloadProbe<'a> {
    #[serde(borrow, default)]
    pub msg: Option<Cow<'a, str>>,
}

/// The fields of a normalised message that make its node's state.
#[derive(Deserialize)]
pub struct StateProbe<'a> {
    #[serde(borrow, default)]
    pub height: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub peers: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub txcount: Option<&'a RawValue>,
}

/// `system.connected`, any era. Every field is optional and read as whatever JSON came, because
/// client versions disagree on types (`startup_time` is a string of digits in all known ones,
/// but a number would be no surprise).
#[derive(Deserialize, Default)]
pub struct ConnectedWire {
    #[serde(default)]
    pub name: Option<Value>,
    #[serde(default)]
    pub implementation: Option<Value>,
    #[serde(default)]
    pub version: Option<Value>,
    #[serde(default)]
    pub chain: Option<Value>,
    #[serde(default)]
    pub genesis_hash: Option<Value>,
    #[serde(default)]
    pub authority: Option<Value>,
    #[serde(default)]
    pub startup_time: Option<Value>,
    #[serde(default)]
    pub network_id: Option<Value>,
    #[serde(default)]
    pub target_os: Option<Value>,
    #[serde(default)]
    pub target_arch: Option<Value>,
    #[serde(default)]
    pub target_env: Option<Value>,
    #[serde(default)]
    pub sysinfo: Option<Value>,
}

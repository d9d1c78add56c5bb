//! Frame → row: tells the eras apart by shape and normalises every message so that
//! `logs->>'msg'` works for all of them. Never panics; a frame that cannot be stored comes back
//! as the `DropReason` it is counted under.
//!
//! Fast path: the frame is read once with borrowed raw values and the payload text is reused as
//! is. Slow path (NUL characters, which jsonb refuses; duplicate keys; odd types): a full
//! `serde_json::Value`, sanitised, and serialised again.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::wire::{ConnectedWire, FrameProbe, PayloadProbe, StateProbe};
use crate::db::models::{NodeInfo, StateUpdate};
use crate::metrics::{DropReason, Oddity};

/// The message kinds documented in `telemetry_messages.json`.
static KNOWN_KINDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    struct Catalogue {
        messages: serde_json::Map<String, Value>,
    }
    match serde_json::from_str::<Catalogue>(include_str!("../../telemetry_messages.json")) {
        Ok(c) => c.messages.keys().cloned().collect(),
        Err(e) => {
            log::error!(
                "telemetry_messages.json does not parse ({e}); every msg counts as unknown"
            );
            HashSet::new()
        }
    }
});

pub fn is_known_kind(msg: &str) -> bool {
    KNOWN_KINDS.contains(msg)
}

/// One message, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The envelope id (node identity within a connection); 0 for the flat era.
    pub telemetry_id: u64,
    /// The normalised message: a JSON object, as text.
    pub logs: String,
    /// Something odd about it, counted but stored.
    pub oddity: Option<Oddity>,
    /// Filled for `system.connected`.
    pub connected: Option<NodeInfo>,
    /// Filled for the kinds that tell the node's state.
    pub state: Option<StateUpdate>,
}

pub const CONNECTED: &str = "system.connected";

/// Parses one frame's payload.
pub fn parse_frame(bytes: &[u8]) -> Result<Parsed, DropReason> {
    let text = bytes.trim_ascii();
    if text.first() != Some(&b'{') {
        return Err(match serde_json::from_slice::<IgnoredAny>(text) {
            Ok(_) => DropReason::NotObject,
            Err(_) => DropReason::BadJson,
        });
    }
    let normalised = if needs_decoding(text) {
        None
    } else {
        fast_normalise(text)
    };
    let (telemetry_id, logs, msg, mut oddity) = match normalised {
        Some(n) => n,
        None => slow_normalise(text)?,
    };
    let connected = match msg.as_deref() {
        Some(CONNECTED) => Some(node_info(&logs)),
        _ => None,
    };
    let state = msg.as_deref().and_then(|m| state_update(m, &logs));
    if oddity.is_none() {
        oddity = match msg.as_deref() {
            None => Some(Oddity::NoMsg),
            Some(m) if !is_known_kind(m) => Some(Oddity::UnknownMsg),
            Some(_) => None,
        };
    }
    Ok(Parsed {
        telemetry_id,
        logs,
        oddity,
        connected,
        state,
    })
}

/// The state a message of kind `msg` tells, read from its normalised text.
fn state_update(msg: &str, logs: &str) -> Option<StateUpdate> {
    if !matches!(msg, "block.import" | "notify.finalized" | "system.interval") {
        return None;
    }
    let probe: StateProbe = serde_json::from_str(logs).ok()?;
    let count = |v: Option<&serde_json::value::RawValue>| v.and_then(|v| whole(v.get()));
    match msg {
        "block.import" => count(probe.height).map(StateUpdate::Best),
        "notify.finalized" => count(probe.height).map(StateUpdate::Finalized),
        _ => {
            let (peers, txcount) = (count(probe.peers), count(probe.txcount));
            (peers.is_some() || txcount.is_some())
                .then_some(StateUpdate::Interval { peers, txcount })
        }
    }
}

/// A JSON number or string that is 1 to 18 decimal digits and nothing else (what
/// `~ '^[0-9]{1,18}$'` takes of `->>`'s text).
fn whole(raw: &str) -> Option<i64> {
    let digits = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

type Normalised = (u64, String, Option<String>, Option<Oddity>);

/// One pass over the frame, reusing the payload's text. `None` means: take the slow path.
fn fast_normalise(text: &[u8]) -> Option<Normalised> {
    let probe: FrameProbe = serde_json::from_slice(text).ok()?;
    let envelope_id = probe.id.and_then(|id| id.get().parse::<u64>().ok());
    match (envelope_id, probe.payload) {
        (Some(id), Some(payload)) if payload.get().starts_with('{') => {
            let payload = payload.get();
            let msg = serde_json::from_str::<PayloadProbe>(payload).ok()?.msg;
            let mut logs = String::with_capacity(payload.len() + 64);
            // `payload` is a whole object: `{` ... `}`, maybe with nothing but space inside.
            let inner = payload[1..payload.len() - 1].trim();
            logs.push('{');
            logs.push_str(inner);
            if !inner.is_empty() {
                logs.push(',');
            }
            if let Some(ts) = probe.ts {
                logs.push_str("\"ts\":");
                logs.push_str(ts.get());
                logs.push(',');
            }
            logs.push_str("\"id\":");
            logs.push_str(&id.to_string());
            logs.push('}');
            Some((id, logs, msg.map(String::from), None))
        }
        _ => {
            // Flat: stored as sent (its `payload`, if any, is just a field).
            let logs = std::str::from_utf8(text).ok()?.to_owned();
            Some((0, logs, probe.msg.map(String::from), None))
        }
    }
}

/// The general path: any valid JSON object, NULs replaced, serialised again.
fn slow_normalise(text: &[u8]) -> Result<Normalised, DropReason> {
    let value: Value = serde_json::from_slice(text).map_err(|_| DropReason::BadJson)?;
    let Value::Object(mut object) = value else {
        return Err(DropReason::NotObject);
    };
    let sanitized = sanitize_map(&mut object);
    let envelope_id = object.get("id").and_then(Value::as_u64);
    let (telemetry_id, mut logs) = match (envelope_id, object.get("payload")) {
        (Some(id), Some(Value::Object(_))) => {
            let ts = object.remove("ts");
            let Some(Value::Object(mut payload)) = object.remove("payload") else {
                return Err(DropReason::NotObject);
            };
            if let Some(ts) = ts {
                payload.insert("ts".into(), ts);
            }
            payload.insert("id".into(), Value::from(id));
            (id, payload)
        }
        _ => (0, object),
    };
    if sanitized {
        logs.insert("_sanitized".into(), Value::Bool(true));
    }
    let msg = logs.get("msg").and_then(Value::as_str).map(str::to_owned);
    let oddity = sanitized.then_some(Oddity::Sanitized);
    Ok((telemetry_id, Value::Object(logs).to_string(), msg, oddity))
}

/// Replaces NUL (which PostgreSQL text and jsonb refuse) in every key and string.
fn sanitize_map(map: &mut Map<String, Value>) -> bool {
    let has_nul_key = map.keys().any(|k| k.contains('\0'));
    let mut changed = false;
    if has_nul_key {
        let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
        for (k, v) in entries {
            map.insert(k.replace('\0', "\u{FFFD}"), v);
        }
        changed = true;
    }
    for v in map.values_mut() {
        changed |= sanitize_value(v);
    }
    changed
}

fn sanitize_value(v: &mut Value) -> bool {
    match v {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{FFFD}");
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |c, i| sanitize_value(i) | c),
        Value::Object(map) => sanitize_map(map),
        _ => false,
    }
}

/// Whether the frame's text cannot be stored as it is, in one pass that follows strings:
/// - a string escapes NUL (jsonb refuses it) or a UTF-16 surrogate (jsonb refuses a lone one,
///   and only decoding tells a lone one from a pair);
/// - a number is long or has a three-digit exponent: it may be beyond what f64 holds, which
///   PostgreSQL's numeric would take but no reader of ours (serde_json) could read back.
///
/// Such frames take the slow path, which decodes everything: a lone surrogate or a number out
/// of range fails there and the frame counts as `bad_json`. (Both found by fuzzing.)
fn needs_decoding(text: &[u8]) -> bool {
    let mut i = 0;
    let mut in_string = false;
    while i < text.len() {
        let b = text[i];
        if in_string {
            match b {
                b'"' => in_string = false,
                b'\\' => {
                    if text.get(i + 1) == Some(&b'u') {
                        if let Some(hex) = text.get(i + 2..i + 6) {
                            let surrogate = hex[0].eq_ignore_ascii_case(&b'd')
                                && matches!(hex[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F');
                            if surrogate || hex == b"0000" {
                                return true;
                            }
                        }
                    }
                    i += 1; // the escaped character
                }
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'-' || b.is_ascii_digit() {
            let token = text[i..]
                .iter()
                .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .count();
            let number = &text[i..i + token];
            let exponent = number
                .iter()
                .position(|c| c.eq_ignore_ascii_case(&b'e'))
                .map_or(0, |e| {
                    number[e + 1..]
                        .iter()
                        .filter(|c| c.is_ascii_digit())
                        .count()
                });
            if token > 40 || exponent >= 3 {
                return true;
            }
            i += token;
            continue;
        }
        i += 1;
    }
    false
}

/// Reads the `peer_connections` fields from a normalised `system.connected`.
fn node_info(logs: &str) -> NodeInfo {
    let wire: ConnectedWire = serde_json::from_str(logs).unwrap_or_default();
    NodeInfo {
        peer_id: text(wire.network_id),
        name: text(wire.name),
        chain: text(wire.chain),
        version: text(wire.version),
        authority: wire.authority.and_then(|v| match v {
            Value::Bool(b) => Some(b),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }),
        startup_time: wire.startup_time.and_then(|v| match v {
            Value::String(s) => s.trim().parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }),
        implementation: text(wire.implementation),
        genesis_hash: text(wire.genesis_hash),
        target_os: text(wire.target_os),
        target_arch: text(wire.target_arch),
        target_env: text(wire.target_env),
        sysinfo: wire.sysinfo.filter(|v| !v.is_null()).map(|v| v.to_string()),
    }
}

/// A column's text from whatever JSON came: strings as they are, other scalars as JSON.
fn text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs(frame: &str) -> Value {
        let parsed = parse_frame(frame.as_bytes()).expect("parses");
        serde_json::from_str(&parsed.logs).expect("normalised JSON is valid")
    }

    #[test]
    fn modern_envelope_becomes_payload_with_ts_and_id() {
        let v = logs(
            r#"{"id":7,"payload":{"msg":"block.import","height":1},"ts":"2026-11-27T08:31:24.767+00:00"}"#,
        );
        assert_eq!(v["msg"], "block.import");
        assert_eq!(v["height"], 1);
        assert_eq!(v["ts"], "2026-11-27T08:31:24.767+00:00");
        assert_eq!(v["id"], 7);
        assert!(v.get("payload").is_none());
    }

    #[test]
    fn state_comes_from_the_kinds_that_tell_it_in_every_era() {
        let state = |frame: &str| parse_frame(frame.as_bytes()).unwrap().state;
        assert_eq!(
            state(r#"{"id":1,"payload":{"msg":"block.import","height":12,"best":"0x1"},"ts":"t"}"#),
            Some(StateUpdate::Best(12))
        );
        assert_eq!(
            state(r#"{"msg":"notify.finalized","height":"10","best":"0x1"}"#),
            Some(StateUpdate::Finalized(10))
        );
        assert_eq!(
            state(
                r#"{"id":1,"payload":{"msg":"system.interval","peers":5,"bandwidth_upload":1},"ts":"t"}"#
            ),
            Some(StateUpdate::Interval {
                peers: Some(5),
                txcount: None
            })
        );
        assert_eq!(
            state(r#"{"msg":"system.interval","bandwidth_upload":1}"#),
            None
        );
        for bad in [
            "-1",
            "1.5",
            "\"x\"",
            "1234567890123456789",
            "null",
            "\"\"",
            "1e3",
        ] {
            let frame = format!(r#"{{"msg":"block.import","height":{bad}}}"#);
            assert_eq!(state(&frame), None, "{bad}");
        }
        assert_eq!(state(r#"{"msg":"txpool.import","height":3}"#), None);
    }

    #[test]
    fn envelope_is_told_by_shape_not_key_order() {
        let a = logs(r#"{"id":1,"ts":"t","payload":{"msg":"x"}}"#);
        let b = logs(r#"{"payload":{"msg":"x"},"ts":"t","id":1}"#);
        assert_eq!(a, b);
    }

    #[test]
    fn flat_era_is_stored_as_sent_without_trailing_newline() {
        let frame = "{\"msg\":\"block.import\",\"level\":\"INFO\",\"ts\":\"t\",\"height\":1}\n";
        let p = parse_frame(frame.as_bytes()).unwrap();
        assert_eq!(p.telemetry_id, 0);
        assert_eq!(p.logs, frame.trim_end());
        assert_eq!(p.oddity, None);
    }

    #[test]
    fn an_object_with_a_non_object_payload_is_flat() {
        let p = parse_frame(br#"{"id":3,"payload":"text","msg":"odd"}"#).unwrap();
        assert_eq!(p.telemetry_id, 0);
        assert_eq!(p.oddity, Some(Oddity::UnknownMsg));
    }

    #[test]
    fn empty_payload_still_gets_ts_and_id() {
        let v = logs(r#"{"id":2,"payload":{ },"ts":"t"}"#);
        assert_eq!(v, serde_json::json!({"ts": "t", "id": 2}));
        assert_eq!(
            parse_frame(br#"{"id":2,"payload":{}}"#).unwrap().oddity,
            Some(Oddity::NoMsg)
        );
    }

    #[test]
    fn broken_and_non_object_json_are_told_apart() {
        assert_eq!(parse_frame(b"{\"msg\":"), Err(DropReason::BadJson));
        assert_eq!(parse_frame(b"not json"), Err(DropReason::BadJson));
        assert_eq!(parse_frame(b""), Err(DropReason::BadJson));
        assert_eq!(parse_frame(b"[1,2]"), Err(DropReason::NotObject));
        assert_eq!(parse_frame(b"42"), Err(DropReason::NotObject));
        assert_eq!(parse_frame(b"\"s\""), Err(DropReason::NotObject));
        assert_eq!(parse_frame(b"{\"a\":1} trailing"), Err(DropReason::BadJson));
        assert_eq!(parse_frame(&[0xff, 0xfe]), Err(DropReason::BadJson));
    }

    #[test]
    fn nul_characters_are_replaced_and_flagged() {
        let p =
            parse_frame(br#"{"id":1,"payload":{"msg":"x\u0000y","k\u0000":"\u0000"},"ts":"t"}"#)
                .unwrap();
        assert_eq!(p.oddity, Some(Oddity::Sanitized));
        assert!(!p.logs.contains("\\u0000"));
        let v: Value = serde_json::from_str(&p.logs).unwrap();
        assert_eq!(v["msg"], "x\u{FFFD}y");
        assert_eq!(v["k\u{FFFD}"], "\u{FFFD}");
        assert_eq!(v["_sanitized"], true);
        assert_eq!(v["id"], 1);
    }

    #[test]
    fn duplicate_keys_take_the_slow_path_and_the_last_value() {
        let v = logs(r#"{"msg":"a","msg":"block.import"}"#);
        assert_eq!(v["msg"], "block.import");
    }

    #[test]
    fn non_string_msg_is_stored_and_counted() {
        let p = parse_frame(br#"{"msg":5}"#).unwrap();
        assert_eq!(p.oddity, Some(Oddity::NoMsg));
    }

    #[test]
    fn unknown_kinds_are_kept_and_flagged() {
        let p = parse_frame(br#"{"id":1,"payload":{"msg":"brand.new"},"ts":"t"}"#).unwrap();
        assert_eq!(p.oddity, Some(Oddity::UnknownMsg));
        assert!(is_known_kind("system.interval"));
    }

    #[test]
    fn huge_ids_are_u64() {
        let p = parse_frame(br#"{"id":18446744073709551615,"payload":{"msg":"x"}}"#).unwrap();
        assert_eq!(p.telemetry_id, u64::MAX);
        // Negative or fractional ids are no envelope: the object is kept flat.
        assert_eq!(
            parse_frame(br#"{"id":-1,"payload":{}}"#)
                .unwrap()
                .telemetry_id,
            0
        );
    }

    #[test]
    fn connected_fields_are_read_leniently() {
        let p = parse_frame(
            br#"{"id":1,"payload":{"msg":"system.connected","name":"n","network_id":"12D3KooW","authority":true,"startup_time":"1795768284264","chain":"c","sysinfo":{"core_count":2}},"ts":"t"}"#,
        )
        .unwrap();
        let info = p.connected.expect("connected");
        assert_eq!(info.peer_id.as_deref(), Some("12D3KooW"));
        assert_eq!(info.authority, Some(true));
        assert_eq!(info.startup_time, Some(1_795_768_284_264));
        assert_eq!(info.sysinfo.as_deref(), Some(r#"{"core_count":2}"#));
        let odd = parse_frame(
            br#"{"msg":"system.connected","name":5,"authority":"yes","startup_time":{}}"#,
        )
        .unwrap()
        .connected
        .unwrap();
        assert_eq!(odd.name.as_deref(), Some("5"));
        assert_eq!(odd.authority, None);
        assert_eq!(odd.startup_time, None);
    }

    #[test]
    fn fast_and_slow_paths_agree_on_every_recorded_frame() {
        let recorded = include_str!("../../../shared/telemetry/real-frames.jsonl");
        let mut frames = 0;
        for line in recorded.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let Some(payload) = record.get("payload").and_then(Value::as_str) else {
                continue;
            };
            frames += 1;
            let fast = fast_normalise(payload.trim().as_bytes()).expect("fast path takes it");
            let slow = slow_normalise(payload.trim().as_bytes()).expect("slow path takes it");
            let fast_v: Value = serde_json::from_str(&fast.1).unwrap();
            let slow_v: Value = serde_json::from_str(&slow.1).unwrap();
            assert_eq!(fast_v, slow_v, "{payload}");
            assert_eq!((fast.0, &fast.2), (slow.0, &slow.2));
            let parsed = parse_frame(payload.as_bytes()).unwrap();
            assert_eq!(
                parsed.oddity, None,
                "recorded kind not catalogued: {payload}"
            );
        }
        assert!(frames > 100, "the recording has {frames} frames");
    }

    #[test]
    fn every_catalogue_example_parses_to_its_kind_in_every_era() {
        let catalogue: Value =
            serde_json::from_str(include_str!("../../telemetry_messages.json")).unwrap();
        let messages = catalogue["messages"].as_object().unwrap();
        assert!(messages.len() >= 20);
        for (kind, entry) in messages {
            let examples = entry["examples"].as_object().unwrap();
            for era in ["modern", "tracing", "slog"] {
                let frame = examples[era].to_string();
                let parsed = parse_frame(frame.as_bytes()).unwrap();
                assert_eq!(parsed.oddity, None, "{kind} {era}");
                let v: Value = serde_json::from_str(&parsed.logs).unwrap();
                assert_eq!(v["msg"], kind.as_str(), "{era}");
                assert_eq!(parsed.telemetry_id, u64::from(era != "slog"));
            }
        }
    }

    #[test]
    fn numbers_no_reader_could_hold_are_refused() {
        for frame in [
            r#"{"msg":"system.interval","peers":1e999}"#,
            r#"{"id":1,"payload":{"msg":"system.interval","peers":-1E+400},"ts":"t"}"#,
        ] {
            assert_eq!(
                parse_frame(frame.as_bytes()).err(),
                Some(DropReason::BadJson),
                "{frame}"
            );
        }
        let long = format!(r#"{{"msg":"x","n":{}}}"#, "9".repeat(400));
        assert_eq!(
            parse_frame(long.as_bytes()).err(),
            Some(DropReason::BadJson)
        );
        // In range, or only looking like a number inside a string: stored.
        let v = logs(r#"{"msg":"x","a":1e300,"b":12345678901234567890,"h":"0xe123e999"}"#);
        assert_eq!(v["a"], 1e300);
        assert_eq!(v["h"], "0xe123e999");
    }

    #[test]
    fn escaped_surrogates_are_decoded_and_lone_ones_refused() {
        // A pair is a character: stored decoded.
        let v = logs(r#"{"msg":"system.interval","name":"a\ud83d\ude00b"}"#);
        assert_eq!(v["name"], "a\u{1F600}b");
        // A lone one is not text jsonb can hold (found by the fuzzer in a system.connected).
        for frame in [
            r#"{"msg":"system.interval","name":"a\ud800b"}"#,
            r#"{"id":1,"payload":{"msg":"system.connected","network_id":"12D3\uDC00"},"ts":"t"}"#,
        ] {
            assert_eq!(
                parse_frame(frame.as_bytes()).err(),
                Some(DropReason::BadJson),
                "{frame}"
            );
        }
    }

    /// The fuzz target's checks (`fuzz/fuzz_targets/parse_frame.rs`) over a fixed-seed stream of
    /// mutated frames, so every test run repeats the same 20,000 inputs; `cargo fuzz run
    /// parse_frame` explores far more (README "Security").
    #[test]
    fn mutated_frames_never_panic_and_stay_storable() {
        let seeds: [&[u8]; 4] = [
            br#"{"id":7,"payload":{"msg":"system.connected","name":"n","chain":"c","version":"1","network_id":"12D3","authority":true,"startup_time":"1"},"ts":"2026-11-27T08:31:24.767+00:00"}"#,
            br#"{"msg":"block.import","level":"INFO","ts":"2020-01-01T00:00:00Z","height":1,"best":"0x01"}"#,
            br#"{"id":1,"payload":{"msg":"system.interval","peers":[1,{"a":null}],"height":"12"},"ts":"t"}"#,
            br#"{"msg":"system.network_state","state":{"peerset":{"nodes":{"p":{"reputation":-5}}}}}"#,
        ];
        let tokens: [&[u8]; 14] = [
            b"\"",
            b"{",
            b"}",
            b"[",
            b"]",
            b"\\u0000",
            b"\\ud800",
            b"1e999",
            b"-0",
            b"18446744073709551616",
            br#""id":"#,
            br#""payload":"#,
            br#""msg":"#,
            b"\x00\xff",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..20_000 {
            let mut frame = seeds[next(seeds.len())].to_vec();
            for _ in 0..=next(8) {
                let at = next(frame.len() + 1);
                match next(4) {
                    0 if at < frame.len() => frame[at] ^= 1 << next(8),
                    1 => {
                        frame.splice(at..at, tokens[next(tokens.len())].iter().copied());
                    }
                    2 => {
                        let end = (at + next(16)).min(frame.len());
                        frame.drain(at..end);
                    }
                    _ => {
                        let end = (at + next(32)).min(frame.len());
                        let copy = frame[at..end].to_vec();
                        frame.splice(at..at, copy);
                    }
                }
            }
            let Ok(parsed) = parse_frame(&frame) else {
                continue;
            };
            let value: Value = serde_json::from_str(&parsed.logs).expect("stored rows are JSON");
            assert!(value.is_object(), "{}", String::from_utf8_lossy(&frame));
            assert!(!has_nul(&value), "{}", String::from_utf8_lossy(&frame));
            assert!(parsed.logs.len() <= frame.len() * 8 + 1024);
        }
    }

    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
}

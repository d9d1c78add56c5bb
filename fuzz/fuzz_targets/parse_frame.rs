//! Any bytes a socket can deliver, through the frame parser and normaliser: no panic, and what
//! comes out is a JSON object PostgreSQL's jsonb takes, not much larger than what came in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tetcore_analytics::ingest::parse::parse_frame;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = parse_frame(data) else {
        return;
    };
    let value: serde_json::Value =
        serde_json::from_str(&parsed.logs).expect("the stored row is JSON");
    assert!(value.is_object(), "the stored row is an object");
    assert!(!has_nul(&value), "jsonb refuses NUL characters");
    // Numbers may be written longer than sent (1e15 → 1000000000000000.0), nothing else grows.
    assert!(
        parsed.logs.len() <= data.len() * 8 + 1024,
        "{} bytes out of {} in",
        parsed.logs.len(),
        data.len()
    );
});

/// Whether any key or string holds a NUL character once decoded.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

//! Reputation from `system.network_state`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{wait_for, FakeNode, TestApp, TestDb};

fn state(nodes: Value) -> String {
    json!({"id": 1, "ts": "t", "payload": {"msg": "system.network_state",
        "state": {"peerId": "x", "connectedPeers": {}, "peerset": {"nodes": nodes}}}})
    .to_string()
}

fn connected(peer: &str) -> String {
    format!(
        r#"{{"id":1,"payload":{{"msg":"system.connected","name":"{peer}","network_id":"{peer}"}},"ts":"t"}}"#
    )
}

fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn reputation_reports_are_served_per_peer_and_expanded() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut a = FakeNode::connect(&app.url("/"));
    a.binary(&connected("PeerA"));
    a.binary(&state(
        json!({"PeerB": {"connected": true, "reputation": 10}}),
    ));
    a.binary(&state(json!({"PeerB": {"connected": true, "reputation": 20}, "Stranger": {"connected": false, "reputation": -5}})));
    let mut b = FakeNode::connect(&app.url("/"));
    b.binary(&connected("PeerB"));
    b.binary(&state(
        json!({"PeerA": {"connected": false, "reputation": 7}}),
    ));
    b.binary(&state(json!("not an object")));
    wait_for("stored", Duration::from_secs(10), || app.stored() == 6);

    let about_b = get(&app, "/reputation/PeerB");
    assert_eq!(about_b.as_array().unwrap().len(), 2);
    assert_eq!(about_b[0]["reporting_peer"], "PeerA");
    assert_eq!(about_b[0]["reputation"], 20, "newest first");
    assert_eq!(about_b[1]["reputation"], 10);
    assert_eq!(about_b[0]["connected"], true);
    assert!(about_b[0]["ts"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        get(&app, "/reputation/PeerB/?limit=1")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        get(&app, "/reputation/PeerB?end_time=2000-01-01T00:00:00"),
        json!([])
    );
    assert_eq!(get(&app, "/reputation/Nobody"), json!([]));

    let all = get(&app, "/reputation");
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all[0]["reporting_peer"], "PeerA");
    assert_eq!(
        all[0]["remote_peer"],
        json!(["PeerB", "Stranger"]),
        "the newest report, expanded"
    );
    assert_eq!(all[0]["reputation"], json!([20, -5]));
    assert_eq!(all[0]["connected"], json!([true, false]));
    assert_eq!(all[1]["reporting_peer"], "PeerB");
    assert_eq!(all[1]["remote_peer"], json!(["PeerA"]));

    let logged = get(&app, "/reputation/logged/");
    assert_eq!(
        logged[0]["remote_peer"],
        json!(["PeerB"]),
        "strangers are left out"
    );
    assert_eq!(
        get(&app, "/reputation?limit=1").as_array().unwrap().len(),
        1
    );
    for path in [
        "/reputation?max_age_s=0",
        "/reputation?max_age_s=x",
        "/reputation/PeerB?limit=0",
        "/reputation/PeerB?start_time=nope",
    ] {
        let (status, body) = app.get(path);
        assert_eq!(status, 400, "{path}: {body}");
    }
    drop((a, b));
}

#[test]
fn reports_older_than_max_age_are_left_out() {
    let db = TestDb::new();
    let app = TestApp::start(&db, &[("DB_SAVE_LATENCY_MS", "20")]);
    let mut a = FakeNode::connect(&app.url("/"));
    a.binary(&connected("PeerOld"));
    a.binary(&state(
        json!({"PeerB": {"connected": true, "reputation": 1}}),
    ));
    wait_for("stored", Duration::from_secs(10), || app.stored() == 2);
    assert_eq!(get(&app, "/reputation").as_array().unwrap().len(), 1);
    // Make the report two minutes old: past the default of 60 s, within 300.
    use diesel::RunQueryDsl;
    diesel::sql_query(
        "UPDATE tetcore_logs SET created_at = created_at - interval '2 minutes' \
         WHERE logs->>'msg' = 'system.network_state'",
    )
    .execute(&mut db.conn())
    .unwrap();
    assert_eq!(get(&app, "/reputation"), json!([]));
    assert_eq!(
        get(&app, "/reputation?max_age_s=300")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    drop(a);
}

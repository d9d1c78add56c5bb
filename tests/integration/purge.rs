//! Retention: exactly the expired non-audit rows go, audit rows and live sessions stay, and
//! only one instance purges at a time.

use std::time::Duration;

use actix::Actor;
use diesel::{sql_query, RunQueryDsl};
use tetcore_analytics::actors::purge::{Purge, PurgeExpired, PurgeOutcome};
use tetcore_analytics::db::queries::purge::PURGE_LOCK;
use tetcore_analytics::metrics::Metrics;

use crate::common::TestDb;

/// Runs one pass with the given expiry and returns its outcome.
fn purge(db: &TestDb, expiry_hours: u64) -> PurgeOutcome {
    let url = db.url.clone();
    actix::System::new().block_on(async move {
        let purge = Purge::new(
            url,
            Duration::from_secs(3600),
            Duration::from_secs(expiry_hours * 3600),
            Metrics::new(),
        )
        .start();
        purge
            .send(PurgeExpired)
            .await
            .unwrap()
            .expect("the pass runs")
    })
}

/// Sessions: 1 live, 2 ended 10 days ago, 3 audit ended 10 days ago, 4 ended 1 hour ago.
/// Each has messages 10 days, 3 days, 30 hours and 1 hour old.
fn fill(db: &TestDb) {
    let mut conn = db.conn();
    // Partitions for the old days, as a long-running service would have made them.
    sql_query("SELECT tetcore_ensure_log_partitions(now() - interval '12 days', now(), 24)")
        .execute(&mut conn)
        .unwrap();
    sql_query(
        "INSERT INTO peer_connections (id, ip_addr, audit, created_at, ended_at) VALUES \
         (1, '10.0.0.1', false, now() - interval '11 days', NULL), \
         (2, '10.0.0.2', false, now() - interval '11 days', now() - interval '10 days'), \
         (3, '10.0.0.3', true,  now() - interval '11 days', now() - interval '10 days'), \
         (4, '10.0.0.4', false, now() - interval '11 days', now() - interval '1 hour')",
    )
    .execute(&mut conn)
    .unwrap();
    sql_query(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
         SELECT p.id, now() - age, p.audit, jsonb_build_object('msg', 'system.interval', 'age', age::text) \
         FROM peer_connections p, \
              unnest(ARRAY[interval '10 days 1 hour', interval '3 days', interval '30 hours', interval '1 hour']) AS age",
    )
    .execute(&mut conn)
    .unwrap();
}

#[test]
fn purge_removes_exactly_the_expired_non_audit_rows() {
    let db = TestDb::new();
    fill(&db);
    let partitions_before = db.count(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tetcore_logs_expiring'::regclass",
    );
    let PurgeOutcome::Done(report) = purge(&db, 24) else {
        panic!("the pass ran")
    };
    // Non-audit rows older than 24 h: three sessions × three ages.
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE NOT audit"),
        3
    );
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE NOT audit AND created_at < now() - interval '24 hours'"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE audit"),
        4,
        "audit rows stay"
    );
    // Whole days went as partitions; only the day of the cutoff was trimmed row by row.
    assert!(report.partitions_dropped >= 9, "{report:?}");
    assert!(report.rows_deleted <= 3, "{report:?}");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tetcore_logs_expiring'::regclass"
        ),
        partitions_before - report.partitions_dropped as i64
    );
    // Session 2 (ended 10 days ago, nothing left) goes; the live one, the audit one and the
    // recently ended one stay.
    assert_eq!(report.sessions_deleted, 1);
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE id IN (1, 3, 4)"),
        3
    );
    // A second pass finds nothing more.
    let PurgeOutcome::Done(again) = purge(&db, 24) else {
        panic!("the pass ran")
    };
    assert_eq!(
        (
            again.rows_deleted,
            again.partitions_dropped,
            again.sessions_deleted
        ),
        (0, 0, 0)
    );
    // Partitions ahead are still there for ingest.
    assert!(
        db.count("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                  WHERE i.inhparent = 'tetcore_logs_expiring'::regclass \
                    AND c.relname > 'tetcore_logs_expiring_p' || to_char(now() AT TIME ZONE 'UTC' + interval '6 days', 'YYYYMMDD')")
            >= 1
    );
}

#[test]
fn zero_expiry_purges_everything_received_but_keeps_audit_and_live_sessions() {
    let db = TestDb::new();
    fill(&db);
    let PurgeOutcome::Done(report) = purge(&db, 0) else {
        panic!("the pass ran")
    };
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE NOT audit"),
        0
    );
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs WHERE audit"), 4);
    assert_eq!(report.sessions_deleted, 2, "both ended non-audit sessions");
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE id IN (1, 3)"),
        2,
        "the live and the audit session stay"
    );
}

#[test]
fn no_two_instances_purge_at_once() {
    let db = TestDb::new();
    fill(&db);
    // Another instance is in the middle of a pass: it holds the lock.
    let mut other = db.conn();
    sql_query(format!("SELECT pg_advisory_lock({PURGE_LOCK})"))
        .execute(&mut other)
        .unwrap();
    assert_eq!(purge(&db, 24), PurgeOutcome::Skipped);
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs"),
        16,
        "nothing removed"
    );
    sql_query(format!("SELECT pg_advisory_unlock({PURGE_LOCK})"))
        .execute(&mut other)
        .unwrap();
    assert!(matches!(purge(&db, 24), PurgeOutcome::Done(_)));
    // And a pass releases the lock when done: another connection can take it at once.
    #[derive(diesel::QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    let locked: Locked = sql_query(format!(
        "SELECT pg_try_advisory_lock({PURGE_LOCK}) AS locked"
    ))
    .get_result(&mut other)
    .unwrap();
    assert!(locked.locked);
}

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
            Duration::from_secs(3650 * 86_400),
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
    assert!(report.partitions_ahead_s > 6 * 86_400, "{report:?}");
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

/// The name of the `tetcore_logs_expiring` partition holding `at` (an SQL expression).
fn partition_at(db: &TestDb, at: &str) -> String {
    let rows = db.json(&format!(
        "SELECT name FROM tetcore_log_partitions() WHERE lo <= {at} AND hi > {at}"
    ));
    rows[0]["name"].as_str().unwrap().to_owned()
}

#[test]
fn making_a_partition_waits_for_writers_into_the_default_one_and_keeps_their_rows() {
    let db = TestDb::new();
    // A day without its partition: its rows land in the default partition.
    let day = "(now() + interval '3 days')";
    let part = partition_at(&db, day);
    sql_query(format!("DROP TABLE {part}"))
        .execute(&mut db.conn())
        .unwrap();
    // A writer is in the middle of a batch that routed a row of that day there.
    let mut writer = db.conn();
    sql_query("BEGIN").execute(&mut writer).unwrap();
    sql_query(format!(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
         VALUES (1, {day}, false, '{{\"msg\":\"late\"}}')"
    ))
    .execute(&mut writer)
    .unwrap();
    // Meanwhile the partition is made (as a purge pass or a start-up would).
    let url = db.url.clone();
    let maker = std::thread::spawn(move || {
        use diesel::Connection;
        let mut conn = diesel::PgConnection::establish(&url).unwrap();
        sql_query(
            "SELECT tetcore_ensure_log_partitions(now() + interval '2 days', \
             now() + interval '5 days', 24)",
        )
        .execute(&mut conn)
        .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    sql_query("COMMIT").execute(&mut writer).unwrap();
    let made = maker.join().unwrap();
    assert!(made.is_ok(), "the partition is made: {made:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs_expiring_default"),
        0,
        "the writer's row was moved into its partition"
    );
    assert_eq!(
        db.count(&format!("SELECT count(*) FROM {part}")),
        1,
        "and is there"
    );
}

#[test]
fn a_failed_partition_step_is_counted_and_the_rest_of_the_pass_goes_on() {
    let db = TestDb::new();
    fill(&db);
    // A table of the name the next partition would take makes creating it fail.
    let part = partition_at(&db, "(now() + interval '2 days')");
    let mut conn = db.conn();
    sql_query(format!("DROP TABLE {part}"))
        .execute(&mut conn)
        .unwrap();
    sql_query(format!("CREATE TABLE {part} (in_the_way integer)"))
        .execute(&mut conn)
        .unwrap();
    let PurgeOutcome::Done(report) = purge(&db, 24) else {
        panic!("the pass ran")
    };
    assert_eq!(report.steps_failed, 1, "{report:?}");
    assert!(report.partitions_dropped >= 9, "{report:?}");
    assert_eq!(report.sessions_deleted, 1, "{report:?}");
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE NOT audit AND created_at < now() - interval '24 hours'"),
        0
    );
}

#[test]
fn a_retention_under_a_day_does_not_make_partitions_it_then_drops() {
    let db = TestDb::new();
    fill(&db);
    let PurgeOutcome::Done(first) = purge(&db, 1) else {
        panic!("the pass ran")
    };
    assert!(first.partitions_dropped >= 9, "{first:?}");
    for _ in 0..2 {
        let PurgeOutcome::Done(again) = purge(&db, 1) else {
            panic!("the pass ran")
        };
        assert_eq!(again.partitions_dropped, 0, "{again:?}");
    }
    assert_eq!(
        db.count(
            "SELECT count(*) FROM tetcore_log_partitions() WHERE hi <= now() - interval '1 hour'"
        ),
        0,
        "nothing behind the retention"
    );
}

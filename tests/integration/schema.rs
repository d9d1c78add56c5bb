//! The schema as a public interface: migrations, partitions, comments.

use diesel::{sql_query, RunQueryDsl};
use diesel_migrations::MigrationHarness;
use tetcore_analytics::db;

use crate::common::TestDb;

fn migration_count() -> usize {
    use diesel::migration::MigrationSource;
    MigrationSource::<diesel::pg::Pg>::migrations(&db::MIGRATIONS)
        .unwrap()
        .len()
}

#[test]
fn migrations_revert_and_apply_again() {
    let db = TestDb::new();
    let mut conn = db.conn();
    conn.revert_all_migrations(db::MIGRATIONS)
        .expect("down.sql undoes up.sql");
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE tablename IN ('peer_connections', 'tetcore_logs')"),
        0
    );
    let applied = db::prepare(&mut conn, 24).expect("up.sql applies again");
    assert_eq!(applied.len(), migration_count());
}

#[test]
fn several_instances_preparing_at_once_all_succeed() {
    let db = TestDb::new();
    let mut conn = db.conn();
    conn.revert_all_migrations(db::MIGRATIONS).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || {
                use diesel::Connection;
                let mut conn = diesel::PgConnection::establish(&url).unwrap();
                db::prepare(&mut conn, 24).map(|applied| applied.len())
            })
        })
        .collect();
    let applied: Vec<usize> = threads
        .into_iter()
        .map(|t| t.join().unwrap().expect("prepare succeeds"))
        .collect();
    assert_eq!(
        applied.iter().sum::<usize>(),
        migration_count(),
        "applied exactly once"
    );
}

#[test]
fn every_table_and_column_is_commented() {
    let db = TestDb::new();
    let uncommented = db.json(
        "SELECT c.relname, a.attname FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         WHERE c.relname IN ('peer_connections', 'tetcore_logs', 'host_systems', 'benchmarks') \
           AND col_description(c.oid, a.attnum) IS NULL",
    );
    assert!(
        uncommented.is_empty(),
        "uncommented columns: {uncommented:?}"
    );
    assert_eq!(
        db.count("SELECT count(*) FROM pg_class WHERE relname IN ('peer_connections', 'tetcore_logs', 'tetcore_logs_audit', 'tetcore_logs_expiring') AND obj_description(oid, 'pg_class') IS NOT NULL"),
        4
    );
}

#[test]
fn partitions_exist_ahead_and_rows_in_the_default_move_to_their_day() {
    let db = TestDb::new();
    let ahead = db.count(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'tetcore_logs_expiring'::regclass \
           AND c.relname >= 'tetcore_logs_expiring_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')",
    );
    assert!(
        ahead > db::PARTITION_DAYS_AHEAD as i64,
        "{ahead} partitions from today on"
    );
    // A row for a day without a partition lands in the default partition...
    let mut conn = db.conn();
    sql_query(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) \
         VALUES (1, now() + interval '40 days', false, '{\"msg\":\"x\"}')",
    )
    .execute(&mut conn)
    .unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs_expiring_default"),
        1
    );
    // ...and moves to its own when that partition is created.
    sql_query(
        "SELECT tetcore_ensure_log_partitions(now() + interval '40 days', now() + interval '40 days 1 second', 24)",
    )
        .execute(&mut conn)
        .unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs_expiring_default"),
        0
    );
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 1);
}

/// `src/db/schema.rs` must describe the database the migrations make: the same columns, in the
/// same order, with the same nullability (what `diesel print-schema` would check).
#[test]
fn schema_rs_matches_the_migrated_database() {
    let db = TestDb::new();
    let source = include_str!("../../src/db/schema.rs");
    let mut tables: Vec<(String, Vec<(String, bool)>)> = Vec::new();
    for line in source
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("diesel::"))
    {
        if let Some(name) = line.strip_suffix(" (id) {") {
            tables.push((name.to_owned(), Vec::new()));
        } else if let Some((column, ty)) = line.split_once(" -> ") {
            let columns = &mut tables.last_mut().expect("a column inside a table").1;
            columns.push((column.to_owned(), ty.starts_with("Nullable<")));
        }
    }
    assert_eq!(tables.len(), 4);
    for (table, columns) in tables {
        let actual: Vec<(String, bool)> = db
            .json(&format!(
                "SELECT column_name, is_nullable = 'YES' AS nullable FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
            ))
            .into_iter()
            .map(|c| {
                (
                    c["column_name"].as_str().unwrap().to_owned(),
                    c["nullable"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(columns, actual, "{table}");
    }
}

/// Migration 10 fills `tetcore_node_state` from the messages of the two minutes before it, with
/// the rules the writers use.
#[test]
fn the_node_state_migration_fills_the_live_fleet_from_its_messages() {
    let db = TestDb::new();
    let mut conn = db.conn();
    // Every later migration, then 10 itself.
    loop {
        let reverted = conn
            .revert_last_migration(db::MIGRATIONS)
            .expect("migrations revert");
        if reverted.to_string() == "20261130000010" {
            break;
        }
    }
    sql_query("INSERT INTO peer_connections (id, ip_addr) VALUES (1, '10.0.0.1'), (2, '10.0.0.2')")
        .execute(&mut conn)
        .unwrap();
    sql_query(
        "INSERT INTO tetcore_logs (peer_connection_id, created_at, audit, logs) VALUES
           (1, now() - interval '50 seconds', false, '{\"msg\":\"block.import\",\"height\":5}'),
           (1, now() - interval '40 seconds', false, '{\"msg\":\"block.import\",\"height\":7}'),
           (1, now() - interval '30 seconds', false, '{\"msg\":\"notify.finalized\",\"height\":\"6\"}'),
           (1, now() - interval '20 seconds', false, '{\"msg\":\"system.interval\",\"peers\":3}'),
           (1, now() - interval '10 seconds', false, '{\"msg\":\"block.import\",\"height\":\"x\"}'),
           (2, now() - interval '10 minutes', false, '{\"msg\":\"block.import\",\"height\":9}')",
    )
    .execute(&mut conn)
    .unwrap();
    db::prepare(&mut conn, 24).expect("migration 10 applies again");
    let rows = db.json(
        "SELECT peer_connection_id, best_height, finalized_height, peers, txcount, \
                last_message_at > now() - interval '11 seconds' AS newest \
         FROM tetcore_node_state",
    );
    assert_eq!(
        rows,
        vec![
            serde_json::json!({"peer_connection_id": 1, "best_height": 7, "finalized_height": 6,
            "peers": 3, "txcount": null, "newest": true})
        ],
        "session 2 was last heard 10 minutes before: its next message fills its row"
    );
}

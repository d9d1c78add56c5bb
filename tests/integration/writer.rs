//! The DB writer on its own: rows PostgreSQL refuses are isolated, the rest of the batch stored.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tetcore_analytics::actors::writer::{Drain, Event, StoreEvents, WriterSettings, Writers};
use tetcore_analytics::db::ingest::{Deadlines, WriterId};
use tetcore_analytics::metrics::Metrics;
use tokio::sync::Semaphore;

use crate::common::{register, TestDb};

#[test]
fn a_row_postgres_refuses_costs_only_that_row() {
    let db = TestDb::new();
    let metrics = Metrics::new();
    let m = metrics.clone();
    let url = db.url.clone();
    let instance = register(&url);
    let drained = actix::System::new().block_on(async move {
        let writers = Writers::start(
            1,
            &url,
            WriterSettings {
                batch_size: 1000,
                save_latency: Duration::from_secs(60),
                deadlines: Deadlines {
                    connect: Duration::from_secs(5),
                    statement: Duration::from_secs(10),
                },
                id: WriterId { instance, index: 0 },
            },
            &Arc::new(Semaphore::new(1 << 30)),
            &m,
        );
        let writer = writers.of(0);
        // Received a while ago (held back, say): the batch is marked late.
        let at = Utc::now() - chrono::TimeDelta::seconds(30);
        let mut events = vec![Event::Opened {
            session: 1,
            ip_addr: "10.0.0.1".into(),
            audit: false,
            telemetry_id: 0,
            at,
        }];
        for i in 0..1000 {
            // jsonb refuses \u0000; the parser never lets one through, so it is made here.
            let logs = if i == 321 {
                r#"{"msg":"x","bad":"\u0000"}"#.to_owned()
            } else {
                format!(r#"{{"msg":"x","i":{i}}}"#)
            };
            events.push(Event::Log {
                session: 1,
                audit: false,
                at,
                logs,
                state: None,
                cost: 10,
            });
        }
        m.messages_queued.add(1000);
        writer.send(StoreEvents(events)).await.unwrap();
        tetcore_analytics::drain(&writers, Duration::from_secs(20)).await
            && writer.send(Drain { stop: true }).await.unwrap() == 0
    });
    assert!(drained);
    assert_eq!(metrics.rows_stored.get(), 999);
    assert_eq!(
        metrics.dropped_count(tetcore_analytics::metrics::DropReason::DbRejected),
        1
    );
    assert_eq!(metrics.messages_queued.get(), 0);
    assert_eq!(db.count("SELECT count(*) FROM tetcore_logs"), 999);
    assert_eq!(
        db.count("SELECT count(*) FROM tetcore_logs WHERE logs->>'i' = '321'"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM peer_connections WHERE ended_at IS NOT NULL"),
        1,
        "drain ends the sessions left open"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM tetcore_late_batches WHERE instance_id = {instance} \
             AND oldest < now() - interval '29 seconds'"
        )),
        1,
        "the batch of old messages is marked late, once"
    );
}

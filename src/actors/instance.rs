//! This instance's place among those sharing the database: every `INSTANCE_HEARTBEAT_S` it
//! records that it is alive, and ends the instances whose heartbeat is older than
//! `INSTANCE_DEAD_AFTER_S` (killed, out of memory, host lost) together with the sessions they
//! held, so purge and `/nodes` see those sessions as ended. Runs on the query pool, one round
//! at a time; a failed round is logged and the next one tries again.

use std::time::Duration;

use actix::prelude::*;

use crate::db::queries::instances;
use crate::db::{self, DbPool};
use crate::metrics::Metrics;

pub struct Instance {
    pool: DbPool,
    id: i64,
    heartbeat: Duration,
    dead_after: Duration,
    metrics: Metrics,
    busy: bool,
}

impl Instance {
    pub fn new(
        pool: DbPool,
        id: i64,
        heartbeat: Duration,
        dead_after: Duration,
        metrics: Metrics,
    ) -> Instance {
        Instance {
            pool,
            id,
            heartbeat,
            dead_after,
            metrics,
            busy: false,
        }
    }

    fn round(&mut self, ctx: &mut Context<Self>) {
        if std::mem::replace(&mut self.busy, true) {
            return;
        }
        let (pool, me, dead_after, metrics) = (
            self.pool.clone(),
            self.id,
            self.dead_after,
            self.metrics.clone(),
        );
        let job = actix_web::rt::task::spawn_blocking(move || {
            let mut conn = db::checkout(&pool, db::POOL_TIMEOUT, &metrics)?;
            let revived = instances::heartbeat(&mut conn, me).map_err(|e| e.to_string())?;
            let ended =
                instances::end_dead(&mut conn, me, dead_after).map_err(|e| e.to_string())?;
            Ok::<_, String>((revived, ended))
        });
        ctx.spawn(job.into_actor(self).map(|joined, this, _| {
            this.busy = false;
            match joined.map_err(|e| e.to_string()).and_then(|r| r) {
                Ok((revived, ended)) => {
                    this.metrics
                        .heartbeat_at
                        .set(chrono::Utc::now().timestamp());
                    if let Some(at) = revived {
                        log::warn!(
                            "this instance had been declared dead at {at} (its heartbeat stalled); \
                             the sessions it held were ended then: instance={}",
                            this.id
                        );
                    }
                    for dead in ended {
                        this.metrics.instances_ended.inc();
                        log::warn!(
                            "instance stopped heartbeating, it and its sessions ended: instance={} last_heartbeat={} sessions={}",
                            dead.instance,
                            dead.last_heartbeat,
                            dead.sessions
                        );
                    }
                }
                Err(e) => log::warn!("instance heartbeat failed, next round retries: error={e}"),
            }
        }));
    }
}

impl Actor for Instance {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.round(ctx);
        ctx.run_interval(self.heartbeat, |this, ctx| this.round(ctx));
    }
}

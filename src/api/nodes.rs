//! `GET /nodes`: the newest session of every known peer id, with the latest state the cache
//! holds for it. Request → query (newest sessions) + cache → JSON.

use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::error::ApiError;
use crate::actors::cache::{Cache, LatestStates};
use crate::db::queries::nodes;
use crate::db::{self, DbPool};
use crate::metrics::Metrics;

/// A session counts as connected while its socket is open and it was heard from this recently
/// (a session left open by an instance that died is not connected).
const CONNECTED_WITHIN: Duration = Duration::from_secs(60);

/// One node as `/nodes` shows it.
#[derive(Serialize)]
pub struct NodeView {
    pub id: i64,
    pub ip_addr: String,
    pub peer_id: String,
    pub created_at: String,
    pub audit: bool,
    pub name: Option<String>,
    pub chain: Option<String>,
    pub version: Option<String>,
    pub authority: Option<bool>,
    pub startup_time: Option<i64>,
    pub implementation: Option<String>,
    pub genesis_hash: Option<String>,
    pub best_height: Option<i64>,
    pub finalized_height: Option<i64>,
    pub peers: Option<i64>,
    pub txcount: Option<i64>,
    pub last_message_at: Option<String>,
    pub connected: bool,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub async fn list(
    pool: web::Data<DbPool>,
    cache: web::Data<Addr<Cache>>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let pool = pool.get_ref().clone();
    let metrics = metrics.get_ref().clone();
    let sessions = web::block(move || {
        let mut conn =
            db::checkout(&pool, db::POOL_TIMEOUT, &metrics).map_err(ApiError::Unavailable)?;
        nodes::newest_sessions(&mut conn).map_err(|e| ApiError::Unavailable(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))??;
    let states = cache
        .send(LatestStates(sessions.iter().map(|s| s.id).collect()))
        .await
        .map_err(|e| ApiError::Unavailable(format!("cache: {e}")))?;
    let now = Utc::now();
    let views: Vec<NodeView> = sessions
        .into_iter()
        .map(|s| {
            let state = states.get(&s.id);
            let heard = state.map(|st| st.last_message_at);
            let recent =
                heard.is_some_and(|t| (now - t).to_std().unwrap_or_default() < CONNECTED_WITHIN);
            NodeView {
                id: s.id,
                ip_addr: s.ip_addr,
                peer_id: s.peer_id,
                created_at: rfc3339(s.created_at),
                audit: s.audit,
                name: s.name,
                chain: s.chain,
                version: s.version,
                authority: s.authority,
                startup_time: s.startup_time,
                implementation: s.implementation,
                genesis_hash: s.genesis_hash,
                best_height: state.and_then(|st| st.best_height),
                finalized_height: state.and_then(|st| st.finalized_height),
                peers: state.and_then(|st| st.peers),
                txcount: state.and_then(|st| st.txcount),
                last_message_at: heard.map(rfc3339),
                connected: s.ended_at.is_none() && recent,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

//! tetcore-analytics: collects telemetry from Tetcore and Substrate nodes into PostgreSQL.
//!
//! ```text
//!  node ──ws──▶ ingest::session ──▶ ingest::parse ──▶ actors::writer ──COPY──▶ PostgreSQL
//!               (one per socket)    (frame → row)      (batches)                    │
//!  curl, Prometheus ──http──▶ api ──▶ metrics                        Grafana ◀──────┘
//! ```
//!
//! - `config`: every setting, read once from the environment.
//! - `access`: who may connect and write (client address behind proxies, allow-list, caps,
//!   blocks, the write token, CORS).
//! - `metrics`: the Prometheus registry and the bounded label sets.
//! - `ingest`: WebSocket sessions, wire types, the parser, and the TCP stream under them.
//! - `actors`: the DB writers, the purge (retention), the cache (latest node state), the
//!   derive passes (network analytics) and this instance's heartbeat.
//! - `db`: pool, embedded migrations, schema, queries, and the writer's own connection.
//! - `api`: the route table, `/metrics`, the health probes and the JSON query API (`params`
//!   → query → views; one `ApiError` shape; `/openapi.json`).
//!
//! `src/bin/loadgen.rs` is a fleet of fake nodes for benchmarks (`scripts/bench`).

pub mod access;
pub mod actors;
pub mod api;
pub mod config;
pub mod db;
pub mod ingest;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App};
use tokio::sync::{watch, Semaphore};

use access::client::ClientAddr;
use access::gate::GateLimits;
use actors::cache::{Cache, CacheSettings};
use actors::derive::{Derive, Pacing};
use actors::instance::Instance;
use actors::purge::Purge;
use actors::writer::{WriterSettings, Writers};
use config::Config;
use db::ingest::{Deadlines, WriterId};
use db::DbPool;
use ingest::session::{IngestSettings, IngestState};
use metrics::Metrics;

/// A started service: the HTTP server (await it to run it) and what shutdown needs.
pub struct Service {
    pub server: Server,
    pub addrs: Vec<SocketAddr>,
    pub writers: Writers,
    pub metrics: Metrics,
    pub purge: Addr<Purge>,
    /// `None` when `DERIVE_INTERVAL_S` is 0.
    pub derive: Option<Addr<Derive>>,
    pub stopper: Stopper,
}

/// Stops a service the way SIGTERM does; cheap to clone and usable from any thread.
#[derive(Clone)]
pub struct Stopper {
    server: ServerHandle,
    shutdown: Arc<watch::Sender<bool>>,
}

impl Stopper {
    /// Stops accepting, tells every session to stop reading and close, and waits (up to
    /// `SHUTDOWN_TIMEOUT_S`) for the connections to end. Then await the server and `drain`.
    pub async fn stop(&self) {
        self.shutdown.send_replace(true);
        self.server.stop(true).await;
    }
}

/// Starts the writer, purge, cache and instance actors and binds the server; must run inside an
/// actix system. The database must already be prepared (`db::prepare`) and this process
/// registered as `instance` (`db::queries::instances::register`).
pub fn start(config: &Config, pool: DbPool, instance: i64) -> std::io::Result<Service> {
    let metrics = Metrics::new();
    metrics
        .write_queue_max_bytes
        .set(i64::try_from(config.write_queue_max_bytes).unwrap_or(i64::MAX));
    let budget = Arc::new(Semaphore::new(config.write_queue_max_bytes));
    let cache = Cache::new(
        pool.clone(),
        CacheSettings {
            interval: config.cache_update_interval,
            timeout: config.cache_update_timeout,
            expiry: config.cache_expiry,
        },
        metrics.clone(),
    )
    .start();
    Instance::new(
        pool.clone(),
        instance,
        config.instance_heartbeat,
        config.instance_dead_after,
        metrics.clone(),
    )
    .start();
    let purge = Purge::new(
        db::libpq_url(&config.database_url, config.db_connect_timeout),
        config.purge_interval,
        config.log_expiry,
        config.derived_retention,
        metrics.clone(),
    )
    .start();
    let derive = config.derive_interval.map(|interval| {
        Derive::new(
            db::libpq_url(&config.database_url, config.db_connect_timeout),
            interval,
            Pacing {
                max_busy_pct: config.derive_max_busy_pct,
                // More than a batch waiting for each writer: they are behind.
                backlog_above: i64::try_from(config.db_batch_size * config.db_writers)
                    .unwrap_or(i64::MAX),
            },
            metrics.clone(),
        )
        .start()
    });
    let writers = Writers::start(
        config.db_writers,
        &config.database_url,
        WriterSettings {
            batch_size: config.db_batch_size,
            save_latency: config.db_save_latency,
            deadlines: Deadlines {
                connect: config.db_connect_timeout,
                statement: config.db_write_timeout,
            },
            id: WriterId { instance, index: 0 },
        },
        &budget,
        &metrics,
    );
    let (shutdown, shutdown_rx) = watch::channel(false);
    let health = web::Data::new(api::health::Health {
        pool: pool.clone(),
        budget: budget.clone(),
        budget_total: config.write_queue_max_bytes,
        shutdown: shutdown_rx.clone(),
    });
    let ingest = web::Data::new(IngestState::new(
        writers.clone(),
        budget,
        metrics.clone(),
        IngestSettings {
            heartbeat: config.heartbeat_interval,
            client_timeout: config.client_timeout,
            max_payload: config.ws_max_payload,
            max_ids: config.ws_max_ids_per_connection,
            max_bytes_per_s: config.ws_max_bytes_per_s,
            rate_window: config.ws_rate_window,
            client: ClientAddr {
                trusted: config.trusted_proxies.clone(),
                header: config.trusted_proxy_header,
            },
            gate: GateLimits {
                allowed: config.allowed_node_ips.clone(),
                per_address: config.ws_max_connections_per_address,
                total: config.ws_max_connections,
                block_for: config.ws_block,
            },
        },
        shutdown_rx,
    ));
    if config.api_token.0.is_none() {
        log::warn!(
            "API_TOKEN is not set: POST /host_systems, POST /benchmarks and /stats/db are open to anyone who can reach the port"
        );
    }
    let query_pool = db::QueryPool::new(pool.clone(), config);
    let exports = web::Data::new(api::export::Exports {
        database_url: config.database_url.clone(),
        deadlines: Deadlines {
            connect: config.db_connect_timeout,
            statement: config.export_timeout,
        },
        slots: Arc::new(Semaphore::new(api::export::EXPORTS_AT_ONCE)),
    });
    let token = web::Data::new(config.api_token.clone());
    let cors = web::Data::new(config.cors_allowed_origins.clone());
    let metrics_data = web::Data::new(metrics.clone());
    let analytics = web::Data::new(api::chains::Analytics::new(config));
    let body_limit = api::benchmarks::BodyLimit(config.api_max_body_bytes);
    let assets = config.assets_path.clone();
    let listener = listen(
        SocketAddr::new(config.listen_addr, config.port),
        config.max_pending_connections,
    )?;
    let local = listener.local_addr()?;
    let server = actix_server::Server::build()
        .workers(config.num_threads)
        .backlog(config.max_pending_connections)
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .disable_signals()
        .listen("tetcore-analytics", listener, move || {
            let app = App::new()
                .wrap(actix_web::middleware::from_fn(access::http::cors))
                .wrap(actix_web::middleware::from_fn(api::observe))
                .wrap(actix_web::middleware::from_fn(api::head_as_get))
                .app_data(token.clone())
                .app_data(cors.clone())
                .app_data(ingest.clone())
                .app_data(metrics_data.clone())
                .app_data(health.clone())
                .app_data(web::Data::new(query_pool.clone()))
                .app_data(exports.clone())
                .app_data(analytics.clone())
                .app_data(web::Data::new(cache.clone()))
                .app_data(web::Data::new(body_limit))
                .configure(api::config)
                .configure(|cfg| api::dashboard::config(cfg, assets.as_deref()));
            http_service(app, local)
        })?
        .run();
    let addrs = vec![local];
    let stopper = Stopper {
        server: server.handle(),
        shutdown: Arc::new(shutdown),
    };
    Ok(Service {
        server,
        addrs,
        writers,
        metrics,
        purge,
        derive,
        stopper,
    })
}

/// A listening socket with the given backlog (std's `bind` would use its own).
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// HTTP/1 over each accepted connection, through `ingest::socket::GatedStream` (what
/// `HttpServer` builds, with that one difference), with `HttpServer`'s timeouts.
fn http_service<T, B>(
    app: App<T>,
    local: SocketAddr,
) -> impl actix_service::ServiceFactory<
    actix_web::rt::net::TcpStream,
    Config = (),
    Response = (),
    Error = actix_http::error::DispatchError,
    InitError = (),
>
where
    T: actix_service::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: actix_web::body::MessageBody + 'static,
{
    use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
    use ingest::socket::GatedStream;
    let service = actix_http::HttpService::build()
        .keep_alive(actix_http::KeepAlive::default())
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(local)
        .on_connect_ext(ingest::socket::remember)
        .finish(map_config(
            app.into_factory()
                .map_err(|e: actix_web::Error| e.as_response_error().error_response()),
            |_| actix_web::dev::AppConfig::default(),
        ));
    fn_service(|io: actix_web::rt::net::TcpStream| async move {
        let _ = io.set_nodelay(true);
        let io = GatedStream::new(io);
        let peer = io.peer_addr();
        Ok::<_, actix_http::error::DispatchError>((io, actix_http::Protocol::Http1, peer))
    })
    .and_then(service)
}

/// After the server has stopped: writes everything still queued, and marks the sessions that
/// did not close as ended. Returns false if `deadline` passed first.
pub async fn drain(writers: &Writers, deadline: Duration) -> bool {
    writers.drain(deadline).await
}

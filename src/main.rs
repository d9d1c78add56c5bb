//! Start-up and shutdown: arguments (`--help`, `--version`), settings, logger, database, writer,
//! server; on SIGTERM or SIGINT the server stops accepting and the writer flushes what was
//! received.

use std::process::ExitCode;
use std::time::Duration;

use tetcore_analytics::config::{self, Config, Invocation};
use tetcore_analytics::{db, drain, start};

#[actix_web::main]
async fn main() -> ExitCode {
    let invocation = Invocation::from_args(std::env::args_os().skip(1));
    match invocation {
        Ok(Invocation::Run | Invocation::Rebuild) => {}
        Ok(Invocation::Help) => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("tetcore-analytics {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("tetcore-analytics: {e}");
            return ExitCode::from(2);
        }
    }
    let dotenv = dotenvy::dotenv();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(e) = dotenv {
        if !e.not_found() {
            log::error!("cannot read .env: {e}");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if invocation == Ok(Invocation::Rebuild) {
        return rebuild(&config);
    }
    raise_open_file_limit(&config);
    return_large_buffers();
    let pool = db::pool(&config);
    let instance = prepare_database(
        db::libpq_url(&config.database_url, config.db_connect_timeout),
        db::partition_hours(config.log_expiry),
    )
    .await;
    log::info!("registered as instance {instance}");
    let service = match start(&config, pool, instance) {
        Ok(service) => service,
        Err(e) => {
            log::error!(
                "cannot listen on {}:{}: {e}",
                config.listen_addr,
                config.port
            );
            return ExitCode::from(1);
        }
    };
    for addr in &service.addrs {
        log::info!("listening: addr={addr} telemetry=ws://{addr}/ audit=ws://{addr}/audit");
    }
    let stopper = service.stopper.clone();
    actix_web::rt::spawn(async move {
        let signal = stop_signal().await;
        log::info!("{signal} received: stopping");
        stopper.stop().await;
    });
    if let Err(e) = service.server.await {
        log::error!("server failed: {e}");
    }
    log::info!("server stopped; writing what was received");
    if drain(&service.writers, config.shutdown_timeout).await {
        log::info!("all received messages written; exiting");
    } else {
        log::warn!(
            "shutdown deadline passed with messages unwritten: queued={}",
            service.metrics.messages_queued.get()
        );
    }
    ExitCode::SUCCESS
}

/// Every socket is a file descriptor, and a shell's default soft limit (often 1024) would
/// refuse nodes long before `WS_MAX_CONNECTIONS`: raise the soft limit to the hard one, as
/// nginx's `worker_rlimit_nofile` or Go's runtime do, and warn if the cap still does not fit.
fn raise_open_file_limit(config: &Config) {
    /// Linux's default `fs.nr_open`: a soft limit above it cannot be set.
    const CEILING: libc::rlim_t = 1 << 20;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write only the struct passed to them.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        log::warn!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let wanted = limit.rlim_max.min(CEILING);
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = wanted;
        }
    }
    let needed = config.ws_max_connections as libc::rlim_t
        + libc::rlim_t::from(config.db_pool_size)
        + RESERVED_FILES;
    if config.ws_max_connections > 0 && limit.rlim_cur < needed {
        log::warn!(
            "open-file limit {} is below WS_MAX_CONNECTIONS ({}) plus the database pool and {} in reserve: \
             the system will refuse sockets before the cap does; raise the hard limit \
             (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=) or lower WS_MAX_CONNECTIONS",
            limit.rlim_cur,
            config.ws_max_connections,
            RESERVED_FILES
        );
    } else {
        log::info!("open-file limit: {}", limit.rlim_cur);
    }
}

/// glibc's allocator raises its mmap threshold each time a large buffer is freed, so after a
/// few big answers (`/nodes` of 10,000 nodes is megabytes, built by any of the worker threads)
/// such buffers come from the threads' heaps, which keep the memory for good. A fixed threshold
/// keeps them mmapped, and given back to the system when freed.
fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 256 * 1024;
        // SAFETY: mallopt only sets a parameter of the allocator; it is called before the
        // server's threads exist.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) } != 1 {
            log::warn!("could not set the allocator's mmap threshold");
        }
    }
}

/// Files the process needs besides sockets and the pool: logs, the listener, the writer's and
/// purge's connections, the blocking threads' work.
const RESERVED_FILES: libc::rlim_t = 64;

/// Waits for SIGTERM or SIGINT and names it.
async fn stop_signal() -> &'static str {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            let term = std::pin::pin!(term.recv());
            let int = std::pin::pin!(actix_web::rt::signal::ctrl_c());
            match futures_util::future::select(term, int).await {
                futures_util::future::Either::Left(_) => "SIGTERM",
                futures_util::future::Either::Right(_) => "SIGINT",
            }
        }
        Err(e) => {
            log::warn!("cannot listen for SIGTERM ({e}); only SIGINT stops the service");
            let _ = actix_web::rt::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Applies migrations and partitions and registers this instance, retrying while the database
/// cannot be reached. Returns the instance id.
/// `tetcore-analytics rebuild`: migrations, then every raw message still stored folded into
/// the analytics tables, an hour at a time, with progress on the log.
fn rebuild(config: &Config) -> ExitCode {
    use diesel::Connection;
    let url = db::libpq_url(&config.database_url, config.db_connect_timeout);
    let mut conn = match diesel::PgConnection::establish(&url) {
        Ok(conn) => conn,
        Err(e) => {
            log::error!("cannot connect to the database: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = db::prepare(&mut conn, db::partition_hours(config.log_expiry)) {
        log::error!("{e}");
        return ExitCode::from(1);
    }
    log::info!("rebuilding the analytics tables from the stored messages");
    let started = std::time::Instant::now();
    let done = db::queries::derive::rebuild(&mut conn, |from, to, messages| {
        log::info!("folded in: from={from} to={to} messages={messages}");
    });
    match done {
        Ok(report) => {
            log::info!(
                "rebuild done: messages={} windows={} from={:?} until={} took_s={}",
                report.messages,
                report.windows,
                report.from,
                report.until,
                started.elapsed().as_secs()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("rebuild failed (what was folded in stays; run it again): {e}");
            ExitCode::from(1)
        }
    }
}

async fn prepare_database(database_url: String, partition_hours: i32) -> i64 {
    let mut delay = Duration::from_millis(500);
    loop {
        let url = database_url.clone();
        let result = actix_web::web::block(move || {
            use diesel::Connection;
            let mut conn =
                diesel::PgConnection::establish(&url).map_err(|e| db::SetupError(e.to_string()))?;
            let applied = db::prepare(&mut conn, partition_hours)?;
            let instance = db::register_instance(&mut conn)?;
            Ok::<_, db::SetupError>((applied, instance))
        })
        .await;
        match result {
            Ok(Ok((applied, instance))) => {
                if !applied.is_empty() {
                    log::info!("migrations applied: {}", applied.join(", "));
                }
                return instance;
            }
            Ok(Err(e)) => log::warn!("database not ready, retrying: error={e}"),
            Err(e) => log::warn!("database set-up task failed, retrying: error={e}"),
        }
        actix_web::rt::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

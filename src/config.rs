//! Settings: the only code that reads the environment.
//!
//! `Config::from_env` is called once in `main` (after `.env` has been loaded; the process
//! environment wins) and the result is passed explicitly to whatever needs it. A value that
//! does not parse, or a combination that cannot work, is an error naming the variable.
//!
//! The settings, their defaults and meanings are `SETTINGS`, which `--help` prints and the
//! README's table repeats (a test keeps them equal).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::access::cidr::CidrList;
use crate::access::client::ProxyHeader;
use crate::access::http::{CorsOrigins, WriteToken};

pub const DEFAULT_LISTEN_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
pub const DEFAULT_PORT: u16 = 8080;
pub const DEFAULT_HEARTBEAT_INTERVAL_S: u64 = 5;
pub const DEFAULT_CLIENT_TIMEOUT_S: u64 = 10;
pub const DEFAULT_PURGE_INTERVAL_S: u64 = 600;
pub const DEFAULT_LOG_EXPIRY_H: u64 = 280_320;
pub const DEFAULT_DERIVE_INTERVAL_S: u64 = 5;
pub const DEFAULT_DERIVE_MAX_BUSY_PCT: u32 = 20;
pub const DEFAULT_DERIVED_RETENTION_D: u64 = 3650;
pub const DEFAULT_FINALITY_STALL_S: u64 = 60;
pub const DEFAULT_MAX_PENDING_CONNECTIONS: u32 = 8192;
pub const DEFAULT_WS_MAX_PAYLOAD: usize = 524_288;
pub const THREADS_PER_CPU: usize = 3;
pub const DEFAULT_DB_BATCH_SIZE: usize = 4096;
pub const DEFAULT_DB_WRITERS: usize = 2;
pub const DEFAULT_DB_SAVE_LATENCY_MS: u64 = 100;
pub const DEFAULT_WRITE_QUEUE_MAX_BYTES: usize = 64 * 1024 * 1024;
pub const DEFAULT_CACHE_UPDATE_TIMEOUT_S: u64 = 15;
pub const DEFAULT_CACHE_UPDATE_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_CACHE_EXPIRY_S: u64 = 3600;
pub const DEFAULT_SHUTDOWN_TIMEOUT_S: u64 = 10;
pub const DEFAULT_QUERY_TIMEOUT_MS: u64 = 5000;
pub const DEFAULT_DB_CONNECT_TIMEOUT_S: u64 = 5;
pub const DEFAULT_DB_WRITE_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_INSTANCE_HEARTBEAT_S: u64 = 5;
pub const DEFAULT_INSTANCE_DEAD_AFTER_S: u64 = 30;
pub const DEFAULT_EXPORT_TIMEOUT_S: u64 = 3600;
pub const DEFAULT_API_MAX_BODY_BYTES: usize = 64 * 1024;
pub const DEFAULT_WS_MAX_IDS_PER_CONNECTION: usize = 20;
pub const DEFAULT_WS_MAX_BYTES_PER_S: u64 = 256 * 1024;
pub const DEFAULT_WS_RATE_WINDOW_S: u64 = 10;
pub const DEFAULT_WS_BLOCK_S: u64 = 600;
pub const DEFAULT_WS_MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
pub const DEFAULT_WS_MAX_CONNECTIONS: usize = 20_000;

/// What the command line asks for: settings come from the environment, so the only arguments
/// are `rebuild`, `--help` and `--version`.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    Run,
    /// `rebuild`: fold every raw message still stored into the analytics tables, then exit.
    Rebuild,
    Help,
    Version,
}

impl Invocation {
    /// Reads the arguments (without the program's name); an unknown one is an error naming it.
    pub fn from_args(
        args: impl IntoIterator<Item = std::ffi::OsString>,
    ) -> Result<Invocation, String> {
        let args: Vec<_> = args.into_iter().collect();
        match args.as_slice() {
            [] => Ok(Invocation::Run),
            [one] if one == "rebuild" => Ok(Invocation::Rebuild),
            [one] if one == "--help" || one == "-h" => Ok(Invocation::Help),
            [one] if one == "--version" || one == "-V" => Ok(Invocation::Version),
            _ => {
                let unknown = args
                    .iter()
                    .find(|a| {
                        !["--help", "-h", "--version", "-V", "rebuild"]
                            .iter()
                            .any(|k| a == k)
                    })
                    .or(args.get(1))
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Err(format!(
                    "unexpected argument {unknown:?}: settings come from the environment (see --help)"
                ))
            }
        }
    }
}

/// What `--help` prints: the usage, and every setting with its default and meaning.
pub fn help() -> String {
    let plain = |text: &str| text.replace('`', "");
    let mut out = format!(
        "tetcore-analytics {}: {}\n\n\
         Usage: tetcore-analytics [rebuild | --help | --version]\n\n\
         Without arguments it runs the service. rebuild folds every raw message still\n\
         stored into the network analytics tables (idempotent; safe while instances run) and\n\
         exits.\n\n\
         Every setting is read from the environment, or from a .env file in the working\n\
         directory (the environment wins). A value that does not parse stops the start with a\n\
         message naming it.\n\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_DESCRIPTION")
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "  {}  (default: {})\n      {}\n",
            s.name,
            plain(s.default),
            plain(s.meaning)
        ));
    }
    out
}

/// One setting: its variable, its default and what it means (Markdown, as in the README).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every setting `Config` reads, its default and its meaning, as the README's table shows them
/// (a test keeps the two equal) and `--help` prints them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "DATABASE_URL",
        default: "(required; `scripts/run` provides one)",
        meaning: "PostgreSQL URL, `postgres://user@host:port/db`",
    },
    Setting {
        name: "LISTEN_ADDR",
        default: "`0.0.0.0`",
        meaning: "address to listen on",
    },
    Setting {
        name: "PORT",
        default: "`8080`",
        meaning: "port to listen on",
    },
    Setting {
        name: "HEARTBEAT_INTERVAL",
        default: "`5`",
        meaning: "seconds between pings to each node and between liveness checks",
    },
    Setting {
        name: "CLIENT_TIMEOUT_S",
        default: "`10`",
        meaning: "a socket on which no frame of any kind arrived for this long is closed (at least `HEARTBEAT_INTERVAL`)",
    },
    Setting {
        name: "PURGE_INTERVAL_S",
        default: "`600`",
        meaning: "seconds between retention passes",
    },
    Setting {
        name: "LOG_EXPIRY_H",
        default: "`280320`",
        meaning: "hours non-audit messages are kept (`0`: purge all received so far)",
    },
    Setting {
        name: "DERIVE_INTERVAL_S",
        default: "`5`",
        meaning: "seconds between passes that fold new messages into the network analytics tables (`0`: off; `tetcore-analytics rebuild` catches up later)",
    },
    Setting {
        name: "DERIVE_MAX_BUSY_PCT",
        default: "`20`",
        meaning: "the most of the wall clock (1 to 100 %) the derive passes may take while the writers are behind (more than a batch each waiting): after a pass, the next waits so that passes take at most this share and ingest keeps the rest (`100`: back to back)",
    },
    Setting {
        name: "DERIVED_RETENTION_D",
        default: "`3650`",
        meaning: "days the network analytics tables keep their rows (propagation, finality, versions, hardware), whatever `LOG_EXPIRY_H` is",
    },
    Setting {
        name: "FINALITY_STALL_S",
        default: "`60`",
        meaning: "a chain whose finalized height stands still this many seconds while its best height advances is in a finality stall",
    },
    Setting {
        name: "MAX_PENDING_CONNECTIONS",
        default: "`8192`",
        meaning: "listen backlog",
    },
    Setting {
        name: "WS_MAX_PAYLOAD",
        default: "`524288`",
        meaning: "largest message in bytes (one frame, or fragments together); larger closes the socket with 1009",
    },
    Setting {
        name: "NUM_THREADS",
        default: "CPUs × 3",
        meaning: "HTTP worker threads",
    },
    Setting {
        name: "DB_POOL_SIZE",
        default: "`NUM_THREADS`",
        meaning: "PostgreSQL connections",
    },
    Setting {
        name: "DB_BATCH_SIZE",
        default: "`4096`",
        meaning: "messages per batch: a batch is written when this many wait...",
    },
    Setting {
        name: "DB_SAVE_LATENCY_MS",
        default: "`100`",
        meaning: "...or when the oldest waiting one is this old",
    },
    Setting {
        name: "DB_WRITERS",
        default: "`2`",
        meaning: "writers, each with its own PostgreSQL connection and its share of the sockets, so that this many batches are in flight",
    },
    Setting {
        name: "WRITE_QUEUE_MAX_BYTES",
        default: "`67108864`",
        meaning: "bytes of messages that may wait for the database; when full, sockets are not read until it drains (at least 2 × `WS_MAX_PAYLOAD`)",
    },
    Setting {
        name: "CACHE_UPDATE_TIMEOUT_S",
        default: "`15`",
        meaning: "a cache refresh slower than this is logged",
    },
    Setting {
        name: "CACHE_UPDATE_INTERVAL_MS",
        default: "`1000`",
        meaning: "time between cache refreshes",
    },
    Setting {
        name: "CACHE_EXPIRY_S",
        default: "`3600`",
        meaning: "sessions not heard from for this long leave the cache (and a start reads the state of those heard from within it)",
    },
    Setting {
        name: "SHUTDOWN_TIMEOUT_S",
        default: "`10`",
        meaning: "on SIGTERM/SIGINT: time for open sockets to finish, then again to write what was received",
    },
    Setting {
        name: "QUERY_TIMEOUT_MS",
        default: "`5000`",
        meaning: "statement timeout of the query pool (API, probes, cache refresh), which is apart from ingest's connection",
    },
    Setting {
        name: "DB_CONNECT_TIMEOUT_S",
        default: "`5`",
        meaning: "a connection to PostgreSQL (writer, pool, purge) not made within this is abandoned and retried",
    },
    Setting {
        name: "DB_WRITE_TIMEOUT_MS",
        default: "`10000`",
        meaning: "deadline of each statement of the writer, the COPY included (client side, and the session's `statement_timeout`, overriding the role's); past it the connection is abandoned and the batch retried whole",
    },
    Setting {
        name: "INSTANCE_HEARTBEAT_S",
        default: "`5`",
        meaning: "seconds between this instance's heartbeats in `tetcore_instances`",
    },
    Setting {
        name: "INSTANCE_DEAD_AFTER_S",
        default: "`30`",
        meaning: "an instance whose heartbeat is older than this (at least 3 heartbeats) is ended, with the sessions it held, by another instance",
    },
    Setting {
        name: "EXPORT_TIMEOUT_S",
        default: "`3600`",
        meaning: "an export (`GET /export/...`) still streaming after this long is cut off",
    },
    Setting {
        name: "API_MAX_BODY_BYTES",
        default: "`65536`",
        meaning: "largest request body the JSON API takes; larger is a 413",
    },
    Setting {
        name: "ASSETS_PATH",
        default: "(built in)",
        meaning: "serve the dashboard from this directory instead of the files built into the binary (to change the page)",
    },
    Setting {
        name: "TRUSTED_PROXIES",
        default: "(none)",
        meaning: "CIDRs of proxies in front of us; only from them is the forwarding header read (see Security)",
    },
    Setting {
        name: "TRUSTED_PROXY_HEADER",
        default: "`auto`",
        meaning: "the header those proxies set: `x-forwarded-for`, `forwarded`, or `auto` (`X-Forwarded-For` if present, else `Forwarded`)",
    },
    Setting {
        name: "ALLOWED_NODE_IPS",
        default: "(everyone)",
        meaning: "CIDRs that may open telemetry sockets on `/` and `/audit`; others get 403",
    },
    Setting {
        name: "WS_MAX_IDS_PER_CONNECTION",
        default: "`20`",
        meaning: "node ids one socket may carry; messages for more are dropped (`too_many_ids`)",
    },
    Setting {
        name: "WS_MAX_BYTES_PER_S",
        default: "`262144`",
        meaning: "bytes per second one socket may send, averaged over `WS_RATE_WINDOW_S`; beyond, it is closed (1008) and its address refused for `WS_BLOCK_S` (`0`: no limit)",
    },
    Setting {
        name: "WS_RATE_WINDOW_S",
        default: "`10`",
        meaning: "the window of that average",
    },
    Setting {
        name: "WS_BLOCK_S",
        default: "`600`",
        meaning: "seconds an address that went over the rate is refused (403)",
    },
    Setting {
        name: "WS_MAX_CONNECTIONS_PER_ADDRESS",
        default: "`256`",
        meaning: "open telemetry sockets per client address (IPv6: per /64); 503 beyond (`0`: no cap)",
    },
    Setting {
        name: "WS_MAX_CONNECTIONS",
        default: "`20000`",
        meaning: "open telemetry sockets in all; 503 beyond (`0`: no cap)",
    },
    Setting {
        name: "API_TOKEN",
        default: "(none: writes open, with a warning at start)",
        meaning: "bearer token that `POST /host_systems`, `POST /benchmarks` and `GET /stats/db` require",
    },
    Setting {
        name: "CORS_ALLOWED_ORIGINS",
        default: "(none)",
        meaning: "origins (`https://host[:port]`, comma-separated, or `*`) whose pages may call the API from a browser",
    },
    Setting {
        name: "RUST_LOG",
        default: "`info`",
        meaning: "log filter, e.g. `tetcore_analytics::ingest=debug`",
    },
];

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub listen_addr: IpAddr,
    pub port: u16,
    pub heartbeat_interval: Duration,
    pub client_timeout: Duration,
    pub purge_interval: Duration,
    pub log_expiry: Duration,
    /// `None`: the derive actor does not run.
    pub derive_interval: Option<Duration>,
    /// The share of the wall clock, in percent, derive passes may take (1 to 100).
    pub derive_max_busy_pct: u32,
    pub derived_retention: Duration,
    pub finality_stall: Duration,
    pub max_pending_connections: u32,
    pub ws_max_payload: usize,
    pub num_threads: usize,
    pub db_pool_size: u32,
    pub db_batch_size: usize,
    pub db_writers: usize,
    pub db_save_latency: Duration,
    pub write_queue_max_bytes: usize,
    pub cache_update_timeout: Duration,
    pub cache_update_interval: Duration,
    pub cache_expiry: Duration,
    pub shutdown_timeout: Duration,
    pub query_timeout: Duration,
    pub db_connect_timeout: Duration,
    pub db_write_timeout: Duration,
    pub instance_heartbeat: Duration,
    pub instance_dead_after: Duration,
    pub export_timeout: Duration,
    pub api_max_body_bytes: usize,
    /// `None`: the dashboard files built into the binary.
    pub assets_path: Option<PathBuf>,
    pub trusted_proxies: CidrList,
    pub trusted_proxy_header: ProxyHeader,
    pub allowed_node_ips: CidrList,
    pub ws_max_ids_per_connection: usize,
    pub ws_max_bytes_per_s: u64,
    pub ws_rate_window: Duration,
    pub ws_block: Duration,
    pub ws_max_connections_per_address: usize,
    pub ws_max_connections: usize,
    pub api_token: WriteToken,
    pub cors_allowed_origins: CorsOrigins,
}

/// A setting that cannot be used; the message names the variable.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn invalid(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// Reads variables through `lookup`, so tests can supply their own environment.
struct Reader<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn raw(&self, name: &'static str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|e| invalid(name, format!("{text:?} does not parse: {e}"))),
        }
    }

    /// A whole number that must be at least `min`.
    fn at_least<T>(&self, name: &'static str, default: T, min: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value = self.parse(name, default)?;
        if value < min {
            return Err(invalid(name, format!("{value} is below the minimum {min}")));
        }
        Ok(value)
    }

    fn within<T>(&self, name: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value = self.at_least(name, default, min)?;
        if value > max {
            return Err(invalid(name, format!("{value} is above the maximum {max}")));
        }
        Ok(value)
    }
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let r = Reader { lookup };
        let database_url = r.raw("DATABASE_URL").ok_or_else(|| {
            invalid(
                "DATABASE_URL",
                "is not set (scripts/run starts a private local PostgreSQL and sets it)",
            )
        })?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(invalid(
                "DATABASE_URL",
                "must start with postgres:// or postgresql://",
            ));
        }
        // The writer's driver reads the URL too; what it cannot read must stop the start.
        match database_url.parse::<tokio_postgres::Config>() {
            Err(e) => return Err(invalid("DATABASE_URL", format!("cannot be read: {e}"))),
            Ok(c)
                if !matches!(
                    c.get_ssl_mode(),
                    tokio_postgres::config::SslMode::Disable
                        | tokio_postgres::config::SslMode::Prefer
                ) =>
            {
                return Err(invalid(
                    "DATABASE_URL",
                    "asks for TLS (sslmode=require), which the writer does not speak: use a local \
                     socket, a private network or a TLS-terminating proxy",
                ))
            }
            Ok(_) => {}
        }
        let secs = Duration::from_secs;
        let num_threads = r.at_least("NUM_THREADS", num_cpus::get() * THREADS_PER_CPU, 1)?;
        let default_pool = u32::try_from(num_threads).unwrap_or(u32::MAX);
        let config = Config {
            database_url,
            listen_addr: r.parse("LISTEN_ADDR", DEFAULT_LISTEN_ADDR)?,
            port: r.parse("PORT", DEFAULT_PORT)?,
            heartbeat_interval: secs(r.at_least(
                "HEARTBEAT_INTERVAL",
                DEFAULT_HEARTBEAT_INTERVAL_S,
                1,
            )?),
            client_timeout: secs(r.at_least("CLIENT_TIMEOUT_S", DEFAULT_CLIENT_TIMEOUT_S, 1)?),
            purge_interval: secs(r.at_least("PURGE_INTERVAL_S", DEFAULT_PURGE_INTERVAL_S, 1)?),
            log_expiry: hours(
                "LOG_EXPIRY_H",
                r.parse("LOG_EXPIRY_H", DEFAULT_LOG_EXPIRY_H)?,
            )?,
            derive_interval: match r.parse("DERIVE_INTERVAL_S", DEFAULT_DERIVE_INTERVAL_S)? {
                0 => None,
                s => Some(secs(s)),
            },
            derive_max_busy_pct: r.within(
                "DERIVE_MAX_BUSY_PCT",
                DEFAULT_DERIVE_MAX_BUSY_PCT,
                1,
                100,
            )?,
            derived_retention: hours(
                "DERIVED_RETENTION_D",
                r.at_least("DERIVED_RETENTION_D", DEFAULT_DERIVED_RETENTION_D, 1)?
                    .saturating_mul(24),
            )?,
            finality_stall: secs(r.at_least("FINALITY_STALL_S", DEFAULT_FINALITY_STALL_S, 1)?),
            max_pending_connections: r.at_least(
                "MAX_PENDING_CONNECTIONS",
                DEFAULT_MAX_PENDING_CONNECTIONS,
                1,
            )?,
            ws_max_payload: r.at_least("WS_MAX_PAYLOAD", DEFAULT_WS_MAX_PAYLOAD, 64)?,
            num_threads,
            db_pool_size: r.at_least("DB_POOL_SIZE", default_pool, 1)?,
            db_batch_size: r.at_least("DB_BATCH_SIZE", DEFAULT_DB_BATCH_SIZE, 1)?,
            db_writers: r.at_least("DB_WRITERS", DEFAULT_DB_WRITERS, 1)?,
            db_save_latency: Duration::from_millis(r.at_least(
                "DB_SAVE_LATENCY_MS",
                DEFAULT_DB_SAVE_LATENCY_MS,
                1,
            )?),
            write_queue_max_bytes: r.at_least(
                "WRITE_QUEUE_MAX_BYTES",
                DEFAULT_WRITE_QUEUE_MAX_BYTES,
                1,
            )?,
            cache_update_timeout: secs(r.at_least(
                "CACHE_UPDATE_TIMEOUT_S",
                DEFAULT_CACHE_UPDATE_TIMEOUT_S,
                1,
            )?),
            cache_update_interval: Duration::from_millis(r.at_least(
                "CACHE_UPDATE_INTERVAL_MS",
                DEFAULT_CACHE_UPDATE_INTERVAL_MS,
                1,
            )?),
            cache_expiry: secs(r.at_least("CACHE_EXPIRY_S", DEFAULT_CACHE_EXPIRY_S, 1)?),
            shutdown_timeout: secs(r.at_least(
                "SHUTDOWN_TIMEOUT_S",
                DEFAULT_SHUTDOWN_TIMEOUT_S,
                1,
            )?),
            query_timeout: Duration::from_millis(r.at_least(
                "QUERY_TIMEOUT_MS",
                DEFAULT_QUERY_TIMEOUT_MS,
                1,
            )?),
            db_connect_timeout: secs(r.at_least(
                "DB_CONNECT_TIMEOUT_S",
                DEFAULT_DB_CONNECT_TIMEOUT_S,
                1,
            )?),
            db_write_timeout: Duration::from_millis(r.at_least(
                "DB_WRITE_TIMEOUT_MS",
                DEFAULT_DB_WRITE_TIMEOUT_MS,
                100,
            )?),
            instance_heartbeat: secs(r.at_least(
                "INSTANCE_HEARTBEAT_S",
                DEFAULT_INSTANCE_HEARTBEAT_S,
                1,
            )?),
            instance_dead_after: secs(r.at_least(
                "INSTANCE_DEAD_AFTER_S",
                DEFAULT_INSTANCE_DEAD_AFTER_S,
                1,
            )?),
            export_timeout: secs(r.at_least("EXPORT_TIMEOUT_S", DEFAULT_EXPORT_TIMEOUT_S, 1)?),
            api_max_body_bytes: r.at_least("API_MAX_BODY_BYTES", DEFAULT_API_MAX_BODY_BYTES, 1)?,
            assets_path: r.raw("ASSETS_PATH").map(PathBuf::from),
            trusted_proxies: r.parse("TRUSTED_PROXIES", CidrList::default())?,
            trusted_proxy_header: r.parse("TRUSTED_PROXY_HEADER", ProxyHeader::Auto)?,
            allowed_node_ips: r.parse("ALLOWED_NODE_IPS", CidrList::default())?,
            ws_max_ids_per_connection: r.at_least(
                "WS_MAX_IDS_PER_CONNECTION",
                DEFAULT_WS_MAX_IDS_PER_CONNECTION,
                1,
            )?,
            ws_max_bytes_per_s: r.parse("WS_MAX_BYTES_PER_S", DEFAULT_WS_MAX_BYTES_PER_S)?,
            ws_rate_window: secs(r.at_least("WS_RATE_WINDOW_S", DEFAULT_WS_RATE_WINDOW_S, 1)?),
            ws_block: secs(r.parse("WS_BLOCK_S", DEFAULT_WS_BLOCK_S)?),
            ws_max_connections_per_address: r.parse(
                "WS_MAX_CONNECTIONS_PER_ADDRESS",
                DEFAULT_WS_MAX_CONNECTIONS_PER_ADDRESS,
            )?,
            ws_max_connections: r.parse("WS_MAX_CONNECTIONS", DEFAULT_WS_MAX_CONNECTIONS)?,
            api_token: WriteToken(r.raw("API_TOKEN").map(token).transpose()?),
            cors_allowed_origins: r.parse("CORS_ALLOWED_ORIGINS", CorsOrigins::default())?,
        };
        config.check_combinations()?;
        Ok(config)
    }

    /// Settings that parse one by one but cannot work together.
    fn check_combinations(&self) -> Result<(), ConfigError> {
        if self.client_timeout < self.heartbeat_interval {
            return Err(invalid(
                "CLIENT_TIMEOUT_S",
                format!(
                    "{}s is shorter than HEARTBEAT_INTERVAL ({}s), at which liveness is checked",
                    self.client_timeout.as_secs(),
                    self.heartbeat_interval.as_secs()
                ),
            ));
        }
        // A largest message must fit in the write queue, or its socket would wait for ever.
        if self.write_queue_max_bytes < self.ws_max_payload * 2 {
            return Err(invalid(
                "WRITE_QUEUE_MAX_BYTES",
                format!(
                    "{} must be at least twice WS_MAX_PAYLOAD ({})",
                    self.write_queue_max_bytes, self.ws_max_payload
                ),
            ));
        }
        if u32::try_from(self.ws_max_payload).is_err() {
            return Err(invalid("WS_MAX_PAYLOAD", "must be below 4 GiB"));
        }
        // One late heartbeat must not have an instance declared dead.
        if self.instance_dead_after < self.instance_heartbeat * 3 {
            return Err(invalid(
                "INSTANCE_DEAD_AFTER_S",
                format!(
                    "{}s is less than three INSTANCE_HEARTBEAT_S ({}s): a live instance would be ended",
                    self.instance_dead_after.as_secs(),
                    self.instance_heartbeat.as_secs()
                ),
            ));
        }
        if self.cache_expiry < self.cache_update_interval {
            return Err(invalid(
                "CACHE_EXPIRY_S",
                "is shorter than CACHE_UPDATE_INTERVAL_MS: entries would expire before refresh",
            ));
        }
        Ok(())
    }
}

/// A token must be sendable in a header as `Bearer <token>`.
fn token(text: String) -> Result<String, ConfigError> {
    if text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text)
    } else {
        Err(invalid(
            "API_TOKEN",
            "must be printable ASCII without spaces (it is sent in a header)",
        ))
    }
}

fn hours(name: &'static str, h: u64) -> Result<Duration, ConfigError> {
    h.checked_mul(3600)
        .map(Duration::from_secs)
        .ok_or_else(|| invalid(name, format!("{h} hours is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.entry("DATABASE_URL".into())
            .or_insert_with(|| "postgres://postgres@127.0.0.1/db".into());
        Config::from_lookup(move |name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.port, 8080);
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.client_timeout, Duration::from_secs(10));
        assert_eq!(c.purge_interval, Duration::from_secs(600));
        assert_eq!(c.log_expiry, Duration::from_secs(280_320 * 3600));
        assert_eq!(c.max_pending_connections, 8192);
        assert_eq!(c.ws_max_payload, 524_288);
        assert_eq!(c.num_threads, num_cpus::get() * 3);
        assert_eq!(c.db_pool_size as usize, c.num_threads);
        assert_eq!(c.db_batch_size, 4096);
        assert_eq!(c.db_writers, 2);
        assert_eq!(c.db_save_latency, Duration::from_millis(100));
        assert_eq!(c.cache_update_interval, Duration::from_millis(1000));
        assert_eq!(c.db_connect_timeout, Duration::from_secs(5));
        assert_eq!(c.db_write_timeout, Duration::from_secs(10));
        assert_eq!(c.instance_heartbeat, Duration::from_secs(5));
        assert_eq!(c.instance_dead_after, Duration::from_secs(30));
        assert_eq!(c.export_timeout, Duration::from_secs(3600));
        assert_eq!(c.assets_path, None);
        assert!(c.trusted_proxies.is_empty() && c.allowed_node_ips.is_empty());
        assert_eq!(c.trusted_proxy_header, ProxyHeader::Auto);
        assert_eq!(c.ws_max_ids_per_connection, 20);
        assert_eq!(c.ws_max_bytes_per_s, 262_144);
        assert_eq!(c.ws_rate_window, Duration::from_secs(10));
        assert_eq!(c.ws_block, Duration::from_secs(600));
        assert_eq!(c.ws_max_connections_per_address, 256);
        assert_eq!(c.ws_max_connections, 20_000);
        assert!(c.api_token.0.is_none());
        assert_eq!(c.cors_allowed_origins, CorsOrigins::default());
    }

    #[test]
    fn access_settings_are_checked() {
        for (var, bad) in [
            ("TRUSTED_PROXIES", "10.0.0.0/40"),
            ("ALLOWED_NODE_IPS", "my-laptop"),
            ("TRUSTED_PROXY_HEADER", "x-real-ip"),
            ("API_TOKEN", "two words"),
            ("CORS_ALLOWED_ORIGINS", "example.com"),
            ("WS_MAX_IDS_PER_CONNECTION", "0"),
            ("WS_MAX_BYTES_PER_S", "-1"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().variable, var, "{bad}");
        }
        let c = config(&[
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.1"),
            ("API_TOKEN", "s3cr3t"),
        ])
        .unwrap();
        assert!(c.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
        assert_eq!(c.api_token.0.as_deref(), Some("s3cr3t"));
        assert!(
            !format!("{c:?}").contains("s3cr3t"),
            "Debug shows the token"
        );
    }

    #[test]
    fn unparseable_value_names_the_variable() {
        let err = config(&[("DB_BATCH_SIZE", "lots")]).unwrap_err();
        assert_eq!(err.variable, "DB_BATCH_SIZE");
        assert!(err.to_string().contains("\"lots\""), "{err}");
        assert_eq!(config(&[("PORT", "70000")]).unwrap_err().variable, "PORT");
        assert_eq!(
            config(&[("LISTEN_ADDR", "localhost:1")])
                .unwrap_err()
                .variable,
            "LISTEN_ADDR"
        );
    }

    #[test]
    fn zero_where_zero_cannot_work_is_refused() {
        assert_eq!(
            config(&[("DB_BATCH_SIZE", "0")]).unwrap_err().variable,
            "DB_BATCH_SIZE"
        );
        assert_eq!(
            config(&[("HEARTBEAT_INTERVAL", "0")]).unwrap_err().variable,
            "HEARTBEAT_INTERVAL"
        );
        // 0 hours of expiry is meaningful: purge everything received so far.
        assert_eq!(
            config(&[("LOG_EXPIRY_H", "0")]).unwrap().log_expiry,
            Duration::ZERO
        );
    }

    #[test]
    fn a_share_of_the_time_is_a_percentage() {
        for bad in ["0", "101", "-5", "50%"] {
            assert_eq!(
                config(&[("DERIVE_MAX_BUSY_PCT", bad)])
                    .unwrap_err()
                    .variable,
                "DERIVE_MAX_BUSY_PCT",
                "{bad}"
            );
        }
        assert_eq!(
            config(&[("DERIVE_MAX_BUSY_PCT", "100")])
                .unwrap()
                .derive_max_busy_pct,
            100
        );
        assert_eq!(config(&[]).unwrap().derive_max_busy_pct, 20);
    }

    #[test]
    fn impossible_combinations_are_refused() {
        let err = config(&[("CLIENT_TIMEOUT_S", "3"), ("HEARTBEAT_INTERVAL", "5")]).unwrap_err();
        assert_eq!(err.variable, "CLIENT_TIMEOUT_S");
        let err = config(&[
            ("WS_MAX_PAYLOAD", "1000000"),
            ("WRITE_QUEUE_MAX_BYTES", "1000000"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "WRITE_QUEUE_MAX_BYTES");
    }

    #[test]
    fn a_database_url_asking_for_tls_is_refused() {
        let e = config(&[("DATABASE_URL", "postgres://u@h/db?sslmode=require")]).unwrap_err();
        assert_eq!(e.variable, "DATABASE_URL");
        assert!(e.problem.contains("TLS"), "{}", e.problem);
        assert!(config(&[("DATABASE_URL", "postgres://u@h/db?sslmode=prefer")]).is_ok());
    }

    #[test]
    fn missing_or_foreign_database_url_is_refused() {
        let err = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
        let err = config(&[("DATABASE_URL", "mysql://x")]).unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");
    }

    #[test]
    fn the_readme_table_and_env_example_are_the_settings() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("| variable | default | meaning |")
            .expect("the README's settings table");
        let table: Vec<&str> = readme[start..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        let settings: Vec<String> = SETTINGS
            .iter()
            .map(|s| format!("| `{}` | {} | {} |", s.name, s.default, s.meaning))
            .collect();
        assert_eq!(table, settings, "README's table = SETTINGS");
        let example = include_str!("../.env.example");
        for s in SETTINGS {
            assert!(
                example
                    .lines()
                    .any(|l| l.starts_with(&format!("{}=", s.name))),
                ".env.example lacks {}",
                s.name
            );
        }
    }

    #[test]
    fn arguments_are_help_version_or_an_error_naming_them() {
        let args = |a: &[&str]| Invocation::from_args(a.iter().map(std::ffi::OsString::from));
        assert_eq!(args(&[]), Ok(Invocation::Run));
        assert_eq!(args(&["--help"]), Ok(Invocation::Help));
        assert_eq!(args(&["-h"]), Ok(Invocation::Help));
        assert_eq!(args(&["rebuild"]), Ok(Invocation::Rebuild));
        assert!(args(&["rebuild", "now"]).unwrap_err().contains("\"now\""));
        assert_eq!(args(&["--version"]), Ok(Invocation::Version));
        assert!(args(&["--port=9"]).unwrap_err().contains("\"--port=9\""));
        assert!(args(&["--help", "extra"])
            .unwrap_err()
            .contains("\"extra\""));
        let help = help();
        for s in SETTINGS {
            assert!(help.contains(s.name), "--help lacks {}", s.name);
        }
        assert!(!help.contains('`'));
    }

    #[test]
    fn every_variable_read_is_a_setting() {
        // Reading the configuration asks only for variables the table lists.
        let asked = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            (name == "DATABASE_URL").then(|| "postgres://u@h/db".to_owned())
        });
        for name in asked.borrow().iter() {
            assert!(
                SETTINGS.iter().any(|s| s.name == name),
                "{name} is read but not in SETTINGS"
            );
        }
        assert!(
            asked.borrow().len() >= SETTINGS.len() - 1,
            "RUST_LOG aside, all are read"
        );
    }
}

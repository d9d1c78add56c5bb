//! Who may open a telemetry socket, decided before the upgrade: the allow-list
//! (`ALLOWED_NODE_IPS`), addresses blocked for sending too fast (`WS_BLOCK_S`), and the
//! connection caps per address and in total. An admitted connection holds a `Ticket`; dropping
//! it frees its place. Every refusal is counted by reason and logged at most once per address
//! per minute. The state is this instance's own: with several instances, each limits what it
//! sees.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

use super::cidr::{limit_key, CidrList};
use crate::metrics::Metrics;

/// How often one address's refusals are logged.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Entries of the blocked and logged maps above which expired ones are swept.
const SWEEP_ABOVE: usize = 4096;

#[derive(Clone, Debug)]
pub struct GateLimits {
    /// Empty: everyone may send.
    pub allowed: CidrList,
    /// 0: no cap.
    pub per_address: usize,
    /// 0: no cap.
    pub total: usize,
    pub block_for: Duration,
}

/// Why a socket was refused before the upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not in `ALLOWED_NODE_IPS`.
    NotAllowed,
    /// Blocked for a while after sending faster than `WS_MAX_BYTES_PER_S`.
    Blocked,
    /// `WS_MAX_CONNECTIONS_PER_ADDRESS` reached.
    AddressFull,
    /// `WS_MAX_CONNECTIONS` reached.
    ServerFull,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::NotAllowed,
        Refusal::Blocked,
        Refusal::AddressFull,
        Refusal::ServerFull,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "not_allowed",
            Refusal::Blocked => "blocked",
            Refusal::AddressFull => "address_full",
            Refusal::ServerFull => "server_full",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NotAllowed | Refusal::Blocked => StatusCode::FORBIDDEN,
            Refusal::AddressFull | Refusal::ServerFull => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotAllowed => "this address may not send telemetry here",
            Refusal::Blocked => "this address sent too fast and is blocked for a while",
            Refusal::AddressFull => "too many connections from this address",
            Refusal::ServerFull => "too many connections, try again later",
        }
    }
}

#[derive(Default)]
struct State {
    open: HashMap<IpAddr, usize>,
    total: usize,
    blocked: HashMap<IpAddr, Instant>,
    logged: HashMap<IpAddr, Instant>,
}

pub struct Gate {
    limits: GateLimits,
    state: Mutex<State>,
    metrics: Metrics,
}

/// An admitted connection's place; dropping it frees the place.
pub struct Ticket {
    gate: Arc<Gate>,
    key: IpAddr,
}

impl Gate {
    pub fn new(limits: GateLimits, metrics: Metrics) -> Gate {
        Gate {
            limits,
            state: Mutex::new(State::default()),
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is one statement.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip`, or says why not (counted and, rate-limited, logged).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let key = limit_key(ip);
        let mut state = self.state();
        let refusal = if !self.limits.allowed.is_empty() && !self.limits.allowed.contains(ip) {
            Some(Refusal::NotAllowed)
        } else if state
            .blocked
            .get(&key)
            .is_some_and(|until| Instant::now() < *until)
        {
            Some(Refusal::Blocked)
        } else if self.limits.total > 0 && state.total >= self.limits.total {
            Some(Refusal::ServerFull)
        } else if self.limits.per_address > 0
            && state.open.get(&key).copied().unwrap_or(0) >= self.limits.per_address
        {
            Some(Refusal::AddressFull)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.metrics
                .ws_refused
                .with_label_values(&[refusal.label()])
                .inc();
            if should_log(&mut state.logged, key) {
                log::warn!(
                    "telemetry connection refused: ip={ip} reason={} (logged once a minute per address)",
                    refusal.label()
                );
            }
            return Err(refusal);
        }
        *state.open.entry(key).or_default() += 1;
        state.total += 1;
        Ok(Ticket {
            gate: self.clone(),
            key,
        })
    }

    /// Refuses `ip` for `WS_BLOCK_S` from now.
    pub fn block(&self, ip: IpAddr) {
        let key = limit_key(ip);
        let mut state = self.state();
        let now = Instant::now();
        if state.blocked.len() > SWEEP_ABOVE {
            state.blocked.retain(|_, until| *until > now);
        }
        state.blocked.insert(key, now + self.limits.block_for);
        log::warn!(
            "telemetry address blocked: ip={ip} seconds={}",
            self.limits.block_for.as_secs()
        );
    }

    fn release(&self, key: IpAddr) {
        let mut state = self.state();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                state.open.remove(&key);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.release(self.key);
    }
}

/// True at most once per `LOG_EVERY` for one address.
fn should_log(logged: &mut HashMap<IpAddr, Instant>, key: IpAddr) -> bool {
    let now = Instant::now();
    if logged.len() > SWEEP_ABOVE {
        logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
    }
    match logged.get(&key) {
        Some(at) if now.duration_since(*at) < LOG_EVERY => false,
        _ => {
            logged.insert(key, now);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(allowed: &str, per_address: usize, total: usize, block_ms: u64) -> Arc<Gate> {
        Arc::new(Gate::new(
            GateLimits {
                allowed: allowed.parse().unwrap(),
                per_address,
                total,
                block_for: Duration::from_millis(block_ms),
            },
            Metrics::new(),
        ))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn refused(gate: &Gate, reason: Refusal) -> u64 {
        gate.metrics
            .ws_refused
            .with_label_values(&[reason.label()])
            .get()
    }

    #[test]
    fn caps_count_open_connections_and_free_on_drop() {
        let g = gate("", 2, 3, 0);
        let a1 = g.admit(ip("1.1.1.1")).unwrap();
        let _a2 = g.admit(ip("1.1.1.1")).unwrap();
        assert_eq!(g.admit(ip("1.1.1.1")).err(), Some(Refusal::AddressFull));
        let _b = g.admit(ip("2.2.2.2")).unwrap();
        assert_eq!(g.admit(ip("3.3.3.3")).err(), Some(Refusal::ServerFull));
        drop(a1);
        let _a3 = g.admit(ip("1.1.1.1")).unwrap();
        assert_eq!(refused(&g, Refusal::AddressFull), 1);
        assert_eq!(refused(&g, Refusal::ServerFull), 1);
    }

    #[test]
    fn ipv6_neighbours_share_a_cap() {
        let g = gate("", 1, 0, 0);
        let _a = g.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(g.admit(ip("2001:db8::2")).err(), Some(Refusal::AddressFull));
        assert!(g.admit(ip("2001:db8:0:1::1")).is_ok());
    }

    #[test]
    fn allow_list_and_blocks() {
        let g = gate("10.0.0.0/8", 0, 0, 200);
        assert_eq!(g.admit(ip("11.0.0.1")).err(), Some(Refusal::NotAllowed));
        assert!(g.admit(ip("10.0.0.1")).is_ok());
        g.block(ip("10.0.0.1"));
        assert_eq!(g.admit(ip("10.0.0.1")).err(), Some(Refusal::Blocked));
        assert!(g.admit(ip("10.0.0.2")).is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(g.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_address() {
        let mut logged = HashMap::new();
        assert!(should_log(&mut logged, ip("1.1.1.1")));
        assert!(!should_log(&mut logged, ip("1.1.1.1")));
        assert!(should_log(&mut logged, ip("2.2.2.2")));
    }
}

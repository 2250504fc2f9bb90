//! Admission control: the bounded life cycle of a publisher connection.
//!
//! Sans-IO: [`Admission`] only counts and decides; the I/O shell
//! ([`io::Publisher`](crate::io::Publisher)) asks it at every step and
//! closes the QUIC connection with the [`Refusal`]'s close code when it says no.
//!
//! ```text
//!             offer()                 handshake_done(peer)          hello_done()
//! Incoming ──────────▶ Handshaking ───────────────────▶ AwaitingHello ──────────▶ Live
//!    │ refuse (Busy)      │ timeout / failure              │ hello timeout         │ silent (evicted),
//!    ▼                    ▼                                ▼ unauthorized          ▼ protocol error, EOF
//!  (no allocation)     end()                             end()                   end()
//! ```
//!
//! Every state has its own cap, checked *before* the state's resources are
//! allocated: an `Incoming` over the handshake cap is refused before quinn
//! allocates a connection; a handshake over the per-identity cap is closed
//! before a stream is accepted; a hello over the session cap is refused
//! before the session's shadow copy is allocated. See the crate docs for the
//! table of bounds and defaults.
//!
//! ```
//! use venom_net::proto::admission::{Admission, AdmissionLimits, Refusal, Stage};
//! use venom_net::proto::policy::PeerId;
//! let limits = AdmissionLimits { max_handshaking: 1, per_identity: 1, ..AdmissionLimits::default() };
//! let mut a = Admission::new(limits, 64);
//! let (now, ip) = (std::time::Instant::now(), std::net::Ipv4Addr::LOCALHOST.into());
//! a.offer()?;
//! assert_eq!(a.offer(), Err(Refusal::Busy)); // one handshake at a time
//! let peer = PeerId::named("m1");
//! a.handshake_done(1, &peer, ip, now)?; // connection 1
//! a.hello_done(1)?;
//! a.offer()?;
//! assert_eq!(a.handshake_done(2, &peer, ip, now), Err(Refusal::IdentityLimit)); // m1 already holds its one slot
//! a.end(1, Stage::Live);
//! # Ok::<(), Refusal>(())
//! ```

use crate::proto::policy::PeerId;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why a connection was refused or ended by the publisher. Each has its
/// own QUIC application close code, so the mirror gets it typed
/// ([`Error::Refused`](crate::error::Error::Refused)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A cap on connections (handshaking, awaiting hello or live) is reached.
    Busy,
    /// The peer's identity (or, for anonymous peers, its source address)
    /// already holds its maximum of connections.
    IdentityLimit,
    /// The policy lists nothing for this identity, or not this subscription.
    Unauthorized,
    /// No complete hello within the hello deadline.
    HelloTimeout,
    /// An update stayed unacknowledged (or a write made no progress) for the liveness deadline.
    Silent,
}

impl Refusal {
    /// Every refusal, in close-code order.
    pub const ALL: [Refusal; 5] =
        [Refusal::Busy, Refusal::IdentityLimit, Refusal::Unauthorized, Refusal::HelloTimeout, Refusal::Silent];

    /// The QUIC application close code (0 and 1 are `CLOSED` and `PROTOCOL_ERROR`).
    pub fn code(self) -> u32 {
        match self {
            Refusal::Busy => 2,
            Refusal::IdentityLimit => 3,
            Refusal::Unauthorized => 4,
            Refusal::HelloTimeout => 5,
            Refusal::Silent => 6,
        }
    }

    /// The refusal a close code stands for.
    pub fn from_code(code: u64) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| u64::from(r.code()) == code)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Busy => "publisher busy (connection cap reached)",
            Refusal::IdentityLimit => "identity connection limit reached",
            Refusal::Unauthorized => "not authorized",
            Refusal::HelloTimeout => "no hello before the deadline",
            Refusal::Silent => "evicted: no acknowledgement before the liveness deadline",
        })
    }
}

/// Caps and deadlines of the connection life cycle (the live-session cap is
/// [`PublisherConfig::max_mirrors`](crate::proto::publisher::PublisherConfig::max_mirrors)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections in the TLS handshake at once; more are refused before quinn allocates them.
    pub max_handshaking: usize,
    /// Connections past the handshake that have not sent a complete hello.
    pub max_awaiting_hello: usize,
    /// Connections (awaiting hello or live) per authenticated identity.
    pub per_identity: usize,
    /// Connections (awaiting hello or live) per source IP address, for
    /// anonymous peers (no client certificate), which have no identity.
    pub per_address: usize,
    /// A handshake not finished within this is dropped.
    pub handshake_timeout: Duration,
    /// A connection that has not sent a complete hello within this (from
    /// the end of the handshake) is closed with [`Refusal::HelloTimeout`].
    pub hello_timeout: Duration,
    /// When the awaiting-hello cap is full, a new connection closes the
    /// oldest one waiting for its hello if that one has waited at least
    /// this long (a mirror sends its hello within one round trip, so a
    /// flood of stalled hellos cannot keep new mirrors out for a whole
    /// `hello_timeout`). Counted as [`Refusal::HelloTimeout`].
    pub hello_grace: Duration,
    /// A live session whose oldest update stays unacknowledged this long,
    /// or whose send makes no progress this long, is closed with [`Refusal::Silent`].
    /// Must exceed the time to transfer `max_in_flight` bytes on the slowest link served.
    pub liveness_timeout: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_handshaking: 16,
            max_awaiting_hello: 16,
            per_identity: 4,
            per_address: 16,
            handshake_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(3),
            hello_grace: Duration::from_millis(250),
            liveness_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a connection is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// TLS handshake in progress.
    Handshaking,
    /// Handshake done, hello not yet complete.
    AwaitingHello,
    /// Session established.
    Live,
}

/// Admission counters, for operators ([`io::Publisher::admission`](crate::io::Publisher::admission)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Connections now handshaking.
    pub handshaking: usize,
    /// Connections now awaiting their hello.
    pub awaiting_hello: usize,
    /// Live sessions now.
    pub live: usize,
    /// Sessions that became live, in total.
    pub admitted: u64,
    /// Handshakes that failed or timed out.
    pub handshake_failures: u64,
    /// Refused or closed by reason: `Busy`, `IdentityLimit`, `Unauthorized`,
    /// `HelloTimeout`, `Silent` (indexed like [`Refusal::ALL`]).
    pub refused: [u64; 5],
    /// Sessions closed for a protocol violation.
    pub protocol_errors: u64,
    /// Connection attempts answered with a QUIC Retry (address validation under load).
    pub retries: u64,
}

impl AdmissionStats {
    /// Refusals of one kind so far.
    pub fn refused(&self, r: Refusal) -> u64 {
        self.refused[r.code() as usize - 2]
    }
}

/// The admission state machine of one publisher (see the [module docs](self)).
///
/// Connections are named by ids the caller chooses (unique among live ones).
///
/// Invariant: `stats.handshaking` and `stats.live` equal the connections the
/// shell holds in those stages (every successful transition is matched by
/// one `end`); `pending` holds exactly the AwaitingHello connections (so
/// `stats.awaiting_hello == pending.len()`), oldest first; `keys` maps
/// every AwaitingHello and Live connection to its limit key (identity or
/// address) and `per_key[k]` counts the connections mapped to `k`.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    max_live: usize,
    keys: HashMap<u64, String>,
    per_key: HashMap<String, usize>,
    pending: VecDeque<(u64, Instant)>,
    stats: AdmissionStats,
}

impl Admission {
    /// A publisher allowing `max_live` live sessions.
    pub fn new(limits: AdmissionLimits, max_live: usize) -> Self {
        Admission {
            limits,
            max_live,
            keys: HashMap::new(),
            per_key: HashMap::new(),
            pending: VecDeque::new(),
            stats: AdmissionStats::default(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &AdmissionLimits {
        &self.limits
    }

    /// Counters.
    pub fn stats(&self) -> &AdmissionStats {
        &self.stats
    }

    /// Records a refusal decided elsewhere (policy, deadlines).
    pub fn count(&mut self, r: Refusal) {
        self.stats.refused[r.code() as usize - 2] += 1;
    }

    /// Records a session closed for breaking the protocol.
    pub fn count_protocol_error(&mut self) {
        self.stats.protocol_errors += 1;
    }

    fn refuse<T>(&mut self, r: Refusal) -> Result<T, Refusal> {
        self.count(r);
        Err(r)
    }

    /// Whether to answer a connection attempt from an address it has not
    /// proven it owns with a QUIC Retry first: once half the handshake
    /// slots are taken, so spoofed-source packets (which never answer a
    /// Retry) cannot hold handshake slots for `handshake_timeout`.
    pub fn wants_retry(&mut self, address_validated: bool) -> bool {
        let load = self.stats.handshaking >= self.limits.max_handshaking / 2;
        let retry = !address_validated && load;
        self.stats.retries += u64::from(retry);
        retry
    }

    /// A new connection attempt: admitted into `Handshaking` while fewer
    /// than `max_handshaking` handshake and a live slot is free.
    pub fn offer(&mut self) -> Result<(), Refusal> {
        if self.stats.handshaking >= self.limits.max_handshaking || self.stats.live >= self.max_live {
            return self.refuse(Refusal::Busy);
        }
        self.stats.handshaking += 1;
        Ok(())
    }

    /// `Handshaking` → `AwaitingHello` for connection `id` of `peer` from
    /// address `ip`, within the per-identity (or, for anonymous peers,
    /// per-address) and awaiting-hello caps. When the latter is full, the
    /// oldest connection awaiting its hello for at least `hello_grace` is
    /// evicted instead: its slot is released now and its id returned (the
    /// shell closes it with [`Refusal::HelloTimeout`]). On `Err` the
    /// connection left `Handshaking` (the shell closes it; no `end` call).
    pub fn handshake_done(&mut self, id: u64, peer: &PeerId, ip: IpAddr, now: Instant) -> Result<Option<u64>, Refusal> {
        self.stats.handshaking -= 1;
        let (key, limit) = match peer.limit_key() {
            Some(k) => (k, self.limits.per_identity),
            None => (format!("ip:{ip}"), self.limits.per_address),
        };
        if self.per_key.get(&key).is_some_and(|&n| n >= limit) {
            return self.refuse(Refusal::IdentityLimit);
        }
        let mut evicted = None;
        if self.pending.len() >= self.limits.max_awaiting_hello {
            match self.pending.front() {
                Some(&(old, since)) if now.saturating_duration_since(since) >= self.limits.hello_grace => {
                    self.release_pending(old);
                    self.count(Refusal::HelloTimeout);
                    evicted = Some(old);
                }
                _ => return self.refuse(Refusal::Busy),
            }
        }
        *self.per_key.entry(key.clone()).or_insert(0) += 1;
        self.keys.insert(id, key);
        self.pending.push_back((id, now));
        self.stats.awaiting_hello = self.pending.len();
        Ok(evicted)
    }

    /// `Handshaking` → closed for `r`, decided by the caller right after the
    /// handshake (e.g. an identity the policy does not list): counted as
    /// `r`, not as a handshake failure.
    pub fn refuse_after_handshake(&mut self, r: Refusal) {
        self.stats.handshaking -= 1;
        self.count(r);
    }

    /// Removes `id` from AwaitingHello (with its limit count); false if it was not there.
    fn release_pending(&mut self, id: u64) -> bool {
        let Some(i) = self.pending.iter().position(|p| p.0 == id) else { return false };
        self.pending.remove(i);
        self.stats.awaiting_hello = self.pending.len();
        self.forget_key(id);
        true
    }

    fn forget_key(&mut self, id: u64) {
        if let Some(k) = self.keys.remove(&id)
            && let Some(n) = self.per_key.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                self.per_key.remove(&k);
            }
        }
    }

    /// `AwaitingHello` → `Live` for `id`, within the live cap. `Err(Busy)`:
    /// still AwaitingHello (the shell closes it, calls `end` and
    /// [`count`](Self::count)s the refusal); `Err(HelloTimeout)`: `id` was
    /// evicted meanwhile (already released and counted).
    pub fn hello_done(&mut self, id: u64) -> Result<(), Refusal> {
        let Some(i) = self.pending.iter().position(|p| p.0 == id) else { return Err(Refusal::HelloTimeout) };
        if self.stats.live >= self.max_live {
            return Err(Refusal::Busy);
        }
        self.pending.remove(i);
        self.stats.awaiting_hello = self.pending.len();
        self.stats.live += 1;
        self.stats.admitted += 1;
        Ok(())
    }

    /// Connection `id` left the life cycle from `stage` (closed for any
    /// reason). `Handshaking` ends count as handshake failures; ending an
    /// evicted AwaitingHello connection is a no-op (its slot is already free).
    pub fn end(&mut self, id: u64, stage: Stage) {
        match stage {
            Stage::Handshaking => {
                self.stats.handshaking -= 1;
                self.stats.handshake_failures += 1;
            }
            Stage::AwaitingHello => {
                self.release_pending(id);
            }
            Stage::Live => {
                self.stats.live -= 1;
                self.forget_key(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn every_stage_is_capped_and_released() {
        let limits = AdmissionLimits {
            max_handshaking: 2,
            max_awaiting_hello: 1,
            per_identity: 2,
            hello_grace: Duration::from_secs(1),
            ..Default::default()
        };
        let mut a = Admission::new(limits, 2);
        let (p, q) = (PeerId::named("p"), PeerId::named("q"));
        let t0 = Instant::now();
        a.offer().unwrap();
        a.offer().unwrap();
        assert_eq!(a.offer(), Err(Refusal::Busy));
        assert_eq!(a.handshake_done(1, &p, IP, t0), Ok(None));
        assert_eq!(a.handshake_done(2, &q, IP, t0), Err(Refusal::Busy), "awaiting-hello cap, 1 still in its grace");
        a.hello_done(1).unwrap();
        a.offer().unwrap();
        a.handshake_done(3, &p, IP, t0).unwrap();
        a.hello_done(3).unwrap();
        assert_eq!(a.offer(), Err(Refusal::Busy), "live cap");
        a.end(3, Stage::Live);
        a.offer().unwrap();
        a.handshake_done(4, &q, IP, t0).unwrap();
        assert_eq!(a.stats().awaiting_hello, 1);
        a.end(4, Stage::AwaitingHello);
        a.end(1, Stage::Live);
        let s = a.stats();
        assert_eq!((s.handshaking, s.awaiting_hello, s.live), (0, 0, 0));
        assert_eq!(s.refused(Refusal::Busy), 3);
        assert!(a.per_key.is_empty() && a.keys.is_empty());
    }

    #[test]
    fn a_full_hello_stage_evicts_its_oldest_stalled_connection() {
        let limits =
            AdmissionLimits { max_awaiting_hello: 2, hello_grace: Duration::from_millis(100), ..Default::default() };
        let mut a = Admission::new(limits, 64);
        let t0 = Instant::now();
        let (s1, s2, m) = (PeerId::named("s1"), PeerId::named("s2"), PeerId::named("m"));
        for (id, p) in [(1, &s1), (2, &s2)] {
            a.offer().unwrap();
            a.handshake_done(id, p, IP, t0).unwrap();
        }
        a.offer().unwrap();
        assert_eq!(a.handshake_done(3, &m, IP, t0 + Duration::from_millis(50)), Err(Refusal::Busy));
        a.offer().unwrap();
        assert_eq!(a.handshake_done(3, &m, IP, t0 + Duration::from_millis(150)), Ok(Some(1)));
        assert_eq!(a.stats().refused(Refusal::HelloTimeout), 1);
        a.hello_done(3).unwrap();
        assert_eq!(a.hello_done(1), Err(Refusal::HelloTimeout), "evicted");
        a.end(1, Stage::AwaitingHello); // no-op: already released
        a.end(2, Stage::AwaitingHello);
        a.end(3, Stage::Live);
        let s = a.stats();
        assert_eq!((s.handshaking, s.awaiting_hello, s.live), (0, 0, 0));
        assert!(a.per_key.is_empty() && a.keys.is_empty());
    }

    #[test]
    fn identity_limit_spares_other_identities_and_anonymous() {
        let limits = AdmissionLimits { per_identity: 1, ..Default::default() };
        let mut a = Admission::new(limits, 64);
        let (p, q) = (PeerId::named("p"), PeerId::named("q"));
        let now = Instant::now();
        for (id, peer) in [(1, &p), (2, &PeerId::Anonymous), (3, &PeerId::Anonymous), (4, &q)] {
            a.offer().unwrap();
            a.handshake_done(id, peer, IP, now).unwrap();
        }
        a.offer().unwrap();
        assert_eq!(a.handshake_done(5, &p, IP, now), Err(Refusal::IdentityLimit));
        assert_eq!(a.stats().refused(Refusal::IdentityLimit), 1);
        assert_eq!(a.stats().handshaking, 0);
    }

    #[test]
    fn anonymous_peers_are_limited_per_source_address() {
        let limits = AdmissionLimits { per_address: 2, ..Default::default() };
        let mut a = Admission::new(limits, 64);
        let now = Instant::now();
        let other: IpAddr = std::net::Ipv4Addr::new(10, 0, 0, 2).into();
        for id in 1..=2 {
            a.offer().unwrap();
            a.handshake_done(id, &PeerId::Anonymous, IP, now).unwrap();
        }
        a.offer().unwrap();
        assert_eq!(a.handshake_done(3, &PeerId::Anonymous, IP, now), Err(Refusal::IdentityLimit));
        a.offer().unwrap();
        a.handshake_done(4, &PeerId::Anonymous, other, now).unwrap();
        a.offer().unwrap();
        a.handshake_done(5, &PeerId::named("p"), IP, now).unwrap(); // certificate identities count by identity
        for id in [1, 2, 4, 5] {
            a.end(id, Stage::AwaitingHello);
        }
        assert!(a.per_key.is_empty() && a.keys.is_empty());
    }

    #[test]
    fn close_codes_round_trip() {
        for r in Refusal::ALL {
            assert_eq!(Refusal::from_code(r.code().into()), Some(r));
        }
        assert_eq!(Refusal::from_code(0), None);
        assert_eq!(Refusal::from_code(1), None);
    }
}

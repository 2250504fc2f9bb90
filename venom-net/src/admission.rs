//! Admission control: the bounded life cycle of a publisher connection.
//!
//! Sans-IO: [`Admission`] only counts and decides; the I/O shell
//! ([`net::Publisher`](crate::net::Publisher)) asks it at every step and
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
//! use venom_net::admission::{Admission, AdmissionLimits, Refusal, Stage};
//! use venom_net::policy::PeerId;
//! let limits = AdmissionLimits { max_handshaking: 1, per_identity: 1, ..AdmissionLimits::default() };
//! let mut a = Admission::new(limits, 64);
//! a.offer()?;
//! assert_eq!(a.offer(), Err(Refusal::Busy)); // one handshake at a time
//! let peer = PeerId::named("m1");
//! a.handshake_done(&peer)?;
//! a.hello_done()?;
//! a.offer()?;
//! assert_eq!(a.handshake_done(&peer), Err(Refusal::IdentityLimit)); // m1 already holds its one slot
//! a.end(Stage::Live, &peer);
//! # Ok::<(), Refusal>(())
//! ```

use crate::policy::PeerId;
use std::collections::HashMap;
use std::time::Duration;

/// Why a connection was refused or ended by the publisher. Each has its
/// own QUIC application close code, so the mirror gets it typed
/// ([`Error::Refused`](crate::Error::Refused)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A cap on connections (handshaking, awaiting hello or live) is reached.
    Busy,
    /// The peer's identity already holds its maximum of connections.
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
/// [`PublisherConfig::max_mirrors`](crate::PublisherConfig::max_mirrors)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections in the TLS handshake at once; more are refused before quinn allocates them.
    pub max_handshaking: usize,
    /// Connections past the handshake that have not sent a complete hello.
    pub max_awaiting_hello: usize,
    /// Connections (awaiting hello or live) per authenticated identity.
    /// Anonymous peers (no client certificate) are bounded by the global caps only.
    pub per_identity: usize,
    /// A handshake not finished within this is dropped.
    pub handshake_timeout: Duration,
    /// A connection that has not sent a complete hello within this (from
    /// the end of the handshake) is closed with [`Refusal::HelloTimeout`].
    pub hello_timeout: Duration,
    /// A live session whose oldest update stays unacknowledged this long,
    /// or whose send makes no progress this long, is closed with [`Refusal::Silent`].
    pub liveness_timeout: Duration,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            max_handshaking: 16,
            max_awaiting_hello: 16,
            per_identity: 4,
            handshake_timeout: Duration::from_secs(5),
            hello_timeout: Duration::from_secs(3),
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

/// Admission counters, for operators ([`net::Publisher::admission`](crate::net::Publisher::admission)).
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
}

impl AdmissionStats {
    /// Refusals of one kind so far.
    pub fn refused(&self, r: Refusal) -> u64 {
        self.refused[r.code() as usize - 2]
    }
}

/// The admission state machine of one publisher (see the [module docs](self)).
///
/// Invariant: the stage counts equal the connections the shell holds in
/// each stage (every successful transition is matched by one `end`), and
/// `per_identity[k]` counts the AwaitingHello + Live connections of `k`.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    max_live: usize,
    per_identity: HashMap<String, usize>,
    stats: AdmissionStats,
}

impl Admission {
    /// A publisher allowing `max_live` live sessions.
    pub fn new(limits: AdmissionLimits, max_live: usize) -> Self {
        Admission { limits, max_live, per_identity: HashMap::new(), stats: AdmissionStats::default() }
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

    fn refuse(&mut self, r: Refusal) -> Result<(), Refusal> {
        self.count(r);
        Err(r)
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

    /// `Handshaking` → `AwaitingHello` for `peer`, within the awaiting-hello
    /// and per-identity caps. On `Err` the connection left `Handshaking`
    /// (the shell closes it; no `end` call).
    pub fn handshake_done(&mut self, peer: &PeerId) -> Result<(), Refusal> {
        self.stats.handshaking -= 1;
        if self.stats.awaiting_hello >= self.limits.max_awaiting_hello {
            return self.refuse(Refusal::Busy);
        }
        if let Some(k) = peer.limit_key() {
            let n = self.per_identity.entry(k).or_insert(0);
            if *n >= self.limits.per_identity {
                return self.refuse(Refusal::IdentityLimit);
            }
            *n += 1;
        }
        self.stats.awaiting_hello += 1;
        Ok(())
    }

    /// `AwaitingHello` → `Live`, within the live cap. On `Err` the
    /// connection is still `AwaitingHello` (the shell closes it, calls `end`
    /// and [`count`](Self::count)s the refusal with the session's other end reasons).
    pub fn hello_done(&mut self) -> Result<(), Refusal> {
        if self.stats.live >= self.max_live {
            return Err(Refusal::Busy);
        }
        self.stats.awaiting_hello -= 1;
        self.stats.live += 1;
        self.stats.admitted += 1;
        Ok(())
    }

    /// A connection left the life cycle from `stage` (closed for any reason).
    /// `Handshaking` ends count as handshake failures.
    pub fn end(&mut self, stage: Stage, peer: &PeerId) {
        match stage {
            Stage::Handshaking => {
                self.stats.handshaking -= 1;
                self.stats.handshake_failures += 1;
                return;
            }
            Stage::AwaitingHello => self.stats.awaiting_hello -= 1,
            Stage::Live => self.stats.live -= 1,
        }
        if let Some(k) = peer.limit_key()
            && let Some(n) = self.per_identity.get_mut(&k)
        {
            *n -= 1;
            if *n == 0 {
                self.per_identity.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_is_capped_and_released() {
        let limits =
            AdmissionLimits { max_handshaking: 2, max_awaiting_hello: 1, per_identity: 2, ..Default::default() };
        let mut a = Admission::new(limits, 2);
        let (p, q) = (PeerId::named("p"), PeerId::named("q"));
        a.offer().unwrap();
        a.offer().unwrap();
        assert_eq!(a.offer(), Err(Refusal::Busy));
        a.handshake_done(&p).unwrap();
        assert_eq!(a.handshake_done(&q), Err(Refusal::Busy), "awaiting-hello cap");
        a.hello_done().unwrap();
        a.offer().unwrap();
        a.handshake_done(&p).unwrap();
        a.hello_done().unwrap();
        assert_eq!(a.offer(), Err(Refusal::Busy), "live cap");
        a.end(Stage::Live, &p);
        a.offer().unwrap();
        a.handshake_done(&q).unwrap();
        assert_eq!(a.stats().awaiting_hello, 1);
        a.end(Stage::AwaitingHello, &q);
        a.end(Stage::Live, &p);
        let s = a.stats();
        assert_eq!((s.handshaking, s.awaiting_hello, s.live), (0, 0, 0));
        assert_eq!(s.refused(Refusal::Busy), 3);
        assert!(a.per_identity.is_empty());
    }

    #[test]
    fn identity_limit_spares_other_identities_and_anonymous() {
        let limits = AdmissionLimits { per_identity: 1, ..Default::default() };
        let mut a = Admission::new(limits, 64);
        let (p, q) = (PeerId::named("p"), PeerId::named("q"));
        for peer in [&p, &PeerId::Anonymous, &PeerId::Anonymous, &q] {
            a.offer().unwrap();
            a.handshake_done(peer).unwrap();
        }
        a.offer().unwrap();
        assert_eq!(a.handshake_done(&p), Err(Refusal::IdentityLimit));
        assert_eq!(a.stats().refused(Refusal::IdentityLimit), 1);
        assert_eq!(a.stats().handshaking, 0);
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

//! Deadline arithmetic that never overflows.
//!
//! `Instant::now() + timeout` panics when `timeout` is huge (for example
//! `Duration::MAX`, a natural way to say "wait as long as it takes"). Every
//! wait in venom goes through [`Deadline`] instead: a timeout too large to
//! represent as an `Instant` saturates to "never expires", and
//! `Duration::ZERO` means "try once".
//!
//! ```
//! use std::time::Duration;
//! use venom_core::Deadline;
//! let never = Deadline::after(Duration::MAX);
//! assert!(!never.is_past());
//! assert_eq!(never.remaining(), Duration::MAX);
//! let now = Deadline::after(Duration::ZERO);
//! assert!(now.is_past());
//! assert_eq!(now.remaining(), Duration::ZERO);
//! ```

use std::time::{Duration, Instant};

/// A point in time after which a wait gives up, or "never".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// `None` when the timeout does not fit in an `Instant` (saturated).
    at: Option<Instant>,
}

impl Deadline {
    /// The deadline `timeout` from now; saturates to [`Deadline::never`].
    pub fn after(timeout: Duration) -> Deadline {
        Deadline::after_from(Instant::now(), timeout)
    }

    /// The deadline `timeout` after `start`; saturates to [`Deadline::never`].
    pub fn after_from(start: Instant, timeout: Duration) -> Deadline {
        Deadline { at: start.checked_add(timeout) }
    }

    /// A deadline that never passes.
    pub const fn never() -> Deadline {
        Deadline { at: None }
    }

    /// Whether the deadline has passed (a zero timeout is past immediately).
    pub fn is_past(&self) -> bool {
        self.is_past_at(Instant::now())
    }

    /// Whether the deadline is at or before `now`.
    pub fn is_past_at(&self, now: Instant) -> bool {
        self.at.is_some_and(|d| now >= d)
    }

    /// Time left until the deadline (zero once past, `Duration::MAX` for
    /// [`Deadline::never`]).
    pub fn remaining(&self) -> Duration {
        self.remaining_at(Instant::now())
    }

    /// Time left from `now` until the deadline.
    pub fn remaining_at(&self, now: Instant) -> Duration {
        self.at.map_or(Duration::MAX, |d| d.saturating_duration_since(now))
    }

    /// The deadline as an `Instant`, or `None` for [`Deadline::never`].
    pub fn instant(&self) -> Option<Instant> {
        self.at
    }

    /// The earlier of `self` and `other`.
    pub fn min(self, other: Deadline) -> Deadline {
        match (self.at, other.at) {
            (Some(a), Some(b)) => Deadline { at: Some(a.min(b)) },
            (Some(a), None) | (None, Some(a)) => Deadline { at: Some(a) },
            (None, None) => Deadline::never(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes() {
        assert!(!Deadline::after(Duration::MAX).is_past());
        assert!(Deadline::after(Duration::ZERO).is_past());
        assert_eq!(Deadline::after(Duration::MAX).remaining(), Duration::MAX);
        let short = Deadline::after(Duration::from_millis(1));
        assert_eq!(short.min(Deadline::never()), short);
        assert_eq!(Deadline::never().min(short), short);
    }
}

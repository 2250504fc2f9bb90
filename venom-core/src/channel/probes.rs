//! Time-stamp-counter probes on the request path (cargo feature `probes`,
//! off by default; without it every probe is an empty inline function).
//!
//! Each side stamps the steps of one request into a per-thread record and
//! appends it to a per-thread log when the request is done; a benchmark
//! collects the logs ([`take`]) of the daemon and of the shell, joins them by
//! request id and prints where the round trip goes (the TSC is invariant and
//! shared by all cores on x86_64, so stamps of two processes compare).
//! Used by the channel bench (`VENOM_BENCH_PROBES=1`, see
//! `benches/benches/channel/probes.rs`).

/// The points of a request's path a probe stamps (indexes of [`Record::tsc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// Daemon: start of the queue scan that found the request.
    DPoll,
    /// Daemon: the request's stamp seen (the Acquire load returned it).
    DSeen,
    /// Daemon: payload copied and the request slot released (`try_pop` done).
    DPopped,
    /// Daemon: generation checked, the command accepted (about to call the handler).
    DAccepted,
    /// Daemon: the handler returned.
    DHandled,
    /// Daemon: the reply's stamp stored (published).
    DPublished,
    /// Daemon: the reply ring's futex notified.
    DNotified,
    /// Daemon: back in the serve loop, about to scan for the next request.
    DDone,
    /// Shell: `request` entered.
    CStart,
    /// Shell: the request's stamp stored (published).
    CPushed,
    /// Shell: the reply's stamp seen by the fast poll.
    CSeen,
    /// Shell: the reply copied out and its slot released.
    CTaken,
    /// Shell: `request` returns.
    CEnd,
    /// Daemon: entered the wait for the next command (the serve loop's top;
    /// stamped into the record of the *next* request).
    DWait,
    /// Either side: the stamp of its message (request or reply) stored, inside
    /// the ring push.
    Stamped,
}

/// Stamps in a [`Record`].
pub const POINTS: usize = Point::Stamped as usize + 1;

/// One request as one side saw it: its id and a TSC stamp per point (0 where
/// that side did not stamp).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The request id (the shell's tag).
    pub id: u64,
    /// TSC stamps indexed by [`Point`].
    pub tsc: [u64; POINTS],
}

/// Records kept per thread at most (older ones stay, newer are dropped).
pub const MAX_RECORDS: usize = 1 << 18;

#[cfg(all(feature = "probes", target_arch = "x86_64", not(loom)))]
mod imp {
    use std::cell::{Cell, RefCell};

    use super::{MAX_RECORDS, POINTS, Point, Record};

    thread_local! {
        static CURRENT: [Cell<u64>; POINTS] = const { [const { Cell::new(0) }; POINTS] };
        static LOG: RefCell<Vec<Record>> = const { RefCell::new(Vec::new()) };
    }

    /// `lfence; rdtsc`: the stamp is taken after every earlier instruction
    /// has executed (loads completed; stores may still sit in the store
    /// buffer), so a step's time is not credited to the next one.
    #[inline(always)]
    pub(crate) fn stamp() -> u64 {
        // SAFETY: lfence and rdtsc have no memory effects; x86_64 always has
        // both (SSE2 is baseline).
        unsafe {
            core::arch::x86_64::_mm_lfence();
            core::arch::x86_64::_rdtsc()
        }
    }

    #[inline(always)]
    pub(crate) fn mark(point: Point) {
        let t = stamp();
        CURRENT.with(|c| c[point as usize].set(t));
    }

    #[inline(always)]
    pub(crate) fn commit(id: u64) {
        let mut rec = Record { id, tsc: [0; POINTS] };
        CURRENT.with(|c| {
            for (t, cell) in rec.tsc.iter_mut().zip(c) {
                *t = cell.replace(0);
            }
        });
        LOG.with(|l| {
            let mut l = l.borrow_mut();
            if l.capacity() == 0 {
                // Touch every page now: a page fault per 34 records during
                // the measurement would cost more than the probes.
                l.resize(MAX_RECORDS, Record::default());
                l.clear();
            }
            if l.len() < MAX_RECORDS {
                l.push(rec);
            }
        });
    }

    pub(crate) fn take() -> Vec<Record> {
        LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
}

#[cfg(not(all(feature = "probes", target_arch = "x86_64", not(loom))))]
mod imp {
    use super::{Point, Record};

    #[inline(always)]
    pub(crate) fn mark(_point: Point) {}

    #[inline(always)]
    pub(crate) fn commit(_id: u64) {}

    pub(crate) fn take() -> Vec<Record> {
        Vec::new()
    }
}

/// Stamps `point` of the current request of this thread.
#[inline(always)]
pub(crate) fn mark(point: Point) {
    imp::mark(point)
}

/// Appends the current request (id `id`) to this thread's log and clears the
/// stamps.
#[inline(always)]
pub(crate) fn commit(id: u64) {
    imp::commit(id)
}

/// Whether probes are compiled in (feature `probes` on x86_64).
pub const ENABLED: bool = cfg!(all(feature = "probes", target_arch = "x86_64", not(loom)));

/// Takes this thread's log (empty without the feature).
pub fn take() -> Vec<Record> {
    imp::take()
}

/// Reads the time-stamp counter (0 without the feature).
pub fn now() -> u64 {
    #[cfg(all(feature = "probes", target_arch = "x86_64", not(loom)))]
    {
        imp::stamp()
    }
    #[cfg(not(all(feature = "probes", target_arch = "x86_64", not(loom))))]
    {
        0
    }
}

#[cfg(all(test, feature = "probes", target_arch = "x86_64", not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn records_are_committed_per_request_and_taken_once() {
        drop(take());
        mark(Point::CStart);
        mark(Point::CEnd);
        commit(7);
        mark(Point::DSeen);
        commit(8);
        let log = take();
        assert_eq!(log.len(), 2);
        assert_eq!((log[0].id, log[1].id), (7, 8));
        assert!(
            log[0].tsc[Point::CStart as usize] != 0
                && log[0].tsc[Point::CEnd as usize] >= log[0].tsc[Point::CStart as usize]
        );
        // Commit clears the stamps: the second record has only its own.
        assert_eq!(log[1].tsc[Point::CStart as usize], 0);
        assert!(log[1].tsc[Point::DSeen as usize] != 0);
        assert!(take().is_empty());
    }
}

//! The client side of a channel.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ClientId, QUEUE_OFFSET, check_layout, header};
use crate::cmd_queue::ring::{Ring, STATUS_TOO_LARGE, STATUS_UNANSWERED};
use crate::cmd_queue::{CmdQueue, Producer, WaitStrategy, wait_for};
use crate::error::{Error, Result};
use crate::header::SegmentKind;
use crate::loom::sync::Ordering;
use crate::process::ProcessId;
use crate::segment::Segment;
use crate::seq_region::SeqRegion;

/// Default timeout of [`ShellChannel::request`] and of the waits inside
/// [`ShellChannel::send_command`] / [`ShellChannel::recv_response`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Polls of the reply stamp before the general wait (which reads the clock)
/// takes over: ~10–50 µs depending on the CPU's spin-hint latency.
const REPLY_FAST_SPINS: u32 = 256;

/// What a slot this shell holds is waiting for. A slot is held from its
/// request until its reply is taken; slots are freed oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// The reply to the synchronous request in flight.
    Sync,
    /// The reply to a pipelined request (taken by `recv_response`).
    Pipelined,
    /// The reply to a timed-out request: discarded when it arrives.
    Abandoned,
    /// Reply taken: free once every older slot is.
    Taken,
}

/// A client of a channel: reads the daemon's data and sends it commands.
///
/// `Send`, not `Sync`. Dropping it frees its client slot.
///
/// Pipelining, with replies matched to their requests by id:
/// ```
/// use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
/// let name = format!("doc-shell-{}", std::process::id());
/// let mut daemon = DaemonChannel::create(&name, ChannelConfig::default())?;
/// let stop = daemon.stop_handle();
/// let server = std::thread::spawn(move || daemon.run(|_, cmd| cmd.repeat(2)));
/// let mut shell = ShellChannel::connect(&name)?;
/// let ids: Vec<u64> = [b"a", b"b", b"c"].iter().map(|c| shell.send_command(*c)).collect::<Result<_, _>>()?;
/// let mut buf = [0u8; 8];
/// for id in ids {
///     let (got, n) = shell.recv_response(&mut buf)?;
///     assert_eq!((got, n), (id, 2));
/// }
/// stop.stop();
/// server.join().unwrap()?;
/// # Ok::<(), venom_core::Error>(())
/// ```
pub struct ShellChannel {
    name: String,
    seg: Arc<Segment>,
    producer: Producer,
    /// Our lane's request ring; replies arrive in the request slots.
    ring: Ring,
    /// Ring position of our first request: request id = position - first + 1.
    first: u64,
    /// Oldest position we still hold; every slot before it is free.
    oldest: u64,
    /// States of positions `oldest..oldest + held.len()`; the next request
    /// goes at the end. At most `cmd_slots` long.
    held: VecDeque<Held>,
    data: SeqRegion,
    daemon: ProcessId,
    wait: WaitStrategy,
    timeout: Duration,
    /// Requests sent with `send_command` and not yet received.
    pipelined: usize,
}

// SAFETY: `ring` points into `seg`, which we keep alive; atomic access only.
unsafe impl Send for ShellChannel {}

impl std::fmt::Debug for ShellChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShellChannel").field("name", &self.name).field("client", &self.client_id()).finish()
    }
}

impl ShellChannel {
    /// Connects to the channel `name` and claims a client slot (a free one,
    /// or one whose owner died). Errors: [`Error::NotFound`],
    /// [`Error::DaemonGone`] (the segment exists but its daemon is dead),
    /// [`Error::TooManyClients`].
    pub fn connect(name: &str) -> Result<ShellChannel> {
        let seg = Arc::new(Segment::open(name, SegmentKind::CHANNEL)?);
        let (data_offset, wait) = check_layout(&seg)?;
        let daemon = seg.creator();
        daemon_check(&seg, daemon)?;
        let queue = CmdQueue::from_segment(seg.clone(), QUEUE_OFFSET, wait)?;
        let data = SeqRegion::attach(seg.clone(), data_offset)?;
        let producer = queue.producer()?;
        let ring = producer.ring();
        let first = producer.next_pos();
        let (oldest, held) = adopt_predecessor(ring, first);
        ring.set_taken(oldest);
        Ok(ShellChannel {
            name: name.to_owned(),
            seg,
            producer,
            ring,
            first,
            oldest,
            held,
            data,
            daemon,
            wait,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            pipelined: 0,
        })
    }

    /// After [`Error::DaemonGone`]: waits up to the request timeout for a
    /// daemon to serve `name` again and connects to it (new slot, new
    /// client id; outstanding requests are forgotten). A no-op while the
    /// current daemon is alive.
    pub fn reconnect(&mut self) -> Result<()> {
        if self.daemon_alive() {
            return Ok(());
        }
        let deadline = crate::Deadline::after(self.timeout);
        loop {
            match ShellChannel::connect(&self.name) {
                Ok(mut fresh) => {
                    fresh.wait = self.wait;
                    fresh.timeout = self.timeout;
                    *self = fresh;
                    return Ok(());
                }
                Err(e @ (Error::TooManyClients { .. } | Error::InvalidName { .. })) => return Err(e),
                Err(e) if deadline.is_past() => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// This client's slot and generation.
    pub fn client_id(&self) -> ClientId {
        ClientId { slot: self.producer.lane() as u32, generation: self.producer.generation() }
    }

    /// Copies the daemon's last `write_data` into `buf`; returns its length.
    pub fn read_data(&self, buf: &mut [u8]) -> Result<usize> {
        self.data.read(buf)
    }

    /// The data region (offset reads, versions, change waits, snapshots).
    pub fn data(&self) -> &SeqRegion {
        &self.data
    }

    /// Whether the daemon is alive and has not closed the channel.
    pub fn daemon_alive(&self) -> bool {
        daemon_check(&self.seg, self.daemon).is_ok()
    }

    /// How to wait for replies (default: the daemon's strategy).
    pub fn set_wait(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }

    /// Timeout of [`ShellChannel::request`] and of pipelined waits.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Largest command (and reply) in bytes.
    pub fn max_msg_size(&self) -> usize {
        self.producer.max_msg_size()
    }

    /// Sends `cmd` and copies the reply into `resp`; returns its length.
    /// Waits at most the shell's timeout (default 5 s).
    pub fn request(&mut self, cmd: &[u8], resp: &mut [u8]) -> Result<usize> {
        self.request_timeout(cmd, resp, self.timeout)
    }

    /// [`ShellChannel::request`] with an explicit timeout. Errors:
    /// [`Error::Timeout`] (a late reply is discarded when it arrives),
    /// [`Error::DaemonGone`], [`Error::MessageTooLarge`] (command),
    /// [`Error::ReplyTooLarge`], [`Error::BufferTooSmall`] (the reply is
    /// discarded), [`Error::RequestsOutstanding`] if pipelined requests are
    /// in flight.
    pub fn request_timeout(&mut self, cmd: &[u8], resp: &mut [u8], timeout: Duration) -> Result<usize> {
        if self.pipelined > 0 {
            return Err(Error::RequestsOutstanding { count: self.pipelined });
        }
        let (pos, waited) = self.send(cmd, timeout, Held::Sync)?;
        if self.wait != WaitStrategy::Park {
            // Fast path: poll only our request slot's stamp (one load of a
            // line that also carries the reply header and a small reply)
            // until the reply lands; the wait below then takes it at once.
            // Bounded: past it, the clocked wait takes over.
            for _ in 0..REPLY_FAST_SPINS {
                if self.ring.replied(pos) {
                    break;
                }
                crate::loom::spin_hint();
            }
        }
        let left = timeout.saturating_sub(waited);
        match self.wait_reply(left, |me| me.take(pos, resp, false).map(|t| t.map(|(_, r)| r))) {
            Ok(r) => r,
            Err(e) => {
                // Not taken (timeout, daemon gone, truncation): keep the
                // slot until the late reply arrives, then drop it.
                self.set_held(pos, Held::Abandoned);
                Err(match e {
                    Error::Timeout(_) => Error::Timeout(timeout),
                    e => e,
                })
            }
        }
    }

    /// Pipelining: sends `cmd` without waiting for the reply and returns its
    /// request id. At most `cmd_slots` requests may be outstanding (fewer
    /// while replies to timed-out requests are still awaited); beyond that
    /// this fails with [`Error::Full`] until [`ShellChannel::recv_response`]
    /// collects some replies.
    pub fn send_command(&mut self, cmd: &[u8]) -> Result<u64> {
        let (pos, _) = self.send(cmd, self.timeout, Held::Pipelined)?;
        self.pipelined += 1;
        Ok(self.id_of(pos))
    }

    /// Pipelining: a reply to a [`ShellChannel::send_command`] request, as
    /// `(request id, length)`, copied into `buf`: the oldest request's
    /// reply if it is there, else the oldest one that has arrived (the
    /// daemon may answer out of order). If `buf` is too small the reply
    /// stays queued and [`Error::BufferTooSmall`] says how much is needed.
    /// Fails at once with [`Error::Timeout`] when no pipelined request is
    /// outstanding.
    pub fn recv_response(&mut self, buf: &mut [u8]) -> Result<(u64, usize)> {
        self.recv_response_timeout(buf, self.timeout)
    }

    /// [`ShellChannel::recv_response`] with an explicit timeout.
    pub fn recv_response_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(u64, usize)> {
        if self.pipelined == 0 {
            return Err(Error::Timeout(Duration::ZERO));
        }
        self.wait_reply(timeout, |me| me.take_any(buf))
    }

    /// Requests sent with `send_command` whose replies are not yet received.
    pub fn outstanding(&self) -> usize {
        self.pipelined
    }

    fn id_of(&self, pos: u64) -> u64 {
        pos - self.first + 1
    }

    fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    fn set_held(&mut self, pos: u64, state: Held) {
        if let Some(h) = pos.checked_sub(self.oldest).and_then(|i| self.held.get_mut(i as usize)) {
            *h = state;
        }
    }

    /// Frees the oldest held slots whose replies are taken, or have arrived
    /// for a timed-out request.
    fn free_taken(&mut self) {
        let before = self.oldest;
        while let Some(&front) = self.held.front() {
            let free = match front {
                Held::Taken => true,
                Held::Abandoned => self.ring.replied(self.oldest),
                Held::Sync | Held::Pipelined => false,
            };
            if !free {
                break;
            }
            self.held.pop_front();
            self.oldest += 1;
        }
        if self.oldest != before {
            self.ring.set_taken(self.oldest);
        }
    }

    /// Pushes `cmd` into a free slot and returns its position and the time
    /// spent waiting for room. The fast path reads no clock.
    fn send(&mut self, cmd: &[u8], timeout: Duration, state: Held) -> Result<(u64, Duration)> {
        if cmd.len() > self.max_msg_size() {
            return Err(Error::MessageTooLarge { len: cmd.len(), max: self.max_msg_size() });
        }
        self.free_taken();
        let mut waited = Duration::ZERO;
        if self.held.len() >= self.capacity() {
            if self.pipelined > 0 {
                return Err(Error::Full);
            }
            // Only replies to timed-out requests hold the slots: wait for
            // the oldest to arrive.
            let t = Instant::now();
            self.wait_reply(timeout, |me| {
                me.free_taken();
                Ok((me.held.len() < me.capacity()).then_some(()))
            })?;
            waited = t.elapsed();
        }
        let pos = self.producer.next_pos();
        debug_assert_eq!(pos, self.oldest + self.held.len() as u64);
        let id = self.id_of(pos);
        match self.producer.try_push_tagged(id, cmd) {
            Ok(()) => {}
            Err(Error::Full) => {
                // Not expected (a slot we hold free has been read by the
                // daemon); wait for the ring's head like a plain queue.
                let t = Instant::now();
                self.producer.push_tagged(id, cmd, timeout.saturating_sub(waited))?;
                waited += t.elapsed();
            }
            Err(e) => return Err(e),
        }
        self.held.push_back(state);
        Ok((pos, waited))
    }

    /// Waits for `poll` on our ring's futex, checking the daemon's liveness.
    fn wait_reply<T>(&mut self, timeout: Duration, mut poll: impl FnMut(&mut Self) -> Result<Option<T>>) -> Result<T> {
        let ring = self.ring;
        let seg: *const Segment = &*self.seg;
        let (daemon, wait) = (self.daemon, self.wait);
        // SAFETY: `self.seg` keeps the segment alive for this whole call and
        // is not replaced by `poll`; a raw pointer avoids cloning the Arc
        // (two locked RMWs) on every request.
        let check = || daemon_check(unsafe { &*seg }, daemon);
        let got = wait_for(wait, &ring.ctl().ready.0, timeout, || poll(self), check);
        // A reply read from a truncated (zeroed) ring is not the daemon's.
        self.seg.check_mapped()?;
        got
    }

    /// Takes the reply to `pos` if it has arrived: `Some((id, result))`.
    /// With `keep_if_small` a reply larger than `buf` stays in its slot
    /// (pipelined); otherwise it is discarded with the error.
    fn take(&mut self, pos: u64, buf: &mut [u8], keep_if_small: bool) -> Result<Option<(u64, Result<usize>)>> {
        let Some(p) = self.ring.reply(pos) else { return Ok(None) };
        let (id, max) = (self.id_of(pos), self.max_msg_size());
        let result = if p.generation != self.producer.generation() {
            // The daemon writes only status, length and payload; the
            // generation is our own request's. Anything else is corruption.
            Err(Error::corrupt(&self.name, "reply slot carries another client's generation"))
        } else if p.status == STATUS_TOO_LARGE {
            Err(Error::ReplyTooLarge { id, len: p.len, max })
        } else if p.status == STATUS_UNANSWERED {
            Err(Error::NoReply { id })
        } else if p.len > max {
            Err(Error::corrupt(&self.name, format!("reply of {} bytes over the maximum", p.len)))
        } else if p.len > buf.len() {
            if keep_if_small {
                return Err(Error::BufferTooSmall { needed: p.len, got: buf.len() });
            }
            Err(Error::BufferTooSmall { needed: p.len, got: buf.len() })
        } else {
            // Copy before freeing the slot: a later request reuses it.
            self.ring.read_payload(pos, &mut buf[..p.len]);
            Ok(p.len)
        };
        self.set_held(pos, Held::Taken);
        self.free_taken();
        Ok(Some((id, result)))
    }

    /// Takes a pipelined reply: the oldest pipelined request's if it has
    /// arrived (the fast-path check), else the oldest that has.
    fn take_any(&mut self, buf: &mut [u8]) -> Result<Option<(u64, usize)>> {
        self.free_taken();
        for i in 0..self.held.len() {
            if self.held[i] != Held::Pipelined {
                continue;
            }
            let pos = self.oldest + i as u64;
            if let Some((id, result)) = self.take(pos, buf, true)? {
                self.pipelined -= 1;
                return result.map(|n| Some((id, n)));
            }
        }
        Ok(None)
    }
}

/// A new owner of a client slot adopts its predecessor's last `cmd_slots`
/// positions: those whose request the daemon has not answered yet stay
/// held (as abandoned requests: freed once the daemon's reply hands the slot
/// back, see `cmd_queue::in_place`), the others are free. Returns the
/// oldest held position and the held states from it up to `first`.
fn adopt_predecessor(ring: Ring, first: u64) -> (u64, VecDeque<Held>) {
    let cap = ring.capacity();
    let mut held = VecDeque::with_capacity(cap as usize);
    let mut oldest = first;
    for pos in first.saturating_sub(cap)..first {
        if ring.awaiting_reply(pos) {
            if held.is_empty() {
                oldest = pos;
            }
            held.push_back(Held::Abandoned);
        } else if !held.is_empty() {
            held.push_back(Held::Taken);
        }
    }
    (oldest, held)
}

/// `Err(DaemonGone)` if the daemon closed the channel or died.
fn daemon_check(seg: &Segment, daemon: ProcessId) -> Result<()> {
    seg.probe_truncation()?;
    // Acquire: pairs with the daemon's Release in Drop.
    if header(seg).closed.load(Ordering::Acquire) != 0 || !daemon.is_alive() {
        return Err(Error::DaemonGone { pid: daemon.pid });
    }
    Ok(())
}

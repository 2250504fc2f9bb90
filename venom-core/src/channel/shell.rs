//! The client side of a channel.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ClientId, QUEUE_OFFSET, check_layout, header, probes, reply_rings};
use crate::cmd_queue::ring::{Ring, STATUS_OK, STATUS_TOO_LARGE, STATUS_UNANSWERED};
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

/// Which replies a poll of the reply ring may return.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The reply to this id (synchronous request).
    Id(u64),
    /// Any reply to a pipelined request.
    Any,
    /// None: only discard replies nobody waits for.
    Absorb,
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
    reply: Ring,
    /// Next reply position to read (we are the reply ring's only consumer).
    reply_head: u64,
    data: SeqRegion,
    daemon: ProcessId,
    wait: WaitStrategy,
    timeout: Duration,
    next_id: u64,
    /// Requests sent whose replies we have not consumed (incl. abandoned
    /// ones). Kept `<= depth - 1`, so the daemon never finds our reply ring
    /// full (one slot stays free for a predecessor's stray reply).
    in_flight: usize,
    /// Requests sent with `send_command` and not yet received.
    pipelined: usize,
    /// Ids of timed-out requests whose replies are discarded on arrival.
    abandoned: HashSet<u64>,
}

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
        let (replies_offset, data_offset, wait) = check_layout(&seg)?;
        let daemon = seg.creator();
        daemon_check(&seg, daemon)?;
        let queue = CmdQueue::from_segment(seg.clone(), QUEUE_OFFSET, wait)?;
        let geo = queue.inner.block.geo;
        let base = reply_rings(&seg, &geo, replies_offset, data_offset)?;
        let data = SeqRegion::attach(seg.clone(), data_offset)?;
        let producer = queue.producer()?;
        // SAFETY: the reply ring array is inside the body (checked) and our
        // lane index is < lanes.
        let reply = unsafe { geo.ring_at(base, producer.lane()) };
        // We are now the reply ring's consumer: drop a predecessor's leftovers.
        let reply_head = reply.drain();
        Ok(ShellChannel {
            name: name.to_owned(),
            seg,
            producer,
            reply,
            reply_head,
            data,
            daemon,
            wait,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            next_id: 1,
            in_flight: 0,
            pipelined: 0,
            abandoned: HashSet::new(),
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
        probes::mark(probes::Point::CStart);
        if self.pipelined > 0 {
            return Err(Error::RequestsOutstanding { count: self.pipelined });
        }
        let (id, waited) = self.send(cmd, timeout)?;
        probes::mark(probes::Point::CPushed);
        if self.wait != WaitStrategy::Park {
            // Fast path: poll only our reply ring's next stamp (one load of
            // a line that also carries the header and a small reply) until
            // something lands there, and take it directly (the general wait
            // below handles everything else). Bounded: past it, the clocked
            // wait takes over.
            for _ in 0..REPLY_FAST_SPINS {
                if self.reply.published(self.reply_head) {
                    probes::mark(probes::Point::CSeen);
                    if let Some(n) = self.take_own_reply(id, resp) {
                        // A reply read from a truncated (zeroed) ring is not
                        // the daemon's.
                        self.seg.check_mapped()?;
                        probes::mark(probes::Point::CTaken);
                        probes::mark(probes::Point::CEnd);
                        probes::commit(id);
                        return Ok(n);
                    }
                    // `None`: it was a reply nobody waits for (discarded).
                    if let Some(got) = self.take_reply(Want::Id(id), resp).transpose() {
                        // A reply read from a truncated (zeroed) ring is not
                        // the daemon's.
                        self.seg.check_mapped()?;
                        probes::mark(probes::Point::CTaken);
                        probes::mark(probes::Point::CEnd);
                        probes::commit(id);
                        return got.map(|(_, n)| n);
                    }
                    break;
                }
                crate::loom::spin_hint();
            }
        }
        let left = timeout.saturating_sub(waited);
        let got = self.wait_reply(Want::Id(id), resp, left);
        probes::mark(probes::Point::CTaken);
        match got {
            Ok((_, n)) => {
                probes::mark(probes::Point::CEnd);
                probes::commit(id);
                Ok(n)
            }
            Err(e) => {
                if matches!(e, Error::Timeout(_) | Error::DaemonGone { .. }) {
                    self.abandoned.insert(id);
                }
                Err(match e {
                    Error::Timeout(_) => Error::Timeout(timeout),
                    e => e,
                })
            }
        }
    }

    /// Pipelining: sends `cmd` without waiting for the reply and returns its
    /// request id. At most `cmd_slots - 1` requests may be outstanding;
    /// beyond that this fails with [`Error::Full`] until
    /// [`ShellChannel::recv_response`] collects some replies.
    pub fn send_command(&mut self, cmd: &[u8]) -> Result<u64> {
        let (id, _) = self.send(cmd, self.timeout)?;
        self.pipelined += 1;
        Ok(id)
    }

    /// Pipelining: the next reply to a [`ShellChannel::send_command`] request,
    /// as `(request id, length)`, copied into `buf`. Replies come in the
    /// order the daemon answers (FIFO with [`DaemonChannel::run`](super::DaemonChannel::run)).
    /// If `buf` is too small the reply stays queued and
    /// [`Error::BufferTooSmall`] says how much is needed. Fails at once with
    /// [`Error::Timeout`] when no pipelined request is outstanding.
    pub fn recv_response(&mut self, buf: &mut [u8]) -> Result<(u64, usize)> {
        self.recv_response_timeout(buf, self.timeout)
    }

    /// [`ShellChannel::recv_response`] with an explicit timeout.
    pub fn recv_response_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<(u64, usize)> {
        if self.pipelined == 0 {
            return Err(Error::Timeout(Duration::ZERO));
        }
        self.wait_reply(Want::Any, buf, timeout)
    }

    /// Requests sent with `send_command` whose replies are not yet received.
    pub fn outstanding(&self) -> usize {
        self.pipelined
    }

    fn capacity(&self) -> usize {
        self.reply.capacity() as usize - 1
    }

    /// Pushes `cmd` and returns its id and the time spent waiting for room.
    /// The fast path reads no clock.
    fn send(&mut self, cmd: &[u8], timeout: Duration) -> Result<(u64, Duration)> {
        if cmd.len() > self.max_msg_size() {
            return Err(Error::MessageTooLarge { len: cmd.len(), max: self.max_msg_size() });
        }
        let mut waited = Duration::ZERO;
        if self.in_flight >= self.capacity() {
            // Make room by discarding replies to abandoned requests.
            self.take_reply(Want::Absorb, &mut [])?;
            if self.in_flight >= self.capacity() {
                if self.pipelined > 0 {
                    return Err(Error::Full);
                }
                let t = Instant::now();
                self.wait_reply(Want::Absorb, &mut [], timeout)?;
                waited = t.elapsed();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        match self.producer.try_push_tagged(id, cmd) {
            Ok(()) => {}
            Err(Error::Full) => {
                let t = Instant::now();
                self.producer.push_tagged(id, cmd, timeout.saturating_sub(waited))?;
                waited += t.elapsed();
            }
            Err(e) => return Err(e),
        }
        self.in_flight += 1;
        Ok((id, waited))
    }

    fn wait_reply(&mut self, want: Want, buf: &mut [u8], timeout: Duration) -> Result<(u64, usize)> {
        let ring = self.reply;
        let seg: *const Segment = &*self.seg;
        let (daemon, wait) = (self.daemon, self.wait);
        // SAFETY: `self.seg` keeps the segment alive for this whole call and
        // is not replaced by `take_reply`; a raw pointer avoids cloning the
        // Arc (two locked RMWs) on every request.
        let check = || daemon_check(unsafe { &*seg }, daemon);
        let got = wait_for(wait, &ring.ctl().ready.0, timeout, || self.take_reply(want, buf), check);
        // A reply read from a truncated (zeroed) ring is not the daemon's.
        self.seg.check_mapped()?;
        got
    }

    /// `request`'s fast take: the reply at our head if it is exactly the
    /// one waited for (our generation, request `id`, status OK, fits
    /// `resp`); anything else (`None`) is left to [`Self::take_reply`]. A
    /// fresh id is never in `abandoned`.
    #[inline]
    fn take_own_reply(&mut self, id: u64, resp: &mut [u8]) -> Option<usize> {
        let head = self.reply_head;
        let p = self.reply.peek(head)?;
        if p.generation != self.producer.generation()
            || p.tag != id
            || p.status != STATUS_OK
            || p.len > resp.len()
            || p.len > self.max_msg_size()
        {
            return None;
        }
        // Copy before `consume`: releasing the slot lets the daemon reuse it.
        self.reply.read_payload(head, &mut resp[..p.len]);
        self.consume(head);
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(p.len)
    }

    /// Consumes replies nobody waits for and returns the first one `want`
    /// accepts. With `Want::Absorb` it returns `(0, 0)` once there is room
    /// for another request.
    fn take_reply(&mut self, want: Want, buf: &mut [u8]) -> Result<Option<(u64, usize)>> {
        let max = self.max_msg_size();
        loop {
            if want == Want::Absorb && self.in_flight < self.capacity() {
                return Ok(Some((0, 0)));
            }
            let head = self.reply_head;
            let Some(p) = self.reply.peek(head) else { return Ok(None) };
            if p.generation != self.producer.generation() {
                // A reply meant for a previous client in this slot.
                self.consume(head);
                continue;
            }
            if !self.abandoned.is_empty() && self.abandoned.remove(&p.tag) {
                self.in_flight = self.in_flight.saturating_sub(1);
                self.consume(head);
                continue;
            }
            match want {
                // A live pipelined reply: leave it for recv_response.
                Want::Absorb => return Ok(None),
                // An id we are not waiting for (only a misbehaving daemon
                // sends one while no pipelined request is out): discard.
                Want::Id(id) if p.tag != id => {
                    self.consume(head);
                    continue;
                }
                _ => {}
            }
            let result = if p.status == STATUS_TOO_LARGE {
                Err(Error::ReplyTooLarge { id: p.tag, len: p.len, max })
            } else if p.status == STATUS_UNANSWERED {
                Err(Error::NoReply { id: p.tag })
            } else if p.len > max {
                Err(Error::corrupt(&self.name, format!("reply of {} bytes over the maximum", p.len)))
            } else if p.len > buf.len() {
                if want == Want::Any {
                    // Leave it queued; the caller can retry with a larger buffer.
                    return Err(Error::BufferTooSmall { needed: p.len, got: buf.len() });
                }
                Err(Error::BufferTooSmall { needed: p.len, got: buf.len() })
            } else {
                // Copy before `consume`: releasing the slot lets the daemon
                // overwrite it.
                self.reply.read_payload(head, &mut buf[..p.len]);
                Ok(Some((p.tag, p.len)))
            };
            self.consume(head);
            self.in_flight = self.in_flight.saturating_sub(1);
            if want == Want::Any {
                self.pipelined = self.pipelined.saturating_sub(1);
            }
            return result;
        }
    }

    fn consume(&mut self, head: u64) {
        self.reply_head = head + 1;
        self.reply.release_to(head + 1);
    }
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

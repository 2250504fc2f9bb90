//! The daemon side of a channel.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::command::Command;
use super::probes;
use super::stop::StopHandle;
use super::{
    CHANNEL_LAYOUT_VERSION, CHANNEL_MAGIC, ChannelConfig, ClientId, Layout, QUEUE_OFFSET, check_layout, header,
    reply_rings,
};
use crate::cmd_queue::ring::{OutMsg, Ring, STATUS_TOO_LARGE, STATUS_UNANSWERED};
use crate::cmd_queue::{CmdQueue, Consumer, Message, WaitStrategy, wait_for};
use crate::error::{Error, Result};
use crate::header::SegmentKind;
use crate::loom::sync::Ordering;
use crate::segment::Segment;
use crate::seq_region::{RegionWrite, SeqRegion, SeqWriter};

/// How long one internal wait of [`DaemonChannel::run`] lasts before it
/// re-checks the stop flag (the flag also wakes it immediately).
const RUN_SLICE: Duration = Duration::from_secs(1);

/// Counters kept by the daemon.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaemonStats {
    /// Commands handed to the application.
    pub commands: u64,
    /// Commands dropped because their client slot was reclaimed by a new
    /// client before the daemon reached them.
    pub stale_commands: u64,
    /// Replies dropped because their client is gone (slot reclaimed) or its
    /// reply ring was full (a client not following the protocol).
    pub dropped_replies: u64,
    /// Replies rejected for exceeding `max_msg_size` (the client got a
    /// `ReplyTooLarge` error).
    pub oversized_replies: u64,
    /// Commands dropped without an answer (the client got `NoReply`).
    pub unanswered: u64,
}

/// The owner of a channel: publishes data and serves commands.
///
/// `Send`, not `Sync`: serve from one thread. Dropping it marks the channel
/// closed (shells get [`Error::DaemonGone`]) and unlinks its name.
///
/// A hand-written serve loop that also refreshes the data region:
/// ```
/// use std::time::Duration;
/// use venom_core::Error;
/// use venom_core::channel::{ChannelConfig, DaemonChannel, ShellChannel};
/// let name = format!("doc-daemon-{}", std::process::id());
/// let mut daemon = DaemonChannel::create(&name, ChannelConfig::default())?;
/// let mut shell = ShellChannel::connect(&name)?;
/// let id = shell.send_command(b"add 2 3")?;
/// for tick in 0.. {
///     match daemon.recv_command(Duration::from_millis(10)) {
///         Ok(cmd) => {
///             assert_eq!(cmd.data(), b"add 2 3");
///             daemon.respond(cmd, b"5")?;
///             break;
///         }
///         Err(Error::Timeout(_)) => {
///             daemon.write_data(format!("tick {tick}").as_bytes())?;
///         }
///         Err(e) => return Err(e),
///     }
/// }
/// let mut buf = [0u8; 8];
/// assert_eq!(shell.recv_response(&mut buf)?, (id, 1));
/// # Ok::<(), venom_core::Error>(())
/// ```
pub struct DaemonChannel {
    seg: Arc<Segment>,
    queue: CmdQueue,
    consumer: Consumer,
    replies: Vec<Ring>,
    /// Per client slot: (next reply position, cached reply-ring head).
    reply_pos: Vec<(u64, u64)>,
    data: SeqWriter,
    stop: StopHandle,
    cmd_buf: Vec<u8>,
    reply_buf: Vec<u8>,
    spare: Vec<Vec<u8>>,
    /// Commands dropped unanswered (sent by `Command::drop`).
    unanswered_tx: mpsc::Sender<Message>,
    unanswered_rx: mpsc::Receiver<Message>,
    stats: DaemonStats,
}

impl std::fmt::Debug for DaemonChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonChannel").field("name", &self.seg.name()).field("stats", &self.stats).finish()
    }
}

impl DaemonChannel {
    /// Creates the channel `name`. Fails with [`Error::AlreadyExists`] if a
    /// live daemon owns the name (its segment is left untouched); a dead
    /// daemon's segment is reclaimed.
    pub fn create(name: &str, cfg: ChannelConfig) -> Result<DaemonChannel> {
        let (lay, region_cfg) = Layout::new(&cfg)?;
        let qcfg = crate::cmd_queue::QueueConfig {
            lanes: cfg.max_clients,
            depth: cfg.cmd_slots,
            max_msg_size: cfg.max_msg_size,
            wait: cfg.wait,
            mode: cfg.mode,
        };
        let seg =
            Segment::builder(name, SegmentKind::CHANNEL).body_len(lay.total).mode(cfg.mode).create_with(|seg| {
                let h = header(seg);
                // Relaxed: published by the segment's READY store (Release).
                h.magic.store(CHANNEL_MAGIC, Ordering::Relaxed);
                h.version.store(CHANNEL_LAYOUT_VERSION, Ordering::Relaxed);
                h.queue_len.store(lay.geo.total_len() as u64, Ordering::Relaxed);
                h.replies_offset.store(lay.replies_offset as u64, Ordering::Relaxed);
                h.data_offset.store(lay.data_offset as u64, Ordering::Relaxed);
                h.wait.store(cfg.wait.to_raw(), Ordering::Relaxed);
                // SAFETY: the body is unpublished and zeroed; QUEUE_OFFSET is
                // 128-aligned and the queue fits before the reply rings.
                unsafe { CmdQueue::init_at(seg.body_ptr().add(QUEUE_OFFSET), lay.geo.total_len(), &qcfg)? };
                // SAFETY: unpublished; data_offset is 128-aligned (all blocks
                // before it are multiples of 128 bytes).
                unsafe { SeqRegion::init_in(seg, lay.data_offset, &region_cfg) }
            })?;
        let seg = Arc::new(seg);
        let (replies_offset, data_offset, _) = check_layout(&seg)?;
        let queue = CmdQueue::from_segment(seg.clone(), QUEUE_OFFSET, cfg.wait)?;
        let geo = queue.inner.block.geo;
        let base = reply_rings(&seg, &geo, replies_offset, data_offset)?;
        // SAFETY: the reply ring array lies inside the body (checked), which
        // `seg` keeps mapped; i < lanes.
        let replies: Vec<Ring> = (0..geo.lanes).map(|i| unsafe { geo.ring_at(base, i) }).collect();
        let consumer = queue.consumer()?;
        let data = SeqWriter::claim(SeqRegion::attach(seg.clone(), data_offset)?)?;
        let stop = StopHandle { flag: Arc::new(AtomicBool::new(false)), queue: queue.clone() };
        let (unanswered_tx, unanswered_rx) = mpsc::channel();
        Ok(DaemonChannel {
            unanswered_tx,
            unanswered_rx,
            reply_pos: vec![(0, 0); geo.lanes],
            cmd_buf: Vec::with_capacity(geo.max_msg),
            reply_buf: Vec::with_capacity(geo.max_msg),
            seg,
            queue,
            consumer,
            replies,
            data,
            stop,
            spare: Vec::new(),
            stats: DaemonStats::default(),
        })
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        self.seg.name()
    }

    /// Publishes `bytes` at offset 0 of the data region; returns the new
    /// data version.
    pub fn write_data(&mut self, bytes: &[u8]) -> Result<u64> {
        self.data.write(bytes)
    }

    /// Several in-place writes to the data region published as one version.
    pub fn write_data_with<R>(&mut self, f: impl FnOnce(&mut RegionWrite<'_>) -> Result<R>) -> Result<(R, u64)> {
        self.data.write_with(f)
    }

    /// The data region (read side: version, snapshots, dirty chunks).
    pub fn data(&self) -> &SeqRegion {
        &self.data
    }

    /// A handle that stops [`DaemonChannel::run`] from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Changes how the daemon waits for commands.
    pub fn set_wait(&mut self, wait: WaitStrategy) {
        self.consumer.set_wait(wait);
    }

    /// Counters.
    pub fn stats(&self) -> DaemonStats {
        self.stats
    }

    /// Clients currently connected and alive.
    pub fn clients(&self) -> usize {
        self.queue.live_producers()
    }

    /// Serves commands until stopped: `handler(client, command)` returns the
    /// reply. Returns `Ok(())` once [`StopHandle::stop`] is called.
    pub fn run(&mut self, mut handler: impl FnMut(ClientId, &[u8]) -> Vec<u8>) -> Result<()> {
        self.run_into(|client, cmd, reply| *reply = handler(client, cmd))
    }

    /// Like [`DaemonChannel::run`], but the handler writes its reply into a
    /// reused buffer (cleared before each call): no allocation per command.
    pub fn run_into(&mut self, mut handler: impl FnMut(ClientId, &[u8], &mut Vec<u8>)) -> Result<()> {
        loop {
            let mut buf = std::mem::take(&mut self.cmd_buf);
            let got = self.next_command(&mut buf, RUN_SLICE);
            let result = match got {
                Ok(m) => {
                    probes::mark(probes::Point::DAccepted);
                    let client = ClientId { slot: m.lane as u32, generation: m.generation };
                    let mut reply = std::mem::take(&mut self.reply_buf);
                    reply.clear();
                    handler(client, &buf, &mut reply);
                    probes::mark(probes::Point::DHandled);
                    let r = self.send_reply(m, &reply);
                    self.reply_buf = reply;
                    probes::mark(probes::Point::DDone);
                    probes::commit(m.tag);
                    r
                }
                Err(e) => Err(e),
            };
            self.cmd_buf = buf;
            match result {
                Ok(()) | Err(Error::Timeout(_)) | Err(Error::ReplyTooLarge { .. }) => {}
                Err(Error::Stopped) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits up to `timeout` for the next command ([`Error::Timeout`], or
    /// [`Error::Stopped`] after a stop).
    pub fn recv_command(&mut self, timeout: Duration) -> Result<Command> {
        self.report_unanswered();
        let mut buf = self.spare.pop().unwrap_or_default();
        match self.next_command(&mut buf, timeout) {
            Ok(m) => Ok(self.command(m, buf)),
            Err(e) => {
                self.spare.push(buf);
                Err(e)
            }
        }
    }

    /// The next command if one is queued.
    pub fn try_recv_command(&mut self) -> Result<Option<Command>> {
        match self.recv_command(Duration::ZERO) {
            Ok(c) => Ok(Some(c)),
            Err(Error::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Answers `cmd`. A reply over `max_msg_size` fails with
    /// [`Error::ReplyTooLarge`] and the client receives that error too.
    /// Answering a client that has gone away succeeds (the reply is dropped).
    pub fn respond(&mut self, mut cmd: Command, reply: &[u8]) -> Result<()> {
        cmd.unanswered = None;
        let r = self.send_reply(cmd.message(), reply);
        let mut data = std::mem::take(&mut cmd.data);
        data.clear();
        if self.spare.len() < 64 {
            self.spare.push(data);
        }
        self.report_unanswered();
        r
    }

    /// Tells the clients of dropped, unanswered commands.
    fn report_unanswered(&mut self) {
        while let Ok(m) = self.unanswered_rx.try_recv() {
            self.stats.unanswered += 1;
            self.push_reply(
                m,
                OutMsg { tag: m.tag, generation: m.generation, status: STATUS_UNANSWERED, len_field: 0, payload: &[] },
            );
        }
    }

    fn command(&mut self, m: Message, data: Vec<u8>) -> Command {
        Command {
            client: ClientId { slot: m.lane as u32, generation: m.generation },
            request_id: m.tag,
            data,
            unanswered: Some(self.unanswered_tx.clone()),
        }
    }

    /// Pops the next command of a current client into `buf`.
    fn next_command(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Result<Message> {
        probes::mark(probes::Point::DWait);
        let DaemonChannel { consumer, stop, stats, queue, seg, .. } = self;
        let flag = &stop.flag;
        let stopped = || {
            seg.check_mapped()?;
            // SeqCst: pairs with StopHandle::stop (see there).
            if flag.load(std::sync::atomic::Ordering::SeqCst) { Err(Error::Stopped) } else { Ok(()) }
        };
        let wait = consumer.wait();
        wait_for(
            wait,
            queue.inner.block.doorbell(),
            timeout,
            || {
                stopped()?;
                while let Some(m) = consumer.try_pop(buf)? {
                    if m.generation == consumer.lane_generation(m.lane) {
                        stats.commands += 1;
                        return Ok(Some(m));
                    }
                    // The sender's slot now belongs to a newer client.
                    stats.stale_commands += 1;
                }
                Ok(None)
            },
            || {
                seg.probe_truncation()?;
                stopped()
            },
        )
    }

    /// Writes the reply for `m` into its client's reply ring.
    fn send_reply(&mut self, m: Message, reply: &[u8]) -> Result<()> {
        let max = self.queue.max_msg_size();
        let (msg, result) = if reply.len() > max {
            self.stats.oversized_replies += 1;
            let len_field = u32::try_from(reply.len()).unwrap_or(u32::MAX);
            let msg =
                OutMsg { tag: m.tag, generation: m.generation, status: STATUS_TOO_LARGE, len_field, payload: &[] };
            (msg, Err(Error::ReplyTooLarge { id: m.tag, len: reply.len(), max }))
        } else {
            (OutMsg::data(m.tag, m.generation, reply), Ok(()))
        };
        self.push_reply(m, msg);
        self.seg.check_mapped()?;
        result
    }

    /// Pushes `msg` into the reply ring of `m`'s client, unless the slot now
    /// belongs to another client.
    fn push_reply(&mut self, m: Message, msg: OutMsg<'_>) {
        let Some(ring) = self.replies.get(m.lane).copied() else {
            return;
        };
        // A reclaimed slot: the client this reply was for is gone. (If the
        // slot is reclaimed right after this check, one stale reply can land;
        // the new client discards it by generation, and its ring has one slot
        // of headroom for it.)
        if self.consumer.lane_generation(m.lane) != m.generation {
            self.stats.dropped_replies += 1;
            return;
        }
        let (tail, cached) = &mut self.reply_pos[m.lane];
        if ring.try_push(tail, cached, msg, || {}) {
            probes::mark(probes::Point::DPublished);
            ring.ctl().ready.0.notify_one();
            probes::mark(probes::Point::DNotified);
        } else {
            self.stats.dropped_replies += 1;
        }
    }
}

impl Drop for DaemonChannel {
    fn drop(&mut self) {
        // Release: orders our last replies before the flag; shells read it
        // with Acquire and report DaemonGone.
        header(&self.seg).closed.store(1, Ordering::Release);
        for ring in &self.replies {
            ring.ctl().ready.0.notify_all();
        }
        // Unlink now rather than when the last `Arc<Segment>` goes (a
        // StopHandle may outlive us); unlink() leaves a newer segment alone.
        let _ = self.seg.unlink();
    }
}

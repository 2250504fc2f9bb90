//! # venom-core
//!
//! Named shared-memory segments with validated headers, the seqlock data
//! region [`SeqRegion`] with dirty-chunk tracking, and (in later modules) the
//! command queue and daemon/shell channels.
//!
//! Linux only (x86_64 and aarch64): the crate relies on `/dev/shm`,
//! `/proc/<pid>/stat` and process-shared futexes.
//!
//! ```
//! use venom_core::{Segment, SegmentKind};
//! let name = format!("doc-core-{}", std::process::id());
//! let seg = Segment::builder(&name, SegmentKind::RAW).body_len(1024).create()?;
//! let other = Segment::open(&name, SegmentKind::RAW)?;
//! assert_eq!(other.body_len(), 1024);
//! assert_eq!(other.creator(), venom_core::ProcessId::current());
//! seg.unlink()?;
//! # Ok::<(), venom_core::Error>(())
//! ```

#![warn(missing_docs)]

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
compile_error!("venom supports Linux on x86_64 and aarch64 only (it needs /dev/shm, /proc and shared futexes)");

pub mod atomic_copy;
pub mod channel;
pub mod cmd_queue;
mod deadline;
mod dirty;
mod error;
pub mod futex;
pub mod header;
pub mod inspect;
pub mod loom;
mod name;
pub mod process;
mod segment;
pub mod seq_region;
pub mod seqlock;
mod shm;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod truncation;

pub use channel::{ChannelConfig, ClientId, DaemonChannel, ShellChannel, StopHandle, WaitStrategy};
pub use cmd_queue::{CmdQueue, QueueConfig};
pub use deadline::Deadline;
pub use error::{Error, Result};
pub use header::SegmentKind;
pub use name::{MAX_NAME_LEN, SegmentName};
pub use process::{Liveness, ProcessId};
pub use segment::{DEFAULT_INIT_TIMEOUT, DEFAULT_MODE, MAX_SEGMENT_LEN, Segment, SegmentBuilder};
pub use seq_region::{ChunkRef, ChunkSnapshot, RegionConfig, RegionWrite, SeqReader, SeqRegion, SeqWriter};

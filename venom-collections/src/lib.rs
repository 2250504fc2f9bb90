//! # venom-collections
//!
//! Data structures that live in named shared memory and are used from many
//! processes at once, and `KvCache`, a key-value cache with access
//! statistics.
//!
//! ## Named objects
//! An [`ObjectSegment`] is one named shared-memory segment with a directory
//! of named structures, created by one process and attached by name from
//! others (posix-shm's `SharedMemory`, done safely):
//!
//! * [`Queue`]: bounded MPMC FIFO (Vyukov), blocking variants on a futex;
//! * [`Stack`]: bounded LIFO (Treiber with tagged indices, ABA-safe);
//! * [`HashMap`]: fixed-capacity open addressing, per-slot seqlock;
//! * [`Bitset`]: atomic bits, u64 indices;
//! * [`Array`]: atomic elements, `fetch_add`/`compare_exchange` on numbers.
//!
//! Elements are `bytemuck::Pod`. Attaching checks kind, element size and
//! alignment, a type fingerprint and the capacity. Every structure documents
//! what a process killed mid-operation can lose; no operation waits forever.
//!
//! ```
//! use std::time::Duration;
//! use venom_collections::ObjectSegment;
//! let name = format!("doc-coll-{}", std::process::id());
//! let shm = ObjectSegment::create(&name, 10 << 20)?;
//! let tasks = shm.queue::<u64>("tasks", 1000)?;
//! let cache = shm.hash_map::<u64, f64>("cache", 10_000)?;
//! let flags = shm.bitset("flags", 1_000_000)?;
//! tasks.push(42, Duration::from_millis(100))?;
//! cache.insert(123, 95.5)?;
//! flags.set(42)?;
//! // In another process: ObjectSegment::open(&name)?.open_queue::<u64>("tasks")?
//! assert_eq!(tasks.pop(Duration::from_millis(100))?, 42);
//! assert!(flags.test(42)?);
//! shm.unlink()?;
//! # Ok::<(), venom_collections::Error>(())
//! ```

#![warn(missing_docs)]

mod array;
mod bitset;
mod ctl;
mod directory;
mod doorbell;
mod error;
mod hash;
pub mod kv;
mod map;
mod object_segment;
mod objects;
mod patience;
mod queue;
mod stack;
mod words;

pub use array::{Array, Numeric};
pub use bitset::{Bitset, IterOnes};
pub use directory::{MAX_OBJECT_NAME, ObjectInfo, ObjectKind};
pub use hash::{HashSeed, fixed_hash, seeded_hash, type_fingerprint};
pub use map::{HashMap, Iter};
pub use object_segment::{DEFAULT_DIRECTORY_ENTRIES, ObjectSegment};
pub use patience::DEFAULT_STALL_TIMEOUT;
pub use queue::Queue;
pub use stack::{MAX_STACK_CAPACITY, Stack};

pub use error::{Error, Result};
pub use kv::{EntryMeta, Eviction, KvCache, KvConfig, KvStats};

//! # venom-collections
//!
//! Data structures that live in named shared memory and are used from many
//! processes at once, and `KvCache`, a key-value cache with access
//! statistics.

#![warn(missing_docs)]

mod error;
pub mod kv;

pub use error::{Error, Result};
pub use kv::{EntryMeta, Eviction, KvCache, KvConfig, KvStats};

//! `KvCache`: a shared-memory key-value cache with access statistics.

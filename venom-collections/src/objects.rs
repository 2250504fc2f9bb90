//! Typed create-or-attach accessors of [`ObjectSegment`].

use bytemuck::Pod;

use crate::directory::{ObjectKind, Spec};
use crate::error::Result;
use crate::hash::type_fingerprint;
use crate::object_segment::ObjectSegment;
use crate::{Array, Bitset, HashMap, Queue, Stack};

fn spec<T>(kind: ObjectKind, aux: u64, fingerprint: u64, capacity: Option<u64>) -> Spec {
    Spec {
        kind,
        elem_size: core::mem::size_of::<T>() as u32,
        elem_align: core::mem::align_of::<T>() as u32,
        aux,
        fingerprint,
        capacity,
    }
}

fn pow2(capacity: usize) -> Result<u64> {
    (capacity.max(1) as u64)
        .checked_next_power_of_two()
        .ok_or_else(|| crate::Error::InvalidConfig(format!("capacity {capacity} is too large")))
}

impl ObjectSegment {
    /// Creates the queue `name` with room for `capacity` items (rounded up to
    /// a power of two, at least 2), or attaches to it if it exists with the
    /// same element type and capacity.
    pub fn queue<T: Pod>(&self, name: &str, capacity: usize) -> Result<Queue<T>> {
        // Capacity 1 is excluded: a stamp of `pos + 1` would then mean both
        // "holds pos" and "free for pos + 1".
        self.queue_impl(name, Some(pow2(capacity.max(2))?))
    }

    /// Attaches to the existing queue `name`, whatever its capacity.
    pub fn open_queue<T: Pod>(&self, name: &str) -> Result<Queue<T>> {
        self.queue_impl(name, None)
    }

    fn queue_impl<T: Pod>(&self, name: &str, capacity: Option<u64>) -> Result<Queue<T>> {
        let s = spec::<T>(ObjectKind::Queue, 0, type_fingerprint::<T>(), capacity);
        let r = self.place(name, s, capacity.is_some(), Queue::<T>::bytes, Queue::<T>::init)?;
        if !r.capacity.is_power_of_two() || r.capacity < 2 {
            return Err(crate::Error::Corrupt(format!("queue {name:?} capacity is not a power of two >= 2")));
        }
        Ok(Queue::from_region(r))
    }

    /// Creates or attaches to the stack `name` of `capacity` items.
    pub fn stack<T: Pod>(&self, name: &str, capacity: usize) -> Result<Stack<T>> {
        self.stack_impl(name, Some(capacity as u64))
    }

    /// Attaches to the existing stack `name`.
    pub fn open_stack<T: Pod>(&self, name: &str) -> Result<Stack<T>> {
        self.stack_impl(name, None)
    }

    fn stack_impl<T: Pod>(&self, name: &str, capacity: Option<u64>) -> Result<Stack<T>> {
        let s = spec::<T>(ObjectKind::Stack, 0, type_fingerprint::<T>(), capacity);
        let r = self.place(name, s, capacity.is_some(), Stack::<T>::bytes, Stack::<T>::init)?;
        Ok(Stack::from_region(r))
    }

    /// Creates or attaches to the map `name` with `capacity` slots (rounded
    /// up to a power of two).
    pub fn hash_map<K: Pod + Eq, V: Pod>(&self, name: &str, capacity: usize) -> Result<HashMap<K, V>> {
        self.map_impl(name, Some(pow2(capacity)?))
    }

    /// Attaches to the existing map `name`.
    pub fn open_hash_map<K: Pod + Eq, V: Pod>(&self, name: &str) -> Result<HashMap<K, V>> {
        self.map_impl(name, None)
    }

    fn map_impl<K: Pod + Eq, V: Pod>(&self, name: &str, capacity: Option<u64>) -> Result<HashMap<K, V>> {
        let fp = type_fingerprint::<(K, V)>();
        let s = spec::<K>(ObjectKind::HashMap, core::mem::size_of::<V>() as u64, fp, capacity);
        let r = self.place(name, s, capacity.is_some(), HashMap::<K, V>::bytes, |_, _| {})?;
        if !r.capacity.is_power_of_two() {
            return Err(crate::Error::Corrupt(format!("map {name:?} capacity is not a power of two")));
        }
        Ok(HashMap::from_region(r))
    }

    /// Creates or attaches to the bitset `name` of `bits` bits.
    pub fn bitset(&self, name: &str, bits: u64) -> Result<Bitset> {
        self.bitset_impl(name, Some(bits))
    }

    /// Attaches to the existing bitset `name`.
    pub fn open_bitset(&self, name: &str) -> Result<Bitset> {
        self.bitset_impl(name, None)
    }

    fn bitset_impl(&self, name: &str, bits: Option<u64>) -> Result<Bitset> {
        let s = spec::<u64>(ObjectKind::Bitset, 0, type_fingerprint::<Bitset>(), bits);
        let r = self.place(name, s, bits.is_some(), Bitset::bytes, |_, _| {})?;
        Ok(Bitset::from_region(r))
    }

    /// Creates or attaches to the array `name` of `len` elements.
    pub fn array<T: Pod>(&self, name: &str, len: usize) -> Result<Array<T>> {
        self.array_impl(name, Some(len as u64))
    }

    /// Attaches to the existing array `name`.
    pub fn open_array<T: Pod>(&self, name: &str) -> Result<Array<T>> {
        self.array_impl(name, None)
    }

    fn array_impl<T: Pod>(&self, name: &str, len: Option<u64>) -> Result<Array<T>> {
        let s = spec::<T>(ObjectKind::Array, 0, type_fingerprint::<T>(), len);
        let r = self.place(name, s, len.is_some(), Array::<T>::bytes, |_, _| {})?;
        Ok(Array::from_region(r))
    }
}

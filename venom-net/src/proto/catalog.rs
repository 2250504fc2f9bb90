//! Named arrays: a catalog mapping a name to `(offset, dtype, shape)`.
//!
//! ## Where the catalog lives
//! In the region itself: the first [`CATALOG_BYTES`] (4 KiB) of a region
//! that carries named arrays hold the encoded catalog, and the arrays follow
//! (each 64-byte aligned). Because it is ordinary region bytes, it replicates
//! like any other data: a mirror first subscribes to the 4 KiB prefix, reads
//! the catalog, then subscribes to the arrays it wants by name
//! ([`Catalog::subscribe`]). The mirror's own local region gets its own
//! catalog describing the local layout, so local readers find arrays by name
//! on both sides.
//!
//! ## Encoding (little endian)
//! ```text
//! 0   magic "VNCATLG1"     8 bytes
//! 8   region_size          u64 (the arrays are validated against it)
//! 16  count                u16 (<= MAX_ARRAYS)
//! 18  entries, each:       name_len u8 (1..=64), name (ASCII [A-Za-z0-9_.-]),
//!                          dtype u8, ndim u8 (1..=8), offset u64, ndim x dim u64 (> 0)
//! ..  zero padding up to CATALOG_BYTES
//! ```
//! [`Catalog::decode`] validates everything against the declared region
//! size ([`Catalog::read_from`] also checks it equals the real one; a mirror's
//! subscription is checked against the real size by the publisher's welcome): dtype
//! and shape sanity, `offset + size` inside `CATALOG_BYTES..region_size`
//! with checked arithmetic, no duplicate names, no overlapping arrays. Bad
//! input gives a typed error, never a panic or an allocation beyond 4 KiB.

use crate::error::{Error, Result};
use crate::proto::subscription::Dtype;
use crate::proto::subscription::{MAX_NDIM, Part, Subscription};
use crate::proto::wire::{Reader, put_u16, put_u64};
use std::ops::Range;

/// Bytes reserved for the catalog at the start of a region.
pub const CATALOG_BYTES: usize = 4096;
/// Most arrays in one catalog.
pub const MAX_ARRAYS: usize = 64;
/// Longest array name in bytes.
pub const MAX_NAME: usize = 64;
/// Alignment of the arrays a [`CatalogBuilder`] lays out.
pub const ARRAY_ALIGN: u64 = 64;
const MAGIC: &[u8; 8] = b"VNCATLG1";

/// One named array: a C-ordered (row-major) array of `dtype` with `shape`,
/// whose element `[0, .., 0]` is at byte `offset` of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayInfo {
    /// Name (1..=64 ASCII bytes of letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// Byte offset in the region (>= [`CATALOG_BYTES`]).
    pub offset: u64,
    /// Element type.
    pub dtype: Dtype,
    /// Shape: 1..=8 dimensions, each > 0.
    pub shape: Vec<u64>,
}

impl ArrayInfo {
    /// Number of elements (checked: `None` on overflow).
    pub fn elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }

    /// Size in bytes (checked: `None` on overflow).
    pub fn byte_len(&self) -> Option<u64> {
        self.elements()?.checked_mul(self.dtype.size())
    }

    /// Byte offset in the region of the element at `index` (one index per dimension).
    pub fn element_offset(&self, index: &[u64]) -> Result<u64> {
        if index.len() != self.shape.len() || index.iter().zip(&self.shape).any(|(i, d)| i >= d) {
            return Err(Error::BadIndex { index: index.to_vec(), shape: self.shape.clone() });
        }
        // Checked: `self` may not come from a validated catalog.
        let flat = index.iter().zip(&self.shape).try_fold(0u64, |acc, (&i, &d)| acc.checked_mul(d)?.checked_add(i));
        flat.and_then(|f| f.checked_mul(self.dtype.size()))
            .and_then(|b| b.checked_add(self.offset))
            .ok_or(Error::CatalogMalformed("array size overflows"))
    }

    /// The subscription part selecting `ranges` of this array, packed at local `dst`.
    pub fn slice(&self, ranges: &[Range<u64>], dst: u64) -> Part {
        Part::Slice { base: self.offset, dtype: self.dtype, shape: self.shape.clone(), ranges: ranges.to_vec(), dst }
    }

    fn check_ranges(&self, ranges: &[Range<u64>]) -> Result<()> {
        let ok = ranges.len() == self.shape.len()
            && ranges.iter().zip(&self.shape).all(|(r, &d)| r.start < r.end && r.end <= d);
        if !ok {
            let index = ranges.iter().flat_map(|r| [r.start, r.end]).collect();
            return Err(Error::BadIndex { index, shape: self.shape.clone() });
        }
        Ok(())
    }
}

/// What to mirror of one named array: all of it, or index ranges per dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    /// Array name.
    pub name: String,
    /// One range per dimension, or `None` for the whole array.
    pub ranges: Option<Vec<Range<u64>>>,
}

impl Pick {
    /// The whole array `name`.
    pub fn all(name: &str) -> Self {
        Pick { name: name.to_owned(), ranges: None }
    }
    /// Index ranges of array `name` (e.g. rows 10..20, columns 0..64).
    pub fn slice(name: &str, ranges: &[Range<u64>]) -> Self {
        Pick { name: name.to_owned(), ranges: Some(ranges.to_vec()) }
    }
}

/// A validated catalog for a region of `region_size` bytes.
///
/// ```
/// use venom_net::{proto::catalog::{Catalog, Pick, CATALOG_BYTES}, Dtype};
/// let cat = Catalog::builder().array("prices", Dtype::F64, &[8]).array("grid", Dtype::U8, &[16, 16]).build()?;
/// assert_eq!(cat.get("prices")?.offset, CATALOG_BYTES as u64);
/// let bytes = cat.encode()?;
/// assert_eq!(Catalog::decode(&bytes)?, cat);
/// // A mirror wanting rows 2..4 of "grid": a byte subscription plus the local catalog.
/// let (sub, local) = cat.subscribe(&[Pick::slice("grid", &[2..4, 0..16])])?;
/// assert_eq!(local.get("grid")?.shape, vec![2, 16]);
/// assert_eq!(sub.compile(cat.region_size())?.total_len(), 32);
/// # Ok::<(), venom_net::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// Invariant: validated by [`validate`] against `region_size`.
    arrays: Vec<ArrayInfo>,
    region_size: u64,
}

/// Lays arrays out one after another behind the catalog prefix.
#[derive(Debug, Default)]
pub struct CatalogBuilder {
    arrays: Vec<(String, Dtype, Vec<u64>)>,
}

impl CatalogBuilder {
    /// Adds an array; errors surface in [`build`](Self::build).
    pub fn array(mut self, name: &str, dtype: Dtype, shape: &[u64]) -> Self {
        self.arrays.push((name.to_owned(), dtype, shape.to_vec()));
        self
    }

    /// Assigns offsets (64-byte aligned, from [`CATALOG_BYTES`]) and validates.
    pub fn build(self) -> Result<Catalog> {
        let mut next = CATALOG_BYTES as u64;
        let mut arrays = Vec::with_capacity(self.arrays.len());
        for (name, dtype, shape) in self.arrays {
            let info = ArrayInfo { name, offset: next, dtype, shape };
            let len = info.byte_len().ok_or(Error::CatalogMalformed("array size overflows"))?;
            next = next
                .checked_add(len)
                .and_then(|e| e.checked_next_multiple_of(ARRAY_ALIGN))
                .ok_or(Error::CatalogMalformed("region size overflows"))?;
            arrays.push(info);
        }
        let cat = Catalog::new(arrays, next)?;
        cat.encode()?; // fits in the prefix
        Ok(cat)
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Checks names, shapes, bounds, duplicates and overlaps.
fn validate(arrays: &[ArrayInfo], region_size: u64) -> Result<()> {
    if arrays.len() > MAX_ARRAYS {
        return Err(Error::CatalogMalformed("too many arrays"));
    }
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(arrays.len());
    for a in arrays {
        if !valid_name(&a.name) {
            return Err(Error::CatalogMalformed("bad array name"));
        }
        if a.shape.is_empty() || a.shape.len() > MAX_NDIM || a.shape.contains(&0) {
            return Err(Error::CatalogMalformed("shape needs 1..=8 dimensions, each > 0"));
        }
        let len = a.byte_len().ok_or(Error::CatalogMalformed("array size overflows"))?;
        let end = a.offset.checked_add(len);
        if a.offset < CATALOG_BYTES as u64 || end.is_none_or(|e| e > region_size) {
            return Err(Error::CatalogOutOfBounds {
                name: a.name.clone(),
                offset: a.offset,
                len,
                min: CATALOG_BYTES as u64,
                limit: region_size,
            });
        }
        spans.push((a.offset, a.offset + len, &a.name));
    }
    let mut names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::CatalogDuplicate(w[0].to_owned()));
    }
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[0].1 > w[1].0) {
        return Err(Error::CatalogOverlap(w[0].2.to_owned(), w[1].2.to_owned()));
    }
    Ok(())
}

impl Catalog {
    /// Starts a layout.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::default()
    }

    /// Validates explicit entries against a region of `region_size` bytes.
    pub fn new(arrays: Vec<ArrayInfo>, region_size: u64) -> Result<Catalog> {
        validate(&arrays, region_size)?;
        Ok(Catalog { arrays, region_size })
    }

    /// Region size the catalog was validated against (for a built catalog:
    /// the smallest region that holds it).
    pub fn region_size(&self) -> u64 {
        self.region_size
    }

    /// All arrays, in catalog order.
    pub fn arrays(&self) -> &[ArrayInfo] {
        &self.arrays
    }

    /// The array called `name`.
    pub fn get(&self, name: &str) -> Result<&ArrayInfo> {
        self.arrays.iter().find(|a| a.name == name).ok_or_else(|| Error::NoSuchArray(name.to_owned()))
    }

    /// The encoding: exactly [`CATALOG_BYTES`] bytes. Fails if the entries
    /// do not fit (64 arrays with long names and many dimensions may not).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(CATALOG_BYTES);
        out.extend_from_slice(MAGIC);
        put_u64(&mut out, self.region_size);
        put_u16(&mut out, self.arrays.len() as u16);
        for a in &self.arrays {
            out.push(a.name.len() as u8);
            out.extend_from_slice(a.name.as_bytes());
            out.push(a.dtype as u8);
            out.push(a.shape.len() as u8);
            put_u64(&mut out, a.offset);
            for &d in &a.shape {
                put_u64(&mut out, d);
            }
        }
        if out.len() > CATALOG_BYTES {
            return Err(Error::CatalogMalformed("catalog does not fit in 4 KiB"));
        }
        out.resize(CATALOG_BYTES, 0);
        Ok(out)
    }

    /// Decodes a catalog and validates it against its declared region size.
    pub fn decode(bytes: &[u8]) -> Result<Catalog> {
        let bytes = &bytes[..bytes.len().min(CATALOG_BYTES)];
        let mut r = Reader::new(bytes);
        if &r.array::<8>().map_err(|_| Error::CatalogMalformed("truncated header"))? != MAGIC {
            return Err(Error::CatalogMalformed("bad magic (no catalog in this region)"));
        }
        let trunc = |_| Error::CatalogMalformed("truncated entry");
        let region_size = r.u64().map_err(trunc)?;
        let count = r.u16().map_err(trunc)? as usize;
        if count > MAX_ARRAYS {
            return Err(Error::CatalogMalformed("too many arrays"));
        }
        let mut arrays = Vec::with_capacity(count);
        for _ in 0..count {
            let name_len = r.u8().map_err(trunc)? as usize;
            let name = std::str::from_utf8(r.bytes(name_len).map_err(trunc)?)
                .map_err(|_| Error::CatalogMalformed("bad array name"))?
                .to_owned();
            let dtype = Dtype::from_code(r.u8().map_err(trunc)?).ok_or(Error::CatalogMalformed("unknown dtype"))?;
            let ndim = r.u8().map_err(trunc)? as usize;
            if ndim == 0 || ndim > MAX_NDIM {
                return Err(Error::CatalogMalformed("shape needs 1..=8 dimensions, each > 0"));
            }
            let offset = r.u64().map_err(trunc)?;
            let mut shape = Vec::with_capacity(ndim);
            for _ in 0..ndim {
                shape.push(r.u64().map_err(trunc)?);
            }
            arrays.push(ArrayInfo { name, offset, dtype, shape });
        }
        Catalog::new(arrays, region_size)
    }

    /// Reads and validates the catalog of a venom-core region (one consistent read).
    pub fn read_from(region: &venom_core::SeqRegion) -> Result<Catalog> {
        let mut buf = vec![0u8; CATALOG_BYTES.min(region.size())];
        region.read_at(0, &mut buf)?;
        let cat = Catalog::decode(&buf)?;
        if cat.region_size != region.size() as u64 {
            return Err(Error::CatalogMalformed("declared region size differs from the region's"));
        }
        Ok(cat)
    }

    /// Writes the catalog into the first [`CATALOG_BYTES`] of `writer` (one
    /// version), declaring the writer's region size.
    pub fn write_to(&self, writer: &mut venom_core::SeqWriter) -> Result<u64> {
        if (writer.size() as u64) < self.region_size {
            return Err(Error::CatalogOutOfBounds {
                name: String::new(),
                offset: 0,
                len: self.region_size,
                min: 0,
                limit: writer.size() as u64,
            });
        }
        let cat = Catalog::new(self.arrays.clone(), writer.size() as u64)?;
        Ok(writer.write_at(0, &cat.encode()?)?)
    }

    /// Compiles `picks` into a byte [`Subscription`] against this (remote)
    /// catalog, and the catalog of the mirror's local region: the local region
    /// gets its own catalog prefix, then each picked array (or slice, with
    /// the sliced shape) packed and 64-byte aligned. The remote catalog
    /// itself is not subscribed: write the returned local catalog into the
    /// local region before mirroring into it (as [`NamedMirror`](crate::named::NamedMirror) does).
    pub fn subscribe(&self, picks: &[Pick]) -> Result<(Subscription, Catalog)> {
        let mut parts = Vec::with_capacity(picks.len());
        let mut local = Vec::with_capacity(picks.len());
        let mut dst = CATALOG_BYTES as u64;
        for p in picks {
            let a = self.get(&p.name)?;
            let ranges = match &p.ranges {
                Some(r) => {
                    a.check_ranges(r)?;
                    r.clone()
                }
                None => a.shape.iter().map(|&d| 0..d).collect(),
            };
            let shape: Vec<u64> = ranges.iter().map(|r| r.end - r.start).collect();
            let info = ArrayInfo { name: a.name.clone(), offset: dst, dtype: a.dtype, shape };
            parts.push(a.slice(&ranges, dst));
            dst = info
                .byte_len()
                .and_then(|l| dst.checked_add(l))
                .and_then(|e| e.checked_next_multiple_of(ARRAY_ALIGN))
                .ok_or(Error::CatalogMalformed("local layout overflows"))?;
            local.push(info);
        }
        if parts.is_empty() {
            return Err(Error::InvalidSubscription("no arrays picked".into()));
        }
        let local = Catalog::new(local, dst)?;
        Ok((Subscription { parts }, local))
    }
}

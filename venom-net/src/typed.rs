//! Typed views of named arrays (bytemuck): read and write `f64`, `f32`,
//! `i64`, `u8`... arrays in a region without `unsafe`.
//!
//! * [`Array<T>`]: a dtype-checked handle for one array (from a [`Catalog`]
//!   or an [`ArrayInfo`]).
//! * [`ArrayView`]: reads through a venom-core `SeqRegion` (a mirror's local
//!   region, or the publisher's): every call is one consistent seqlock read
//!   (`get` one element, `copy_row` one row, `read_all` the whole array).
//! * [`write_step`]: everything written through the [`ArrayWriter`] it lends
//!   is ONE `SeqWriter::write_with` window, so readers (and mirrors, which
//!   replicate versions) see the whole step or none of it.

use crate::proto::catalog::{ArrayInfo, Catalog};
use crate::{Dtype, Error, Result};
use std::marker::PhantomData;
use venom_core::{RegionWrite, SeqRegion, SeqWriter};

/// A plain element type with its [`Dtype`].
pub trait Element: bytemuck::Pod {
    /// The matching dtype.
    const DTYPE: Dtype;
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => { $(impl Element for $t { const DTYPE: Dtype = Dtype::$d; })* };
}
element!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32, u64 => U64, i64 => I64, f64 => F64);

/// A typed handle for one array. Invariants: `info.dtype == T::DTYPE`, the
/// array's byte length fits in `u64` and `usize`.
#[derive(Debug, Clone)]
pub struct Array<T> {
    info: ArrayInfo,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> Array<T> {
    /// Checks that `info` holds `T`s.
    pub fn new(info: &ArrayInfo) -> Result<Self> {
        if info.dtype != T::DTYPE {
            return Err(Error::DtypeMismatch { name: info.name.clone(), found: info.dtype, wanted: T::DTYPE });
        }
        let len = info.byte_len().filter(|&l| usize::try_from(l).is_ok() && info.offset.checked_add(l).is_some());
        if info.shape.is_empty() || len.is_none() {
            return Err(Error::CatalogMalformed("array size overflows"));
        }
        Ok(Array { info: info.clone(), _t: PhantomData })
    }

    /// The array `name` of `catalog`.
    pub fn from_catalog(catalog: &Catalog, name: &str) -> Result<Self> {
        Self::new(catalog.get(name)?)
    }

    /// Name, offset, dtype and shape.
    pub fn info(&self) -> &ArrayInfo {
        &self.info
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.info.elements().unwrap_or(0) as usize // fits: checked in `new`
    }

    /// Always false (shapes have no zero dimension in a validated catalog).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements per row (product of all dimensions but the first).
    pub fn row_len(&self) -> usize {
        self.info.shape[1..].iter().product::<u64>() as usize
    }

    fn row_offset(&self, row: u64, n: usize) -> Result<usize> {
        if row >= self.info.shape[0] || n != self.row_len() {
            return Err(Error::BadIndex { index: vec![row, n as u64], shape: self.info.shape.clone() });
        }
        Ok((self.info.offset + row * (self.row_len() as u64) * self.info.dtype.size()) as usize)
    }

    fn check_all(&self, n: usize) -> Result<()> {
        if n != self.len() {
            return Err(Error::BadIndex { index: vec![n as u64], shape: self.info.shape.clone() });
        }
        Ok(())
    }

    /// A reader over `region` (which must hold the array).
    pub fn view<'r>(&self, region: &'r SeqRegion) -> ArrayView<'r, T> {
        ArrayView { region, array: self.clone() }
    }
}

/// Consistent typed reads of one array in a `SeqRegion`.
///
/// ```
/// use venom_net::{proto::catalog::Catalog, typed::{write_step, Array}, Dtype};
/// let cat = Catalog::builder().array("grid", Dtype::F64, &[4, 3]).build()?;
/// let name = format!("doc-typed-{}", std::process::id());
/// let mut w = venom_core::SeqWriter::create(&name, venom_core::RegionConfig::new(cat.region_size() as usize))?;
/// cat.write_to(&mut w)?;
/// let grid = Array::<f64>::from_catalog(&Catalog::read_from(&w)?, "grid")?;
/// write_step(&mut w, |step| {
///     step.set(&grid, &[1, 2], 7.5)?;
///     step.write_row(&grid, 3, &[1.0, 2.0, 3.0])
/// })?;
/// let view = grid.view(&w);
/// assert_eq!(view.get(&[1, 2])?, 7.5);
/// let mut row = [0.0; 3];
/// view.copy_row(3, &mut row)?;
/// assert_eq!(row, [1.0, 2.0, 3.0]);
/// w.unlink()?;
/// # Ok::<(), venom_net::Error>(())
/// ```
pub struct ArrayView<'r, T> {
    region: &'r SeqRegion,
    array: Array<T>,
}

impl<T: Element> ArrayView<'_, T> {
    /// The array's handle.
    pub fn array(&self) -> &Array<T> {
        &self.array
    }

    /// One element.
    pub fn get(&self, index: &[u64]) -> Result<T> {
        let off = self.array.info.element_offset(index)?;
        Ok(self.region.read_pod::<T>(off as usize)?)
    }

    /// Row `row` (first index) into `out` (`out.len() == row_len()`); returns the version read.
    pub fn copy_row(&self, row: u64, out: &mut [T]) -> Result<u64> {
        let off = self.array.row_offset(row, out.len())?;
        Ok(self.region.read_at(off, bytemuck::cast_slice_mut(out))?)
    }

    /// The whole array into `out` (resized), in one consistent read; returns the version.
    pub fn read_all(&self, out: &mut Vec<T>) -> Result<u64> {
        out.resize(self.array.len(), T::zeroed());
        Ok(self.region.read_at(self.array.info.offset as usize, bytemuck::cast_slice_mut(out))?)
    }
}

/// Typed writes inside one [`write_step`] window.
pub struct ArrayWriter<'a, 'b> {
    w: &'a mut RegionWrite<'b>,
}

impl ArrayWriter<'_, '_> {
    /// Sets one element.
    pub fn set<T: Element>(&mut self, a: &Array<T>, index: &[u64], v: T) -> Result<()> {
        let off = a.info.element_offset(index)?;
        Ok(self.w.store(off as usize, &v)?)
    }

    /// Writes row `row` (`vals.len() == row_len()`).
    pub fn write_row<T: Element>(&mut self, a: &Array<T>, row: u64, vals: &[T]) -> Result<()> {
        let off = a.row_offset(row, vals.len())?;
        Ok(self.w.write_at(off, bytemuck::cast_slice(vals))?)
    }

    /// Writes the whole array (`vals.len() == len()`).
    pub fn write_all<T: Element>(&mut self, a: &Array<T>, vals: &[T]) -> Result<()> {
        a.check_all(vals.len())?;
        Ok(self.w.write_at(a.info.offset as usize, bytemuck::cast_slice(vals))?)
    }
}

/// Runs `f` as ONE atomic step of `writer` (one `write_with` window) and
/// returns its result and the new version. If `f` fails, what it wrote
/// before failing is still published (as with `write_with`).
pub fn write_step<R>(
    writer: &mut SeqWriter,
    f: impl FnOnce(&mut ArrayWriter<'_, '_>) -> Result<R>,
) -> Result<(R, u64)> {
    let mut out = None;
    let ((), v) = writer.write_with(|w| {
        out = Some(f(&mut ArrayWriter { w }));
        Ok(())
    })?;
    out.ok_or(Error::Closed)?.map(|r| (r, v))
}

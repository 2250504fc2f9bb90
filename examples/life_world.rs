//! A Game of Life world kept in a venom `SeqRegion` with a catalog, for the
//! browser view (`web_view` example) and its headless-browser test.
//!
//! Arrays: `grid` (u8, n x n, 1 = alive), `heat` (f32, n x n: 1.0 where a
//! cell is alive, decaying by 0.85 per generation after it dies, 0 below
//! 0.02) and `population` (u32 x 3: alive, born, died this generation).
//! Every generation is written as ONE atomic step.

use venom_core::{RegionConfig, SeqWriter};
use venom_net::proto::catalog::Catalog;
use venom_net::typed::{Array, write_step};
use venom_net::{Dtype, Result};

/// The region layout for an `n` x `n` world.
pub fn catalog(n: usize) -> Result<Catalog> {
    Catalog::builder()
        .array("grid", Dtype::U8, &[n as u64, n as u64])
        .array("heat", Dtype::F32, &[n as u64, n as u64])
        .array("population", Dtype::U32, &[3])
        .build()
}

/// A random start (xorshift; about one cell in four alive).
pub fn seed(n: usize, mut x: u64) -> Vec<u8> {
    x |= 1;
    (0..n * n).map(|_| crate::xorshift64(&mut x).is_multiple_of(4) as u8).collect()
}

/// One generation on a torus; returns (born, died).
pub fn step(n: usize, g: &[u8], out: &mut [u8]) -> (u32, u32) {
    let (mut born, mut died) = (0, 0);
    for r in 0..n {
        for c in 0..n {
            let mut k = 0;
            for (dr, dc) in [(n - 1, n - 1), (n - 1, 0), (n - 1, 1), (0, n - 1), (0, 1), (1, n - 1), (1, 0), (1, 1)] {
                k += g[((r + dr) % n) * n + (c + dc) % n];
            }
            let was = g[r * n + c];
            let now = (k == 3 || (k == 2 && was == 1)) as u8;
            born += (now > was) as u32;
            died += (now < was) as u32;
            out[r * n + c] = now;
        }
    }
    (born, died)
}

/// The world and the writer of its region.
pub struct LifeWorld {
    n: usize,
    cells: Vec<u8>,
    next: Vec<u8>,
    heat: Vec<f32>,
    writer: SeqWriter,
    arrays: (Array<u8>, Array<f32>, Array<u32>),
    generation: u64,
    version: u64,
}

impl LifeWorld {
    /// Creates region `name` (mode 0600) holding an `n` x `n` world seeded
    /// from `seed_value`, and writes generation 0.
    pub fn create(name: &str, n: usize, seed_value: u64) -> Result<LifeWorld> {
        let cat = catalog(n)?;
        let mut writer = SeqWriter::create(name, RegionConfig::new(cat.region_size() as usize))?;
        cat.write_to(&mut writer)?;
        let arrays = (
            Array::from_catalog(&cat, "grid")?,
            Array::from_catalog(&cat, "heat")?,
            Array::from_catalog(&cat, "population")?,
        );
        let cells = seed(n, seed_value);
        let heat = cells.iter().map(|&c| c as f32).collect();
        let mut w = LifeWorld { n, cells, next: vec![0; n * n], heat, writer, arrays, generation: 0, version: 0 };
        w.write(0, 0)?;
        Ok(w)
    }

    fn write(&mut self, born: u32, died: u32) -> Result<()> {
        let alive = self.cells.iter().map(|&c| c as u32).sum();
        let (grid, heat, pop) = &self.arrays;
        let ((), v) = write_step(&mut self.writer, |s| {
            s.write_all(grid, &self.cells)?;
            s.write_all(heat, &self.heat)?;
            s.write_all(pop, &[alive, born, died])
        })?;
        self.version = v;
        Ok(())
    }

    /// Advances one generation and writes it; returns the region version
    /// that holds it.
    pub fn advance(&mut self) -> Result<u64> {
        let (born, died) = step(self.n, &self.cells, &mut self.next);
        std::mem::swap(&mut self.cells, &mut self.next);
        for (h, &c) in self.heat.iter_mut().zip(&self.cells) {
            *h = if c == 1 {
                1.0
            } else if *h * 0.85 < 0.02 {
                0.0
            } else {
                *h * 0.85
            };
        }
        self.generation += 1;
        self.write(born, died)?;
        Ok(self.version)
    }

    /// The cells of the current generation (row-major, 1 = alive).
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }

    /// Region version of the last write.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Generations since the seed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Side length.
    pub fn size(&self) -> usize {
        self.n
    }

    /// The writer (e.g. to unlink the region).
    pub fn writer(&self) -> &SeqWriter {
        &self.writer
    }
}

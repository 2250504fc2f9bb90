//! Cutting shared bytes to one subscription: the per-mirror work of the
//! fan-out, O(runs) bookkeeping and no diff.
//!
//! A [`Piece`] is a run of a mirror's update in *virtual* offsets (see
//! [`crate::proto::subscription`]) whose bytes live in a shared buffer: a
//! backlog delta's encoded frames, or a chunk of a [`ShadowView`]. Pieces
//! are produced sorted by `virt` and disjoint, which is what the mirror
//! checks.

use crate::proto::backlog::{Delta, DeltaRun};
use crate::proto::encoder::ShadowView;
use crate::proto::subscription::CompiledSubscription;
use std::collections::BTreeMap;
use std::sync::Arc;

/// `len` bytes of a mirror's update at virtual offset `virt`, stored at
/// `buf[at..at + len]`.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub(crate) virt: u64,
    pub(crate) len: u64,
    pub(crate) buf: Arc<Vec<u8>>,
    pub(crate) at: usize,
}

#[cfg(test)]
impl Piece {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len as usize]
    }
}

/// Calls `f(virt, offset in the run, len)` for each subscribed part of the
/// region range `src..src + len`.
fn overlap(sub: &CompiledSubscription, src: u64, len: u64, mut f: impl FnMut(u64, u64, u64)) {
    let end = src + len;
    for r in &sub.runs()[sub.first_run_ending_after(src)..] {
        if r.src >= end {
            break;
        }
        let lo = r.src.max(src);
        let hi = (r.src + r.len).min(end);
        f(r.virt + (lo - r.src), lo - src, hi - lo);
    }
}

/// The subscribed parts of delta runs (sorted by `src`, disjoint; bytes in `buf`).
fn cut_runs<'a>(
    runs: impl Iterator<Item = &'a DeltaRun>,
    buf: &Arc<Vec<u8>>,
    sub: &CompiledSubscription,
) -> Vec<Piece> {
    let mut out = Vec::new();
    for r in runs {
        overlap(sub, r.src, r.len, |virt, skip, len| {
            out.push(Piece { virt, len, buf: buf.clone(), at: r.at + skip as usize });
        });
    }
    out
}

/// One delta cut to a subscription.
pub(crate) fn cut_delta(d: &Delta, sub: &CompiledSubscription) -> Vec<Piece> {
    cut_runs(d.runs.iter(), d.payload_buf(), sub)
}

/// The merge of consecutive deltas (oldest first) cut to a subscription:
/// every byte any of them changed, with the value of the newest one that
/// changed it. This is the catch-up of a mirror that is behind (and
/// conflates: each byte is sent once, however often it changed).
pub(crate) fn cut_merged(deltas: &[Arc<Delta>], sub: &CompiledSubscription) -> Vec<Piece> {
    match deltas {
        [] => return Vec::new(),
        [d] => return cut_delta(d, sub),
        _ => {}
    }
    // Newest first: a range is taken from the newest delta that covers it;
    // `covered` (start -> end, disjoint) is what newer deltas already gave.
    let mut covered: BTreeMap<u64, u64> = BTreeMap::new();
    let mut runs: Vec<(DeltaRun, usize)> = Vec::new();
    for (i, d) in deltas.iter().enumerate().rev() {
        for r in &d.runs {
            let (mut pos, end) = (r.src, r.src + r.len);
            let mut fresh = Vec::new();
            // Covered ranges overlapping [pos, end): the one starting before
            // `pos` (if it reaches past it) and those starting inside.
            let first = covered.range(..=pos).next_back().filter(|(_, e)| **e > pos).map(|(&s, _)| s).unwrap_or(pos);
            for (&s, &e) in covered.range(first..end) {
                if s > pos {
                    fresh.push((pos, s - pos));
                }
                pos = pos.max(e);
            }
            if pos < end {
                fresh.push((pos, end - pos));
            }
            for (s, l) in fresh {
                covered.insert(s, s + l);
                runs.push((DeltaRun { src: s, len: l, at: r.at + (s - r.src) as usize }, i));
            }
        }
    }
    runs.sort_unstable_by_key(|(r, _)| r.src);
    let mut out = Vec::new();
    for (r, i) in &runs {
        let buf = deltas[*i].payload_buf();
        overlap(sub, r.src, r.len, |virt, skip, len| {
            out.push(Piece { virt, len, buf: buf.clone(), at: r.at + skip as usize });
        });
    }
    out
}

/// The virtual ranges `(virt, len)` (sorted, disjoint) of a view, cut into
/// pieces of its chunks.
pub(crate) fn from_view(view: &ShadowView, sub: &CompiledSubscription, ranges: &[(u64, u64)]) -> Vec<Piece> {
    let mut out = Vec::new();
    for &(virt, len) in ranges {
        let mut i = sub.runs().partition_point(|r| r.virt + r.len <= virt);
        let (mut pos, end) = (virt, virt + len);
        while pos < end {
            let Some(r) = sub.runs().get(i) else { break }; // ranges stay inside the subscription
            let within = pos - r.virt;
            let n = (r.len - within).min(end - pos);
            let base = pos;
            view.for_each_piece(r.src + within, n, |at, chunk, from, k| {
                out.push(Piece { virt: base + at as u64, len: k as u64, buf: chunk.clone(), at: from });
            });
            pos += n;
            i += 1;
        }
    }
    out
}

/// The virtual ranges of pieces, touching ones merged.
pub(crate) fn ranges_of(pieces: &[Piece]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for p in pieces {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == p.virt => last.1 += p.len,
            _ => out.push((p.virt, p.len)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::encoder::{EncoderConfig, RegionEncoder};
    use crate::proto::region::MemRegion;
    use crate::proto::subscription::Subscription;

    fn apply(state: &mut [u8], pieces: &[Piece]) {
        let mut next = 0;
        for p in pieces {
            assert!(p.virt >= next, "sorted and disjoint");
            next = p.virt + p.len;
            state[p.virt as usize..next as usize].copy_from_slice(p.bytes());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// From any position of the chain, the merged catch-up cut to any
        /// set of ranges gives exactly the newest subscribed bytes.
        #[test]
        fn merged_catch_up_from_any_position(
            writes in proptest::collection::vec(
                proptest::collection::vec((0usize..4000, 1usize..200, proptest::prelude::any::<u8>()), 1..6), 1..12),
            cuts in proptest::collection::vec((0u64..4000, 1u64..1500), 1..4),
            gap in 0usize..40,
            from in 0usize..12,
        ) {
            let region = MemRegion::new(4096, 256);
            let cfg = EncoderConfig { frame_payload: 333, merge_gap: gap, ..Default::default() };
            let mut enc = RegionEncoder::from_region(1, &region, cfg).unwrap();
            let mut states = vec![(enc.version(), region.to_vec())];
            for step in &writes {
                for &(off, len, byte) in step {
                    let len = len.min(4096 - off);
                    region.write_at(off, &vec![byte; len]);
                }
                enc.step(&region, 0).unwrap();
                states.push((enc.version(), region.to_vec()));
            }
            // Disjoint ranges: sort and clip the requested cuts.
            let mut sub = Subscription { parts: Vec::new() };
            let (mut next, mut dst) = (0u64, 0u64);
            let mut sorted = cuts.clone();
            sorted.sort_unstable();
            for (src, len) in sorted {
                let src = src.max(next);
                let len = len.min(4096u64.saturating_sub(src));
                if len == 0 { continue; }
                sub.parts.push(crate::proto::subscription::Part::Range { src, len, dst });
                (next, dst) = (src + len, dst + len);
            }
            proptest::prop_assume!(!sub.parts.is_empty());
            let c = sub.compile(4096).unwrap();
            let virt = |data: &[u8]| -> Vec<u8> {
                c.runs().iter().flat_map(|r| data[r.src as usize..(r.src + r.len) as usize].to_vec()).collect()
            };
            let (seq, at) = &states[from.min(states.len() - 1)];
            let mut mirror = virt(at);
            let deltas = enc.backlog().since(1, *seq).unwrap();
            apply(&mut mirror, &cut_merged(&deltas, &c));
            proptest::prop_assert_eq!(mirror, virt(&region.to_vec()));
        }
    }

    #[test]
    fn merged_catch_up_equals_the_newest_state() {
        let region = MemRegion::new(8192, 512);
        let cfg = EncoderConfig { frame_payload: 300, merge_gap: 4, ..Default::default() };
        let mut enc = RegionEncoder::from_region(1, &region, cfg).unwrap();
        let sub = Subscription::range(100, 3000, 0).with(crate::proto::subscription::Part::Range {
            src: 5000,
            len: 2000,
            dst: 3000,
        });
        let c = sub.compile(8192).unwrap();
        let subscribed = |data: &[u8]| [&data[100..3100], &data[5000..7000]].concat();
        let mut mirror = subscribed(&region.to_vec());
        let start = enc.version();
        let mut x = 1u64;
        for step in 0..20u64 {
            for _ in 0..5 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let off = (x >> 33) as usize % 8000;
                region.write_at(off, &[step as u8 + 1; 40][..1 + (x as usize % 40)]);
            }
            enc.step(&region, step).unwrap();
        }
        let deltas = enc.backlog().since(1, start).unwrap();
        assert_eq!(deltas.len(), 20);
        apply(&mut mirror, &cut_merged(&deltas, &c));
        assert_eq!(mirror, subscribed(&region.to_vec()));
        // One delta at a time gives the same bytes.
        let mut one_by_one = subscribed(&MemRegion::new(8192, 512).to_vec());
        for d in &deltas {
            apply(&mut one_by_one, &cut_delta(d, &c));
        }
        assert_eq!(one_by_one, mirror);
        // And the view gives the whole subscription.
        let mut snap = vec![0u8; c.total_len() as usize];
        apply(&mut snap, &from_view(&enc.view(), &c, &[(0, c.total_len())]));
        assert_eq!(snap, mirror);
    }
}

//! Changed-byte-run detection against a shadow copy (QEMU XBZRLE-style: the
//! "XOR with the cached page, run-length-encode the zeros" idea, emitted as
//! runs instead of an encoded stream).

/// Calls `emit(offset, len)` for every run where `new` differs from `old`.
/// Runs separated by fewer than `merge_gap` equal bytes are merged (a run
/// header costs 12 bytes on the wire, so resending a few equal bytes is
/// cheaper). Equal 64-byte blocks are skipped with one slice comparison.
pub(crate) fn changed_runs(old: &[u8], new: &[u8], merge_gap: usize, mut emit: impl FnMut(usize, usize)) {
    const BLOCK: usize = 64;
    let n = old.len().min(new.len());
    let mut run: Option<(usize, usize)> = None; // (start, end) of the pending run
    let mut i = 0;
    while i < n {
        if i % BLOCK == 0 && i + BLOCK <= n && old[i..i + BLOCK] == new[i..i + BLOCK] {
            i += BLOCK;
            continue;
        }
        if old[i] != new[i] {
            match &mut run {
                Some((_, e)) if i - *e < merge_gap => *e = i + 1,
                _ => {
                    if let Some((s, e)) = run.take() {
                        emit(s, e - s);
                    }
                    run = Some((i, i + 1));
                }
            }
        }
        i += 1;
    }
    if let Some((s, e)) = run {
        emit(s, e - s);
    }
}

#[cfg(test)]
mod tests {
    use super::changed_runs;

    fn runs(old: &[u8], new: &[u8], gap: usize) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        changed_runs(old, new, gap, |o, l| v.push((o, l)));
        v
    }

    #[test]
    fn finds_and_merges_runs() {
        let old = vec![0u8; 300];
        let mut new = old.clone();
        assert!(runs(&old, &new, 4).is_empty());
        new[5] = 1;
        new[7] = 1;
        new[200] = 1;
        new[299] = 9;
        assert_eq!(runs(&old, &new, 4), vec![(5, 3), (200, 1), (299, 1)]);
        assert_eq!(runs(&old, &new, 0), vec![(5, 1), (7, 1), (200, 1), (299, 1)]);
    }
}

//! Work spread over the thread pool whose results are merged in program order, so that what
//! a stage reports does not depend on how many threads ran it.

use rayon::prelude::*;

/// How many items are mapped before their results are merged: enough to keep the threads
/// busy, few enough that the results waiting to be merged stay small beside the program.
const BATCH: usize = 1024;

/// Maps every item of `items` on the thread pool and hands `merge` the results one at a time,
/// in the items' order, with each item's index. Items are mapped a batch at a time, so at most
/// a batch of results is held.
pub fn map_in_order<T: Sync, R: Send>(
    items: &[T],
    map: impl Fn(usize, &T) -> R + Sync,
    mut merge: impl FnMut(usize, R),
) {
    for start in (0..items.len()).step_by(BATCH) {
        let end = items.len().min(start + BATCH);
        let results: Vec<R> = items[start..end]
            .par_iter()
            .enumerate()
            .map(|(i, item)| map(start + i, item))
            .collect();
        for (i, r) in results.into_iter().enumerate() {
            merge(start + i, r);
        }
    }
}

//! The data pipeline's random streams, defined in the module documentation of [`super`]
//! ("Randomness"). The paths in use: `[0, i]` sample `i` of a generator, `[1]` the centres of
//! `blobs`, `[2]` a split's shuffle, `[3, epoch]` the order of an epoch, `[4, epoch, field, step,
//! i]` an augmentation of training sample `i`, `[5, h]` the default seed of a generator whose
//! source name hashes (FNV-1a, 64 bits) to `h`, `[6, h]` the order in which a `text` source with
//! `shuffle: true` streams the documents of the split whose name hashes to `h`.

use crate::tensor::random::bits;

pub(super) struct Rng {
    key: u64,
    draws: u64,
}

impl Rng {
    pub fn new(seed: u64, path: &[u64]) -> Rng {
        Rng {
            key: path.iter().fold(seed, |k, &p| bits(k, p)),
            draws: 0,
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let b = bits(self.key, self.draws);
        self.draws += 1;
        b
    }

    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// FNV-1a, 64 bits: a stable hash of a source's name for its default seed.
pub(super) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

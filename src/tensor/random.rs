//! The counter-based random number generator of `rand_uniform` and `rand_normal`.
//!
//! Element `i` (row-major) of a random node depends only on the key `[seed, counter]`, the
//! node's `stream` and `i`, so any backend can compute any element independently, in any order,
//! on any thread. The exact formula, which every backend reproduces:
//!
//! ```text
//! mix(z)      = splitmix64's finalizer:
//!               z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//!               z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//!               z ^ (z >> 31)                         (all u64, wrapping)
//! G           = 0x9E3779B97F4A7C15
//! key         = mix(mix(u32(seed) ^ G) ^ (u32(counter) << 32 | stream))
//! bits(j)     = mix(key + (j + 1) * G)                (the j-th output of splitmix64 from `key`)
//! uniform f32 = (bits(i) >> 40) · 2⁻²⁴                in [0, 1), exact in f32
//! uniform f64 = (bits(i) >> 11) · 2⁻⁵³                in [0, 1), exact in f64
//! normal      = sqrt(−2 · ln(1 − u₁)) · cos(2π · u₂)   u₁ = uniform(bits(2i)), u₂ = uniform(bits(2i + 1))
//! ```
//!
//! `u32(x)` reinterprets an i32's bits. Normals are computed in the node's precision (f32 for an
//! f32 node) from that precision's uniforms; `1 − u₁` lies in (0, 1], so the logarithm is finite.
//! For a fixed seed, `mix` being a bijection makes `key` distinct for every (counter, stream).

use crate::ir::Dist;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 64-bit state of one random node, from the key `[seed, counter]` and its stream.
pub fn node_key(seed: i32, counter: i32, stream: u32) -> u64 {
    let seeded = mix(u64::from(seed as u32) ^ GOLDEN);
    mix(seeded ^ (u64::from(counter as u32) << 32 | u64::from(stream)))
}

/// The `j`-th 64 random bits of a node.
pub fn bits(key: u64, j: u64) -> u64 {
    mix(key.wrapping_add(j.wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// Element `i` of an f32 random node with the given `node_key`.
pub fn sample_f32(dist: Dist, key: u64, i: u64) -> f32 {
    let uniform = |j: u64| (bits(key, j) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
    match dist {
        Dist::Uniform => uniform(i),
        Dist::Normal => {
            let (u1, u2) = (uniform(2 * i), uniform(2 * i + 1));
            (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        }
    }
}

/// Element `i` of an f64 random node with the given `node_key`.
pub fn sample_f64(dist: Dist, key: u64, i: u64) -> f64 {
    let uniform = |j: u64| (bits(key, j) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    match dist {
        Dist::Uniform => uniform(i),
        Dist::Normal => {
            let (u1, u2) = (uniform(2 * i), uniform(2 * i + 1));
            (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }
}

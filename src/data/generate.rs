//! Synthetic data sets. Each makes the columns `x` and `y`; sample `i` is drawn from its own
//! stream `Rng::new(seed, [0, i])`, so it depends only on the seed and `i` (and, for `blobs`,
//! the centres): the first 100 samples of `n: 1000` are the samples of `n: 100`. The exact
//! definitions are in the module documentation of [`super`].

use super::random::Rng;
use super::source::{NamedArray, Values};
use std::f64::consts::{PI, TAU};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    Copy,
    Reverse,
    Sort,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Generator {
    Xor {
        n: usize,
        noise: f64,
    },
    Spirals {
        n: usize,
        classes: usize,
        noise: f64,
    },
    Blobs {
        n: usize,
        centers: usize,
        features: usize,
        std: f64,
    },
    Sine {
        n: usize,
        length: usize,
    },
    Tokens {
        task: Task,
        n: usize,
        length: usize,
        vocab: usize,
    },
}

/// The most values one column of a generator may hold, so that a typo cannot exhaust memory.
const MAX_VALUES: usize = 1 << 28;

impl Generator {
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Xor { .. } => "xor",
            Generator::Spirals { .. } => "spirals",
            Generator::Blobs { .. } => "blobs",
            Generator::Sine { .. } => "sine",
            Generator::Tokens { task, .. } => match task {
                Task::Copy => "copy_task",
                Task::Reverse => "reverse_task",
                Task::Sort => "sort_task",
            },
        }
    }

    /// The samples and the per-sample shapes of `x` and `y`.
    fn size(&self) -> (usize, Vec<usize>, Vec<usize>) {
        match *self {
            Generator::Xor { n, .. } | Generator::Spirals { n, .. } => (n, vec![2], vec![]),
            Generator::Blobs { n, features, .. } => (n, vec![features], vec![]),
            Generator::Sine { n, length } => (n, vec![length, 1], vec![1]),
            Generator::Tokens { n, length, .. } => (n, vec![length], vec![length]),
        }
    }

    /// The columns `x` and `y`, attributed to origin `origin`.
    pub(super) fn generate(&self, seed: u64, origin: usize) -> Result<Vec<NamedArray>, String> {
        let (n, x_shape, y_shape) = self.size();
        let per: usize = x_shape.iter().product();
        if n.checked_mul(per).is_none_or(|t| t > MAX_VALUES) {
            return Err(format!(
                "`{}` would make more than {MAX_VALUES} values per column",
                self.name()
            ));
        }
        let sample = |i: usize| Rng::new(seed, &[0, i as u64]);
        let (x, y) = match *self {
            Generator::Xor { n, noise } => {
                let (mut x, mut y) = (Vec::with_capacity(n * per), Vec::with_capacity(n));
                for i in 0..n {
                    let mut r = sample(i);
                    let (a, b) = (r.between(-1.0, 1.0), r.between(-1.0, 1.0));
                    let (ea, eb) = (r.normal(), r.normal());
                    x.extend([a + noise * ea, b + noise * eb]);
                    y.push(i32::from((a > 0.0) != (b > 0.0)));
                }
                (Values::F64(x), Values::I32(y))
            }
            Generator::Spirals { n, classes, noise } => {
                let (mut x, mut y) = (Vec::with_capacity(n * per), Vec::with_capacity(n));
                for i in 0..n {
                    let mut r = sample(i);
                    let class = i % classes;
                    let t = r.uniform();
                    let angle = TAU * class as f64 / classes as f64 + 3.0 * PI * t;
                    let (ea, eb) = (r.normal(), r.normal());
                    x.extend([t * angle.cos() + noise * ea, t * angle.sin() + noise * eb]);
                    y.push(class as i32);
                }
                (Values::F64(x), Values::I32(y))
            }
            Generator::Blobs {
                n,
                centers,
                features,
                std,
            } => {
                if centers.checked_mul(features).is_none_or(|t| t > MAX_VALUES) {
                    return Err(format!(
                        "`blobs` would make more than {MAX_VALUES} centre coordinates"
                    ));
                }
                let mut r = Rng::new(seed, &[1]);
                let centres: Vec<f64> = (0..centers * features)
                    .map(|_| r.between(-10.0, 10.0))
                    .collect();
                let (mut x, mut y) = (Vec::with_capacity(n * per), Vec::with_capacity(n));
                for i in 0..n {
                    let mut r = sample(i);
                    let class = i % centers;
                    let c = &centres[class * features..(class + 1) * features];
                    x.extend(c.iter().map(|m| m + std * r.normal()));
                    y.push(class as i32);
                }
                (Values::F64(x), Values::I32(y))
            }
            Generator::Sine { n, length } => {
                let (mut x, mut y) = (Vec::with_capacity(n * per), Vec::with_capacity(n));
                for i in 0..n {
                    let mut r = sample(i);
                    let amplitude = r.between(0.5, 1.0);
                    let freq = r.between(0.1, 0.5);
                    let phase = r.between(0.0, TAU);
                    let at = |t: usize| amplitude * (freq * t as f64 + phase).sin();
                    x.extend((0..length).map(at));
                    y.push(at(length));
                }
                (Values::F64(x), Values::F64(y))
            }
            Generator::Tokens {
                task,
                n,
                length,
                vocab,
            } => {
                let mut xs: Vec<i32> = Vec::with_capacity(n * length);
                let mut ys: Vec<i32> = Vec::with_capacity(n * length);
                for i in 0..n {
                    let mut r = sample(i);
                    let tokens: Vec<i32> =
                        (0..length).map(|_| r.below(vocab as u64) as i32).collect();
                    let mut target = tokens.clone();
                    match task {
                        Task::Copy => {}
                        Task::Reverse => target.reverse(),
                        Task::Sort => target.sort_unstable(),
                    }
                    xs.extend(tokens);
                    ys.extend(target);
                }
                (Values::I32(xs), Values::I32(ys))
            }
        };
        Ok(vec![
            NamedArray {
                name: "x".into(),
                rows: n,
                shape: x_shape,
                values: x,
                origin,
            },
            NamedArray {
                name: "y".into(),
                rows: n,
                shape: y_shape,
                values: y,
                origin,
            },
        ])
    }
}

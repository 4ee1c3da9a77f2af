//! Random draws of the strategies: counter-based, so a trial's draws depend on the seed and the
//! trial's number alone (`[seed, stream, trial, dimension]`), whatever ran before it.

use super::{Config, Dim, Space, Value};
use crate::tensor::random::bits;

/// The streams of draws.
pub const STREAM_CONFIG: u64 = 1;
pub const STREAM_TPE: u64 = 2;

pub struct Rng {
    key: u64,
    draws: u64,
}

impl Rng {
    pub fn new(seed: u64, path: &[u64]) -> Rng {
        Rng {
            key: path.iter().fold(bits(seed, 0x5ea7c4), |k, &p| bits(k, p)),
            draws: 0,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let b = bits(self.key, self.draws);
        self.draws += 1;
        b
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A real number as a trial uses it: four significant digits (what the table shows is what the
/// trial trained with, and `--set` reproduces it), kept within [lo, hi].
pub fn real(x: f64, lo: f64, hi: f64) -> Value {
    let rounded: f64 = format!("{x:.3e}").parse().unwrap_or(x);
    let v = rounded.clamp(lo, hi);
    Value {
        text: format!("{v:?}"),
        number: Some(v),
    }
}

pub fn integer(v: i64) -> Value {
    Value {
        text: v.to_string(),
        number: Some(v as f64),
    }
}

/// A value of one dimension drawn from its whole space.
pub fn draw(dim: &Dim, rng: &mut Rng) -> Value {
    match &dim.space {
        Space::Values(values) => values[rng.below(values.len())].clone(),
        Space::Uniform { lo, hi } => real(lo + (hi - lo) * rng.uniform(), *lo, *hi),
        Space::LogUniform { lo, hi } => {
            let (a, b) = (lo.ln(), hi.ln());
            real((a + (b - a) * rng.uniform()).exp(), *lo, *hi)
        }
        Space::IntRange { lo, hi } => integer(lo + rng.below((hi - lo + 1) as usize) as i64),
    }
}

/// Trial `index`'s configuration drawn at random.
pub fn random_config(dims: &[Dim], seed: u64, index: usize) -> Config {
    dims.iter()
        .enumerate()
        .map(|(d, dim)| {
            let mut rng = Rng::new(seed, &[STREAM_CONFIG, index as u64, d as u64]);
            (dim.name.clone(), draw(dim, &mut rng))
        })
        .collect()
}

/// Every combination of the dimensions' lists, the last varying fastest; None when a
/// dimension is not a list.
pub fn grid(dims: &[Dim]) -> Option<Vec<Config>> {
    let mut configs: Vec<Config> = vec![Vec::new()];
    for dim in dims {
        let Space::Values(values) = &dim.space else {
            return None;
        };
        configs = configs
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((dim.name.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    Some(configs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dim(space: Space) -> Dim {
        Dim {
            name: "x".into(),
            space,
        }
    }

    #[test]
    fn draws_stay_in_their_space_and_depend_on_seed_and_trial_only() {
        let dims = vec![
            dim(Space::LogUniform { lo: 1e-4, hi: 1e-1 }),
            dim(Space::IntRange { lo: -2, hi: 2 }),
            dim(Space::Uniform { lo: 0.5, hi: 0.9 }),
        ];
        let mut ints = std::collections::BTreeSet::new();
        for i in 0..200 {
            let c = random_config(&dims, 7, i);
            assert_eq!(c, random_config(&dims, 7, i));
            let lr = c[0].1.number.unwrap();
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            assert_eq!(c[0].1.text.parse::<f64>().unwrap(), lr);
            ints.insert(c[1].1.number.unwrap() as i64);
            assert!((0.5..=0.9).contains(&c[2].1.number.unwrap()));
        }
        assert_eq!(ints.into_iter().collect::<Vec<_>>(), vec![-2, -1, 0, 1, 2]);
        assert_ne!(random_config(&dims, 7, 0), random_config(&dims, 8, 0));
    }

    #[test]
    fn reals_keep_four_significant_digits() {
        assert_eq!(real(0.0031622776, 1e-4, 1.0).text, "0.003162");
        assert_eq!(real(123456.0, 0.0, 1e9).text, "123500.0");
        assert_eq!(real(1.00004, 0.0, 1.0).text, "1.0");
    }

    #[test]
    fn a_grid_is_the_product_of_its_lists() {
        let v = |t: &str| Value {
            text: t.into(),
            number: t.parse().ok(),
        };
        let dims = vec![
            Dim {
                name: "a".into(),
                space: Space::Values(vec![v("1"), v("2")]),
            },
            Dim {
                name: "b".into(),
                space: Space::Values(vec![v("x"), v("y"), v("z")]),
            },
        ];
        let g = grid(&dims).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g[1][0].1.text, "1");
        assert_eq!(g[1][1].1.text, "y");
        assert!(grid(&[dim(Space::Uniform { lo: 0.0, hi: 1.0 })]).is_none());
    }
}

//! Metrics over a whole split from per-batch values.
//!
//! Graphs compute each metric on their batch, and each metric output says how batches combine
//! (its [`Aggregation`], declared by the metric's definition): a mean is the batch values
//! weighted by batch size, so a smaller last batch counts for what it holds; a root mean square
//! is the root of the weighted mean square, which is a split's exact RMSE when each batch value
//! is the batch's RMSE. R² is not a mean of anything per batch: it is computed from sums of the
//! model's output and the target over the split. A geometric mean (perplexity) is the
//! exponential of the weighted mean of the logarithms, so that the split's perplexity is the
//! exponential of its mean cross-entropy, not a mean of batch perplexities.

use crate::ir::Aggregation;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Metric values by name (`loss`, `accuracy`, `r2`), in name order.
pub type Metrics = BTreeMap<String, f64>;

/// Running sums over a split (saved in a checkpoint of an interrupted epoch).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    sums: BTreeMap<String, Sums>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Sums {
    /// Σ n·value and Σ n for a mean, Σ n·value² and Σ n for a root mean square, Σ n·ln(value)
    /// and Σ n for a geometric mean.
    Weighted {
        aggregation: Aggregation,
        total: f64,
        samples: f64,
    },
    /// Running sums for R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)².
    Regression {
        squared_error: f64,
        sum: f64,
        sum_of_squares: f64,
        count: f64,
    },
}

impl SplitMetrics {
    /// Adds one batch's value of a mean or root-mean-square metric over `samples` samples.
    pub fn add_batch(&mut self, samples: usize, name: &str, aggregation: Aggregation, value: f64) {
        let n = samples as f64;
        let s = self.sums.entry(name.to_string()).or_insert(Sums::Weighted {
            aggregation,
            total: 0.0,
            samples: 0.0,
        });
        if let Sums::Weighted { total, samples, .. } = s {
            *total += match aggregation {
                Aggregation::RootMeanSquare => n * value * value,
                Aggregation::GeometricMean => n * value.ln(),
                Aggregation::Mean | Aggregation::R2 => n * value,
            };
            *samples += n;
        }
    }

    /// Adds one batch's outputs and targets to the sums of an R² metric, element by element.
    pub fn add_regression(&mut self, name: &str, out: &Tensor, target: &Tensor) {
        if let Some(sums) = regression_sums(out, target) {
            self.add_regression_sums(name, sums);
        }
    }

    /// Adds the sums [`regression_sums`] made of one batch (or shard) to an R² metric.
    pub fn add_regression_sums(&mut self, name: &str, batch: [f64; 4]) {
        let s = self
            .sums
            .entry(name.to_string())
            .or_insert(Sums::Regression {
                squared_error: 0.0,
                sum: 0.0,
                sum_of_squares: 0.0,
                count: 0.0,
            });
        if let Sums::Regression {
            squared_error,
            sum,
            sum_of_squares,
            count,
        } = s
        {
            *squared_error += batch[0];
            *sum += batch[1];
            *sum_of_squares += batch[2];
            *count += batch[3];
        }
    }

    pub fn finish(&self) -> Metrics {
        self.sums
            .iter()
            .filter_map(|(name, s)| {
                let v = match *s {
                    Sums::Weighted {
                        aggregation: Aggregation::RootMeanSquare,
                        total,
                        samples,
                    } => (total / samples).sqrt(),
                    Sums::Weighted {
                        aggregation: Aggregation::GeometricMean,
                        total,
                        samples,
                    } => (total / samples).exp(),
                    Sums::Weighted { total, samples, .. } => total / samples,
                    Sums::Regression {
                        squared_error,
                        sum,
                        sum_of_squares,
                        count,
                    } => {
                        let spread = sum_of_squares - sum * sum / count;
                        if count == 0.0 || spread <= 0.0 {
                            return None;
                        }
                        1.0 - squared_error / spread
                    }
                };
                Some((name.clone(), v))
            })
            .collect()
    }
}

/// Σ(y − ŷ)², Σy, Σy² and the count of a batch's outputs `out` and targets, element by element
/// (None when their sizes differ).
pub fn regression_sums(out: &Tensor, target: &Tensor) -> Option<[f64; 4]> {
    let (out, target) = (out.to_f64(), target.to_f64());
    if out.len() != target.len() {
        return None;
    }
    let mut sums = [0.0; 4];
    for (o, t) in out.iter().zip(&target) {
        sums[0] += (o - t) * (o - t);
        sums[1] += t;
        sums[2] += t * t;
        sums[3] += 1.0;
    }
    Some(sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    #[test]
    fn means_are_weighted_by_batch_size_and_root_mean_squares_by_their_square() {
        let mut m = SplitMetrics::default();
        m.add_batch(3, "loss", Aggregation::Mean, 1.0);
        m.add_batch(3, "rmse", Aggregation::RootMeanSquare, 2.0);
        m.add_batch(1, "loss", Aggregation::Mean, 5.0);
        m.add_batch(1, "rmse", Aggregation::RootMeanSquare, 4.0);
        let out = m.finish();
        assert_eq!(out["loss"], 2.0);
        assert!((out["rmse"] - ((3.0 * 4.0 + 16.0) / 4.0f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn perplexity_is_the_exponential_of_the_mean_cross_entropy_over_the_split() {
        let mut m = SplitMetrics::default();
        // batches of 3 and 1 samples with mean cross-entropies 1 and 2: the split's is 5/4.
        m.add_batch(3, "perplexity", Aggregation::GeometricMean, 1f64.exp());
        m.add_batch(1, "perplexity", Aggregation::GeometricMean, 2f64.exp());
        let out = m.finish();
        assert!((out["perplexity"] - 1.25f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn r2_is_computed_over_the_whole_split() {
        let t = |v: Vec<f32>| Tensor::F32(ArrayD::from_shape_vec(vec![v.len(), 1], v).unwrap());
        let mut m = SplitMetrics::default();
        // targets 1, 2, 3, 4 (mean 2.5, total 5); predictions off by 1 twice: SSE 2.
        m.add_regression("r2", &t(vec![2.0, 2.0]), &t(vec![1.0, 2.0]));
        m.add_regression("r2", &t(vec![3.0, 5.0]), &t(vec![3.0, 4.0]));
        let out = m.finish();
        assert!((out["r2"] - (1.0 - 2.0 / 5.0)).abs() < 1e-12);
        assert_eq!(out.len(), 1, "only the metrics asked for: {out:?}");
    }
}

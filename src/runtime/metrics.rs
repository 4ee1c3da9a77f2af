//! Metrics over a whole split from per-batch values.
//!
//! Graphs compute each metric as a mean over their batch. Over a split, a mean metric is the
//! batch values weighted by batch size, so a smaller last batch counts for what it holds; `rmse`
//! is combined as the root of the weighted mean square, which is the split's exact RMSE. R² is
//! not a mean of anything per batch: it is computed from sums of the model's output and target.

use crate::interp::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Metric values by name (`loss`, `accuracy`, `r2`), in name order.
pub type Metrics = BTreeMap<String, f64>;

/// Running sums over a split (saved in a checkpoint of an interrupted epoch).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitMetrics {
    /// name → (Σ n·value, Σ n·value², Σ n)
    sums: BTreeMap<String, (f64, f64, f64)>,
    regression: Option<Regression>,
}

/// Running sums for R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)².
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Regression {
    squared_error: f64,
    sum: f64,
    sum_of_squares: f64,
    count: f64,
}

impl SplitMetrics {
    /// Adds one batch of `samples` samples: its metric values, by name.
    pub fn add_batch(&mut self, samples: usize, values: &[(String, f64)]) {
        for (name, v) in values {
            let s = self.sums.entry(name.clone()).or_default();
            let n = samples as f64;
            s.0 += n * v;
            s.1 += n * v * v;
            s.2 += n;
        }
    }

    /// Adds one batch's outputs and targets of a regression, element by element.
    pub fn add_regression(&mut self, out: &Tensor, target: &Tensor) {
        let (out, target) = (out.to_f64(), target.to_f64());
        if out.len() != target.len() {
            return;
        }
        let r = self.regression.get_or_insert_with(Regression::default);
        for (o, t) in out.iter().zip(&target) {
            r.squared_error += (o - t) * (o - t);
            r.sum += t;
            r.sum_of_squares += t * t;
            r.count += 1.0;
        }
    }

    pub fn finish(&self) -> Metrics {
        let mut out: Metrics = self
            .sums
            .iter()
            .map(|(name, (sum, sum_sq, n))| {
                let v = if name == "rmse" {
                    (sum_sq / n).sqrt()
                } else {
                    sum / n
                };
                (name.clone(), v)
            })
            .collect();
        if let Some(r) = &self.regression
            && r.count > 0.0
        {
            let total = r.sum_of_squares - r.sum * r.sum / r.count;
            if total > 0.0 {
                out.insert("r2".into(), 1.0 - r.squared_error / total);
            }
            out.entry("rmse".into())
                .or_insert((r.squared_error / r.count).sqrt());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::ArrayD;

    #[test]
    fn means_are_weighted_by_batch_size_and_rmse_by_its_square() {
        let mut m = SplitMetrics::default();
        m.add_batch(3, &[("loss".into(), 1.0), ("rmse".into(), 2.0)]);
        m.add_batch(1, &[("loss".into(), 5.0), ("rmse".into(), 4.0)]);
        let out = m.finish();
        assert_eq!(out["loss"], 2.0);
        assert!((out["rmse"] - ((3.0 * 4.0 + 16.0) / 4.0f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn r2_is_computed_over_the_whole_split() {
        let t = |v: Vec<f32>| Tensor::F32(ArrayD::from_shape_vec(vec![v.len(), 1], v).unwrap());
        let mut m = SplitMetrics::default();
        // targets 1, 2, 3, 4 (mean 2.5, total 5); predictions off by 1 twice: SSE 2.
        m.add_regression(&t(vec![2.0, 2.0]), &t(vec![1.0, 2.0]));
        m.add_regression(&t(vec![3.0, 5.0]), &t(vec![3.0, 4.0]));
        let out = m.finish();
        assert!((out["r2"] - (1.0 - 2.0 / 5.0)).abs() < 1e-12);
        assert!((out["rmse"] - 0.5f64.sqrt()).abs() < 1e-12);
    }
}

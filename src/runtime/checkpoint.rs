//! Checkpoints: one safetensors file holds everything a run needs to continue exactly — the
//! parameters, layer state and optimizer state (named as in the graphs), the data transforms'
//! fitted statistics (under `data.`), and in the metadata the run's progress: epochs and steps
//! done, the seed (every random stream is a function of the seed and these counters), the
//! early-stopping record and the metric history. Files are written atomically.

use super::metrics::Metrics;
use crate::interp::Tensor;
use crate::store;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The most recent epoch's checkpoint, in the checkpoint directory.
pub const LAST: &str = "last.safetensors";
/// The checkpoint of the epoch with the best monitored value.
pub const BEST: &str = "best.safetensors";
const FORMAT: &str = "nnl-checkpoint-1";
const STATS_PREFIX: &str = "data.";

/// One epoch of a run: metrics per split and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train: Metrics,
    /// Empty when the data has no validation split.
    pub val: Metrics,
    /// The whole epoch, validation included.
    pub seconds: f64,
    /// The training batches alone.
    pub train_seconds: f64,
    /// Training samples seen.
    pub samples: usize,
    pub samples_per_second: f64,
    /// Gradient-health statistics per layer (absent with `--no-health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::EpochHealth>,
}

/// The best monitored value so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub epoch: usize,
    pub value: f64,
}

/// Where a run stands after some epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The models trained (`Mlp`), to refuse a checkpoint of another file.
    pub train: String,
    pub seed: u64,
    pub batch: usize,
    pub epochs_done: usize,
    pub steps_done: u64,
    pub best: Option<Best>,
    pub epochs_without_improvement: usize,
    pub history: Vec<EpochRecord>,
    /// The gradient-health warnings given so far.
    #[serde(default)]
    pub warnings: Vec<super::health::Warning>,
}

pub struct Checkpoint {
    pub values: HashMap<String, Tensor>,
    pub data_stats: Vec<(String, Tensor)>,
    pub state: RunState,
}

pub fn save(
    path: &Path,
    values: &HashMap<String, Tensor>,
    data_stats: &[(String, Tensor)],
    state: &RunState,
) -> Result<(), String> {
    let mut tensors: Vec<(String, Tensor)> = values
        .iter()
        .map(|(n, t)| (n.clone(), t.clone()))
        .chain(
            data_stats
                .iter()
                .map(|(n, t)| (format!("{STATS_PREFIX}{n}"), t.clone())),
        )
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let state = serde_json::to_string(state).map_err(|e| e.to_string())?;
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("run".to_string(), state),
    ]);
    store::write_safetensors(path, &tensors, Some(metadata))
}

pub fn load(path: &Path) -> Result<Checkpoint, String> {
    let (tensors, metadata) = store::read_safetensors(path)?;
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(format!(
            "`{}` is not an nnl checkpoint (no `format: {FORMAT}` in its metadata)",
            path.display()
        ));
    }
    let state: RunState = metadata
        .get("run")
        .ok_or("no run state")
        .and_then(|s| serde_json::from_str(s).map_err(|_| "an unreadable run state"))
        .map_err(|e| format!("`{}` has {e}", path.display()))?;
    let mut values = HashMap::new();
    let mut data_stats = Vec::new();
    for (name, t) in tensors {
        match name.strip_prefix(STATS_PREFIX) {
            Some(stat) => data_stats.push((stat.to_string(), t)),
            None => {
                values.insert(name, t);
            }
        }
    }
    Ok(Checkpoint {
        values,
        data_stats,
        state,
    })
}

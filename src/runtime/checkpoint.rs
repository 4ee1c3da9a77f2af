//! Checkpoints: one safetensors file holds everything a run needs to continue exactly — the
//! parameters, layer state and optimizer state (named as in the graphs), the data transforms'
//! fitted statistics (under `data.`), in the metadata the fitted text state (a tokenizer's JSON
//! under `data.DATA.FIELD.tokenizer`) and the run's progress: epochs and steps
//! done, the seed (every random stream is a function of the seed and these counters), the
//! early-stopping record and the metric history — and for an epoch interrupted part way, how many
//! of its batches were trained and their metric sums. Files are written atomically.

use super::metrics::{Metrics, SplitMetrics};
use crate::store;
use crate::tensor::Tensor;
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
    /// The epoch after `epochs_done` when it was stopped part way (Ctrl-C): resuming skips
    /// the batches it trained on and carries on with its sums.
    #[serde(default)]
    pub partial: Option<PartialEpoch>,
}

/// How far an interrupted epoch got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Training batches (steps) done in this epoch.
    pub batches_done: usize,
    pub samples: usize,
    pub train_seconds: f64,
    /// The training split's sums so far.
    pub sums: SplitMetrics,
}

pub struct Checkpoint {
    pub values: HashMap<String, Tensor>,
    pub data_stats: Vec<(String, Tensor)>,
    /// The data transforms' fitted text (vocabularies), from the metadata keys `data.…`.
    pub data_text: Vec<(String, String)>,
    pub state: RunState,
}

pub fn save(
    path: &Path,
    values: &HashMap<String, Tensor>,
    data_stats: &[(String, Tensor)],
    data_text: &[(String, String)],
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
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("run".to_string(), state),
    ]);
    for (key, text) in data_text {
        debug_assert!(
            key.starts_with(STATS_PREFIX),
            "fitted text is keyed `data.…`"
        );
        metadata.insert(key.clone(), text.clone());
    }
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
    let mut data_text: Vec<(String, String)> = metadata
        .into_iter()
        .filter(|(k, _)| k.starts_with(STATS_PREFIX))
        .collect();
    data_text.sort();
    Ok(Checkpoint {
        values,
        data_stats,
        data_text,
        state,
    })
}

/// The lock file of a checkpoint directory: held (an OS lock, released when the process ends,
/// however it ends) by the run that writes there; it holds that run's process id.
pub const LOCK: &str = ".nnl-run.lock";

/// How a run may treat the checkpoints it finds in its directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A new run: refused if the directory holds an earlier run's checkpoints.
    Fresh,
    /// Continues the run whose checkpoints are there.
    Resume,
    /// A new run that replaces the checkpoints there (`--overwrite`).
    Overwrite,
}

/// A checkpoint directory claimed by this run; the claim ends when this is dropped, and a
/// directory the claim created is removed again if the run wrote nothing there.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    dir: std::path::PathBuf,
    created: bool,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let only_lock = std::fs::read_dir(&self.dir)
            .map(|entries| entries.flatten().all(|e| e.file_name() == LOCK))
            .unwrap_or(false);
        if only_lock {
            let _ = std::fs::remove_file(self.dir.join(LOCK));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Claims `dir` for a run: creates it, takes its lock (refused while another run holds it),
/// removes the temporary files of killed runs, and applies `claim` to the checkpoints there.
/// A new run never replaces a trained model silently: it is refused with the ways forward.
pub fn claim(dir: &Path, claim: Claim) -> Result<DirLock, String> {
    use std::io::{Read, Seek, Write};
    let shown = dir.display();
    let created = !dir.exists();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{shown}`: {e}"))?;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK))
        .map_err(|e| format!("cannot lock `{shown}`: {e}"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            return Err(format!(
                "another run is writing checkpoints to `{shown}`{holder}: wait for it to end, or give this run its own `--checkpoint-dir`"
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock `{shown}`: {e}"));
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = writeln!(file, "{}", std::process::id());
    remove_stale_temporaries(dir);
    let existing: Vec<&str> = [LAST, BEST]
        .into_iter()
        .filter(|f| dir.join(f).exists())
        .collect();
    match claim {
        Claim::Fresh if !existing.is_empty() => {
            let trained = match load(&dir.join(LAST)) {
                Ok(c) => format!(
                    " (it trained {} for {} epoch{})",
                    c.state.train,
                    c.state.epochs_done,
                    if c.state.epochs_done == 1 { "" } else { "s" }
                ),
                Err(_) => String::new(),
            };
            Err(format!(
                "`{shown}` holds the checkpoints of an earlier run{trained}: continue it with `--resume {shown}`, replace them with `--overwrite`, or write this run's elsewhere with `--checkpoint-dir DIR`"
            ))
        }
        Claim::Overwrite => {
            for f in existing {
                std::fs::remove_file(dir.join(f))
                    .map_err(|e| format!("cannot remove `{}`: {e}", dir.join(f).display()))?;
            }
            Ok(DirLock {
                _file: file,
                dir: dir.to_path_buf(),
                created,
            })
        }
        Claim::Fresh | Claim::Resume => Ok(DirLock {
            _file: file,
            dir: dir.to_path_buf(),
            created,
        }),
    }
}

/// Removes the temporary files that runs killed while writing a checkpoint left
/// (`.last.safetensors.tmp1234`, see [`store::write_atomically`]); the caller holds the lock.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if store::is_temporary(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

//! The search's state, `search.json` in the search's directory: every trial with its values,
//! status, per-epoch history and the result of each of its jobs. It is written atomically after
//! every trial event, and it is also the `--report` of `nnlc search`: a killed search continues
//! from it (`--resume`), replaying the strategy with the recorded results.

use super::{Config, Objective, Value, schedule::Job};
use crate::runtime::{EpochRecord, Metrics};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FILE: &str = "search.json";
const FORMAT: &str = "nnl-search-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Training (or killed while training).
    Running,
    /// Trained to its last job's epochs (or stopped early).
    Completed,
    /// Diverged or failed to run: `message` says why.
    Failed,
    /// Stopped by Ctrl-C or SIGTERM; its last checkpoint holds where.
    Interrupted,
}

/// A hyperparameter's value in a trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    /// As written or drawn: what `--set` applies.
    pub value: String,
    pub number: Option<f64>,
}

/// The result of one job of a trial (Hyperband continues a trial in several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The epochs the job trained the trial to; None: the file's `epochs`.
    pub epochs: Option<usize>,
    pub goal: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 1-based.
    pub trial: usize,
    pub config: Vec<Setting>,
    pub status: Status,
    /// Epochs trained.
    pub epochs: usize,
    /// The goal: the best epoch's value of the goal metric.
    pub goal: Option<f64>,
    pub best_epoch: Option<usize>,
    /// Why it failed.
    pub message: Option<String>,
    /// Training time over all its jobs, data loading and compilation included.
    pub seconds: f64,
    /// Its checkpoint directory (its report is `report.json` there).
    pub checkpoint: String,
    /// The command that trains it again, alone.
    pub command: String,
    pub jobs: Vec<JobResult>,
    pub history: Vec<EpochRecord>,
    /// Test metrics at its last job's end, when the data has a test split.
    pub test: Option<Metrics>,
}

impl Trial {
    pub fn config(&self) -> Config {
        self.config
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Value {
                        text: s.value.clone(),
                        number: s.number,
                    },
                )
            })
            .collect()
    }

    /// The recorded result of `job`, when it ran to its end.
    pub fn result_of(&self, job: &Job) -> Option<Option<f64>> {
        if self.status == Status::Running || self.status == Status::Interrupted {
            return None;
        }
        self.jobs
            .iter()
            .find(|r| r.epochs == job.epochs)
            .map(|r| r.goal)
    }
}

pub fn settings(config: &Config) -> Vec<Setting> {
    config
        .iter()
        .map(|(n, v)| Setting {
            name: n.clone(),
            value: v.text.clone(),
            number: v.number,
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchState {
    pub format: String,
    /// The `.nnl` file.
    pub file: String,
    /// A hash of the file's text (FNV-1a, 64 bits, hex): a search resumes only with the file
    /// it started with.
    pub source_hash: String,
    /// The strategy as written: `random(trials: 8, seed: 1)`.
    pub strategy: String,
    pub objective: Objective,
    /// Trials in order of their numbers.
    pub trials: Vec<Trial>,
    /// The best trial's number (1-based).
    pub best: Option<usize>,
    pub finished: bool,
    /// Wall time of the search over all its invocations.
    pub seconds: f64,
}

impl SearchState {
    pub fn new(file: &str, text: &str, strategy: &str, objective: &Objective) -> SearchState {
        SearchState {
            format: FORMAT.into(),
            file: file.into(),
            source_hash: source_hash(text),
            strategy: strategy.into(),
            objective: objective.clone(),
            trials: Vec::new(),
            best: None,
            finished: false,
            seconds: 0.0,
        }
    }

    /// The trial with number `trial` (0-based), added when it is new.
    pub fn trial_mut(&mut self, trial: usize, make: impl FnOnce() -> Trial) -> &mut Trial {
        if let Some(i) = self.trials.iter().position(|t| t.trial == trial + 1) {
            return &mut self.trials[i];
        }
        self.trials.push(make());
        self.trials.sort_by_key(|t| t.trial);
        let i = self
            .trials
            .iter()
            .position(|t| t.trial == trial + 1)
            .expect("just added");
        &mut self.trials[i]
    }

    pub fn trial(&self, trial: usize) -> Option<&Trial> {
        self.trials.iter().find(|t| t.trial == trial + 1)
    }

    /// Sets `best` to the completed trial with the best goal (the lowest number among equals).
    pub fn update_best(&mut self) {
        let mut best: Option<(f64, usize)> = None;
        for t in &self.trials {
            if let (Status::Completed, Some(g)) = (t.status, t.goal)
                && best.is_none_or(|(b, _)| self.objective.better(g, b))
            {
                best = Some((g, t.trial));
            }
        }
        self.best = best.map(|b| b.1);
    }

    pub fn save(&self, dir: &Path) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        crate::store::write_atomically(&dir.join(FILE), format!("{json}\n").as_bytes())
    }

    pub fn load(dir: &Path) -> Result<SearchState, String> {
        let path = dir.join(FILE);
        let bytes = crate::store::read_bytes(&path)?;
        let state: SearchState = serde_json::from_slice(&bytes)
            .map_err(|e| format!("`{}` is not a search's state: {e}", path.display()))?;
        if state.format != FORMAT {
            return Err(format!(
                "`{}` has format `{}`; this nnlc reads `{FORMAT}`",
                path.display(),
                state.format
            ));
        }
        Ok(state)
    }
}

/// FNV-1a of a text, in hex.
pub fn source_hash(text: &str) -> String {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{h:016x}")
}

/// A trial's goal: the best epoch's value of the goal metric, and that epoch; None when no
/// epoch has it (or every value is NaN).
pub fn goal_of(history: &[EpochRecord], objective: &Objective) -> Option<(f64, usize)> {
    let mut best: Option<(f64, usize)> = None;
    for e in history {
        let metrics = if objective.split == "train" {
            &e.train
        } else {
            &e.val
        };
        let Some(&v) = metrics.get(&objective.metric) else {
            continue;
        };
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(b, _)| objective.better(v, b)) {
            best = Some((v, e.epoch));
        }
    }
    best
}

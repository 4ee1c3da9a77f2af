//! The JSON report of `nnlc run --report FILE` (documented in the README).

use super::{EpochRecord, Interruption, Metrics, RunResult, Session, StepRecord, Warning};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct Report {
    /// The `.nnl` file.
    pub file: String,
    /// The models trained.
    pub train: String,
    pub backend: String,
    pub threads: usize,
    pub config: Config,
    pub parameters: usize,
    /// Samples per split.
    pub data: BTreeMap<String, usize>,
    /// The epoch a resumed run started after; None for a fresh run.
    pub resumed_after_epoch: Option<usize>,
    pub epochs: Vec<EpochRecord>,
    pub best: Option<BestReport>,
    pub stopped_early: bool,
    /// Whether the weights were set back to the best epoch's before testing.
    pub restored_best: bool,
    /// Metrics on the test split, when there is one (and the run was not interrupted).
    pub test: Option<Metrics>,
    /// The logged steps of this invocation (every `--log-every` steps): loss and learning rate.
    pub steps: Vec<StepRecord>,
    /// The gradient-health warnings of the run (each epoch's per-layer statistics are in
    /// `epochs[].health`).
    pub warnings: Vec<Warning>,
    /// For a classifier, the test split's confusion matrix with per-class precision and recall.
    pub confusion: Option<super::confusion::Confusion>,
    /// Where the run stopped when it was interrupted (Ctrl-C, SIGTERM); None when it ran to
    /// its end.
    pub interrupted: Option<Interruption>,
    pub timings: Timings,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub seed: u64,
    pub batch: usize,
    pub epochs: usize,
    pub metrics: Vec<String>,
    pub clip_grad_norm: Option<f64>,
    /// `val.loss`: what picks the best epoch, and stops early when `early_stop` is set; None
    /// for several losses (phases) without `early_stop`.
    pub monitor: Option<String>,
    pub mode: Option<&'static str>,
    pub patience: Option<usize>,
    pub checkpoint: Option<String>,
    /// Every how many steps the gradient-health statistics were computed (None with
    /// `--no-health`).
    pub health_every: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct BestReport {
    pub monitor: String,
    pub epoch: usize,
    pub value: f64,
}

#[derive(Debug, Serialize)]
pub struct Timings {
    /// Lowering, optimizing and preparing every graph the run used.
    pub compile_seconds: f64,
    /// Reading the files and fitting the transforms.
    pub data_seconds: f64,
    /// The epochs of this invocation, validation included.
    pub train_seconds: f64,
    /// Training time per batch (all phases), validation excluded.
    pub mean_step_ms: f64,
    pub samples_per_second: f64,
    /// Per epoch of this invocation, the compiled step's own time: median, mean and fastest
    /// milliseconds per step (absent for a data-parallel run).
    pub step_ms: Vec<super::EpochStepTimes>,
    /// Where a data-parallel step's time went (absent for a plain run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_parallel: Option<DataParallelTimings>,
}

/// Milliseconds per step of a data-parallel run, as this process spent them.
#[derive(Debug, Serialize)]
pub struct DataParallelTimings {
    /// The forward and backward passes of this process's shards.
    pub shards_ms: f64,
    /// Gathering every process's sums and adding them up (the gradients, and between the
    /// stages of a step with synchronized batch norm), waiting for the slowest process included.
    pub exchange_ms: f64,
    /// The update step (clipping and optimizer) on the summed gradients.
    pub update_ms: f64,
}

impl Report {
    pub fn new(
        file: &str,
        session: &Session,
        threads: usize,
        splits: Vec<(String, usize)>,
        result: &RunResult,
        resumed_after_epoch: Option<usize>,
        data_seconds: f64,
    ) -> Report {
        let config = session.config();
        let run_epochs = &result.state.history[resumed_after_epoch.unwrap_or(0)..];
        let step_seconds: f64 = run_epochs.iter().map(|e| e.train_seconds).sum();
        let steps = result.steps_this_run.max(1) as f64;
        Report {
            file: file.to_string(),
            train: result.state.train.clone(),
            backend: session.backend_name().to_string(),
            threads,
            config: Config {
                seed: result.state.seed,
                batch: result.state.batch,
                epochs: result.epochs,
                metrics: config.metrics.clone(),
                clip_grad_norm: config.clip_grad_norm,
                monitor: result.monitor.as_ref().map(|m| m.0.clone()),
                mode: result
                    .monitor
                    .as_ref()
                    .map(|m| if m.1 { "min" } else { "max" }),
                patience: config.early_stop.as_ref().map(|e| e.patience),
                checkpoint: result
                    .checkpoint_dir
                    .as_ref()
                    .map(|d| d.display().to_string()),
                health_every: session.health_every(),
            },
            parameters: session.parameter_count(),
            data: splits.into_iter().collect(),
            resumed_after_epoch,
            epochs: result.state.history.clone(),
            best: result
                .state
                .best
                .as_ref()
                .zip(result.monitor.as_ref())
                .map(|(b, m)| BestReport {
                    monitor: m.0.clone(),
                    epoch: b.epoch,
                    value: b.value,
                }),
            stopped_early: result.stopped_early,
            restored_best: result.restored_best,
            test: result.test.clone(),
            steps: result.steps.clone(),
            warnings: result.state.warnings.clone(),
            confusion: result.confusion.clone(),
            interrupted: result.interrupted.clone(),
            timings: Timings {
                compile_seconds: session.compile_seconds,
                data_seconds,
                train_seconds: result.train_seconds,
                mean_step_ms: 1e3 * step_seconds / steps,
                samples_per_second: result.samples_this_run as f64 / step_seconds.max(1e-9),
                step_ms: result.step_times.clone(),
                data_parallel: (session.parallel.shards > 0.0).then(|| DataParallelTimings {
                    shards_ms: 1e3 * session.parallel.shards / steps,
                    exchange_ms: 1e3 * session.parallel.exchange / steps,
                    update_ms: 1e3 * session.parallel.update / steps,
                }),
            },
        }
    }
}

//! The training runtime: epochs of batches through the training-step graphs, metrics on every
//! split, early stopping, checkpoints, and evaluation of a trained model.
//!
//! A [`Session`] holds a checked program's graphs, lowered per batch size on first use (the last
//! batch of a split is usually smaller) and prepared by a [`Backend`]. A [`Trainer`] owns the
//! values a run changes — parameters, layer state, optimizer state — and the run's progress, which
//! is all a checkpoint needs: every random stream (shuffling, augmentation, dropout) is a pure
//! function of the seed and the epoch and step counters, so a resumed run repeats exactly.

mod backend;
pub mod checkpoint;
pub mod confusion;
pub mod console;
pub mod distributed;
pub mod generate;
pub mod health;
pub mod labels;
pub mod memory;
pub mod metrics;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod predict;
pub mod profile;
pub mod report;
pub mod tensorboard;
pub mod weights;

pub use backend::{Backend, Executable, Interpreter, Jit};
pub use checkpoint::{Best, EpochRecord, PartialEpoch, RunState};
pub use console::Console;
pub use health::Warning;
pub use metrics::Metrics;

use crate::data::{Batch, Dataset};
use crate::exec::rng_key;
use crate::ir::{Aggregation, DType, Graph, OutputRole, Role};
use crate::lower::{self, EarlyStop, Lowered, TrainConfig};
use crate::resolve::Program;
use crate::source::SourceMap;
use crate::step::Watch;
use crate::syntax::ast::{DataDecl, Item};
use crate::tensor::{RunError, Tensor};
use metrics::SplitMetrics;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A confusion matrix summed batch by batch: none yet, the sums, or none for this model.
enum ConfusionSums {
    Empty,
    Summing(confusion::Confusion),
    Unfit,
}

/// The prepared graphs for one batch size.
struct Graphs {
    /// One training step per phase, in order.
    steps: Vec<Prepared>,
    /// The same steps with the gradient-health statistics (none when they are off).
    watched: Vec<Prepared>,
    eval: Prepared,
}

/// A graph made ready by the backend, and what each of its outputs is.
struct Prepared {
    exe: Box<dyn Executable>,
    /// A data-parallel shard step cut at its sums over shards ([`crate::ir::stages`]) is `exe`
    /// (its first stage) followed by these, each with the sums it reads; empty otherwise.
    later: Vec<(Box<dyn Executable>, Vec<crate::ir::stages::Sum>)>,
    /// The roles of the whole graph's outputs (of every stage's).
    roles: HashMap<String, OutputRole>,
    /// Its gradient-health outputs.
    watched: health::Watched,
}

impl Prepared {
    fn new(backend: &dyn Backend, graph: Graph) -> Result<Prepared, String> {
        Prepared::in_stages(backend, graph, false)
    }

    /// `graph` prepared whole, or, when `staged`, as the stages [`crate::ir::stages::cut`]
    /// makes (one stage when it has no sum over shards).
    fn in_stages(backend: &dyn Backend, graph: Graph, staged: bool) -> Result<Prepared, String> {
        let roles = graph
            .outputs
            .iter()
            .map(|o| (o.name.clone(), o.role))
            .collect();
        let watched = health::Watched::of(&graph);
        let mut stages = match staged {
            true => crate::ir::stages::cut(&graph)?,
            false => vec![crate::ir::stages::Stage {
                graph,
                sums: Vec::new(),
            }],
        }
        .into_iter();
        let first = stages.next().expect("a graph has a first stage");
        let later = stages
            .map(|s| Ok((backend.prepare(s.graph)?, s.sums)))
            .collect::<Result<_, String>>()?;
        Ok(Prepared {
            exe: backend.prepare(first.graph)?,
            later,
            roles,
            watched,
        })
    }

    fn role(&self, output: &str) -> OutputRole {
        self.roles.get(output).copied().unwrap_or(OutputRole::Value)
    }

    /// The value of the step's loss output.
    fn loss(&self, out: &HashMap<String, Tensor>) -> Option<f64> {
        out.iter()
            .find(|(name, _)| self.role(name) == OutputRole::Loss)
            .and_then(|(_, t)| t.scalar())
    }
}

/// A checked program's graphs, lowered and prepared per batch size on demand.
pub struct Session<'p> {
    program: &'p Program,
    sources: &'p SourceMap,
    /// The graphs at the configured batch size, and the train block's settings.
    lowered: Lowered,
    backend: Box<dyn Backend>,
    graphs: HashMap<usize, Rc<Graphs>>,
    /// The data-parallel path's shard steps, by shard size, and its update steps.
    shard_graphs: HashMap<usize, Rc<distributed::ShardGraphs>>,
    update_graphs: Option<Rc<distributed::UpdateGraphs>>,
    /// Every how many steps the gradient-health statistics are computed; None: never.
    health_every: Option<usize>,
    /// Seconds spent lowering, optimizing and preparing graphs.
    pub compile_seconds: f64,
    /// Seconds spent running training steps (their graphs, not the loop around them).
    pub step_seconds: f64,
    /// Of a data-parallel run, where the seconds went.
    pub parallel: distributed::Seconds,
}

impl<'p> Session<'p> {
    /// Lowers the train block at `batch` (the file's `batch` when None).
    pub fn new(
        program: &'p Program,
        sources: &'p SourceMap,
        batch: Option<usize>,
        backend: Box<dyn Backend>,
    ) -> Result<Session<'p>, String> {
        let start = Instant::now();
        let lowered = lower_at(program, sources, batch)?;
        Ok(Session {
            program,
            sources,
            lowered,
            backend,
            graphs: HashMap::new(),
            shard_graphs: HashMap::new(),
            update_graphs: None,
            health_every: Some(DEFAULT_HEALTH_EVERY),
            compile_seconds: start.elapsed().as_secs_f64(),
            step_seconds: 0.0,
            parallel: distributed::Seconds::default(),
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.lowered.config
    }

    pub fn lowered(&self) -> &Lowered {
        &self.lowered
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Every how many steps (the first of the run included) a step also computes the
    /// gradient-health statistics (`step::health`), which the run watches; None: never
    /// (`nnlc run --no-health`).
    pub fn set_health_every(&mut self, every: Option<usize>) {
        let every = every.filter(|&k| k > 0);
        if every.is_some() != self.health_every.is_some() {
            self.graphs.clear();
            self.shard_graphs.clear();
            self.update_graphs = None;
        }
        self.health_every = every;
    }

    pub fn health_every(&self) -> Option<usize> {
        self.health_every
    }

    /// The number of trainable scalars (saturating: a model too large to count is refused by
    /// [`Session::check_memory`] anyway).
    pub fn parameter_count(&self) -> usize {
        self.lowered
            .params
            .iter()
            .map(|(_, t)| t.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d)))
            .fold(0, usize::saturating_add)
    }

    /// Refuses data whose class labels are out of the range the graphs read them in (see
    /// [`labels`]).
    pub fn check_classes(&self, data: &Dataset) -> Result<(), String> {
        let mut fields = Vec::new();
        let graphs = self.lowered.phases.iter().map(|p| &p.forward);
        for g in graphs.chain([&self.lowered.eval]) {
            for c in labels::class_fields(g) {
                if !fields.contains(&c) {
                    fields.push(c);
                }
            }
        }
        data.check_classes(&fields).map_err(|e| e.to_string())
    }

    /// Refuses, with the sizes, a run that needs more memory than the machine has (see
    /// [`memory`]), before anything of that size is allocated.
    pub fn check_memory(&self) -> Result<(), String> {
        memory::check_fits(&memory::estimate(&self.lowered), memory::available())
    }

    /// Runs `f` on the train block lowered at `batch` samples: the session's own lowering at
    /// the file's batch, a fresh one at any other size.
    fn with_lowered<T>(
        &self,
        batch: usize,
        f: impl FnOnce(&Lowered) -> Result<T, String>,
    ) -> Result<T, String> {
        if batch == self.lowered.config.batch {
            f(&self.lowered)
        } else {
            f(&lower_at(self.program, self.sources, Some(batch))?)
        }
    }

    /// Per phase of `lowered`, the graph `make` builds, optimized and prepared (in stages when
    /// `staged`): once as it is, and once with the gradient-health statistics when the run
    /// watches them (none otherwise). `learning_rate` asks for the learning-rate output.
    fn prepare_phases(
        &self,
        lowered: &Lowered,
        learning_rate: bool,
        staged: bool,
        make: impl Fn(&lower::Phase, Watch) -> Result<Graph, String>,
    ) -> Result<(Vec<Prepared>, Vec<Prepared>), String> {
        let backend = self.backend.as_ref();
        let prepare = |health: bool| -> Result<Vec<Prepared>, String> {
            let watch = Watch {
                health,
                learning_rate,
            };
            lowered
                .phases
                .iter()
                .map(|phase| {
                    let graph = crate::opt::optimize(&make(phase, watch)?).0;
                    Prepared::in_stages(backend, graph, staged)
                })
                .collect()
        };
        let plain = prepare(false)?;
        let watched = match self.health_every {
            Some(_) => prepare(true)?,
            None => Vec::new(),
        };
        Ok((plain, watched))
    }

    fn graphs(&mut self, batch: usize) -> Result<Rc<Graphs>, String> {
        if let Some(g) = self.graphs.get(&batch) {
            return Ok(g.clone());
        }
        let start = Instant::now();
        let (steps, watched, eval) = self.with_lowered(batch, |lowered| {
            let (steps, watched) = self.prepare_phases(lowered, true, false, |phase, watch| {
                crate::step::train_step_watched(lowered, phase, watch)
            })?;
            let eval = crate::opt::optimize(&lowered.eval).0;
            Ok((steps, watched, Prepared::new(self.backend.as_ref(), eval)?))
        })?;
        let g = Rc::new(Graphs {
            steps,
            watched,
            eval,
        });
        self.graphs.insert(batch, g.clone());
        self.compile_seconds += start.elapsed().as_secs_f64();
        Ok(g)
    }

    /// Where the training steps' time went, step by step of each phase's plan at the file's
    /// batch size, the steps that computed the gradient-health statistics apart (empty unless
    /// the backend profiles).
    pub fn training_profile(&self) -> Vec<(String, Vec<crate::jit::ProfileRow>)> {
        let Some(graphs) = self.graphs.get(&self.lowered.config.batch) else {
            return Vec::new();
        };
        let phases = &self.lowered.phases;
        let plain = phases
            .iter()
            .zip(&graphs.steps)
            .map(|(phase, step)| (phase.name.clone(), step.exe.profile()));
        let watched = phases
            .iter()
            .zip(&graphs.watched)
            .map(|(phase, step)| (format!("{} (health)", phase.name), step.exe.profile()));
        plain.chain(watched).collect()
    }

    /// The gradient of every parameter each phase updates, on one batch (for histograms), by
    /// the reference interpreter.
    pub fn gradients(
        &self,
        batch: &Batch,
        values: &HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<HashMap<String, Tensor>, String> {
        let fresh;
        let lowered = if batch.indices.len() == self.lowered.config.batch {
            &self.lowered
        } else {
            fresh = lower_at(self.program, self.sources, Some(batch.indices.len()))?;
            &fresh
        };
        let mut grads = HashMap::new();
        for phase in &lowered.phases {
            let all = crate::exec::batch_gradients(lowered, phase, &batch.tensors, values, seed)?;
            for (name, g) in all {
                if phase.updates.iter().any(|u| u.param == name) {
                    grads.insert(name, g);
                }
            }
        }
        Ok(grads)
    }

    /// What the forward passes call, for gradient-health advice.
    fn facts(&self) -> health::Facts {
        let forward: Vec<&Graph> = self.lowered.phases.iter().map(|p| &p.forward).collect();
        health::Facts::of(&forward, self.sources)
    }

    /// The initial parameters, layer state and optimizer state for a seed.
    pub fn initial_values(&self, seed: u64) -> Result<HashMap<String, Tensor>, String> {
        crate::exec::initial_values(&self.lowered, seed)
    }

    /// Checks that `values` holds every value the training graphs read, with the right types.
    pub fn check_values(&self, values: &HashMap<String, Tensor>, what: &str) -> Result<(), String> {
        for role in [Role::Param, Role::State] {
            crate::exec::check_inputs(&self.lowered.eval, role, values, what)?;
        }
        for phase in &self.lowered.phases {
            crate::exec::check_inputs(&phase.forward, Role::Param, values, what)?;
        }
        Ok(())
    }

    /// Loss and metrics of `values` on a split, in evaluation mode.
    pub fn evaluate(
        &mut self,
        data: &Dataset,
        split: &str,
        values: &HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<Metrics, String> {
        Ok(self.evaluate_split(data, split, values, seed, false)?.0)
    }

    /// [`Session::evaluate`], and in the same pass over the split, when `with_confusion`, the
    /// confusion matrix of a classifier: when the metrics compare one class index per sample
    /// (an i32 target) with a logit per class, or, with `binary_accuracy`, one 0/1 target with
    /// one logit. No matrix for other models (regression, sequences).
    fn evaluate_split(
        &mut self,
        data: &Dataset,
        split: &str,
        values: &HashMap<String, Tensor>,
        seed: u64,
        with_confusion: bool,
    ) -> Result<(Metrics, Option<confusion::Confusion>), String> {
        let mut sums = SplitMetrics::default();
        let mut matrix = if with_confusion {
            ConfusionSums::Empty
        } else {
            ConfusionSums::Unfit
        };
        let batches = data
            .batches(split, self.lowered.config.batch, 0)
            .map_err(|e| e.to_string())?;
        for batch in batches {
            let graphs = self.graphs(batch.indices.len())?;
            let inputs = Inputs::new(&batch, None, rng_key(seed, 0));
            let out = graphs
                .eval
                .exe
                .run(&|n| inputs.get(n).or_else(|| values.get(n)), false)
                .map_err(|e| e.to_string())?;
            self.add_outputs(&mut sums, &batch, &graphs.eval, &out, None);
            if !matches!(matrix, ConfusionSums::Unfit) {
                matrix = self.add_confusion(matrix, data, split, &batch, &graphs.eval, &out);
            }
        }
        let matrix = match matrix {
            ConfusionSums::Summing(mut m) => {
                m.finish();
                Some(m)
            }
            ConfusionSums::Empty | ConfusionSums::Unfit => None,
        };
        Ok((sums.finish(), matrix))
    }

    /// The confusion matrix `matrix` with a batch's predictions added (see
    /// [`Session::evaluate_split`]).
    fn add_confusion(
        &self,
        matrix: ConfusionSums,
        data: &Dataset,
        split: &str,
        batch: &crate::data::Batch,
        eval: &Prepared,
        out: &HashMap<String, Tensor>,
    ) -> ConfusionSums {
        let Some(target) = &self.lowered.config.target else {
            return ConfusionSums::Unfit;
        };
        let binary_metric = self
            .lowered
            .config
            .metrics
            .iter()
            .any(|m| m == "binary_accuracy");
        let n = batch.indices.len();
        let Some((_, prediction)) = out
            .iter()
            .find(|(name, _)| eval.role(name) == OutputRole::Prediction)
        else {
            return ConfusionSums::Unfit;
        };
        let Some(truth) = batch.tensors.get(target) else {
            return ConfusionSums::Unfit;
        };
        let (p, t) = (prediction.to_f64(), truth.to_f64());
        let per = p.len() / n.max(1);
        let k = match (truth.dtype(), truth.shape().len(), per) {
            (DType::I32, 1, k) if k >= 2 => k,
            (_, _, 1) if binary_metric && t.len() == n => 2,
            _ => return ConfusionSums::Unfit,
        };
        let mut m = match matrix {
            ConfusionSums::Summing(m) => m,
            ConfusionSums::Unfit => return ConfusionSums::Unfit,
            ConfusionSums::Empty => {
                let names = data
                    .pipeline()
                    .class_names(target)
                    .filter(|names| names.len() == k)
                    .unwrap_or_else(|| (0..k).map(|c| c.to_string()).collect());
                confusion::Confusion::new(split, names)
            }
        };
        for (i, row) in p.chunks(per).enumerate() {
            let predicted = if k == 2 && per == 1 {
                usize::from(row[0] > 0.0)
            } else {
                let mut best = 0;
                for (c, v) in row.iter().enumerate() {
                    if *v > row[best] {
                        best = c;
                    }
                }
                best
            };
            let truth = t[i];
            if truth.fract() != 0.0 || truth < 0.0 || truth >= k as f64 {
                return ConfusionSums::Unfit;
            }
            m.add(truth as usize, predicted);
        }
        ConfusionSums::Summing(m)
    }

    /// Adds a batch's losses and metrics to the split's sums; a step's loss is reported as
    /// `loss_name` when given (`loss.<phase>` in a run of several phases).
    fn add_outputs(
        &self,
        sums: &mut SplitMetrics,
        batch: &Batch,
        graph: &Prepared,
        out: &HashMap<String, Tensor>,
        loss_name: Option<&str>,
    ) {
        let samples = batch.indices.len();
        let mut names: Vec<&String> = out.keys().collect();
        names.sort();
        for name in names {
            let t = &out[name];
            match graph.role(name) {
                OutputRole::Loss => {
                    if let Some(v) = t.scalar() {
                        sums.add_batch(samples, loss_name.unwrap_or(name), Aggregation::Mean, v);
                    }
                }
                OutputRole::Metric(Aggregation::R2) => {
                    let prediction = out
                        .iter()
                        .find(|(n, _)| graph.role(n) == OutputRole::Prediction);
                    let target = self
                        .lowered
                        .config
                        .target
                        .as_ref()
                        .and_then(|t| batch.tensors.get(t));
                    if let (Some((_, prediction)), Some(target)) = (prediction, target)
                        && target.dtype().is_float()
                    {
                        sums.add_regression(name, prediction, target);
                    }
                }
                OutputRole::Metric(aggregation) => {
                    if let Some(v) = t.scalar() {
                        sums.add_batch(samples, name, aggregation, v);
                    }
                }
                OutputRole::Value
                | OutputRole::Prediction
                | OutputRole::Update(_)
                | OutputRole::Gradient
                | OutputRole::Health(_) => {}
            }
        }
    }
}

fn lower_at(
    program: &Program,
    sources: &SourceMap,
    batch: Option<usize>,
) -> Result<Lowered, String> {
    let opts = lower::Options {
        batch,
        float: DType::F32,
    };
    lower::lower(program, sources, &opts).map_err(|d| d.message.clone())
}

/// By default, every how many steps the gradient-health statistics are computed.
pub const DEFAULT_HEALTH_EVERY: usize = 10;

/// The inputs of a graph besides the trained values: the batch's fields, and the counters and
/// random key made for this step.
struct Inputs<'a> {
    batch: &'a Batch,
    made: HashMap<&'static str, Tensor>,
}

impl<'a> Inputs<'a> {
    fn new(batch: &'a Batch, counters: Option<(u64, usize)>, rng: Tensor) -> Inputs<'a> {
        let mut made = HashMap::from([("rng", rng)]);
        if let Some((step, epoch)) = counters {
            // `step` is 1-based (the update being made), `epoch` the number of epochs completed.
            made.insert("step", scalar((step + 1) as f64));
            made.insert("epoch", scalar(epoch as f64));
        }
        Inputs { batch, made }
    }

    fn get(&self, name: &str) -> Option<&Tensor> {
        self.made.get(name).or_else(|| self.batch.tensors.get(name))
    }
}

fn scalar(v: f64) -> Tensor {
    Tensor::from_f64(&crate::ir::TensorType::scalar(DType::F32), vec![v])
}

/// What happens during a run, for a progress display and logs.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    fn batch_done(&mut self, _samples: usize, _loss: f64) {}
    /// A step logged (every `RunOptions::log_every` steps).
    fn step_logged(&mut self, _record: &StepRecord) {}
    fn epoch_done(&mut self, _record: &EpochRecord, _epochs: usize) {}
    /// A gradient-health warning, as soon as it is found.
    fn warning(&mut self, _warning: &Warning) {}
    /// Whether the observer wants the weights and gradients after this epoch (1-based).
    fn wants_tensors(&self, _epoch: usize) -> bool {
        false
    }
    /// The parameters after an epoch, and their gradients on the epoch's first batch.
    fn tensors(
        &mut self,
        _epoch: usize,
        _weights: &HashMap<String, Tensor>,
        _grads: &HashMap<String, Tensor>,
    ) {
    }
    fn note(&mut self, _text: &str) {}
}

/// Two observers, told the same things in turn.
pub struct Both<'a>(pub &'a mut dyn Observer, pub &'a mut dyn Observer);

impl Observer for Both<'_> {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.0.epoch_started(epoch, epochs, batches);
        self.1.epoch_started(epoch, epochs, batches);
    }
    fn batch_done(&mut self, samples: usize, loss: f64) {
        self.0.batch_done(samples, loss);
        self.1.batch_done(samples, loss);
    }
    fn step_logged(&mut self, record: &StepRecord) {
        self.0.step_logged(record);
        self.1.step_logged(record);
    }
    fn epoch_done(&mut self, record: &EpochRecord, epochs: usize) {
        self.0.epoch_done(record, epochs);
        self.1.epoch_done(record, epochs);
    }
    fn warning(&mut self, warning: &Warning) {
        self.0.warning(warning);
        self.1.warning(warning);
    }
    fn wants_tensors(&self, epoch: usize) -> bool {
        self.0.wants_tensors(epoch) || self.1.wants_tensors(epoch)
    }
    fn tensors(
        &mut self,
        epoch: usize,
        weights: &HashMap<String, Tensor>,
        grads: &HashMap<String, Tensor>,
    ) {
        self.0.tensors(epoch, weights, grads);
        self.1.tensors(epoch, weights, grads);
    }
    fn note(&mut self, text: &str) {
        self.0.note(text);
        self.1.note(text);
    }
}

/// One logged training step: its loss, metrics and learning rate, per phase.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRecord {
    /// 1-based, counted over the run.
    pub step: u64,
    /// 1-based.
    pub epoch: usize,
    /// The batch's loss: `loss`, or `loss.<phase>` for each phase of a run of several.
    pub loss: std::collections::BTreeMap<String, f64>,
    /// The batch's value of each metric (as the step computes it on the batch).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The learning rate the step used: `learning_rate`, or `learning_rate.<phase>`.
    pub learning_rate: std::collections::BTreeMap<String, f64>,
}

/// How a run is configured beyond the file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub seed: Option<u64>,
    pub epochs: Option<usize>,
    /// Where checkpoints go (see [`checkpoint_dir_of`]); none are written when None.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue the run whose checkpoints are in this directory.
    pub resume: Option<PathBuf>,
    /// Train on at most this many batches per epoch (each epoch still shuffles all samples).
    pub steps_per_epoch: Option<usize>,
    /// Log every N-th step's loss and learning rate (`Observer::step_logged`, the report).
    pub log_every: Option<usize>,
    /// Set (by a signal handler) to stop at the next step boundary: the run saves where it
    /// stopped, part way through an epoch if need be, and returns.
    pub stop: Option<Arc<AtomicBool>>,
    /// Resuming a run that trained all its epochs (or stopped early) finishes it instead of
    /// refusing: no step is taken, the best weights are restored if asked and the test split is
    /// evaluated, as the run would have done had it not been killed after its last checkpoint.
    pub finish_trained: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub state: RunState,
    /// The epochs the run was set to; fewer ran when it stopped early.
    pub epochs: usize,
    /// The monitored value (`val.loss`) and whether smaller is better.
    pub monitor: Option<(String, bool)>,
    pub stopped_early: bool,
    pub restored_best: bool,
    /// Metrics on the test split, with the weights the run ended with.
    pub test: Option<Metrics>,
    /// The test split's confusion matrix, for a classifier.
    pub confusion: Option<confusion::Confusion>,
    pub train_seconds: f64,
    pub steps_this_run: u64,
    pub samples_this_run: usize,
    /// The compiled step's own time in each epoch of this invocation (plain runs only).
    pub step_times: Vec<EpochStepTimes>,
    pub checkpoint_dir: Option<PathBuf>,
    /// The steps logged in this invocation.
    pub steps: Vec<StepRecord>,
    /// Where the run stopped when asked to (`RunOptions::stop`); the last checkpoint holds
    /// that point.
    pub interrupted: Option<Interruption>,
}

/// How long the compiled training step took in one epoch: the calls of the step on a batch
/// already in memory, all phases of a batch together, without gathering the batch, the
/// metrics' sums or validation (what the peers' benchmarks time of their step functions).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EpochStepTimes {
    /// 1-based.
    pub epoch: usize,
    pub steps: usize,
    pub median_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
}

impl EpochStepTimes {
    /// The times of `seconds` (one per step); None for an epoch without steps.
    fn of(epoch: usize, mut seconds: Vec<f64>) -> Option<EpochStepTimes> {
        if seconds.is_empty() {
            return None;
        }
        seconds.sort_by(f64::total_cmp);
        let n = seconds.len();
        let median = if n % 2 == 1 {
            seconds[n / 2]
        } else {
            (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0
        };
        Some(EpochStepTimes {
            epoch,
            steps: n,
            median_ms: 1e3 * median,
            mean_ms: 1e3 * seconds.iter().sum::<f64>() / n as f64,
            min_ms: 1e3 * seconds[0],
        })
    }
}

/// Where a run stopped when asked to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interruption {
    /// The epoch it was in (1-based).
    pub epoch: usize,
    /// Training steps done in that epoch; None when it stopped once the epoch had ended.
    pub steps_done: Option<usize>,
}

/// A training run over a data set.
pub struct Trainer<'s, 'p> {
    session: &'s mut Session<'p>,
    data: &'s Dataset,
    epochs: usize,
    steps_per_epoch: usize,
    seed: u64,
    checkpoint_dir: Option<PathBuf>,
    values: HashMap<String, Tensor>,
    best_values: Option<HashMap<String, Tensor>>,
    state: RunState,
    log_every: Option<usize>,
    steps: Vec<StepRecord>,
    /// Watches the gradient-health statistics (when the steps compute them).
    monitor: Option<health::Monitor>,
    stop: Option<Arc<AtomicBool>>,
    /// How batches are shared out among data-parallel shards (None: one step per batch).
    sharding: Option<distributed::Sharding>,
    /// Whether a process of a data-parallel job was asked to stop: all stop at the same step.
    stop_agreed: bool,
    /// See [`RunOptions::finish_trained`].
    finish_trained: bool,
    step_times: Vec<EpochStepTimes>,
}

impl<'s, 'p> Trainer<'s, 'p> {
    /// A run from the initial values, or from the last checkpoint of `opts.resume`.
    pub fn new(
        session: &'s mut Session<'p>,
        data: &'s mut Dataset,
        opts: &RunOptions,
    ) -> Result<Trainer<'s, 'p>, String> {
        let config = session.config().clone();
        let seed = opts.seed.or(config.seed).unwrap_or(0);
        let epochs = opts.epochs.or(config.epochs).unwrap_or(1);
        session.check_memory()?;
        let checkpoint_dir = opts.resume.clone().or_else(|| opts.checkpoint_dir.clone());
        let (values, best_values, state) = match &opts.resume {
            Some(dir) => {
                let last = checkpoint::load(&dir.join(checkpoint::LAST))?;
                if last.state.train != session.lowered.train {
                    return Err(format!(
                        "the checkpoint in `{}` trained {}, this file trains {}: resume with the file that made it, or start afresh with `--checkpoint-dir`",
                        dir.display(),
                        last.state.train,
                        session.lowered.train
                    ));
                }
                if last.state.seed != seed || last.state.batch != config.batch {
                    return Err(format!(
                        "the checkpoint in `{}` was made with seed {} and batch {}; resume with the same (`--seed {} --batch {}`)",
                        dir.display(),
                        last.state.seed,
                        last.state.batch,
                        last.state.seed,
                        last.state.batch
                    ));
                }
                if !opts.finish_trained
                    && last.state.partial.is_none()
                    && last.state.epochs_done >= epochs
                {
                    return Err(format!(
                        "the run in `{}` has trained {} epoch{} already: ask for more to continue it (`--epochs {}`)",
                        dir.display(),
                        last.state.epochs_done,
                        if last.state.epochs_done == 1 { "" } else { "s" },
                        last.state.epochs_done + 1
                    ));
                }
                session.check_values(&last.values, "the checkpoint")?;
                data.restore_text(&last.data_text)
                    .map_err(|e| e.to_string())?;
                data.restore_stats(&last.data_stats)
                    .map_err(|e| e.to_string())?;
                let best = match checkpoint::load(&dir.join(checkpoint::BEST)) {
                    Ok(b) => Some(b.values),
                    Err(_) if last.state.best.is_none() => None,
                    Err(e) => return Err(e),
                };
                (last.values, best, last.state)
            }
            None => {
                let values = session.initial_values(seed)?;
                let state = RunState {
                    train: session.lowered.train.clone(),
                    seed,
                    batch: config.batch,
                    epochs_done: 0,
                    steps_done: 0,
                    best: None,
                    epochs_without_improvement: 0,
                    history: Vec::new(),
                    warnings: Vec::new(),
                    partial: None,
                };
                (values, None, state)
            }
        };
        // After a resume's statistics are restored: labels are checked as the steps see them.
        session.check_classes(data)?;
        data.prepare();
        let monitor = session
            .health_every
            .map(|_| health::Monitor::new(session.facts(), &state.history, &state.warnings));
        Ok(Trainer {
            session,
            data,
            epochs,
            steps_per_epoch: opts.steps_per_epoch.unwrap_or(usize::MAX),
            seed,
            checkpoint_dir,
            values,
            best_values,
            state,
            log_every: opts.log_every.filter(|&n| n > 0),
            steps: Vec::new(),
            monitor,
            stop: opts.stop.clone(),
            sharding: None,
            stop_agreed: false,
            finish_trained: opts.finish_trained,
            step_times: Vec::new(),
        })
    }

    /// Replaces initial values with loaded ones (`init …`): for a run that starts afresh; a
    /// resumed run keeps its checkpoint's values.
    pub fn start_from(&mut self, loaded: HashMap<String, Tensor>) {
        if self.state.epochs_done == 0 && self.state.steps_done == 0 {
            self.values.extend(loaded);
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// Whether to stop at this step boundary: this process's own request, or in a data-parallel
    /// run the request of any process as the last step's exchange told every process.
    fn should_stop(&self) -> bool {
        match self.sharding {
            Some(_) => self.stop_agreed,
            None => self.stop_requested(),
        }
    }

    /// The early-stopping rule, or else `val.loss` (`train.loss` without a validation split)
    /// watched only to keep the best checkpoint; None for a run with several losses (phases)
    /// and no `early_stop`, where no single number says which epoch is best.
    fn monitor(&self) -> Option<EarlyStop> {
        if let Some(e) = &self.session.config().early_stop {
            return Some(e.clone());
        }
        if self.session.lowered.phases.len() > 1 {
            return None;
        }
        let split = if self.data.size("val").is_some() {
            "val"
        } else {
            "train"
        };
        Some(EarlyStop {
            split: split.into(),
            metric: "loss".into(),
            minimize: true,
            patience: usize::MAX,
            min_delta: 0.0,
            restore_best: false,
        })
    }

    /// Trains until the last epoch or an early stop, then evaluates on the test split.
    pub fn run(mut self, observer: &mut dyn Observer) -> Result<RunResult, String> {
        let monitor = self.monitor();
        let monitor_name = monitor
            .as_ref()
            .map(|m| format!("{}.{}", m.split, m.metric));
        let start = Instant::now();
        let (steps_before, mut samples) = (self.state.steps_done, 0);
        // A run being finished (see `RunOptions::finish_trained`) that had stopped early.
        let mut stopped_early = self.finish_trained
            && self.state.partial.is_none()
            && monitor
                .as_ref()
                .is_some_and(|m| self.state.epochs_without_improvement >= m.patience.max(1));
        let mut interrupted = None;
        if let Some(dir) = &self.checkpoint_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        }
        while !stopped_early && self.state.epochs_done < self.epochs {
            let Some(record) = self.epoch(observer)? else {
                // Stopped part way: the checkpoint holds the partial epoch.
                self.save(false)?;
                interrupted = Some(Interruption {
                    epoch: self.state.epochs_done + 1,
                    steps_done: self.state.partial.as_ref().map(|p| p.batches_done),
                });
                break;
            };
            samples += record.samples;
            let improved = match &monitor {
                Some(m) => self.track_best(&record, m)?,
                None => false,
            };
            self.state.history.push(record.clone());
            observer.epoch_done(&record, self.epochs);
            self.save(improved)?;
            if let (Some(m), Some(name)) = (&monitor, &monitor_name)
                && self.state.epochs_without_improvement >= m.patience.max(1)
            {
                observer.note(&format!(
                    "early stop after epoch {}: {name} has not improved for {} epochs",
                    record.epoch, self.state.epochs_without_improvement
                ));
                stopped_early = true;
                break;
            }
            if self.should_stop() && self.state.epochs_done < self.epochs {
                interrupted = Some(Interruption {
                    epoch: record.epoch,
                    steps_done: None,
                });
                break;
            }
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let restored_best = interrupted.is_none()
            && monitor.as_ref().is_some_and(|m| m.restore_best)
            && self.best_values.is_some()
            && self.state.best.as_ref().map(|b| b.epoch) != Some(self.state.epochs_done);
        if restored_best && let Some(best) = self.best_values.take() {
            self.values = best;
            if let (Some(b), Some(name)) = (&self.state.best, &monitor_name) {
                observer.note(&format!(
                    "restored the weights of epoch {} ({name} {:.4})",
                    b.epoch, b.value
                ));
            }
        }
        let (test, confusion) = match self.data.size("test") {
            Some(_) if interrupted.is_none() => {
                let (metrics, confusion) = self.session.evaluate_split(
                    self.data,
                    "test",
                    &self.values,
                    self.seed,
                    true,
                )?;
                (Some(metrics), confusion)
            }
            _ => (None, None),
        };
        Ok(RunResult {
            steps_this_run: self.state.steps_done - steps_before,
            epochs: self.epochs,
            state: self.state,
            monitor: monitor_name.zip(monitor.map(|m| m.minimize)),
            stopped_early,
            restored_best,
            test,
            confusion,
            train_seconds,
            samples_this_run: samples,
            step_times: std::mem::take(&mut self.step_times),
            checkpoint_dir: self.checkpoint_dir,
            steps: self.steps,
            interrupted,
        })
    }

    /// One epoch over the training split, then the validation split; None when a stop was
    /// requested part way (`state.partial` then says how far it got). An epoch that was
    /// interrupted before carries on after the batches it trained on.
    fn epoch(&mut self, observer: &mut dyn Observer) -> Result<Option<EpochRecord>, String> {
        let epoch = self.state.epochs_done;
        let start = Instant::now();
        // A batch size met for the first time compiles its graphs inside the loop: that time is
        // the session's compile time, not training time.
        let compiled_before = self.session.compile_seconds;
        let batch_size = self.session.config().batch;
        let batches = self
            .data
            .batches("train", batch_size, epoch as u64)
            .map_err(|e| e.to_string())?;
        let resumed = self.state.partial.take();
        let done_before = resumed.as_ref().map_or(0, |p| p.batches_done);
        let batches = batches.take(self.steps_per_epoch).skip(done_before);
        observer.epoch_started(epoch + 1, self.epochs, batches.len());
        let multi_phase = self.session.lowered.phases.len() > 1;
        let phase_names: Vec<String> = self
            .session
            .lowered
            .phases
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let (mut sums, mut samples, seconds_before) = match resumed {
            Some(p) => (p.sums, p.samples, p.train_seconds),
            None => (SplitMetrics::default(), 0, 0.0),
        };
        let mut step_seconds = Vec::new();
        for (done, batch) in batches.enumerate() {
            if self.should_stop() {
                self.state.partial = Some(PartialEpoch {
                    batches_done: done_before + done,
                    samples,
                    train_seconds: seconds_before + start.elapsed().as_secs_f64()
                        - (self.session.compile_seconds - compiled_before),
                    sums,
                });
                return Ok(None);
            }
            let mut last_loss = 0.0;
            let step_number = self.state.steps_done + 1;
            let logged = self
                .log_every
                .is_some_and(|n| step_number.is_multiple_of(n as u64));
            let watched = self
                .session
                .health_every
                .is_some_and(|k| (step_number - 1).is_multiple_of(k as u64));
            let mut record = StepRecord {
                step: step_number,
                epoch: epoch + 1,
                loss: Default::default(),
                metrics: Default::default(),
                learning_rate: Default::default(),
            };
            if let Some(sharding) = self.sharding.clone() {
                let done = self.sharded_step(
                    &sharding,
                    &batch,
                    epoch,
                    watched,
                    &mut record,
                    &mut sums,
                    observer,
                )?;
                last_loss = done.loss;
                self.stop_agreed |= done.stop;
            } else {
                let mut batch_seconds = 0.0;
                let graphs = self.session.graphs(batch.indices.len())?;
                let steps = if watched && !graphs.watched.is_empty() {
                    &graphs.watched
                } else {
                    &graphs.steps
                };
                for (p, step_graph) in steps.iter().enumerate() {
                    let counter = 1 + self.state.steps_done * steps.len() as u64 + p as u64;
                    let inputs = Inputs::new(
                        &batch,
                        Some((self.state.steps_done, epoch)),
                        rng_key(self.seed, counter),
                    );
                    let started = Instant::now();
                    let out = step_graph
                        .exe
                        .run_step(&|n| inputs.get(n), &mut self.values)
                        .map_err(|e| self.failure(epoch, &e.to_string()))?;
                    let seconds = started.elapsed().as_secs_f64();
                    self.session.step_seconds += seconds;
                    batch_seconds += seconds;
                    let loss = step_graph.loss(&out).unwrap_or(f64::NAN);
                    let phase = multi_phase.then(|| phase_names[p].as_str());
                    let stats = step_graph.watched.read(&out);
                    if let Some(monitor) = &mut self.monitor {
                        monitor.know(&step_graph.watched);
                        let at = (epoch + 1, step_number);
                        for w in monitor.step(&stats, batch.indices.len(), at) {
                            observer.warning(&w);
                            self.state.warnings.push(w);
                        }
                    }
                    if logged {
                        let key = phase.map_or("loss".to_string(), |p| format!("loss.{p}"));
                        record.loss.insert(key, loss);
                        for (name, t) in &out {
                            if let (OutputRole::Metric(_), Some(v)) =
                                (step_graph.role(name), t.scalar())
                            {
                                record.metrics.insert(name.clone(), v);
                            }
                        }
                        if let Some(lr) = stats.learning_rate {
                            record
                                .learning_rate
                                .insert(health::learning_rate_key(phase), lr);
                        }
                    }
                    if !loss.is_finite() {
                        return Err(self.nonfinite(epoch, step_graph.exe.as_ref(), &inputs, loss));
                    }
                    last_loss = loss;
                    let loss_name = multi_phase.then(|| format!("loss.{}", phase_names[p]));
                    self.session.add_outputs(
                        &mut sums,
                        &batch,
                        step_graph,
                        &out,
                        loss_name.as_deref(),
                    );
                }
                step_seconds.push(batch_seconds);
            }
            self.state.steps_done += 1;
            samples += batch.indices.len();
            observer.batch_done(batch.indices.len(), last_loss);
            if logged {
                observer.step_logged(&record);
                self.steps.push(record);
            }
        }
        self.state.epochs_done += 1;
        self.step_times
            .extend(EpochStepTimes::of(self.state.epochs_done, step_seconds));
        let train_seconds = seconds_before + start.elapsed().as_secs_f64()
            - (self.session.compile_seconds - compiled_before);
        let train = sums.finish();
        let val = match self.data.size("val") {
            Some(_) => self
                .session
                .evaluate(self.data, "val", &self.values, self.seed)?,
            None => Metrics::new(),
        };
        let health = match &mut self.monitor {
            Some(monitor) => {
                let (health, warnings) = monitor.epoch_done(epoch + 1, self.state.steps_done);
                for w in warnings {
                    observer.warning(&w);
                    self.state.warnings.push(w);
                }
                Some(health)
            }
            None => None,
        };
        if observer.wants_tensors(epoch + 1) {
            self.send_tensors(epoch, observer)?;
        }
        Ok(Some(EpochRecord {
            epoch: epoch + 1,
            train,
            val,
            seconds: seconds_before + start.elapsed().as_secs_f64(),
            train_seconds,
            samples,
            samples_per_second: samples as f64 / train_seconds.max(1e-9),
            health,
        }))
    }

    /// Hands the observer the parameters and their gradients on the first batch of the epoch.
    fn send_tensors(&mut self, epoch: usize, observer: &mut dyn Observer) -> Result<(), String> {
        let batch_size = self.session.config().batch;
        let mut batches = self
            .data
            .batches("train", batch_size, epoch as u64)
            .map_err(|e| e.to_string())?;
        let Some(batch) = batches.next() else {
            return Ok(());
        };
        let grads = match self.session.gradients(&batch, &self.values, self.seed) {
            Ok(g) => g,
            Err(e) => {
                observer.note(&format!(
                    "no gradient histograms for epoch {}: {e}",
                    epoch + 1
                ));
                HashMap::new()
            }
        };
        let params: HashMap<String, Tensor> = self
            .session
            .lowered
            .params
            .iter()
            .filter_map(|(n, _)| self.values.get(n).map(|t| (n.clone(), t.clone())))
            .collect();
        observer.tensors(epoch + 1, &params, &grads);
        Ok(())
    }

    fn failure(&self, epoch: usize, message: &str) -> String {
        format!(
            "epoch {}, step {}: {message}",
            epoch + 1,
            self.state.steps_done + 1
        )
    }

    /// The error for a loss that is not finite, naming the first node that made a NaN or an
    /// infinity when the backend can find it by running the step again.
    fn nonfinite(
        &self,
        epoch: usize,
        graph: &dyn Executable,
        inputs: &Inputs,
        loss: f64,
    ) -> String {
        let values = &self.values;
        let first = graph
            .run(&|n| inputs.get(n).or_else(|| values.get(n)), true)
            .err();
        self.nonfinite_at(epoch, first, loss)
    }

    /// The message of a step whose loss is `loss`, naming the node that made the first
    /// non-finite value when the backend found it.
    fn nonfinite_at(&self, epoch: usize, first: Option<RunError>, loss: f64) -> String {
        let origin = match first {
            Some(e) => format!("; the first non-finite value: {e}"),
            None => String::new(),
        };
        self.failure(
            epoch,
            &format!(
                "the loss is {loss}{origin}; training stopped, and the checkpoints of earlier epochs are kept (a smaller learning rate or `clip_grad_norm` may help)"
            ),
        )
    }

    /// Records the monitored value of an epoch; whether it is the best so far.
    fn track_best(&mut self, record: &EpochRecord, monitor: &EarlyStop) -> Result<bool, String> {
        let value = self.monitored(record, monitor)?;
        let improved = match &self.state.best {
            None => true,
            Some(b) if monitor.minimize => value < b.value - monitor.min_delta,
            Some(b) => value > b.value + monitor.min_delta,
        };
        if improved {
            self.state.best = Some(Best {
                epoch: record.epoch,
                value,
            });
            self.state.epochs_without_improvement = 0;
            self.best_values = Some(self.values.clone());
        } else {
            self.state.epochs_without_improvement += 1;
        }
        Ok(improved)
    }

    fn monitored(&mut self, record: &EpochRecord, monitor: &EarlyStop) -> Result<f64, String> {
        let metrics = match monitor.split.as_str() {
            "train" => record.train.clone(),
            "val" => record.val.clone(),
            other => self
                .session
                .evaluate(self.data, other, &self.values, self.seed)?,
        };
        metrics.get(&monitor.metric).copied().ok_or_else(|| {
            format!(
                "`{}.{}` was not computed (the split has {})",
                monitor.split,
                monitor.metric,
                metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Writes the last checkpoint, and the best one when this epoch improved.
    fn save(&self, improved: bool) -> Result<(), String> {
        let Some(dir) = &self.checkpoint_dir else {
            return Ok(());
        };
        let stats = self.data.fitted_stats();
        let text = self.data.pipeline().fitted_text();
        checkpoint::save(
            &dir.join(checkpoint::LAST),
            &self.values,
            &stats,
            &text,
            &self.state,
        )?;
        if improved {
            checkpoint::save(
                &dir.join(checkpoint::BEST),
                &self.values,
                &stats,
                &text,
                &self.state,
            )?;
        }
        Ok(())
    }
}

/// Runs `work` on a pool of `threads` rayon threads. Everything a run does belongs inside it: the
/// parallel parts of a step (gemm, split kernels) are then forked from a thread of the pool and
/// joined by work stealing, instead of being injected from outside and waited for on a latch at
/// every call.
pub fn with_threads<T: Send>(threads: usize, work: impl FnOnce() -> T + Send) -> Result<T, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("nnl-{i}"))
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    Ok(pool.install(work))
}

/// The checkpoint directory of a file: the train block's, relative to the file's directory.
pub fn checkpoint_dir_of(file: &Path, config: &TrainConfig) -> Option<PathBuf> {
    let base = file.parent().unwrap_or(Path::new(""));
    config.checkpoint.as_ref().map(|c| base.join(c))
}

/// The TensorBoard log directory of a file: the train block's `log`, relative to the file's
/// directory.
pub fn log_dir_of(file: &Path, config: &TrainConfig) -> Option<PathBuf> {
    let base = file.parent().unwrap_or(Path::new(""));
    config.log.as_ref().map(|c| base.join(c))
}

/// The data block the root file's `train` block reads.
pub fn train_data(program: &Program) -> Result<&DataDecl, String> {
    let train = program.train().ok_or("the file has no `train` block")?;
    match program
        .lookup(program.root, &train.data.name)
        .map(|r| program.item(r))
    {
        Some(Item::Data(d)) => Ok(d),
        _ => Err(format!("`{}` is not a data block", train.data.name)),
    }
}

/// Loads the train block's data; paths are relative to the `.nnl` file's directory. Decoding
/// an image folder of [`LARGE_FOLDER`] files or more shows a progress bar on a terminal.
pub fn load_data(program: &Program, file: &Path, seed: u64) -> Result<Dataset, String> {
    let base = file.parent().unwrap_or(Path::new(""));
    let bar: std::sync::Mutex<Option<(String, indicatif::ProgressBar)>> = Default::default();
    let progress = |folder: &str, done: usize, total: usize| {
        if total < LARGE_FOLDER {
            return;
        }
        let mut bar = bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if bar.as_ref().is_none_or(|(f, _)| f != folder) {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(total as u64),
                indicatif::ProgressDrawTarget::stderr(),
            )
            .with_message(format!("decoding {folder}"));
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} {eta}")
            {
                b.set_style(style);
            }
            *bar = Some((folder.to_string(), b));
        }
        // Threads report out of order: a count below the bar's is old news.
        if let Some((_, b)) = bar.as_ref().filter(|(_, b)| done as u64 > b.position()) {
            b.set_position(done as u64);
            if done == total {
                b.finish_and_clear();
            }
        }
    };
    crate::data::load_with(program, train_data(program)?, base, seed, &progress)
        .map_err(|e| e.to_string())
}

/// The number of files from which decoding an image folder shows a progress bar.
pub const LARGE_FOLDER: usize = 2000;

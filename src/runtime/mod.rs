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
pub mod console;
pub mod generate;
pub mod labels;
pub mod memory;
pub mod metrics;
pub mod predict;
pub mod profile;
pub mod report;
pub mod weights;

pub use backend::{Backend, Executable, Interpreter, Jit};
pub use checkpoint::{Best, EpochRecord, PartialEpoch, RunState};
pub use console::Console;
pub use metrics::Metrics;

use crate::data::{Batch, Dataset};
use crate::exec::rng_key;
use crate::interp::Tensor;
use crate::ir::{Aggregation, DType, Graph, OutputRole, Role};
use crate::lower::{self, EarlyStop, Lowered, TrainConfig};
use crate::resolve::Program;
use crate::source::SourceMap;
use crate::syntax::ast::{DataDecl, Item};
use metrics::SplitMetrics;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The prepared graphs for one batch size.
struct Graphs {
    /// One training step per phase, in order.
    steps: Vec<Prepared>,
    eval: Prepared,
}

/// A graph made ready by the backend, and what each of its outputs is.
struct Prepared {
    exe: Box<dyn Executable>,
    roles: HashMap<String, OutputRole>,
}

impl Prepared {
    fn new(backend: &dyn Backend, graph: Graph) -> Result<Prepared, String> {
        let roles = graph
            .outputs
            .iter()
            .map(|o| (o.name.clone(), o.role))
            .collect();
        Ok(Prepared {
            exe: backend.prepare(graph)?,
            roles,
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
    /// Seconds spent lowering, optimizing and preparing graphs.
    pub compile_seconds: f64,
    /// Seconds spent running training steps (their graphs, not the loop around them).
    pub step_seconds: f64,
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
            compile_seconds: start.elapsed().as_secs_f64(),
            step_seconds: 0.0,
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

    fn graphs(&mut self, batch: usize) -> Result<Rc<Graphs>, String> {
        if let Some(g) = self.graphs.get(&batch) {
            return Ok(g.clone());
        }
        let start = Instant::now();
        let fresh;
        let lowered = if batch == self.lowered.config.batch {
            &self.lowered
        } else {
            fresh = lower_at(self.program, self.sources, Some(batch))?;
            &fresh
        };
        let backend = self.backend.as_ref();
        let mut steps = Vec::new();
        for phase in &lowered.phases {
            let step = crate::step::train_step(lowered, phase)?;
            steps.push(Prepared::new(backend, crate::opt::optimize(&step).0)?);
        }
        let eval = Prepared::new(backend, crate::opt::optimize(&lowered.eval).0)?;
        let g = Rc::new(Graphs { steps, eval });
        self.graphs.insert(batch, g.clone());
        self.compile_seconds += start.elapsed().as_secs_f64();
        Ok(g)
    }

    /// Where the training steps' time went, step by step of each phase's plan at the file's
    /// batch size (empty unless the backend profiles).
    pub fn training_profile(&self) -> Vec<(String, Vec<crate::jit::ProfileRow>)> {
        let Some(graphs) = self.graphs.get(&self.lowered.config.batch) else {
            return Vec::new();
        };
        self.lowered
            .phases
            .iter()
            .zip(&graphs.steps)
            .map(|(phase, step)| (phase.name.clone(), step.exe.profile()))
            .collect()
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
        let mut sums = SplitMetrics::default();
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
        }
        Ok(sums.finish())
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
                | OutputRole::Gradient => {}
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

/// What happens during a run, for a progress display.
pub trait Observer {
    fn epoch_started(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    fn batch_done(&mut self, _samples: usize, _loss: f64) {}
    fn epoch_done(&mut self, _record: &EpochRecord, _epochs: usize) {}
    fn note(&mut self, _text: &str) {}
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
    /// Set (by a signal handler) to stop at the next step boundary: the run saves where it
    /// stopped, part way through an epoch if need be, and returns.
    pub stop: Option<Arc<AtomicBool>>,
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
    pub train_seconds: f64,
    pub steps_this_run: u64,
    pub samples_this_run: usize,
    pub checkpoint_dir: Option<PathBuf>,
    /// Where the run stopped when asked to (`RunOptions::stop`); the last checkpoint holds
    /// that point.
    pub interrupted: Option<Interruption>,
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
    stop: Option<Arc<AtomicBool>>,
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
                if last.state.partial.is_none() && last.state.epochs_done >= epochs {
                    return Err(format!(
                        "the run in `{}` has trained {} epoch{} already: ask for more to continue it (`--epochs {}`)",
                        dir.display(),
                        last.state.epochs_done,
                        if last.state.epochs_done == 1 { "" } else { "s" },
                        last.state.epochs_done + 1
                    ));
                }
                session.check_values(&last.values, "the checkpoint")?;
                data.restore_stats(&last.data_stats)
                    .map_err(|e| e.to_string())?;
                data.restore_text(&last.data_text)
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
                    partial: None,
                };
                (values, None, state)
            }
        };
        // After a resume's statistics are restored: labels are checked as the steps see them.
        session.check_classes(data)?;
        data.prepare();
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
            stop: opts.stop.clone(),
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
        let mut stopped_early = false;
        let mut interrupted = None;
        if let Some(dir) = &self.checkpoint_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        }
        while self.state.epochs_done < self.epochs {
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
            if self.stop_requested() && self.state.epochs_done < self.epochs {
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
        let test = match self.data.size("test") {
            Some(_) if interrupted.is_none() => {
                Some(
                    self.session
                        .evaluate(self.data, "test", &self.values, self.seed)?,
                )
            }
            _ => None,
        };
        Ok(RunResult {
            steps_this_run: self.state.steps_done - steps_before,
            epochs: self.epochs,
            state: self.state,
            monitor: monitor_name.zip(monitor.map(|m| m.minimize)),
            stopped_early,
            restored_best,
            test,
            train_seconds,
            samples_this_run: samples,
            checkpoint_dir: self.checkpoint_dir,
            interrupted,
        })
    }

    /// One epoch over the training split, then the validation split; None when a stop was
    /// requested part way (`state.partial` then says how far it got). An epoch that was
    /// interrupted before carries on after the batches it trained on.
    fn epoch(&mut self, observer: &mut dyn Observer) -> Result<Option<EpochRecord>, String> {
        let epoch = self.state.epochs_done;
        let start = Instant::now();
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
        for (done, batch) in batches.enumerate() {
            if self.stop_requested() {
                self.state.partial = Some(PartialEpoch {
                    batches_done: done_before + done,
                    samples,
                    train_seconds: seconds_before + start.elapsed().as_secs_f64(),
                    sums,
                });
                return Ok(None);
            }
            let graphs = self.session.graphs(batch.indices.len())?;
            let mut last_loss = 0.0;
            for (p, step_graph) in graphs.steps.iter().enumerate() {
                let counter = 1 + self.state.steps_done * graphs.steps.len() as u64 + p as u64;
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
                self.session.step_seconds += started.elapsed().as_secs_f64();
                let loss = step_graph.loss(&out).unwrap_or(f64::NAN);
                if !loss.is_finite() {
                    return Err(self.nonfinite(epoch, step_graph.exe.as_ref(), &inputs, loss));
                }
                last_loss = loss;
                let loss_name = multi_phase.then(|| format!("loss.{}", phase_names[p]));
                self.session
                    .add_outputs(&mut sums, &batch, step_graph, &out, loss_name.as_deref());
            }
            self.state.steps_done += 1;
            samples += batch.indices.len();
            observer.batch_done(batch.indices.len(), last_loss);
        }
        self.state.epochs_done += 1;
        let train_seconds = seconds_before + start.elapsed().as_secs_f64();
        let train = sums.finish();
        let val = match self.data.size("val") {
            Some(_) => self
                .session
                .evaluate(self.data, "val", &self.values, self.seed)?,
            None => Metrics::new(),
        };
        Ok(Some(EpochRecord {
            epoch: epoch + 1,
            train,
            val,
            seconds: seconds_before + start.elapsed().as_secs_f64(),
            train_seconds,
            samples,
            samples_per_second: samples as f64 / train_seconds.max(1e-9),
        }))
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
        let origin = match graph.run(&|n| inputs.get(n).or_else(|| values.get(n)), true) {
            Err(e) => format!("; the first non-finite value: {e}"),
            Ok(_) => String::new(),
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
        let text = self.data.fitted_text();
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

/// Loads the train block's data; paths are relative to the `.nnl` file's directory.
pub fn load_data(program: &Program, file: &Path, seed: u64) -> Result<Dataset, String> {
    let base = file.parent().unwrap_or(Path::new(""));
    crate::data::load(program, train_data(program)?, base, seed).map_err(|e| e.to_string())
}

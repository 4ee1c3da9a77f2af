//! Data-parallel training: every global batch is cut into shards, each shard's gradient sums
//! are computed by its own step graph ([`crate::step::shard_gradient_step`]), the sums are added
//! up in shard order, and one update step ([`crate::step::update_step`]) divides them by the
//! global batch's size and applies the optimizer, identically on every process.
//!
//! The processes talk through a [`Collective`]: MPI under `mpirun` (feature `mpi`, one shard per
//! rank), or [`Local`], one process that computes every shard itself (`nnlc run --shards N`).
//! Both run the same code on the same graphs and add the shards' sums in the same order, so a
//! job of N ranks and one process with N shards end with bit-identical parameters.
//!
//! Per step a process sends one flat buffer: a word saying whether it was asked to stop, then
//! per shard it computes the gradient sums of every parameter the phase updates, the new layer
//! state, and the shard's size, loss and metrics. An all-gather gives every process every
//! buffer, in rank order; each then adds them up itself. Summing gathered buffers instead of
//! calling an MPI reduction is what makes the result independent of the MPI library's reduction
//! order and equal to the one-process path.

use super::{Inputs, Prepared, Session, StepRecord, Trainer, health, metrics::SplitMetrics};
use crate::data::Batch;
use crate::exec::rng_key;
use crate::ir::{Aggregation, OutputRole, TensorType};
use crate::step;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

/// How the processes of a data-parallel job exchange data.
pub trait Collective {
    /// This process's index, 0-based; rank 0 writes checkpoints, reports and logs.
    fn rank(&self) -> usize;
    /// The number of processes.
    fn size(&self) -> usize;
    /// Every process's `local` (equally long on every process), concatenated in rank order.
    fn all_gather(&self, local: &[u32]) -> Result<Vec<u32>, String>;
    /// Rank 0's `bytes` (equally long on every process), on every process.
    fn broadcast(&self, bytes: &mut [u8]) -> Result<(), String>;
}

/// The number of processes when an MPI launcher started this one (`mpirun`/`mpiexec` of Open
/// MPI or MPICH, Slurm's `srun` through PMI or PMIx), from the variables it sets.
pub fn launcher_size() -> Option<usize> {
    let var = |name: &str| std::env::var(name).ok();
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"]
        .iter()
        .find_map(|v| var(v).and_then(|n| n.trim().parse().ok()))
        .or_else(|| {
            var("PMIX_RANK")
                .and(var("SLURM_NTASKS"))
                .and_then(|n| n.parse().ok())
        })
}

/// One process on its own: every collective is the identity.
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather(&self, local: &[u32]) -> Result<Vec<u32>, String> {
        Ok(local.to_vec())
    }
    fn broadcast(&self, _bytes: &mut [u8]) -> Result<(), String> {
        Ok(())
    }
}

/// How a run's batches are shared out.
#[derive(Clone)]
pub struct Sharding {
    comm: Rc<dyn Collective>,
    shards: usize,
}

impl Sharding {
    /// `shards` shards per batch over the processes of `comm`: each process computes the same
    /// number of them (one per rank under MPI, all of them in a single process).
    pub fn new(comm: Rc<dyn Collective>, shards: usize) -> Result<Sharding, String> {
        let size = comm.size();
        if shards == 0 || !shards.is_multiple_of(size) {
            return Err(format!(
                "{shards} shards cannot be shared equally by {size} processes"
            ));
        }
        Ok(Sharding { comm, shards })
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }

    pub fn processes(&self) -> usize {
        self.comm.size()
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The shards this process computes.
    fn owned(&self) -> Range<usize> {
        let per = self.shards / self.comm.size();
        self.comm.rank() * per..(self.comm.rank() + 1) * per
    }
}

/// The rows of each shard of a batch of `samples`: consecutive, sizes differing by at most one,
/// the larger first (so the first shard is empty only when the batch is).
pub fn shard_rows(samples: usize, shards: usize) -> Vec<Range<usize>> {
    let (base, extra) = (samples / shards, samples % shards);
    let mut start = 0;
    (0..shards)
        .map(|s| {
            let len = base + usize::from(s < extra);
            let rows = start..start + len;
            start += len;
            rows
        })
        .collect()
}

/// The random key of a shard's step: the one-process key for the first shard, another stream
/// (dropout mask) for each other shard.
fn shard_key(seed: u64, counter: u64, shard: usize) -> Tensor {
    rng_key(
        seed.wrapping_add((shard as u64).wrapping_mul(0x9E37_79B9)),
        counter,
    )
}

/// The prepared graphs of the data-parallel path: per phase, the shard step at one shard size.
pub(super) struct ShardGraphs {
    steps: Vec<Prepared>,
    /// With the ReLUs' activity (none when health is off).
    watched: Vec<Prepared>,
}

impl ShardGraphs {
    /// The step of phase `p`, with the ReLUs' activity when `watched` (and health is on).
    fn step(&self, p: usize, watched: bool) -> &Prepared {
        match self.watched.get(p) {
            Some(g) if watched => g,
            _ => &self.steps[p],
        }
    }
}

/// Per phase, the update step, which does not depend on the batch size.
pub(super) struct UpdateGraphs {
    steps: Vec<Prepared>,
    /// With the per-layer norms (none when health is off).
    watched: Vec<Prepared>,
}

/// What a shard sends for one phase, in order: the gradient sums of the updated parameters,
/// the new value of each layer state the phase changes, then as f64 the shard's size, its
/// loss, and each metric (four sums for an R²).
struct Layout {
    grads: Vec<(String, TensorType)>,
    states: Vec<(String, TensorType)>,
    loss: String,
    metrics: Vec<(String, Aggregation)>,
}

impl Layout {
    fn of(session: &Session, phase: usize) -> Layout {
        let lowered = &session.lowered;
        let phase = &lowered.phases[phase];
        let g = &phase.forward;
        let grads = phase
            .updates
            .iter()
            .filter_map(|u| {
                g.find_input(&u.param)
                    .map(|v| (u.param.clone(), g.ty(v).clone()))
            })
            .collect();
        let states = lowered
            .states
            .iter()
            .filter(|(name, _)| g.outputs.iter().any(|o| &o.name == name))
            .cloned()
            .collect();
        let mut loss = String::from("loss");
        let mut metrics = Vec::new();
        for o in &g.outputs {
            match o.role {
                OutputRole::Loss => loss = o.name.clone(),
                OutputRole::Metric(a) => metrics.push((o.name.clone(), a)),
                OutputRole::Value
                | OutputRole::Prediction
                | OutputRole::Update(_)
                | OutputRole::Gradient
                | OutputRole::Health(_) => {}
            }
        }
        metrics.sort_by(|a, b| a.0.cmp(&b.0));
        Layout {
            grads,
            states,
            loss,
            metrics,
        }
    }

    fn floats(&self) -> usize {
        let count = |list: &[(String, TensorType)]| -> usize {
            list.iter()
                .map(|(_, t)| t.shape.iter().product::<usize>())
                .sum()
        };
        count(&self.grads) + count(&self.states)
    }

    fn stats(&self) -> usize {
        2 + self
            .metrics
            .iter()
            .map(|(_, a)| if *a == Aggregation::R2 { 4 } else { 1 })
            .sum::<usize>()
    }

    /// Words of one shard's record.
    fn words(&self) -> usize {
        self.floats() + 2 * self.stats()
    }
}

fn push_f32(words: &mut Vec<u32>, t: &Tensor) -> Result<(), String> {
    match t {
        Tensor::F32(a) => {
            words.extend(a.iter().map(|v| v.to_bits()));
            Ok(())
        }
        other => Err(format!(
            "data-parallel training exchanges f32 values, found {}",
            other.dtype().name()
        )),
    }
}

fn push_f64(words: &mut Vec<u32>, v: f64) {
    let bits = v.to_bits();
    words.push(bits as u32);
    words.push((bits >> 32) as u32);
}

fn read_f64(words: &[u32]) -> f64 {
    f64::from_bits(u64::from(words[0]) | (u64::from(words[1]) << 32))
}

fn f32_tensor(ty: &TensorType, words: &[u32]) -> Tensor {
    let values: Vec<f32> = words.iter().map(|&w| f32::from_bits(w)).collect();
    Tensor::F32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&ty.shape), values)
            .expect("the layout's sizes"),
    )
}

impl Session<'_> {
    fn shard_graphs(&mut self, samples: usize) -> Result<Rc<ShardGraphs>, String> {
        if let Some(g) = self.shard_graphs.get(&samples) {
            return Ok(g.clone());
        }
        let start = std::time::Instant::now();
        let (steps, watched) = self.with_lowered(samples, |lowered| {
            self.prepare_phases(lowered, false, true, |phase, watch| {
                step::shard_gradient_step(phase, samples, watch)
            })
        })?;
        let graphs = Rc::new(ShardGraphs { steps, watched });
        self.shard_graphs.insert(samples, graphs.clone());
        self.compile_seconds += start.elapsed().as_secs_f64();
        Ok(graphs)
    }

    fn update_graphs(&mut self) -> Result<Rc<UpdateGraphs>, String> {
        if let Some(g) = &self.update_graphs {
            return Ok(g.clone());
        }
        let start = std::time::Instant::now();
        let lowered = &self.lowered;
        let (steps, watched) = self.prepare_phases(lowered, true, false, |phase, watch| {
            step::update_step(lowered, phase, watch)
        })?;
        let graphs = Rc::new(UpdateGraphs { steps, watched });
        self.update_graphs = Some(graphs.clone());
        self.compile_seconds += start.elapsed().as_secs_f64();
        Ok(graphs)
    }
}

/// Seconds of a data-parallel run: the shard steps, the exchanges, the updates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seconds {
    pub shards: f64,
    pub exchange: f64,
    pub update: f64,
}

/// What one data-parallel step of a batch reports back to the epoch loop.
pub(super) struct ShardedStep {
    /// The loss of the last phase over the global batch.
    pub loss: f64,
    /// Whether some process was asked to stop: every process stops after this step.
    pub stop: bool,
}

impl Trainer<'_, '_> {
    /// Makes the run data-parallel: rank 0's parameters, layer and optimizer state replace
    /// every other rank's (at the start and after `--resume`), and only rank 0 saves.
    pub fn distribute(&mut self, sharding: Sharding) -> Result<(), String> {
        let mut names: Vec<String> = self.values.keys().cloned().collect();
        names.sort();
        let mut bytes = Vec::new();
        for name in &names {
            bytes.extend(tensor_bytes(&self.values[name]));
        }
        sharding.comm.broadcast(&mut bytes)?;
        let mut at = 0;
        for name in &names {
            let t = self.values.get_mut(name).expect("listed above");
            at += set_tensor_bytes(t, &bytes[at..]);
        }
        if sharding.rank() != 0 {
            self.checkpoint_dir = None;
        }
        self.sharding = Some(sharding);
        Ok(())
    }

    /// One training step of every phase on `batch`, its shards computed where they belong.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sharded_step(
        &mut self,
        sharding: &Sharding,
        batch: &Batch,
        epoch: usize,
        watched: bool,
        record: &mut StepRecord,
        sums: &mut SplitMetrics,
        observer: &mut dyn super::Observer,
    ) -> Result<ShardedStep, String> {
        let samples = batch.indices.len();
        let rows = shard_rows(samples, sharding.shards);
        let phases = self.session.lowered.phases.len();
        let multi_phase = phases > 1;
        let step_number = self.state.steps_done + 1;
        let mut last_loss = f64::NAN;
        let mut stop = false;
        let updates = self.session.update_graphs()?;
        for p in 0..phases {
            let layout = Layout::of(&*self.session, p);
            let phase_name = self.session.lowered.phases[p].name.clone();
            let counter = 1 + self.state.steps_done * phases as u64 + p as u64;
            let mut local = vec![u32::from(self.stop_requested())];
            let mut relus = None;
            let shards: Vec<Batch> = sharding
                .owned()
                .map(|s| batch.rows(rows[s].clone()))
                .collect();
            let mut graph_sets = Vec::new();
            for shard in &shards {
                graph_sets.push(match shard.indices.len() {
                    0 => None,
                    n => Some(self.session.shard_graphs(n)?),
                });
            }
            // Every process exchanges the sums of the first shard's step, which every shard
            // step has whatever its size (the first shard is empty only when the batch is).
            let first = self.session.shard_graphs(rows[0].len())?;
            let inputs: Vec<Inputs> = sharding
                .owned()
                .zip(&shards)
                .map(|(s, shard)| {
                    Inputs::new(
                        shard,
                        Some((self.state.steps_done, epoch)),
                        shard_key(self.seed, counter, s),
                    )
                })
                .collect();
            let graphs: Vec<Option<&Prepared>> = graph_sets
                .iter()
                .map(|g| g.as_deref().map(|g| g.step(p, watched)))
                .collect();
            let reference = first.step(p, watched);
            let outs = self.run_stages(sharding, &rows, reference, &graphs, &inputs, epoch)?;
            for (((shard, graph), out), inputs) in
                shards.iter().zip(&graphs).zip(&outs).zip(&inputs)
            {
                let Some(graph) = graph else {
                    local.extend(std::iter::repeat_n(0, layout.words()));
                    continue;
                };
                let loss = graph.loss(&out.results).unwrap_or(f64::NAN);
                if !loss.is_finite() {
                    let first = self.locate_nonfinite(graph, &out.exchanged, inputs);
                    return Err(self.nonfinite_at(epoch, first, loss));
                }
                self.encode_shard(&layout, shard, &out.results, &mut local)?;
                if relus.is_none() && watched {
                    if let Some(monitor) = &mut self.monitor {
                        monitor.know(&graph.watched);
                    }
                    relus = Some(graph.watched.read(&out.results).relus);
                }
            }
            let exchanged = std::time::Instant::now();
            let all = sharding.comm.all_gather(&local)?;
            let per_rank = 1 + sharding.owned().len() * layout.words();
            if all.len() != per_rank * sharding.processes() {
                return Err(format!(
                    "the processes sent {} words for a step, expected {}",
                    all.len(),
                    per_rank * sharding.processes()
                ));
            }
            let mut records = Vec::new();
            for rank in all.chunks(per_rank) {
                stop |= rank[0] != 0;
                records.extend(rank[1..].chunks(layout.words()));
            }
            // Gradient sums added in shard order, every process alike.
            let floats = layout.floats();
            let total = sum_in_shard_order(&records, &rows, floats);
            self.session.parallel.exchange += exchanged.elapsed().as_secs_f64();
            let mut step_sums = SplitMetrics::default();
            let mut first = true;
            for (record, rows) in records.iter().zip(&rows) {
                if rows.is_empty() {
                    continue;
                }
                if first {
                    self.take_states(&layout, record);
                }
                first = false;
                let stats = &record[floats..];
                for sink in [&mut *sums, &mut step_sums] {
                    decode_stats(&layout, stats, sink, multi_phase.then_some(&phase_name));
                }
            }
            let step_metrics = step_sums.finish();
            let loss_key = match multi_phase {
                true => format!("loss.{phase_name}"),
                false => layout.loss.clone(),
            };
            let loss = step_metrics.get(&loss_key).copied().unwrap_or(f64::NAN);
            let mut inputs: HashMap<String, Tensor> = HashMap::new();
            let mut at = 0;
            for (name, ty) in &layout.grads {
                let n = ty.shape.iter().product::<usize>();
                let sum: Vec<u32> = total[at..at + n].iter().map(|v| v.to_bits()).collect();
                inputs.insert(step::grad_name(name), f32_tensor(ty, &sum));
                at += n;
            }
            // As `Inputs` makes them: `step` 1-based, `epoch` the epochs completed.
            let counters = [
                (step::SAMPLES_INPUT, samples as f64),
                ("step", (self.state.steps_done + 1) as f64),
                ("epoch", epoch as f64),
            ];
            for (name, value) in counters {
                inputs.insert(name.into(), super::scalar(value));
            }
            let update = match updates.watched.get(p) {
                Some(g) if watched => g,
                _ => &updates.steps[p],
            };
            let started = std::time::Instant::now();
            let out = update
                .exe
                .run_step(&|n| inputs.get(n), &mut self.values)
                .map_err(|e| self.failure(epoch, &e.to_string()))?;
            let seconds = started.elapsed().as_secs_f64();
            self.session.step_seconds += seconds;
            self.session.parallel.update += seconds;
            let mut stats = update.watched.read(&out);
            stats.relus = relus.unwrap_or_default();
            if let Some(monitor) = &mut self.monitor {
                monitor.know(&update.watched);
                for w in monitor.step(&stats, samples, (epoch + 1, step_number)) {
                    observer.warning(&w);
                    self.state.warnings.push(w);
                }
            }
            let phase = multi_phase.then_some(phase_name.as_str());
            record.loss.insert(loss_key.clone(), loss);
            for (name, _) in &layout.metrics {
                if let Some(v) = step_metrics.get(name) {
                    record.metrics.insert(name.clone(), *v);
                }
            }
            if let Some(lr) = stats.learning_rate {
                record
                    .learning_rate
                    .insert(health::learning_rate_key(phase), lr);
            }
            if !loss.is_finite() {
                return Err(self.failure(
                    epoch,
                    &format!(
                        "the loss over the batch is {loss}; training stopped, and the checkpoints of earlier epochs are kept"
                    ),
                ));
            }
            last_loss = loss;
        }
        Ok(ShardedStep {
            loss: last_loss,
            stop,
        })
    }

    /// Runs the shard steps of this process (None for an empty shard) on their inputs, stage
    /// by stage: before each stage after the first, every sum it reads is added up over all
    /// shards, in shard order, with the parts `reference` (a step every process has) lists.
    fn run_stages(
        &mut self,
        sharding: &Sharding,
        rows: &[Range<usize>],
        reference: &Prepared,
        graphs: &[Option<&Prepared>],
        inputs: &[Inputs],
        epoch: usize,
    ) -> Result<Vec<ShardOutputs>, String> {
        let mut outs: Vec<ShardOutputs> = graphs.iter().map(|_| ShardOutputs::default()).collect();
        for k in 0..=reference.later.len() {
            if k > 0 {
                let sums = &reference.later[k - 1].1;
                let started = std::time::Instant::now();
                exchange_sums(sharding, rows, sums, &mut outs)?;
                self.session.parallel.exchange += started.elapsed().as_secs_f64();
            }
            for ((graph, out), inputs) in graphs.iter().zip(&mut outs).zip(inputs) {
                let Some(graph) = graph else { continue };
                let exe = stage(graph, reference, k)?;
                let started = std::time::Instant::now();
                let (values, exchanged) = (&self.values, &out.exchanged);
                let lookup = |n: &str| {
                    exchanged
                        .get(n)
                        .or_else(|| inputs.get(n))
                        .or_else(|| values.get(n))
                };
                let result = exe
                    .run(&lookup, false)
                    .map_err(|e| self.failure(epoch, &e.to_string()))?;
                let seconds = started.elapsed().as_secs_f64();
                self.session.step_seconds += seconds;
                self.session.parallel.shards += seconds;
                for (name, t) in result {
                    match graph.roles.contains_key(&name) {
                        true => out.results.insert(name, t),
                        false => out.exchanged.insert(name, t),
                    };
                }
            }
        }
        Ok(outs)
    }

    /// The first node of a shard step's stages that made a non-finite value, run again on the
    /// sums and values passed between them.
    fn locate_nonfinite(
        &self,
        graph: &Prepared,
        exchanged: &HashMap<String, Tensor>,
        inputs: &Inputs,
    ) -> Option<crate::tensor::RunError> {
        let values = &self.values;
        let lookup = |n: &str| {
            exchanged
                .get(n)
                .or_else(|| inputs.get(n))
                .or_else(|| values.get(n))
        };
        let mut stages = std::iter::once(&graph.exe).chain(graph.later.iter().map(|(e, _)| e));
        stages.find_map(|exe| exe.run(&lookup, true).err())
    }

    fn encode_shard(
        &self,
        layout: &Layout,
        shard: &Batch,
        out: &HashMap<String, Tensor>,
        words: &mut Vec<u32>,
    ) -> Result<(), String> {
        let missing = |name: &str| format!("the shard step has no output `{name}`");
        for (name, _) in &layout.grads {
            let g = out
                .get(&step::grad_name(name))
                .ok_or_else(|| missing(name))?;
            push_f32(words, g)?;
        }
        for (name, _) in &layout.states {
            push_f32(words, out.get(name).ok_or_else(|| missing(name))?)?;
        }
        push_f64(words, shard.indices.len() as f64);
        let scalar = |name: &str| out.get(name).and_then(Tensor::scalar).unwrap_or(f64::NAN);
        push_f64(words, scalar(&layout.loss));
        let prediction = out.iter().find(|(n, _)| {
            self.session.lowered.phases.iter().any(|p| {
                p.forward
                    .outputs
                    .iter()
                    .any(|o| &o.name == *n && o.role == OutputRole::Prediction)
            })
        });
        let target = self
            .session
            .lowered
            .config
            .target
            .as_ref()
            .and_then(|t| shard.tensors.get(t));
        for (name, aggregation) in &layout.metrics {
            if *aggregation == Aggregation::R2 {
                let sums = match (prediction, target) {
                    (Some((_, p)), Some(t)) if t.dtype().is_float() => {
                        super::metrics::regression_sums(p, t)
                    }
                    _ => None,
                };
                for v in sums.unwrap_or([f64::NAN; 4]) {
                    push_f64(words, v);
                }
            } else {
                push_f64(words, scalar(name));
            }
        }
        Ok(())
    }

    /// The new layer state of the first shard becomes every process's (as PyTorch's
    /// DistributedDataParallel broadcasts rank 0's buffers).
    fn take_states(&mut self, layout: &Layout, record: &[u32]) {
        let mut at = layout
            .grads
            .iter()
            .map(|(_, t)| t.shape.iter().product::<usize>())
            .sum::<usize>();
        for (name, ty) in &layout.states {
            let n = ty.shape.iter().product::<usize>();
            self.values
                .insert(name.clone(), f32_tensor(ty, &record[at..at + n]));
            at += n;
        }
    }
}

/// What the stages of one shard's step computed: the step's outputs, and the values passed
/// from stage to stage (each sum's part and total, the values a later stage reads).
#[derive(Default)]
pub(super) struct ShardOutputs {
    results: HashMap<String, Tensor>,
    exchanged: HashMap<String, Tensor>,
}

/// Stage `k` of `graph`, which must have the stages and sums of `reference`.
fn stage<'g>(
    graph: &'g Prepared,
    reference: &Prepared,
    k: usize,
) -> Result<&'g dyn super::Executable, String> {
    let same = graph.later.len() == reference.later.len()
        && graph
            .later
            .iter()
            .zip(&reference.later)
            .all(|((_, a), (_, b))| a == b);
    if !same {
        return Err(
            "internal error: the shard steps of two shard sizes exchange different sums".into(),
        );
    }
    Ok(match k {
        0 => graph.exe.as_ref(),
        k => graph.later[k - 1].0.as_ref(),
    })
}

/// Adds up, over every shard of the batch, each of `sums` (the parts this process's shards
/// computed, gathered from every process), in shard order, skipping empty shards; every
/// process then has the totals, as the next stage's inputs.
fn exchange_sums(
    sharding: &Sharding,
    rows: &[Range<usize>],
    sums: &[crate::ir::stages::Sum],
    outs: &mut [ShardOutputs],
) -> Result<(), String> {
    let floats: usize = sums.iter().map(|s| s.ty.numel()).sum();
    let mut local = Vec::with_capacity(floats * outs.len());
    for (s, out) in sharding.owned().zip(outs.iter()) {
        if rows[s].is_empty() {
            local.extend(std::iter::repeat_n(0, floats));
            continue;
        }
        for sum in sums {
            let part = out
                .exchanged
                .get(&sum.part)
                .ok_or_else(|| format!("the shard step has no output `{}`", sum.part))?;
            push_f32(&mut local, part)?;
        }
    }
    let all = sharding.comm.all_gather(&local)?;
    if all.len() != floats * sharding.shards {
        return Err(format!(
            "the processes sent {} words for the sums over shards, expected {}",
            all.len(),
            floats * sharding.shards
        ));
    }
    let parts: Vec<&[u32]> = all.chunks(floats.max(1)).collect();
    let total = sum_in_shard_order(&parts, rows, floats);
    let mut at = 0;
    for sum in sums {
        let n = sum.ty.numel();
        let words: Vec<u32> = total[at..at + n].iter().map(|v| v.to_bits()).collect();
        let t = f32_tensor(&sum.ty, &words);
        for out in outs.iter_mut() {
            out.exchanged.insert(sum.total.clone(), t.clone());
        }
        at += n;
    }
    Ok(())
}

/// The first `floats` words of each shard's record as f32, added up in shard order, skipping
/// empty shards (so one shard's values are returned as they are).
fn sum_in_shard_order(records: &[&[u32]], rows: &[Range<usize>], floats: usize) -> Vec<f32> {
    let mut total = vec![0f32; floats];
    let mut first = true;
    for (record, rows) in records.iter().zip(rows) {
        if rows.is_empty() {
            continue;
        }
        for (t, w) in total.iter_mut().zip(&record[..floats]) {
            *t = if first {
                f32::from_bits(*w)
            } else {
                *t + f32::from_bits(*w)
            };
        }
        first = false;
    }
    total
}

/// Adds a shard's size, loss and metrics to `sums` (the loss as `loss.<phase>` in a run of
/// several phases).
fn decode_stats(layout: &Layout, stats: &[u32], sums: &mut SplitMetrics, phase: Option<&String>) {
    let value = |i: usize| read_f64(&stats[2 * i..2 * i + 2]);
    let samples = value(0) as usize;
    let loss_name = match phase {
        Some(p) => format!("loss.{p}"),
        None => layout.loss.clone(),
    };
    sums.add_batch(samples, &loss_name, Aggregation::Mean, value(1));
    let mut i = 2;
    for (name, aggregation) in &layout.metrics {
        if *aggregation == Aggregation::R2 {
            let s = [value(i), value(i + 1), value(i + 2), value(i + 3)];
            if s.iter().all(|v| v.is_finite()) {
                sums.add_regression_sums(name, s);
            }
            i += 4;
        } else {
            sums.add_batch(samples, name, *aggregation, value(i));
            i += 1;
        }
    }
}

/// A tensor's values as little-endian bytes.
fn tensor_bytes(t: &Tensor) -> Vec<u8> {
    match t {
        Tensor::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::F64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::I32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::Bool(a) => a.iter().map(|&v| u8::from(v)).collect(),
    }
}

/// Replaces a tensor's values by those `bytes` begins with (as [`tensor_bytes`] wrote them);
/// returns how many bytes it read.
fn set_tensor_bytes(t: &mut Tensor, bytes: &[u8]) -> usize {
    match t {
        Tensor::F32(a) => {
            for (v, b) in a.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = f32::from_le_bytes(b.try_into().expect("four bytes"));
            }
            4 * a.len()
        }
        Tensor::F64(a) => {
            for (v, b) in a.iter_mut().zip(bytes.chunks_exact(8)) {
                *v = f64::from_le_bytes(b.try_into().expect("eight bytes"));
            }
            8 * a.len()
        }
        Tensor::I32(a) => {
            for (v, b) in a.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = i32::from_le_bytes(b.try_into().expect("four bytes"));
            }
            4 * a.len()
        }
        Tensor::Bool(a) => {
            for (v, b) in a.iter_mut().zip(bytes) {
                *v = *b != 0;
            }
            a.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    #[test]
    fn shards_cover_the_batch_in_order_the_larger_first() {
        assert_eq!(shard_rows(7, 3), vec![0..3, 3..5, 5..7]);
        assert_eq!(shard_rows(1, 2), vec![0..1, 1..1]);
        assert_eq!(shard_rows(64, 2), vec![0..32, 32..64]);
    }

    #[test]
    fn values_survive_their_byte_form() {
        let ty = TensorType::new(DType::F32, vec![3]);
        let t = f32_tensor(
            &ty,
            &[1f32.to_bits(), (-0.5f32).to_bits(), f32::NAN.to_bits()],
        );
        let mut u = f32_tensor(&ty, &[0; 3]);
        assert_eq!(set_tensor_bytes(&mut u, &tensor_bytes(&t)), 12);
        assert_eq!(tensor_bytes(&u), tensor_bytes(&t));
        let mut words = Vec::new();
        push_f64(&mut words, -1.25e300);
        assert_eq!(read_f64(&words), -1.25e300);
    }
}

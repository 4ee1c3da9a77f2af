//! Gradient health: the runtime's reading of the statistics a watched training step outputs
//! (`step::health`), and the warnings it draws from them.
//!
//! Each kind of warning is given once per run (dead units once per ReLU), naming the layer (its
//! instance path and the source line of its call), with the numbers behind it and what usually
//! helps:
//!
//! - **vanishing gradients**: an early layer's gradient norm stays below [`VANISHING`] times the
//!   last layer's (of the same model) for [`VANISHING_EPOCHS`] epochs in a row;
//! - **exploding gradients**: a gradient norm that is not finite, a step whose total gradient
//!   norm is [`EXPLODING`] times the median of the run's first steps, or a total norm that grew
//!   in each of the last [`GROWTH_EPOCHS`] epochs, [`GROWTH`] times in all;
//! - **dead ReLUs**: at least [`DEAD_SHARE`] of a ReLU's units were positive for fewer than
//!   [`DEAD_UNIT`] of an epoch's values;
//! - **a learning rate too high or too low**: a layer's update/weight ratio ‖Δp‖ / ‖p‖, which is
//!   about 1e-3 in healthy training, averaged over an epoch, is more than [`RATIO_FAR`] times
//!   above or below 1e-3 (too low only for a layer whose gradient is not tiny next to the
//!   others', which is vanishing or dead units, not the learning rate); or a single step moves a
//!   layer's weights by more than their own norm (not for a layer that starts at zero).
//!
//! The thresholds are round numbers chosen from those rules of thumb, not fitted to any run.

use super::checkpoint::EpochRecord;
use crate::ir::{Graph, Health, Loc, OutputRole};
use crate::source::SourceMap;
use crate::step::health::PREFIX;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An early layer's gradient norm below this fraction of the last layer's is vanishing...
pub const VANISHING: f64 = 1e-2;
/// ...when it stays so for this many epochs in a row.
pub const VANISHING_EPOCHS: usize = 3;
/// A step's total gradient norm this many times the median of the first steps' is exploding.
pub const EXPLODING: f64 = 1e3;
/// The first steps of a run, whose median total gradient norm is the reference.
pub const REFERENCE_STEPS: usize = 10;
/// A total gradient norm that rose in each of this many epochs...
pub const GROWTH_EPOCHS: usize = 3;
/// ...and by this factor in all, grows without bound.
pub const GROWTH: f64 = 10.0;
/// A unit positive for fewer than this fraction of an epoch's values is dead...
pub const DEAD_UNIT: f64 = 0.01;
/// ...and a ReLU with at least this share of dead units is warned about.
pub const DEAD_SHARE: f64 = 0.5;
/// The update/weight ratio of healthy training.
pub const RATIO_TYPICAL: f64 = 1e-3;
/// How far (a factor, either way) an epoch's mean update/weight ratio may be from typical.
pub const RATIO_FAR: f64 = 100.0;

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    VanishingGradients,
    ExplodingGradients,
    DeadRelu,
    LearningRateTooHigh,
    LearningRateTooLow,
}

impl WarningKind {
    pub fn title(self) -> &'static str {
        match self {
            WarningKind::VanishingGradients => "vanishing gradients",
            WarningKind::ExplodingGradients => "exploding gradients",
            WarningKind::DeadRelu => "dead ReLU units",
            WarningKind::LearningRateTooHigh => "learning rate too high",
            WarningKind::LearningRateTooLow => "learning rate too low",
        }
    }
}

/// A gradient-health warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    /// The layer (`Mlp.dense_1`) or ReLU (`Mlp.dense_1.relu`, the ReLU after that layer).
    pub subject: String,
    /// `file:line:col` of the layer's or the ReLU's call.
    pub location: String,
    /// The epoch (1-based) and step (1-based, counted over the run) it was found at.
    pub epoch: usize,
    pub step: u64,
    /// What was seen, with the numbers.
    pub message: String,
    /// What usually helps.
    pub help: String,
}

impl Warning {
    /// `warning: vanishing gradients in Deep.dense_1 (deep.nnl:20:8), epoch 3: …`.
    pub fn text(&self) -> String {
        format!(
            "{} in `{}` ({}), epoch {}, step {}: {}; {}",
            self.kind.title(),
            self.subject,
            self.location,
            self.epoch,
            self.step,
            self.message,
            self.help
        )
    }
}

/// One layer's statistics over an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerHealth {
    pub layer: String,
    /// The mean over the epoch's steps of ‖∂loss/∂p‖ (all of the layer's parameters).
    pub grad_norm: f64,
    /// The largest of them.
    pub max_grad_norm: f64,
    /// ‖p‖ at the epoch's last step.
    pub weight_norm: f64,
    /// The mean over the epoch's steps of ‖Δp‖ / ‖p‖.
    pub update_ratio: f64,
}

/// One ReLU's activity over an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReluHealth {
    /// `<the layer it follows>.relu`.
    pub relu: String,
    /// The share of units positive for fewer than [`DEAD_UNIT`] of the epoch's values.
    pub dead_fraction: f64,
    /// The share of all values that were positive.
    pub active_fraction: f64,
}

/// The gradient-health statistics of an epoch, in the report and checkpoints.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EpochHealth {
    /// In forward order.
    pub layers: Vec<LayerHealth>,
    pub relus: Vec<ReluHealth>,
}

/// A watched output of a prepared step graph.
struct WatchedOutput {
    name: String,
    stat: Health,
    /// The layer or ReLU: the name between the prefix and the statistic.
    subject: String,
    loc: Loc,
}

/// The watched outputs of a step graph, read in this one place.
#[derive(Default)]
pub(super) struct Watched {
    outputs: Vec<WatchedOutput>,
}

/// What one step's watched outputs say.
#[derive(Debug, Clone, Default)]
pub struct StepHealth {
    /// Per layer: ‖g‖, ‖p‖, ‖Δp‖.
    pub layers: Vec<(String, [f64; 3])>,
    /// Per ReLU: the fraction of positive values per unit.
    pub relus: Vec<(String, Vec<f64>)>,
    pub learning_rate: Option<f64>,
}

impl Watched {
    pub(super) fn of(graph: &Graph) -> Watched {
        let outputs = graph
            .outputs
            .iter()
            .filter_map(|o| match o.role {
                OutputRole::Health(stat) => {
                    let subject = o
                        .name
                        .strip_prefix(PREFIX)
                        .and_then(|s| s.strip_suffix(stat.name()))
                        .map(|s| s.trim_end_matches('.').to_string())
                        .unwrap_or_default();
                    Some(WatchedOutput {
                        name: o.name.clone(),
                        stat,
                        subject,
                        loc: graph.node(o.value).loc.clone(),
                    })
                }
                _ => None,
            })
            .collect();
        Watched { outputs }
    }

    pub(super) fn read(&self, out: &HashMap<String, Tensor>) -> StepHealth {
        let mut h = StepHealth::default();
        for w in &self.outputs {
            let Some(t) = out.get(&w.name) else { continue };
            let slot = match w.stat {
                Health::GradNorm => 0,
                Health::WeightNorm => 1,
                Health::UpdateNorm => 2,
                Health::Active => {
                    h.relus.push((w.subject.clone(), t.to_f64()));
                    continue;
                }
                Health::LearningRate => {
                    h.learning_rate = t.scalar();
                    continue;
                }
            };
            let value = t.scalar().unwrap_or(f64::NAN);
            match h.layers.iter_mut().find(|(l, _)| *l == w.subject) {
                Some((_, norms)) => norms[slot] = value,
                None => {
                    let mut norms = [f64::NAN; 3];
                    norms[slot] = value;
                    h.layers.push((w.subject.clone(), norms));
                }
            }
        }
        h
    }

    /// Each subject with the location of its call, and whether it is a ReLU.
    fn subjects(&self) -> impl Iterator<Item = (&str, &Loc, bool)> {
        self.outputs
            .iter()
            .filter(|w| w.stat != Health::LearningRate)
            .map(|w| (w.subject.as_str(), &w.loc, w.stat == Health::Active))
    }
}

/// What the model is made of, read from the source at the locations of its forward pass's
/// nodes (each node carries the location of the user's call that made it): which functions
/// and layers it calls, for the advice a warning gives.
#[derive(Debug, Default)]
pub(super) struct Facts {
    /// The names called (`Dense`, `relu`, `sigmoid`, `LayerNorm`).
    calls: Vec<String>,
    /// The text of each layer's call (`Dense(64, init: he_normal)`), by its location.
    call_text: HashMap<String, String>,
}

impl Facts {
    pub(super) fn of(forward: &[&Graph], sources: &SourceMap) -> Facts {
        let mut facts = Facts::default();
        for g in forward {
            for node in &g.nodes {
                let Some(line) = source_line(sources, &node.loc) else {
                    continue;
                };
                let at: String = line.chars().skip(node.loc.col as usize - 1).collect();
                let word: String = at
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !word.is_empty() && !facts.calls.contains(&word) {
                    facts.calls.push(word);
                }
                facts
                    .call_text
                    .entry(location(&node.loc))
                    .or_insert_with(|| call_text(&at));
            }
        }
        facts
    }

    fn calls_any(&self, names: &[&str]) -> bool {
        self.calls.iter().any(|c| names.contains(&c.as_str()))
    }
}

fn source_line<'s>(sources: &'s SourceMap, loc: &Loc) -> Option<&'s str> {
    if !loc.is_known() {
        return None;
    }
    let file = sources.find(&loc.file)?;
    sources.file(file).text.lines().nth(loc.line as usize - 1)
}

/// A call from its first character to its closing parenthesis on the same line (or the word).
fn call_text(at: &str) -> String {
    let mut depth = 0;
    for (i, c) in at.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return at[..=i].to_string(),
            ')' => depth -= 1,
            c if depth == 0 && !(c.is_alphanumeric() || c == '_') => {
                return at[..i].to_string();
            }
            _ => {}
        }
    }
    at.to_string()
}

/// `file:line:col`.
pub fn location(loc: &Loc) -> String {
    if loc.is_known() {
        format!("{}:{}:{}", loc.file, loc.line, loc.col)
    } else {
        "unknown location".into()
    }
}

/// Running sums of one layer over the current epoch.
#[derive(Debug, Default, Clone)]
struct LayerSums {
    steps: usize,
    grad: f64,
    max_grad: f64,
    weight: f64,
    ratio: f64,
    ratio_steps: usize,
}

/// Running sums of one ReLU over the current epoch: per unit, positive values weighted by the
/// batch size.
#[derive(Debug, Default, Clone)]
struct ReluSums {
    active: Vec<f64>,
    samples: f64,
}

/// Watches the statistics of every step of a run and says what looks wrong.
pub struct Monitor {
    facts: Facts,
    /// Layers and ReLUs in the order the steps first showed them (the forward order), with
    /// the locations of their calls.
    layers: Vec<(String, String)>,
    relus: Vec<(String, String)>,
    layer_sums: HashMap<String, LayerSums>,
    relu_sums: HashMap<String, ReluSums>,
    /// The total gradient norms of the run's first steps, then their median.
    first_norms: Vec<f64>,
    reference: Option<f64>,
    /// Epochs in a row in which an early layer's gradient was vanishing.
    vanishing_streak: usize,
    /// The mean total gradient norm of each epoch so far.
    epoch_norms: Vec<f64>,
    /// The warnings given, so each is given once.
    given: Vec<(WarningKind, String)>,
    /// Each layer's weight norm when first seen: a layer that starts at zero has no scale to
    /// compare single steps with.
    initial_weight: HashMap<String, f64>,
}

impl Monitor {
    /// A monitor for a run; a resumed run passes its history and the warnings already given.
    pub(super) fn new(facts: Facts, history: &[EpochRecord], given: &[Warning]) -> Monitor {
        let epoch_norms = history
            .iter()
            .filter_map(|r| r.health.as_ref())
            .map(total_norm)
            .collect();
        Monitor {
            facts,
            layers: Vec::new(),
            relus: Vec::new(),
            layer_sums: HashMap::new(),
            relu_sums: HashMap::new(),
            first_norms: Vec::new(),
            reference: None,
            vanishing_streak: 0,
            epoch_norms,
            given: given.iter().map(|w| (w.kind, w.subject.clone())).collect(),
            initial_weight: HashMap::new(),
        }
    }

    /// Registers the subjects of a prepared step graph.
    pub(super) fn know(&mut self, watched: &Watched) {
        for (subject, loc, relu) in watched.subjects() {
            let list = if relu {
                &mut self.relus
            } else {
                &mut self.layers
            };
            if !list.iter().any(|(s, _)| s == subject) {
                list.push((subject.to_string(), location(loc)));
            }
        }
    }

    fn location_of(&self, subject: &str) -> String {
        self.layers
            .iter()
            .chain(&self.relus)
            .find(|(s, _)| s == subject)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| "unknown location".into())
    }

    fn warn(
        &mut self,
        out: &mut Vec<Warning>,
        at: (usize, u64),
        kind: WarningKind,
        subject: &str,
        message: String,
        help: String,
    ) {
        // Once per run, and for dead units once per ReLU.
        let given = |(k, s): &(WarningKind, String)| {
            *k == kind && (kind != WarningKind::DeadRelu || s == subject)
        };
        if self.given.iter().any(given) {
            return;
        }
        self.given.push((kind, subject.to_string()));
        out.push(Warning {
            kind,
            subject: subject.to_string(),
            location: self.location_of(subject),
            epoch: at.0,
            step: at.1,
            message,
            help,
        });
    }

    /// Adds a step's statistics (`samples` in its batch) to the epoch's, and returns what is
    /// wrong at once: a gradient that is not finite or explodes, a step larger than the weights.
    pub(super) fn step(
        &mut self,
        h: &StepHealth,
        samples: usize,
        at: (usize, u64),
    ) -> Vec<Warning> {
        let mut out = Vec::new();
        let mut total = 0.0;
        for (layer, [grad, weight, update]) in &h.layers {
            let s = self.layer_sums.entry(layer.clone()).or_default();
            s.steps += 1;
            s.grad += grad;
            s.max_grad = s.max_grad.max(*grad);
            s.weight = *weight;
            let ratio = update / weight;
            if *weight > 0.0 && ratio.is_finite() {
                s.ratio += ratio;
                s.ratio_steps += 1;
            }
            total += grad * grad;
            let initial = *self.initial_weight.entry(layer.clone()).or_insert(*weight);
            if !grad.is_finite() {
                self.warn(
                    &mut out,
                    at,
                    WarningKind::ExplodingGradients,
                    layer,
                    format!("its gradient norm is {grad}"),
                    EXPLODING_HELP.into(),
                );
            } else if initial > 0.0 && *weight > 0.0 && ratio > 1.0 {
                self.warn(
                    &mut out,
                    at,
                    WarningKind::LearningRateTooHigh,
                    layer,
                    format!(
                        "one step changed its weights by {update:.3e}, more than their norm {weight:.3e} (update/weight ratio {ratio:.3e}; about {RATIO_TYPICAL:.0e} is typical)"
                    ),
                    too_high_help(h.learning_rate),
                );
            }
        }
        let total = total.sqrt();
        match self.reference {
            None if total.is_finite() && !h.layers.is_empty() => {
                self.first_norms.push(total);
                if self.first_norms.len() == REFERENCE_STEPS {
                    self.reference = Some(median(&mut self.first_norms.clone()));
                }
            }
            Some(reference) if total > EXPLODING * reference => {
                let layer = h
                    .layers
                    .iter()
                    .max_by(|a, b| a.1[0].total_cmp(&b.1[0]))
                    .map(|(l, _)| l.clone())
                    .unwrap_or_default();
                self.warn(
                    &mut out,
                    at,
                    WarningKind::ExplodingGradients,
                    &layer,
                    format!(
                        "the total gradient norm reached {total:.3e}, {:.0} times the {reference:.3e} of the first {REFERENCE_STEPS} steps (largest in this layer)",
                        total / reference
                    ),
                    EXPLODING_HELP.into(),
                );
            }
            _ => {}
        }
        for (relu, active) in &h.relus {
            let s = self.relu_sums.entry(relu.clone()).or_default();
            if s.active.len() != active.len() {
                s.active = vec![0.0; active.len()];
            }
            for (sum, a) in s.active.iter_mut().zip(active) {
                *sum += a * samples as f64;
            }
            s.samples += samples as f64;
        }
        out
    }

    /// Closes an epoch (1-based `epoch`, ending at `step`): its statistics, and what they show.
    pub(super) fn epoch_done(&mut self, epoch: usize, step: u64) -> (EpochHealth, Vec<Warning>) {
        let at = (epoch, step);
        let mut health = EpochHealth::default();
        for (layer, _) in &self.layers {
            let Some(s) = self.layer_sums.get(layer) else {
                continue;
            };
            health.layers.push(LayerHealth {
                layer: layer.clone(),
                grad_norm: s.grad / s.steps.max(1) as f64,
                max_grad_norm: s.max_grad,
                weight_norm: s.weight,
                update_ratio: if s.ratio_steps > 0 {
                    s.ratio / s.ratio_steps as f64
                } else {
                    f64::NAN
                },
            });
        }
        for (relu, _) in &self.relus {
            let Some(s) = self.relu_sums.get(relu) else {
                continue;
            };
            let rates: Vec<f64> = s.active.iter().map(|a| a / s.samples.max(1.0)).collect();
            let units = rates.len().max(1) as f64;
            health.relus.push(ReluHealth {
                relu: relu.clone(),
                dead_fraction: rates.iter().filter(|&&r| r < DEAD_UNIT).count() as f64 / units,
                active_fraction: rates.iter().sum::<f64>() / units,
            });
        }
        self.layer_sums.clear();
        self.relu_sums.clear();
        let mut out = Vec::new();
        self.vanishing(&health, at, &mut out);
        self.growth(&health, at, &mut out);
        // A layer whose gradient is tiny next to the others' (vanishing, or behind dead units)
        // moves little whatever the learning rate.
        let largest = health
            .layers
            .iter()
            .map(|l| l.grad_norm)
            .fold(0.0, f64::max);
        for l in &health.layers {
            let r = l.update_ratio;
            let starved = l.grad_norm < VANISHING * largest;
            if r > RATIO_TYPICAL * RATIO_FAR {
                self.warn(
                    &mut out,
                    at,
                    WarningKind::LearningRateTooHigh,
                    &l.layer,
                    format!(
                        "its updates averaged {r:.3e} of its weights over the epoch (about {RATIO_TYPICAL:.0e} is typical)"
                    ),
                    too_high_help(None),
                );
            } else if r < RATIO_TYPICAL / RATIO_FAR && l.grad_norm.is_finite() && !starved {
                self.warn(
                    &mut out,
                    at,
                    WarningKind::LearningRateTooLow,
                    &l.layer,
                    format!(
                        "its updates averaged {r:.3e} of its weights over the epoch (about {RATIO_TYPICAL:.0e} is typical): it barely learns"
                    ),
                    "raise the learning rate (e.g. 10 times)".into(),
                );
            }
        }
        for r in &health.relus {
            if r.dead_fraction >= DEAD_SHARE {
                self.warn(
                    &mut out,
                    at,
                    WarningKind::DeadRelu,
                    &r.relu,
                    format!(
                        "{:.0}% of its units were positive for fewer than {:.0}% of the epoch's samples (dead units pass no gradient)",
                        100.0 * r.dead_fraction,
                        100.0 * DEAD_UNIT
                    ),
                    "lower the learning rate, use He initialization (`init: he_normal`), or a leaky activation (`leaky_relu`, `gelu`)".into(),
                );
            }
        }
        (health, out)
    }

    /// Early layers' gradients a small fraction of the last layer's, epoch after epoch.
    fn vanishing(&mut self, health: &EpochHealth, at: (usize, u64), out: &mut Vec<Warning>) {
        // Each model's layers apart (a GAN's generator and critic are two chains).
        let mut models: Vec<Vec<&LayerHealth>> = Vec::new();
        for l in &health.layers {
            let model = |x: &LayerHealth| x.layer.split('.').next().map(str::to_string);
            match models.iter_mut().find(|m| model(m[0]) == model(l)) {
                Some(m) => m.push(l),
                None => models.push(vec![l]),
            }
        }
        let found = models.iter().find_map(|layers| {
            let last = layers.last().filter(|l| l.grad_norm > 0.0)?;
            // The earliest layer below the threshold, among the first half.
            let first = layers[..layers.len() / 2]
                .iter()
                .find(|l| l.grad_norm < VANISHING * last.grad_norm)?;
            let below = layers
                .iter()
                .filter(|l| l.grad_norm < VANISHING * last.grad_norm)
                .count();
            Some((*first, *last, below, layers.len()))
        });
        let Some((first, last, below, count)) = found else {
            self.vanishing_streak = 0;
            return;
        };
        self.vanishing_streak += 1;
        if self.vanishing_streak < VANISHING_EPOCHS {
            return;
        }
        let message = format!(
            "its gradient norm {:.3e} is {:.1e} of the last layer `{}`'s {:.3e} ({below} of {count} layers below {VANISHING:.0e} of it), for {} epochs",
            first.grad_norm,
            first.grad_norm / last.grad_norm,
            last.layer,
            last.grad_norm,
            self.vanishing_streak
        );
        let help = self.vanishing_help(&first.layer);
        let subject = first.layer.clone();
        self.warn(
            out,
            at,
            WarningKind::VanishingGradients,
            &subject,
            message,
            help,
        );
    }

    /// What may help gradients reach the early layers, as the model suggests.
    fn vanishing_help(&self, layer: &str) -> String {
        let facts = &self.facts;
        let mut advice = Vec::new();
        if facts.calls_any(&["sigmoid", "tanh", "hard_sigmoid", "softsign"]) {
            advice.push("ReLU or GELU instead of sigmoid/tanh, which saturate");
        }
        if !facts.calls_any(&["Residual", "TransformerBlock"]) {
            advice.push("residual connections (`x + f(x)`, `Residual` in std.nn)");
        }
        if !facts.calls_any(&["LayerNorm", "BatchNorm", "BatchNorm2d"]) {
            advice.push("normalization (`LayerNorm`, `BatchNorm`)");
        }
        let call = facts
            .call_text
            .get(&self.location_of(layer))
            .cloned()
            .unwrap_or_default();
        let rectified = facts.calls_any(&["relu", "relu6", "leaky_relu", "gelu", "elu", "silu"]);
        if rectified && !call.contains("he_") {
            advice.push("He initialization for ReLU layers (`init: he_normal`)");
        }
        if advice.is_empty() {
            advice.push("a shallower model or a higher learning rate for the early layers");
        }
        format!("consider {}", advice.join(", "))
    }

    /// A total gradient norm that keeps growing, epoch after epoch.
    fn growth(&mut self, health: &EpochHealth, at: (usize, u64), out: &mut Vec<Warning>) {
        self.epoch_norms.push(total_norm(health));
        let n = self.epoch_norms.len();
        if n <= GROWTH_EPOCHS {
            return;
        }
        let recent = &self.epoch_norms[n - 1 - GROWTH_EPOCHS..];
        let rising = recent.windows(2).all(|w| w[1] > w[0]);
        let factor = recent[GROWTH_EPOCHS] / recent[0];
        if rising && factor >= GROWTH {
            let layer = health
                .layers
                .iter()
                .max_by(|a, b| a.grad_norm.total_cmp(&b.grad_norm))
                .map(|l| l.layer.clone())
                .unwrap_or_default();
            self.warn(
                out,
                at,
                WarningKind::ExplodingGradients,
                &layer,
                format!(
                    "the mean total gradient norm grew {factor:.0} times over the last {GROWTH_EPOCHS} epochs, to {:.3e} (largest in this layer)",
                    recent[GROWTH_EPOCHS]
                ),
                EXPLODING_HELP.into(),
            );
        }
    }
}

const EXPLODING_HELP: &str =
    "clip the gradients (`clip_grad_norm 1.0` in the train block) or lower the learning rate";

fn too_high_help(lr: Option<f64>) -> String {
    match lr {
        Some(lr) => format!(
            "lower the learning rate (it is {lr}; try {}) or clip the gradients (`clip_grad_norm 1.0`)",
            lr / 10.0
        ),
        None => {
            "lower the learning rate (e.g. 10 times) or clip the gradients (`clip_grad_norm 1.0`)"
                .into()
        }
    }
}

/// √(Σ layer norm²) of an epoch's mean gradient norms.
fn total_norm(h: &EpochHealth) -> f64 {
    h.layers
        .iter()
        .map(|l| l.grad_norm * l.grad_norm)
        .sum::<f64>()
        .sqrt()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Per-phase learning rates keyed as the report names them.
pub fn learning_rate_key(phase: Option<&str>) -> String {
    match phase {
        Some(p) => format!("learning_rate.{p}"),
        None => "learning_rate".into(),
    }
}

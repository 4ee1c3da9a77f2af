//! The training step of a phase as one graph: the forward pass, its gradient with respect to the
//! parameters the phase updates, optional gradient-norm clipping, and the optimizer's update of
//! every parameter. Also the gradient graph of `nnlc grad` (forward and gradients, no update).
//!
//! Step graphs read `step` (1-based, f32) and `epoch` (0-based) as `Role::Counter` inputs and
//! output the new value of every parameter, layer state and optimizer state under the name of
//! the input it replaces, next to `loss` and the metrics.

pub mod health;

use crate::grad::grad;
use crate::ir::{DType, Graph, Health, Loc, Op, OutputRole, Role, TensorType, ValueId};
use crate::lower::{Lowered, Phase};

/// What a training step computes besides its work, for the runtime to watch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watch {
    /// Per-layer gradient, weight and update norms and the activity of ReLU units
    /// ([`health`]).
    pub health: bool,
    /// The learning rate of the step (`health.learning_rate`), as the first parameter's
    /// optimizer computed it.
    pub learning_rate: bool,
}

/// The name of the learning-rate output of a watched step.
pub const LEARNING_RATE_OUTPUT: &str = "health.learning_rate";

/// The prefix of gradient outputs: `grad.Mlp.dense_1.w`.
pub const GRAD_PREFIX: &str = "grad.";

/// Forward and backward of a phase: `loss`, the metrics, and `grad.<param>` for every parameter
/// the forward pass reads.
pub fn gradient_graph(lowered: &Lowered, phase: &Phase) -> Graph {
    let mut g = phase.forward.clone();
    g.name = format!("grad.{}", phase.name);
    let loss = g.loss().expect("forward graphs output a loss");
    let params: Vec<(String, ValueId)> = lowered
        .params
        .iter()
        .filter_map(|(n, _)| g.find_input(n).map(|v| (n.clone(), v)))
        .collect();
    let wrt: Vec<ValueId> = params.iter().map(|(_, v)| *v).collect();
    let grads = grad(&mut g, loss, &wrt);
    for ((name, _), d) in params.iter().zip(grads) {
        g.add_output(format!("{GRAD_PREFIX}{name}"), d, OutputRole::Gradient);
    }
    g
}

/// The whole training step of a phase.
pub fn train_step(lowered: &Lowered, phase: &Phase) -> Result<Graph, String> {
    train_step_watched(lowered, phase, Watch::default())
}

/// The whole training step of a phase, with the statistics `watch` asks for as outputs of role
/// `Health`.
pub fn train_step_watched(lowered: &Lowered, phase: &Phase, watch: Watch) -> Result<Graph, String> {
    let mut g = phase.forward.clone();
    g.name = format!("step.{}", phase.name);
    let forward_nodes = g.nodes.len();
    let loss = g.loss().ok_or("the forward graph has no loss")?;
    let float = g.ty(loss).dtype;
    let params = updated_params(&g, phase)?;
    let grads = grad(&mut g, loss, &params);
    let updated = append_updates(&mut g, lowered, phase, &grads, float, watch)?;
    if watch.health {
        health::add(&mut g, forward_nodes, &updated);
    }
    crate::ir::verify(&g)?;
    Ok(g)
}

/// The value of every parameter `phase` updates among the inputs of `g`.
fn updated_params(g: &Graph, phase: &Phase) -> Result<Vec<ValueId>, String> {
    phase
        .updates
        .iter()
        .map(|u| {
            g.find_input(&u.param)
                .ok_or_else(|| format!("`{}` is not an input of the forward pass", u.param))
        })
        .collect()
}

/// The input and output names of a data-parallel step's gradient sums: `grad.Mlp.dense_1.w`.
pub fn grad_name(param: &str) -> String {
    format!("{GRAD_PREFIX}{param}")
}

/// The input of a data-parallel update step that holds the number of samples of the global
/// batch, by which it divides the gradient sums.
pub const SAMPLES_INPUT: &str = "samples";

/// One shard's part of a data-parallel training step: the forward pass of `phase` on a shard of
/// `samples` samples and the gradients of `samples · loss`, that is the sums of the per-sample
/// gradients (a loss that is a batch mean, plus any term that does not depend on the batch, sums
/// over shards to the global batch's loss times its size), output as `grad.<param>` next to the
/// loss, the metrics and the new layer state. With `watch.health`, the ReLUs' unit activity.
pub fn shard_gradient_step(phase: &Phase, samples: usize, watch: Watch) -> Result<Graph, String> {
    let mut g = phase.forward.clone();
    g.name = format!("shard.{}", phase.name);
    let forward_nodes = g.nodes.len();
    let loss = g.loss().ok_or("the forward graph has no loss")?;
    let params = updated_params(&g, phase)?;
    let grads = crate::grad::grad_scaled(&mut g, loss, samples as f64, &params);
    for (u, d) in phase.updates.iter().zip(grads) {
        g.add_output(grad_name(&u.param), d, OutputRole::Gradient);
    }
    if watch.health {
        health::add(&mut g, forward_nodes, &[]);
    }
    crate::ir::verify(&g)?;
    Ok(g)
}

/// The other part of a data-parallel training step: from the gradient sums of the global batch
/// (inputs `grad.<param>`, added up over the shards) and its number of samples (input
/// [`SAMPLES_INPUT`]), the mean gradients, their clipping and the optimizer's update of every
/// parameter of `phase`, as [`train_step_watched`] makes them. With `watch.health`, the
/// per-layer norms (the ReLUs' activity is the shards').
pub fn update_step(lowered: &Lowered, phase: &Phase, watch: Watch) -> Result<Graph, String> {
    let mut g = Graph::new(format!("update.{}", phase.name));
    let float = phase
        .forward
        .loss()
        .map(|l| phase.forward.ty(l).dtype)
        .ok_or("the forward graph has no loss")?;
    let samples = g.input(SAMPLES_INPUT, Role::Counter, TensorType::scalar(float));
    let mut grads = Vec::new();
    for u in &phase.updates {
        let p = phase
            .forward
            .find_input(&u.param)
            .ok_or_else(|| format!("`{}` is not an input of the forward pass", u.param))?;
        let ty = phase.forward.ty(p).clone();
        g.input(u.param.clone(), Role::Param, ty.clone());
        let sum = g.input(grad_name(&u.param), Role::Arg, ty.clone());
        let n = g.add(
            Op::Broadcast { shape: ty.shape },
            vec![samples],
            Loc::default(),
        );
        grads.push(g.add(Op::Div, vec![sum, n], Loc::default()));
    }
    let updated = append_updates(&mut g, lowered, phase, &grads, float, watch)?;
    if watch.health {
        health::add(&mut g, 0, &updated);
    }
    crate::ir::verify(&g)?;
    Ok(g)
}

/// Appends to `g` (which reads every parameter `phase` updates) the clipping of `grads` and
/// the optimizer's update of each parameter: outputs the new parameters and optimizer state
/// (named like their inputs) and, when `watch.learning_rate`, the learning rate. Returns each
/// parameter with its gradient before clipping and its new value.
fn append_updates<'p>(
    g: &mut Graph,
    lowered: &Lowered,
    phase: &'p Phase,
    grads: &[ValueId],
    float: DType,
    watch: Watch,
) -> Result<Vec<health::Updated<'p>>, String> {
    let params = updated_params(g, phase)?;
    let raw_grads = grads.to_vec();
    let grads = match lowered.config.clip_grad_norm {
        Some(max_norm) => clip_by_global_norm(g, grads, max_norm, float),
        None => raw_grads.clone(),
    };
    let scalar = TensorType::scalar(float);
    let step = g.input("step", Role::Counter, scalar.clone());
    let epoch = g.input("epoch", Role::Counter, scalar);
    let mut learning_rate = None;
    let mut new_params = Vec::new();
    for (u, d) in phase.updates.iter().zip(&grads) {
        let opt_types: Vec<(String, TensorType)> = u
            .graph
            .inputs()
            .filter(|(_, _, role)| *role == Role::OptState)
            .map(|(v, name, _)| (name.to_string(), u.graph.ty(v).clone()))
            .collect();
        let opt_inputs: Vec<(String, ValueId)> = opt_types
            .into_iter()
            .map(|(name, ty)| {
                let v = g.input(name.clone(), Role::OptState, ty);
                (name, v)
            })
            .collect();
        let p = g.find_input(&u.param).expect("checked above");
        let bind = |name: &str| match name {
            "grad" => Some(*d),
            "step" => Some(step),
            "epoch" => Some(epoch),
            n if n == u.param => Some(p),
            n => opt_inputs.iter().find(|(o, _)| o == n).map(|(_, v)| *v),
        };
        let is_lr = |o: &crate::ir::Output| o.role == OutputRole::Health(Health::LearningRate);
        let wants_lr = watch.learning_rate && learning_rate.is_none();
        let update = if wants_lr {
            u.graph.clone()
        } else {
            u.graph.without_outputs(&is_lr)
        };
        for o in g.splice(&update, &bind)? {
            if is_lr(&o) {
                learning_rate = Some(o.value);
                continue;
            }
            if o.name == u.param {
                new_params.push(o.value);
            }
            g.outputs.push(o);
        }
    }
    if let Some(lr) = learning_rate {
        g.add_output(
            LEARNING_RATE_OUTPUT,
            lr,
            OutputRole::Health(Health::LearningRate),
        );
    }
    Ok(phase
        .updates
        .iter()
        .zip(params)
        .zip(raw_grads)
        .zip(new_params)
        .map(|(((u, value), grad), new)| health::Updated {
            param: &u.param,
            value,
            grad,
            new,
        })
        .collect())
}

/// g · min(1, max_norm / ‖g‖) with ‖g‖ the norm of all gradients together (as PyTorch's
/// `clip_grad_norm_`, with 1e-6 added to the norm).
fn clip_by_global_norm(
    g: &mut Graph,
    grads: &[ValueId],
    max_norm: f64,
    float: DType,
) -> Vec<ValueId> {
    let loc = Loc::default();
    let scalar = TensorType::scalar(float);
    let mut total: Option<ValueId> = None;
    for &d in grads {
        let sq = g.add(Op::Mul, vec![d, d], loc.clone());
        let axes = (0..g.ty(d).rank()).collect();
        let s = g.add(Op::Sum { axes }, vec![sq], loc.clone());
        total = Some(match total {
            Some(t) => g.add(Op::Add, vec![t, s], loc.clone()),
            None => s,
        });
    }
    let Some(total) = total else {
        return Vec::new();
    };
    let konst = |g: &mut Graph, value: f64| {
        g.add(
            Op::Const {
                value,
                ty: scalar.clone(),
            },
            Vec::new(),
            Loc::default(),
        )
    };
    let norm = g.add(Op::Sqrt, vec![total], loc.clone());
    let eps = konst(g, 1e-6);
    let denom = g.add(Op::Add, vec![norm, eps], loc.clone());
    let limit = konst(g, max_norm);
    let ratio = g.add(Op::Div, vec![limit, denom], loc.clone());
    let one = konst(g, 1.0);
    let scale = g.add(Op::Min, vec![ratio, one], loc.clone());
    grads
        .iter()
        .map(|&d| {
            let shape = g.ty(d).shape.clone();
            let s = g.add(Op::Broadcast { shape }, vec![scale], loc.clone());
            g.add(Op::Mul, vec![d, s], loc.clone())
        })
        .collect()
}

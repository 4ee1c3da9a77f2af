//! Gradient health: statistics a watched training step computes alongside its work, so that
//! the runtime can tell vanishing or exploding gradients, dead ReLUs and a learning rate that is
//! too high or too low, per layer, from the very step that trained it.
//!
//! Per layer (the parameters under one instance path, `Mlp.dense_1`): the norms of the
//! gradients (before clipping), of the parameters before the update, and of the update
//! `p_new − p`, each over all of the layer's parameters together. Per ReLU of the forward pass
//! (a `max(x, 0)`): the fraction of the batch's values that are positive, per unit — a feature,
//! or a channel of an image (`[B, C, H, W]`) — which the runtime accumulates over an epoch to
//! find units that are never active. All are a few reductions the JIT fuses into the step.
//!
//! Outputs are named `health.<subject>.<statistic>` with the role `OutputRole::Health`; each
//! output's node carries the location of its subject (the layer's call, the ReLU's call).

use crate::ir::{CmpOp, Graph, Health, Loc, Op, OutputRole, ValueId};

/// The prefix of every watched output's name.
pub const PREFIX: &str = "health.";

/// A parameter the step updates: its value, its gradient and its new value.
pub(super) struct Updated<'a> {
    pub param: &'a str,
    pub value: ValueId,
    pub grad: ValueId,
    pub new: ValueId,
}

/// The layer a parameter belongs to: its path without the last part.
pub fn layer_of(param: &str) -> &str {
    param.rsplit_once('.').map_or(param, |(layer, _)| layer)
}

/// Adds the per-layer norms of `updated` and the activity of every ReLU among the first
/// `forward_nodes` nodes (the forward pass).
pub(super) fn add(g: &mut Graph, forward_nodes: usize, updated: &[Updated]) {
    let mut layers: Vec<(&str, Vec<&Updated>)> = Vec::new();
    for u in updated {
        let layer = layer_of(u.param);
        match layers.iter_mut().find(|(l, _)| *l == layer) {
            Some((_, ps)) => ps.push(u),
            None => layers.push((layer, vec![u])),
        }
    }
    for (layer, params) in layers {
        let loc = g.nodes[..forward_nodes]
            .iter()
            .find(|n| &*n.loc.scope == layer && n.loc.is_known())
            .map(|n| n.loc.clone())
            .unwrap_or_default();
        let norms = [
            (
                Health::GradNorm,
                params.iter().map(|p| (p.grad, None)).collect(),
            ),
            (
                Health::WeightNorm,
                params.iter().map(|p| (p.value, None)).collect(),
            ),
            (
                Health::UpdateNorm,
                params
                    .iter()
                    .map(|p| (p.new, Some(p.value)))
                    .collect::<Vec<_>>(),
            ),
        ];
        for (stat, terms) in norms {
            let norm = norm(g, &terms, &loc);
            g.add_output(
                format!("{PREFIX}{layer}.{}", stat.name()),
                norm,
                OutputRole::Health(stat),
            );
        }
    }
    let mut names: Vec<String> = Vec::new();
    for i in 0..forward_nodes {
        let Some(x) = relu_operand(g, ValueId(i as u32)) else {
            continue;
        };
        let base = format!("{}.relu", g.node(x).loc.scope);
        let mut name = base.clone();
        let mut k = 1;
        while names.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        let active = activity(g, ValueId(i as u32));
        g.add_output(
            format!("{PREFIX}{name}.{}", Health::Active.name()),
            active,
            OutputRole::Health(Health::Active),
        );
        names.push(name);
    }
}

/// The operand `x` of a ReLU `max(x, 0)` (either order).
fn relu_operand(g: &Graph, v: ValueId) -> Option<ValueId> {
    let node = g.node(v);
    if node.op != Op::Max {
        return None;
    }
    let is_zero = |a: ValueId| matches!(g.node(a).op, Op::Const { value, .. } if value == 0.0);
    match node.args[..] {
        [x, z] if is_zero(z) => Some(x),
        [z, x] if is_zero(z) => Some(x),
        _ => None,
    }
}

/// √(Σ sum((a − b)²)) over the terms `(a, b)` (`b` absent: a alone), a scalar.
fn norm(g: &mut Graph, terms: &[(ValueId, Option<ValueId>)], loc: &Loc) -> ValueId {
    let mut total: Option<ValueId> = None;
    for &(a, b) in terms {
        let d = match b {
            Some(b) => g.add(Op::Sub, vec![a, b], loc.clone()),
            None => a,
        };
        let sq = g.add(Op::Mul, vec![d, d], loc.clone());
        let axes = (0..g.ty(d).rank()).collect();
        let s = g.add(Op::Sum { axes }, vec![sq], loc.clone());
        total = Some(match total {
            Some(t) => g.add(Op::Add, vec![t, s], loc.clone()),
            None => s,
        });
    }
    let total = total.expect("a layer has parameters");
    g.add(Op::Sqrt, vec![total], loc.clone())
}

/// Per unit of the ReLU output `y`, the fraction of positive values over the batch (and the
/// positions of an image): a vector over the last axis, or over the channels of `[B, C, H, W]`.
fn activity(g: &mut Graph, y: ValueId) -> ValueId {
    let loc = g.node(y).loc.clone();
    let ty = g.ty(y).clone();
    let rank = ty.rank();
    let unit_axis = if rank == 4 { 1 } else { rank.saturating_sub(1) };
    let zero = g.add(
        Op::Const {
            value: 0.0,
            ty: ty.clone(),
        },
        Vec::new(),
        loc.clone(),
    );
    let positive = g.add(Op::Cmp(CmpOp::Gt), vec![y, zero], loc.clone());
    let float = g.add(Op::Cast { to: ty.dtype }, vec![positive], loc.clone());
    let axes: Vec<usize> = (0..rank).filter(|&a| a != unit_axis || rank == 1).collect();
    let count = g.add(Op::Sum { axes: axes.clone() }, vec![float], loc.clone());
    let values: usize = axes.iter().map(|&a| ty.shape[a]).product();
    let n = g.add(
        Op::Const {
            value: values as f64,
            ty: g.ty(count).clone(),
        },
        Vec::new(),
        loc.clone(),
    );
    g.add(Op::Div, vec![count, n], loc)
}

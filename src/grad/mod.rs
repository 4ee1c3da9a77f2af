//! Reverse-mode differentiation: one VJP rule per primitive, each emitting only primitives.
//!
//! `grad` appends the backward graph to the forward one, so the result is an ordinary graph that
//! the optimizer and the backends treat like any other. Only the nodes on a path from some `wrt`
//! value to the loss are differentiated. A `scan` is differentiated as a scan: the forward loop
//! additionally stacks the carries it saw at every step, and one loop running the other way
//! recomputes each step from them and applies the body's VJP.

mod scan;
#[cfg(test)]
mod tests;

use crate::ir::{CmpOp, Graph, Loc, Node, Op, TensorType, Type, ValueId};
use std::collections::HashMap;

/// Appends to `graph` the nodes computing d loss / d v for each v in `wrt` (loss: a float scalar
/// value of `graph`) and returns those gradient values, in order (an all-zero `const` when loss
/// does not depend on v).
pub fn grad(graph: &mut Graph, loss: ValueId, wrt: &[ValueId]) -> Vec<ValueId> {
    grad_scaled(graph, loss, 1.0, wrt)
}

/// The gradients of `scale · loss`: with the batch size as `scale`, a loss that is a mean over
/// the batch yields the sum of the per-sample gradients (what data-parallel shards add up).
pub fn grad_scaled(graph: &mut Graph, loss: ValueId, scale: f64, wrt: &[ValueId]) -> Vec<ValueId> {
    let ty = graph.ty(loss).clone();
    assert!(
        ty.rank() == 0 && ty.dtype.is_float(),
        "the loss must be a float scalar, got {ty}"
    );
    let loc = graph.node(loss).loc.clone();
    let seed = graph.add(Op::Const { value: scale, ty }, Vec::new(), loc);
    let grads = backprop(graph, &[(loss, seed)], wrt);
    wrt.iter()
        .zip(grads)
        .map(|(&v, g)| g.unwrap_or_else(|| zeros(graph, v, graph.node(v).loc.clone())))
        .collect()
}

/// Appends the nodes that pull the cotangents `seeds` (value, its cotangent) back to each `wrt`
/// value; `None` where no seed depends on it.
fn backprop(
    graph: &mut Graph,
    seeds: &[(ValueId, ValueId)],
    wrt: &[ValueId],
) -> Vec<Option<ValueId>> {
    let Some(end) = seeds.iter().map(|(v, _)| v.index() + 1).max() else {
        return vec![None; wrt.len()];
    };
    let active = activity(graph, end, seeds, wrt);
    let mut cts = Cotangents::default();
    for &(v, ct) in seeds {
        let loc = graph.node(v).loc.clone();
        cts.add(graph, (v, 0), ct, &loc);
    }
    for i in (0..end).rev() {
        // A `wrt` value without a VJP (an input, say) only collects its cotangent.
        if !active[i] || !has_vjp(&graph.nodes[i].op) {
            continue;
        }
        let id = ValueId(i as u32);
        let node = graph.nodes[i].clone();
        if node.args.is_empty() {
            // Inputs and constants end the chain: their cotangent is the result.
            continue;
        }
        let need: Vec<bool> = node.args.iter().map(|a| active[a.index()]).collect();
        let arg_cts = match (&node.op, &node.ty) {
            (Op::Get { index }, _) => match cts.get((id, 0)) {
                Some(ct) if need[0] => {
                    cts.add(graph, (node.args[0], *index), ct, &node.loc);
                    continue;
                }
                _ => continue,
            },
            (Op::Scan { .. }, Type::Tuple(parts)) => {
                let outs: Vec<Option<ValueId>> =
                    (0..parts.len()).map(|k| cts.get((id, k))).collect();
                if outs.iter().all(Option::is_none) {
                    continue;
                }
                scan::vjp(graph, id, &outs, &need)
            }
            _ => match cts.get((id, 0)) {
                Some(ct) => {
                    let mut e = Emit {
                        g: graph,
                        loc: node.loc.clone(),
                    };
                    vjp(&mut e, &node, id, ct, &need)
                }
                None => continue,
            },
        };
        for ((&a, ct), need) in node.args.iter().zip(arg_cts).zip(need) {
            if let (Some(ct), true) = (ct, need) {
                cts.add(graph, (a, 0), ct, &node.loc);
            }
        }
    }
    wrt.iter().map(|&v| cts.get((v, 0))).collect()
}

/// The nodes below `end` that get a cotangent: float values that depend on some `wrt` value
/// through differentiable primitives (forward) and that some seed depends on (backward).
fn activity(graph: &Graph, end: usize, seeds: &[(ValueId, ValueId)], wrt: &[ValueId]) -> Vec<bool> {
    let mut varied = vec![false; end];
    for v in wrt {
        if v.index() < end {
            varied[v.index()] = true;
        }
    }
    for (i, node) in graph.nodes[..end].iter().enumerate() {
        let flows = has_vjp(&node.op) && node.args.iter().any(|a| varied[a.index()]);
        varied[i] = (varied[i] || flows) && carries_float(node);
    }
    let mut useful = vec![false; end];
    for (v, _) in seeds {
        useful[v.index()] = true;
    }
    for i in (0..end).rev() {
        if useful[i] && varied[i] {
            for a in &graph.nodes[i].args {
                useful[a.index()] = true;
            }
        }
    }
    varied.iter().zip(useful).map(|(v, u)| *v && u).collect()
}

/// Whether some part of a node's result can carry a gradient.
fn carries_float(node: &Node) -> bool {
    match &node.ty {
        Type::Tensor(t) => t.dtype.is_float(),
        Type::Tuple(parts) => parts.iter().any(|t| t.dtype.is_float()),
    }
}

/// Whether a gradient flows through `op` (the primitive table says; `scan` and `get` are
/// differentiated here, apart from the tensor VJPs).
fn has_vjp(op: &Op) -> bool {
    op.primitive().differentiable
}

/// Cotangents accumulated so far, per value and tuple element (0 for a tensor).
#[derive(Default)]
struct Cotangents(HashMap<(ValueId, usize), ValueId>);

impl Cotangents {
    fn get(&self, key: (ValueId, usize)) -> Option<ValueId> {
        self.0.get(&key).copied()
    }

    /// Fan-out: a value used several times receives the sum of its users' cotangents.
    fn add(&mut self, graph: &mut Graph, key: (ValueId, usize), ct: ValueId, loc: &Loc) {
        let sum = match self.0.get(&key) {
            Some(&old) => graph.add(Op::Add, vec![old, ct], loc.clone()),
            None => ct,
        };
        self.0.insert(key, sum);
    }
}

fn zeros(graph: &mut Graph, like: ValueId, loc: Loc) -> ValueId {
    let ty = graph.ty(like).clone();
    graph.add(Op::Const { value: 0.0, ty }, Vec::new(), loc)
}

/// Appends nodes located at the forward node being differentiated.
struct Emit<'g> {
    g: &'g mut Graph,
    loc: Loc,
}

impl Emit<'_> {
    fn op(&mut self, op: Op, args: Vec<ValueId>) -> ValueId {
        self.g.add(op, args, self.loc.clone())
    }

    fn ty(&self, v: ValueId) -> TensorType {
        self.g.ty(v).clone()
    }

    fn fill(&mut self, value: f64, ty: TensorType) -> ValueId {
        self.op(Op::Const { value, ty }, Vec::new())
    }

    fn bin(&mut self, op: Op, a: ValueId, b: ValueId) -> ValueId {
        self.op(op, vec![a, b])
    }

    /// The float 0/1 indicator of `cmp(a, b)`.
    fn indicator(&mut self, cmp: CmpOp, a: ValueId, b: ValueId) -> ValueId {
        let dtype = self.ty(a).dtype;
        let c = self.bin(Op::Cmp(cmp), a, b);
        self.op(Op::Cast { to: dtype }, vec![c])
    }

    fn swap_last_two(&mut self, v: ValueId) -> ValueId {
        let r = self.ty(v).rank();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.op(Op::Permute { perm }, vec![v])
    }

    /// Spreads a reduction's result back over `shape`, the reduced `axes` becoming size 1 first.
    fn unreduce(&mut self, v: ValueId, axes: &[usize], shape: &[usize]) -> ValueId {
        if axes.is_empty() {
            return v;
        }
        let kept = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect();
        let r = self.op(Op::Reshape { shape: kept }, vec![v]);
        self.op(
            Op::Broadcast {
                shape: shape.to_vec(),
            },
            vec![r],
        )
    }
}

/// The VJP of a tensor-valued node `y` = `node` with cotangent `g`: one cotangent per operand,
/// computed only where `need` says the operand is active.
fn vjp(e: &mut Emit, node: &Node, y: ValueId, g: ValueId, need: &[bool]) -> Vec<Option<ValueId>> {
    let x = &node.args;
    let one = |ct: ValueId| vec![Some(ct)];
    match &node.op {
        Op::Neg => one(e.op(Op::Neg, vec![g])),
        // Every shard's output is the same sum, read by every shard's loss: the cotangent of a
        // shard's operand is the sum of all shards' cotangents.
        Op::AllSum => one(e.op(Op::AllSum, vec![g])),
        Op::Exp => one(e.bin(Op::Mul, g, y)),
        Op::Log => one(e.bin(Op::Div, g, x[0])),
        Op::Sqrt => {
            let half = e.fill(0.5, e.ty(g));
            let hg = e.bin(Op::Mul, g, half);
            one(e.bin(Op::Div, hg, y))
        }
        Op::Sin => {
            let c = e.op(Op::Cos, vec![x[0]]);
            one(e.bin(Op::Mul, g, c))
        }
        Op::Erf => {
            // d erf(x) / dx = 2/√π · e^(−x²)
            let x2 = e.bin(Op::Mul, x[0], x[0]);
            let minus_x2 = e.op(Op::Neg, vec![x2]);
            let bell = e.op(Op::Exp, vec![minus_x2]);
            let scale = e.fill(std::f64::consts::FRAC_2_SQRT_PI, e.ty(g));
            let slope = e.bin(Op::Mul, bell, scale);
            one(e.bin(Op::Mul, g, slope))
        }
        Op::Cos => {
            let s = e.op(Op::Sin, vec![x[0]]);
            let gs = e.bin(Op::Mul, g, s);
            one(e.op(Op::Neg, vec![gs]))
        }
        // From the output, as PyTorch does: g (1 − y²) and g y (1 − y).
        Op::Tanh => {
            let ones = e.fill(1.0, e.ty(g));
            let y2 = e.bin(Op::Mul, y, y);
            let slope = e.bin(Op::Sub, ones, y2);
            one(e.bin(Op::Mul, g, slope))
        }
        Op::Sigmoid => {
            let ones = e.fill(1.0, e.ty(g));
            let rest = e.bin(Op::Sub, ones, y);
            let gy = e.bin(Op::Mul, g, y);
            one(e.bin(Op::Mul, gy, rest))
        }
        Op::Cast { to } => {
            let from = e.ty(x[0]).dtype;
            if from == *to {
                one(g)
            } else {
                one(e.op(Op::Cast { to: from }, vec![g]))
            }
        }
        Op::Add => vec![Some(g), Some(g)],
        Op::Sub => {
            let db = need[1].then(|| e.op(Op::Neg, vec![g]));
            vec![Some(g), db]
        }
        Op::Mul => {
            let da = need[0].then(|| e.bin(Op::Mul, g, x[1]));
            let db = need[1].then(|| e.bin(Op::Mul, g, x[0]));
            vec![da, db]
        }
        Op::Div => {
            let da = need[0].then(|| e.bin(Op::Div, g, x[1]));
            // d(a/b)/db = -a/b² = -y/b
            let db = need[1].then(|| {
                let gy = e.bin(Op::Mul, g, y);
                let q = e.bin(Op::Div, gy, x[1]);
                e.op(Op::Neg, vec![q])
            });
            vec![da, db]
        }
        Op::Max | Op::Min => {
            // The winner takes the cotangent; ties split it half/half (as PyTorch and JAX do).
            let wins = if node.op == Op::Max {
                CmpOp::Gt
            } else {
                CmpOp::Lt
            };
            let win = e.indicator(wins, x[0], x[1]);
            let tie = e.indicator(CmpOp::Eq, x[0], x[1]);
            let half = e.fill(0.5, e.ty(g));
            let half_tie = e.bin(Op::Mul, tie, half);
            let share = e.bin(Op::Add, win, half_tie);
            let da = e.bin(Op::Mul, g, share);
            let db = need[1].then(|| e.bin(Op::Sub, g, da));
            vec![Some(da), db]
        }
        Op::Select => {
            let zero = e.fill(0.0, e.ty(g));
            let da = need[1].then(|| e.op(Op::Select, vec![x[0], g, zero]));
            let db = need[2].then(|| e.op(Op::Select, vec![x[0], zero, g]));
            vec![None, da, db]
        }
        Op::Sum { axes } => {
            let shape = e.ty(x[0]).shape;
            one(e.unreduce(g, axes, &shape))
        }
        Op::ReduceMax { axes } => {
            // Every maximum of a group gets an equal share of the group's cotangent.
            let shape = e.ty(x[0]).shape;
            let top = e.unreduce(y, axes, &shape);
            let mask = e.indicator(CmpOp::Eq, x[0], top);
            let count = e.op(Op::Sum { axes: axes.clone() }, vec![mask]);
            let share = e.bin(Op::Div, g, count);
            let spread = e.unreduce(share, axes, &shape);
            one(e.bin(Op::Mul, spread, mask))
        }
        Op::Reshape { .. } => {
            let shape = e.ty(x[0]).shape;
            one(e.op(Op::Reshape { shape }, vec![g]))
        }
        Op::Permute { perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            one(e.op(Op::Permute { perm: inverse }, vec![g]))
        }
        Op::Broadcast { shape } => {
            let from = e.ty(x[0]).shape;
            let offset = shape.len() - from.len();
            let axes: Vec<usize> = (0..shape.len())
                .filter(|&i| i < offset || (from[i - offset] == 1 && shape[i] != 1))
                .collect();
            if axes.is_empty() {
                return one(g);
            }
            let summed = e.op(Op::Sum { axes }, vec![g]);
            if e.ty(summed).shape == from {
                one(summed)
            } else {
                one(e.op(Op::Reshape { shape: from }, vec![summed]))
            }
        }
        Op::Slice { axis, start, end } => {
            let n = e.ty(x[0]).shape[*axis];
            one(e.op(
                Op::Pad {
                    axis: *axis,
                    lo: *start,
                    hi: n - end,
                },
                vec![g],
            ))
        }
        Op::Pad { axis, lo, .. } => {
            let n = e.ty(x[0]).shape[*axis];
            one(e.op(
                Op::Slice {
                    axis: *axis,
                    start: *lo,
                    end: lo + n,
                },
                vec![g],
            ))
        }
        Op::Concat { axis } => {
            let mut start = 0;
            let mut cts = Vec::new();
            for (&a, &need) in x.iter().zip(need) {
                let end = start + e.ty(a).shape[*axis];
                let op = Op::Slice {
                    axis: *axis,
                    start,
                    end,
                };
                cts.push(need.then(|| e.op(op, vec![g])));
                start = end;
            }
            cts
        }
        Op::MatMul => {
            let da = need[0].then(|| {
                let bt = e.swap_last_two(x[1]);
                e.bin(Op::MatMul, g, bt)
            });
            let db = need[1].then(|| {
                let at = e.swap_last_two(x[0]);
                e.bin(Op::MatMul, at, g)
            });
            vec![da, db]
        }
        Op::Unfold(window) => {
            let shape = e.ty(x[0]).shape;
            let fold = Op::Fold {
                window: *window,
                size: [shape[2], shape[3]],
            };
            one(e.op(fold, vec![g]))
        }
        Op::Fold { window, .. } => one(e.op(Op::Unfold(*window), vec![g])),
        Op::Gather => {
            let rows = e.ty(x[0]).shape[0];
            vec![Some(e.op(Op::ScatterAdd { rows }, vec![x[1], g])), None]
        }
        Op::ScatterAdd { .. } => vec![None, Some(e.bin(Op::Gather, g, x[0]))],
        Op::Input { .. }
        | Op::Const { .. }
        | Op::Iota { .. }
        | Op::Rand { .. }
        | Op::Not
        | Op::Detach
        | Op::Cmp(_)
        | Op::And
        | Op::Or
        | Op::Argmax { .. }
        | Op::Scan { .. }
        | Op::Get { .. } => unreachable!("`{}` has no tensor VJP", node.op.name()),
    }
}

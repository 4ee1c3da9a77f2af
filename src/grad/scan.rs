//! The VJP of `scan`, as one more scan running the other way: the gradient graph's size does not
//! depend on the sequence length.
//!
//! The backward body is first derived in full: the forward step recomputed from the carries
//! entering it and the step's slices, then the body's VJP. Then, as oneDNN's training workspace
//! and JAX's scan do, the forward values the VJP reads are saved instead of recomputed: the
//! forward scan is extended in place with one stacked output per saved value (and per carry the
//! backward body still reads; new tuple elements go last, so existing `get`s stay valid), and the
//! backward body reads them as sequences. Only constants and views of saved values are
//! recomputed. Finally a constant's gradient that is a sum over steps of a product of per-step
//! values (`hᵀ·δ` for a recurrent weight, `Σ δ` for a bias) is not accumulated step by step: the
//! backward scan emits the per-step values and one product over the stacked steps follows it.
//!
//! The backward scan has
//! - carries: the cotangents of the float carries, then accumulators for the constants' gradients
//!   that are not hoisted;
//! - sequences: the saved carries and forward sequences it reads, the saved values, the per-step
//!   output cotangents;
//! - constants: the forward constants it reads;
//! - per-step outputs: the cotangents of the sequence slices, then the hoisted products' factors.

use super::{backprop, zeros};
use crate::ir::{Graph, Loc, Node, Op, OutputRole, Role, Type, ValueId, infer};
use std::collections::HashMap;

/// One cotangent per operand of the scan `id` (where `need` says the operand is active), given the
/// cotangents `cts` of its tuple elements.
pub(super) fn vjp(
    graph: &mut Graph,
    id: ValueId,
    cts: &[Option<ValueId>],
    need: &[bool],
) -> Vec<Option<ValueId>> {
    let node = graph.node(id).clone();
    let Op::Scan {
        body,
        carries: nc,
        seqs: ns,
        reverse,
    } = node.op
    else {
        unreachable!("scan::vjp of a `{}`", node.op.name())
    };
    let loc = node.loc;
    let args = node.args;
    let inputs: Vec<ValueId> = body.inputs().map(|(v, _, _)| v).collect();
    let outputs: Vec<ValueId> = body.outputs.iter().map(|o| o.value).collect();

    let is_float = |v: ValueId| body.ty(v).dtype.is_float();
    let float_carries: Vec<usize> = (0..nc).filter(|&i| is_float(inputs[i])).collect();
    let grad_seqs: Vec<usize> = (nc..nc + ns).filter(|&j| need[j]).collect();
    let grad_consts: Vec<usize> = (nc + ns..args.len()).filter(|&j| need[j]).collect();
    let seeded_outs: Vec<usize> = (nc..outputs.len()).filter(|&o| cts[o].is_some()).collect();

    // The backward step in full: the forward step recomputed from replayed operands, then its VJP.
    let mut full = Graph::new(format!("{}_vjp", body.name));
    let arg =
        |rb: &mut Graph, name: String, v: ValueId| rb.input(name, Role::Arg, body.ty(v).clone());
    let ct_carry: Vec<ValueId> = float_carries
        .iter()
        .map(|&i| arg(&mut full, format!("ct_carry{i}"), inputs[i]))
        .collect();
    let acc: Vec<ValueId> = grad_consts
        .iter()
        .map(|&j| arg(&mut full, format!("grad_const{j}"), inputs[j]))
        .collect();
    let mut replay: Vec<ValueId> = (0..nc + ns)
        .map(|j| arg(&mut full, format!("operand{j}"), inputs[j]))
        .collect();
    let ct_out: Vec<ValueId> = seeded_outs
        .iter()
        .map(|&o| arg(&mut full, format!("ct_out{o}"), outputs[o]))
        .collect();
    replay.extend((nc + ns..args.len()).map(|j| arg(&mut full, format!("operand{j}"), inputs[j])));

    let mut map = Vec::with_capacity(body.nodes.len());
    let mut next_input = replay.iter();
    for n in &body.nodes {
        let v = match &n.op {
            Op::Input { .. } => *next_input
                .next()
                .expect("one replayed operand per body input"),
            op => {
                let a = n.args.iter().map(|a| map[a.index()]).collect();
                full.add(op.clone(), a, n.loc.clone())
            }
        };
        map.push(v);
    }
    let forward_end = full.nodes.len();

    let mut seeds: Vec<(ValueId, ValueId)> = float_carries
        .iter()
        .zip(&ct_carry)
        .map(|(&i, &ct)| (map[outputs[i].index()], ct))
        .collect();
    seeds.extend(
        seeded_outs
            .iter()
            .zip(&ct_out)
            .map(|(&o, &ct)| (map[outputs[o].index()], ct)),
    );
    let wrt: Vec<ValueId> = float_carries
        .iter()
        .chain(&grad_consts)
        .chain(&grad_seqs)
        .map(|&j| replay[j])
        .collect();
    let mut res = backprop(&mut full, &seeds, &wrt).into_iter();

    // The backward body's results, before the constants' gradients are split into accumulated
    // and hoisted ones.
    let mut carry_results: Vec<(String, ValueId)> = Vec::new();
    for &i in &float_carries {
        let d = res.next().flatten();
        let d = d.unwrap_or_else(|| zeros(&mut full, replay[i], loc.clone()));
        carry_results.push((format!("ct_carry{i}"), d));
    }
    let mut accumulated: Vec<(usize, ValueId, ValueId)> = Vec::new();
    let mut hoisted: Vec<(usize, Hoist)> = Vec::new();
    for (&j, &acc) in grad_consts.iter().zip(&acc) {
        match res.next().flatten() {
            Some(d) => match Hoist::of(&full, d) {
                Some(h) => hoisted.push((j, h)),
                None => {
                    let sum = full.add(Op::Add, vec![acc, d], loc.clone());
                    accumulated.push((j, acc, sum));
                }
            },
            None => accumulated.push((j, acc, acc)),
        }
    }
    let mut seq_grads: Vec<ValueId> = Vec::new();
    for &j in &grad_seqs {
        let d = res.next().flatten();
        seq_grads.push(d.unwrap_or_else(|| zeros(&mut full, replay[j], loc.clone())));
    }
    let mut factors: Vec<ValueId> = Vec::new();
    for v in hoisted.iter().flat_map(|(_, h)| h.factors()) {
        if !factors.contains(&v) {
            factors.push(v);
        }
    }

    // Which forward values to save: those the backward nodes read, looking through views and
    // constants, which are recomputed.
    let roots: Vec<ValueId> = carry_results
        .iter()
        .map(|(_, v)| *v)
        .chain(accumulated.iter().map(|(_, _, v)| *v))
        .chain(seq_grads.iter().copied())
        .chain(factors.iter().copied())
        .collect();
    let is_input = |g: &Graph, v: ValueId| matches!(g.node(v).op, Op::Input { .. });
    let mut live = vec![false; full.nodes.len()];
    let mut saved = vec![false; full.nodes.len()];
    let mut stack = roots.clone();
    while let Some(v) = stack.pop() {
        if live[v.index()] || saved[v.index()] {
            continue;
        }
        let n = full.node(v);
        if v.index() < forward_end && !is_input(&full, v) && !recomputed(n) {
            saved[v.index()] = true;
            continue;
        }
        live[v.index()] = true;
        stack.extend(&n.args);
    }

    // The forward scan, extended with the saved carries and values.
    let mut saving = (*body).clone();
    let mut stacked: HashMap<ValueId, ValueId> = HashMap::new();
    let first_new = outputs.len();
    let mut new_outputs: Vec<ValueId> = Vec::new();
    for (i, &r) in replay.iter().enumerate().take(nc) {
        if live[r.index()] {
            let name = fresh_output_name(&saving, "saved_carry");
            saving.add_output(name, inputs[i], OutputRole::Value);
            new_outputs.push(r);
        }
    }
    let body_node: HashMap<ValueId, usize> = map
        .iter()
        .enumerate()
        .filter(|(k, _)| !matches!(body.nodes[*k].op, Op::Input { .. }))
        .map(|(k, &v)| (v, k))
        .collect();
    let residuals: Vec<ValueId> = (0..forward_end)
        .filter(|&v| saved[v])
        .map(|v| ValueId(v as u32))
        .collect();
    for &r in &residuals {
        let name = fresh_output_name(&saving, "saved");
        saving.add_output(name, ValueId(body_node[&r] as u32), OutputRole::Value);
        new_outputs.push(r);
    }
    let op = Op::Scan {
        body: Box::new(saving),
        carries: nc,
        seqs: ns,
        reverse,
    };
    let types: Vec<&Type> = args.iter().map(|a| &graph.node(*a).ty).collect();
    let ty = infer(&op, &types).expect("extending a scan with saved values keeps it well typed");
    graph.nodes[id.index()] = Node {
        op,
        args: args.clone(),
        ty,
        loc: loc.clone(),
    };
    for (k, &r) in new_outputs.iter().enumerate() {
        let index = first_new + k;
        stacked.insert(r, graph.add(Op::Get { index }, vec![id], loc.clone()));
    }
    for (j, &r) in replay.iter().enumerate().take(nc + ns).skip(nc) {
        stacked.insert(r, args[j]);
    }
    for (&o, &ct) in seeded_outs.iter().zip(&ct_out) {
        stacked.insert(ct, cts[o].expect("seeded"));
    }

    // The backward body that reads them: live nodes copied, saved values read as sequences.
    let mut rb = Graph::new(full.name.clone());
    let mut remap: Vec<Option<ValueId>> = vec![None; full.nodes.len()];
    let mut rargs: Vec<ValueId> = Vec::new();
    let mut declare = |rb: &mut Graph, remap: &mut Vec<Option<ValueId>>, v: ValueId, outer| {
        let name = match &full.node(v).op {
            Op::Input { name, .. } => name.clone(),
            _ => format!("saved{}", v.index()),
        };
        remap[v.index()] = Some(rb.input(name, Role::Arg, full.ty(v).clone()));
        rargs.push(outer);
    };
    for (&i, &ct) in float_carries.iter().zip(&ct_carry) {
        let init = cts[i].unwrap_or_else(|| zeros(graph, args[i], loc.clone()));
        declare(&mut rb, &mut remap, ct, init);
    }
    for &(j, acc, _) in &accumulated {
        let init = zeros(graph, args[j], loc.clone());
        declare(&mut rb, &mut remap, acc, init);
    }
    let mut seqs = 0;
    for &r in replay[..nc + ns].iter().chain(&residuals).chain(&ct_out) {
        if live[r.index()] || saved[r.index()] {
            declare(&mut rb, &mut remap, r, stacked[&r]);
            seqs += 1;
        }
    }
    for (j, &r) in replay.iter().enumerate().skip(nc + ns) {
        if live[r.index()] {
            declare(&mut rb, &mut remap, r, args[j]);
        }
    }
    for (k, n) in full.nodes.iter().enumerate() {
        if live[k] && remap[k].is_none() {
            let a = n
                .args
                .iter()
                .map(|a| remap[a.index()].expect("operands first"));
            remap[k] = Some(rb.add(n.op.clone(), a.collect(), n.loc.clone()));
        }
    }
    let new = |v: ValueId| remap[v.index()].expect("a live value");
    for (name, v) in &carry_results {
        rb.add_output(name.clone(), new(*v), OutputRole::Value);
    }
    for &(j, _, sum) in &accumulated {
        rb.add_output(format!("grad_const{j}"), new(sum), OutputRole::Value);
    }
    for (&j, &v) in grad_seqs.iter().zip(&seq_grads) {
        rb.add_output(format!("grad_seq{j}"), new(v), OutputRole::Value);
    }
    // A factor the scan does not already have stacked is a per-step output.
    let factor_outputs: Vec<ValueId> = factors
        .iter()
        .copied()
        .filter(|v| !stacked.contains_key(v) && !seq_grads.contains(v))
        .collect();
    for (k, &v) in factor_outputs.iter().enumerate() {
        rb.add_output(format!("factor{k}"), new(v), OutputRole::Value);
    }

    let carries = float_carries.len() + accumulated.len();
    let op = Op::Scan {
        body: Box::new(rb),
        carries,
        seqs,
        reverse: !reverse,
    };
    let back = graph.add(op, rargs, loc.clone());
    let part =
        |graph: &mut Graph, index: usize| graph.add(Op::Get { index }, vec![back], loc.clone());

    let mut grads = vec![None; args.len()];
    for (index, &i) in float_carries.iter().enumerate() {
        if need[i] {
            grads[i] = Some(part(graph, index));
        }
    }
    for (k, &(j, _, _)) in accumulated.iter().enumerate() {
        grads[j] = Some(part(graph, float_carries.len() + k));
    }
    for (k, (&j, &v)) in grad_seqs.iter().zip(&seq_grads).enumerate() {
        let value = part(graph, carries + k);
        if need[j] {
            grads[j] = Some(value);
        }
        stacked.entry(v).or_insert(value);
    }
    for (k, &v) in factor_outputs.iter().enumerate() {
        let value = part(graph, carries + seq_grads.len() + k);
        stacked.insert(v, value);
    }
    for (j, h) in hoisted {
        grads[j] = Some(h.after(graph, &stacked, &loc));
    }
    grads
}

/// Views and constants the backward body recomputes rather than saves (and a nested scan, which
/// is a tuple: its parts are saved or it is rerun).
fn recomputed(n: &Node) -> bool {
    matches!(n.ty, Type::Tuple(_))
        || matches!(
            n.op,
            Op::Const { .. }
                | Op::Iota { .. }
                | Op::Reshape { .. }
                | Op::Permute { .. }
                | Op::Broadcast { .. }
                | Op::Slice { .. }
        )
}

/// A constant's per-step gradient that sums over steps into one product of stacked values.
enum Hoist {
    /// `aᵀ·b` of two matrices: over the steps, (stacked a)ᵀ·(stacked b), rows of all steps
    /// together.
    Product { a: ValueId, b: ValueId },
    /// `Σ b` over `axes`: over the steps, the sum of the stack over its step axis too.
    Sum { b: ValueId, axes: Vec<usize> },
}

impl Hoist {
    /// The hoisted form of gradient `d`, when it is one.
    fn of(g: &Graph, d: ValueId) -> Option<Hoist> {
        let n = g.node(d);
        match &n.op {
            Op::MatMul => {
                let p = g.node(n.args[0]);
                let transposed = matches!(&p.op, Op::Permute { perm } if perm == &[1, 0]);
                (transposed && g.ty(n.args[1]).rank() == 2).then(|| Hoist::Product {
                    a: p.args[0],
                    b: n.args[1],
                })
            }
            Op::Sum { axes } => Some(Hoist::Sum {
                b: n.args[0],
                axes: axes.clone(),
            }),
            _ => None,
        }
    }

    fn factors(&self) -> Vec<ValueId> {
        match self {
            Hoist::Product { a, b } => vec![*a, *b],
            Hoist::Sum { b, .. } => vec![*b],
        }
    }

    /// The gradient after the backward scan, from the stacked per-step factors.
    fn after(&self, graph: &mut Graph, stacked: &HashMap<ValueId, ValueId>, loc: &Loc) -> ValueId {
        match self {
            Hoist::Product { a, b } => {
                let rows = |graph: &mut Graph, v: ValueId| {
                    let s = stacked[&v];
                    let t = graph.ty(s).clone();
                    let shape = vec![t.shape[0] * t.shape[1], t.shape[2]];
                    graph.add(Op::Reshape { shape }, vec![s], loc.clone())
                };
                let a = rows(graph, *a);
                let b = rows(graph, *b);
                let at = graph.add(Op::Permute { perm: vec![1, 0] }, vec![a], loc.clone());
                graph.add(Op::MatMul, vec![at, b], loc.clone())
            }
            Hoist::Sum { b, axes } => {
                let mut all = vec![0];
                all.extend(axes.iter().map(|a| a + 1));
                graph.add(Op::Sum { axes: all }, vec![stacked[b]], loc.clone())
            }
        }
    }
}

/// An output name not yet used in `body`.
fn fresh_output_name(body: &Graph, base: &str) -> String {
    (0..)
        .map(|k| format!("{base}{k}"))
        .find(|name| body.outputs.iter().all(|o| o.name != *name))
        .expect("some suffix is free")
}

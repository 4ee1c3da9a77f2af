//! The VJP of `scan`, as one more scan running the other way: the gradient graph's size does not
//! depend on the sequence length.
//!
//! The forward scan is extended in place to also stack the carries entering each step (new tuple
//! elements go last, so existing `get`s stay valid). The backward scan's body recomputes the
//! forward step from the saved carry and the step's slices, then applies the body's VJP:
//!
//! - carries: the cotangents of the float carries, then accumulators for the constants' gradients;
//! - sequences: the saved carries, the forward sequences, the per-step output cotangents;
//! - constants: the forward constants;
//! - per-step outputs: the cotangents of the sequence slices, stacked into the sequences' gradients.

use super::{backprop, zeros};
use crate::ir::{Graph, Node, Op, OutputRole, Role, Type, ValueId, infer};

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

    let mut saving = (*body).clone();
    for &c in &inputs[..nc] {
        let name = fresh_output_name(&saving, "saved_carry");
        saving.add_output(name, c, OutputRole::Value);
    }
    let op = Op::Scan {
        body: Box::new(saving),
        carries: nc,
        seqs: ns,
        reverse,
    };
    let types: Vec<&Type> = args.iter().map(|a| &graph.node(*a).ty).collect();
    let ty = infer(&op, &types).expect("extending a scan with saved carries keeps it well typed");
    graph.nodes[id.index()] = Node {
        op,
        args: args.clone(),
        ty,
        loc: loc.clone(),
    };
    let saved: Vec<ValueId> = (0..nc)
        .map(|i| {
            let index = outputs.len() + i;
            graph.add(Op::Get { index }, vec![id], loc.clone())
        })
        .collect();

    let is_float = |v: ValueId| body.ty(v).dtype.is_float();
    let float_carries: Vec<usize> = (0..nc).filter(|&i| is_float(inputs[i])).collect();
    let grad_seqs: Vec<usize> = (nc..nc + ns).filter(|&j| need[j]).collect();
    let grad_consts: Vec<usize> = (nc + ns..args.len()).filter(|&j| need[j]).collect();
    let seeded_outs: Vec<usize> = (nc..outputs.len()).filter(|&o| cts[o].is_some()).collect();

    let mut rb = Graph::new(format!("{}_vjp", body.name));
    let arg =
        |rb: &mut Graph, name: String, v: ValueId| rb.input(name, Role::Arg, body.ty(v).clone());
    let ct_carry: Vec<ValueId> = float_carries
        .iter()
        .map(|&i| arg(&mut rb, format!("ct_carry{i}"), inputs[i]))
        .collect();
    let acc: Vec<ValueId> = grad_consts
        .iter()
        .map(|&j| arg(&mut rb, format!("grad_const{j}"), inputs[j]))
        .collect();
    let mut replay: Vec<ValueId> = (0..nc + ns)
        .map(|j| arg(&mut rb, format!("operand{j}"), inputs[j]))
        .collect();
    let ct_out: Vec<ValueId> = seeded_outs
        .iter()
        .map(|&o| arg(&mut rb, format!("ct_out{o}"), outputs[o]))
        .collect();
    replay.extend((nc + ns..args.len()).map(|j| arg(&mut rb, format!("operand{j}"), inputs[j])));

    // Recompute the step: the forward body with its inputs replaced by the replayed operands.
    let mut map = Vec::with_capacity(body.nodes.len());
    let mut next_input = replay.iter();
    for n in &body.nodes {
        let v = match &n.op {
            Op::Input { .. } => *next_input
                .next()
                .expect("one replayed operand per body input"),
            op => {
                let a = n.args.iter().map(|a| map[a.index()]).collect();
                rb.add(op.clone(), a, n.loc.clone())
            }
        };
        map.push(v);
    }

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
    let mut res = backprop(&mut rb, &seeds, &wrt).into_iter();
    for &i in &float_carries {
        let d = res.next().flatten();
        let d = d.unwrap_or_else(|| zeros(&mut rb, replay[i], loc.clone()));
        rb.add_output(format!("ct_carry{i}"), d, OutputRole::Value);
    }
    for (&j, &acc) in grad_consts.iter().zip(&acc) {
        let sum = match res.next().flatten() {
            Some(d) => rb.add(Op::Add, vec![acc, d], loc.clone()),
            None => acc,
        };
        rb.add_output(format!("grad_const{j}"), sum, OutputRole::Value);
    }
    for &j in &grad_seqs {
        let d = res.next().flatten();
        let d = d.unwrap_or_else(|| zeros(&mut rb, replay[j], loc.clone()));
        rb.add_output(format!("grad_seq{j}"), d, OutputRole::Value);
    }

    let mut rargs: Vec<ValueId> = float_carries
        .iter()
        .map(|&i| cts[i].unwrap_or_else(|| zeros(graph, args[i], loc.clone())))
        .collect();
    rargs.extend(
        grad_consts
            .iter()
            .map(|&j| zeros(graph, args[j], loc.clone())),
    );
    rargs.extend(&saved);
    rargs.extend(&args[nc..nc + ns]);
    rargs.extend(seeded_outs.iter().filter_map(|&o| cts[o]));
    rargs.extend(&args[nc + ns..]);
    let op = Op::Scan {
        body: Box::new(rb),
        carries: float_carries.len() + grad_consts.len(),
        seqs: nc + ns + seeded_outs.len(),
        reverse: !reverse,
    };
    let back = graph.add(op, rargs, loc.clone());

    let mut grads = vec![None; args.len()];
    let order = float_carries.iter().chain(&grad_consts).chain(&grad_seqs);
    for (index, &j) in order.enumerate() {
        if need[j] {
            grads[j] = Some(graph.add(Op::Get { index }, vec![back], loc.clone()));
        }
    }
    grads
}

/// An output name not yet used in `body`.
fn fresh_output_name(body: &Graph, base: &str) -> String {
    (0..)
        .map(|k| format!("{base}{k}"))
        .find(|name| body.outputs.iter().all(|o| o.name != *name))
        .expect("some suffix is free")
}

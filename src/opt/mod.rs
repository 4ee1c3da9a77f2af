//! Optimization passes over the graph IR, each a function from a graph to an equivalent one:
//! - `simplify`: constant folding of splat constants and algebraic rules (x·1, x·0, x+0, x−0, x/1,
//!   −(−x), log(exp(x)), reshape of reshape, permute of permute, identity reshapes, permutes,
//!   broadcasts and slices, detach after differentiation);
//! - `cse`: common-subexpression elimination;
//! - `dce`: dead-code elimination (inputs are kept: they are the graph's signature);
//! - `transpose_products`: `(X·Y)ᵀ = Yᵀ·Xᵀ` where that leaves fewer transposes (a weight
//!   gradient `sum_b(g·colsᵀ)ᵀ` becomes `sum_b(cols·gᵀ)`);
//! - `hoist_scan_permutes`: a scan body's product with a permuted constant (the backward pass's
//!   `g · Uᵀ`) reads the permuted constant as an operand of the scan instead, so the backend
//!   makes it row-major once rather than reading it strided at every step.
//!
//! `optimize` runs them to a fixed point, inside scan bodies too. It is meant for graphs that are
//! already differentiated: it drops `detach`, which only the differentiation looks at.

use crate::ir::primitive::Reference;
use crate::ir::{DType, Graph, Node, Op, Output, Role, TensorType, Type, ValueId};
use std::collections::HashMap;

/// Node counts before and after, for `nnlc ir --stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub before: usize,
    pub after: usize,
}

pub fn optimize(graph: &Graph) -> (Graph, Stats) {
    let before = graph.size();
    let mut g = graph.clone();
    loop {
        let size = g.size();
        let g1 = verified("transpose_products", transpose_products(&g));
        let g1 = verified("concat_pads", concat_pads(&g1));
        g = verified(
            "dce",
            dce(&verified("cse", cse(&verified("simplify", simplify(&g1))))),
        );
        if g.size() == size {
            break;
        }
    }
    let g = verified("hoist_scan_permutes", dce(&hoist_scan_permutes(&g)));
    let after = g.size();
    (g, Stats { before, after })
}

/// In debug builds, the verifier runs after every pass: a pass that breaks a graph is named at
/// once instead of failing in a backend.
fn verified(pass: &str, g: Graph) -> Graph {
    if cfg!(debug_assertions)
        && let Err(e) = crate::ir::verify(&g)
    {
        panic!("internal error: `{pass}` made an ill-formed graph: {e}");
    }
    g
}

/// Rebuilds a graph node by node; `rewrite` sees the graph built so far (a kept node gets the id
/// `nodes.len()`) and each node with its operands already mapped, and may return an existing
/// value to use instead, or a replacement node.
fn rebuild(graph: &Graph, rewrite: &mut dyn FnMut(&Graph, &Node) -> Rewrite) -> Graph {
    let mut out = Graph::new(graph.name.clone());
    let mut map: Vec<ValueId> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let mut n = node.clone();
        n.args = node.args.iter().map(|a| map[a.index()]).collect();
        let v = match rewrite(&out, &n) {
            Rewrite::Keep => push(&mut out, n),
            Rewrite::Use(v) => v,
            Rewrite::Replace(op, args) => push(
                &mut out,
                Node {
                    op,
                    args,
                    ty: n.ty,
                    loc: n.loc,
                },
            ),
        };
        map.push(v);
    }
    out.outputs = graph
        .outputs
        .iter()
        .map(|o| Output {
            value: map[o.value.index()],
            ..o.clone()
        })
        .collect();
    out
}

fn push(g: &mut Graph, n: Node) -> ValueId {
    g.nodes.push(n);
    ValueId(g.nodes.len() as u32 - 1)
}

enum Rewrite {
    Keep,
    Use(ValueId),
    Replace(Op, Vec<ValueId>),
}

/// The value of a splat constant.
fn splat(g: &Graph, v: ValueId) -> Option<f64> {
    match &g.node(v).op {
        Op::Const { value, .. } => Some(*value),
        _ => None,
    }
}

fn const_of(value: f64, ty: &Type) -> Rewrite {
    match ty {
        Type::Tensor(t) => Rewrite::Replace(
            Op::Const {
                value: round_to(value, t.dtype),
                ty: t.clone(),
            },
            Vec::new(),
        ),
        Type::Tuple(_) => Rewrite::Keep,
    }
}

/// A value as the dtype stores it: f32 rounding, integer truncation, bool as 0/1.
fn round_to(x: f64, dtype: DType) -> f64 {
    match dtype {
        DType::F32 => x as f32 as f64,
        DType::F64 => x,
        DType::I32 => (x.trunc() as i32) as f64,
        DType::Bool => f64::from(u8::from(x != 0.0)),
    }
}

pub fn simplify(graph: &Graph) -> Graph {
    rebuild(graph, &mut |g, n| simplify_node(g, n))
}

fn simplify_node(g: &Graph, n: &Node) -> Rewrite {
    let args = &n.args;
    let c = |i: usize| splat(g, args[i]);
    let same_type = |v: ValueId| g.node(v).ty == n.ty;
    // Constant folding of splats.
    let splats: Option<Vec<f64>> = args.iter().map(|a| splat(g, *a)).collect();
    if let Some(values) = splats.filter(|v| !v.is_empty())
        && let Some(v) = fold(&n.op, &values, g, args)
    {
        return const_of(v, &n.ty);
    }
    match &n.op {
        Op::Mul if c(1) == Some(1.0) && same_type(args[0]) => Rewrite::Use(args[0]),
        Op::Mul if c(0) == Some(1.0) && same_type(args[1]) => Rewrite::Use(args[1]),
        Op::Add if c(1) == Some(0.0) && same_type(args[0]) => Rewrite::Use(args[0]),
        Op::Add if c(0) == Some(0.0) && same_type(args[1]) => Rewrite::Use(args[1]),
        Op::Sub if c(1) == Some(0.0) => Rewrite::Use(args[0]),
        // x · 0 is 0 for every finite x; a non-finite value reaches the loss by another path and
        // is reported there. This removes terms like `weight_decay * p` with weight_decay = 0.
        Op::Mul if c(0) == Some(0.0) || c(1) == Some(0.0) => const_of(0.0, &n.ty),
        Op::Div if c(1) == Some(1.0) => Rewrite::Use(args[0]),
        Op::Neg => match &g.node(args[0]).op {
            Op::Neg => Rewrite::Use(g.node(args[0]).args[0]),
            _ => Rewrite::Keep,
        },
        Op::Log => match &g.node(args[0]).op {
            Op::Exp => Rewrite::Use(g.node(args[0]).args[0]),
            _ => Rewrite::Keep,
        },
        // Only differentiation looks at `detach`; in a differentiated graph it is the identity.
        Op::Detach => Rewrite::Use(args[0]),
        Op::Reshape { .. } | Op::Broadcast { .. } | Op::Slice { .. } if same_type(args[0]) => {
            Rewrite::Use(args[0])
        }
        Op::Reshape { shape } => match &g.node(args[0]).op {
            Op::Reshape { .. } => Rewrite::Replace(
                Op::Reshape {
                    shape: shape.clone(),
                },
                vec![g.node(args[0]).args[0]],
            ),
            _ => Rewrite::Keep,
        },
        Op::Permute { perm } => {
            if perm.iter().enumerate().all(|(i, &p)| i == p) {
                return Rewrite::Use(args[0]);
            }
            match &g.node(args[0]).op {
                Op::Permute { perm: inner } => {
                    let composed: Vec<usize> = perm.iter().map(|&p| inner[p]).collect();
                    let inner_arg = g.node(args[0]).args[0];
                    if composed.iter().enumerate().all(|(i, &p)| i == p) {
                        Rewrite::Use(inner_arg)
                    } else {
                        Rewrite::Replace(Op::Permute { perm: composed }, vec![inner_arg])
                    }
                }
                _ => Rewrite::Keep,
            }
        }
        Op::Broadcast { shape } => match &g.node(args[0]).op {
            Op::Broadcast { .. } => Rewrite::Replace(
                Op::Broadcast {
                    shape: shape.clone(),
                },
                vec![g.node(args[0]).args[0]],
            ),
            _ => Rewrite::Keep,
        },
        Op::Scan {
            body,
            carries,
            seqs,
            reverse,
        } => Rewrite::Replace(
            Op::Scan {
                body: Box::new(optimize(body).0),
                carries: *carries,
                seqs: *seqs,
                reverse: *reverse,
            },
            args.clone(),
        ),
        Op::Select => match c(0) {
            Some(cond) => Rewrite::Use(if cond != 0.0 { args[1] } else { args[2] }),
            None if args[1] == args[2] => Rewrite::Use(args[1]),
            None => Rewrite::Keep,
        },
        _ => Rewrite::Keep,
    }
}

/// The value of an op on splat constants, when the result is a splat too: an elementwise op by
/// its reference function (`ir::primitive`), a movement or reduction of a splat by its rule.
fn fold(op: &Op, x: &[f64], g: &Graph, args: &[ValueId]) -> Option<f64> {
    let t = |i: usize| -> &TensorType { g.ty(args[i]) };
    match (op, x) {
        // Integer division rounds toward −∞, and a zero divisor is the backends' error.
        (Op::Div, [a, b]) if t(0).dtype == DType::I32 => {
            return (*b != 0.0).then(|| (a / b).floor());
        }
        (Op::Reshape { .. } | Op::Broadcast { .. } | Op::Permute { .. }, [a]) => return Some(*a),
        (Op::Slice { .. } | Op::ReduceMax { .. }, [a]) => return Some(*a),
        (Op::Sum { axes }, [a]) => {
            let n: usize = axes.iter().map(|&i| t(0).shape[i]).product();
            return Some(a * n as f64);
        }
        _ => {}
    }
    match (op.primitive().reference, x) {
        (Reference::Unary(f), [a]) => Some(f(*a)),
        (Reference::Binary(f), [a, b]) => Some(f(*a, *b)),
        (Reference::Ternary(f), [a, b, c]) => Some(f(*a, *b, *c)),
        _ => None,
    }
}

/// Common-subexpression elimination: a node equal to an earlier one (same op, attributes and
/// operands) is replaced by it. Inputs are never merged; random draws differ by their stream.
pub fn cse(graph: &Graph) -> Graph {
    let mut seen: HashMap<String, ValueId> = HashMap::new();
    rebuild(graph, &mut |built, n| {
        if matches!(n.op, Op::Input { .. }) {
            return Rewrite::Keep;
        }
        let key = format!("{:?}|{:?}", n.op, n.args);
        match seen.get(&key) {
            Some(&v) => Rewrite::Use(v),
            None => {
                seen.insert(key, ValueId(built.nodes.len() as u32));
                Rewrite::Keep
            }
        }
    })
}

/// Dead-code elimination: keeps inputs and what the outputs need.
pub fn dce(graph: &Graph) -> Graph {
    let mut live = vec![false; graph.nodes.len()];
    for o in &graph.outputs {
        live[o.value.index()] = true;
    }
    for (i, node) in graph.nodes.iter().enumerate().rev() {
        if matches!(node.op, Op::Input { .. }) {
            live[i] = true;
        }
        if live[i] {
            for a in &node.args {
                live[a.index()] = true;
            }
        }
    }
    let mut out = Graph::new(graph.name.clone());
    let mut map: Vec<Option<ValueId>> = vec![None; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        if !live[i] {
            continue;
        }
        map[i] = Some(copy_node(&mut out, node, &map));
    }
    out.outputs = mapped_outputs(graph, &map);
    out
}

/// `node` pushed onto `out` with its operands mapped (every operand already copied).
fn copy_node(out: &mut Graph, node: &Node, map: &[Option<ValueId>]) -> ValueId {
    let mut n = node.clone();
    n.args = node
        .args
        .iter()
        .map(|a| map[a.index()].expect("operands are copied before their readers"))
        .collect();
    push(out, n)
}

/// `graph`'s outputs with their values mapped (every output's value copied).
fn mapped_outputs(graph: &Graph, map: &[Option<ValueId>]) -> Vec<Output> {
    graph
        .outputs
        .iter()
        .map(|o| Output {
            value: map[o.value.index()].expect("outputs are copied"),
            ..o.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// How many times each value is read, by nodes and by the graph's outputs.
fn use_counts(graph: &Graph) -> Vec<usize> {
    let mut uses = vec![0; graph.nodes.len()];
    for node in &graph.nodes {
        for a in &node.args {
            uses[a.index()] += 1;
        }
    }
    for o in &graph.outputs {
        uses[o.value.index()] += 1;
    }
    uses
}

/// Whether `perm` swaps the last two axes and keeps the others.
fn swaps_last_two(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2
        && perm[r - 2] == r - 1
        && perm[r - 1] == r - 2
        && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p)
}

/// `(X·Y)ᵀ = Yᵀ·Xᵀ`, also through a sum over the product's batch axes: a transposed product
/// whose operand is itself a transpose becomes the product of the transposed operands in the
/// other order. The operand's transpose cancels and the result's is gone, so the graph has fewer
/// transposes. Where this matters is a convolution's weight gradient: `sum_b(g·colsᵀ)ᵀ` (a
/// product whose large right operand is read transposed) becomes `sum_b(cols·gᵀ)`, which the
/// matrix library multiplies about 1.5× faster (`tools/gemm_bench.rs`). The product and the sum
/// must have no other reader, or both orientations would be computed.
pub fn transpose_products(graph: &Graph) -> Graph {
    let uses = use_counts(graph);
    let mut out = Graph::new(graph.name.clone());
    let mut map: Vec<Option<ValueId>> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let v = match transposed_product(graph, node, &uses) {
            Some(found) => {
                let mapped = |v: ValueId| map[v.index()].expect("operands come first");
                emit_swapped_product(&mut out, graph, node, &found, &mapped)
            }
            None => copy_node(&mut out, node, &map),
        };
        map.push(Some(v));
    }
    out.outputs = mapped_outputs(graph, &map);
    out
}

/// A transposed product `transpose(sum?(matmul(x, y)))` with one reader each, `x` or `y` a
/// transpose itself: the product and the sum, if there is one.
struct TransposedProduct {
    product: ValueId,
    sum: Option<ValueId>,
}

fn transposed_product(graph: &Graph, node: &Node, uses: &[usize]) -> Option<TransposedProduct> {
    let Op::Permute { perm } = &node.op else {
        return None;
    };
    if !swaps_last_two(perm) {
        return None;
    }
    let inner = node.args[0];
    let (product, sum) = match &graph.node(inner).op {
        Op::Sum { axes } => {
            let product = graph.node(inner).args[0];
            let batch_axes = graph.ty(product).rank().checked_sub(2)?;
            let over_batch = axes.iter().all(|&a| a < batch_axes);
            (over_batch && uses[inner.index()] == 1).then_some((product, Some(inner)))?
        }
        _ => (inner, None),
    };
    let p = graph.node(product);
    if !matches!(p.op, Op::MatMul) || uses[product.index()] != 1 {
        return None;
    }
    let is_transpose =
        |v: ValueId| matches!(&graph.node(v).op, Op::Permute { perm } if swaps_last_two(perm));
    (is_transpose(p.args[0]) || is_transpose(p.args[1]))
        .then_some(TransposedProduct { product, sum })
}

/// Pushes `sum?(matmul(yᵀ, xᵀ))` for the transposed product `node`; returns its value.
fn emit_swapped_product(
    out: &mut Graph,
    graph: &Graph,
    node: &Node,
    found: &TransposedProduct,
    mapped: &dyn Fn(ValueId) -> ValueId,
) -> ValueId {
    let p = graph.node(found.product);
    let mut transposed = |v: ValueId| match &graph.node(v).op {
        Op::Permute { perm } if swaps_last_two(perm) => mapped(graph.node(v).args[0]),
        _ => {
            let t = graph.ty(v);
            let r = t.rank();
            let mut perm: Vec<usize> = (0..r).collect();
            perm.swap(r - 2, r - 1);
            let mut shape = t.shape.clone();
            shape.swap(r - 2, r - 1);
            push(
                out,
                Node {
                    op: Op::Permute { perm },
                    args: vec![mapped(v)],
                    ty: Type::Tensor(TensorType::new(t.dtype, shape)),
                    loc: p.loc.clone(),
                },
            )
        }
    };
    let yt = transposed(p.args[1]);
    let xt = transposed(p.args[0]);
    let t = graph.ty(found.product);
    let r = t.rank();
    let mut shape = t.shape.clone();
    shape.swap(r - 2, r - 1);
    let product = push(
        out,
        Node {
            op: Op::MatMul,
            args: vec![yt, xt],
            ty: Type::Tensor(TensorType::new(t.dtype, shape)),
            loc: p.loc.clone(),
        },
    );
    match found.sum {
        None => product,
        Some(sum) => push(
            out,
            Node {
                op: graph.node(sum).op.clone(),
                args: vec![product],
                ty: node.ty.clone(),
                loc: graph.node(sum).loc.clone(),
            },
        ),
    }
}

/// `pad(x) + pad(y)`, where the two pads place `x` and `y` side by side along one axis, becomes
/// `pad(concat(x, y))`: the pieces are written into their slices of one buffer instead of two
/// zero-filled buffers being added. This is the gradient of a value sliced into parts, as an
/// LSTM's four gates are: the four padded gate gradients and their sum become one concatenation.
/// The sum and the concatenation agree on every element (an element of `x` plus 0 is itself)
/// except a negative zero, which the sum makes positive.
pub fn concat_pads(graph: &Graph) -> Graph {
    let mut out = Graph::new(graph.name.clone());
    let mut map: Vec<Option<ValueId>> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let v = copy_node(&mut out, node, &map);
        let v = match side_by_side(&out, v) {
            Some(pieces) => {
                out.nodes.pop();
                emit_concat_pad(&mut out, node, pieces)
            }
            None => v,
        };
        map.push(Some(v));
    }
    out.outputs = mapped_outputs(graph, &map);
    out
}

/// The pieces of a padded value: the axis, the first position they fill, and the values laid
/// side by side from there (the operands of a concatenation along the same axis, or the one
/// padded value).
struct Pieces {
    axis: usize,
    start: usize,
    values: Vec<ValueId>,
}

impl Pieces {
    fn of(g: &Graph, v: ValueId) -> Option<Pieces> {
        let Op::Pad { axis, lo, .. } = g.node(v).op else {
            return None;
        };
        let x = g.node(v).args[0];
        let values = match &g.node(x).op {
            Op::Concat { axis: a } if *a == axis => g.node(x).args.clone(),
            _ => vec![x],
        };
        Some(Pieces {
            axis,
            start: lo,
            values,
        })
    }

    fn end(&self, g: &Graph) -> usize {
        self.start
            + self
                .values
                .iter()
                .map(|&v| g.ty(v).shape[self.axis])
                .sum::<usize>()
    }
}

/// When `v` (the last node of `g`) adds two pads of the same type whose pieces touch along the
/// same axis: the pieces of both, in order.
fn side_by_side(g: &Graph, v: ValueId) -> Option<Pieces> {
    let node = g.node(v);
    if !matches!(node.op, Op::Add) || node.args.iter().any(|&a| g.node(a).ty != node.ty) {
        return None;
    }
    let a = Pieces::of(g, node.args[0])?;
    let b = Pieces::of(g, node.args[1])?;
    let (first, second) = if a.start <= b.start { (a, b) } else { (b, a) };
    (first.axis == second.axis && first.end(g) == second.start).then(|| Pieces {
        axis: first.axis,
        start: first.start,
        values: [first.values, second.values].concat(),
    })
}

/// Pushes `pad(concat(pieces))` in place of the sum `node`; returns its value.
fn emit_concat_pad(out: &mut Graph, node: &Node, pieces: Pieces) -> ValueId {
    let ty = node.ty.tensor().expect("a sum of tensors").clone();
    let axis = pieces.axis;
    let end = pieces.end(out);
    let mut shape = ty.shape.clone();
    shape[axis] = end - pieces.start;
    let concat = push(
        out,
        Node {
            op: Op::Concat { axis },
            args: pieces.values,
            ty: Type::Tensor(TensorType::new(ty.dtype, shape)),
            loc: node.loc.clone(),
        },
    );
    let hi = ty.shape[axis] - end;
    if pieces.start == 0 && hi == 0 {
        return concat;
    }
    push(
        out,
        Node {
            op: Op::Pad {
                axis,
                lo: pieces.start,
                hi,
            },
            args: vec![concat],
            ty: node.ty.clone(),
            loc: node.loc.clone(),
        },
    )
}

/// Moves `permute`s of a scan's constant operands that feed a product out of the body: the
/// permuted value becomes a new constant operand (a body input after the others), read by the
/// body where the permute was. Inside the body, the permute is a strided view every step reads
/// again; outside, it is laid out once.
pub fn hoist_scan_permutes(graph: &Graph) -> Graph {
    let mut out = Graph::new(graph.name.clone());
    let mut map: Vec<Option<ValueId>> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let mut n = node.clone();
        n.args = node
            .args
            .iter()
            .map(|a| map[a.index()].expect("operands come first"))
            .collect();
        if let Op::Scan {
            body,
            carries,
            seqs,
            reverse,
        } = &n.op
        {
            let hoisted = hoistable_permutes(body, carries + seqs);
            if !hoisted.is_empty() {
                let mut args = n.args.clone();
                let outer: Vec<ValueId> = hoisted
                    .iter()
                    .map(|&(p, operand)| {
                        let permute = &body.nodes[p];
                        push(
                            &mut out,
                            Node {
                                op: permute.op.clone(),
                                args: vec![args[operand]],
                                ty: permute.ty.clone(),
                                loc: permute.loc.clone(),
                            },
                        )
                    })
                    .collect();
                args.extend(outer);
                n = Node {
                    op: Op::Scan {
                        body: Box::new(dce(&with_permutes_as_inputs(body, &hoisted))),
                        carries: *carries,
                        seqs: *seqs,
                        reverse: *reverse,
                    },
                    args,
                    ..n
                };
            }
        }
        map.push(Some(push(&mut out, n)));
    }
    out.outputs = mapped_outputs(graph, &map);
    out
}

/// The body's permutes of a constant input (operand index `constants` or later) read by a
/// product: (node, operand index).
fn hoistable_permutes(body: &Graph, constants: usize) -> Vec<(usize, usize)> {
    let operand_of: HashMap<usize, usize> = body
        .inputs()
        .enumerate()
        .map(|(operand, (v, _, _))| (v.index(), operand))
        .collect();
    body.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Permute { .. }))
        .filter_map(|(p, n)| {
            let operand = *operand_of.get(&n.args[0].index())?;
            let feeds_product = body
                .nodes
                .iter()
                .any(|r| matches!(r.op, Op::MatMul) && r.args.iter().any(|a| a.index() == p));
            (operand >= constants && feeds_product).then_some((p, operand))
        })
        .collect()
}

/// The body with each hoisted permute replaced by a new input, after the existing ones (inputs
/// come first, so every node still follows its operands).
fn with_permutes_as_inputs(body: &Graph, hoisted: &[(usize, usize)]) -> Graph {
    let mut out = Graph::new(body.name.clone());
    let mut map: Vec<Option<ValueId>> = vec![None; body.nodes.len()];
    for (i, node) in body.nodes.iter().enumerate() {
        if matches!(node.op, Op::Input { .. }) {
            map[i] = Some(push(&mut out, node.clone()));
        }
    }
    let inputs: Vec<(&str, Role)> = body.inputs().map(|(_, name, role)| (name, role)).collect();
    for &(p, operand) in hoisted {
        let permute = &body.nodes[p];
        let (name, role) = inputs[operand];
        let Type::Tensor(ty) = permute.ty.clone() else {
            unreachable!("a permute is a tensor")
        };
        let input = Node {
            op: Op::Input {
                name: format!("{name}.permuted{p}"),
                role,
                ty,
            },
            args: Vec::new(),
            ty: permute.ty.clone(),
            loc: permute.loc.clone(),
        };
        map[p] = Some(push(&mut out, input));
    }
    for (i, node) in body.nodes.iter().enumerate() {
        if map[i].is_some() {
            continue;
        }
        map[i] = Some(copy_node(&mut out, node, &map));
    }
    out.outputs = mapped_outputs(body, &map);
    out
}

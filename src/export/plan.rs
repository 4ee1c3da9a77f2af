//! Which nodes of a graph become one readable ONNX operator. Patterns are tried at each node a
//! consumer needs, consumers first, so the largest pattern wins; a node covered by a pattern is
//! exported only if something outside the pattern also reads it.

use super::pattern::{self, Match};
use crate::ir::{Graph, Op, ValueId, Window};

/// One ONNX operator standing for the primitives a pattern covers.
#[derive(Debug, Clone)]
pub enum Fused {
    /// `[B, C, H, W]` convolved with the `unfold` layout's weight `[C·k·k, F]`.
    Conv {
        x: ValueId,
        w: ValueId,
        bias: Option<ValueId>,
        window: Window,
    },
    /// `a @ w + bias` on matrices.
    Gemm {
        a: ValueId,
        w: ValueId,
        bias: ValueId,
    },
    /// `x @ w` for `x` of rank 3 or more (the IR flattens the leading axes around a product).
    MatMul { x: ValueId, w: ValueId },
    LayerNorm {
        x: ValueId,
        gamma: ValueId,
        beta: ValueId,
        eps: f64,
    },
    /// An ONNX operator of one operand: Softmax (last axis), Relu, LeakyRelu (Sigmoid and Tanh
    /// are primitives, exported directly).
    Unary {
        x: ValueId,
        op: &'static str,
        alpha: Option<f64>,
    },
    /// Non-overlapping `size × size` windows over `[B, C, H, W]`.
    Pool {
        x: ValueId,
        op: &'static str,
        size: usize,
    },
}

impl Fused {
    /// The values the operator reads.
    pub fn operands(&self) -> Vec<ValueId> {
        match self {
            Fused::Conv { x, w, bias, .. } => [*x, *w].into_iter().chain(*bias).collect(),
            Fused::Gemm { a, w, bias } => vec![*a, *w, *bias],
            Fused::MatMul { x, w } => vec![*x, *w],
            Fused::LayerNorm { x, gamma, beta, .. } => vec![*x, *gamma, *beta],
            Fused::Unary { x, .. } | Fused::Pool { x, .. } => vec![*x],
        }
    }
}

/// For each node: whether the exported graph needs it, and the operator it becomes when a
/// pattern matched there.
pub struct Plan {
    pub needed: Vec<bool>,
    pub fused: Vec<Option<Fused>>,
}

pub fn plan(g: &Graph) -> Plan {
    let n = g.nodes.len();
    let mut needed = vec![false; n];
    let mut fused: Vec<Option<Fused>> = vec![None; n];
    for out in &g.outputs {
        needed[out.value.index()] = true;
    }
    for i in (0..n).rev() {
        if !needed[i] {
            continue;
        }
        let v = ValueId(i as u32);
        let reads = match recognize(g, v) {
            Some(f) => {
                let reads = f.operands();
                fused[i] = Some(f);
                reads
            }
            None => g.nodes[i].args.clone(),
        };
        for a in reads {
            needed[a.index()] = true;
        }
    }
    Plan { needed, fused }
}

fn shape(g: &Graph, v: ValueId) -> &[usize] {
    &g.ty(v).shape
}

/// The first pattern that matches at `v` and whose attributes fit.
fn recognize(g: &Graph, v: ValueId) -> Option<Fused> {
    if matches!(
        g.node(v).op,
        Op::Input { .. } | Op::Scan { .. } | Op::Get { .. }
    ) {
        return None;
    }
    if !matches!(g.node(v).ty, crate::ir::Type::Tensor(_)) || !g.ty(v).dtype.is_float() {
        return None;
    }
    let try_ = |name: &str| pattern::find(g, name, v);
    if let Some(m) = try_("conv_bias")
        && let Some(f) = conv(g, &m, Some(m.var("bias")))
    {
        return Some(f);
    }
    if let Some(m) = try_("conv")
        && let Some(f) = conv(g, &m, None)
    {
        return Some(f);
    }
    if let Some(m) = try_("gemm") {
        let (a, w, bias) = (m.var("a"), m.var("w"), m.var("bias"));
        let n = shape(g, w).last().copied();
        if shape(g, a).len() == 2
            && shape(g, w).len() == 2
            && n.is_some_and(|n| shape(g, bias) == [n])
        {
            return Some(Fused::Gemm { a, w, bias });
        }
    }
    if let Some(m) = try_("matmul_nd") {
        let (x, w) = (m.var("x"), m.var("w"));
        let (xs, ws) = (shape(g, x), shape(g, w));
        let lead = &xs[..xs.len().saturating_sub(1)];
        let flat = [
            lead.iter().product::<usize>(),
            xs.last().copied().unwrap_or(0),
        ];
        let out: Vec<usize> = lead.iter().copied().chain(ws.last().copied()).collect();
        if xs.len() >= 3
            && ws.len() == 2
            && shape(g, m.label("flat")) == flat
            && shape(g, m.label("out")) == out
        {
            return Some(Fused::MatMul { x, w });
        }
    }
    if let Some(m) = try_("layer_norm") {
        let (x, gamma, beta) = (m.var("x"), m.var("gamma"), m.var("beta"));
        let xs = shape(g, x);
        let last = xs.len().checked_sub(1)?;
        let d = xs[last];
        let reduces_last =
            |l: &str| matches!(&g.node(m.label(l)).op, Op::Sum { axes } if *axes == [last]);
        if reduces_last("sum1")
            && reduces_last("sum2")
            && m.nums["n1"] == d as f64
            && m.nums["n2"] == d as f64
            && shape(g, gamma) == [d]
            && shape(g, beta) == [d]
        {
            return Some(Fused::LayerNorm {
                x,
                gamma,
                beta,
                eps: m.nums["eps"],
            });
        }
    }
    if let Some(m) = try_("softmax") {
        let x = m.var("x");
        let last = shape(g, x).len().checked_sub(1)?;
        let reduces_last = |l: &str| match &g.node(m.label(l)).op {
            Op::Sum { axes } | Op::ReduceMax { axes } => *axes == [last],
            _ => false,
        };
        if reduces_last("sum") && reduces_last("max") {
            return Some(Fused::Unary {
                x,
                op: "Softmax",
                alpha: None,
            });
        }
    }
    if let Some(m) = try_("relu") {
        return Some(Fused::Unary {
            x: m.var("x"),
            op: "Relu",
            alpha: None,
        });
    }
    if let Some(m) = try_("leaky_relu") {
        let alpha = m.nums["alpha"];
        if alpha > 0.0 && alpha < 1.0 {
            return Some(Fused::Unary {
                x: m.var("x"),
                op: "LeakyRelu",
                alpha: Some(alpha),
            });
        }
    }
    for (name, op) in [("max_pool", "MaxPool"), ("avg_pool", "AveragePool")] {
        if let Some(m) = try_(name)
            && let Some(f) = pool(g, &m, op)
        {
            return Some(f);
        }
    }
    None
}

fn conv(g: &Graph, m: &Match, bias: Option<ValueId>) -> Option<Fused> {
    let (x, w) = (m.var("x"), m.var("w"));
    let Op::Permute { perm } = &g.node(m.label("wt")).op else {
        return None;
    };
    let Op::Unfold(window) = g.node(m.label("cols")).op else {
        return None;
    };
    let (&[b, c, h, wd], &[ckk, f]) = (shape(g, x), shape(g, w)) else {
        return None;
    };
    let (oh, ow) = (window.out_len(h)?, window.out_len(wd)?);
    let fits = *perm == [1, 0]
        && ckk == c * window.kernel * window.kernel
        && shape(g, m.label("out")) == [b, f, oh, ow]
        && bias.is_none_or(|b| shape(g, b) == [f]);
    fits.then_some(Fused::Conv { x, w, bias, window })
}

/// `reduce(reshape(x, [B, C, OH, s, OW, s]), axes [3, 5])`, where `x` may first drop the ragged
/// border with slices from 0 (which ONNX pooling drops by itself).
fn pool(g: &Graph, m: &Match, op: &'static str) -> Option<Fused> {
    let mut x = m.var("x");
    let axes = match &g.node(m.label("pool")).op {
        Op::Sum { axes } | Op::ReduceMax { axes } => axes.clone(),
        _ => return None,
    };
    let &[b, c, oh, s, ow, s2] = shape(g, m.label("windows")) else {
        return None;
    };
    if axes != [3, 5] || s != s2 || s == 0 || shape(g, x) != [b, c, oh * s, ow * s] {
        return None;
    }
    if op == "AveragePool" && m.nums["n"] != (s * s) as f64 {
        return None;
    }
    while let Op::Slice { axis, start: 0, .. } = g.node(x).op
        && (axis == 2 || axis == 3)
        && shape(g, g.node(x).args[0])[axis] / s == shape(g, x)[axis] / s
    {
        x = g.node(x).args[0];
    }
    Some(Fused::Pool { x, op, size: s })
}

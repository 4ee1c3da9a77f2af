//! Every VJP checked against central finite differences in f64, run by the reference interpreter;
//! ties (where finite differences are undefined) against the tie-splitting rule; and the shape of
//! the backward graph itself (activity analysis, `detach`, scans that do not grow with length).

use super::grad;
use crate::interp::{self, Options, Tensor};
use crate::ir::{
    CmpOp, DType, Graph, Loc, Op, Output, OutputRole, Role, TensorType, ValueId, Window, text,
    verify,
};
use std::collections::HashMap;
use std::sync::Arc;

/// A tiny deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }

    /// An integer in `lo..=hi`.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() * (hi - lo + 1) as f64) as usize
    }

    fn values(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }

    fn shape(&mut self, rank: usize) -> Vec<usize> {
        (0..rank).map(|_| self.int(1, 4)).collect()
    }
}

fn f64t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F64, shape.to_vec())
}

fn op(g: &mut Graph, op: Op, args: &[ValueId]) -> ValueId {
    g.add(op, args.to_vec(), Loc::default())
}

fn fill(g: &mut Graph, value: f64, ty: TensorType) -> ValueId {
    op(g, Op::Const { value, ty }, &[])
}

fn sum_all(g: &mut Graph, v: ValueId) -> ValueId {
    let axes = (0..g.ty(v).rank()).collect();
    op(g, Op::Sum { axes }, &[v])
}

/// An input of the graph under test with the values it is fed.
struct Feed {
    ty: TensorType,
    values: Vec<f64>,
}

fn feed(ty: TensorType, values: Vec<f64>) -> Feed {
    assert_eq!(ty.numel(), values.len());
    Feed { ty, values }
}

fn random(rng: &mut Lcg, shape: &[usize]) -> Feed {
    let n = shape.iter().product();
    feed(f64t(shape), rng.values(n, -1.5, 1.5))
}

fn positive(rng: &mut Lcg, shape: &[usize]) -> Feed {
    let n = shape.iter().product();
    feed(f64t(shape), rng.values(n, 0.5, 2.0))
}

fn ids(rng: &mut Lcg, shape: &[usize], rows: usize) -> Feed {
    let n = shape.iter().product();
    let values = (0..n).map(|_| rng.int(0, rows - 1) as f64).collect();
    feed(TensorType::new(DType::I32, shape.to_vec()), values)
}

/// The graph `loss = sum(w ⊙ build(x…))` with a random weight `w`, each forward node located at a
/// distinct line (so the backward nodes' locations can be traced back).
struct Problem {
    graph: Graph,
    inputs: Vec<ValueId>,
    loss: ValueId,
    feeds: HashMap<String, Tensor>,
}

fn problem(
    rng: &mut Lcg,
    feeds: &[Feed],
    build: impl FnOnce(&mut Graph, &[ValueId]) -> ValueId,
) -> Problem {
    let mut graph = Graph::new("f");
    let mut map = HashMap::new();
    let inputs: Vec<ValueId> = feeds
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = format!("x{i}");
            map.insert(name.clone(), Tensor::from_f64(&f.ty, f.values.clone()));
            graph.input(name, Role::Param, f.ty.clone())
        })
        .collect();
    let out = build(&mut graph, &inputs);
    let ty = graph.ty(out).clone();
    let w_values = rng.values(ty.numel(), -1.0, 1.0);
    map.insert("w".into(), Tensor::from_f64(&ty, w_values));
    let w = graph.input("w", Role::Data, ty);
    let weighted = op(&mut graph, Op::Mul, &[out, w]);
    let loss = sum_all(&mut graph, weighted);
    for (i, node) in graph.nodes.iter_mut().enumerate() {
        node.loc = Loc {
            scope: Arc::from("Test.layer"),
            file: Arc::from("test.nnl"),
            line: i as u32 + 1,
            col: 1,
        };
    }
    Problem {
        graph,
        inputs,
        loss,
        feeds: map,
    }
}

/// Differentiates `p` wrt all its float inputs, checks the backward graph's well-formedness and
/// locations, and returns the gradients as computed by the interpreter.
fn analytic(p: &Problem) -> Vec<Vec<f64>> {
    let mut g = p.graph.clone();
    let forward_len = g.nodes.len();
    let wrt: Vec<ValueId> = p
        .inputs
        .iter()
        .copied()
        .filter(|&v| g.ty(v).dtype.is_float())
        .collect();
    let grads = grad(&mut g, p.loss, &wrt);
    if let Err(e) = verify(&g) {
        panic!("{e}\n{}", text::print(&g));
    }
    for (i, node) in g.nodes.iter().enumerate().skip(forward_len) {
        let from_forward = p.graph.nodes.iter().any(|n| n.loc == node.loc);
        assert!(
            node.loc.is_known() && from_forward,
            "backward node %{i} has no forward location\n{}",
            text::print(&g)
        );
    }
    for (v, d) in wrt.iter().zip(&grads) {
        assert_eq!(g.ty(*v), g.ty(*d), "gradient type\n{}", text::print(&g));
    }
    g.outputs = grads
        .iter()
        .enumerate()
        .map(|(i, &d)| Output::new(format!("grad{i}"), d, OutputRole::Value))
        .collect();
    let out = run(&g, &p.feeds);
    (0..grads.len())
        .map(|i| out[&format!("grad{i}")].to_f64())
        .collect()
}

fn run(g: &Graph, feeds: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    interp::run(g, feeds, &Options::default())
        .unwrap_or_else(|e| panic!("{e:?}\n{}", text::print(g)))
}

/// Central differences of the loss wrt every float input.
fn numeric(p: &Problem) -> Vec<Vec<f64>> {
    let mut g = p.graph.clone();
    g.outputs = vec![Output::new("loss", p.loss, OutputRole::Value)];
    let mut feeds = p.feeds.clone();
    let mut loss_at = |name: &str, ty: &TensorType, values: &[f64]| {
        feeds.insert(name.to_string(), Tensor::from_f64(ty, values.to_vec()));
        run(&g, &feeds)["loss"].to_f64()[0]
    };
    let mut grads = Vec::new();
    for (i, &v) in p.inputs.iter().enumerate() {
        let ty = g.ty(v).clone();
        if !ty.dtype.is_float() {
            continue;
        }
        let name = format!("x{i}");
        let mut values = p.feeds[&name].to_f64();
        let mut d = Vec::new();
        for k in 0..values.len() {
            let x = values[k];
            let h = 1e-6 * x.abs().max(1.0);
            values[k] = x + h;
            let up = loss_at(&name, &ty, &values);
            values[k] = x - h;
            let down = loss_at(&name, &ty, &values);
            values[k] = x;
            d.push((up - down) / (2.0 * h));
        }
        loss_at(&name, &ty, &values);
        grads.push(d);
    }
    grads
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// ‖a − b‖ / max(‖a‖, ‖b‖), with a floor so that two zero gradients agree.
fn rel_error(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    norm(&diff) / norm(a).max(norm(b)).max(1e-6)
}

fn check(
    what: &str,
    rng: &mut Lcg,
    feeds: &[Feed],
    build: impl FnOnce(&mut Graph, &[ValueId]) -> ValueId,
) {
    let p = problem(rng, feeds, build);
    let got = analytic(&p);
    let want = numeric(&p);
    for (i, (a, n)) in got.iter().zip(&want).enumerate() {
        let err = rel_error(a, n);
        assert!(
            err < 1e-6,
            "{what}: gradient {i} off by {err:e}\nanalytic {a:?}\nnumeric  {n:?}\n{}",
            text::print(&p.graph)
        );
    }
}

#[test]
fn unary_elementwise() {
    let mut rng = Lcg(1);
    for (o, domain_positive) in [
        (Op::Neg, false),
        (Op::Exp, false),
        (Op::Log, true),
        (Op::Sqrt, true),
        (Op::Sin, false),
        (Op::Cos, false),
        (Op::Tanh, false),
        (Op::Sigmoid, false),
    ] {
        let rank = rng.int(0, 3);
        let shape = rng.shape(rank);
        let x = if domain_positive {
            positive(&mut rng, &shape)
        } else {
            random(&mut rng, &shape)
        };
        check(o.name(), &mut rng, &[x], |g, x| op(g, o.clone(), &[x[0]]));
    }
}

#[test]
fn binary_elementwise() {
    let mut rng = Lcg(2);
    for o in [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min] {
        let rank = rng.int(0, 3);
        let shape = rng.shape(rank);
        let a = random(&mut rng, &shape);
        let b = if o == Op::Div {
            positive(&mut rng, &shape)
        } else {
            random(&mut rng, &shape)
        };
        check(o.name(), &mut rng, &[a, b], |g, x| {
            op(g, o.clone(), &[x[0], x[1]])
        });
    }
}

#[test]
fn broadcasting() {
    let mut rng = Lcg(3);
    let cases: [(&[usize], &[usize]); 5] = [
        (&[3, 1], &[2, 3, 4]),
        (&[], &[2, 3]),
        (&[4], &[2, 3, 4]),
        (&[1, 3, 1], &[2, 3, 4]),
        (&[2, 3], &[2, 3]),
    ];
    for (from, to) in cases {
        let x = random(&mut rng, from);
        let y = random(&mut rng, to);
        check("broadcast", &mut rng, &[x, y], |g, x| {
            let shape = to.to_vec();
            let b = op(g, Op::Broadcast { shape }, &[x[0]]);
            op(g, Op::Add, &[b, x[1]])
        });
    }
}

#[test]
fn select_routes_each_branch() {
    let mut rng = Lcg(4);
    let shape = rng.shape(2);
    let feeds = [
        random(&mut rng, &shape),
        random(&mut rng, &shape),
        random(&mut rng, &shape),
        random(&mut rng, &shape),
    ];
    check("select", &mut rng, &feeds, |g, x| {
        let c = op(g, Op::Cmp(CmpOp::Gt), &[x[0], x[1]]);
        op(g, Op::Select, &[c, x[2], x[3]])
    });
}

#[test]
fn casts() {
    let mut rng = Lcg(5);
    let x = random(&mut rng, &[2, 3]);
    check("cast f64→f64 and through i32", &mut rng, &[x], |g, x| {
        let same = op(g, Op::Cast { to: DType::F64 }, &[x[0]]);
        let int = op(g, Op::Cast { to: DType::I32 }, &[x[0]]);
        let back = op(g, Op::Cast { to: DType::F64 }, &[int]);
        let e = op(g, Op::Exp, &[same]);
        op(g, Op::Mul, &[e, back])
    });
}

#[test]
fn reductions() {
    let mut rng = Lcg(6);
    let axes_cases: [&[usize]; 5] = [&[], &[0], &[1], &[0, 2], &[2, 1, 0]];
    for axes in axes_cases {
        for reduce_max in [false, true] {
            let shape = rng.shape(3);
            let x = random(&mut rng, &shape);
            let axes = axes.to_vec();
            let o = if reduce_max {
                Op::ReduceMax { axes }
            } else {
                Op::Sum { axes }
            };
            check(o.name(), &mut rng, &[x], |g, x| op(g, o.clone(), &[x[0]]));
        }
    }
}

#[test]
fn layout_ops() {
    let mut rng = Lcg(7);
    for _ in 0..3 {
        let shape = rng.shape(3);
        let x = random(&mut rng, &shape);
        let flat = vec![shape[0] * shape[1], shape[2]];
        check("reshape", &mut rng, &[x], |g, x| {
            op(g, Op::Reshape { shape: flat }, &[x[0]])
        });

        let x = random(&mut rng, &shape);
        let mut perm = vec![0, 1, 2];
        perm.rotate_left(rng.int(1, 2));
        perm.swap(0, rng.int(0, 1));
        check("permute", &mut rng, &[x], |g, x| {
            op(g, Op::Permute { perm }, &[x[0]])
        });

        let axis = rng.int(0, 2);
        let start = rng.int(0, shape[axis] - 1);
        let end = rng.int(start, shape[axis]);
        let x = random(&mut rng, &shape);
        check("slice", &mut rng, &[x], |g, x| {
            op(g, Op::Slice { axis, start, end }, &[x[0]])
        });

        let (lo, hi) = (rng.int(0, 2), rng.int(0, 2));
        let x = random(&mut rng, &shape);
        check("pad", &mut rng, &[x], |g, x| {
            op(g, Op::Pad { axis, lo, hi }, &[x[0]])
        });

        let parts: Vec<Feed> = (0..3)
            .map(|_| {
                let mut s = shape.clone();
                s[axis] = rng.int(1, 3);
                random(&mut rng, &s)
            })
            .collect();
        // The first operand appears twice: its cotangent sums two slices.
        check("concat", &mut rng, &parts, |g, x| {
            op(g, Op::Concat { axis }, &[x[0], x[1], x[2], x[0]])
        });
    }
}

#[test]
fn matmuls() {
    let mut rng = Lcg(8);
    for batch in [vec![], vec![2], vec![2, 3]] {
        let (m, k, n) = (rng.int(1, 4), rng.int(1, 4), rng.int(1, 4));
        let a = random(&mut rng, &[batch.clone(), vec![m, k]].concat());
        let b = random(&mut rng, &[batch.clone(), vec![k, n]].concat());
        check("matmul", &mut rng, &[a, b], |g, x| {
            op(g, Op::MatMul, &[x[0], x[1]])
        });
    }
}

#[test]
fn unfold_and_fold() {
    let mut rng = Lcg(9);
    let windows = [(3, 1, 0, 1), (2, 2, 1, 1), (2, 1, 1, 2), (3, 2, 2, 2)];
    for (kernel, stride, padding, dilation) in windows {
        let w = Window {
            kernel,
            stride,
            padding,
            dilation,
        };
        let (b, c, h, wd) = (2, 2, rng.int(4, 6), rng.int(4, 6));
        let x = random(&mut rng, &[b, c, h, wd]);
        check("unfold", &mut rng, &[x], |g, x| {
            op(g, Op::Unfold(w), &[x[0]])
        });
        let (oh, ow) = (w.out_len(h).unwrap(), w.out_len(wd).unwrap());
        let cols = random(&mut rng, &[b, c * kernel * kernel, oh * ow]);
        check("fold", &mut rng, &[cols], |g, x| {
            op(
                g,
                Op::Fold {
                    window: w,
                    size: [h, wd],
                },
                &[x[0]],
            )
        });
    }
}

#[test]
fn gather_and_scatter_add_with_repeated_ids() {
    let mut rng = Lcg(10);
    let table = random(&mut rng, &[3, 2]);
    // Six draws from three rows repeat some.
    let i = ids(&mut rng, &[2, 3], 3);
    check("gather", &mut rng, &[table, i], |g, x| {
        op(g, Op::Gather, &[x[0], x[1]])
    });
    let i = feed(
        TensorType::new(DType::I32, vec![4]),
        vec![1.0, 0.0, 1.0, 1.0],
    );
    let updates = random(&mut rng, &[4, 2, 2]);
    check("scatter_add", &mut rng, &[i, updates], |g, x| {
        op(g, Op::ScatterAdd { rows: 3 }, &[x[0], x[1]])
    });
}

#[test]
fn fan_out() {
    let mut rng = Lcg(11);
    let x = random(&mut rng, &[3, 2]);
    let y = random(&mut rng, &[2]);
    check("fan-out", &mut rng, &[x, y], |g, x| {
        let xx = op(g, Op::Mul, &[x[0], x[0]]);
        let e = op(g, Op::Exp, &[x[0]]);
        let s = op(g, Op::Sub, &[xx, e]);
        let yb = op(g, Op::Broadcast { shape: vec![3, 2] }, &[x[1]]);
        let t = op(g, Op::Mul, &[s, yb]);
        let u = op(g, Op::Add, &[t, x[0]]);
        op(g, Op::Div, &[u, e])
    });
}

/// An RNN step `h' = sin(x·Wx + h·Wh) + 0.01·k`, `k' = k + 1`, emitting `h'²` per step:
/// a float carry, an i32 carry, a sequence and two constant weights.
fn rnn_body(b: usize, i: usize, h: usize) -> Graph {
    let mut g = Graph::new("rnn_step");
    let hc = g.input("h", Role::Arg, f64t(&[b, h]));
    let k = g.input("k", Role::Arg, TensorType::scalar(DType::I32));
    let x = g.input("x", Role::Arg, f64t(&[b, i]));
    let wx = g.input("wx", Role::Arg, f64t(&[i, h]));
    let wh = g.input("wh", Role::Arg, f64t(&[h, h]));
    let xw = op(&mut g, Op::MatMul, &[x, wx]);
    let hw = op(&mut g, Op::MatMul, &[hc, wh]);
    let pre = op(&mut g, Op::Add, &[xw, hw]);
    let act = op(&mut g, Op::Sin, &[pre]);
    let kf = op(&mut g, Op::Cast { to: DType::F64 }, &[k]);
    let scale = fill(&mut g, 0.01, f64t(&[]));
    let bias = op(&mut g, Op::Mul, &[kf, scale]);
    let bias = op(&mut g, Op::Broadcast { shape: vec![b, h] }, &[bias]);
    let next = op(&mut g, Op::Add, &[act, bias]);
    let one = fill(&mut g, 1.0, TensorType::scalar(DType::I32));
    let k1 = op(&mut g, Op::Add, &[k, one]);
    let y = op(&mut g, Op::Mul, &[next, next]);
    g.outputs = vec![
        Output::new("h", next, OutputRole::Value),
        Output::new("k", k1, OutputRole::Value),
        Output::new("y", y, OutputRole::Value),
    ];
    g
}

/// The RNN over `xs [T, B, I]` from `h0`: the scan node, and the final carry's projection stacked
/// on the per-step outputs, so that a loss reads both.
fn rnn(g: &mut Graph, x: &[ValueId], reverse: bool) -> (ValueId, ValueId) {
    let (h0, xs, wx, wh) = (x[0], x[1], x[2], x[3]);
    let [t, b, i] = g.ty(xs).shape[..] else {
        unreachable!()
    };
    let h = g.ty(h0).shape[1];
    let k0 = fill(g, 0.0, TensorType::scalar(DType::I32));
    let scan = Op::Scan {
        body: Box::new(rnn_body(b, i, h)),
        carries: 2,
        seqs: 1,
        reverse,
    };
    let s = op(g, scan, &[h0, k0, xs, wx, wh]);
    let last = op(g, Op::Get { index: 0 }, &[s]);
    let ys = op(g, Op::Get { index: 2 }, &[s]);
    // wh is also read outside the loop: its gradient sums both uses.
    let proj = op(g, Op::MatMul, &[last, wh]);
    let proj = op(
        g,
        Op::Reshape {
            shape: vec![1, b, h],
        },
        &[proj],
    );
    let out = op(g, Op::Concat { axis: 0 }, &[proj, ys]);
    assert_eq!(g.ty(out).shape, [t + 1, b, h]);
    (s, out)
}

fn rnn_feeds(rng: &mut Lcg, t: usize) -> Vec<Feed> {
    let (b, i, h) = (2, 3, 4);
    vec![
        random(rng, &[b, h]),
        random(rng, &[t, b, i]),
        random(rng, &[i, h]),
        random(rng, &[h, h]),
    ]
}

#[test]
fn scan_wrt_sequence_initial_carry_and_constants() {
    let mut rng = Lcg(12);
    let feeds = rnn_feeds(&mut rng, 5);
    check("scan", &mut rng, &feeds, |g, x| rnn(g, x, false).1);
}

#[test]
fn reverse_scan_in_the_forward_graph() {
    let mut rng = Lcg(13);
    let feeds = rnn_feeds(&mut rng, 4);
    check("reverse scan", &mut rng, &feeds, |g, x| rnn(g, x, true).1);
}

#[test]
fn scan_read_only_through_its_final_carry() {
    let mut rng = Lcg(14);
    let feeds = rnn_feeds(&mut rng, 3);
    check("scan final carry", &mut rng, &feeds, |g, x| {
        let (s, _) = rnn(g, x, false);
        op(g, Op::Get { index: 0 }, &[s])
    });
}

#[test]
fn scan_gradient_does_not_grow_with_length() {
    let size = |t: usize| {
        let mut rng = Lcg(15);
        let feeds = rnn_feeds(&mut rng, t);
        let p = problem(&mut rng, &feeds, |g, x| rnn(g, x, false).1);
        let mut g = p.graph;
        grad(&mut g, p.loss, &p.inputs);
        verify(&g).unwrap();
        g.size()
    };
    assert_eq!(size(8), size(64));
}

#[test]
fn max_ties_split_the_cotangent() {
    let a = [1.0, 2.0, 3.0, -1.0, 0.5, 0.5];
    let b = [1.0, 1.0, 4.0, -1.0, 0.5, 0.7];
    let w = [0.3, -0.2, 0.5, 0.9, -0.4, 0.6];
    for (o, wins_a) in [
        (Op::Max, [0.5, 1.0, 0.0, 0.5, 0.5, 0.0]),
        (Op::Min, [0.5, 0.0, 1.0, 0.5, 0.5, 1.0]),
    ] {
        let mut g = Graph::new("ties");
        let ty = f64t(&[6]);
        let x = g.input("a", Role::Param, ty.clone());
        let y = g.input("b", Role::Param, ty.clone());
        let wv = g.input("w", Role::Data, ty.clone());
        let m = op(&mut g, o.clone(), &[x, y]);
        let mw = op(&mut g, Op::Mul, &[m, wv]);
        let loss = sum_all(&mut g, mw);
        let d = grad(&mut g, loss, &[x, y]);
        verify(&g).unwrap();
        g.outputs = vec![
            Output::new("da", d[0], OutputRole::Value),
            Output::new("db", d[1], OutputRole::Value),
        ];
        let feeds = HashMap::from([
            ("a".to_string(), Tensor::from_f64(&ty, a.to_vec())),
            ("b".to_string(), Tensor::from_f64(&ty, b.to_vec())),
            ("w".to_string(), Tensor::from_f64(&ty, w.to_vec())),
        ]);
        let out = run(&g, &feeds);
        let da: Vec<f64> = w.iter().zip(wins_a).map(|(w, s)| w * s).collect();
        let db: Vec<f64> = w.iter().zip(wins_a).map(|(w, s)| w * (1.0 - s)).collect();
        assert_eq!(out["da"].to_f64(), da, "{}", o.name());
        assert_eq!(out["db"].to_f64(), db, "{}", o.name());
    }
}

#[test]
fn reduce_max_ties_share_the_cotangent() {
    // Rows: three-way tie, two-way tie, unique maximum.
    let x = [2.0, 2.0, 2.0, 1.0, 3.0, 0.0, 3.0, 1.0, 5.0, 4.0, 1.0, 0.0];
    let w = [0.6, -0.9, 0.3];
    let mut g = Graph::new("ties");
    let ty = f64t(&[3, 4]);
    let xv = g.input("x", Role::Param, ty.clone());
    let wv = g.input("w", Role::Data, f64t(&[3]));
    let m = op(&mut g, Op::ReduceMax { axes: vec![1] }, &[xv]);
    let mw = op(&mut g, Op::Mul, &[m, wv]);
    let loss = sum_all(&mut g, mw);
    let d = grad(&mut g, loss, &[xv]);
    verify(&g).unwrap();
    g.outputs = vec![Output::new("dx", d[0], OutputRole::Value)];
    let feeds = HashMap::from([
        ("x".to_string(), Tensor::from_f64(&ty, x.to_vec())),
        ("w".to_string(), Tensor::from_f64(&f64t(&[3]), w.to_vec())),
    ]);
    let got = run(&g, &feeds)["dx"].to_f64();
    let third = 0.6 / 3.0;
    let want = [
        third, third, third, 0.0, -0.45, 0.0, -0.45, 0.0, 0.3, 0.0, 0.0, 0.0,
    ];
    assert!(rel_error(&got, &want) < 1e-15, "{got:?} vs {want:?}");
}

#[test]
fn detach_blocks_the_gradient() {
    // loss = sum(x·x + detach(x)·z): d/dx = 2x, d/dz = x.
    let mut rng = Lcg(16);
    let xs = rng.values(4, -1.0, 1.0);
    let zs = rng.values(4, -1.0, 1.0);
    let ty = f64t(&[4]);
    let mut g = Graph::new("detach");
    let x = g.input("x", Role::Param, ty.clone());
    let z = g.input("z", Role::Param, ty.clone());
    let xx = op(&mut g, Op::Mul, &[x, x]);
    let dx = op(&mut g, Op::Detach, &[x]);
    let dz = op(&mut g, Op::Mul, &[dx, z]);
    let s = op(&mut g, Op::Add, &[xx, dz]);
    let loss = sum_all(&mut g, s);
    let d = grad(&mut g, loss, &[x, z]);
    verify(&g).unwrap();
    g.outputs = vec![
        Output::new("dx", d[0], OutputRole::Value),
        Output::new("dz", d[1], OutputRole::Value),
    ];
    let feeds = HashMap::from([
        ("x".to_string(), Tensor::from_f64(&ty, xs.clone())),
        ("z".to_string(), Tensor::from_f64(&ty, zs)),
    ]);
    let out = run(&g, &feeds);
    let twice: Vec<f64> = xs.iter().map(|x| 2.0 * x).collect();
    assert!(rel_error(&out["dx"].to_f64(), &twice) < 1e-15);
    assert!(rel_error(&out["dz"].to_f64(), &xs) < 1e-15);
}

/// `loss = sum(x·x) + sum(f(u))` where `f` is a chain of `depth` unary ops; differentiated wrt
/// `x` only. Returns the number of nodes `grad` appended.
fn backward_size_beside_unrelated_chain(depth: usize) -> usize {
    let ty = f64t(&[3]);
    let mut g = Graph::new("activity");
    let x = g.input("x", Role::Param, ty.clone());
    let u = g.input("u", Role::Param, ty.clone());
    let xx = op(&mut g, Op::Mul, &[x, x]);
    let sx = sum_all(&mut g, xx);
    let mut f = u;
    for _ in 0..depth {
        f = op(&mut g, Op::Sin, &[f]);
    }
    let su = sum_all(&mut g, f);
    let loss = op(&mut g, Op::Add, &[sx, su]);
    let before = g.nodes.len();
    grad(&mut g, loss, &[x]);
    verify(&g).unwrap();
    assert!(
        g.nodes[before..]
            .iter()
            .all(|n| !matches!(n.op, Op::Cos | Op::Sin)),
        "the chain through u was differentiated\n{}",
        text::print(&g)
    );
    g.nodes.len() - before
}

#[test]
fn activity_leaves_unrelated_nodes_alone() {
    assert_eq!(
        backward_size_beside_unrelated_chain(1),
        backward_size_beside_unrelated_chain(10)
    );
}

#[test]
fn gradient_of_an_unrelated_value_is_zero() {
    let mut g = Graph::new("unrelated");
    let x = g.input("x", Role::Param, f64t(&[2]));
    let y = g.input("y", Role::Param, f64t(&[3]));
    let n = g.input("n", Role::Data, TensorType::new(DType::I32, vec![2]));
    let loss = sum_all(&mut g, x);
    let d = grad(&mut g, loss, &[y, n, x]);
    verify(&g).unwrap();
    for (v, d) in [y, n].iter().zip(&d) {
        let node = g.node(*d);
        assert!(matches!(node.op, Op::Const { value, .. } if value == 0.0));
        assert_eq!(g.ty(*d), g.ty(*v));
    }
}

/// A scan whose body runs a scan over the rows of its slice: the inner loop's VJP is built
/// inside the outer loop's backward body.
#[test]
fn nested_scan() {
    let (t, b, i) = (3, 2, 3);
    let mut inner = Graph::new("row_step");
    let c = inner.input("c", Role::Arg, f64t(&[i]));
    let row = inner.input("row", Role::Arg, f64t(&[i]));
    let w = inner.input("w", Role::Arg, f64t(&[i]));
    let cw = op(&mut inner, Op::Mul, &[c, w]);
    let pre = op(&mut inner, Op::Add, &[cw, row]);
    let next = op(&mut inner, Op::Sin, &[pre]);
    let y = op(&mut inner, Op::Mul, &[next, row]);
    inner.outputs = vec![
        Output::new("c", next, OutputRole::Value),
        Output::new("y", y, OutputRole::Value),
    ];

    let mut outer = Graph::new("block_step");
    let h = outer.input("h", Role::Arg, f64t(&[i]));
    let x = outer.input("x", Role::Arg, f64t(&[b, i]));
    let w = outer.input("w", Role::Arg, f64t(&[i]));
    let scan = Op::Scan {
        body: Box::new(inner),
        carries: 1,
        seqs: 1,
        reverse: false,
    };
    let s = op(&mut outer, scan, &[h, x, w]);
    let next = op(&mut outer, Op::Get { index: 0 }, &[s]);
    let ys = op(&mut outer, Op::Get { index: 1 }, &[s]);
    let y = op(&mut outer, Op::Sum { axes: vec![0] }, &[ys]);
    outer.outputs = vec![
        Output::new("h", next, OutputRole::Value),
        Output::new("y", y, OutputRole::Value),
    ];

    let mut rng = Lcg(17);
    let feeds = [
        random(&mut rng, &[i]),
        random(&mut rng, &[t, b, i]),
        random(&mut rng, &[i]),
    ];
    check("nested scan", &mut rng, &feeds, |g, x| {
        let scan = Op::Scan {
            body: Box::new(outer),
            carries: 1,
            seqs: 1,
            reverse: false,
        };
        let s = op(g, scan, &[x[0], x[1], x[2]]);
        let last = op(g, Op::Get { index: 0 }, &[s]);
        let last = op(g, Op::Reshape { shape: vec![1, i] }, &[last]);
        let ys = op(g, Op::Get { index: 1 }, &[s]);
        op(g, Op::Concat { axis: 0 }, &[last, ys])
    });
}

/// Differentiating a graph whose scan was already extended by an earlier `grad` adds fresh
/// saved-carry outputs and gives the same gradients.
#[test]
fn scan_differentiated_twice() {
    let mut rng = Lcg(18);
    let feeds = rnn_feeds(&mut rng, 4);
    let p = problem(&mut rng, &feeds, |g, x| rnn(g, x, false).1);
    let mut g = p.graph.clone();
    let first = grad(&mut g, p.loss, &p.inputs);
    let second = grad(&mut g, p.loss, &p.inputs);
    verify(&g).unwrap();
    let outs = first.iter().chain(&second).enumerate();
    g.outputs = outs
        .map(|(k, &d)| Output::new(format!("d{k}"), d, OutputRole::Value))
        .collect();
    let out = run(&g, &p.feeds);
    let n = first.len();
    for k in 0..n {
        let (a, b) = (
            out[&format!("d{k}")].to_f64(),
            out[&format!("d{}", k + n)].to_f64(),
        );
        assert!(rel_error(&a, &b) < 1e-15);
    }
}

/// Casting to f32 and back: the cotangent is cast back at each step, so the gradient keeps the
/// input's dtype and is exact to f32 precision.
#[test]
fn cast_through_f32() {
    let mut rng = Lcg(19);
    let xs = rng.values(5, -1.0, 1.0);
    let ws = rng.values(5, -1.0, 1.0);
    let ty = f64t(&[5]);
    let mut g = Graph::new("cast");
    let x = g.input("x", Role::Param, ty.clone());
    let w = g.input("w", Role::Data, ty.clone());
    let narrow = op(&mut g, Op::Cast { to: DType::F32 }, &[x]);
    let e = op(&mut g, Op::Exp, &[narrow]);
    let wide = op(&mut g, Op::Cast { to: DType::F64 }, &[e]);
    let ew = op(&mut g, Op::Mul, &[wide, w]);
    let loss = sum_all(&mut g, ew);
    let d = grad(&mut g, loss, &[x]);
    verify(&g).unwrap();
    assert_eq!(g.ty(d[0]), &ty);
    g.outputs = vec![Output::new("dx", d[0], OutputRole::Value)];
    let feeds = HashMap::from([
        ("x".to_string(), Tensor::from_f64(&ty, xs.clone())),
        ("w".to_string(), Tensor::from_f64(&ty, ws.clone())),
    ]);
    let got = run(&g, &feeds)["dx"].to_f64();
    let want: Vec<f64> = xs.iter().zip(&ws).map(|(x, w)| w * x.exp()).collect();
    assert!(rel_error(&got, &want) < 1e-6, "{got:?} vs {want:?}");
}

/// The sample graph of a primitive (`ir::samples`) as a problem: its inputs fed by their names'
/// conventions, its output `y` weighted into the loss.
fn check_sample(what: &str, rng: &mut Lcg, sample: &Graph) -> Problem {
    let names: Vec<String> = sample.inputs().map(|(_, n, _)| n.to_string()).collect();
    let feeds: Vec<Feed> = sample
        .inputs()
        .map(|(v, name, _)| {
            let shape = sample.ty(v).shape.clone();
            let n = shape.iter().product();
            let fixed = |rng: &mut Lcg, dtype: DType, values: &dyn Fn(&mut Lcg) -> f64| {
                let values = (0..n).map(|_| values(rng)).collect();
                feed(TensorType::new(dtype, shape.clone()), values)
            };
            if name.starts_with("pos") {
                positive(rng, &shape)
            } else if name.starts_with("ids") {
                ids(rng, &shape, 3)
            } else if name.starts_with("cond") {
                fixed(rng, DType::Bool, &|r| f64::from(u8::from(r.next() < 0.5)))
            } else if name == "key" {
                fixed(rng, DType::I32, &|r| r.int(0, 1000) as f64)
            } else {
                random(rng, &shape)
            }
        })
        .collect();
    problem(rng, &feeds, |g, xs| {
        let outs = g
            .splice(sample, &|name| {
                names.iter().position(|n| n == name).map(|i| xs[i])
            })
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        outs[0].value
    })
}

/// Every differentiable primitive of the table, on its sample graph, against central
/// differences; through the others no gradient flows.
#[test]
fn every_differentiable_primitive_has_a_checked_vjp() {
    let mut rng = Lcg(12);
    for &prim in crate::ir::Prim::ALL {
        let info = prim.info();
        let sample = crate::ir::samples::sample(prim, DType::F64);
        let y = sample.output("y").expect("a sample's output");
        if !sample.ty(y).dtype.is_float() {
            assert!(!info.differentiable, "`{}` gives no float", info.name);
            continue;
        }
        let p = check_sample(info.name, &mut rng, &sample);
        let got = analytic(&p);
        // An input's gradient is its cotangent: it ends the chain rather than blocking it.
        if !info.differentiable {
            assert!(
                prim == crate::ir::Prim::Input || got.iter().flatten().all(|&d| d == 0.0),
                "a gradient flows through `{}`",
                info.name
            );
            continue;
        }
        let want = numeric(&p);
        for (i, (a, n)) in got.iter().zip(&want).enumerate() {
            let err = rel_error(a, n);
            assert!(
                err < 1e-6,
                "{}: gradient {i} off by {err:e}\nanalytic {a:?}\nnumeric  {n:?}\n{}",
                info.name,
                text::print(&p.graph)
            );
        }
    }
}

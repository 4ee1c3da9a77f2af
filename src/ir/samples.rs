//! One small graph per primitive, for the tests every primitive must pass: its text round trip
//! (`ir::text`), the JIT against the interpreter (`jit::tests`) and, for a differentiable one,
//! its VJP against finite differences (`grad::tests`). The match is exhaustive, so a new
//! primitive does not compile its tests until it has a sample.
//!
//! Inputs are named for the values a test may feed them: `x…` any float, `pos…` a positive float,
//! `ids…` row indices below 3, `cond…` bools, `key` the random key. The result is the output `y`.

use super::{DType, Dist, Graph, Loc, Op, OutputRole, Prim, Role, TensorType, ValueId, Window};

fn add(g: &mut Graph, op: Op, args: &[ValueId]) -> ValueId {
    g.add(op, args.to_vec(), Loc::default())
}

/// A graph with one node of `prim` (and what it needs), floats in `float`.
pub(crate) fn sample(prim: Prim, float: DType) -> Graph {
    let mut g = Graph::new(format!("sample {}", prim.info().name));
    let ty = |shape: &[usize]| TensorType::new(float, shape.to_vec());
    let y = {
        let g = &mut g;
        let mut input = |name: &str, t: TensorType| g.input(name, Role::Data, t);
        let x = input("x", ty(&[2, 3]));
        let x1 = input("x1", ty(&[2, 3]));
        let pos = input("pos", ty(&[2, 3]));
        let cond = input("cond", TensorType::new(DType::Bool, vec![2, 3]));
        let cond1 = input("cond1", TensorType::new(DType::Bool, vec![2, 3]));
        let key = input("key", TensorType::new(DType::I32, vec![2]));
        let x3 = input("x3", ty(&[2, 3, 4]));
        let row = input("row", ty(&[3]));
        let ids = input("ids", TensorType::new(DType::I32, vec![4]));
        let image = input("image", ty(&[1, 2, 4, 4]));
        let batch = input("batch", ty(&[2, 3, 4]));
        let window = Window {
            kernel: 2,
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        let rand = |dist| Op::Rand {
            dist,
            stream: 3,
            ty: ty(&[2, 3]),
        };
        match prim {
            Prim::Input => x,
            Prim::Const => add(
                g,
                Op::Const {
                    value: 0.5,
                    ty: ty(&[2, 3]),
                },
                &[],
            ),
            Prim::Iota => add(
                g,
                Op::Iota {
                    axis: 1,
                    ty: ty(&[2, 3]),
                },
                &[],
            ),
            Prim::RandUniform => add(g, rand(Dist::Uniform), &[key]),
            Prim::RandNormal => add(g, rand(Dist::Normal), &[key]),
            Prim::Log | Prim::Sqrt => add(g, prim.plain_op().expect("plain"), &[pos]),
            Prim::Neg
            | Prim::Exp
            | Prim::Sin
            | Prim::Cos
            | Prim::Erf
            | Prim::Tanh
            | Prim::Sigmoid
            | Prim::Detach
            | Prim::AllSum => add(g, prim.plain_op().expect("plain"), &[x]),
            Prim::Not => add(g, Op::Not, &[cond]),
            Prim::Cast => add(g, Op::Cast { to: DType::F64 }, &[x]),
            Prim::Add
            | Prim::Sub
            | Prim::Mul
            | Prim::Max
            | Prim::Min
            | Prim::Eq
            | Prim::Ne
            | Prim::Lt
            | Prim::Le
            | Prim::Gt
            | Prim::Ge => add(g, prim.plain_op().expect("plain"), &[x, x1]),
            Prim::Div => add(g, Op::Div, &[x, pos]),
            Prim::And => add(g, Op::And, &[cond, cond1]),
            Prim::Or => add(g, Op::Or, &[cond, cond1]),
            Prim::Select => add(g, Op::Select, &[cond, x, x1]),
            Prim::Sum => add(g, Op::Sum { axes: vec![0, 2] }, &[x3]),
            Prim::ReduceMax => add(g, Op::ReduceMax { axes: vec![1] }, &[x3]),
            Prim::Argmax => add(g, Op::Argmax { axis: 2 }, &[x3]),
            Prim::Reshape => add(g, Op::Reshape { shape: vec![3, 2] }, &[x]),
            Prim::Permute => add(
                g,
                Op::Permute {
                    perm: vec![2, 0, 1],
                },
                &[x3],
            ),
            Prim::Broadcast => add(g, Op::Broadcast { shape: vec![2, 3] }, &[row]),
            Prim::Slice => add(
                g,
                Op::Slice {
                    axis: 1,
                    start: 1,
                    end: 3,
                },
                &[x],
            ),
            Prim::Pad => add(
                g,
                Op::Pad {
                    axis: 0,
                    lo: 1,
                    hi: 2,
                },
                &[x],
            ),
            Prim::Concat => add(g, Op::Concat { axis: 1 }, &[x, x1, pos]),
            Prim::MatMul => {
                let left = add(
                    g,
                    Op::Reshape {
                        shape: vec![1, 2, 3],
                    },
                    &[x],
                );
                let left = add(
                    g,
                    Op::Broadcast {
                        shape: vec![2, 2, 3],
                    },
                    &[left],
                );
                add(g, Op::MatMul, &[left, batch])
            }
            Prim::Unfold => add(g, Op::Unfold(window), &[image]),
            Prim::Fold => {
                let cols = add(g, Op::Unfold(window), &[image]);
                let cols = add(g, Op::Mul, &[cols, cols]);
                add(
                    g,
                    Op::Fold {
                        window,
                        size: [4, 4],
                    },
                    &[cols],
                )
            }
            Prim::Gather => {
                let table = add(g, Op::Reshape { shape: vec![3, 2] }, &[x]);
                add(g, Op::Gather, &[table, ids])
            }
            Prim::ScatterAdd => {
                let rows = add(g, Op::Reshape { shape: vec![6, 4] }, &[x3]);
                let updates = add(
                    g,
                    Op::Slice {
                        axis: 0,
                        start: 0,
                        end: 4,
                    },
                    &[rows],
                );
                add(g, Op::ScatterAdd { rows: 3 }, &[ids, updates])
            }
            Prim::Scan | Prim::Get => {
                let xs = add(
                    g,
                    Op::Permute {
                        perm: vec![2, 0, 1],
                    },
                    &[x3],
                );
                let h0 = add(g, Op::Reshape { shape: vec![2, 3] }, &[x]);
                let scan = add(g, scan_op(float), &[h0, xs, x1]);
                let index = if prim == Prim::Get { 0 } else { 1 };
                add(g, Op::Get { index }, &[scan])
            }
        }
    };
    g.add_output("y", y, OutputRole::Value);
    g
}

/// A scan over 4 steps: carry `h` [2, 3], sequence slices [2, 3], a constant [2, 3]; the new
/// carry is tanh(h·x + c), which is also stacked.
fn scan_op(float: DType) -> Op {
    let ty = TensorType::new(float, vec![2, 3]);
    let mut body = Graph::new("cell");
    let h = body.input("h", Role::Arg, ty.clone());
    let x = body.input("x", Role::Arg, ty.clone());
    let c = body.input("c", Role::Arg, ty);
    let hx = add(&mut body, Op::Mul, &[h, x]);
    let sum = add(&mut body, Op::Add, &[hx, c]);
    let next = add(&mut body, Op::Tanh, &[sum]);
    body.add_output("h", next, OutputRole::Value);
    body.add_output("y", next, OutputRole::Value);
    Op::Scan {
        body: Box::new(body),
        carries: 1,
        seqs: 1,
        reverse: false,
    }
}

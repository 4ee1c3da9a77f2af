use super::*;
use crate::ir::{CmpOp, DType, Dist, Loc, Output, OutputRole, Role, TensorType, ValueId, Window};
use crate::tensor::random;

fn ty(dtype: DType, shape: &[usize]) -> TensorType {
    TensorType::new(dtype, shape.to_vec())
}

fn f32s(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::from_f64(&ty(DType::F32, shape), data.to_vec())
}

fn f64s(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::from_f64(&ty(DType::F64, shape), data.to_vec())
}

fn i32s(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::from_f64(&ty(DType::I32, shape), data.to_vec())
}

fn bools(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::from_f64(&ty(DType::Bool, shape), data.to_vec())
}

fn loc(line: u32) -> Loc {
    Loc {
        scope: "Net.layer".into(),
        file: "net.nnl".into(),
        line,
        col: 7,
    }
}

/// Feeds `args` to a graph `out = op(x0, x1, ..)`.
fn try_apply(op: Op, args: &[Tensor], opts: &Options) -> Result<Tensor, RunError> {
    let mut g = Graph::new("test");
    let mut inputs = HashMap::new();
    let mut ids = Vec::new();
    for (i, t) in args.iter().enumerate() {
        let name = format!("x{i}");
        ids.push(g.input(name.clone(), Role::Arg, t.ty()));
        inputs.insert(name, t.clone());
    }
    let out = g.add(op, ids, loc(1));
    g.add_output("out", out, OutputRole::Value);
    run(&g, &inputs, opts).map(|mut outs| outs.remove("out").expect("the output"))
}

fn apply(op: Op, args: &[Tensor]) -> Tensor {
    try_apply(op, args, &Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn values(op: Op, args: &[Tensor]) -> Vec<f64> {
    apply(op, args).to_f64()
}

/// Deterministic test data in [-1, 1).
fn noise(seed: i32, n: usize) -> Vec<f64> {
    let key = random::node_key(seed, 0, 0);
    (0..n)
        .map(|i| 2.0 * random::sample_f64(Dist::Uniform, key, i as u64) - 1.0)
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assert_close(a: f64, b: f64, tol: f64) {
    assert!(
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs())),
        "{a} vs {b}"
    );
}

#[test]
fn tensor_conversions() {
    let t = ty(DType::I32, &[2, 2]);
    assert_eq!(Tensor::zeros(&t).to_f64(), [0.0; 4]);
    let x = Tensor::from_f64(&t, vec![1.9, -1.9, 7.0, f64::NAN]);
    assert_eq!(x.ty(), t);
    assert_eq!(x.to_f64(), [1.0, -1.0, 7.0, 0.0]);
    assert_eq!(x.scalar(), None);
    let b = bools(&[3], &[0.0, 2.0, f64::NAN]);
    assert_eq!(b.to_f64(), [0.0, 1.0, 1.0]);
    assert_eq!(f32s(&[], &[2.5]).scalar(), Some(2.5));
    assert_eq!(f64s(&[1, 1], &[-3.0]).scalar(), Some(-3.0));
}

#[test]
#[should_panic(expected = "3 values for f32[2, 2]")]
fn from_f64_checks_the_length() {
    f32s(&[2, 2], &[1.0, 2.0, 3.0]);
}

#[test]
fn const_and_iota() {
    let c = apply(
        Op::Const {
            value: 1.5,
            ty: ty(DType::F32, &[2, 2]),
        },
        &[],
    );
    assert_eq!(c, f32s(&[2, 2], &[1.5; 4]));
    let iota = |axis| {
        values(
            Op::Iota {
                axis,
                ty: ty(DType::I32, &[2, 3]),
            },
            &[],
        )
    };
    assert_eq!(iota(0), [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    assert_eq!(iota(1), [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
}

#[test]
fn unary_ops() {
    let x = f64s(&[3], &[0.5, 1.0, 4.0]);
    let close = |op: Op, f: fn(f64) -> f64| {
        let got = values(op, std::slice::from_ref(&x));
        for (g, v) in got.iter().zip(x.to_f64()) {
            assert_eq!(*g, f(v));
        }
    };
    close(Op::Neg, |v| -v);
    close(Op::Exp, f64::exp);
    close(Op::Log, f64::ln);
    close(Op::Sqrt, f64::sqrt);
    close(Op::Sin, f64::sin);
    close(Op::Cos, f64::cos);
    close(Op::Detach, |v| v);
    let ints = i32s(&[2], &[5.0, f64::from(i32::MIN)]);
    assert_eq!(values(Op::Neg, &[ints]), [-5.0, f64::from(i32::MIN)]);
    assert_eq!(values(Op::Not, &[bools(&[2], &[1.0, 0.0])]), [0.0, 1.0]);
    // Negating a bool is refused by the shape rule, before any graph can hold it.
    let mut g = Graph::new("test");
    let b = g.input("b", Role::Arg, ty(DType::Bool, &[1]));
    let err = g.try_add(Op::Neg, vec![b], loc(1)).unwrap_err();
    assert!(err.contains("bool"), "{err}");
}

#[test]
fn tanh_and_sigmoid_are_accurate_and_finite_everywhere() {
    let xs: Vec<f64> = (-2000..=2000)
        .map(|i| f64::from(i) * 0.01)
        .chain([
            -1e30, -100.0, -0.1, -1e-30, 0.0, 1e-30, 0.09999, 0.1, 100.0, 1e30,
        ])
        .collect();
    let x32 = f32s(&[xs.len()], &xs);
    let sigmoid: fn(f64) -> f64 = |v| 1.0 / (1.0 + (-v).exp());
    let tanh: fn(f64) -> f64 = f64::tanh;
    for (op, f, tolerance) in [(Op::Tanh, tanh, 3e-7), (Op::Sigmoid, sigmoid, 2e-7)] {
        let got = values(op.clone(), std::slice::from_ref(&x32));
        for (g, v) in got.iter().zip(&xs) {
            let want = f(f64::from(*v as f32));
            assert!(
                (g - want).abs() <= tolerance * want.abs().max(1e-30) + 1e-45,
                "{}({v}) = {g}, want {want}",
                op.name()
            );
        }
    }
}

#[test]
fn f32_stays_f32() {
    let x = f32s(&[], &[16_777_216.0]);
    let one = f32s(&[], &[1.0]);
    let y = apply(Op::Add, &[x, one]);
    assert_eq!(y.ty(), ty(DType::F32, &[]));
    assert_eq!(y.scalar(), Some(16_777_216.0));
    let e = apply(Op::Exp, &[f32s(&[], &[1.0])]);
    assert_eq!(e.scalar(), Some(f64::from(1f32.exp())));
}

#[test]
fn casts() {
    let x = f32s(&[5], &[-1.7, 2.9, f64::NAN, 1e10, 0.0]);
    let to = |to, x: &Tensor| values(Op::Cast { to }, std::slice::from_ref(x));
    assert_eq!(
        to(DType::I32, &x),
        [-1.0, 2.0, 0.0, f64::from(i32::MAX), 0.0]
    );
    assert_eq!(to(DType::Bool, &x), [1.0, 1.0, 1.0, 1.0, 0.0]);
    let b = bools(&[2], &[1.0, 0.0]);
    assert_eq!(
        apply(Op::Cast { to: DType::F64 }, &[b]),
        f64s(&[2], &[1.0, 0.0])
    );
    let i = i32s(&[2], &[16_777_217.0, -3.0]);
    assert_eq!(to(DType::F32, &i), [16_777_216.0, -3.0]);
    assert_eq!(to(DType::F64, &f64s(&[1], &[0.1])), [0.1]);
    assert_eq!(to(DType::F32, &f64s(&[1], &[0.1])), [f64::from(0.1f32)]);
}

#[test]
fn arithmetic() {
    let a = f64s(&[2, 2], &[1.0, -2.0, 3.0, 8.0]);
    let b = f64s(&[2, 2], &[4.0, 5.0, -6.0, 0.5]);
    let ab = [a, b];
    assert_eq!(values(Op::Add, &ab), [5.0, 3.0, -3.0, 8.5]);
    assert_eq!(values(Op::Sub, &ab), [-3.0, -7.0, 9.0, 7.5]);
    assert_eq!(values(Op::Mul, &ab), [4.0, -10.0, -18.0, 4.0]);
    assert_eq!(values(Op::Div, &ab), [0.25, -0.4, -0.5, 16.0]);
    assert_eq!(values(Op::Max, &ab), [4.0, 5.0, 3.0, 8.0]);
    assert_eq!(values(Op::Min, &ab), [1.0, -2.0, -6.0, 0.5]);
    let zero = f64s(&[1], &[0.0]);
    assert_eq!(
        values(Op::Div, &[f64s(&[1], &[1.0]), zero]),
        [f64::INFINITY]
    );
}

#[test]
fn integer_division_rounds_down() {
    let a = i32s(&[5], &[7.0, -7.0, 7.0, -7.0, 6.0]);
    let b = i32s(&[5], &[2.0, 2.0, -2.0, -2.0, -3.0]);
    assert_eq!(values(Op::Div, &[a, b]), [3.0, -4.0, -4.0, 3.0, -2.0]);
    let min = i32s(&[1], &[f64::from(i32::MIN)]);
    let minus_one = i32s(&[1], &[-1.0]);
    assert_eq!(
        values(Op::Div, &[min.clone(), minus_one.clone()]),
        [f64::from(i32::MIN)]
    );
    assert_eq!(values(Op::Mul, &[min, minus_one]), [f64::from(i32::MIN)]);
    let err = try_apply(
        Op::Div,
        &[i32s(&[2], &[1.0, 2.0]), i32s(&[2], &[1.0, 0.0])],
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.message.contains("division by zero"), "{err}");
    assert_eq!((err.node, err.op), (Some(2), Some("div")));
}

#[test]
fn max_and_min_propagate_nan() {
    let a = f32s(&[3], &[f64::NAN, 1.0, f64::NAN]);
    let b = f32s(&[3], &[1.0, f64::NAN, f64::NAN]);
    for op in [Op::Max, Op::Min] {
        assert!(
            values(op, &[a.clone(), b.clone()])
                .iter()
                .all(|x| x.is_nan())
        );
    }
}

#[test]
fn comparisons_and_logic() {
    let a = f64s(&[4], &[1.0, 2.0, 3.0, f64::NAN]);
    let b = f64s(&[4], &[2.0, 2.0, 2.0, f64::NAN]);
    let cmp = |c| values(Op::Cmp(c), &[a.clone(), b.clone()]);
    assert_eq!(cmp(CmpOp::Eq), [0.0, 1.0, 0.0, 0.0]);
    assert_eq!(cmp(CmpOp::Ne), [1.0, 0.0, 1.0, 1.0]);
    assert_eq!(cmp(CmpOp::Lt), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(cmp(CmpOp::Le), [1.0, 1.0, 0.0, 0.0]);
    assert_eq!(cmp(CmpOp::Gt), [0.0, 0.0, 1.0, 0.0]);
    assert_eq!(cmp(CmpOp::Ge), [0.0, 1.0, 1.0, 0.0]);
    let p = bools(&[4], &[0.0, 0.0, 1.0, 1.0]);
    let q = bools(&[4], &[0.0, 1.0, 0.0, 1.0]);
    assert_eq!(
        values(Op::And, &[p.clone(), q.clone()]),
        [0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        values(Op::Or, &[p.clone(), q.clone()]),
        [0.0, 1.0, 1.0, 1.0]
    );
    assert_eq!(
        values(Op::Cmp(CmpOp::Lt), &[p.clone(), q]),
        [0.0, 1.0, 0.0, 0.0]
    );
    let x = i32s(&[4], &[1.0, 2.0, 3.0, 4.0]);
    let y = i32s(&[4], &[-1.0, -2.0, -3.0, -4.0]);
    assert_eq!(values(Op::Select, &[p, x, y]), [-1.0, -2.0, 3.0, 4.0]);
}

#[test]
fn reductions() {
    // x[i, j, k] = 100i + 10j + k over [2, 3, 4].
    let data: Vec<f64> = (0..24)
        .map(|n| f64::from(100 * (n / 12) + 10 * (n / 4 % 3) + n % 4))
        .collect();
    let x = f64s(&[2, 3, 4], &data);
    let sum = |axes: &[usize]| {
        apply(
            Op::Sum {
                axes: axes.to_vec(),
            },
            std::slice::from_ref(&x),
        )
    };
    // Over i and k: 4·(0 + 100) + 2·4·10j + 2·(0+1+2+3).
    assert_eq!(sum(&[2, 0]), f64s(&[3], &[412.0, 492.0, 572.0]));
    assert_eq!(
        sum(&[1]).to_f64(),
        [30.0, 33.0, 36.0, 39.0, 330.0, 333.0, 336.0, 339.0]
    );
    assert_eq!(sum(&[]), x);
    assert_eq!(sum(&[0, 1, 2]).scalar(), Some(data.iter().sum()));
    let max = apply(Op::ReduceMax { axes: vec![0, 1] }, std::slice::from_ref(&x));
    assert_eq!(max.to_f64(), [120.0, 121.0, 122.0, 123.0]);
    let ints = i32s(&[2, 2], &[-5.0, -7.0, 3.0, -1.0]);
    assert_eq!(
        values(Op::ReduceMax { axes: vec![1] }, std::slice::from_ref(&ints)),
        [-5.0, 3.0]
    );
    assert_eq!(values(Op::Sum { axes: vec![0] }, &[ints]), [-2.0, -8.0]);
    let nan = f32s(&[3], &[1.0, f64::NAN, 2.0]);
    assert!(values(Op::ReduceMax { axes: vec![0] }, &[nan])[0].is_nan());
}

#[test]
fn argmax_takes_the_first_maximum() {
    let x = f32s(&[2, 4], &[1.0, 3.0, 3.0, 2.0, 0.0, -1.0, 5.0, 5.0]);
    let argmax = |axis, x: &Tensor| apply(Op::Argmax { axis }, std::slice::from_ref(x));
    assert_eq!(argmax(1, &x), i32s(&[2], &[1.0, 2.0]));
    assert_eq!(argmax(0, &x).to_f64(), [0.0, 0.0, 1.0, 1.0]);
    let nan = f64s(&[4], &[1.0, f64::NAN, 9.0, f64::NAN]);
    assert_eq!(argmax(0, &nan).scalar(), Some(1.0));
    let ties = i32s(&[3], &[4.0, 4.0, 4.0]);
    assert_eq!(argmax(0, &ties).scalar(), Some(0.0));
}

#[test]
fn reshape_and_permute() {
    let data: Vec<f64> = (0..24).map(f64::from).collect();
    let x = f32s(&[2, 3, 4], &data);
    let r = apply(Op::Reshape { shape: vec![4, 6] }, std::slice::from_ref(&x));
    assert_eq!((r.ty().shape, r.to_f64()), (vec![4, 6], data.clone()));
    let p = apply(
        Op::Permute {
            perm: vec![2, 0, 1],
        },
        std::slice::from_ref(&x),
    );
    assert_eq!(p.ty().shape, [4, 2, 3]);
    let pv = p.to_f64();
    for i in 0..4 {
        for j in 0..2 {
            for k in 0..3 {
                // p[i, j, k] = x[j, k, i]
                assert_eq!(pv[i * 6 + j * 3 + k], data[j * 12 + k * 4 + i]);
            }
        }
    }
    // A reshape of a permuted value reads it in its new row-major order.
    let flat = apply(Op::Reshape { shape: vec![24] }, &[p]);
    assert_eq!(flat.to_f64(), pv);
}

#[test]
fn broadcast_aligns_right() {
    let row = f64s(&[3], &[1.0, 2.0, 3.0]);
    let b = |shape: &[usize], x: &Tensor| {
        apply(
            Op::Broadcast {
                shape: shape.to_vec(),
            },
            std::slice::from_ref(x),
        )
    };
    assert_eq!(b(&[2, 3], &row).to_f64(), [1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
    let col = f64s(&[2, 1], &[1.0, 2.0]);
    assert_eq!(b(&[2, 3], &col).to_f64(), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
    let one = f64s(&[1, 2, 1], &[5.0, 6.0]);
    let big = b(&[2, 2, 2], &one);
    assert_eq!(big.to_f64(), [5.0, 5.0, 6.0, 6.0, 5.0, 5.0, 6.0, 6.0]);
    assert_eq!(b(&[2, 2], &f64s(&[], &[7.0])).to_f64(), [7.0; 4]);
}

#[test]
fn slice_pad_concat() {
    let data: Vec<f64> = (0..6).map(f64::from).collect();
    let x = i32s(&[2, 3], &data);
    let s = apply(
        Op::Slice {
            axis: 1,
            start: 1,
            end: 3,
        },
        std::slice::from_ref(&x),
    );
    assert_eq!(s, i32s(&[2, 2], &[1.0, 2.0, 4.0, 5.0]));
    let p = apply(
        Op::Pad {
            axis: 0,
            lo: 1,
            hi: 2,
        },
        std::slice::from_ref(&x),
    );
    let mut want = vec![0.0; 3];
    want.extend(&data);
    want.extend([0.0; 6]);
    assert_eq!(p, i32s(&[5, 3], &want));
    let p1 = apply(
        Op::Pad {
            axis: 1,
            lo: 0,
            hi: 1,
        },
        std::slice::from_ref(&x),
    );
    assert_eq!(p1.to_f64(), [0.0, 1.0, 2.0, 0.0, 3.0, 4.0, 5.0, 0.0]);
    let y = i32s(&[2, 1], &[9.0, 8.0]);
    let c = apply(Op::Concat { axis: 1 }, &[y.clone(), x.clone(), y]);
    assert_eq!(
        c,
        i32s(&[2, 5], &[9.0, 0.0, 1.0, 2.0, 9.0, 8.0, 3.0, 4.0, 5.0, 8.0])
    );
    let c0 = apply(Op::Concat { axis: 0 }, &[x.clone(), x]);
    assert_eq!(c0.ty().shape, [4, 3]);
    assert_eq!(c0.to_f64()[6..], data[..]);
}

fn naive_matmul(a: &[f64], b: &[f64], batch: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; batch * m * n];
    for s in 0..batch {
        for i in 0..m {
            for j in 0..n {
                out[(s * m + i) * n + j] = (0..k)
                    .map(|l| a[(s * m + i) * k + l] * b[(s * k + l) * n + j])
                    .sum();
            }
        }
    }
    out
}

#[test]
fn matmul_with_batch_axes() {
    let (m, k, n) = (5, 7, 6);
    let a = noise(1, 2 * 3 * m * k);
    let b = noise(2, 2 * 3 * k * n);
    let want = naive_matmul(&a, &b, 6, m, k, n);
    let args = [f64s(&[2, 3, m, k], &a), f64s(&[2, 3, k, n], &b)];
    let got = apply(Op::MatMul, &args);
    assert_eq!(got.ty().shape, [2, 3, m, n]);
    for (g, w) in got.to_f64().iter().zip(&want) {
        assert_close(*g, *w, 1e-12);
    }
    let threaded = Options {
        threads: 2,
        ..Options::default()
    };
    assert_eq!(try_apply(Op::MatMul, &args, &threaded).unwrap(), got);
    let args32 = [f32s(&[2, 3, m, k], &a), f32s(&[2, 3, k, n], &b)];
    let got32 = apply(Op::MatMul, &args32);
    assert_eq!(got32.dtype(), DType::F32);
    for (g, w) in got32.to_f64().iter().zip(&want) {
        assert_close(*g, *w, 1e-5);
    }
    let plain = apply(
        Op::MatMul,
        &[
            f64s(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            f64s(&[2, 1], &[5.0, 6.0]),
        ],
    );
    assert_eq!(plain, f64s(&[2, 1], &[17.0, 39.0]));
    let empty = apply(Op::MatMul, &[f32s(&[2, 0], &[]), f32s(&[0, 3], &[])]);
    assert_eq!(empty, f32s(&[2, 3], &[0.0; 6]));
}

#[test]
fn unfold_by_hand() {
    let x = f64s(&[1, 1, 3, 3], &(1..=9).map(f64::from).collect::<Vec<_>>());
    let w = Window {
        kernel: 2,
        stride: 1,
        padding: 0,
        dilation: 1,
    };
    let cols = apply(Op::Unfold(w), std::slice::from_ref(&x));
    #[rustfmt::skip]
    let want = [
        1.0, 2.0, 4.0, 5.0,
        2.0, 3.0, 5.0, 6.0,
        4.0, 5.0, 7.0, 8.0,
        5.0, 6.0, 8.0, 9.0,
    ];
    assert_eq!(cols, f64s(&[1, 4, 4], &want));
    let w = Window {
        kernel: 2,
        stride: 2,
        padding: 1,
        dilation: 1,
    };
    // Windows start at -1 and 1 along each axis: rows (ki, kj), columns (oh, ow).
    let cols = apply(Op::Unfold(w), std::slice::from_ref(&x));
    #[rustfmt::skip]
    let want = [
        0.0, 0.0, 0.0, 5.0,
        0.0, 0.0, 4.0, 6.0,
        0.0, 2.0, 0.0, 8.0,
        1.0, 3.0, 7.0, 9.0,
    ];
    assert_eq!(cols, f64s(&[1, 4, 4], &want));
    let w = Window {
        kernel: 2,
        stride: 1,
        padding: 0,
        dilation: 2,
    };
    assert_eq!(
        apply(Op::Unfold(w), &[x]),
        f64s(&[1, 4, 1], &[1.0, 3.0, 7.0, 9.0])
    );
}

#[test]
fn fold_is_the_adjoint_of_unfold() {
    let windows = [
        (3, 2, 1, 1),
        (2, 1, 0, 2),
        (3, 3, 2, 2),
        (1, 1, 0, 1),
        (2, 2, 0, 1),
    ];
    let (b, c, h, w) = (2, 3, 7, 6);
    for (seed, (kernel, stride, padding, dilation)) in windows.into_iter().enumerate() {
        let win = Window {
            kernel,
            stride,
            padding,
            dilation,
        };
        let x = noise(10 + seed as i32, b * c * h * w);
        let cols = apply(Op::Unfold(win), &[f64s(&[b, c, h, w], &x)]);
        let shape = cols.ty().shape;
        let y = noise(20 + seed as i32, shape.iter().product());
        let folded = apply(
            Op::Fold {
                window: win,
                size: [h, w],
            },
            &[f64s(&shape, &y)],
        );
        assert_eq!(folded.ty().shape, [b, c, h, w]);
        assert_close(dot(&folded.to_f64(), &x), dot(&y, &cols.to_f64()), 1e-12);
    }
    // Overlaps are summed: every pixel of a 3×3 image is in as many 2×2 windows as it touches.
    let ones = f64s(&[1, 4, 4], &[1.0; 16]);
    let win = Window {
        kernel: 2,
        stride: 1,
        padding: 0,
        dilation: 1,
    };
    let counts = apply(
        Op::Fold {
            window: win,
            size: [3, 3],
        },
        &[ones],
    );
    assert_eq!(
        counts.to_f64(),
        [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]
    );
}

#[test]
fn gather_and_scatter_add() {
    let table = f32s(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let ids = i32s(&[2, 2], &[2.0, 0.0, 2.0, 1.0]);
    let g = apply(Op::Gather, &[table.clone(), ids.clone()]);
    assert_eq!(
        g,
        f32s(&[2, 2, 2], &[5.0, 6.0, 1.0, 2.0, 5.0, 6.0, 3.0, 4.0])
    );
    let updates = f32s(&[2, 2, 2], &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
    let s = apply(Op::ScatterAdd { rows: 4 }, &[ids.clone(), updates]);
    assert_eq!(s, f32s(&[4, 2], &[2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 0.0, 0.0]));
    let scalar_rows = apply(Op::Gather, &[i32s(&[3], &[7.0, 8.0, 9.0]), ids]);
    assert_eq!(scalar_rows.to_f64(), [9.0, 7.0, 9.0, 8.0]);
}

#[test]
fn scatter_add_is_the_adjoint_of_gather() {
    let (v, d) = (5, 3);
    let ids = i32s(&[4, 2], &[0.0, 4.0, 4.0, 1.0, 3.0, 3.0, 4.0, 0.0]);
    let t = noise(3, v * d);
    let u = noise(4, 8 * d);
    let gathered = apply(Op::Gather, &[f64s(&[v, d], &t), ids.clone()]);
    let scattered = apply(Op::ScatterAdd { rows: v }, &[ids, f64s(&[4, 2, d], &u)]);
    assert_close(
        dot(&scattered.to_f64(), &t),
        dot(&u, &gathered.to_f64()),
        1e-12,
    );
}

#[test]
fn bad_ids_are_errors() {
    let table = f32s(&[3, 2], &[0.0; 6]);
    let ids = i32s(&[2, 2], &[0.0, 1.0, 3.0, 2.0]);
    let err = try_apply(Op::Gather, &[table, ids.clone()], &Options::default()).unwrap_err();
    assert_eq!((err.node, err.op), (Some(2), Some("gather")));
    assert!(err.message.contains("id 3 at [1, 0]"), "{err}");
    let negative = i32s(&[1], &[-1.0]);
    let updates = f64s(&[1], &[1.0]);
    let err = try_apply(
        Op::ScatterAdd { rows: 3 },
        &[negative, updates],
        &Options::default(),
    )
    .unwrap_err();
    assert!(err.message.contains("id -1"), "{err}");
    assert_eq!(err.op, Some("scatter_add"));
}

/// A scan with carry `c`, sequences `x` and `w`, and constant `s`:
/// `c' = c + x·s`, per-step outputs `c'` and `w − x`.
fn scan_graph(reverse: bool, steps: usize) -> Graph {
    let v2 = ty(DType::F64, &[2]);
    let mut body = Graph::new("step");
    let c = body.input("c", Role::Arg, v2.clone());
    let x = body.input("x", Role::Arg, v2.clone());
    let w = body.input("w", Role::Arg, v2.clone());
    let s = body.input("s", Role::Arg, v2.clone());
    let xs = body.add(Op::Mul, vec![x, s], loc(2));
    let next = body.add(Op::Add, vec![c, xs], loc(2));
    let diff = body.add(Op::Sub, vec![w, x], loc(3));
    body.outputs = vec![
        Output::new("c", next, OutputRole::Value),
        Output::new("y", next, OutputRole::Value),
        Output::new("d", diff, OutputRole::Value),
    ];

    let mut g = Graph::new("outer");
    let c0 = g.input("c0", Role::Arg, v2.clone());
    let xs = g.input("xs", Role::Arg, ty(DType::F64, &[steps, 2]));
    let ws = g.input("ws", Role::Arg, ty(DType::F64, &[steps, 2]));
    let s = g.input("s", Role::Arg, v2);
    let scan = Op::Scan {
        body: Box::new(body),
        carries: 1,
        seqs: 2,
        reverse,
    };
    let r = g.add(scan, vec![c0, xs, ws, s], loc(1));
    for (i, name) in ["final", "ys", "ds"].into_iter().enumerate() {
        let part = g.add(Op::Get { index: i }, vec![r], loc(1));
        g.add_output(name, part, OutputRole::Value);
    }
    g
}

fn scan_inputs() -> HashMap<String, Tensor> {
    let xs: Vec<f64> = (1..=8).map(f64::from).collect();
    HashMap::from([
        ("c0".into(), f64s(&[2], &[100.0, 200.0])),
        ("xs".into(), f64s(&[4, 2], &xs)),
        ("ws".into(), f64s(&[4, 2], &[10.0; 8])),
        ("s".into(), f64s(&[2], &[1.0, 10.0])),
    ])
}

#[test]
fn scan_forward() {
    let out = run(&scan_graph(false, 4), &scan_inputs(), &Options::default()).unwrap();
    // xs rows: [1, 2], [3, 4], [5, 6], [7, 8]; prefix sums scaled by [1, 10].
    assert_eq!(out["final"], f64s(&[2], &[116.0, 400.0]));
    #[rustfmt::skip]
    let ys = [101.0, 220.0, 104.0, 260.0, 109.0, 320.0, 116.0, 400.0];
    assert_eq!(out["ys"], f64s(&[4, 2], &ys));
    let ds: Vec<f64> = (1..=8).map(|i| 10.0 - f64::from(i)).collect();
    assert_eq!(out["ds"], f64s(&[4, 2], &ds));
}

#[test]
fn scan_reverse_stores_step_t_at_t() {
    let out = run(&scan_graph(true, 4), &scan_inputs(), &Options::default()).unwrap();
    assert_eq!(out["final"], f64s(&[2], &[116.0, 400.0]));
    // Suffix sums: step t sees rows t..4.
    #[rustfmt::skip]
    let ys = [116.0, 400.0, 115.0, 380.0, 112.0, 340.0, 107.0, 280.0];
    assert_eq!(out["ys"], f64s(&[4, 2], &ys));
    let ds: Vec<f64> = (1..=8).map(|i| 10.0 - f64::from(i)).collect();
    assert_eq!(out["ds"], f64s(&[4, 2], &ds));
}

#[test]
fn scan_of_no_steps() {
    let mut inputs = scan_inputs();
    inputs.insert("xs".into(), f64s(&[0, 2], &[]));
    inputs.insert("ws".into(), f64s(&[0, 2], &[]));
    for reverse in [false, true] {
        let out = run(&scan_graph(reverse, 0), &inputs, &Options::default()).unwrap();
        assert_eq!(out["final"], inputs["c0"]);
        assert_eq!(out["ys"], f64s(&[0, 2], &[]));
    }
}

fn rand_graph(dist: Dist, dtype: DType, n: usize, stream: u32) -> Graph {
    let mut g = Graph::new("rand");
    let key = g.input("key", Role::Rng, ty(DType::I32, &[2]));
    let r = g.add(
        Op::Rand {
            dist,
            stream,
            ty: ty(dtype, &[n]),
        },
        vec![key],
        loc(1),
    );
    g.add_output("r", r, OutputRole::Value);
    g
}

fn draw(dist: Dist, dtype: DType, n: usize, stream: u32, key: [f64; 2]) -> Vec<f64> {
    let inputs = HashMap::from([("key".into(), i32s(&[2], &key))]);
    let g = rand_graph(dist, dtype, n, stream);
    let mut out = run(&g, &inputs, &Options::default()).unwrap();
    out.remove("r").unwrap().to_f64()
}

#[test]
fn random_numbers_are_counter_based() {
    for dist in [Dist::Uniform, Dist::Normal] {
        for dtype in [DType::F32, DType::F64] {
            let a = draw(dist, dtype, 1000, 3, [42.0, 7.0]);
            assert_eq!(a, draw(dist, dtype, 1000, 3, [42.0, 7.0]));
            // Element i depends on i, not on the size of the tensor.
            assert_eq!(a[..10], draw(dist, dtype, 10, 3, [42.0, 7.0])[..]);
            for other in [
                draw(dist, dtype, 1000, 4, [42.0, 7.0]),
                draw(dist, dtype, 1000, 3, [42.0, 8.0]),
                draw(dist, dtype, 1000, 3, [43.0, 7.0]),
            ] {
                let same = a.iter().zip(&other).filter(|(x, y)| x == y).count();
                assert!(same < 5, "{same} equal draws");
            }
        }
    }
    // The interpreter's numbers are the documented formula's.
    let key = random::node_key(-5, 9, 2);
    let got = draw(Dist::Normal, DType::F32, 4, 2, [-5.0, 9.0]);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            *g,
            f64::from(random::sample_f32(Dist::Normal, key, i as u64))
        );
    }
    let u = 2.0 * random::sample_f64(Dist::Uniform, key, 0) - 1.0;
    assert_eq!(
        u,
        2.0 * ((random::bits(key, 0) >> 11) as f64 / (1u64 << 53) as f64) - 1.0
    );
}

fn moments(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn random_moments() {
    let n = 100_000;
    for dtype in [DType::F32, DType::F64] {
        let u = draw(Dist::Uniform, dtype, n, 0, [1.0, 1.0]);
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
        let (mean, std) = moments(&u);
        assert!((mean - 0.5).abs() < 0.005, "uniform mean {mean}");
        assert!(
            (std - (1.0f64 / 12.0).sqrt()).abs() < 0.005,
            "uniform std {std}"
        );
        let z = draw(Dist::Normal, dtype, n, 1, [1.0, 1.0]);
        assert!(z.iter().all(|x| x.is_finite()));
        let (mean, std) = moments(&z);
        assert!(mean.abs() < 0.015, "normal mean {mean}");
        assert!((std - 1.0).abs() < 0.015, "normal std {std}");
        let within = z.iter().filter(|x| x.abs() < 1.0).count() as f64 / n as f64;
        assert!((within - 0.6827).abs() < 0.01, "{within} within one std");
    }
}

/// `out = exp(log(neg(x)))`, each node on its own line.
fn log_graph() -> Graph {
    let mut g = Graph::new("nan");
    let x = g.input("x", Role::Data, ty(DType::F32, &[2]));
    let n = g.add(Op::Neg, vec![x], loc(10));
    let l = g.add(Op::Log, vec![n], loc(11));
    let e = g.add(Op::Exp, vec![l], loc(12));
    g.add_output("out", e, OutputRole::Value);
    g
}

fn checked() -> Options {
    Options {
        check_finite: true,
        threads: 0,
    }
}

#[test]
fn check_finite_names_the_log_of_a_negative_number() {
    let g = log_graph();
    let inputs = HashMap::from([("x".into(), f32s(&[2], &[-1.0, 2.0]))]);
    let out = run(&g, &inputs, &Options::default()).unwrap();
    assert!(out["out"].to_f64()[1].is_nan());
    let err = run(&g, &inputs, &checked()).unwrap_err();
    assert_eq!((err.node, err.op), (Some(2), Some("log")));
    assert_eq!(err.loc, Some(loc(11)));
    assert!(err.message.contains("NaN at [1]"), "{err}");
    assert_eq!(
        err.to_string(),
        "%2 = log (Net.layer @ net.nnl:11:7): made NaN at [1] from finite operands"
    );
    // A non-finite input is reported at the input, not downstream.
    let bad = HashMap::from([("x".into(), f32s(&[2], &[f64::INFINITY, -1.0]))]);
    let err = run(&g, &bad, &checked()).unwrap_err();
    assert_eq!((err.node, err.op), (Some(0), Some("input")));
    assert!(err.message.contains("input `x` holds inf at [0]"), "{err}");
}

#[test]
fn check_finite_exempts_constants_and_follows_them() {
    let mut g = Graph::new("mask");
    let x = g.input("x", Role::Data, ty(DType::F64, &[2]));
    let c = g.add(
        Op::Const {
            value: f64::NEG_INFINITY,
            ty: ty(DType::F64, &[2]),
        },
        vec![],
        loc(1),
    );
    let m = g.add(Op::Max, vec![x, c], loc(2));
    let big = g.add(Op::Exp, vec![m], loc(3));
    g.add_output("out", big, OutputRole::Value);
    let small = HashMap::from([("x".into(), f64s(&[2], &[1.0, 2.0]))]);
    assert!(run(&g, &small, &checked()).is_ok());
    let huge = HashMap::from([("x".into(), f64s(&[2], &[1.0, 1000.0]))]);
    let err = run(&g, &huge, &checked()).unwrap_err();
    assert_eq!((err.node, err.op), (Some(3), Some("exp")));
    assert!(err.message.contains("inf at [1]"), "{err}");
}

#[test]
fn check_finite_looks_inside_scan_bodies() {
    let v = ty(DType::F32, &[]);
    let mut body = Graph::new("step");
    let c = body.input("c", Role::Arg, v.clone());
    let x = body.input("x", Role::Arg, v.clone());
    let l = body.add(Op::Log, vec![x], loc(21));
    let next = body.add(Op::Add, vec![c, l], loc(22));
    body.outputs = vec![Output::new("c", next, OutputRole::Value)];
    let mut g = Graph::new("outer");
    let c0 = g.input("c0", Role::Arg, v);
    let xs = g.input("xs", Role::Arg, ty(DType::F32, &[4]));
    let scan = Op::Scan {
        body: Box::new(body),
        carries: 1,
        seqs: 1,
        reverse: false,
    };
    let r = g.add(scan, vec![c0, xs], loc(20));
    let last = g.add(Op::Get { index: 0 }, vec![r], loc(20));
    g.add_output("c", last, OutputRole::Value);
    let inputs = HashMap::from([
        ("c0".into(), f32s(&[], &[0.0])),
        ("xs".into(), f32s(&[4], &[1.0, 2.0, -3.0, 4.0])),
    ]);
    let err = run(&g, &inputs, &checked()).unwrap_err();
    assert_eq!((err.node, err.op), (Some(2), Some("log")));
    assert_eq!(err.loc, Some(loc(21)));
    assert!(err.message.contains("step 2 of the scan %2"), "{err}");
    let out = run(&g, &inputs, &Options::default()).unwrap();
    assert!(out["c"].scalar().unwrap().is_nan());
}

#[test]
fn inputs_are_checked() {
    let g = log_graph();
    let err = run(&g, &HashMap::new(), &Options::default()).unwrap_err();
    assert_eq!((err.node, err.op), (Some(0), Some("input")));
    assert!(err.message.contains("missing input `x` (f32[2])"), "{err}");
    let wrong = HashMap::from([("x".into(), f64s(&[2], &[1.0, 2.0]))]);
    let err = run(&g, &wrong, &Options::default()).unwrap_err();
    assert!(
        err.message
            .contains("input `x` is f64[2] but the graph expects f32[2]"),
        "{err}"
    );
    let shape = HashMap::from([("x".into(), f32s(&[3], &[1.0, 2.0, 3.0]))]);
    assert!(run(&g, &shape, &Options::default()).is_err());
}

#[test]
fn invalid_graphs_are_errors() {
    let mut g = log_graph();
    g.add_output("dangling", ValueId(99), OutputRole::Value);
    let err = run(&g, &HashMap::new(), &Options::default()).unwrap_err();
    assert!(err.message.starts_with("invalid graph"), "{err}");
}

#[test]
fn every_output_is_returned() {
    let mut g = Graph::new("two");
    let x = g.input("x", Role::Data, ty(DType::F64, &[2]));
    let n = g.add(Op::Neg, vec![x], loc(1));
    g.add_output("x", x, OutputRole::Value);
    g.add_output("neg", n, OutputRole::Value);
    g.add_output("neg again", n, OutputRole::Value);
    let inputs = HashMap::from([
        ("x".into(), f64s(&[2], &[1.0, -2.0])),
        ("unused".into(), f64s(&[], &[0.0])),
    ]);
    let out = run(&g, &inputs, &Options::default()).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out["x"], f64s(&[2], &[1.0, -2.0]));
    assert_eq!(out["neg"], f64s(&[2], &[-1.0, 2.0]));
    assert_eq!(out["neg again"], out["neg"]);
}

//! The JIT against the reference interpreter, op by op: every dtype, awkward values (NaN, ±∞,
//! −0, integer extremes), lengths that are not a multiple of the vector width, strided views,
//! and the planner's special cases (outputs that are inputs, constants or shared). Results must
//! be bit-identical (a NaN matches any NaN), except where noted.

use super::compile;
use crate::interp::{self, Options, Tensor};
use crate::ir::{DType, Graph, text};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

const FLOATS: [f64; 14] = [
    0.5,
    -1.25,
    3.0,
    -0.0,
    0.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    1e-30,
    7.5,
    -2.5,
    100.0,
    0.1,
    -40.0,
];
const INTS: [i32; 9] = [0, 1, -1, 7, -13, i32::MAX, i32::MIN, 3, 2];

/// Deterministic inputs of every awkward kind; an input named `ids…` holds valid row indices
/// (0, 1 or 2).
fn inputs(g: &Graph) -> HashMap<String, Tensor> {
    g.inputs()
        .map(|(v, name, _)| {
            let ty = g.ty(v);
            let n = ty.numel();
            // A stride coprime with both tables, so neighbouring elements differ.
            let pick = |i: usize, len: usize| (i * 5 + name.len()) % len;
            let shape = IxDyn(&ty.shape);
            let t = match ty.dtype {
                DType::F32 => Tensor::F32(
                    ArrayD::from_shape_vec(
                        shape,
                        (0..n)
                            .map(|i| FLOATS[pick(i, FLOATS.len())] as f32)
                            .collect(),
                    )
                    .expect("sized"),
                ),
                DType::F64 => Tensor::F64(
                    ArrayD::from_shape_vec(
                        shape,
                        (0..n).map(|i| FLOATS[pick(i, FLOATS.len())]).collect(),
                    )
                    .expect("sized"),
                ),
                DType::I32 if name.starts_with("ids") => Tensor::I32(
                    ArrayD::from_shape_vec(shape, (0..n).map(|i| (i % 3) as i32).collect())
                        .expect("sized"),
                ),
                DType::I32 => Tensor::I32(
                    ArrayD::from_shape_vec(
                        shape,
                        (0..n).map(|i| INTS[pick(i, INTS.len())]).collect(),
                    )
                    .expect("sized"),
                ),
                DType::Bool => Tensor::Bool(
                    ArrayD::from_shape_vec(shape, (0..n).map(|i| i % 3 == 1).collect())
                        .expect("sized"),
                ),
            };
            (name.to_string(), t)
        })
        .collect()
}

fn bits(t: &Tensor) -> Vec<u64> {
    match t {
        Tensor::F32(a) => a
            .iter()
            .map(|x| {
                if x.is_nan() {
                    u64::MAX
                } else {
                    u64::from(x.to_bits())
                }
            })
            .collect(),
        Tensor::F64(a) => a
            .iter()
            .map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() })
            .collect(),
        Tensor::I32(a) => a.iter().map(|&x| x as u32 as u64).collect(),
        Tensor::Bool(a) => a.iter().map(|&x| u64::from(x)).collect(),
    }
}

/// Runs the graph written in `text` on both backends and compares every output.
fn same(text: &str) {
    same_on(text, 1);
}

/// `same`, the JIT running on `threads` threads.
fn same_on(text: &str, threads: usize) {
    let g = text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let inputs = inputs(&g);
    let want = interp::run(&g, &inputs, &Options::default()).expect("the interpreter runs it");
    let program = compile(&g).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let got = program
        .run(&|n| inputs.get(n), threads)
        .expect("the JIT runs it");
    assert_eq!(got.len(), want.len());
    for (name, w) in &want {
        let x = &got[name];
        assert_eq!(x.ty(), w.ty(), "output `{name}` of\n{text}");
        assert_eq!(
            bits(x),
            bits(w),
            "output `{name}`: {x:?}\nwant {w:?}\nof\n{text}"
        );
    }
}

#[test]
fn unary_float_ops_match_on_every_awkward_value() {
    for ty in ["f32[7]", "f64[3, 5]", "f32[2, 9]"] {
        for op in ["neg", "exp", "log", "sqrt", "sin", "cos", "tanh", "sigmoid"] {
            same(&format!(
                "graph t {{\n  %0: {ty} = input \"x\" data\n  %1: {ty} = {op} %0\n  output \"y\" = %1\n}}"
            ));
        }
    }
}

#[test]
fn vector_exp_matches_the_interpreters_over_its_whole_range() {
    // 205,001 inputs from −110 to 95: both clamps, subnormal results, overflow to ∞, and every
    // lane position of the vector loop; then the specials at each lane.
    let n = 205_001;
    let mut xs: Vec<f32> = (0..n).map(|i| -110.0 + i as f32 * 1e-3).collect();
    for special in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        f32::MAX,
        f32::MIN,
    ] {
        xs.extend([special, 0.5, 0.5, 0.5, 0.5, special, 0.5, 0.5, special]);
    }
    let len = xs.len();
    let g = text::parse(&format!(
        "graph t {{\n  %0: f32[{len}] = input \"x\" data\n  %1: f32[{len}] = exp %0\n  output \"y\" = %1\n}}"
    ))
    .expect("parses");
    let x = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[len]), xs).expect("sized"));
    let inputs = HashMap::from([("x".to_string(), x)]);
    let want = interp::run(&g, &inputs, &Options::default()).expect("the interpreter runs it");
    let got = compile(&g)
        .expect("compiles")
        .run(&|n| inputs.get(n), 1)
        .expect("the JIT runs it");
    assert_eq!(bits(&got["y"]), bits(&want["y"]));
}

#[test]
fn sixteen_lane_kernels_match_the_interpreter() {
    // With AVX-512, kernels with an exponential run on sixteen lanes (`jit::wide`): every op
    // they compute, sigmoid and tanh spelled out by their recipes, rows whose length leaves a
    // partial tile and a partial vector (77), broadcast loads, several outputs, an update in
    // place, and the same split between threads.
    let mixed = "graph t {\n  %0: f32[5, 77] = input \"a\" data\n  %1: f32[5, 77] = input \"bb\" data\n  \
         %2: f32[5, 1] = input \"c\" data\n  %3: f32[5, 77] = broadcast %2\n  \
         %4: f32[5, 77] = exp %0\n  %5: f32[5, 77] = sigmoid %1\n  %6: f32[5, 77] = tanh %0\n  \
         %7: f32[5, 77] = max %4, %1\n  %8: f32[5, 77] = min %5, %3\n  %9: f32[5, 77] = div %7, %8\n  \
         %10: f32[5, 77] = sqrt %6\n  %11: bool[5, 77] = lt %0, %1\n  %12: bool[5, 77] = ne %0, %3\n  \
         %13: bool[5, 77] = and %11, %12\n  %14: bool[5, 77] = not %13\n  \
         %15: f32[5, 77] = select %14, %9, %10\n  %16: f32[5, 77] = neg %15\n  \
         %17: f32[5, 77] = cast %13\n  %18: bool[5, 77] = cast %16\n  %19: bool[5, 77] = or %18, %11\n  \
         %20: f32[5, 77] = cast %19\n  %21: f32[5, 77] = sub %17, %20\n  %22: f32[5, 77] = mul %21, %16\n  \
         output \"y\" = %22\n  output \"t\" = %6\n  output \"s\" = %5\n}";
    for threads in [1, 2] {
        same_on(mixed, threads);
    }
    let (_, plan) = kernel_count(mixed);
    let wide = cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx512f");
    assert_eq!(plan.contains("16 lanes"), wide, "{plan}");
    // sigmoid and tanh over their whole range, the Taylor branch's edge, and the specials.
    let mut xs: Vec<f32> = (0..40_001).map(|i| -100.0 + i as f32 * 5e-3).collect();
    xs.extend([
        0.1,
        -0.1,
        0.099_999_99,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        1e-30,
    ]);
    let len = xs.len();
    for op in ["sigmoid", "tanh"] {
        let g = text::parse(&format!(
            "graph t {{\n  %0: f32[{len}] = input \"x\" data\n  %1: f32[{len}] = {op} %0\n  output \"y\" = %1\n}}"
        ))
        .expect("parses");
        let x = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[len]), xs.clone()).expect("sized"));
        let inputs = HashMap::from([("x".to_string(), x)]);
        let want = interp::run(&g, &inputs, &Options::default()).expect("the interpreter runs it");
        let got = compile(&g)
            .expect("compiles")
            .run(&|n| inputs.get(n), 1)
            .expect("the JIT runs it");
        assert_eq!(bits(&got["y"]), bits(&want["y"]), "{op}");
    }
}

#[test]
fn sixteen_lane_divisions_and_kernels_of_many_buffers_match_the_interpreter() {
    // With AVX-512, a square root and a division over one long run of positions (Adam's
    // update) run on sixteen lanes, with a partial last vector; so does a kernel reading more
    // buffers than its code keeps addresses of in registers (the others are read from the
    // table where they are used), with two outputs.
    let update = "graph t {\n  %0: f32[1003] = input \"m\" data\n  %1: f32[1003] = input \"v\" data\n  \
         %2: f32[1003] = input \"p\" data\n  %3: f32[1003] = sqrt %1\n  \
         %4: f32[1003] = const 0.00000001\n  %5: f32[1003] = add %3, %4\n  \
         %6: f32[1003] = div %0, %5\n  %7: f32[1003] = sub %2, %6\n  output \"p2\" = %7\n}";
    let inputs: Vec<String> = (0..13)
        .map(|i| format!("  %{i}: f32[3, 40] = input \"a{i}\" data\n"))
        .collect();
    let mut sums = vec!["  %13: f32[3, 40] = exp %0\n".to_string()];
    sums.extend((1..13).map(|i| format!("  %{}: f32[3, 40] = add %{}, %{i}\n", 13 + i, 12 + i)));
    let many = format!(
        "graph t {{\n{}{}  output \"y\" = %25\n  output \"e\" = %13\n}}",
        inputs.concat(),
        sums.concat()
    );
    let wide = cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx512f");
    for text in [update, many.as_str()] {
        for threads in [1, 2] {
            same_on(text, threads);
        }
        let (_, plan) = kernel_count(text);
        assert_eq!(plan.contains("16 lanes"), wide, "{plan}");
    }
}

#[test]
fn binary_ops_match_for_floats_and_wrapping_integers() {
    for ty in ["f32[13]", "f64[6]", "i32[11]"] {
        for op in ["add", "sub", "mul", "max", "min"] {
            same(&format!(
                "graph t {{\n  %0: {ty} = input \"a\" data\n  %1: {ty} = input \"bb\" data\n  \
                 %2: {ty} = {op} %0, %1\n  output \"y\" = %2\n}}"
            ));
        }
    }
    same(
        "graph t {\n  %0: f32[9] = input \"a\" data\n  %1: f32[9] = input \"bb\" data\n  \
         %2: f32[9] = div %0, %1\n  output \"y\" = %2\n}",
    );
}

#[test]
fn max_and_min_match_on_every_pair_of_awkward_values_and_against_constant_zeros() {
    // Every ordered pair (a NaN on either side, ±0 both ways, equal values), vectors and their
    // scalar tail; `max(x, 0.0)` (a ReLU) has a code path of its own, and `-0.0` must not take
    // it.
    let n = FLOATS.len() * FLOATS.len();
    let pairs = |first: bool| -> Vec<f32> {
        (0..n)
            .map(|i| {
                FLOATS[if first {
                    i / FLOATS.len()
                } else {
                    i % FLOATS.len()
                }] as f32
            })
            .collect()
    };
    let ty = format!("f32[{n}]");
    for op in ["max", "min"] {
        for zero in ["0.0", "-0.0"] {
            let text = format!(
                "graph t {{\n  %0: {ty} = input \"a\" data\n  %1: {ty} = input \"b\" data\n  \
                 %2: {ty} = {op} %0, %1\n  %3: {ty} = const {zero}\n  %4: {ty} = {op} %0, %3\n  \
                 %5: {ty} = {op} %3, %0\n  output \"pair\" = %2\n  output \"second\" = %4\n  \
                 output \"first\" = %5\n}}"
            );
            let g = text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let tensor = |v: Vec<f32>| Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[n]), v).unwrap());
            let inputs = HashMap::from([
                ("a".to_string(), tensor(pairs(true))),
                ("b".to_string(), tensor(pairs(false))),
            ]);
            let want = interp::run(&g, &inputs, &Options::default()).expect("interpreted");
            let got = compile(&g)
                .expect("compiles")
                .run(&|n| inputs.get(n), 1)
                .expect("runs");
            for (name, w) in &want {
                assert_eq!(bits(&got[name]), bits(w), "output `{name}` of\n{text}");
            }
        }
    }
}

#[test]
fn integer_division_by_zero_is_the_interpreters_error() {
    let g = text::parse(
        "graph t {\n  %0: i32[9] = input \"a\" data\n  %1: i32[9] = input \"bb\" data\n  \
         %2: i32[9] = div %0, %1\n  output \"y\" = %2\n}",
    )
    .unwrap();
    let inputs = inputs(&g);
    let want = interp::run(&g, &inputs, &Options::default()).unwrap_err();
    let got = compile(&g).unwrap().run(&|n| inputs.get(n), 1).unwrap_err();
    assert_eq!(got, want);
}

#[test]
fn comparisons_logic_and_select_match_for_every_dtype() {
    for ty in ["f32", "f64", "i32", "bool"] {
        for op in ["eq", "ne", "lt", "le", "gt", "ge"] {
            same(&format!(
                "graph t {{\n  %0: {ty}[10] = input \"a\" data\n  %1: {ty}[10] = input \"bb\" data\n  \
                 %2: bool[10] = {op} %0, %1\n  %3: {ty}[10] = select %2, %0, %1\n  \
                 output \"c\" = %2\n  output \"s\" = %3\n}}"
            ));
        }
    }
    same(
        "graph t {\n  %0: bool[9] = input \"a\" data\n  %1: bool[9] = input \"bb\" data\n  \
         %2: bool[9] = and %0, %1\n  %3: bool[9] = or %0, %2\n  %4: bool[9] = not %3\n  \
         output \"y\" = %4\n}",
    );
}

#[test]
fn casts_match_between_every_pair_of_dtypes() {
    for from in ["f32", "f64", "i32", "bool"] {
        for to in ["f32", "f64", "i32", "bool"] {
            same(&format!(
                "graph t {{\n  %0: {from}[14] = input \"x\" data\n  %1: {to}[14] = cast %0\n  \
                 output \"y\" = %1\n}}"
            ));
        }
    }
}

#[test]
fn vectorized_masks_and_casts_match() {
    // f32 kernels with comparisons, logic, select, max/min and a bool→f32 cast run four lanes
    // at a time, with a scalar tail (length 18).
    same(
        "graph t {\n  %0: f32[18] = input \"a\" data\n  %1: f32[18] = input \"bb\" data\n  \
         %2: bool[18] = lt %0, %1\n  %3: bool[18] = ge %0, %1\n  %4: bool[18] = or %2, %3\n  \
         %5: bool[18] = not %4\n  %6: f32[18] = select %5, %0, %1\n  %7: f32[18] = max %6, %1\n  \
         %8: f32[18] = min %7, %0\n  %9: f32[18] = cast %2\n  %10: f32[18] = add %8, %9\n  \
         %11: f32[18] = exp %10\n  output \"y\" = %11\n}",
    );
    // Each mask read once, so the whole chain is one vectorized loop.
    same(
        "graph t {\n  %0: f32[18] = input \"a\" data\n  %1: f32[18] = input \"bb\" data\n  \
         %2: bool[18] = lt %0, %1\n  %3: f32[18] = cast %2\n  %4: f32[18] = add %3, %0\n  \
         %5: bool[18] = ge %0, %1\n  %6: bool[18] = not %5\n  %7: f32[18] = select %6, %4, %1\n  \
         %8: bool[18] = cast %7\n  %9: bool[18] = eq %0, %0\n  %10: bool[18] = and %8, %9\n  \
         %11: f32[18] = cast %10\n  %12: f32[18] = neg %1\n  %13: f32[18] = max %11, %12\n  \
         output \"y\" = %13\n}",
    );
}

#[test]
fn vectorized_bool_loads_and_stores_match() {
    // Stored masks read four at a time (contiguous, and broadcast along the last axis), and
    // comparisons stored four at a time, each with a scalar tail.
    same(
        "graph t {\n  %0: bool[2, 18] = input \"c\" data\n  %1: f32[2, 18] = input \"a\" data\n  \
         %2: f32[2, 18] = input \"bb\" data\n  %3: f32[2, 18] = select %0, %1, %2\n  \
         %4: bool[2, 1] = input \"k\" data\n  %5: bool[2, 18] = broadcast %4\n  \
         %6: f32[2, 18] = select %5, %3, %1\n  %7: bool[2, 18] = lt %1, %2\n  \
         %8: bool[2, 18] = and %7, %0\n  %9: bool[2, 18] = not %0\n  \
         output \"s\" = %6\n  output \"m\" = %8\n  output \"n\" = %9\n}",
    );
}

#[test]
fn single_axis_reductions_fold_in_the_interpreters_order() {
    for ty in ["f32", "i32", "f64"] {
        for op in ["sum", "reduce_max"] {
            for (axes, out) in [("[0]", "[5, 6]"), ("[1]", "[4, 6]"), ("[2]", "[4, 5]")] {
                same(&format!(
                    "graph t {{\n  %0: {ty}[4, 5, 6] = input \"x\" data\n  \
                     %1: {ty}{out} = {op} %0 axes={axes}\n  output \"y\" = %1\n}}"
                ));
            }
        }
    }
}

#[test]
fn reductions_over_several_axes_fold_in_the_interpreters_order() {
    // Runs of the trailing reduced axes, in eight partial results; the runs in order.
    same(
        "graph t {\n  %0: i32[4, 5, 6] = input \"x\" data\n  %1: i32[5] = sum %0 axes=[0,2]\n  \
         %2: i32[] = sum %0 axes=[0,1,2]\n  %3: f32[4, 5, 6] = input \"f\" data\n  \
         %4: f32[4] = reduce_max %3 axes=[1,2]\n  %5: f32[5] = sum %3 axes=[0,2]\n  \
         %6: f32[] = sum %3 axes=[0,1,2]\n  %7: f32[4, 1, 6] = input \"u\" data\n  \
         %8: f32[1] = sum %7 axes=[0,2]\n  %9: f64[4, 5, 6] = input \"d\" data\n  \
         %10: f64[5] = sum %9 axes=[0,2]\n  %11: f32[3, 4, 26, 26] = input \"g\" data\n  \
         %12: f32[4] = sum %11 axes=[0,2,3]\n  \
         output \"a\" = %1\n  output \"b\" = %2\n  output \"c\" = %4\n  output \"e\" = %5\n  \
         output \"s\" = %6\n  output \"unit\" = %8\n  output \"f64\" = %10\n  output \"bias\" = %12\n}",
    );
}

#[test]
fn inner_runs_fold_eight_partial_results_at_every_length() {
    // Vector runs (f32: two vectors, a vector and lanes of tail) and element-by-element runs
    // (f64, i32) of every length around the vector widths, NaN, ±∞ and −0 included.
    for n in 1..=19 {
        for (ty, op) in [
            ("f32", "sum"),
            ("f32", "reduce_max"),
            ("f64", "sum"),
            ("i32", "sum"),
        ] {
            same(&format!(
                "graph t {{\n  %0: {ty}[3, {n}] = input \"x\" data\n  %1: {ty}[3] = {op} %0 axes=[1]\n  \
                 %2: {ty}[] = {op} %0 axes=[0,1]\n  output \"rows\" = %1\n  output \"all\" = %2\n}}"
            ));
        }
    }
}

#[test]
fn pooling_windows_fold_unrolled() {
    // Max pooling's reduction: short reduced axes leave the loop nest and are folded inline.
    same(
        "graph t {\n  %0: f32[2, 3, 4, 2, 5, 2] = input \"x\" data\n  \
         %1: f32[2, 3, 4, 5] = reduce_max %0 axes=[3,5]\n  \
         %2: i32[2, 3, 4, 2, 5, 2] = input \"n\" data\n  %3: i32[2, 3, 4, 5] = sum %2 axes=[3,5]\n  \
         %4: f32[7, 3] = input \"s\" data\n  %5: f32[7] = sum %4 axes=[1]\n  \
         output \"max\" = %1\n  output \"sum\" = %3\n  output \"row\" = %5\n}",
    );
}

/// Max pooling of `bias + relu` over 2×2 windows of `[2, 3, n, n]`, forward and backward (the
/// gradient split among a window's tied maxima), as the planner receives it from the grad.
fn max_pooling(n: usize) -> String {
    let h = n / 2;
    let full = format!("2, 3, {n}, {n}");
    let windows = format!("2, 3, {h}, 2, {h}, 2");
    let ones = format!("2, 3, {h}, 1, {h}, 1");
    let pooled = format!("2, 3, {h}, {h}");
    format!(
        "graph t {{\n  %0: f32[{full}] = input \"x\" data\n  %1: f32[3] = input \"bias\" data\n  \
         %2: f32[3, 1, 1] = reshape %1\n  %3: f32[{full}] = broadcast %2\n  \
         %4: f32[{full}] = add %0, %3\n  %5: f32[{full}] = const 0.0\n  \
         %6: f32[{full}] = max %4, %5\n  %7: f32[{windows}] = reshape %6\n  \
         %8: f32[{pooled}] = reduce_max %7 axes=[3,5]\n  %9: f32[{ones}] = reshape %8\n  \
         %10: f32[{windows}] = broadcast %9\n  %11: bool[{windows}] = eq %7, %10\n  \
         %12: f32[{windows}] = cast %11\n  %13: f32[{pooled}] = sum %12 axes=[3,5]\n  \
         %14: f32[{pooled}] = input \"g\" data\n  %15: f32[{pooled}] = div %14, %13\n  \
         %16: f32[{ones}] = reshape %15\n  %17: f32[{windows}] = broadcast %16\n  \
         %18: f32[{windows}] = mul %17, %12\n  %19: f32[{full}] = reshape %18\n  \
         output \"pooled\" = %8\n  output \"grad\" = %19\n}}"
    )
}

#[test]
fn max_pooling_forward_and_backward_on_sixteen_lanes_match_the_interpreter() {
    // With AVX-512, pooling's kernels run on sixteen lanes (`jit::wide`): the window's maxima
    // and the count of its ties fold the window unrolled, reading every other element; the
    // gradient's routing reads each window's gradient twice over. Rows of 5 and 13 positions
    // (one partial vector) and of 34 (two whole vectors and a partial one), on 1–3 threads;
    // on the shared awkward values (NaN, infinities, signed zeros) and on finite values with
    // many ties, so that a wrong position or order shows.
    let wide = cfg!(target_arch = "x86_64") && std::arch::is_x86_feature_detected!("avx512f");
    for n in [10, 26, 68] {
        let text = max_pooling(n);
        let g = text::parse(&text).expect("parses");
        let mut tied = inputs(&g);
        for (seed, (_, t)) in tied.iter_mut().enumerate() {
            let Tensor::F32(a) = t else {
                unreachable!("f32 inputs")
            };
            for (i, x) in a.iter_mut().enumerate() {
                *x = ((i * 7919 + seed * 31) % 13) as f32 * 0.5 - 3.0;
            }
        }
        let want = interp::run(&g, &tied, &Options::default()).expect("the interpreter runs it");
        for threads in [1, 2, 3] {
            same_on(&text, threads);
            let got = compile(&g)
                .expect("compiles")
                .run(&|name| tied.get(name), threads)
                .expect("the JIT runs it");
            for name in ["pooled", "grad"] {
                assert_eq!(
                    bits(&got[name]),
                    bits(&want[name]),
                    "{name}, {n}, {threads}"
                );
            }
        }
        let (_, plan) = kernel_count(&text);
        let pooling_kernels = plan
            .lines()
            .filter(|l| l.contains("kernel [2, 3,") && l.contains(", 2, "))
            .collect::<Vec<_>>();
        assert!(pooling_kernels.len() >= 3, "{plan}");
        for line in pooling_kernels {
            assert_eq!(line.contains("16 lanes"), wide, "{line}\n{plan}");
        }
    }
}

#[test]
fn every_other_element_is_read_at_every_length() {
    // A view with a stride of two (a pooling window's row, an odd or even column) is read four
    // lanes at a time by two loads and a shuffle; the odd column ends at the buffer's last element.
    for n in [1, 3, 4, 5, 7, 8, 9, 13] {
        same(&format!(
            "graph t {{\n  %0: f32[3, {n}, 2] = input \"x\" data\n  \
             %1: f32[3, {n}] = reduce_max %0 axes=[2]\n  \
             %2: f32[3, {n}, 1] = slice %0 axis=2 start=1 end=2\n  \
             %3: f32[3, {n}] = reshape %2\n  %4: f32[3, {n}] = mul %3, %1\n  \
             output \"max\" = %1\n  output \"odd\" = %4\n}}"
        ));
    }
}

#[test]
fn views_are_read_through_their_strides() {
    // permute, broadcast, slice and reshape copy nothing; the loops read through them.
    same(
        "graph t {\n  %0: f32[3, 4] = input \"x\" data\n  %1: f32[4, 3] = permute %0 perm=[1,0]\n  \
         %2: f32[4] = input \"b\" data\n  %3: f32[3, 4] = broadcast %2\n  \
         %4: f32[3, 4] = permute %1 perm=[1,0]\n  %5: f32[3, 4] = add %4, %3\n  \
         %6: f32[3, 2] = slice %5 axis=1 start=1 end=3\n  %7: f32[6] = reshape %6\n  \
         %8: f32[2, 3] = reshape %7\n  %9: f32[2, 3] = mul %8, %8\n  \
         output \"y\" = %9\n  output \"t\" = %1\n}",
    );
}

#[test]
fn matmul_reads_transposed_and_batched_operands_in_place() {
    same(
        "graph t {\n  %0: f32[2, 5, 3] = input \"a\" data\n  %1: f32[2, 3, 5] = permute %0 perm=[0,2,1]\n  \
         %2: f32[2, 5, 4] = input \"bb\" data\n  %3: f32[2, 3, 4] = matmul %1, %2\n  \
         %4: f64[6, 7] = input \"c\" data\n  %5: f64[7, 6] = permute %4 perm=[1,0]\n  \
         %6: f64[6, 6] = matmul %4, %5\n  output \"y\" = %3\n  output \"z\" = %6\n}",
    );
}

#[test]
fn pad_concat_iota_and_constants_match() {
    same(
        "graph t {\n  %0: f32[2, 3] = input \"x\" data\n  %1: f32[2, 6] = pad %0 axis=1 lo=1 hi=2\n  \
         %2: i32[2, 3] = iota axis=1\n  %3: f32[2, 3] = cast %2\n  \
         %4: f32[2, 3] = const 2.5\n  %5: f32[2, 3] = mul %3, %4\n  \
         %6: f32[2, 12] = concat %1, %5, %0 axis=1\n  %7: bool[4] = const 1.0\n  \
         output \"y\" = %6\n  output \"k\" = %7\n}",
    );
}

#[test]
fn a_pad_of_a_pad_writes_one_buffer_zeroed_once() {
    // Pooling's gradient pads a window's columns, then its rows: the inner pad's expression is
    // stored straight into the outer pad's buffer (one zero-fill and one store, not a second
    // buffer copied over), whatever the axes and margins; three pads deep as well.
    let chain = "graph t {\n  %0: f32[3, 4, 5] = input \"x\" data\n  %1: f32[3, 4, 5] = const 2.0\n  \
         %2: f32[3, 4, 5] = mul %0, %1\n  %3: f32[3, 4, 7] = pad %2 axis=2 lo=2 hi=0\n  \
         %4: f32[3, 6, 7] = pad %3 axis=1 lo=0 hi=2\n  %5: f32[4, 6, 7] = pad %4 axis=0 lo=1 hi=0\n  \
         output \"y\" = %5\n}";
    same(chain);
    assert_eq!(kernel_count(chain).0, 2, "{}", kernel_count(chain).1);
    // Padding the same axis twice.
    same(
        "graph t {\n  %0: f32[2, 3] = input \"x\" data\n  %1: f32[2, 5] = pad %0 axis=1 lo=1 hi=1\n  \
         %2: f32[2, 8] = pad %1 axis=1 lo=3 hi=0\n  output \"y\" = %2\n}",
    );
    // An inner pad that is an output, or read by more than the outer pad, has its own buffer.
    for extra in [
        "output \"inner\" = %1",
        "%3: f32[2, 5] = neg %1\n  output \"n\" = %3",
    ] {
        same(&format!(
            "graph t {{\n  %0: f32[2, 3] = input \"x\" data\n  %1: f32[2, 5] = pad %0 axis=1 lo=1 hi=1\n  \
             %2: f32[4, 5] = pad %1 axis=0 lo=1 hi=1\n  output \"y\" = %2\n  {extra}\n}}"
        ));
    }
}

#[test]
fn unfold_and_fold_match_in_place_and_through_the_library() {
    for (dtype, stride, positions) in [("f32", 1, 25), ("f64", 2, 9)] {
        same(&format!(
            "graph t {{\n  %0: {dtype}[2, 3, 5, 5] = input \"x\" data\n  \
             %1: {dtype}[2, 27, {positions}] = unfold %0 kernel=3 stride={stride} padding=1 dilation=1\n  \
             %2: {dtype}[2, 3, 5, 5] = fold %1 kernel=3 stride={stride} padding=1 dilation=1 size=[5,5]\n  \
             output \"cols\" = %1\n  output \"back\" = %2\n}}"
        ));
    }
    // Enough images (batch × channels) to be split between threads, in uneven parts.
    for threads in [2, 3] {
        same_on(
            "graph t {\n  %0: f32[7, 5, 6, 6] = input \"x\" data\n  \
             %1: f32[7, 45, 16] = unfold %0 kernel=3 stride=1 padding=0 dilation=1\n  \
             %2: f32[7, 5, 6, 6] = fold %1 kernel=3 stride=1 padding=0 dilation=1 size=[6,6]\n  \
             output \"cols\" = %1\n  output \"back\" = %2\n}",
            threads,
        );
    }
    // A permuted operand is not row-major: the library call copies it first.
    same(
        "graph t {\n  %0: f32[2, 5, 5, 3] = input \"x\" data\n  %1: f32[2, 3, 5, 5] = permute %0 perm=[0,3,1,2]\n  \
         %2: f32[2, 12, 16] = unfold %1 kernel=2 stride=1 padding=0 dilation=1\n  output \"cols\" = %2\n}",
    );
}

#[test]
fn outputs_that_are_inputs_or_shared_are_copies() {
    same(
        "graph t {\n  %0: f32[5] = input \"x\" data\n  %1: f32[5] = neg %0\n  \
         output \"same\" = %0\n  output \"a\" = %1\n  output \"b\" = %1\n}",
    );
}

#[test]
fn library_ops_and_empty_tensors_match() {
    same(
        "graph t {\n  %0: f32[3, 4] = input \"table\" data\n  %1: i32[5] = input \"ids\" data\n  \
         %2: f32[5, 4] = gather %0, %1\n  %3: i32[5] = argmax %2 axis=1\n  \
         %4: f32[0, 3] = input \"e\" data\n  %5: f32[0, 3] = exp %4\n  %6: f32[3] = sum %4 axes=[0]\n  \
         output \"g\" = %2\n  output \"m\" = %3\n  output \"e\" = %5\n  output \"s\" = %6\n}",
    );
}

#[test]
fn scans_run_their_compiled_body_forward_and_backward() {
    for direction in ["", " reverse"] {
        same(&format!(
            "graph t {{\n  %0: f32[2] = input \"h\" data\n  %1: f32[4, 2] = input \"xs\" data\n  \
             %2: f32[2] = input \"w\" data\n  \
             %3: (f32[2], f32[4, 2]) = scan %0, %1, %2 carries=1 seqs=1{direction} body=body {{\n    \
             %0: f32[2] = input \"carry.0\" arg\n    %1: f32[2] = input \"x\" arg\n    \
             %2: f32[2] = input \"capture.0\" arg\n    %3: f32[2] = mul %0, %2\n    \
             %4: f32[2] = add %3, %1\n    %5: f32[2] = sin %4\n    \
             output \"carry.0\" = %5\n    output \"y\" = %4\n  }}\n  \
             %4: f32[2] = get %3 index=0\n  %5: f32[4, 2] = get %3 index=1\n  \
             output \"h\" = %4\n  output \"ys\" = %5\n}}"
        ));
    }
}

/// A recurrence over 5 steps of a batch of 24 rows: a product with a weight, a kernel with
/// `exp`, a sum over each row; `batch_sum` adds a sum over the batch to the carry.
fn batch_scan(batch_sum: bool) -> String {
    let n = if batch_sum { 10 } else { 7 };
    let (mix, out) = if batch_sum {
        (
            "%7: f32[8] = sum %6 axes=[0]\n    %8: f32[24, 8] = broadcast %7\n    \
             %9: f32[24, 8] = add %6, %8\n    ",
            "%9",
        )
    } else {
        ("", "%6")
    };
    format!(
        "graph t {{\n  %0: f32[24, 8] = input \"h\" data\n  %1: f32[5, 24, 8] = input \"xs\" data\n  \
         %2: f32[8, 8] = input \"w\" data\n  \
         %3: (f32[24, 8], f32[5, 24]) = scan %0, %1, %2 carries=1 seqs=1 reverse body=body {{\n    \
         %0: f32[24, 8] = input \"carry.0\" arg\n    %1: f32[24, 8] = input \"x\" arg\n    \
         %2: f32[8, 8] = input \"capture.0\" arg\n    %3: f32[24, 8] = matmul %0, %2\n    \
         %4: f32[24, 8] = add %3, %1\n    %5: f32[24, 8] = neg %4\n    \
         %6: f32[24, 8] = exp %5\n    {mix}%{n}: f32[24] = sum %6 axes=[1]\n    \
         output \"carry.0\" = {out}\n    output \"y\" = %{n}\n  }}\n  \
         %4: f32[24, 8] = get %3 index=0\n  %5: f32[5, 24] = get %3 index=1\n  \
         output \"h\" = %4\n  output \"ys\" = %5\n}}"
    )
}

#[test]
fn scans_over_batch_rows_split_between_threads_and_match() {
    for batch_sum in [false, true] {
        let text = batch_scan(batch_sum);
        let g = text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let program = compile(&g).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let split = program
            .body_of_step
            .iter()
            .flatten()
            .any(|b| b.rows.is_some());
        assert_eq!(
            split, !batch_sum,
            "whether the body splits by rows:\n{text}"
        );
        for threads in [1, 2, 3] {
            same_on(&text, threads);
        }
    }
}

#[test]
fn kernels_and_products_split_between_threads_match() {
    // Large enough to be split: elementwise with a vector tail in each part, reductions whose
    // outer axis is kept (split) or folded (not split), a pooling window, iota, a batch of
    // products (whole products per thread) and one product (split by gemm).
    let graphs = [
        "%0: f32[3, 65539] = input \"a\" data\n  %1: f32[3, 65539] = exp %0\n  \
         %2: f32[3, 65539] = add %1, %0\n  output \"y\" = %2",
        "%0: f32[517, 300] = input \"a\" data\n  %1: f32[517] = sum %0 axes=[1]\n  \
         output \"y\" = %1",
        "%0: f32[300, 517] = input \"a\" data\n  %1: f32[517] = reduce_max %0 axes=[0]\n  \
         output \"y\" = %1",
        "%0: f32[64, 32, 13, 2, 13, 2] = input \"a\" data\n  \
         %1: f32[64, 32, 13, 13] = reduce_max %0 axes=[3,5]\n  output \"y\" = %1",
        "%0: i32[401, 333] = iota axis=1\n  %1: i32[401, 333] = iota axis=0\n  \
         %2: i32[401, 333] = add %0, %1\n  output \"y\" = %2",
        "%0: f32[9, 70, 64] = input \"a\" data\n  %1: f32[64, 50] = input \"bb\" data\n  \
         %2: f32[9, 64, 50] = broadcast %1\n  %3: f32[9, 70, 50] = matmul %0, %2\n  \
         output \"y\" = %3",
        "%0: f32[130, 70] = input \"a\" data\n  %1: f32[70, 90] = input \"bb\" data\n  \
         %2: f32[130, 90] = matmul %0, %1\n  output \"y\" = %2",
    ];
    for body in graphs {
        for threads in [2, 3] {
            same_on(&format!("graph t {{\n  {body}\n}}"), threads);
        }
    }
}

#[test]
fn products_summed_over_their_batch_match_the_interpreters_sum() {
    // A convolution's weight gradient: a batch of products whose only reader sums them over
    // the batch is summed as it is computed (each product added, from zero, in batch order),
    // on one thread and in bands of rows on several (uneven bands: 37 rows over 2 and 3), with
    // a right operand read transposed; the interpreter stores the products and then sums them.
    let summed = "graph t {\n  %0: f32[40, 37, 121] = input \"a\" data\n  \
         %1: f32[40, 64, 121] = input \"bb\" data\n  %2: f32[40, 121, 64] = permute %1 perm=[0,2,1]\n  \
         %3: f32[40, 37, 64] = matmul %0, %2\n  %4: f32[37, 64] = sum %3 axes=[0]\n  \
         output \"y\" = %4\n}";
    // Finite values of many magnitudes (the shared awkward ones make every product NaN), so
    // that a sum in another order or of other products differs.
    let g = text::parse(summed).expect("parses");
    let finite = |n: usize, seed: usize| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed) % 2003) as f32 / 97.0 - 10.0)
            .collect()
    };
    let inputs = HashMap::from([
        (
            "a".to_string(),
            Tensor::F32(
                ArrayD::from_shape_vec(IxDyn(&[40, 37, 121]), finite(40 * 37 * 121, 1))
                    .expect("sized"),
            ),
        ),
        (
            "bb".to_string(),
            Tensor::F32(
                ArrayD::from_shape_vec(IxDyn(&[40, 64, 121]), finite(40 * 64 * 121, 2))
                    .expect("sized"),
            ),
        ),
    ]);
    let want = interp::run(&g, &inputs, &Options::default()).expect("the interpreter runs it");
    for threads in [1, 2, 3] {
        let got = compile(&g)
            .expect("compiles")
            .run(&|n| inputs.get(n), threads)
            .expect("the JIT runs it");
        assert_eq!(bits(&got["y"]), bits(&want["y"]), "{threads} threads");
    }
    assert!(kernel_count(summed).1.contains("summed over the batch"));
    // Not summed as computed: a sum of 1×1 products (the interpreter folds those in eight
    // partial sums), and products also read by another node.
    let single = "graph t {\n  %0: f32[20, 1, 7] = input \"a\" data\n  \
         %1: f32[20, 7, 1] = input \"bb\" data\n  %2: f32[20, 1, 1] = matmul %0, %1\n  \
         %3: f32[1, 1] = sum %2 axes=[0]\n  output \"y\" = %3\n}";
    let shared = "graph t {\n  %0: f32[5, 3, 7] = input \"a\" data\n  \
         %1: f32[5, 7, 4] = input \"bb\" data\n  %2: f32[5, 3, 4] = matmul %0, %1\n  \
         %3: f32[3, 4] = sum %2 axes=[0]\n  output \"y\" = %3\n  output \"p\" = %2\n}";
    for text in [single, shared] {
        same_on(text, 1);
        assert!(!kernel_count(text).1.contains("summed"), "{text}");
    }
}

#[test]
fn matrices_copied_across_their_rows_are_copied_by_tiles() {
    // A transposed copy (a permuted operand made once for the products that read it) runs as
    // a tiled copy, whole or split by rows between threads (371 000 elements: enough to split),
    // in f32 and f64, with partial tiles.
    for ty in ["f32", "f64"] {
        let text = format!(
            "graph t {{\n  %0: {ty}[371, 1000] = input \"a\" data\n  \
             %1: {ty}[1000, 371] = permute %0 perm=[1,0]\n  output \"y\" = %1\n}}"
        );
        for threads in [1, 2, 3] {
            same_on(&text, threads);
        }
        assert!(kernel_count(&text).1.contains("a copy by tiles"), "{text}");
    }
}

/// The number of steps of the plan of `text` that are kernels, and the plan's listing.
fn kernel_count(text: &str) -> (usize, String) {
    let g = text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let program = compile(&g).expect("compiles");
    let kernels = program
        .plan
        .steps
        .iter()
        .filter(|s| matches!(s, super::plan::Step::Kernel(_)))
        .count();
    (kernels, program.describe())
}

#[test]
fn expressions_through_reshapes_broadcasts_and_slices_are_not_stored() {
    // Max pooling's gradient: the tie mask is recomputed where it is read (by the count and the
    // product), the product reshaped to the input's shape by refining its loop space, and the
    // ReLU's gradient and the bias gradient computed in the same loop.
    let pool_backward = "graph t {\n  %0: f32[2, 3, 4, 2, 6, 2] = input \"x\" data\n  \
         %1: f32[2, 3, 4, 6] = reduce_max %0 axes=[3,5]\n  %2: f32[2, 3, 4, 1, 6, 1] = reshape %1\n  \
         %3: f32[2, 3, 4, 2, 6, 2] = broadcast %2\n  %4: bool[2, 3, 4, 2, 6, 2] = eq %0, %3\n  \
         %5: f32[2, 3, 4, 2, 6, 2] = cast %4\n  %6: f32[2, 3, 4, 6] = sum %5 axes=[3,5]\n  \
         %7: f32[2, 3, 4, 6] = input \"ct\" data\n  %8: f32[2, 3, 4, 6] = div %7, %6\n  \
         %9: f32[2, 3, 4, 1, 6, 1] = reshape %8\n  %10: f32[2, 3, 4, 2, 6, 2] = broadcast %9\n  \
         %11: f32[2, 3, 4, 2, 6, 2] = mul %10, %5\n  %12: f32[2, 3, 8, 12] = reshape %11\n  \
         %13: f32[2, 3, 8, 12] = input \"z\" data\n  %14: f32[2, 3, 8, 12] = const 0.0\n  \
         %15: bool[2, 3, 8, 12] = gt %13, %14\n  %16: f32[2, 3, 8, 12] = cast %15\n  \
         %17: f32[2, 3, 8, 12] = mul %12, %16\n  %18: f32[3] = sum %17 axes=[0,2,3]\n  \
         %19: f32[2, 3, 96] = reshape %17\n  %20: f32[2, 96, 3] = permute %19 perm=[0,2,1]\n  \
         %21: f32[2, 3, 3] = matmul %19, %20\n  \
         output \"pooled\" = %1\n  output \"bias\" = %18\n  output \"w\" = %21\n}";
    same(pool_backward);
    // The pooled max, the count, the quotient, one loop for the product and the ReLU gradient,
    // and the bias gradient (a vector loop of its own over the stored gradient: merged into the
    // loop before, whose space splits the gradient's last axes, it would run element by
    // element).
    let (kernels, plan) = kernel_count(pool_backward);
    assert_eq!(kernels, 5, "{plan}");
    // The gates of an LSTM step: slices of one sum, each computed where it is read.
    let gates = "graph t {\n  %0: f32[4, 16] = input \"x\" data\n  %1: f32[4, 16] = input \"h\" data\n  \
         %2: f32[4, 16] = add %0, %1\n  %3: f32[4, 8] = slice %2 axis=1 start=0 end=8\n  \
         %4: f32[4, 8] = slice %2 axis=1 start=8 end=16\n  %5: f32[4, 8] = exp %3\n  \
         %6: f32[4, 8] = mul %5, %4\n  output \"y\" = %6\n}";
    same(gates);
    let (kernels, plan) = kernel_count(gates);
    assert_eq!(kernels, 1, "{plan}");
}

#[test]
fn loads_repeated_along_a_short_inner_axis_match() {
    // A value broadcast over a window of 2 or 4 along the innermost axis: the loop runs over the
    // merged axis, that load repeating each element (tails of 0 and 2 elements).
    for (rows, period) in [(5, 2), (6, 2), (3, 4)] {
        let n = rows * period;
        same(&format!(
            "graph t {{\n  %0: f32[3, {rows}, 1] = input \"g\" data\n  \
             %1: f32[3, {rows}, {period}] = broadcast %0\n  %2: f32[3, {rows}, {period}] = input \"x\" data\n  \
             %3: f32[3, {rows}, {period}] = mul %1, %2\n  %4: f32[3, {n}] = reshape %3\n  \
             %5: f32[3, {n}] = exp %4\n  output \"y\" = %5\n}}"
        ));
    }
}

#[test]
fn kernels_that_feed_the_next_are_merged() {
    // Adam: the new moments feed the new parameter; one loop stores all three.
    let adam = "graph t {\n  %0: f32[37] = input \"g\" data\n  %1: f32[37] = input \"m\" data\n  \
         %2: f32[37] = input \"v\" data\n  %3: f32[37] = input \"p\" data\n  \
         %4: f32[37] = const 0.9\n  %5: f32[37] = mul %4, %1\n  %6: f32[37] = const 0.1\n  \
         %7: f32[37] = mul %6, %0\n  %8: f32[37] = add %5, %7\n  %9: f32[37] = mul %0, %0\n  \
         %10: f32[37] = add %2, %9\n  %11: f32[37] = sqrt %10\n  %12: f32[37] = div %8, %11\n  \
         %13: f32[37] = sub %3, %12\n  output \"m2\" = %8\n  output \"v2\" = %10\n  \
         output \"p2\" = %13\n}";
    same(adam);
    let (kernels, plan) = kernel_count(adam);
    assert_eq!(kernels, 1, "{plan}");
}

/// A training step's graph: `loss = sum(x · p)`, `p ← p − 0.5·x`, `m ← m + x`.
const STEP: &str = "graph step {\n  %0: f32[6] = input \"x\" data\n  %1: f32[6] = input \"p\" param\n  \
     %2: f32[6] = input \"m\" opt_state\n  %3: f32[6] = mul %0, %1\n  %4: f32[] = sum %3 axes=[0]\n  \
     %5: f32[6] = const 0.5\n  %6: f32[6] = mul %5, %0\n  %7: f32[6] = sub %1, %6\n  \
     %8: f32[6] = add %2, %0\n  output \"loss\" loss = %4\n  output \"p\" new param = %7\n  \
     output \"m\" new opt_state = %8\n}";

fn f32s(values: &[f32]) -> Tensor {
    Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.to_vec()).expect("sized"))
}

#[test]
fn a_step_updates_its_state_in_place_unless_the_loss_is_not_finite() {
    let g = text::parse(STEP).expect("parses");
    let program = compile(&g).expect("compiles");
    let x = f32s(&[1.0, 2.0, 3.0, -1.0, 0.5, 0.0]);
    let mut state = HashMap::from([
        ("p".to_string(), f32s(&[1.0; 6])),
        ("m".to_string(), f32s(&[0.25; 6])),
    ]);
    // The pure run returns the new values and leaves the inputs alone.
    let inputs: HashMap<String, Tensor> = state
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain([("x".to_string(), x.clone())])
        .collect();
    let want = interp::run(&g, &inputs, &Options::default()).expect("runs");
    let pure = program.run(&|n| inputs.get(n), 1).expect("runs");
    for name in ["loss", "p", "m"] {
        assert_eq!(bits(&pure[name]), bits(&want[name]), "{name}");
    }
    assert_eq!(bits(&inputs["p"]), bits(&f32s(&[1.0; 6])));
    // The step writes the new values into the tensors it was given.
    let address = |t: &Tensor| match t {
        Tensor::F32(a) => a.as_ptr() as usize,
        _ => 0,
    };
    let before = address(&state["p"]);
    let batch = HashMap::from([("x".to_string(), x)]);
    let out = program
        .run_step(&|n| batch.get(n), &mut state, 1)
        .expect("runs");
    assert_eq!(out.keys().collect::<Vec<_>>(), vec!["loss"]);
    assert_eq!(bits(&out["loss"]), bits(&want["loss"]));
    assert_eq!(bits(&state["p"]), bits(&want["p"]));
    assert_eq!(bits(&state["m"]), bits(&want["m"]));
    assert_eq!(address(&state["p"]), before, "updated in place");
    // A NaN in the batch makes the loss NaN: nothing is written.
    let kept = (bits(&state["p"]), bits(&state["m"]));
    let bad = HashMap::from([("x".to_string(), f32s(&[1.0, f32::NAN, 0.0, 0.0, 0.0, 0.0]))]);
    let out = program
        .run_step(&|n| bad.get(n), &mut state, 1)
        .expect("runs");
    assert!(out["loss"].scalar().is_some_and(f64::is_nan));
    assert_eq!((bits(&state["p"]), bits(&state["m"])), kept);
}

/// Every primitive of the table, on its sample graph, in both float precisions.
#[test]
fn every_primitive_matches_the_interpreter() {
    for &prim in crate::ir::Prim::ALL {
        for float in [DType::F32, DType::F64] {
            same(&text::print(&crate::ir::samples::sample(prim, float)));
        }
    }
}

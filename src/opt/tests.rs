//! Each rule on a small graph: what it removes, and that the result still verifies.

use super::*;
use crate::ir::{CmpOp, Loc, OutputRole, Role, verify};

fn f32s(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape.to_vec())
}

fn konst(g: &mut Graph, value: f64, shape: &[usize]) -> ValueId {
    g.add(
        Op::Const {
            value,
            ty: f32s(shape),
        },
        vec![],
        Loc::default(),
    )
}

fn op(g: &mut Graph, op: Op, args: Vec<ValueId>) -> ValueId {
    g.add(op, args, Loc::default())
}

/// The ops left in the optimized graph, inputs excluded.
fn ops_after(g: &Graph) -> Vec<&'static str> {
    let (o, _) = optimize(g);
    verify(&o).expect("optimized graphs verify");
    o.nodes
        .iter()
        .filter(|n| !matches!(n.op, Op::Input { .. }))
        .map(|n| n.op.name())
        .collect()
}

fn graph_with_x(shape: &[usize]) -> (Graph, ValueId) {
    let mut g = Graph::new("t");
    let x = g.input("x", Role::Data, f32s(shape));
    (g, x)
}

#[test]
fn multiplying_by_one_and_adding_zero_disappear() {
    let (mut g, x) = graph_with_x(&[2, 3]);
    let one = konst(&mut g, 1.0, &[2, 3]);
    let zero = konst(&mut g, 0.0, &[2, 3]);
    let a = op(&mut g, Op::Mul, vec![x, one]);
    let b = op(&mut g, Op::Add, vec![zero, a]);
    let c = op(&mut g, Op::Sub, vec![b, zero]);
    let d = op(&mut g, Op::Div, vec![c, one]);
    g.add_output("y", d, OutputRole::Value);
    assert!(ops_after(&g).is_empty());
    let (o, _) = optimize(&g);
    assert_eq!(o.outputs[0].value, o.find_input("x").unwrap());
}

#[test]
fn a_term_multiplied_by_zero_disappears() {
    let (mut g, x) = graph_with_x(&[3]);
    let p = g.input("p", Role::Param, f32s(&[3]));
    let zero = konst(&mut g, 0.0, &[3]);
    let decay = op(&mut g, Op::Mul, vec![zero, p]);
    let y = op(&mut g, Op::Add, vec![x, decay]);
    g.add_output("y", y, OutputRole::Value);
    assert!(ops_after(&g).is_empty());
}

#[test]
fn double_negation_and_log_of_exp_cancel() {
    let (mut g, x) = graph_with_x(&[4]);
    let n1 = op(&mut g, Op::Neg, vec![x]);
    let n2 = op(&mut g, Op::Neg, vec![n1]);
    let e = op(&mut g, Op::Exp, vec![n2]);
    let l = op(&mut g, Op::Log, vec![e]);
    g.add_output("y", l, OutputRole::Value);
    assert!(ops_after(&g).is_empty());
}

#[test]
fn reshape_of_reshape_and_transpose_of_transpose_collapse() {
    let (mut g, x) = graph_with_x(&[2, 3, 4]);
    let r1 = op(&mut g, Op::Reshape { shape: vec![6, 4] }, vec![x]);
    let r2 = op(&mut g, Op::Reshape { shape: vec![24] }, vec![r1]);
    let p1 = op(
        &mut g,
        Op::Permute {
            perm: vec![0, 2, 1],
        },
        vec![x],
    );
    let p2 = op(
        &mut g,
        Op::Permute {
            perm: vec![0, 2, 1],
        },
        vec![p1],
    );
    let p3 = op(
        &mut g,
        Op::Permute {
            perm: vec![1, 0, 2],
        },
        vec![p2],
    );
    g.add_output("r", r2, OutputRole::Value);
    g.add_output("p", p3, OutputRole::Value);
    assert_eq!(ops_after(&g), vec!["reshape", "permute"]);
}

#[test]
fn constants_fold_through_elementwise_ops_and_reductions() {
    let mut g = Graph::new("t");
    let two = konst(&mut g, 2.0, &[3]);
    let three = konst(&mut g, 3.0, &[3]);
    let p = op(&mut g, Op::Mul, vec![two, three]);
    let s = op(&mut g, Op::Sum { axes: vec![0] }, vec![p]);
    let c = op(&mut g, Op::Cmp(CmpOp::Gt), vec![two, three]);
    let sel = op(&mut g, Op::Select, vec![c, two, three]);
    g.add_output("s", s, OutputRole::Value);
    g.add_output("sel", sel, OutputRole::Value);
    let (o, _) = optimize(&g);
    let value = |name: &str| match &o.node(o.output(name).unwrap()).op {
        Op::Const { value, .. } => *value,
        other => panic!("{name} is {other:?}"),
    };
    assert_eq!(value("s"), 18.0);
    assert_eq!(value("sel"), 3.0);
}

#[test]
fn common_subexpressions_merge_but_random_draws_do_not() {
    let (mut g, x) = graph_with_x(&[5]);
    let key = g.input("rng", Role::Rng, TensorType::new(DType::I32, vec![2]));
    let e1 = op(&mut g, Op::Exp, vec![x]);
    let e2 = op(&mut g, Op::Exp, vec![x]);
    let s = op(&mut g, Op::Add, vec![e1, e2]);
    let draw = |stream| Op::Rand {
        dist: crate::ir::Dist::Uniform,
        stream,
        ty: f32s(&[5]),
    };
    let r1 = op(&mut g, draw(0), vec![key]);
    let r2 = op(&mut g, draw(1), vec![key]);
    let t = op(&mut g, Op::Add, vec![r1, r2]);
    g.add_output("s", s, OutputRole::Value);
    g.add_output("t", t, OutputRole::Value);
    assert_eq!(
        ops_after(&g),
        vec!["exp", "add", "rand_uniform", "rand_uniform", "add"]
    );
}

#[test]
fn dead_code_goes_and_inputs_stay() {
    let (mut g, x) = graph_with_x(&[5]);
    let unused = g.input("unused", Role::Param, f32s(&[5]));
    op(&mut g, Op::Exp, vec![unused]);
    let y = op(&mut g, Op::Sqrt, vec![x]);
    g.add_output("y", y, OutputRole::Value);
    let (o, stats) = optimize(&g);
    assert_eq!(
        stats,
        Stats {
            before: 4,
            after: 3
        }
    );
    assert!(o.find_input("unused").is_some());
}

#[test]
fn detach_and_identity_movement_disappear_after_differentiation() {
    let (mut g, x) = graph_with_x(&[2, 3]);
    let d = op(&mut g, Op::Detach, vec![x]);
    let b = op(&mut g, Op::Broadcast { shape: vec![2, 3] }, vec![d]);
    let p = op(&mut g, Op::Permute { perm: vec![0, 1] }, vec![b]);
    let s = op(
        &mut g,
        Op::Slice {
            axis: 1,
            start: 0,
            end: 3,
        },
        vec![p],
    );
    g.add_output("y", s, OutputRole::Value);
    assert!(ops_after(&g).is_empty());
}

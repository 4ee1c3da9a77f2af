//! Which data fields the graphs read as class indices, and how many classes there are.
//!
//! `sparse_cross_entropy`, `accuracy` and their kin compare an integer target with every class
//! index (`iota` along the class axis, from `pick` and `one_hot`) or with the predicted class
//! (`argmax` over the class axis). A target outside `0..C` matches no class: the loss of that
//! sample is silently 0 and it counts as wrong. The graphs say where this happens, so the
//! runtime asks the data set to check those fields before anything is trained
//! ([`crate::data::Dataset::check_classes`]).

use crate::data::ClassField;
use crate::ir::{CmpOp, Graph, Op, Role, ValueId};

/// The data fields `graph` reads as class indices, with their class counts and where.
pub fn class_fields(graph: &Graph) -> Vec<ClassField> {
    let mut out: Vec<ClassField> = Vec::new();
    for node in &graph.nodes {
        let (Op::Cmp(CmpOp::Eq), [a, b]) = (&node.op, &node.args[..]) else {
            continue;
        };
        for (target, other) in [(*a, *b), (*b, *a)] {
            let (Some(field), Some(classes)) = (data_field(graph, target), classes(graph, other))
            else {
                continue;
            };
            let used_at = if node.loc.is_known() {
                format!("{}:{}:{}", node.loc.file, node.loc.line, node.loc.col)
            } else {
                String::new()
            };
            let known = out.iter().any(|c| c.field == field && c.classes == classes);
            if !known {
                out.push(ClassField {
                    field,
                    classes,
                    used_at,
                });
            }
        }
    }
    out
}

/// The integer data field that `v` is, through reshapes and broadcasts (which keep values).
fn data_field(g: &Graph, mut v: ValueId) -> Option<String> {
    loop {
        let node = g.node(v);
        match &node.op {
            Op::Reshape { .. } | Op::Broadcast { .. } => v = node.args[0],
            Op::Input { name, role, .. } if *role == Role::Data => {
                return node
                    .ty
                    .tensor()
                    .filter(|t| !t.dtype.is_float())
                    .map(|_| name.clone());
            }
            _ => return None,
        }
    }
}

/// The number of classes when `v` enumerates them (`iota` along an axis) or picks one
/// (`argmax` over an axis).
fn classes(g: &Graph, v: ValueId) -> Option<usize> {
    let node = g.node(v);
    match &node.op {
        Op::Iota { axis, ty } => ty.shape.get(*axis).copied(),
        Op::Argmax { axis } => g.ty(node.args[0]).shape.get(*axis).copied(),
        _ => None,
    }
}

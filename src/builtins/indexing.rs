//! Indexing by i32 ids: `gather` (table rows), `pick` (one entry per row), `one_hot`, and
//! `scatter_add` (gather's transpose).

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule};
use crate::check::operators::{err, int_arg, tensor_arg};
use crate::check::ty::{Shape, ShapeElem, Ty};
use crate::check::{Checker, Frame};
use crate::diag::codes;
use crate::ir::{DType, Op};
use crate::lower::{Lowerer, Res, Val};
use crate::prim::PrimParam;
use crate::syntax::ast::Dtype;

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "gather",
        params: &[PrimParam::req("table"), PrimParam::req("idx")],
        doc: "rows of a table: [V, D] at i32[..S] → [..S, D]",
        rule: &Gather,
    },
    BuiltinDef {
        name: "pick",
        params: &[PrimParam::req("x"), PrimParam::req("idx")],
        doc: "the entry at an index along the last axis: [..S, C] at i32[..S] → [..S]",
        rule: &Pick,
    },
    BuiltinDef {
        name: "one_hot",
        params: &[PrimParam::req("idx"), PrimParam::req("n")],
        doc: "i32[..S] → f32[..S, n] with a 1 at each index",
        rule: &OneHot,
    },
    BuiltinDef {
        name: "scatter_add",
        params: &[
            PrimParam::req("x"),
            PrimParam::req("idx"),
            PrimParam::req("rows"),
        ],
        doc: "adds rows of x into a [rows, D] table at idx (gather's transpose)",
        rule: &ScatterAdd,
    },
];

/// Argument `i` as i32 indices, or the error that says to convert them.
fn indices<'a>(c: &mut Checker, a: &'a CheckArgs, i: usize) -> Option<&'a Shape> {
    let (it, idx) = tensor_arg(c, a.req(i), "idx")?;
    if it != Dtype::I32 {
        c.emit(
            err(
                codes::DTYPE_MISMATCH,
                format!("`{}` needs i32 indices, found {}", a.name, it.name()),
                a.req(i).span,
                "not i32",
            )
            .with_help("convert with `cast(…, i32)`"),
        );
        return None;
    }
    Some(idx)
}

struct Gather;

impl Rule for Gather {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, table)) = tensor_arg(c, a.req(0), "table") else {
            return Ty::Unknown;
        };
        let Some(idx) = indices(c, a, 1) else {
            return Ty::Unknown;
        };
        if table.0.len() != 2 {
            c.emit(err(
                codes::RANK,
                format!("`gather` needs a [rows, width] table, found {table}"),
                a.req(0).span,
                "not rank 2",
            ));
            return Ty::Unknown;
        }
        let mut out = idx.clone();
        std::rc::Rc::make_mut(&mut out.0).push(table.0[1].clone());
        Ty::Tensor(dt, out)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let table = a.tensor(l, 0)?;
        let ids = l.tensor_of(a.val(1)?, DType::I32, a.span)?;
        Ok(Val::Tensor(l.emit(Op::Gather, &[table, ids])))
    }
}

struct Pick;

impl Rule for Pick {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, x)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(idx) = indices(c, a, 1) else {
            return Ty::Unknown;
        };
        let lead = Shape(x.0[..x.0.len().saturating_sub(1)].to_vec().into());
        if x.0.is_empty() || lead != *idx {
            c.emit(
                err(
                    codes::RANK,
                    format!(
                        "`pick` needs indices shaped like x without its last axis: x is {x}, so indices {lead}, found {idx}"
                    ),
                    a.req(1).span,
                    format!("this is {}", a.req(1).ty),
                )
                .with_secondary(a.req(0).span, format!("this is {}", a.req(0).ty)),
            );
            return Ty::Unknown;
        }
        Ty::Tensor(dt, lead)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let ids = l.tensor_of(a.val(1)?, DType::I32, a.span)?;
        let classes = l.ty(x).shape.last().copied().unwrap_or(1);
        let mask = l.one_hot_mask(ids, classes);
        let xs = l.ty(x);
        let zero = l.constant(0.0, xs.clone());
        let picked = l.emit(Op::Select, &[mask, x, zero]);
        Ok(Val::Tensor(l.sum_axes(picked, &[xs.rank() - 1], false)))
    }
}

struct OneHot;

impl Rule for OneHot {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((it, idx)) = tensor_arg(c, a.req(0), "idx") else {
            return Ty::Unknown;
        };
        if it != Dtype::I32 {
            c.emit(err(
                codes::DTYPE_MISMATCH,
                format!("`one_hot` needs i32 class indices, found {}", it.name()),
                a.req(0).span,
                "not i32",
            ));
            return Ty::Unknown;
        }
        let Some(n) = int_arg(c, Some(a.req(1)), 1, "n") else {
            return Ty::Unknown;
        };
        let mut out = idx.clone();
        std::rc::Rc::make_mut(&mut out.0).push(ShapeElem::Dim(n));
        Ty::Tensor(Dtype::F32, out)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let ids = l.tensor_of(a.val(0)?, DType::I32, a.span)?;
        let n = a.size(1)?;
        let mask = l.one_hot_mask(ids, n);
        let fl = l.float();
        Ok(Val::Tensor(l.cast(mask, fl)))
    }
}

struct ScatterAdd;

impl Rule for ScatterAdd {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, x)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(rows) = int_arg(c, Some(a.req(2)), 1, "rows") else {
            return Ty::Unknown;
        };
        let Some(last) = x.0.last() else {
            return Ty::Unknown;
        };
        Ty::Tensor(dt, Shape(vec![ShapeElem::Dim(rows), last.clone()].into()))
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let ids = l.tensor_of(a.val(1)?, DType::I32, a.span)?;
        let rows = a.size(2)?;
        Ok(Val::Tensor(l.emit(Op::ScatterAdd { rows }, &[ids, x])))
    }
}

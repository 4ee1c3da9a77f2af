//! Sequences for causal models: `positions`, `cached` and `causal_mask` — an `iota`, the identity
//! and a triangular mask over whole sequences, and the key/value cache when a model is lowered
//! at one new position (`lower/step.rs`).

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule};
use crate::check::operators::{
    const_arg, err, has_trailing_matrix, int_arg, normalize_axis, tensor_arg,
};
use crate::check::ty::{Shape, Ty};
use crate::check::{Checker, Frame};
use crate::diag::codes;
use crate::lower::{Lowerer, Res, Val, normalize_axis as axis_of};
use crate::prim::PrimParam;
use crate::syntax::ast::Dtype;

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "positions",
        params: &[PrimParam::req("n")],
        doc: "the positions of a sequence of n as i32[n]: 0, 1, …, n-1, or the new positions when a causal model generates with its cache",
        rule: &Positions,
    },
    BuiltinDef {
        name: "cached",
        params: &[PrimParam::req("x"), PrimParam::req("axis")],
        doc: "x itself; when a causal model generates one position at a time, x's earlier positions along axis (keys, values) from the cache, this one written in",
        rule: &Cached,
    },
    BuiltinDef {
        name: "causal_mask",
        params: &[PrimParam::req("scores")],
        doc: "attention scores [..S, queries, keys] with -1e9 where a key lies after its query's position",
        rule: &CausalMask,
    },
];

struct Positions;

impl Rule for Positions {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        match int_arg(c, Some(a.req(0)), 1, "n") {
            Some(n) => Ty::Tensor(Dtype::I32, Shape::of_dims([n])),
            None => Ty::Unknown,
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        Ok(Val::Tensor(l.positions(a.size(0)?)))
    }
}

struct Cached;

impl Rule for Cached {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((_, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(axis) = const_arg(c, Some(a.req(1)), 0, "axis") else {
            return Ty::Unknown;
        };
        match normalize_axis(c, s, axis, a.req(1).span) {
            Some(_) => a.req(0).ty.clone(),
            None => Ty::Unknown,
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let axis = axis_of(a.int(1)?, l.ty(x).rank(), a.span)?;
        l.cached(x, axis, a.span).map(Val::Tensor)
    }
}

struct CausalMask;

impl Rule for CausalMask {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((_, s)) = tensor_arg(c, a.req(0), "scores") else {
            return Ty::Unknown;
        };
        if !has_trailing_matrix(s) {
            c.emit(err(
                codes::RANK,
                format!("`causal_mask` needs scores [..S, queries, keys], found {s}"),
                a.req(0).span,
                "rank too small",
            ));
            return Ty::Unknown;
        }
        a.req(0).ty.clone()
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let s = a.tensor(l, 0)?;
        l.causal_mask(s, a.span).map(Val::Tensor)
    }
}

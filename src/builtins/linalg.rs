//! Linear algebra: `matmul`, the same batched product as `a @ b`.

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule};
use crate::check::operators::matmul;
use crate::check::ty::Ty;
use crate::check::{Checker, Frame};
use crate::lower::{Lowerer, Res, Val};
use crate::prim::PrimParam;

pub(super) const BUILTINS: &[BuiltinDef] = &[BuiltinDef {
    name: "matmul",
    params: &[PrimParam::req("a"), PrimParam::req("b")],
    doc: "batched matrix product, the same as `a @ b`",
    rule: &Matmul,
}];

struct Matmul;

impl Rule for Matmul {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        matmul(
            c,
            (&a.req(0).ty, a.req(0).span),
            (&a.req(1).ty, a.req(1).span),
            a.span,
        )
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let y = a.tensor(l, 1)?;
        l.matmul(x, y, a.span).map(Val::Tensor)
    }
}

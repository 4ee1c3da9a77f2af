//! Random tensors: `rand_uniform` and `rand_normal`, counter-based draws seeded per step.

use super::create::positive_shape;
use super::{BuiltinDef, CheckArgs, LowerArgs, Rule, SHAPE};
use crate::check::ty::Ty;
use crate::check::{Checker, Frame};
use crate::ir::{Dist, TensorType};
use crate::lower::{Lowerer, Res, Val};

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "rand_uniform",
        params: SHAPE,
        doc: "uniform [0, 1) samples, seeded per step",
        rule: &Random(Dist::Uniform),
    },
    BuiltinDef {
        name: "rand_normal",
        params: SHAPE,
        doc: "standard normal samples, seeded per step",
        rule: &Random(Dist::Normal),
    },
];

struct Random(Dist);

impl Rule for Random {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        positive_shape(c, a)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let shape = a.sizes(0)?;
        let ty = TensorType::new(l.float(), shape);
        Ok(Val::Tensor(l.random(self.0, ty)))
    }
}

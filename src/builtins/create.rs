//! Creation: constant tensors of a shape (`zeros`, `ones`, `full`), of another tensor's type
//! (`zeros_like`, `ones_like`), and `arange`.

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule, SHAPE, X};
use crate::check::operators::{check_positive, err, int_arg, shape_arg};
use crate::check::ty::{Shape, Ty};
use crate::check::{Checker, Frame};
use crate::diag::codes;
use crate::ir::{Op, TensorType};
use crate::lower::operators::number;
use crate::lower::{LowerError, Lowerer, Res, Val};
use crate::prim::{Initializer, PrimParam};
use crate::syntax::ast::Dtype;

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "zeros",
        params: SHAPE,
        doc: "a tensor of zeros; as an initializer, zeros",
        rule: &Filled(Initializer::Zeros),
    },
    BuiltinDef {
        name: "ones",
        params: SHAPE,
        doc: "a tensor of ones; as an initializer, ones",
        rule: &Filled(Initializer::Ones),
    },
    BuiltinDef {
        name: "full",
        params: &[PrimParam::req("shape"), PrimParam::req("value")],
        doc: "a tensor filled with a value",
        rule: &Full,
    },
    BuiltinDef {
        name: "zeros_like",
        params: X,
        doc: "zeros of the shape and dtype of x",
        rule: &Like(0.0),
    },
    BuiltinDef {
        name: "ones_like",
        params: X,
        doc: "ones of the shape and dtype of x",
        rule: &Like(1.0),
    },
    BuiltinDef {
        name: "arange",
        params: &[PrimParam::req("n")],
        doc: "0, 1, …, n-1 as f32[n]",
        rule: &Arange,
    },
];

/// A float tensor of the shape given as argument 0, every dimension at least 1.
pub(super) fn positive_shape(c: &mut Checker, a: &CheckArgs) -> Ty {
    match shape_arg(c, a.req(0), "shape") {
        Some(s) => {
            check_positive(c, &s, a.req(0).span);
            Ty::Tensor(Dtype::F32, s)
        }
        None => Ty::Unknown,
    }
}

/// `zeros`/`ones`: also the initializers of the same name.
struct Filled(Initializer);

impl Rule for Filled {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        positive_shape(c, a)
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let shape = a.sizes(0)?;
        let value = if self.0 == Initializer::Ones {
            1.0
        } else {
            0.0
        };
        let fl = l.float();
        Ok(Val::Tensor(l.constant(value, TensorType::new(fl, shape))))
    }

    fn initializer(&self) -> Option<Initializer> {
        Some(self.0)
    }
}

struct Full;

impl Rule for Full {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        match shape_arg(c, a.req(0), "shape") {
            Some(s) => Ty::Tensor(Dtype::F32, s),
            None => Ty::Unknown,
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let shape = a.sizes(0)?;
        let value =
            number(a.val(1)?).ok_or_else(|| LowerError::new("expected a number", a.span))?;
        let fl = l.float();
        Ok(Val::Tensor(l.constant(value, TensorType::new(fl, shape))))
    }
}

/// `zeros_like`/`ones_like`: the value filling x's type.
struct Like(f64);

impl Rule for Like {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        match &a.req(0).ty {
            t @ Ty::Tensor(..) => t.clone(),
            Ty::Int(_) | Ty::Float(_) => Ty::Float(Some(0.0)),
            other => {
                c.emit(err(
                    codes::NOT_A_TENSOR,
                    format!("`{}` needs a tensor, found {other}", a.name),
                    a.req(0).span,
                    "not a tensor",
                ));
                Ty::Unknown
            }
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let ty = l.ty(x);
        Ok(Val::Tensor(l.constant(self.0, ty)))
    }
}

struct Arange;

impl Rule for Arange {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        match int_arg(c, Some(a.req(0)), 1, "n") {
            Some(n) => Ty::Tensor(Dtype::F32, Shape::of_dims([n])),
            None => Ty::Unknown,
        }
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let n = a.size(0)?;
        let ty = TensorType::new(l.float(), vec![n]);
        Ok(Val::Tensor(l.emit(Op::Iota { axis: 0, ty }, &[])))
    }
}

//! Windows over images: `unfold` (im2col) and its transpose `fold` (col2im), the primitives
//! under convolution and pooling.

use super::{BuiltinDef, CheckArgs, LowerArgs, Rule};
use crate::check::dim::Dim;
use crate::check::operators::{err, int_arg, shape_arg, tensor_arg};
use crate::check::ty::{Shape, ShapeElem, Ty};
use crate::check::{Checker, Frame};
use crate::diag::codes;
use crate::ir::{Op, Window};
use crate::lower::{LowerError, Lowerer, Res, Val};
use crate::prim::PrimParam;

pub(super) const BUILTINS: &[BuiltinDef] = &[
    BuiltinDef {
        name: "unfold",
        params: &[
            PrimParam::req("x"),
            PrimParam::req("kernel"),
            PrimParam::opt("stride"),
            PrimParam::opt("padding"),
            PrimParam::opt("dilation"),
        ],
        doc: "image patches as columns (im2col): [B, C, H, W] → [B, C*k*k, OH*OW]",
        rule: &Unfold,
    },
    BuiltinDef {
        name: "fold",
        params: &[
            PrimParam::req("x"),
            PrimParam::req("size"),
            PrimParam::req("kernel"),
            PrimParam::opt("stride"),
            PrimParam::opt("padding"),
            PrimParam::opt("dilation"),
        ],
        doc: "sums columns back into an image (col2im), the transpose of unfold",
        rule: &Fold,
    },
];

/// The window's arguments from parameter `k` on: kernel, stride, padding, dilation.
fn window(a: &LowerArgs, k: usize) -> Res<Window> {
    Ok(Window {
        kernel: a.size(k)?,
        stride: a.size_or(k + 1, 1)?,
        padding: a.size_or(k + 2, 0)?,
        dilation: a.size_or(k + 3, 1)?,
    })
}

struct Unfold;

impl Rule for Unfold {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let x = a.req(0);
        let Some((dt, s)) = tensor_arg(c, x, "x") else {
            return Ty::Unknown;
        };
        let Some(dims) = s.dims().filter(|d| d.len() == 4) else {
            c.emit(
                err(
                    codes::RANK,
                    format!("`unfold` needs an image batch [B, C, H, W], found {s}"),
                    x.span,
                    "not rank 4",
                )
                .with_help("reshape the input to [B, C, H, W]"),
            );
            return Ty::Unknown;
        };
        let (Some(k), Some(st), Some(p), Some(dl)) = (
            int_arg(c, Some(a.req(1)), 1, "kernel"),
            int_arg(c, a.arg(2), 1, "stride"),
            int_arg(c, a.arg(3), 0, "padding"),
            int_arg(c, a.arg(4), 1, "dilation"),
        ) else {
            return Ty::Unknown;
        };
        let one = Dim::constant(1);
        let out_size = |n: &Dim| -> Option<Dim> {
            let span_k = dl.mul(&k.sub(&one));
            n.add(&Dim::constant(2).mul(&p))
                .sub(&span_k)
                .sub(&one)
                .div(&st)
                .map(|q| q.add(&one))
        };
        let (Some(oh), Some(ow)) = (out_size(&dims[2]), out_size(&dims[3])) else {
            c.emit(err(
                codes::ZERO_DIVISOR,
                "`unfold` stride must not be zero",
                a.span,
                "stride 0",
            ));
            return Ty::Unknown;
        };
        for (name, o, n) in [("height", &oh, &dims[2]), ("width", &ow, &dims[3])] {
            if let Some(v) = o.as_const().filter(|v| *v <= 0) {
                c.emit(
                    err(
                        codes::NONPOSITIVE_DIM,
                        format!("the window does not fit: the output {name} would be {v}"),
                        a.span,
                        format!(
                            "a {k}×{k} window (dilation {dl}, stride {st}, padding {p}) over {name} {n}"
                        ),
                    )
                    .with_note(format!(
                        "output size = (size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1 = ({n} + 2·{p} − {dl}·({k} − 1) − 1) / {st} + 1 = {v}"
                    ))
                    .with_help(
                        "use a smaller kernel or stride, add padding, or remove a pooling layer before this one",
                    ),
                );
                return Ty::Unknown;
            }
        }
        Ty::Tensor(
            dt,
            Shape::of_dims([dims[0].clone(), dims[1].mul(&k).mul(&k), oh.mul(&ow)]),
        )
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let window = window(a, 1)?;
        Ok(Val::Tensor(l.emit(Op::Unfold(window), &[x])))
    }
}

struct Fold;

impl Rule for Fold {
    fn check(&self, c: &mut Checker, _: &mut Frame, a: &CheckArgs) -> Ty {
        let Some((dt, s)) = tensor_arg(c, a.req(0), "x") else {
            return Ty::Unknown;
        };
        let Some(size) = shape_arg(c, a.req(1), "size") else {
            return Ty::Unknown;
        };
        let Some(k) = int_arg(c, Some(a.req(2)), 1, "kernel") else {
            return Ty::Unknown;
        };
        let (Some(bdim), Some(ShapeElem::Dim(ck))) = (s.0.first(), s.0.get(1)) else {
            return Ty::Unknown;
        };
        let Some(ch) = ck.div(&k.mul(&k)) else {
            return Ty::Unknown;
        };
        let mut out = vec![bdim.clone(), ShapeElem::Dim(ch)];
        out.extend(size.0.iter().cloned());
        Ty::Tensor(dt, Shape(out.into()))
    }

    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val> {
        let x = a.tensor(l, 0)?;
        let window = window(a, 2)?;
        let size = a.sizes(1)?;
        let [h, w] = size[..] else {
            return Err(LowerError::new("fold needs a size [H, W]", a.span));
        };
        Ok(Val::Tensor(l.emit(
            Op::Fold {
                window,
                size: [h, w],
            },
            &[x],
        )))
    }
}

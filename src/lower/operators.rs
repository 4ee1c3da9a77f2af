//! Operators in terms of primitives (numbers known at compile time are computed here; tensors
//! become nodes), the dispatch of a builtin call to its lowering rule in [`crate::builtins`],
//! and the argument readers those rules share.

use super::emit::describe;
use super::eval::{ArgV, normalize_axis, size_of};
use super::{LowerError, Lowerer, Res, Tv, Val};
use crate::builtins::Builtin;
use crate::ir::{CmpOp, DType, Op, TensorType};
use crate::source::Span;
use crate::syntax::ast::BinOp;

impl Lowerer<'_> {
    pub(super) fn binary(&mut self, op: BinOp, l: Val, r: Val, span: Span) -> Res<Val> {
        if let (Val::Int(a), Val::Int(b)) = (&l, &r)
            && int_overflows(op, *a, *b)
        {
            // The checker saw these numbers as symbols; with the values given, they overflow.
            return Err(LowerError::new(
                format!("`{a} {} {b}` does not fit in 64 bits", op.symbol()),
                span,
            ));
        }
        if let Some(v) = fold_numbers(op, &l, &r) {
            return Ok(v);
        }
        let elementwise =
            |this: &mut Self, o: Op| this.elementwise(o, &l, &r, span).map(Val::Tensor);
        match op {
            BinOp::Add => elementwise(self, Op::Add),
            BinOp::Sub => elementwise(self, Op::Sub),
            BinOp::Mul => elementwise(self, Op::Mul),
            BinOp::Div => {
                let dtype = self.float;
                let (a, b) = (
                    self.float_val(&l, dtype, span)?,
                    self.float_val(&r, dtype, span)?,
                );
                elementwise_vals(self, Op::Div, a, b, span)
            }
            BinOp::Eq => elementwise(self, Op::Cmp(CmpOp::Eq)),
            BinOp::Ne => elementwise(self, Op::Cmp(CmpOp::Ne)),
            BinOp::Lt => elementwise(self, Op::Cmp(CmpOp::Lt)),
            BinOp::Le => elementwise(self, Op::Cmp(CmpOp::Le)),
            BinOp::Gt => elementwise(self, Op::Cmp(CmpOp::Gt)),
            BinOp::Ge => elementwise(self, Op::Cmp(CmpOp::Ge)),
            BinOp::And => elementwise(self, Op::And),
            BinOp::Or => elementwise(self, Op::Or),
            BinOp::MatMul => {
                let (a, b) = (
                    self.tensor_of(&l, self.float, span)?,
                    self.tensor_of(&r, self.float, span)?,
                );
                self.matmul(a, b, span).map(Val::Tensor)
            }
            BinOp::Pow => self.pow(l, r, span),
            BinOp::FloorDiv | BinOp::Rem => Err(LowerError::new(
                format!("`{}` works on sizes, not tensors", op.symbol()),
                span,
            )),
        }
    }

    /// A value as a float tensor or number (integer tensors are converted).
    fn float_val(&mut self, v: &Val, dtype: DType, span: Span) -> Res<Val> {
        Ok(match v {
            Val::Tensor(t) if !self.ty(*t).dtype.is_float() => Val::Tensor(self.cast(*t, dtype)),
            Val::Int(i) => Val::Float(*i as f64),
            Val::Tensor(_) | Val::Float(_) => v.clone(),
            other => {
                return Err(LowerError::new(
                    format!("expected a number, found {}", describe(other)),
                    span,
                ));
            }
        })
    }

    /// `x ^ y`: small integer powers multiply; otherwise exp(y · ln x) (for positive x).
    fn pow(&mut self, l: Val, r: Val, span: Span) -> Res<Val> {
        let dtype = self.float;
        if let (Val::Tensor(x), Val::Int(n)) = (&l, &r)
            && (0..=4).contains(n)
        {
            let x = self.cast(*x, dtype);
            let ty = self.ty(x);
            let mut acc = self.constant(1.0, ty);
            for i in 0..*n {
                acc = if i == 0 {
                    x
                } else {
                    self.emit(Op::Mul, &[acc, x])
                };
            }
            return Ok(Val::Tensor(acc));
        }
        let y = self.float_val(&r, dtype, span)?;
        let ln_x = match self.float_val(&l, dtype, span)? {
            Val::Float(c) => Val::Float(c.ln()),
            Val::Tensor(t) => Val::Tensor(self.emit(Op::Log, &[t])),
            _ => unreachable!("float_val gives numbers or tensors"),
        };
        let prod = elementwise_vals(self, Op::Mul, y, ln_x, span)?;
        match prod {
            Val::Tensor(t) => Ok(Val::Tensor(self.emit(Op::Exp, &[t]))),
            Val::Float(x) => Ok(Val::Float(x.exp())),
            _ => unreachable!("products of numbers and tensors"),
        }
    }

    /// A builtin call: the arguments bound to the builtin's parameters, then its lowering rule.
    pub(super) fn builtin(&mut self, b: Builtin, args: Vec<ArgV>, span: Span) -> Res<Val> {
        let slots = self.bound(span, crate::check::Callee::Builtin(b), args)?;
        b.rule().lower(self, &BuiltinArgs { slots, span })
    }

    /// `x` with its axes reordered (nothing when the order is the identity).
    pub(crate) fn permute(&mut self, x: Tv, perm: Vec<usize>) -> Tv {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return x;
        }
        self.emit(Op::Permute { perm }, &[x])
    }

    /// `ids[..S]` → bool `[..S, n]`, true where the last index equals the id.
    pub(crate) fn one_hot_mask(&mut self, ids: Tv, n: usize) -> Tv {
        let s = self.ty(ids).shape;
        let mut shape = s.clone();
        shape.push(n);
        let iota = self.emit(
            Op::Iota {
                axis: s.len(),
                ty: TensorType::new(DType::I32, shape.clone()),
            },
            &[],
        );
        let mut kept = s.clone();
        kept.push(1);
        let col = self.reshape(ids, kept);
        let ids = self.broadcast(col, &shape);
        self.emit(Op::Cmp(CmpOp::Eq), &[iota, ids])
    }
}

fn elementwise_vals(l: &mut Lowerer, op: Op, a: Val, b: Val, span: Span) -> Res<Val> {
    if let (Some(x), Some(y)) = (number(&a), number(&b)) {
        return Ok(Val::Float(match op {
            Op::Div => x / y,
            Op::Mul => x * y,
            _ => unreachable!("only folded for div and mul"),
        }));
    }
    l.elementwise(op, &a, &b, span).map(Val::Tensor)
}

pub(crate) fn number(v: &Val) -> Option<f64> {
    match v {
        Val::Int(i) => Some(*i as f64),
        Val::Float(x) => Some(*x),
        _ => None,
    }
}

/// Arithmetic on numbers known at compile time, with the checker's rules: `/` of integers is an
/// integer when it divides exactly, `//` rounds down.
/// Whether integer arithmetic on `a` and `b` leaves 64 bits.
fn int_overflows(op: BinOp, a: i64, b: i64) -> bool {
    match op {
        BinOp::Add => a.checked_add(b).is_none(),
        BinOp::Sub => a.checked_sub(b).is_none(),
        BinOp::Mul => a.checked_mul(b).is_none(),
        BinOp::Div | BinOp::FloorDiv | BinOp::Rem => b != 0 && a.checked_rem_euclid(b).is_none(),
        BinOp::Pow => {
            b >= 0
                && u32::try_from(b)
                    .ok()
                    .and_then(|e| a.checked_pow(e))
                    .is_none()
        }
        _ => false,
    }
}

fn fold_numbers(op: BinOp, l: &Val, r: &Val) -> Option<Val> {
    if let (Val::Bool(a), Val::Bool(b)) = (l, r) {
        return match op {
            BinOp::And => Some(Val::Bool(*a && *b)),
            BinOp::Or => Some(Val::Bool(*a || *b)),
            BinOp::Eq => Some(Val::Bool(a == b)),
            BinOp::Ne => Some(Val::Bool(a != b)),
            _ => None,
        };
    }
    if let (Val::Int(a), Val::Int(b)) = (l, r) {
        let (a, b) = (*a, *b);
        return Some(match op {
            // Overflow was ruled out by `int_overflows`; checked all the same.
            BinOp::Add => Val::Int(a.checked_add(b)?),
            BinOp::Sub => Val::Int(a.checked_sub(b)?),
            BinOp::Mul => Val::Int(a.checked_mul(b)?),
            BinOp::Div if b != 0 && a.checked_rem(b)? == 0 => Val::Int(a.checked_div(b)?),
            BinOp::Div => Val::Float(a as f64 / b as f64),
            BinOp::FloorDiv if b != 0 => Val::Int(a.checked_div_euclid(b)?),
            BinOp::Rem if b != 0 => Val::Int(a.checked_rem_euclid(b)?),
            BinOp::Pow if b >= 0 => Val::Int(a.checked_pow(u32::try_from(b).ok()?)?),
            BinOp::Pow => Val::Float((a as f64).powf(b as f64)),
            _ => return fold_numbers(op, &Val::Float(a as f64), &Val::Float(b as f64)),
        });
    }
    let (a, b) = (number(l)?, number(r)?);
    Some(match op {
        BinOp::Add => Val::Float(a + b),
        BinOp::Sub => Val::Float(a - b),
        BinOp::Mul => Val::Float(a * b),
        BinOp::Div => Val::Float(a / b),
        BinOp::FloorDiv => Val::Float((a / b).floor()),
        BinOp::Rem => Val::Float(a.rem_euclid(b)),
        BinOp::Pow => Val::Float(a.powf(b)),
        BinOp::Eq => Val::Bool(a == b),
        BinOp::Ne => Val::Bool(a != b),
        BinOp::Lt => Val::Bool(a < b),
        BinOp::Le => Val::Bool(a <= b),
        BinOp::Gt => Val::Bool(a > b),
        BinOp::Ge => Val::Bool(a >= b),
        BinOp::And | BinOp::Or | BinOp::MatMul => return None,
    })
}

/// A builtin call's arguments matched to its parameter slots: what its lowering rule reads.
pub(crate) struct BuiltinArgs {
    slots: Vec<Option<ArgV>>,
    /// The whole call.
    pub span: Span,
}

impl BuiltinArgs {
    pub fn get(&self, i: usize) -> Option<&Val> {
        self.slots.get(i)?.as_ref().map(|a| &a.val)
    }

    pub fn val(&self, i: usize) -> Res<&Val> {
        self.get(i)
            .ok_or_else(|| LowerError::new("a required argument is missing", self.span))
    }

    pub fn span(&self, i: usize) -> Span {
        self.slots
            .get(i)
            .and_then(|a| a.as_ref())
            .map_or(self.span, |a| a.span)
    }

    pub fn int(&self, i: usize) -> Res<i64> {
        match self.val(i)? {
            Val::Int(v) => Ok(*v),
            other => Err(LowerError::new(
                format!("expected an integer, found {}", describe(other)),
                self.span(i),
            )),
        }
    }

    pub fn int_or(&self, i: usize, default: i64) -> Res<i64> {
        match self.get(i) {
            Some(_) => self.int(i),
            None => Ok(default),
        }
    }

    /// Argument `i` as a tensor of the lowering's float type (numbers become scalars).
    pub fn tensor(&self, l: &mut Lowerer, i: usize) -> Res<Tv> {
        let fl = l.float();
        l.tensor_of(self.val(i)?, fl, self.span)
    }

    pub fn size(&self, i: usize) -> Res<usize> {
        size_of(self.val(i)?, self.span(i))
    }

    pub fn size_or(&self, i: usize, default: usize) -> Res<usize> {
        match self.get(i) {
            Some(v) => size_of(v, self.span(i)),
            None => Ok(default),
        }
    }

    pub fn ints(&self, i: usize) -> Res<Vec<i64>> {
        match self.val(i)? {
            Val::List(xs) => xs
                .iter()
                .map(|x| match x {
                    Val::Int(v) => Ok(*v),
                    _ => Err(LowerError::new("expected integers", self.span(i))),
                })
                .collect(),
            Val::Int(v) => Ok(vec![*v]),
            _ => Err(LowerError::new("expected a list of integers", self.span(i))),
        }
    }

    pub fn sizes(&self, i: usize) -> Res<Vec<usize>> {
        match self.val(i)? {
            Val::List(xs) => xs.iter().map(|x| size_of(x, self.span(i))).collect(),
            other => Err(LowerError::new(
                format!("expected a shape, found {}", describe(other)),
                self.span(i),
            )),
        }
    }

    /// An `axis:` argument (one axis or a list), normalized; None when absent.
    pub fn axes(&self, i: usize, rank: usize) -> Res<Option<Vec<usize>>> {
        if self.get(i).is_none() {
            return Ok(None);
        }
        let mut axes = self
            .ints(i)?
            .into_iter()
            .map(|a| normalize_axis(a, rank, self.span(i)))
            .collect::<Res<Vec<_>>>()?;
        axes.sort_unstable();
        axes.dedup();
        Ok(Some(axes))
    }
}

#[cfg(test)]
mod tests {
    use super::super::emit::kept_shape;
    use super::*;

    #[test]
    fn integer_division_stays_integer_only_when_exact() {
        assert!(matches!(
            fold_numbers(BinOp::Div, &Val::Int(64), &Val::Int(8)),
            Some(Val::Int(8))
        ));
        assert!(matches!(
            fold_numbers(BinOp::Div, &Val::Int(1), &Val::Int(255)),
            Some(Val::Float(x)) if (x - 1.0 / 255.0).abs() < 1e-15
        ));
        assert!(matches!(
            fold_numbers(BinOp::FloorDiv, &Val::Int(-7), &Val::Int(2)),
            Some(Val::Int(-4))
        ));
        assert!(kept_shape(&[2, 3, 4], &[1]) == vec![2, 1, 4]);
    }
}

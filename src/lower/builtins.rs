//! Operators and builtin functions in terms of primitives. Numbers known at compile time are
//! computed here; tensors become nodes.

use super::emit::describe;
use super::eval::{ArgV, match_slots, normalize_axis, size_of};
use super::{LowerError, Lowerer, Res, Tv, Val};
use crate::ir::primitive::Reference;
use crate::ir::{CmpOp, DType, Dist, Op, TensorType, Window};
use crate::prim::Builtin;
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

    pub(super) fn builtin(&mut self, b: Builtin, args: Vec<ArgV>, span: Span) -> Res<Val> {
        let info = crate::prim::BUILTINS
            .iter()
            .find(|i| i.builtin == b)
            .expect("every builtin is listed");
        let names: Vec<&str> = info.params.iter().map(|p| p.name).collect();
        let slots = match_slots(&names, args)?;
        let a = Args { slots, span };
        let fl = self.float;
        match b {
            Builtin::Exp
            | Builtin::Log
            | Builtin::Sqrt
            | Builtin::Sin
            | Builtin::Cos
            | Builtin::Erf
            | Builtin::Tanh
            | Builtin::Sigmoid => {
                let op = match b {
                    Builtin::Exp => Op::Exp,
                    Builtin::Log => Op::Log,
                    Builtin::Sqrt => Op::Sqrt,
                    Builtin::Sin => Op::Sin,
                    Builtin::Cos => Op::Cos,
                    Builtin::Erf => Op::Erf,
                    Builtin::Tanh => Op::Tanh,
                    Builtin::Sigmoid => Op::Sigmoid,
                    other => unreachable!("`{other:?}` is not a unary math builtin"),
                };
                // Compile-time numbers are computed by the primitive's reference function.
                let Reference::Unary(f) = op.primitive().reference else {
                    unreachable!("a unary math primitive has a unary reference")
                };
                match a.val(0)? {
                    Val::Int(i) => Ok(Val::Float(f(*i as f64))),
                    Val::Float(x) => Ok(Val::Float(f(*x))),
                    v => {
                        let t = self.tensor_of(v, fl, span)?;
                        let t = self.cast(t, fl);
                        Ok(Val::Tensor(self.emit(op, &[t])))
                    }
                }
            }
            Builtin::Maximum | Builtin::Minimum => {
                let (x, y) = (a.val(0)?.clone(), a.val(1)?.clone());
                if let (Some(p), Some(q)) = (number(&x), number(&y)) {
                    let m = if b == Builtin::Maximum {
                        p.max(q)
                    } else {
                        p.min(q)
                    };
                    return Ok(Val::Float(m));
                }
                let op = if b == Builtin::Maximum {
                    Op::Max
                } else {
                    Op::Min
                };
                self.elementwise(op, &x, &y, span).map(Val::Tensor)
            }
            Builtin::Select => {
                let (c, x, y) = (a.val(0)?.clone(), a.val(1)?.clone(), a.val(2)?.clone());
                let dtype = match (&x, &y) {
                    (Val::Tensor(t), _) | (_, Val::Tensor(t)) => self.ty(*t).dtype,
                    _ => fl,
                };
                let v = self.common_shape(&[(&c, DType::Bool), (&x, dtype), (&y, dtype)], span)?;
                Ok(Val::Tensor(self.emit(Op::Select, &v)))
            }
            Builtin::Cast => {
                let to = match a.val(1)? {
                    Val::Dtype(d) => *d,
                    _ => return Err(LowerError::new("expected a dtype", span)),
                };
                let to = if to.is_float() { fl } else { to };
                match a.val(0)? {
                    Val::Int(i) if to.is_float() => Ok(Val::Float(*i as f64)),
                    Val::Int(i) => Ok(Val::Int(*i)),
                    Val::Float(x) if to == DType::I32 => Ok(Val::Int(x.trunc() as i64)),
                    Val::Float(x) => Ok(Val::Float(*x)),
                    v => {
                        let t = self.tensor_of(v, to, span)?;
                        Ok(Val::Tensor(self.cast(t, to)))
                    }
                }
            }
            // A number becomes a tensor, so that shards can add up their sizes.
            Builtin::AllSum => {
                let t = self.tensor_of(a.val(0)?, fl, span)?;
                let t = self.cast(t, fl);
                Ok(Val::Tensor(self.emit(Op::AllSum, &[t])))
            }
            Builtin::Detach => match a.val(0)? {
                Val::Tensor(t) => Ok(Val::Tensor(self.emit(Op::Detach, &[*t]))),
                v => Ok(v.clone()),
            },
            Builtin::Sum | Builtin::Mean | Builtin::Max | Builtin::Min => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let rank = self.ty(x).rank();
                let axes = a.axes(1, rank)?.unwrap_or_else(|| (0..rank).collect());
                let keep = matches!(a.get(2), Some(Val::Bool(true)));
                Ok(Val::Tensor(self.reduce(b, x, &axes, keep)))
            }
            Builtin::Argmax => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let ty = self.ty(x);
                let (x, axis) = match a.axes(1, ty.rank())? {
                    Some(axes) if axes.len() == 1 => (x, axes[0]),
                    Some(_) => return Err(LowerError::new("argmax takes one axis", span)),
                    None => (self.reshape(x, vec![ty.numel()]), 0),
                };
                Ok(Val::Tensor(self.emit(Op::Argmax { axis }, &[x])))
            }
            Builtin::Reshape | Builtin::BroadcastTo => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let shape = a.sizes(1)?;
                let from = self.ty(x).shape;
                // A definition's reshape of packs (`[B, ..T]` to `[B, ..S]`) is only known to
                // fit once its sizes are: a call whose sizes do not fit is an error here.
                if b == Builtin::Reshape
                    && from.iter().product::<usize>() != shape.iter().product::<usize>()
                {
                    return Err(LowerError::new(
                        format!(
                            "cannot reshape {from:?} into {shape:?}: the number of elements must stay the same"
                        ),
                        span,
                    ));
                }
                Ok(Val::Tensor(if b == Builtin::Reshape {
                    self.reshape(x, shape)
                } else {
                    self.broadcast(x, &shape)
                }))
            }
            Builtin::Flatten => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let shape = self.ty(x).shape;
                let axis = match a.get(1) {
                    Some(_) => normalize_axis(a.int(1)?, shape.len(), span)?,
                    None => 1.min(shape.len()),
                };
                let mut to = shape[..axis].to_vec();
                to.push(shape[axis..].iter().product());
                Ok(Val::Tensor(self.reshape(x, to)))
            }
            Builtin::Permute => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let rank = self.ty(x).rank();
                let perm = a
                    .ints(1)?
                    .into_iter()
                    .map(|p| normalize_axis(p, rank, span))
                    .collect::<Res<Vec<_>>>()?;
                Ok(Val::Tensor(self.permute(x, perm)))
            }
            Builtin::Transpose => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let rank = self.ty(x).rank();
                if rank < 2 {
                    // The checker rejects it (E0202); a value of rank 1 is not its own transpose.
                    return Err(LowerError::new("`transpose` needs at least two axes", span));
                }
                let mut perm: Vec<usize> = (0..rank).collect();
                perm.swap(rank - 2, rank - 1);
                Ok(Val::Tensor(self.permute(x, perm)))
            }
            Builtin::Slice => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let shape = self.ty(x).shape;
                let axis = normalize_axis(a.int(1)?, shape.len(), span)?;
                let n = shape[axis] as i64;
                let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
                let (start, end) = (clamp(a.int(2)?), clamp(a.int(3)?));
                if start > end {
                    return Err(LowerError::new("empty slice", span));
                }
                if start == 0 && end == shape[axis] {
                    return Ok(Val::Tensor(x));
                }
                Ok(Val::Tensor(self.emit(Op::Slice { axis, start, end }, &[x])))
            }
            Builtin::Pad => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let ty = self.ty(x);
                let axis = normalize_axis(a.int(1)?, ty.rank(), span)?;
                let (lo, hi) = (a.size(2)?, a.size(3)?);
                let value = a.get(4).and_then(number).unwrap_or(0.0);
                if value == 0.0 {
                    return Ok(Val::Tensor(self.emit(Op::Pad { axis, lo, hi }, &[x])));
                }
                let mut parts = Vec::new();
                for (n, is_x) in [(lo, false), (0, true), (hi, false)] {
                    if is_x {
                        parts.push(x);
                    } else if n > 0 {
                        let mut s = ty.shape.clone();
                        s[axis] = n;
                        parts.push(self.constant(value, TensorType::new(ty.dtype, s)));
                    }
                }
                Ok(Val::Tensor(self.emit(Op::Concat { axis }, &parts)))
            }
            Builtin::Concat | Builtin::Stack => {
                let Val::List(items) = a.val(0)?.clone() else {
                    return Err(LowerError::new("expected a list of tensors", span));
                };
                let ts = items
                    .iter()
                    .map(|i| self.tensor_of(i, fl, span))
                    .collect::<Res<Vec<_>>>()?;
                let first = self.ty(ts[0]).shape;
                if b == Builtin::Concat {
                    let axis = normalize_axis(a.int_or(1, -1)?, first.len(), span)?;
                    return Ok(Val::Tensor(self.emit(Op::Concat { axis }, &ts)));
                }
                let axis = normalize_axis(a.int_or(1, 0)?, first.len() + 1, span)?;
                let mut shape = first.clone();
                shape.insert(axis, 1);
                let parts: Vec<Tv> = ts.iter().map(|t| self.reshape(*t, shape.clone())).collect();
                Ok(Val::Tensor(self.emit(Op::Concat { axis }, &parts)))
            }
            Builtin::Split => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let shape = self.ty(x).shape;
                let parts = a.size(1)?;
                let axis = normalize_axis(a.int_or(2, -1)?, shape.len(), span)?;
                if parts == 0 || !shape[axis].is_multiple_of(parts) {
                    return Err(LowerError::new("the parts do not divide the axis", span));
                }
                let w = shape[axis] / parts;
                let pieces = (0..parts)
                    .map(|i| {
                        let s = Op::Slice {
                            axis,
                            start: i * w,
                            end: (i + 1) * w,
                        };
                        Val::Tensor(self.emit(s, &[x]))
                    })
                    .collect();
                Ok(Val::Tuple(pieces))
            }
            Builtin::Matmul => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let y = self.tensor_of(a.val(1)?, fl, span)?;
                self.matmul(x, y, span).map(Val::Tensor)
            }
            Builtin::Unfold | Builtin::Fold => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let k = if b == Builtin::Unfold { 1 } else { 2 };
                let window = Window {
                    kernel: a.size(k)?,
                    stride: a.size_or(k + 1, 1)?,
                    padding: a.size_or(k + 2, 0)?,
                    dilation: a.size_or(k + 3, 1)?,
                };
                if b == Builtin::Unfold {
                    return Ok(Val::Tensor(self.emit(Op::Unfold(window), &[x])));
                }
                let size = a.sizes(1)?;
                let [h, w] = size[..] else {
                    return Err(LowerError::new("fold needs a size [H, W]", span));
                };
                Ok(Val::Tensor(self.emit(
                    Op::Fold {
                        window,
                        size: [h, w],
                    },
                    &[x],
                )))
            }
            Builtin::Gather => {
                let table = self.tensor_of(a.val(0)?, fl, span)?;
                let ids = self.tensor_of(a.val(1)?, DType::I32, span)?;
                Ok(Val::Tensor(self.emit(Op::Gather, &[table, ids])))
            }
            Builtin::ScatterAdd => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let ids = self.tensor_of(a.val(1)?, DType::I32, span)?;
                let rows = a.size(2)?;
                Ok(Val::Tensor(self.emit(Op::ScatterAdd { rows }, &[ids, x])))
            }
            Builtin::Pick => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let ids = self.tensor_of(a.val(1)?, DType::I32, span)?;
                let classes = self.ty(x).shape.last().copied().unwrap_or(1);
                let mask = self.one_hot_mask(ids, classes);
                let xs = self.ty(x);
                let zero = self.constant(0.0, xs.clone());
                let picked = self.emit(Op::Select, &[mask, x, zero]);
                Ok(Val::Tensor(self.sum_axes(picked, &[xs.rank() - 1], false)))
            }
            Builtin::OneHot => {
                let ids = self.tensor_of(a.val(0)?, DType::I32, span)?;
                let n = a.size(1)?;
                let mask = self.one_hot_mask(ids, n);
                Ok(Val::Tensor(self.cast(mask, fl)))
            }
            Builtin::Zeros | Builtin::Ones | Builtin::Full => {
                let shape = a.sizes(0)?;
                let value = match b {
                    Builtin::Zeros => 0.0,
                    Builtin::Ones => 1.0,
                    _ => number(a.val(1)?)
                        .ok_or_else(|| LowerError::new("expected a number", span))?,
                };
                Ok(Val::Tensor(
                    self.constant(value, TensorType::new(fl, shape)),
                ))
            }
            Builtin::ZerosLike | Builtin::OnesLike => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let value = if b == Builtin::ZerosLike { 0.0 } else { 1.0 };
                let ty = self.ty(x);
                Ok(Val::Tensor(self.constant(value, ty)))
            }
            Builtin::Arange => {
                let n = a.size(0)?;
                let ty = TensorType::new(fl, vec![n]);
                Ok(Val::Tensor(self.emit(Op::Iota { axis: 0, ty }, &[])))
            }
            Builtin::Positions => Ok(Val::Tensor(self.positions(a.size(0)?))),
            Builtin::Cached => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let axis = normalize_axis(a.int(1)?, self.ty(x).rank(), span)?;
                self.cached(x, axis, span).map(Val::Tensor)
            }
            Builtin::CausalMask => {
                let s = self.tensor_of(a.val(0)?, fl, span)?;
                self.causal_mask(s, span).map(Val::Tensor)
            }
            Builtin::RandUniform | Builtin::RandNormal => {
                let shape = a.sizes(0)?;
                let dist = if b == Builtin::RandUniform {
                    Dist::Uniform
                } else {
                    Dist::Normal
                };
                Ok(Val::Tensor(self.random(dist, TensorType::new(fl, shape))))
            }
            Builtin::Shape => {
                let x = self.tensor_of(a.val(0)?, fl, span)?;
                let shape = self.ty(x).shape;
                Ok(Val::List(
                    shape.iter().map(|&d| Val::Int(d as i64)).collect(),
                ))
            }
            Builtin::Params => {
                let r = match a.val(0)? {
                    Val::Def(r) => *r,
                    Val::Layer(l) => l.def,
                    Val::Params(p) => return Ok(Val::Params(p.clone())),
                    _ => return Err(LowerError::new("`params` takes a model", span)),
                };
                let prefix = format!("{}.", self.def_name(r));
                let names = self
                    .vars
                    .params
                    .iter()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .map(|(n, _)| n.clone())
                    .collect();
                Ok(Val::Params(names))
            }
            Builtin::SumOver => {
                let Val::Params(names) = a.val(0)?.clone() else {
                    return Err(LowerError::new("`sum_over` takes a parameter set", span));
                };
                let f = a.val(1)?.clone();
                let mut total: Option<Tv> = None;
                for n in names {
                    let id = self.vars.values.get(&n).copied().ok_or_else(|| {
                        LowerError::new(format!("parameter `{n}` is not used by this graph"), span)
                    })?;
                    let arg = ArgV {
                        name: None,
                        val: Val::Tensor(Tv { level: 0, id }),
                        span,
                    };
                    let v = self.call(f.clone(), vec![arg], span)?;
                    let t = self.tensor_of(&v, fl, span)?;
                    total = Some(match total {
                        Some(acc) => self.emit(Op::Add, &[acc, t]),
                        None => t,
                    });
                }
                Ok(match total {
                    Some(t) => Val::Tensor(t),
                    None => Val::Tensor(self.constant(0.0, TensorType::scalar(fl))),
                })
            }
        }
    }

    fn reduce(&mut self, b: Builtin, x: crate::lower::Tv, axes: &[usize], keep: bool) -> Tv {
        match b {
            Builtin::Sum => self.sum_axes(x, axes, keep),
            Builtin::Mean => {
                let shape = self.ty(x).shape;
                let n: usize = axes.iter().map(|&a| shape[a]).product();
                let s = self.sum_axes(x, axes, keep);
                let ty = self.ty(s);
                let c = self.constant(n as f64, ty);
                self.emit(Op::Div, &[s, c])
            }
            Builtin::Max => self.max_axes(x, axes, keep),
            _ => {
                let neg = self.emit(Op::Neg, &[x]);
                let m = self.max_axes(neg, axes, keep);
                self.emit(Op::Neg, &[m])
            }
        }
    }

    fn permute(&mut self, x: Tv, perm: Vec<usize>) -> Tv {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return x;
        }
        self.emit(Op::Permute { perm }, &[x])
    }

    /// `ids[..S]` → bool `[..S, n]`, true where the last index equals the id.
    fn one_hot_mask(&mut self, ids: Tv, n: usize) -> Tv {
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

pub(super) fn number(v: &Val) -> Option<f64> {
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

/// A builtin's arguments matched to its parameter slots.
struct Args {
    slots: Vec<Option<ArgV>>,
    span: Span,
}

impl Args {
    fn get(&self, i: usize) -> Option<&Val> {
        self.slots.get(i)?.as_ref().map(|a| &a.val)
    }

    fn val(&self, i: usize) -> Res<&Val> {
        self.get(i)
            .ok_or_else(|| LowerError::new("a required argument is missing", self.span))
    }

    fn span(&self, i: usize) -> Span {
        self.slots
            .get(i)
            .and_then(|a| a.as_ref())
            .map_or(self.span, |a| a.span)
    }

    fn int(&self, i: usize) -> Res<i64> {
        match self.val(i)? {
            Val::Int(v) => Ok(*v),
            other => Err(LowerError::new(
                format!("expected an integer, found {}", describe(other)),
                self.span(i),
            )),
        }
    }

    fn int_or(&self, i: usize, default: i64) -> Res<i64> {
        match self.get(i) {
            Some(_) => self.int(i),
            None => Ok(default),
        }
    }

    fn size(&self, i: usize) -> Res<usize> {
        size_of(self.val(i)?, self.span(i))
    }

    fn size_or(&self, i: usize, default: usize) -> Res<usize> {
        match self.get(i) {
            Some(v) => size_of(v, self.span(i)),
            None => Ok(default),
        }
    }

    fn ints(&self, i: usize) -> Res<Vec<i64>> {
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

    fn sizes(&self, i: usize) -> Res<Vec<usize>> {
        match self.val(i)? {
            Val::List(xs) => xs.iter().map(|x| size_of(x, self.span(i))).collect(),
            other => Err(LowerError::new(
                format!("expected a shape, found {}", describe(other)),
                self.span(i),
            )),
        }
    }

    /// An `axis:` argument (one axis or a list), normalized; None when absent.
    fn axes(&self, i: usize, rank: usize) -> Res<Option<Vec<usize>>> {
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

//! Emitting primitives: constants, numpy broadcasting made explicit, reductions with `keep`,
//! matmul with broadcast batch axes. Every node gets the current source location and scope.

use super::{Lowerer, Res, Tv, Val};
use crate::ir::{DType, Op, TensorType, ValueId};
use crate::source::Span;

impl Lowerer<'_> {
    pub(crate) fn emit(&mut self, op: Op, args: &[Tv]) -> Tv {
        let ids: Vec<ValueId> = args.iter().map(|a| self.use_tv(*a)).collect();
        self.set_scope_loc();
        let loc = self.loc.clone();
        let id = self.g().add(op, ids, loc);
        self.tv(id)
    }

    pub(crate) fn ty(&mut self, t: Tv) -> TensorType {
        self.graphs[t.level].g.ty(t.id).clone()
    }

    pub(crate) fn constant(&mut self, value: f64, ty: TensorType) -> Tv {
        self.emit(Op::Const { value, ty }, &[])
    }

    /// A tensor from a value: tensors as they are, numbers and bools as scalars of `dtype`.
    pub(crate) fn tensor_of(&mut self, v: &Val, dtype: DType, span: Span) -> Res<Tv> {
        match v {
            Val::Tensor(t) => Ok(*t),
            Val::Int(i) => Ok(self.constant(*i as f64, TensorType::scalar(dtype))),
            Val::Float(x) => Ok(self.constant(*x, TensorType::scalar(dtype))),
            Val::Bool(b) => {
                Ok(self.constant(if *b { 1.0 } else { 0.0 }, TensorType::scalar(DType::Bool)))
            }
            other => Err(super::LowerError::new(
                format!("expected a tensor, found {}", describe(other)),
                span,
            )),
        }
    }

    pub(crate) fn reshape(&mut self, t: Tv, shape: Vec<usize>) -> Tv {
        if self.ty(t).shape == shape {
            return t;
        }
        self.emit(Op::Reshape { shape }, &[t])
    }

    pub(crate) fn broadcast(&mut self, t: Tv, shape: &[usize]) -> Tv {
        if self.ty(t).shape == shape {
            return t;
        }
        self.emit(
            Op::Broadcast {
                shape: shape.to_vec(),
            },
            &[t],
        )
    }

    pub(crate) fn cast(&mut self, t: Tv, to: DType) -> Tv {
        if self.ty(t).dtype == to {
            return t;
        }
        self.emit(Op::Cast { to }, &[t])
    }

    /// Values brought to their common (numpy) shape, each in its dtype: tensors broadcast,
    /// numbers become constants of the full shape (not scalars broadcast afterwards).
    pub(crate) fn common_shape(&mut self, vals: &[(&Val, DType)], span: Span) -> Res<Vec<Tv>> {
        let shapes: Vec<Vec<usize>> = vals
            .iter()
            .filter_map(|(v, _)| match v {
                Val::Tensor(t) => Some(self.ty(*t).shape),
                _ => None,
            })
            .collect();
        let shape = broadcast_shape(&shapes).ok_or_else(|| {
            super::LowerError::new(format!("shapes {shapes:?} do not broadcast"), span)
        })?;
        vals.iter()
            .map(|(v, dtype)| match v {
                Val::Tensor(t) => {
                    let t = self.cast(*t, *dtype);
                    Ok(self.broadcast(t, &shape))
                }
                Val::Int(i) => Ok(self.constant(*i as f64, TensorType::new(*dtype, shape.clone()))),
                Val::Float(x) => Ok(self.constant(*x, TensorType::new(*dtype, shape.clone()))),
                Val::Bool(b) => {
                    let value = if *b { 1.0 } else { 0.0 };
                    Ok(self.constant(value, TensorType::new(DType::Bool, shape.clone())))
                }
                other => Err(super::LowerError::new(
                    format!("expected a tensor, found {}", describe(other)),
                    span,
                )),
            })
            .collect()
    }

    /// A binary elementwise op on values, numbers becoming constants of the other side's dtype.
    /// Mixed int/float tensors compute in float, as the checker allows for `i32 * f32`.
    pub(crate) fn elementwise(&mut self, op: Op, a: &Val, b: &Val, span: Span) -> Res<Tv> {
        let dtype_of = |this: &mut Self, v: &Val| match v {
            Val::Tensor(t) => Some(this.ty(*t).dtype),
            _ => None,
        };
        let dtype = match (dtype_of(self, a), dtype_of(self, b)) {
            (Some(x), Some(y)) if x.is_float() != y.is_float() => {
                if x.is_float() {
                    x
                } else {
                    y
                }
            }
            (Some(x), _) | (None, Some(x)) => x,
            (None, None) if matches!(a, Val::Bool(_)) => DType::Bool,
            (None, None) => self.float,
        };
        let v = self.common_shape(&[(a, dtype), (b, dtype)], span)?;
        Ok(self.emit(op, &v))
    }

    pub(crate) fn sum_axes(&mut self, t: Tv, axes: &[usize], keep: bool) -> Tv {
        let op = Op::Sum {
            axes: axes.to_vec(),
        };
        self.reduce_axes(op, t, axes, keep)
    }

    pub(crate) fn max_axes(&mut self, t: Tv, axes: &[usize], keep: bool) -> Tv {
        let op = Op::ReduceMax {
            axes: axes.to_vec(),
        };
        self.reduce_axes(op, t, axes, keep)
    }

    /// A reduction over `axes` (none: the value itself), reshaped to keep them as size 1.
    fn reduce_axes(&mut self, op: Op, t: Tv, axes: &[usize], keep: bool) -> Tv {
        let shape = self.ty(t).shape;
        let r = if axes.is_empty() {
            t
        } else {
            self.emit(op, &[t])
        };
        if keep {
            self.reshape(r, kept_shape(&shape, axes))
        } else {
            r
        }
    }

    /// `a @ b` with the language's rules: a 2-d right side applies to every leading axis of the
    /// left (folded into the rows, so no weight is copied per batch element); otherwise the batch
    /// axes broadcast.
    pub(crate) fn matmul(&mut self, a: Tv, b: Tv, span: Span) -> Res<Tv> {
        let (sa, sb) = (self.ty(a).shape, self.ty(b).shape);
        let err = || super::LowerError::new(format!("cannot multiply {sa:?} by {sb:?}"), span);
        match (sa.len(), sb.len()) {
            (0, _) | (_, 0) => Err(err()),
            (_, 1) => {
                let b2 = self.reshape(b, vec![sb[0], 1]);
                let r = self.matmul(a, b2, span)?;
                let shape = self.ty(r).shape;
                Ok(self.reshape(r, shape[..shape.len() - 1].to_vec()))
            }
            (1, _) => {
                let a2 = self.reshape(a, vec![1, sa[0]]);
                let r = self.matmul(a2, b, span)?;
                let mut shape = self.ty(r).shape;
                shape.remove(shape.len() - 2);
                Ok(self.reshape(r, shape))
            }
            (ra, 2) if ra > 2 => {
                let rows: usize = sa[..ra - 1].iter().product();
                let a2 = self.reshape(a, vec![rows, sa[ra - 1]]);
                let r = self.emit(crate::ir::Op::MatMul, &[a2, b]);
                let mut shape = sa[..ra - 1].to_vec();
                shape.push(sb[1]);
                Ok(self.reshape(r, shape))
            }
            (ra, rb) => {
                let batch_a = sa[..ra - 2].to_vec();
                let batch_b = sb[..rb - 2].to_vec();
                let batch = broadcast_shape(&[batch_a, batch_b]).ok_or_else(err)?;
                let mut shape_a = batch.clone();
                shape_a.extend_from_slice(&sa[ra - 2..]);
                let mut shape_b = batch;
                shape_b.extend_from_slice(&sb[rb - 2..]);
                let a = self.broadcast(a, &shape_a);
                let b = self.broadcast(b, &shape_b);
                if sa[ra - 1] != sb[rb - 2] {
                    return Err(err());
                }
                Ok(self.emit(crate::ir::Op::MatMul, &[a, b]))
            }
        }
    }
}

/// The shape with the reduced axes kept as size 1.
pub(super) fn kept_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

/// Numpy broadcasting of several shapes.
pub(super) fn broadcast_shape(shapes: &[Vec<usize>]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for s in shapes {
        let offset = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[offset + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

pub(super) fn describe(v: &Val) -> &'static str {
    match v {
        Val::Tensor(_) => "a tensor",
        Val::Int(_) => "an integer",
        Val::Float(_) => "a number",
        Val::Bool(_) => "a bool",
        Val::Str => "a string",
        Val::Dtype(_) => "a dtype",
        Val::Tuple(_) => "a tuple",
        Val::List(_) => "a list",
        Val::Closure(_) => "a closure",
        Val::Def(_) | Val::Builtin(_) => "a function",
        Val::Layer(_) => "a layer",
        Val::Init(..) => "an initializer",
        Val::Rule(..) => "an optimizer or schedule",
        Val::Params(_) => "a parameter set",
        Val::Unit => "nothing",
    }
}

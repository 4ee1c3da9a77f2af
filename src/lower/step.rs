//! The builtins whose lowering depends on whether a causal model is lowered for one new
//! position (generation with a key/value cache, `StepMode`) or for whole sequences: `positions`,
//! `cached` and `causal_mask`. For whole sequences they are `iota`, the identity and a
//! lower-triangular mask; at one position they read the `position` input and the caches, so the
//! same model definition serves both.

use super::{LowerError, Lowerer, Res, StepMode, Tv};
use crate::ir::{CmpOp, DType, Op, Role, TensorType};
use crate::source::Span;

impl Lowerer<'_> {
    /// A model input's type at one position: its sequence axis (axis 1) holds one id, and its
    /// length is the length of the caches.
    pub(super) fn one_position(&mut self, mut ty: TensorType, span: Span) -> Res<TensorType> {
        if ty.rank() < 2 {
            return Err(LowerError::new(
                format!(
                    "generating one position at a time needs sequences [B, T, …]; this input is {ty}"
                ),
                span,
            ));
        }
        let context = ty.shape[1];
        match &self.step {
            Some(s) if s.context != context => {
                return Err(LowerError::new(
                    format!(
                        "this input's sequences are {context} long, another input's {}",
                        s.context
                    ),
                    span,
                ));
            }
            Some(_) => {}
            None => {
                self.step = Some(StepMode {
                    context,
                    position: None,
                    caches: Vec::new(),
                })
            }
        }
        ty.shape[1] = 1;
        Ok(ty)
    }

    /// The `position` input at one position; None for whole sequences.
    fn step_position(&mut self) -> Option<Tv> {
        let step = self.step.as_mut()?;
        let id = match step.position {
            Some(id) => id,
            None => {
                let id =
                    self.graphs[0]
                        .g
                        .input("position", Role::Data, TensorType::scalar(DType::I32));
                step.position = Some(id);
                id
            }
        };
        Some(Tv { level: 0, id })
    }

    /// `positions(n)`: `0..n`, or `position + 0..n` at one position.
    pub(crate) fn positions(&mut self, n: usize) -> Tv {
        let ty = TensorType::new(DType::I32, vec![n]);
        let iota = self.emit(Op::Iota { axis: 0, ty }, &[]);
        match self.step_position() {
            Some(p) => {
                let p = self.broadcast(p, &[n]);
                self.emit(Op::Add, &[iota, p])
            }
            None => iota,
        }
    }

    /// `cached(x, axis)`: `x`, or at one position the cache of `x` along `axis` with this
    /// position's value written in (slots after it hold zeros or stale values, which
    /// `causal_mask` hides).
    pub(crate) fn cached(&mut self, x: Tv, axis: usize, span: Span) -> Res<Tv> {
        let Some(context) = self.step.as_ref().map(|s| s.context) else {
            return Ok(x);
        };
        if self.level() != 0 {
            return Err(LowerError::new(
                "a `cached` value inside a `scan` cannot be generated one position at a time",
                span,
            ));
        }
        let ty = self.ty(x);
        if ty.shape[axis] != 1 {
            return Err(LowerError::new(
                format!(
                    "at one position, a cached value has one entry along axis {axis}; this is {ty}"
                ),
                span,
            ));
        }
        let mut shape = ty.shape.clone();
        shape[axis] = context;
        let path = self.scopes.last().map_or("", |s| s.path.as_str());
        let prefix = format!("cache.{path}.");
        let step = self.step.as_ref().expect("in step mode");
        let n = step
            .caches
            .iter()
            .filter(|(c, _)| c.starts_with(&prefix))
            .count();
        let name = format!("{prefix}{n}");
        let old = self.graphs[0].g.input(
            name.clone(),
            Role::State,
            TensorType::new(ty.dtype, shape.clone()),
        );
        let old = Tv { level: 0, id: old };
        let position = self.step_position().expect("in step mode");
        let slot = self.emit(
            Op::Iota {
                axis,
                ty: TensorType::new(DType::I32, shape.clone()),
            },
            &[],
        );
        let position = self.broadcast(position, &shape);
        let here = self.emit(Op::Cmp(CmpOp::Eq), &[slot, position]);
        let x = self.broadcast(x, &shape);
        let new = self.emit(Op::Select, &[here, x, old]);
        self.step
            .as_mut()
            .expect("in step mode")
            .caches
            .push((name, new));
        Ok(new)
    }

    /// `causal_mask(scores)`: −1e9 where the key (last axis) lies after the query (the axis
    /// before), the queries at positions `0..` or, at one position, at `position`.
    pub(crate) fn causal_mask(&mut self, scores: Tv, span: Span) -> Res<Tv> {
        let ty = self.ty(scores);
        let r = ty.rank();
        if r < 2 {
            return Err(LowerError::new(
                "`causal_mask` needs [..S, queries, keys]",
                span,
            ));
        }
        let grid = TensorType::new(DType::I32, vec![ty.shape[r - 2], ty.shape[r - 1]]);
        let keys = self.emit(
            Op::Iota {
                axis: 1,
                ty: grid.clone(),
            },
            &[],
        );
        let mut queries = self.emit(
            Op::Iota {
                axis: 0,
                ty: grid.clone(),
            },
            &[],
        );
        if let Some(p) = self.step_position() {
            let p = self.broadcast(p, &grid.shape);
            queries = self.emit(Op::Add, &[queries, p]);
        }
        let visible = self.emit(Op::Cmp(CmpOp::Le), &[keys, queries]);
        let visible = self.broadcast(visible, &ty.shape);
        let hidden = self.constant(-1e9, ty);
        Ok(self.emit(Op::Select, &[visible, scores, hidden]))
    }
}

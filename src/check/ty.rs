//! The checker's types: tensors with symbolic shapes, compile-time integers (dimensions and
//! attributes), scalars, and the callable things a program passes around.

use super::dim::{Dim, Sym};
use crate::builtins::Builtin;
use crate::resolve::ItemRef;
use crate::source::Span;
use crate::syntax::ast::{Dtype, Expr, Pattern, Symbol};
use std::fmt;
use std::rc::Rc;

/// The most elements a tensor may have: its size in bytes (at most 8 per element) then fits in
/// 63 bits, so that no later stage's size arithmetic can overflow. No machine comes near it.
pub const MAX_ELEMENTS: i64 = 1 << 60;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ShapeElem {
    Dim(Dim),
    /// A rigid pack `..S` of unknown rank (inside a definition checked on its own).
    Pack(Sym),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Rc<Vec<ShapeElem>>);

impl Shape {
    pub fn of_dims(dims: impl IntoIterator<Item = Dim>) -> Shape {
        Shape(
            dims.into_iter()
                .map(ShapeElem::Dim)
                .collect::<Vec<_>>()
                .into(),
        )
    }

    pub fn scalar() -> Shape {
        Shape(Vec::new().into())
    }

    pub fn has_pack(&self) -> bool {
        self.0.iter().any(|e| matches!(e, ShapeElem::Pack(_)))
    }

    /// The rank, when no pack hides it.
    pub fn rank(&self) -> Option<usize> {
        (!self.has_pack()).then_some(self.0.len())
    }

    pub fn dims(&self) -> Option<Vec<Dim>> {
        self.0
            .iter()
            .map(|e| match e {
                ShapeElem::Dim(d) => Some(d.clone()),
                ShapeElem::Pack(_) => None,
            })
            .collect()
    }

    /// The number of elements, symbolically.
    pub fn numel(&self) -> Dim {
        self.0.iter().fold(Dim::constant(1), |acc, e| match e {
            ShapeElem::Dim(d) => acc.mul(d),
            ShapeElem::Pack(s) => acc.mul(&Dim::prod_of_pack(s.clone())),
        })
    }

    /// Why no tensor can have this shape, if none can: a dimension whose arithmetic overflowed
    /// 64 bits, or more elements than [`MAX_ELEMENTS`] (counting a symbol as at least 1).
    pub fn too_large(&self) -> Option<String> {
        let mut known: u128 = 1;
        for e in self.0.iter() {
            let ShapeElem::Dim(d) = e else { continue };
            if d.is_overflow() {
                return Some("a dimension of this shape does not fit in 64 bits".into());
            }
            if let Some(c) = d.as_const().filter(|c| *c > 0) {
                known = known.saturating_mul(c as u128);
            }
        }
        (known > MAX_ELEMENTS as u128).then(|| {
            let about = if known == u128::MAX {
                "more than 2^128".to_string()
            } else {
                format!("{known}")
            };
            format!("a tensor of shape {self} would hold {about} elements; the most a tensor can hold is 2^60")
        })
    }

    /// Concrete sizes, when every dimension is a number.
    pub fn concrete(&self) -> Option<Vec<i64>> {
        self.dims()?.iter().map(Dim::as_const).collect()
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            match e {
                ShapeElem::Dim(d) => write!(f, "{d}")?,
                ShapeElem::Pack(s) => write!(f, "..{}", s.name)?,
            }
        }
        write!(f, "]")
    }
}

/// A layer with its attributes bound, ready to be applied to inputs. Each one owns its
/// parameters; applying the same instance twice shares them.
#[derive(Debug)]
pub struct Instance {
    pub id: u32,
    pub def: ItemRef,
    pub attrs: Vec<(Symbol, Ty)>,
    pub span: Span,
    /// Where it was made, while a model is expanded (see [`super::Site`]).
    pub site: super::Site,
}

#[derive(Debug, Clone)]
pub struct Var {
    pub name: Symbol,
    pub ty: Ty,
    pub span: Span,
    pub kind: VarKind,
    pub used: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    Plain,
    Param,
    State,
    /// A `let` holding a layer's output: unused, it is wasted work (a warning).
    LayerOutput,
}

#[derive(Debug)]
pub struct Closure {
    pub params: Vec<Pattern>,
    pub body: Expr,
    pub env: Vec<Var>,
    pub module: usize,
}

#[derive(Debug, Clone)]
pub enum Callable {
    Builtin(Builtin),
    Def(ItemRef),
    Closure(Rc<Closure>),
    /// An initializer that takes arguments: `uniform(0.05)`, `normal(0.02)`.
    Init(crate::prim::Initializer),
}

#[derive(Debug, Clone)]
pub enum Ty {
    Tensor(Dtype, Shape),
    /// A compile-time integer: a literal, an `int` attribute or a dimension.
    Int(Dim),
    /// A scalar float: a literal, an `f32` attribute, a schedule's value; its value when known.
    Float(Option<f64>),
    Bool(Option<bool>),
    Str(String),
    /// A list of integers (and packs): a shape, a permutation, a list of axes.
    Shape(Shape),
    /// A list of other values, such as the tensors given to `concat`.
    List(Vec<Ty>),
    Tuple(Vec<Ty>),
    Callable(Callable),
    Layer(Rc<Instance>),
    /// A configured optimizer or constraint, ready for `update … with`.
    Rule(ItemRef),
    Init,
    Dtype(Dtype),
    ParamSet,
    /// The value of an expression that already failed: no further errors are derived from it.
    Unknown,
}

impl Ty {
    pub fn tensor(dtype: Dtype, shape: Shape) -> Ty {
        Ty::Tensor(dtype, shape)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Ty::Unknown)
    }

    /// Why this value cannot exist, if it cannot: an integer beyond 64 bits or a tensor too
    /// large for any machine (see [`Shape::too_large`]).
    pub fn too_large(&self) -> Option<String> {
        match self {
            Ty::Int(d) if d.is_overflow() => Some(format!(
                "this integer does not fit in 64 bits (the largest is {})",
                i64::MAX
            )),
            Ty::Tensor(_, s) => s.too_large(),
            Ty::Shape(s) => {
                s.0.iter()
                    .any(|e| matches!(e, ShapeElem::Dim(d) if d.is_overflow()))
                    .then(|| "a number in this list does not fit in 64 bits".into())
            }
            Ty::List(ts) | Ty::Tuple(ts) => ts.iter().find_map(Ty::too_large),
            _ => None,
        }
    }

    /// Scalar values that adapt to a tensor's dtype (weak scalars, like JAX's).
    pub fn is_weak_scalar(&self) -> bool {
        matches!(self, Ty::Int(_) | Ty::Float(_))
    }

    /// The shape, for tensors and scalars.
    pub fn shape(&self) -> Option<Shape> {
        match self {
            Ty::Tensor(_, s) => Some(s.clone()),
            Ty::Int(_) | Ty::Float(_) | Ty::Bool(_) => Some(Shape::scalar()),
            _ => None,
        }
    }

    pub fn is_scalar(&self) -> bool {
        self.shape().is_some_and(|s| s.0.is_empty())
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Tensor(dt, s) if s.0.is_empty() => write!(f, "{} (a scalar)", dt.name()),
            Ty::Tensor(dt, s) => write!(f, "{}{s}", dt.name()),
            Ty::Int(d) => match d.as_const() {
                Some(c) => write!(f, "int ({c})"),
                None => write!(f, "int ({d})"),
            },
            Ty::Float(_) => write!(f, "f32 (a scalar)"),
            Ty::Bool(_) => write!(f, "bool"),
            Ty::Str(_) => write!(f, "str"),
            Ty::Shape(s) => write!(f, "the list {s}"),
            Ty::List(items) => {
                write!(f, "a list of ")?;
                match items.first() {
                    Some(t) => write!(f, "{} × {t}", items.len()),
                    None => write!(f, "nothing"),
                }
            }
            Ty::Tuple(items) => {
                write!(f, "(")?;
                for (i, t) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{t}")?;
                }
                write!(f, ")")
            }
            Ty::Callable(Callable::Builtin(_)) => write!(f, "a builtin function"),
            Ty::Callable(Callable::Def(_)) => write!(f, "a definition"),
            Ty::Callable(Callable::Closure(_)) => write!(f, "a closure"),
            Ty::Callable(Callable::Init(_)) | Ty::Init => write!(f, "an initializer"),
            Ty::Layer(_) => write!(f, "a layer"),
            Ty::Rule(_) => write!(f, "an optimizer or constraint"),
            Ty::Dtype(d) => write!(f, "the dtype {}", d.name()),
            Ty::ParamSet => write!(f, "a parameter set"),
            Ty::Unknown => write!(f, "an unknown value"),
        }
    }
}

/// Two types are the same: equal dtypes and shapes equal dimension by dimension.
/// Weak scalars match any float scalar, and ints match floats.
pub fn same_type(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Unknown, _) | (_, Ty::Unknown) => true,
        (Ty::Tensor(d1, s1), Ty::Tensor(d2, s2)) => d1 == d2 && s1 == s2,
        (Ty::Tensor(d, s), Ty::Float(_) | Ty::Int(_))
        | (Ty::Float(_) | Ty::Int(_), Ty::Tensor(d, s)) => d.is_float() && s.0.is_empty(),
        (Ty::Float(_) | Ty::Int(_), Ty::Float(_) | Ty::Int(_)) => true,
        (Ty::Bool(_), Ty::Bool(_)) => true,
        (Ty::Tuple(x), Ty::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_type(p, q))
        }
        (Ty::Shape(x), Ty::Shape(y)) => x == y,
        (Ty::Str(_), Ty::Str(_)) | (Ty::Init, Ty::Init) | (Ty::ParamSet, Ty::ParamSet) => true,
        _ => false,
    }
}

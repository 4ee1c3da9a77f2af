//! The tensor and kernel layer both backends share: runtime tensors and the element traits that
//! let one generic kernel serve every dtype (dtype dispatch), the scalar math every backend calls
//! (`math`: f32 `exp`, `erf`), the counter-based random numbers (`random`), the kernels of every
//! primitive on whole tensors (`kernels`; the interpreter runs them all, the JIT the ones it does
//! not compile) with the slice kernels of windows and gather/scatter (`linalg`), and the one error
//! type both backends return ([`RunError`]).

pub mod kernels;
pub mod linalg;
pub mod math;
pub mod product;
pub mod random;

use crate::ir::{DType, Loc, Node, TensorType};
use ndarray::{ArrayD, Axis, IxDyn};
use std::borrow::Cow;
use std::fmt;

/// Why a run failed, and where: the node (its index in the graph that holds it, which for a node
/// of a scan body is the body), its op and its source location. Both backends return it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunError {
    pub message: String,
    pub node: Option<usize>,
    pub op: Option<&'static str>,
    pub loc: Option<Loc>,
}

impl RunError {
    pub fn at(index: usize, node: &Node, message: String) -> RunError {
        RunError {
            message,
            node: Some(index),
            op: Some(node.op.name()),
            loc: Some(node.loc.clone()),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.node, self.op) {
            (Some(n), Some(op)) => write!(f, "%{n} = {op}")?,
            (Some(n), None) => write!(f, "%{n}")?,
            (None, Some(op)) => write!(f, "{op}")?,
            (None, None) => {}
        }
        if let Some(loc) = self.loc.as_ref().filter(|l| l.is_known()) {
            let scope = if loc.scope.is_empty() {
                String::new()
            } else {
                format!("{} ", loc.scope)
            };
            write!(f, " ({scope}@ {}:{}:{})", loc.file, loc.line, loc.col)?;
        }
        if self.node.is_some() || self.op.is_some() {
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for RunError {}

/// Binds the type name `$T` to the element type of `$dtype` and evaluates `$body`.
macro_rules! by_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}

/// `by_dtype` for the types with arithmetic; on bool, returns an error naming `$what`.
macro_rules! by_num {
    ($dtype:expr, $what:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::Bool => return Err(format!("`{}` of a bool tensor", $what)),
        }
    };
}

/// `by_dtype` for the float types; otherwise returns an error naming `$what`.
macro_rules! by_float {
    ($dtype:expr, $what:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
            d => return Err(format!("`{}` of a {} tensor", $what, d.name())),
        }
    };
}

pub(crate) use {by_dtype, by_float, by_num};

/// A value at run time: an owned n-dimensional array of one of the IR's dtypes.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::I32(_) => DType::I32,
            Tensor::Bool(_) => DType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::F32(a) => a.shape(),
            Tensor::F64(a) => a.shape(),
            Tensor::I32(a) => a.shape(),
            Tensor::Bool(a) => a.shape(),
        }
    }

    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype(), self.shape().to_vec())
    }

    pub fn zeros(ty: &TensorType) -> Tensor {
        by_dtype!(ty.dtype, T => T::wrap(ArrayD::default(IxDyn(&ty.shape))))
    }

    /// A tensor of type `ty` from row-major values, each converted as `cast` converts an f64.
    ///
    /// Panics if `data` does not hold exactly `ty.numel()` values.
    pub fn from_f64(ty: &TensorType, data: Vec<f64>) -> Tensor {
        assert_eq!(
            data.len(),
            ty.numel(),
            "Tensor::from_f64: {} values for {ty}",
            data.len()
        );
        by_dtype!(ty.dtype, T => T::wrap(from_fn(&ty.shape, |i| T::from_f64(data[i]))))
    }

    /// The elements in row-major order as f64 (`true` is 1, `false` is 0).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Tensor::F32(a) => a.iter().map(|x| x.to_f64()).collect(),
            Tensor::F64(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().map(|x| x.to_f64()).collect(),
            Tensor::Bool(a) => a.iter().map(|x| x.to_f64()).collect(),
        }
    }

    /// The value of a tensor holding exactly one element (a scalar or, say, `f32[1, 1]`).
    pub fn scalar(&self) -> Option<f64> {
        match self.to_f64()[..] {
            [x] => Some(x),
            _ => None,
        }
    }

    /// The row-major position and value of the first NaN or infinity, if any.
    pub(crate) fn first_non_finite(&self) -> Option<(usize, f64)> {
        let find = |it: &mut dyn Iterator<Item = f64>| it.enumerate().find(|(_, x)| !x.is_finite());
        match self {
            Tensor::F32(a) => find(&mut a.iter().map(|&x| f64::from(x))),
            Tensor::F64(a) => find(&mut a.iter().copied()),
            Tensor::I32(_) | Tensor::Bool(_) => None,
        }
    }

    /// Element `t` along axis 0.
    pub(crate) fn index0(&self, t: usize) -> Result<Tensor, String> {
        if self.shape().first().is_none_or(|&n| t >= n) {
            return Err(format!("step {t} out of range for {}", self.ty()));
        }
        Ok(by_dtype!(self.dtype(), T => {
            T::wrap(T::of(self)?.index_axis(Axis(0), t).to_owned())
        }))
    }

    /// Stores `part` as element `t` along axis 0.
    pub(crate) fn set_index0(&mut self, t: usize, part: &Tensor) -> Result<(), String> {
        let mut want = part.ty();
        want.shape.insert(0, t + 1);
        let mine = self.ty();
        if mine.dtype != want.dtype
            || mine.shape.get(1..) != want.shape.get(1..)
            || mine.shape.first().is_none_or(|&n| t >= n)
        {
            return Err(format!("cannot store {} at step {t} of {mine}", part.ty()));
        }
        by_dtype!(self.dtype(), T => {
            T::of_mut(self)?.index_axis_mut(Axis(0), t).assign(T::of(part)?);
        });
        Ok(())
    }
}

/// An element type of the IR.
pub(crate) trait Elem: Copy + PartialOrd + Default + std::fmt::Debug + 'static {
    const DTYPE: DType;
    /// The conversion `cast` and `const` use: float→int truncates toward zero (saturating, NaN
    /// becomes 0), anything→bool is `!= 0`.
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn is_nan(self) -> bool {
        false
    }
    fn wrap(a: ArrayD<Self>) -> Tensor;
    fn get(t: &Tensor) -> Option<&ArrayD<Self>>;
    fn get_mut(t: &mut Tensor) -> Option<&mut ArrayD<Self>>;

    fn of(t: &Tensor) -> Result<&ArrayD<Self>, String> {
        let ty = t.ty();
        Self::get(t).ok_or_else(|| format!("expected {}, got {ty}", Self::DTYPE.name()))
    }

    fn of_mut(t: &mut Tensor) -> Result<&mut ArrayD<Self>, String> {
        let ty = t.ty();
        Self::get_mut(t).ok_or_else(|| format!("expected {}, got {ty}", Self::DTYPE.name()))
    }
}

/// The element types with arithmetic (all but bool). Integer arithmetic wraps on overflow.
pub(crate) trait Num: Elem {
    /// The identity of `max`: −∞ for floats.
    const LOWEST: Self;
    fn plus(self, o: Self) -> Self;
    fn minus(self, o: Self) -> Self;
    fn times(self, o: Self) -> Self;
    fn negate(self) -> Self;
    /// Floats divide per IEEE; integers round toward −∞ and fail on a zero divisor.
    fn divide(self, o: Self) -> Result<Self, String>;
}

/// f32 and f64, the types `matmul` multiplies.
pub(crate) trait Float: Num + product::Real {}

macro_rules! elem {
    ($t:ty, $variant:ident, $from:expr, $to:expr) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$variant;
            fn from_f64(x: f64) -> Self {
                $from(x)
            }
            fn to_f64(self) -> f64 {
                $to(self)
            }
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
            fn get(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn get_mut(t: &mut Tensor) -> Option<&mut ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
        }
    };
}

elem!(i32, I32, |x: f64| x as i32, f64::from);
elem!(bool, Bool, |x: f64| x != 0.0, |b: bool| f64::from(
    u8::from(b)
));

macro_rules! float {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$variant;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self.into()
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
            fn get(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            fn get_mut(t: &mut Tensor) -> Option<&mut ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
        }

        impl Float for $t {}

        impl Num for $t {
            const LOWEST: Self = <$t>::NEG_INFINITY;
            fn plus(self, o: Self) -> Self {
                self + o
            }
            fn minus(self, o: Self) -> Self {
                self - o
            }
            fn times(self, o: Self) -> Self {
                self * o
            }
            fn negate(self) -> Self {
                -self
            }
            fn divide(self, o: Self) -> Result<Self, String> {
                Ok(self / o)
            }
        }
    };
}

float!(f32, F32);
float!(f64, F64);

impl Num for i32 {
    const LOWEST: Self = i32::MIN;
    fn plus(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    fn minus(self, o: Self) -> Self {
        self.wrapping_sub(o)
    }
    fn times(self, o: Self) -> Self {
        self.wrapping_mul(o)
    }
    fn negate(self) -> Self {
        self.wrapping_neg()
    }
    fn divide(self, o: Self) -> Result<Self, String> {
        if o == 0 {
            return Err(format!("integer division by zero ({self} / 0)"));
        }
        let q = self.wrapping_div(o);
        let r = self.wrapping_rem(o);
        Ok(if r != 0 && ((r < 0) != (o < 0)) {
            q - 1
        } else {
            q
        })
    }
}

/// An array of `shape` whose element at row-major position `i` is `f(i)`.
pub(crate) fn from_fn<T>(shape: &[usize], f: impl FnMut(usize) -> T) -> ArrayD<T> {
    let n = shape.iter().product();
    let data: Vec<T> = (0..n).map(f).collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("the length is the shape's product")
}

/// The elements of `a` in row-major order, borrowed when `a` is already laid out that way.
pub(crate) fn row_major<T: Clone>(a: &ArrayD<T>) -> Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

/// The multi-index of row-major position `flat` in an array of `shape`.
pub(crate) fn unravel(shape: &[usize], mut flat: usize) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        index[i] = flat % d;
        flat /= d;
    }
    index
}

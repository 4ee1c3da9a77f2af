//! The primitive table: one row per primitive, declared once, read by every stage that can treat
//! primitives alike instead of naming each one. The text parser finds ops by name here; constant
//! folding evaluates elementwise ops by their reference function; differentiation asks whether a
//! gradient flows; the JIT decides from the class, operand dtypes and cost what it fuses and how
//! long a loop runs, and calls the math functions listed here; the interpreter computes the math
//! primitives with the same functions, so both backends agree bit for bit. Tests iterate
//! [`Prim::ALL`] (`samples` gives each primitive a small graph), so a primitive without a text
//! round trip, a JIT-against-interpreter case or a checked VJP fails them.
//!
//! An [`Op`] is a primitive with its attributes ([`Op::prim`]); ops that differ only by attributes
//! share a row, except comparisons and random distributions, whose names differ.

use super::{CmpOp, Op};
use crate::tensor::math::{self, Math};

/// What kind of computation a primitive is; the JIT plans each class its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No operands: a graph input, a constant, an index.
    Leaf,
    /// Counter-based random numbers from a key operand.
    Random,
    /// One result element from the same position of every operand (all of one shape).
    Elementwise,
    /// Axes folded away (`sum`, `reduce_max`, `argmax`).
    Reduction,
    /// Elements moved, repeated or padded, never combined.
    Movement,
    /// Batched matrix products.
    Contraction,
    /// Sliding windows over images (`unfold`, `fold`).
    Window,
    /// Rows picked or summed by index (`gather`, `scatter_add`).
    Indexing,
    /// Loops and the parts of their results.
    Control,
    /// A value combined across the shards of a data-parallel step (the identity in one process).
    Collective,
}

/// How many operands a primitive takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Arity {
    pub fn admits(self, n: usize) -> bool {
        match self {
            Arity::Exactly(k) => n == k,
            Arity::AtLeast(k) => n >= k,
        }
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Arity::Exactly(k) => write!(f, "{k}"),
            Arity::AtLeast(k) => write!(f, "at least {k}"),
        }
    }
}

/// The dtypes an elementwise primitive computes on (those of its first operand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    Any,
    /// Everything but bool.
    Numbers,
    Floats,
    Bools,
}

impl Operands {
    pub fn admit(self, dtype: super::DType) -> bool {
        use super::DType;
        match self {
            Operands::Any => true,
            Operands::Numbers => dtype != DType::Bool,
            Operands::Floats => dtype.is_float(),
            Operands::Bools => dtype == DType::Bool,
        }
    }

    /// The dtypes admitted, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Operands::Any => "tensors of any dtype",
            Operands::Numbers => "numbers, not bool",
            Operands::Floats => "floats",
            Operands::Bools => "bools",
        }
    }
}

/// Roughly what one element of an elementwise primitive costs in a compiled loop: the JIT
/// recomputes only cheap expressions in every reader and weighs loops by it (`Kernel::work`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// An instruction or two.
    Cheap,
    /// A division or square root.
    Moderate,
    /// A call of a math function.
    Call,
}

impl Cost {
    /// The cost in simple operations.
    pub fn weight(self) -> usize {
        match self {
            Cost::Cheap => 1,
            Cost::Moderate => 4,
            Cost::Call => 20,
        }
    }
}

/// The exact value of an elementwise primitive on f64 operands (bool as 0 or 1): what constant
/// folding computes and what tests compare the kernels with.
#[derive(Debug, Clone, Copy)]
pub enum Reference {
    None,
    Unary(fn(f64) -> f64),
    Binary(fn(f64, f64) -> f64),
    Ternary(fn(f64, f64, f64) -> f64),
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Primitive {
    /// The name in the text form and in errors.
    pub name: &'static str,
    pub class: Class,
    pub arity: Arity,
    pub operands: Operands,
    pub cost: Cost,
    /// Whether a gradient flows through it (`grad` has its VJP rule); not for leaves, integer or
    /// bool results, and `detach`.
    pub differentiable: bool,
    pub reference: Reference,
    /// The scalar functions both backends call for it, when it is computed by one.
    pub math: Option<Math>,
}

fn bool_of(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// The interpreter's `max`: NaN if either is NaN (the first NaN when both are).
fn max(a: f64, b: f64) -> f64 {
    if a > b || a.is_nan() { a } else { b }
}

/// The interpreter's `min`, likewise.
fn min(a: f64, b: f64) -> f64 {
    if a < b || a.is_nan() { a } else { b }
}

macro_rules! primitives {
    ($($(#[$doc:meta])* $prim:ident = $name:literal, $class:ident, $arity:expr, $operands:ident,
       $cost:ident, differentiable: $grad:literal, plain: $plain:expr, reference: $reference:expr,
       math: $math:expr;)*) => {
        /// The primitives, one per row of the table (an [`Op`] without its attributes).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Prim {
            $($(#[$doc])* $prim,)*
        }

        impl Prim {
            pub const ALL: &'static [Prim] = &[$(Prim::$prim),*];

            pub fn info(self) -> &'static Primitive {
                match self {
                    $(Prim::$prim => {
                        const ROW: Primitive = Primitive {
                            name: $name,
                            class: Class::$class,
                            arity: $arity,
                            operands: Operands::$operands,
                            cost: Cost::$cost,
                            differentiable: $grad,
                            reference: $reference,
                            math: $math,
                        };
                        &ROW
                    })*
                }
            }

            /// The op, for a primitive without attributes (which the text form writes as its
            /// bare name).
            pub fn plain_op(self) -> Option<Op> {
                match self {
                    $(Prim::$prim => $plain,)*
                }
            }
        }
    };
}

use Arity::{AtLeast, Exactly};
use Reference::{Binary, Ternary, Unary};

primitives! {
    Input = "input", Leaf, Exactly(0), Any, Cheap,
        differentiable: false, plain: None, reference: Reference::None, math: None;
    Const = "const", Leaf, Exactly(0), Any, Cheap,
        differentiable: false, plain: None, reference: Reference::None, math: None;
    Iota = "iota", Leaf, Exactly(0), Any, Cheap,
        differentiable: false, plain: None, reference: Reference::None, math: None;
    RandUniform = "rand_uniform", Random, Exactly(1), Any, Cheap,
        differentiable: false, plain: None, reference: Reference::None, math: None;
    RandNormal = "rand_normal", Random, Exactly(1), Any, Cheap,
        differentiable: false, plain: None, reference: Reference::None, math: None;
    Neg = "neg", Elementwise, Exactly(1), Numbers, Cheap,
        differentiable: true, plain: Some(Op::Neg), reference: Unary(|x| -x), math: None;
    Exp = "exp", Elementwise, Exactly(1), Floats, Call,
        differentiable: true, plain: Some(Op::Exp), reference: Unary(f64::exp),
        math: Some(math::EXP);
    Log = "log", Elementwise, Exactly(1), Floats, Call,
        differentiable: true, plain: Some(Op::Log), reference: Unary(f64::ln),
        math: Some(math::LOG);
    Sqrt = "sqrt", Elementwise, Exactly(1), Floats, Moderate,
        differentiable: true, plain: Some(Op::Sqrt), reference: Unary(f64::sqrt), math: None;
    Sin = "sin", Elementwise, Exactly(1), Floats, Call,
        differentiable: true, plain: Some(Op::Sin), reference: Unary(f64::sin),
        math: Some(math::SIN);
    Cos = "cos", Elementwise, Exactly(1), Floats, Call,
        differentiable: true, plain: Some(Op::Cos), reference: Unary(f64::cos),
        math: Some(math::COS);
    Erf = "erf", Elementwise, Exactly(1), Floats, Call,
        differentiable: true, plain: Some(Op::Erf), reference: Unary(libm::erf),
        math: Some(math::ERF);
    Tanh = "tanh", Elementwise, Exactly(1), Floats, Call,
        differentiable: true, plain: Some(Op::Tanh), reference: Unary(f64::tanh), math: None;
    Sigmoid = "sigmoid", Elementwise, Exactly(1), Floats, Call,
        differentiable: true, plain: Some(Op::Sigmoid),
        reference: Unary(|x| 1.0 / (1.0 + (-x).exp())), math: None;
    Not = "not", Elementwise, Exactly(1), Bools, Cheap,
        differentiable: false, plain: Some(Op::Not), reference: Unary(|x| bool_of(x == 0.0)),
        math: None;
    Cast = "cast", Elementwise, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Unary(|x| x), math: None;
    Detach = "detach", Elementwise, Exactly(1), Any, Cheap,
        differentiable: false, plain: Some(Op::Detach), reference: Unary(|x| x), math: None;
    AllSum = "all_sum", Collective, Exactly(1), Floats, Cheap,
        differentiable: true, plain: Some(Op::AllSum), reference: Reference::None, math: None;
    Add = "add", Elementwise, Exactly(2), Numbers, Cheap,
        differentiable: true, plain: Some(Op::Add), reference: Binary(|a, b| a + b), math: None;
    Sub = "sub", Elementwise, Exactly(2), Numbers, Cheap,
        differentiable: true, plain: Some(Op::Sub), reference: Binary(|a, b| a - b), math: None;
    Mul = "mul", Elementwise, Exactly(2), Numbers, Cheap,
        differentiable: true, plain: Some(Op::Mul), reference: Binary(|a, b| a * b), math: None;
    Div = "div", Elementwise, Exactly(2), Numbers, Moderate,
        differentiable: true, plain: Some(Op::Div), reference: Binary(|a, b| a / b), math: None;
    Max = "max", Elementwise, Exactly(2), Numbers, Cheap,
        differentiable: true, plain: Some(Op::Max), reference: Binary(max), math: None;
    Min = "min", Elementwise, Exactly(2), Numbers, Cheap,
        differentiable: true, plain: Some(Op::Min), reference: Binary(min), math: None;
    Eq = "eq", Elementwise, Exactly(2), Any, Cheap,
        differentiable: false, plain: Some(Op::Cmp(CmpOp::Eq)),
        reference: Binary(|a, b| bool_of(a == b)), math: None;
    Ne = "ne", Elementwise, Exactly(2), Any, Cheap,
        differentiable: false, plain: Some(Op::Cmp(CmpOp::Ne)),
        reference: Binary(|a, b| bool_of(a != b)), math: None;
    Lt = "lt", Elementwise, Exactly(2), Any, Cheap,
        differentiable: false, plain: Some(Op::Cmp(CmpOp::Lt)),
        reference: Binary(|a, b| bool_of(a < b)), math: None;
    Le = "le", Elementwise, Exactly(2), Any, Cheap,
        differentiable: false, plain: Some(Op::Cmp(CmpOp::Le)),
        reference: Binary(|a, b| bool_of(a <= b)), math: None;
    Gt = "gt", Elementwise, Exactly(2), Any, Cheap,
        differentiable: false, plain: Some(Op::Cmp(CmpOp::Gt)),
        reference: Binary(|a, b| bool_of(a > b)), math: None;
    Ge = "ge", Elementwise, Exactly(2), Any, Cheap,
        differentiable: false, plain: Some(Op::Cmp(CmpOp::Ge)),
        reference: Binary(|a, b| bool_of(a >= b)), math: None;
    And = "and", Elementwise, Exactly(2), Bools, Cheap,
        differentiable: false, plain: Some(Op::And),
        reference: Binary(|a, b| bool_of(a != 0.0 && b != 0.0)), math: None;
    Or = "or", Elementwise, Exactly(2), Bools, Cheap,
        differentiable: false, plain: Some(Op::Or),
        reference: Binary(|a, b| bool_of(a != 0.0 || b != 0.0)), math: None;
    /// `select(cond, a, b)`: its operands are the bool condition (what `Bools` describes), then
    /// two branches of any dtype.
    Select = "select", Elementwise, Exactly(3), Bools, Cheap,
        differentiable: true, plain: Some(Op::Select),
        reference: Ternary(|c, a, b| if c != 0.0 { a } else { b }), math: None;
    Sum = "sum", Reduction, Exactly(1), Numbers, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    ReduceMax = "reduce_max", Reduction, Exactly(1), Numbers, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Argmax = "argmax", Reduction, Exactly(1), Any, Cheap,
        differentiable: false, plain: None, reference: Reference::None, math: None;
    Reshape = "reshape", Movement, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Permute = "permute", Movement, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Broadcast = "broadcast", Movement, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Slice = "slice", Movement, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Pad = "pad", Movement, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Concat = "concat", Movement, AtLeast(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    MatMul = "matmul", Contraction, Exactly(2), Floats, Cheap,
        differentiable: true, plain: Some(Op::MatMul), reference: Reference::None, math: None;
    Unfold = "unfold", Window, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Fold = "fold", Window, Exactly(1), Numbers, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Gather = "gather", Indexing, Exactly(2), Any, Cheap,
        differentiable: true, plain: Some(Op::Gather), reference: Reference::None, math: None;
    ScatterAdd = "scatter_add", Indexing, Exactly(2), Numbers, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Scan = "scan", Control, AtLeast(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
    Get = "get", Control, Exactly(1), Any, Cheap,
        differentiable: true, plain: None, reference: Reference::None, math: None;
}

impl Prim {
    /// The primitive an op without attributes is named by.
    pub fn by_name(name: &str) -> Option<Prim> {
        Prim::ALL.iter().copied().find(|p| p.info().name == name)
    }
}

impl Op {
    /// The primitive this op is.
    pub fn prim(&self) -> Prim {
        match self {
            Op::Input { .. } => Prim::Input,
            Op::Const { .. } => Prim::Const,
            Op::Iota { .. } => Prim::Iota,
            Op::Rand {
                dist: super::Dist::Uniform,
                ..
            } => Prim::RandUniform,
            Op::Rand {
                dist: super::Dist::Normal,
                ..
            } => Prim::RandNormal,
            Op::Neg => Prim::Neg,
            Op::Exp => Prim::Exp,
            Op::Log => Prim::Log,
            Op::Sqrt => Prim::Sqrt,
            Op::Sin => Prim::Sin,
            Op::Cos => Prim::Cos,
            Op::Erf => Prim::Erf,
            Op::Tanh => Prim::Tanh,
            Op::Sigmoid => Prim::Sigmoid,
            Op::Not => Prim::Not,
            Op::Cast { .. } => Prim::Cast,
            Op::Detach => Prim::Detach,
            Op::AllSum => Prim::AllSum,
            Op::Add => Prim::Add,
            Op::Sub => Prim::Sub,
            Op::Mul => Prim::Mul,
            Op::Div => Prim::Div,
            Op::Max => Prim::Max,
            Op::Min => Prim::Min,
            Op::Cmp(CmpOp::Eq) => Prim::Eq,
            Op::Cmp(CmpOp::Ne) => Prim::Ne,
            Op::Cmp(CmpOp::Lt) => Prim::Lt,
            Op::Cmp(CmpOp::Le) => Prim::Le,
            Op::Cmp(CmpOp::Gt) => Prim::Gt,
            Op::Cmp(CmpOp::Ge) => Prim::Ge,
            Op::And => Prim::And,
            Op::Or => Prim::Or,
            Op::Select => Prim::Select,
            Op::Sum { .. } => Prim::Sum,
            Op::ReduceMax { .. } => Prim::ReduceMax,
            Op::Argmax { .. } => Prim::Argmax,
            Op::Reshape { .. } => Prim::Reshape,
            Op::Permute { .. } => Prim::Permute,
            Op::Broadcast { .. } => Prim::Broadcast,
            Op::Slice { .. } => Prim::Slice,
            Op::Pad { .. } => Prim::Pad,
            Op::Concat { .. } => Prim::Concat,
            Op::MatMul => Prim::MatMul,
            Op::Unfold(_) => Prim::Unfold,
            Op::Fold { .. } => Prim::Fold,
            Op::Gather => Prim::Gather,
            Op::ScatterAdd { .. } => Prim::ScatterAdd,
            Op::Scan { .. } => Prim::Scan,
            Op::Get { .. } => Prim::Get,
        }
    }

    /// This op's row of the table.
    pub fn primitive(&self) -> &'static Primitive {
        self.prim().info()
    }

    pub fn name(&self) -> &'static str {
        self.primitive().name
    }
}

#[cfg(test)]
mod tests {
    use super::{Class, Prim, Reference};
    use crate::interp::{self, Options};
    use crate::ir::{DType, Graph, samples};
    use std::collections::{HashMap, HashSet};

    #[test]
    fn names_are_unique_and_plain_ops_are_their_rows() {
        let mut names = HashSet::new();
        for &prim in Prim::ALL {
            let info = prim.info();
            assert!(names.insert(info.name), "`{}` is named twice", info.name);
            assert_eq!(Prim::by_name(info.name), Some(prim));
            if let Some(op) = prim.plain_op() {
                assert_eq!(op.prim(), prim, "`{}`", info.name);
            }
        }
    }

    /// Every sample holds a node of its primitive with the table's arity, and verifies.
    #[test]
    fn samples_use_their_primitive() {
        fn holds(g: &Graph, prim: Prim) -> bool {
            g.nodes.iter().any(|n| {
                (n.op.prim() == prim && prim.info().arity.admits(n.args.len()))
                    || matches!(&n.op, crate::ir::Op::Scan { body, .. } if holds(body, prim))
            })
        }
        for &prim in Prim::ALL {
            let g = samples::sample(prim, DType::F32);
            crate::ir::verify(&g).unwrap_or_else(|e| panic!("{}: {e}", prim.info().name));
            assert!(holds(&g, prim), "the sample of `{}`", prim.info().name);
        }
    }

    /// The interpreter computes every elementwise primitive as its reference function says, in
    /// f64 (`tanh` and `sigmoid` by their recipe, within a few ulps); the math functions in f32
    /// are within an f32 rounding of it.
    #[test]
    fn kernels_compute_the_reference_functions() {
        let values: [f64; 7] = [-2.5, -1.0, -0.25, 0.0, 0.5, 1.0, 3.0];
        for &prim in Prim::ALL {
            let info = prim.info();
            if info.class != Class::Elementwise {
                continue;
            }
            let g = samples::sample(prim, DType::F64);
            let inputs: HashMap<String, crate::tensor::Tensor> = g
                .inputs()
                .enumerate()
                .map(|(k, (v, name, _))| {
                    let ty = g.ty(v);
                    let data = (0..ty.numel())
                        .map(|i| {
                            let x = values[(i + 3 * k) % values.len()];
                            match ty.dtype {
                                DType::Bool => f64::from(u8::from(x > 0.0)),
                                _ if name.starts_with("pos") => x.abs() + 0.5,
                                _ => x,
                            }
                        })
                        .collect();
                    (name.to_string(), crate::tensor::Tensor::from_f64(ty, data))
                })
                .collect();
            let out = interp::run(&g, &inputs, &Options::default()).expect("runs");
            let got = out["y"].to_f64();
            let node = g.node(g.output("y").expect("y"));
            let operands: Vec<Vec<f64>> = node
                .args
                .iter()
                .map(|a| {
                    let (_, name, _) = g.inputs().find(|(v, _, _)| v == a).expect("an input");
                    inputs[name].to_f64()
                })
                .collect();
            for (i, &y) in got.iter().enumerate() {
                let x = |k: usize| operands[k][i];
                let want = match info.reference {
                    Reference::Unary(f) => f(x(0)),
                    Reference::Binary(f) => f(x(0), x(1)),
                    Reference::Ternary(f) => f(x(0), x(1), x(2)),
                    Reference::None => panic!("`{}` has no reference", info.name),
                };
                let close = (y - want).abs() <= 4.0 * f64::EPSILON * want.abs().max(1e-300);
                assert!(
                    y.to_bits() == want.to_bits() || close || y.is_nan() && want.is_nan(),
                    "`{}` at {:?}: {y} but the reference gives {want}",
                    info.name,
                    (0..operands.len()).map(x).collect::<Vec<_>>()
                );
            }
            if let Some(math) = info.math {
                for &v in &values {
                    let Reference::Unary(f) = info.reference else {
                        panic!("a math primitive is unary")
                    };
                    let (single, double) = ((math.f32)(v as f32), f(v));
                    let tolerance = 2.0 * f64::from(f32::EPSILON) * double.abs().max(1e-30);
                    assert!(
                        (f64::from(single) - double).abs() <= tolerance
                            || f64::from(single) == double
                            || single.is_nan() && double.is_nan(),
                        "`{}`({v}) in f32: {single}, the reference {double}",
                        info.name
                    );
                }
            }
        }
    }
}

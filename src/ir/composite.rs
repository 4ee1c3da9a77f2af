//! Elementwise primitives the backends compute as a fixed composition of simpler ones. `tanh`
//! and `sigmoid` are primitives so that their gradients are the short forms of their outputs
//! (1 − y², y (1 − y)) and a recurrent layer's backward pass saves the activations instead of
//! recomputing them; but nothing computes them directly: the interpreter and the JIT both follow
//! the one recipe here, so they agree bit for bit.

use super::{CmpOp, DType, Op, TensorType, Type, infer};

/// An operand of a recipe step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operand {
    /// The primitive's operand.
    X,
    /// The result of an earlier step.
    Step(usize),
    /// A constant of the operand's dtype.
    Const(f64),
}

/// One step of a recipe: a primitive op on earlier results.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub op: Op,
    pub args: Vec<Operand>,
}

/// The dtype of each step's result, for an operand of dtype `x`: what the steps' shape rules
/// give on scalars of their operands' dtypes.
pub fn dtypes(steps: &[Step], x: DType) -> Result<Vec<DType>, String> {
    let mut out: Vec<DType> = Vec::with_capacity(steps.len());
    for step in steps {
        let operands: Vec<Type> = step
            .args
            .iter()
            .map(|a| {
                let dtype = match a {
                    Operand::X | Operand::Const(_) => x,
                    Operand::Step(k) => out[*k],
                };
                Type::Tensor(TensorType::new(dtype, Vec::new()))
            })
            .collect();
        let operands: Vec<&Type> = operands.iter().collect();
        match infer(&step.op, &operands)? {
            Type::Tensor(t) => out.push(t.dtype),
            Type::Tuple(_) => return Err(format!("a recipe's `{}` makes a tuple", step.op.name())),
        }
    }
    Ok(out)
}

/// The steps that compute `op`, the last one giving its value; `None` for ops the backends
/// compute themselves.
pub fn recipe(op: &Op) -> Option<Vec<Step>> {
    let mut r = Recipe(Vec::new());
    match op {
        // 1 / (1 + e^−x), as PyTorch computes it: stable for every x, since e^−x overflowing to
        // ∞ gives the limit 0.
        Op::Sigmoid => {
            let minus_x = r.op(Op::Neg, [Operand::X]);
            let e = r.op(Op::Exp, [minus_x]);
            let denominator = r.op(Op::Add, [Operand::Const(1.0), e]);
            r.op(Op::Div, [Operand::Const(1.0), denominator]);
        }
        // sign(x) (1 − t) / (1 + t) with t = e^−2|x|; for |x| < 0.1, where 1 − t cancels, the odd
        // Taylor series x − x³/3 + 2x⁵/15 instead.
        Op::Tanh => {
            let abs = r.abs();
            let scaled = r.op(Op::Mul, [Operand::Const(-2.0), abs]);
            let t = r.op(Op::Exp, [scaled]);
            let numerator = r.op(Op::Sub, [Operand::Const(1.0), t]);
            let denominator = r.op(Op::Add, [Operand::Const(1.0), t]);
            let ratio = r.op(Op::Div, [numerator, denominator]);
            let negative = r.op(Op::Cmp(CmpOp::Lt), [Operand::X, Operand::Const(0.0)]);
            let minus_ratio = r.op(Op::Neg, [ratio]);
            let signed = r.op(Op::Select, [negative, minus_ratio, ratio]);
            let x2 = r.op(Op::Mul, [Operand::X, Operand::X]);
            let inner = r.op(Op::Mul, [x2, Operand::Const(2.0 / 15.0)]);
            let inner = r.op(Op::Add, [Operand::Const(-1.0 / 3.0), inner]);
            let inner = r.op(Op::Mul, [x2, inner]);
            let inner = r.op(Op::Add, [Operand::Const(1.0), inner]);
            let series = r.op(Op::Mul, [Operand::X, inner]);
            let small = r.op(Op::Cmp(CmpOp::Lt), [abs, Operand::Const(0.1)]);
            r.op(Op::Select, [small, series, signed]);
        }
        _ => return None,
    }
    Some(r.0)
}

struct Recipe(Vec<Step>);

impl Recipe {
    fn op<const N: usize>(&mut self, op: Op, args: [Operand; N]) -> Operand {
        self.0.push(Step {
            op,
            args: args.to_vec(),
        });
        Operand::Step(self.0.len() - 1)
    }

    /// |x| as `select(x < 0, −x, x)`.
    fn abs(&mut self) -> Operand {
        let negative = self.op(Op::Cmp(CmpOp::Lt), [Operand::X, Operand::Const(0.0)]);
        let minus_x = self.op(Op::Neg, [Operand::X]);
        self.op(Op::Select, [negative, minus_x, Operand::X])
    }
}

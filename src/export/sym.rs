//! Symbolic batch sizes. Graphs have concrete shapes, so the model is lowered for two batch
//! sizes: a size that differs between the two is an affine function of the batch, which the
//! ONNX model keeps symbolic (`batch`); every other size is a constant.

use crate::ir::{DType, Graph, Op, Type};
use std::collections::HashMap;

/// The two batch sizes. Primes far from any layer width, so that no size of the model equals
/// one of them by accident (which would make two different graphs structurally alike).
pub const BATCHES: [usize; 2] = [1009, 1013];

/// A size `per_batch · batch + fixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dim {
    pub per_batch: i64,
    pub fixed: i64,
}

impl Dim {
    pub const ONE: Dim = Dim::fixed(1);
    pub const BATCH: Dim = Dim {
        per_batch: 1,
        fixed: 0,
    };

    pub const fn fixed(n: i64) -> Dim {
        Dim {
            per_batch: 0,
            fixed: n,
        }
    }

    pub fn is_fixed(self) -> bool {
        self.per_batch == 0
    }

    /// The size at the first lowering's batch (what the graph's own shapes say).
    pub fn at_first(self) -> i64 {
        self.per_batch * BATCHES[0] as i64 + self.fixed
    }

    /// The ONNX name of a symbolic size: `batch`, `12*batch`, `batch+1`.
    pub fn param_name(self) -> String {
        let scaled = match self.per_batch {
            1 => "batch".to_string(),
            k => format!("{k}*batch"),
        };
        match self.fixed {
            0 => scaled,
            c if c > 0 => format!("{scaled}+{c}"),
            c => format!("{scaled}{c}"),
        }
    }
}

/// A tensor's dtype and symbolic shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SymTensor {
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SymType {
    Tensor(SymTensor),
    Tuple(Vec<SymTensor>),
}

impl SymType {
    pub fn tensor(&self) -> &SymTensor {
        match self {
            SymType::Tensor(t) => t,
            SymType::Tuple(_) => panic!("a tuple where a tensor was expected"),
        }
    }
}

/// The symbolic type of every node of a graph, and of every node of its scan bodies.
#[derive(Debug, Clone)]
pub struct SymGraph {
    pub types: Vec<SymType>,
    /// Node index of a scan → its body's symbolic types.
    pub bodies: HashMap<usize, SymGraph>,
}

/// Compares a graph lowered at the two batch sizes node by node: the same ops on the same
/// operands, with sizes that differ only where the batch enters.
pub fn symbolic(first: &Graph, second: &Graph) -> Result<SymGraph, String> {
    if first.nodes.len() != second.nodes.len() {
        return Err(format!(
            "the graph has {} nodes for batch {} and {} for batch {}: its structure depends on the batch size",
            first.nodes.len(),
            BATCHES[0],
            second.nodes.len(),
            BATCHES[1]
        ));
    }
    let mut types = Vec::with_capacity(first.nodes.len());
    let mut bodies = HashMap::new();
    for (i, (a, b)) in first.nodes.iter().zip(&second.nodes).enumerate() {
        if a.op.name() != b.op.name() || a.args != b.args {
            return Err(format!(
                "node %{i} is `{}` for batch {} but `{}` for batch {}: the graph's structure depends on the batch size",
                a.op.name(),
                BATCHES[0],
                b.op.name(),
                BATCHES[1]
            ));
        }
        if let (Op::Scan { body: ba, .. }, Op::Scan { body: bb, .. }) = (&a.op, &b.op) {
            bodies.insert(i, symbolic(ba, bb)?);
        }
        let ty = match (&a.ty, &b.ty) {
            (Type::Tensor(x), Type::Tensor(y)) => SymType::Tensor(tensor(x, y, i)?),
            (Type::Tuple(xs), Type::Tuple(ys)) if xs.len() == ys.len() => SymType::Tuple(
                xs.iter()
                    .zip(ys)
                    .map(|(x, y)| tensor(x, y, i))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(format!("node %{i} changes type with the batch size")),
        };
        types.push(ty);
    }
    Ok(SymGraph { types, bodies })
}

fn tensor(
    a: &crate::ir::TensorType,
    b: &crate::ir::TensorType,
    node: usize,
) -> Result<SymTensor, String> {
    if a.dtype != b.dtype || a.rank() != b.rank() {
        return Err(format!("node %{node} changes type with the batch size"));
    }
    let step = (BATCHES[1] - BATCHES[0]) as i64;
    let shape = a
        .shape
        .iter()
        .zip(&b.shape)
        .map(|(&x, &y)| {
            let (x, y) = (x as i64, y as i64);
            let diff = y - x;
            if diff % step != 0 {
                return Err(format!(
                    "node %{node} has a size ({x} for batch {}, {y} for batch {}) that is not a multiple of the batch plus a constant",
                    BATCHES[0], BATCHES[1]
                ));
            }
            let per_batch = diff / step;
            Ok(Dim {
                per_batch,
                fixed: x - per_batch * BATCHES[0] as i64,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(SymTensor {
        dtype: a.dtype,
        shape,
    })
}

/// Numpy broadcasting of two symbolic shapes, or None when they do not broadcast.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Option<Vec<Dim>> {
    let rank = a.len().max(b.len());
    let at = |s: &[Dim], i: usize| (i + s.len()).checked_sub(rank).map_or(Dim::ONE, |j| s[j]);
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (Dim::ONE, y) => Some(y),
            (x, Dim::ONE) => Some(x),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_aligns_right_and_stretches_ones() {
        let (b, n) = (Dim::BATCH, Dim::fixed(10));
        assert_eq!(broadcast(&[n], &[b, n]), Some(vec![b, n]));
        assert_eq!(broadcast(&[b, Dim::ONE], &[Dim::ONE, n]), Some(vec![b, n]));
        assert_eq!(broadcast(&[], &[b, n]), Some(vec![b, n]));
        assert_eq!(broadcast(&[Dim::fixed(3)], &[n]), None);
    }

    #[test]
    fn sizes_that_follow_the_batch_are_named_after_it() {
        assert_eq!(Dim::BATCH.param_name(), "batch");
        let twelve = Dim {
            per_batch: 12,
            fixed: 0,
        };
        assert_eq!(twelve.param_name(), "12*batch");
        assert_eq!(
            Dim {
                per_batch: 1,
                fixed: -1
            }
            .param_name(),
            "batch-1"
        );
        assert_eq!(twelve.at_first(), 12 * BATCHES[0] as i64);
    }
}

//! The reference interpreter: executes any graph on the shared kernels (`crate::tensor`), in f32
//! or f64, deterministically for a given random key. It is the oracle every faster backend is
//! tested against.
//!
//! [`run`] verifies the graph ([`run_verified`] takes one verified before), checks that every `input` node is fed a tensor of exactly its type
//! (inputs the graph does not name are ignored), then evaluates the nodes in order, dropping each
//! value after its last use, and returns the named outputs. A graph computes in the dtypes it
//! states: f32 nodes in f32, f64 nodes in f64, nothing is upcast. No input makes it panic: bad
//! data (an id out of range, an integer division by zero, a malformed graph) is an
//! [`RunError`] naming the node, its op and its source location.
//!
//! Semantics, where the IR leaves a choice:
//! - integer `add`/`sub`/`mul`/`neg` wrap on overflow; integer `div` rounds toward −∞ and fails
//!   on a zero divisor; float `div` is IEEE (`1/0 = inf`);
//! - float `max(a, b)` is `a` if `a > b` or `a` is NaN, else `b` (so NaN propagates), `min`
//!   likewise with `<`; `reduce_max` folds that `max` from −∞ (i32: `i32::MIN`), `sum` folds `+`
//!   from 0, both in index order of the reduced axes (innermost axis last);
//! - f32 `exp` is [`crate::tensor::math::exp_f32`] (within 1.072 ulp, so that the JIT can compute it on vectors
//!   and agree bit for bit); f64 `exp`, `log`, `sin`, `cos` and `sqrt` are the standard library's;
//! - comparisons are IEEE (any comparison with NaN is false, except `ne`); bool orders
//!   `false < true`;
//! - `argmax` returns the index of the first maximum, a NaN counting as larger than any number;
//! - `cast` and `const`: float→i32 truncates toward zero, saturating at the i32 range, NaN → 0;
//!   anything→bool is `x != 0` (NaN → true); bool→number is 1 or 0; f64→f32 rounds to nearest;
//! - `iota` gives each element's index along its axis, converted like `cast`;
//! - `neg`, `fold` and `scatter_add` of bool tensors, which the shape rules accept, are errors;
//! - `matmul` runs one `gemm` per batch index, on `Options::threads` rayon threads when that is
//!   more than 1; `unfold`/`fold` follow [`crate::ir::Op::Unfold`]: row `c·k·k + ki·k + kj`,
//!   column `oh·OW + ow` reads `x[b, c, oh·stride − padding + ki·dilation, ow·stride − padding +
//!   kj·dilation]`, zero outside the image, and `fold` sums into exactly those places;
//! - random numbers: see [`crate::tensor::random`] for the exact, backend-independent formula;
//! - `scan`: the step `t` output is stored at position `t` of the stacked result whether the
//!   loop runs forward or in `reverse` (`t = T−1` down to 0); with no steps the carries come out
//!   unchanged and the stacked outputs are empty.
//!
//! With [`Options::check_finite`], the first node (in order, scan bodies included, each step in
//! turn) whose float result holds a NaN or an infinity although all its operands are finite
//! stops the run with an error naming it. A `const` is exempt (an infinite literal is
//! deliberate), as are the inputs of a scan body (they hold values made outside it or at an
//! earlier step); a graph input holding a non-finite value is reported.

#[cfg(test)]
mod tests;

pub use crate::tensor::{RunError, Tensor};

use crate::ir::{Graph, Node, Op, Type, Verified, verify};
use crate::tensor::{self, kernels};
use std::collections::HashMap;
use std::rc::Rc;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Stop at the first node that makes a NaN or an infinity out of finite operands.
    pub check_finite: bool,
    /// Threads for `matmul`; 0 or 1 runs on the calling thread only.
    pub threads: usize,
}

/// Runs `graph` on `inputs` (keyed by the names of its `input` nodes) and returns every output.
pub fn run(
    graph: &Graph,
    inputs: &HashMap<String, Tensor>,
    opts: &Options,
) -> Result<HashMap<String, Tensor>, RunError> {
    run_with(graph, &|name| inputs.get(name), opts)
}

/// [`run`] with the inputs found by name through `input`, so that a caller holding them in
/// several places need not gather them into one map.
pub fn run_with<'a>(
    graph: &Graph,
    input: &dyn Fn(&str) -> Option<&'a Tensor>,
    opts: &Options,
) -> Result<HashMap<String, Tensor>, RunError> {
    verify(graph).map_err(|e| RunError {
        message: format!("invalid graph: {e}"),
        node: None,
        op: None,
        loc: None,
    })?;
    evaluate(graph, input, opts)
}

/// [`run_with`] on a graph verified before (a backend verifies a graph once, when it prepares it).
pub fn run_verified<'a>(
    graph: &Verified,
    input: &dyn Fn(&str) -> Option<&'a Tensor>,
    opts: &Options,
) -> Result<HashMap<String, Tensor>, RunError> {
    evaluate(graph, input, opts)
}

fn evaluate<'a>(
    graph: &Graph,
    input: &dyn Fn(&str) -> Option<&'a Tensor>,
    opts: &Options,
) -> Result<HashMap<String, Tensor>, RunError> {
    let mut fed = Vec::new();
    for (v, name, _) in graph.inputs() {
        let want = graph.ty(v);
        let fail = |message| RunError::at(v.index(), graph.node(v), message);
        let tensor = input(name).ok_or_else(|| fail(format!("missing input `{name}` ({want})")))?;
        let got = tensor.ty();
        if got != *want {
            return Err(fail(format!(
                "input `{name}` is {got} but the graph expects {want}"
            )));
        }
        fed.push(Rc::new(tensor.clone()));
    }
    let outputs = Interp { opts }.eval(graph, fed, false)?;
    Ok(graph
        .outputs
        .iter()
        .zip(outputs)
        .map(|(o, t)| (o.name.clone(), Rc::unwrap_or_clone(t)))
        .collect())
}

/// A node's value: a tensor, or the parts of a `scan` result. Shared, so that forwarding a value
/// (`get`, a scan's constants at every step) copies no data.
enum Value {
    Tensor(Rc<Tensor>),
    Tuple(Vec<Rc<Tensor>>),
}

impl Value {
    fn parts(&self) -> &[Rc<Tensor>] {
        match self {
            Value::Tensor(t) => std::slice::from_ref(t),
            Value::Tuple(parts) => parts,
        }
    }

    fn ty(&self) -> Type {
        match self {
            Value::Tensor(t) => Type::Tensor(t.ty()),
            Value::Tuple(parts) => Type::Tuple(parts.iter().map(|t| t.ty()).collect()),
        }
    }

    /// The first non-finite element (in any part): its index and its value.
    fn first_non_finite(&self) -> Option<(Vec<usize>, f64)> {
        self.parts().iter().find_map(|t| {
            t.first_non_finite()
                .map(|(flat, x)| (tensor::unravel(t.shape(), flat), x))
        })
    }
}

struct Interp<'a> {
    opts: &'a Options,
}

impl Interp<'_> {
    /// Evaluates a verified graph whose input nodes take `inputs` in order; returns its outputs
    /// in order.
    fn eval(
        &self,
        graph: &Graph,
        inputs: Vec<Rc<Tensor>>,
        in_body: bool,
    ) -> Result<Vec<Rc<Tensor>>, RunError> {
        // The last node that reads each value (itself if none does); outputs live to the end.
        let mut last: Vec<usize> = (0..graph.nodes.len()).collect();
        for (i, node) in graph.nodes.iter().enumerate() {
            for a in &node.args {
                last[a.index()] = i;
            }
        }
        for o in &graph.outputs {
            last[o.value.index()] = usize::MAX;
        }
        let mut inputs = inputs.into_iter();
        let mut values: Vec<Option<Value>> = graph.nodes.iter().map(|_| None).collect();
        for (i, node) in graph.nodes.iter().enumerate() {
            let fail = |message| RunError::at(i, node, message);
            let args = node
                .args
                .iter()
                .map(|a| {
                    values[a.index()]
                        .as_ref()
                        .ok_or_else(|| fail(format!("internal error: {a} is not available")))
                })
                .collect::<Result<Vec<&Value>, _>>()?;
            let value = match &node.op {
                Op::Input { name, .. } => Value::Tensor(
                    inputs
                        .next()
                        .ok_or_else(|| fail(format!("no value for input `{name}`")))?,
                ),
                Op::Get { index } => match args[..] {
                    [Value::Tuple(parts)] => Value::Tensor(
                        parts
                            .get(*index)
                            .cloned()
                            .ok_or_else(|| fail(format!("no part {index} in the tuple")))?,
                    ),
                    _ => return Err(fail("`get` of something not a tuple".into())),
                },
                Op::Scan { .. } => {
                    let operands = tensors(&args).map_err(fail)?;
                    Value::Tuple(self.scan_node(i, node, operands)?)
                }
                op => {
                    let operands = tensors(&args).map_err(fail)?;
                    let operands: Vec<&Tensor> = operands.iter().map(|t| &**t).collect();
                    let result = kernels::apply(op, &operands, self.opts.threads);
                    Value::Tensor(Rc::new(result.map_err(fail)?))
                }
            };
            let ty = value.ty();
            if ty != node.ty {
                return Err(fail(format!(
                    "internal error: made {ty:?}, the node's type is {:?}",
                    node.ty
                )));
            }
            let exempt = matches!(node.op, Op::Const { .. })
                || in_body && matches!(node.op, Op::Input { .. });
            if self.opts.check_finite
                && !exempt
                && let Some((index, x)) = value.first_non_finite()
                && args.iter().all(|a| a.first_non_finite().is_none())
            {
                return Err(fail(match &node.op {
                    Op::Input { name, .. } => format!("input `{name}` holds {x} at {index:?}"),
                    _ => format!("made {x} at {index:?} from finite operands"),
                }));
            }
            drop(args);
            values[i] = Some(value);
            for j in node.args.iter().map(|a| a.index()).chain([i]) {
                if last[j] == i {
                    values[j] = None;
                }
            }
        }
        graph
            .outputs
            .iter()
            .map(|o| match &values[o.value.index()] {
                Some(Value::Tensor(t)) => Ok(Rc::clone(t)),
                _ => Err(RunError::at(
                    o.value.index(),
                    graph.node(o.value),
                    format!("output `{}` is not a tensor", o.name),
                )),
            })
            .collect()
    }

    /// Runs node `index`, a `scan`, on its operands.
    fn scan_node(
        &self,
        index: usize,
        node: &Node,
        operands: Vec<Rc<Tensor>>,
    ) -> Result<Vec<Rc<Tensor>>, RunError> {
        let Op::Scan {
            body,
            carries,
            seqs,
            reverse,
        } = &node.op
        else {
            return Err(RunError::at(index, node, "not a scan".into()));
        };
        let scan = Scan {
            index,
            node,
            body,
            carries: *carries,
            seqs: *seqs,
            reverse: *reverse,
        };
        self.scan(&scan, operands)
    }

    fn scan(&self, s: &Scan<'_>, operands: Vec<Rc<Tensor>>) -> Result<Vec<Rc<Tensor>>, RunError> {
        let fail = |message| RunError::at(s.index, s.node, message);
        let Type::Tuple(parts) = &s.node.ty else {
            return Err(fail("a scan's type must be a tuple".into()));
        };
        let (sequences, constants) = operands[s.carries..].split_at(s.seqs);
        let steps = sequences
            .first()
            .and_then(|x| x.shape().first().copied())
            .ok_or_else(|| fail("a scan needs a sequence".into()))?;
        let mut carries = operands[..s.carries].to_vec();
        let mut stacked: Vec<Tensor> = parts[s.carries..].iter().map(Tensor::zeros).collect();
        let order: Box<dyn Iterator<Item = usize>> = if s.reverse {
            Box::new((0..steps).rev())
        } else {
            Box::new(0..steps)
        };
        for t in order {
            let mut inputs = std::mem::take(&mut carries);
            for x in sequences {
                inputs.push(Rc::new(x.index0(t).map_err(fail)?));
            }
            inputs.extend(constants.iter().cloned());
            let mut outputs = self.eval(s.body, inputs, true).map_err(|mut e| {
                e.message = format!("{} (at step {t} of the scan %{})", e.message, s.index);
                e
            })?;
            if outputs.len() != s.carries + stacked.len() {
                return Err(fail(format!(
                    "the body made {} outputs, the scan expects {}",
                    outputs.len(),
                    s.carries + stacked.len()
                )));
            }
            for (whole, part) in stacked.iter_mut().zip(outputs.drain(s.carries..)) {
                whole.set_index0(t, &part).map_err(fail)?;
            }
            carries = outputs;
        }
        Ok(carries
            .into_iter()
            .chain(stacked.into_iter().map(Rc::new))
            .collect())
    }
}

/// A `scan` node being run.
struct Scan<'g> {
    index: usize,
    node: &'g Node,
    body: &'g Graph,
    carries: usize,
    seqs: usize,
    reverse: bool,
}

fn tensors(args: &[&Value]) -> Result<Vec<Rc<Tensor>>, String> {
    args.iter()
        .map(|v| match v {
            Value::Tensor(t) => Ok(Rc::clone(t)),
            Value::Tuple(_) => Err("a tuple operand (only `get` takes one)".to_string()),
        })
        .collect()
}

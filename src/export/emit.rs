//! IR nodes → ONNX nodes. Broadcasting stays implicit where ONNX broadcasts by itself: an IR
//! value is represented by an ONNX value whose shape broadcasts to it (a bias `[N]` for the
//! IR's `broadcast` to `[B, N]`, a scalar for a splat constant), and is expanded only where an
//! operator needs the full shape.

use super::onnx::{GraphProto, NodeProto, TensorProto};
use super::plan::{self, Fused};
use super::proto;
use super::rules::{self, Rule};
use super::sym::{self, Dim, SymGraph, SymTensor, SymType};
use crate::ir::{CmpOp, DType, Graph, Loc, Op, Role, ValueId, Window};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// An ONNX value standing for an IR tensor: its shape broadcasts to the IR tensor's.
#[derive(Debug, Clone, PartialEq)]
pub struct Tv {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

#[derive(Debug, Clone)]
pub enum Value {
    Tensor(Tv),
    Tuple(Vec<Tv>),
}

impl Value {
    fn tensor(&self) -> Result<&Tv, String> {
        match self {
            Value::Tensor(t) => Ok(t),
            Value::Tuple(_) => Err("a scan's results used as one tensor".into()),
        }
    }
}

/// Where the model's batch size can be read: a graph input and its axis.
#[derive(Debug, Clone)]
pub struct BatchSource {
    pub input: String,
    pub axis: usize,
}

/// How a graph's `input` nodes become ONNX values.
pub type BindInput<'a> =
    dyn FnMut(&mut Builder, &str, Role, &SymTensor) -> Result<Value, String> + 'a;

pub struct Builder {
    /// The graphs being built: the model's, then nested scan bodies.
    graphs: Vec<GraphProto>,
    /// Initializers of the model's graph: constants (deduplicated) and weights.
    pub initializers: Vec<TensorProto>,
    consts: HashMap<(i32, Vec<i64>, Vec<u8>), String>,
    next: usize,
    pub batch_source: Option<BatchSource>,
    batch: Option<String>,
    loc: Loc,
    /// The ONNX operators used, for the summary.
    pub op_counts: std::collections::BTreeMap<String, usize>,
}

impl Builder {
    pub fn new(name: &str) -> Builder {
        Builder {
            graphs: vec![GraphProto {
                name: Some(name.to_string()),
                ..Default::default()
            }],
            initializers: Vec::new(),
            consts: HashMap::new(),
            next: 0,
            batch_source: None,
            batch: None,
            loc: Loc::default(),
            op_counts: Default::default(),
        }
    }

    pub fn graph_mut(&mut self) -> &mut GraphProto {
        self.graphs.last_mut().expect("a graph is being built")
    }

    /// The finished model graph, with its initializers.
    pub fn finish(mut self) -> GraphProto {
        let mut g = self.graphs.pop().expect("the model's graph");
        assert!(self.graphs.is_empty(), "a scan body was left open");
        g.initializer = self.initializers;
        g
    }

    fn fresh(&mut self, base: &str) -> String {
        self.next += 1;
        format!("{base}_{}", self.next)
    }

    /// Adds a node to the innermost graph; its outputs are named after the node.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<super::onnx::AttributeProto>,
        outputs: usize,
    ) -> Vec<String> {
        let scope = if self.loc.scope.is_empty() {
            "model"
        } else {
            &*self.loc.scope
        };
        let name = self.fresh(&format!("{scope}/{op}"));
        let out: Vec<String> = match outputs {
            1 => vec![name.clone()],
            n => (0..n).map(|i| format!("{name}:{i}")).collect(),
        };
        let doc = self
            .loc
            .is_known()
            .then(|| format!("{}:{}:{}", self.loc.file, self.loc.line, self.loc.col));
        *self.op_counts.entry(op.to_string()).or_default() += 1;
        self.graph_mut().node.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: out.clone(),
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs,
            doc_string: doc,
            ..Default::default()
        });
        out
    }

    fn node1(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<super::onnx::AttributeProto>,
    ) -> String {
        self.node(op, inputs, attrs, 1).remove(0)
    }

    /// A constant initializer (one per distinct value).
    pub fn constant(&mut self, elem: i32, dims: &[i64], raw: Vec<u8>) -> String {
        let key = (elem, dims.to_vec(), raw);
        if let Some(n) = self.consts.get(&key) {
            return n.clone();
        }
        let name = self.fresh("const");
        self.initializers
            .push(proto::tensor(&name, elem, dims, key.2.clone()));
        self.consts.insert(key, name.clone());
        name
    }

    /// A named initializer holding a tensor.
    pub fn weight(&mut self, name: &str, t: &Tensor) {
        let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        self.initializers.push(proto::tensor(
            name,
            proto::elem_type(t.dtype()),
            &dims,
            raw_bytes(t),
        ));
    }

    pub fn int64s(&mut self, v: &[i64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.constant(proto::INT64, &[v.len() as i64], raw)
    }

    /// A scalar of `dtype` holding `value` converted as the IR's `const` converts it.
    pub fn scalar(&mut self, dtype: DType, value: f64) -> Tv {
        let raw = match dtype {
            DType::F32 => (value as f32).to_le_bytes().to_vec(),
            DType::F64 => value.to_le_bytes().to_vec(),
            DType::I32 => (value as i32).to_le_bytes().to_vec(),
            DType::Bool => vec![u8::from(value != 0.0)],
        };
        Tv {
            name: self.constant(proto::elem_type(dtype), &[], raw),
            dtype,
            shape: Vec::new(),
        }
    }

    /// The batch size as an int64 `[1]`, read from the input once.
    fn batch(&mut self) -> Result<String, String> {
        if let Some(b) = &self.batch {
            return Ok(b.clone());
        }
        let src = self.batch_source.clone().ok_or(
            "a size depends on the batch, but no input of the model has the batch as an axis",
        )?;
        // Read in the model's graph, before any node that could need it.
        let name = self.fresh("batch");
        let axis = src.axis as i64;
        self.graphs[0].node.push(NodeProto {
            input: vec![src.input.clone()],
            output: vec![name.clone()],
            name: Some(name.clone()),
            op_type: Some("Shape".into()),
            attribute: vec![proto::int("start", axis), proto::int("end", axis + 1)],
            ..Default::default()
        });
        *self.op_counts.entry("Shape".into()).or_default() += 1;
        self.batch = Some(name.clone());
        Ok(name)
    }

    /// A size as an int64 `[1]`.
    fn dim_value(&mut self, d: Dim) -> Result<String, String> {
        if d.is_fixed() {
            return Ok(self.int64s(&[d.fixed]));
        }
        let mut v = self.batch()?;
        if d.per_batch != 1 {
            let k = self.int64s(&[d.per_batch]);
            v = self.node1("Mul", &[&v, &k], vec![]);
        }
        if d.fixed != 0 {
            let c = self.int64s(&[d.fixed]);
            v = self.node1("Add", &[&v, &c], vec![]);
        }
        Ok(v)
    }

    /// A shape as an int64 vector, computed from the batch size where it enters.
    fn shape_value(&mut self, dims: &[Dim]) -> Result<String, String> {
        if dims.iter().all(|d| d.is_fixed()) {
            let v: Vec<i64> = dims.iter().map(|d| d.fixed).collect();
            return Ok(self.int64s(&v));
        }
        let mut parts = Vec::new();
        let mut run = Vec::new();
        for &d in dims {
            if d.is_fixed() {
                run.push(d.fixed);
            } else {
                if !run.is_empty() {
                    parts.push(self.int64s(&std::mem::take(&mut run)));
                }
                parts.push(self.dim_value(d)?);
            }
        }
        if !run.is_empty() {
            parts.push(self.int64s(&run));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        Ok(self.node1("Concat", &refs, vec![proto::int("axis", 0)]))
    }

    /// `tv` with exactly the shape `target` (an `Expand` when it is smaller).
    pub fn full(&mut self, tv: &Tv, target: &[Dim]) -> Result<String, String> {
        if tv.shape == target {
            return Ok(tv.name.clone());
        }
        let shape = self.shape_value(target)?;
        Ok(self.node1("Expand", &[&tv.name, &shape], vec![]))
    }

    /// `Reshape` to `target`: a constant shape, with -1 for the one size that depends on the
    /// batch.
    fn reshape(&mut self, x: &str, target: &[Dim]) -> Result<String, String> {
        let dynamic = target.iter().filter(|d| !d.is_fixed()).count();
        let shape = if dynamic == 1 && target.iter().all(|d| d.fixed != 0 || !d.is_fixed()) {
            let v: Vec<i64> = target
                .iter()
                .map(|d| if d.is_fixed() { d.fixed } else { -1 })
                .collect();
            self.int64s(&v)
        } else if dynamic == 0 && target.iter().all(|d| d.fixed != 0) {
            let v: Vec<i64> = target.iter().map(|d| d.fixed).collect();
            self.int64s(&v)
        } else {
            self.shape_value(target)?
        };
        let allowzero = target.iter().any(|d| d.is_fixed() && d.fixed == 0);
        let attrs = if allowzero {
            vec![proto::int("allowzero", 1)]
        } else {
            vec![]
        };
        Ok(self.node1("Reshape", &[x, &shape], attrs))
    }

    /// Translates a graph into the innermost ONNX graph: `bind` gives each `input` node its
    /// value. Returns the value of every node that was needed (None for the others).
    pub fn graph(
        &mut self,
        g: &Graph,
        sym: &SymGraph,
        bind: &mut BindInput,
    ) -> Result<Vec<Option<Value>>, String> {
        let plan = plan::plan(g);
        let mut values: Vec<Option<Value>> = vec![None; g.nodes.len()];
        for (i, node) in g.nodes.iter().enumerate() {
            if !plan.needed[i] {
                continue;
            }
            self.loc = node.loc.clone();
            let ty = &sym.types[i];
            let get = |v: ValueId| -> Result<&Tv, String> {
                values[v.index()]
                    .as_ref()
                    .ok_or_else(|| format!("internal: %{} is used before it is exported", v.0))?
                    .tensor()
            };
            let value = if let Op::Input { name, role, .. } = &node.op {
                bind(self, name, *role, ty.tensor())?
            } else if let Some(f) = &plan.fused[i] {
                let operands: Vec<Tv> = f
                    .operands()
                    .into_iter()
                    .map(|v| get(v).cloned())
                    .collect::<Result<_, _>>()?;
                let types: Vec<SymTensor> = f
                    .operands()
                    .into_iter()
                    .map(|v| sym.types[v.index()].tensor().clone())
                    .collect();
                Value::Tensor(self.fused(f, &operands, &types, ty.tensor(), g)?)
            } else if let Op::Scan {
                body,
                carries,
                seqs,
                reverse,
            } = &node.op
            {
                let operands: Vec<Tv> = node
                    .args
                    .iter()
                    .map(|&v| get(v).cloned())
                    .collect::<Result<_, _>>()?;
                let arg_types: Vec<SymTensor> = node
                    .args
                    .iter()
                    .map(|v| sym.types[v.index()].tensor().clone())
                    .collect();
                let body_sym = &sym.bodies[&i];
                let SymType::Tuple(results) = ty else {
                    return Err("internal: a scan without a tuple type".into());
                };
                Value::Tuple(self.scan(
                    body, body_sym, &operands, &arg_types, *carries, *seqs, *reverse, results,
                )?)
            } else if let Op::Get { index } = node.op {
                match &values[node.args[0].index()] {
                    Some(Value::Tuple(parts)) => Value::Tensor(parts[index].clone()),
                    _ => return Err("internal: `get` of a value that is not a tuple".into()),
                }
            } else {
                let operands: Vec<Tv> = node
                    .args
                    .iter()
                    .map(|&v| get(v).cloned())
                    .collect::<Result<_, _>>()?;
                let arg_types: Vec<&SymTensor> = node
                    .args
                    .iter()
                    .map(|v| sym.types[v.index()].tensor())
                    .collect();
                Value::Tensor(self.primitive(&node.op, &operands, &arg_types, ty.tensor())?)
            };
            values[i] = Some(value);
        }
        Ok(values)
    }

    fn fused(
        &mut self,
        f: &Fused,
        x: &[Tv],
        types: &[SymTensor],
        out: &SymTensor,
        g: &Graph,
    ) -> Result<Tv, String> {
        let tv = |name: String| Tv {
            name,
            dtype: out.dtype,
            shape: out.shape.clone(),
        };
        let full = |b: &mut Builder, i: usize| b.full(&x[i], &types[i].shape);
        Ok(match f {
            Fused::Conv {
                w, bias, window, ..
            } => {
                let input = full(self, 0)?;
                let weight = self.conv_weight(&x[1], g, *w, window)?;
                let mut inputs = vec![input, weight];
                if bias.is_some() {
                    inputs.push(x[2].name.clone());
                }
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                let k = window.kernel as i64;
                let p = window.padding as i64;
                let attrs = vec![
                    proto::ints("kernel_shape", &[k, k]),
                    proto::ints("strides", &[window.stride as i64; 2]),
                    proto::ints("pads", &[p, p, p, p]),
                    proto::ints("dilations", &[window.dilation as i64; 2]),
                ];
                tv(self.node1("Conv", &refs, attrs))
            }
            Fused::Gemm { .. } => {
                let (a, w, bias) = (full(self, 0)?, full(self, 1)?, full(self, 2)?);
                tv(self.node1("Gemm", &[&a, &w, &bias], vec![]))
            }
            Fused::MatMul { .. } => {
                let (a, w) = (full(self, 0)?, full(self, 1)?);
                tv(self.node1("MatMul", &[&a, &w], vec![]))
            }
            Fused::LayerNorm { eps, .. } => {
                let (a, gamma, beta) = (full(self, 0)?, full(self, 1)?, full(self, 2)?);
                let attrs = vec![proto::int("axis", -1), proto::float("epsilon", *eps as f32)];
                tv(self.node1("LayerNormalization", &[&a, &gamma, &beta], attrs))
            }
            Fused::Unary { op, alpha, .. } => {
                let mut attrs = Vec::new();
                if *op == "Softmax" {
                    attrs.push(proto::int("axis", -1));
                }
                if let Some(a) = alpha {
                    attrs.push(proto::float("alpha", *a as f32));
                }
                if *op == "Softmax" {
                    let a = full(self, 0)?;
                    tv(self.node1(op, &[&a], attrs))
                } else {
                    // Elementwise: the operand may stay smaller than the result.
                    Tv {
                        name: self.node1(op, &[&x[0].name], attrs),
                        dtype: out.dtype,
                        shape: x[0].shape.clone(),
                    }
                }
            }
            Fused::Pool { op, size, .. } => {
                let a = full(self, 0)?;
                let s = *size as i64;
                let attrs = vec![
                    proto::ints("kernel_shape", &[s, s]),
                    proto::ints("strides", &[s, s]),
                ];
                tv(self.node1(op, &[&a], attrs))
            }
        })
    }

    /// The `unfold` layout's weight `[C·k·k, F]` as ONNX's `[F, C, k, k]`: the transposed
    /// initializer when the weight is a parameter, else `Transpose` and `Reshape` nodes.
    fn conv_weight(
        &mut self,
        w: &Tv,
        g: &Graph,
        v: ValueId,
        window: &Window,
    ) -> Result<String, String> {
        let [ckk, f] = g.ty(v).shape[..] else {
            return Err("internal: a convolution weight that is not a matrix".into());
        };
        let kk = window.kernel * window.kernel;
        let dims = [
            f as i64,
            (ckk / kk) as i64,
            window.kernel as i64,
            window.kernel as i64,
        ];
        if let Some(t) = self
            .initializers
            .iter_mut()
            .find(|t| t.name.as_deref() == Some(&w.name))
            && t.dims == [ckk as i64, f as i64]
        {
            // Only convolutions read a Conv2d's weight, so the initializer changes layout in place.
            let raw = t.raw_data.take().unwrap_or_default();
            let size = raw.len() / (ckk * f).max(1);
            let mut out = vec![0u8; raw.len()];
            for r in 0..ckk {
                for c in 0..f {
                    let src = (r * f + c) * size;
                    let dst = (c * ckk + r) * size;
                    out[dst..dst + size].copy_from_slice(&raw[src..src + size]);
                }
            }
            t.raw_data = Some(out);
            t.dims = dims.to_vec();
            return Ok(w.name.clone());
        }
        let full = self.full(w, &[Dim::fixed(ckk as i64), Dim::fixed(f as i64)])?;
        let t = self.node1("Transpose", &[&full], vec![proto::ints("perm", &[1, 0])]);
        let shape = self.int64s(&dims);
        Ok(self.node1("Reshape", &[&t, &shape], vec![]))
    }

    /// One primitive as ONNX operators.
    fn primitive(
        &mut self,
        op: &Op,
        x: &[Tv],
        types: &[&SymTensor],
        out: &SymTensor,
    ) -> Result<Tv, String> {
        let dtype = out.dtype;
        let whole = |name: String| Tv {
            name,
            dtype,
            shape: out.shape.clone(),
        };
        let full = |b: &mut Builder, i: usize| b.full(&x[i], &types[i].shape);
        Ok(match op {
            Op::Input { .. } | Op::Scan { .. } | Op::Get { .. } => {
                return Err("internal: structural node in `primitive`".into());
            }
            Op::Const { value, .. } => self.scalar(dtype, *value),
            Op::Iota { axis, .. } => {
                let n = out.shape[*axis];
                let limit = if n.is_fixed() {
                    self.constant(proto::INT64, &[], n.fixed.to_le_bytes().to_vec())
                } else {
                    let v = self.dim_value(n)?;
                    let scalar_shape = self.int64s(&[]);
                    self.node1("Reshape", &[&v, &scalar_shape], vec![])
                };
                let zero = self.constant(proto::INT64, &[], 0i64.to_le_bytes().to_vec());
                let one = self.constant(proto::INT64, &[], 1i64.to_le_bytes().to_vec());
                let range = self.node1(operator(op)?, &[&zero, &limit, &one], vec![]);
                let cast = self.node1(
                    "Cast",
                    &[&range],
                    vec![proto::int("to", proto::elem_type(dtype) as i64)],
                );
                // [n, 1, …, 1]: broadcasts along the axes after `axis`, and before it.
                let mut shape = vec![n];
                shape.extend(std::iter::repeat_n(Dim::ONE, out.shape.len() - axis - 1));
                let target: Vec<i64> = shape
                    .iter()
                    .map(|d| if d.is_fixed() { d.fixed } else { -1 })
                    .collect();
                let t = self.int64s(&target);
                Tv {
                    name: self.node1("Reshape", &[&cast, &t], vec![]),
                    dtype,
                    shape,
                }
            }
            Op::Rand { .. } => return Err(unsupported(op)),
            // An exported model runs in one process, where a sum over shards is the identity.
            Op::Detach | Op::AllSum => x[0].clone(),
            Op::Neg
            | Op::Exp
            | Op::Log
            | Op::Sqrt
            | Op::Sin
            | Op::Cos
            | Op::Erf
            | Op::Tanh
            | Op::Sigmoid
            | Op::Not => Tv {
                name: self.node1(operator(op)?, &[&x[0].name], vec![]),
                dtype,
                shape: x[0].shape.clone(),
            },
            Op::Cast { to } => {
                let attrs = vec![proto::int("to", proto::elem_type(*to) as i64)];
                Tv {
                    name: self.node1(operator(op)?, &[&x[0].name], attrs),
                    dtype,
                    shape: x[0].shape.clone(),
                }
            }
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Max
            | Op::Min
            | Op::Cmp(CmpOp::Eq | CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge)
            | Op::And
            | Op::Or
            | Op::Select => {
                let (names, shape) = self.broadcast_operands(x, types, out)?;
                let n: Vec<&str> = names.iter().map(String::as_str).collect();
                Tv {
                    name: self.node1(operator(op)?, &n, vec![]),
                    dtype,
                    shape,
                }
            }
            Op::Div => {
                let (names, shape) = self.broadcast_operands(x, types, out)?;
                let (a, b) = (&names[0], &names[1]);
                let name = if types[0].dtype.is_float() {
                    self.node1(operator(op)?, &[a, b], vec![])
                } else {
                    // The IR's integer division rounds toward −∞, ONNX's toward zero: subtract
                    // the (floor) remainder first, then the quotient is exact.
                    let rem = self.node1("Mod", &[a, b], vec![]);
                    let exact = self.node1("Sub", &[a, &rem], vec![]);
                    self.node1(operator(op)?, &[&exact, b], vec![])
                };
                Tv { name, dtype, shape }
            }
            Op::Cmp(CmpOp::Ne) => {
                let (names, shape) = self.broadcast_operands(x, types, out)?;
                let n: Vec<&str> = names.iter().map(String::as_str).collect();
                let eq = self.node1("Equal", &n, vec![]);
                Tv {
                    name: self.node1(operator(op)?, &[&eq], vec![]),
                    dtype,
                    shape,
                }
            }
            Op::Sum { axes } => {
                if axes.is_empty() {
                    return Ok(x[0].clone());
                }
                let a = full(self, 0)?;
                let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                let axes = self.int64s(&axes);
                let keepdims = vec![proto::int("keepdims", 0)];
                whole(self.node1(operator(op)?, &[&a, &axes], keepdims))
            }
            Op::ReduceMax { axes } => {
                if axes.is_empty() {
                    return Ok(x[0].clone());
                }
                let a = full(self, 0)?;
                let axes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
                let attrs = vec![proto::ints("axes", &axes), proto::int("keepdims", 0)];
                whole(self.node1(operator(op)?, &[&a], attrs))
            }
            Op::Argmax { axis } => {
                let a = full(self, 0)?;
                let am = self.node1(
                    operator(op)?,
                    &[&a],
                    vec![proto::int("axis", *axis as i64), proto::int("keepdims", 0)],
                );
                whole(self.node1(
                    "Cast",
                    &[&am],
                    vec![proto::int("to", proto::elem_type(DType::I32) as i64)],
                ))
            }
            Op::Reshape { .. } => {
                if x[0].shape.iter().all(|&d| d == Dim::ONE) {
                    // A splat stays a scalar.
                    return Ok(Tv {
                        shape: Vec::new(),
                        ..x[0].clone()
                    });
                }
                let a = full(self, 0)?;
                whole(self.reshape(&a, &out.shape)?)
            }
            Op::Permute { perm } => {
                if x[0].shape.is_empty() {
                    return Ok(x[0].clone());
                }
                let p: Vec<i64> = perm.iter().map(|&a| a as i64).collect();
                if x[0].shape.len() == perm.len() {
                    let shape = perm.iter().map(|&a| x[0].shape[a]).collect();
                    Tv {
                        name: self.node1(
                            operator(op)?,
                            &[&x[0].name],
                            vec![proto::ints("perm", &p)],
                        ),
                        dtype,
                        shape,
                    }
                } else {
                    let a = full(self, 0)?;
                    whole(self.node1(operator(op)?, &[&a], vec![proto::ints("perm", &p)]))
                }
            }
            Op::Broadcast { .. } => x[0].clone(),
            Op::Slice { axis, start, end } => {
                let rank = types[0].shape.len();
                let lazy_axis = (x[0].shape.len() + axis).checked_sub(rank);
                if end > start && lazy_axis.is_none_or(|a| x[0].shape[a] == Dim::ONE) {
                    // The sliced axis is broadcast: every slice of it is the same.
                    return Ok(x[0].clone());
                }
                let size = types[0].shape[*axis];
                let a = full(self, 0)?;
                if !size.is_fixed() {
                    if *start == 0 && *end as i64 == size.at_first() {
                        return Ok(Tv {
                            name: a,
                            dtype,
                            shape: out.shape.clone(),
                        });
                    }
                    return Err("a slice of the batch axis cannot be exported".into());
                }
                let (starts, ends) = (self.int64s(&[*start as i64]), self.int64s(&[*end as i64]));
                let axes = self.int64s(&[*axis as i64]);
                whole(self.node1(operator(op)?, &[&a, &starts, &ends, &axes], vec![]))
            }
            Op::Pad { axis, lo, hi } => {
                let a = full(self, 0)?;
                let rank = out.shape.len();
                let mut pads = vec![0i64; 2 * rank];
                pads[*axis] = *lo as i64;
                pads[rank + axis] = *hi as i64;
                let pads = self.int64s(&pads);
                whole(self.node1(operator(op)?, &[&a, &pads], vec![]))
            }
            Op::Concat { axis } => {
                let parts: Vec<String> = (0..x.len())
                    .map(|i| full(self, i))
                    .collect::<Result<_, _>>()?;
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                whole(self.node1(operator(op)?, &refs, vec![proto::int("axis", *axis as i64)]))
            }
            Op::MatMul => {
                // ONNX broadcasts the batch axes of a product; the matrix axes must be whole.
                let operand = |b: &mut Builder, i: usize| -> Result<(String, Vec<Dim>), String> {
                    let (t, want) = (&x[i], &types[i].shape);
                    let r = want.len();
                    if t.shape.len() >= 2 && t.shape[t.shape.len() - 2..] == want[r - 2..] {
                        Ok((t.name.clone(), t.shape[..t.shape.len() - 2].to_vec()))
                    } else {
                        Ok((b.full(t, want)?, want[..r - 2].to_vec()))
                    }
                };
                let (a, ab) = operand(self, 0)?;
                let (b, bb) = operand(self, 1)?;
                let batch = sym::broadcast(&ab, &bb).ok_or("internal: matmul batch axes")?;
                let r = out.shape.len();
                let mut shape = batch;
                shape.extend_from_slice(&out.shape[r - 2..]);
                Tv {
                    name: self.node1(operator(op)?, &[&a, &b], vec![]),
                    dtype,
                    shape,
                }
            }
            Op::Unfold(w) => {
                // im2col is a convolution with a one-hot kernel per (channel, ki, kj) row.
                let a = full(self, 0)?;
                let c = types[0].shape[1].fixed as usize;
                let k = w.kernel;
                let ckk = c * k * k;
                let mut weight = vec![0.0f64; ckk * c * k * k];
                for ch in 0..c {
                    for ki in 0..k {
                        for kj in 0..k {
                            let row = ch * k * k + ki * k + kj;
                            weight[((row * c + ch) * k + ki) * k + kj] = 1.0;
                        }
                    }
                }
                let kernel =
                    self.float_tensor(dtype, &[ckk as i64, c as i64, k as i64, k as i64], &weight);
                let conv = self.node1(operator(op)?, &[&a, &kernel], window_attrs(w));
                whole(self.reshape(&conv, &out.shape)?)
            }
            Op::Fold { window: w, size } => {
                // col2im is the transposed convolution with the one-hot kernel of `unfold`.
                let a = full(self, 0)?;
                let c = out.shape[1].fixed as usize;
                let k = w.kernel;
                let ckk = c * k * k;
                let (oh, ow) = (
                    w.out_len(size[0]).ok_or("internal: fold window")?,
                    w.out_len(size[1]).ok_or("internal: fold window")?,
                );
                let mut grid = vec![out.shape[0], Dim::fixed(ckk as i64)];
                grid.extend([Dim::fixed(oh as i64), Dim::fixed(ow as i64)]);
                let cols = self.reshape(&a, &grid)?;
                let mut weight = vec![0.0f64; ckk * c * k * k];
                for ch in 0..c {
                    for ki in 0..k {
                        for kj in 0..k {
                            let row = ch * k * k + ki * k + kj;
                            weight[((row * c + ch) * k + ki) * k + kj] = 1.0;
                        }
                    }
                }
                let kernel =
                    self.float_tensor(dtype, &[ckk as i64, c as i64, k as i64, k as i64], &weight);
                let span = |n: usize| (n - 1) * w.stride + w.dilation * (k - 1) + 1;
                let extra = [
                    (size[0] + 2 * w.padding - span(oh)) as i64,
                    (size[1] + 2 * w.padding - span(ow)) as i64,
                ];
                let mut attrs = window_attrs(w);
                attrs.push(proto::ints("output_padding", &extra));
                whole(self.node1(operator(op)?, &[&cols, &kernel], attrs))
            }
            Op::Gather => {
                let table = full(self, 0)?;
                whole(self.node1(
                    operator(op)?,
                    &[&table, &x[1].name],
                    vec![proto::int("axis", 0)],
                ))
                .with_shape_of(&x[1], &types[1].shape, out)
            }
            Op::ScatterAdd { rows } => {
                let ids = full(self, 0)?;
                let updates = full(self, 1)?;
                let ids64 =
                    self.node1("Cast", &[&ids], vec![proto::int("to", proto::INT64 as i64)]);
                let minus_one = self.int64s(&[-1]);
                let idx = self.node1("Unsqueeze", &[&ids64, &minus_one], vec![]);
                let zero = self.scalar(dtype, 0.0);
                let mut shape = vec![Dim::fixed(*rows as i64)];
                shape.extend_from_slice(&out.shape[1..]);
                let data = self.full(&zero, &shape)?;
                whole(self.node1(
                    operator(op)?,
                    &[&data, &idx, &updates],
                    vec![proto::string("reduction", "add")],
                ))
            }
        })
    }

    /// The operands of an elementwise operator as ONNX values and the shape of its result: as
    /// they are when they broadcast to each other, else expanded to the result's shape.
    fn broadcast_operands(
        &mut self,
        x: &[Tv],
        types: &[&SymTensor],
        out: &SymTensor,
    ) -> Result<(Vec<String>, Vec<Dim>), String> {
        let mut shape: Vec<Dim> = Vec::new();
        let mut lazy = true;
        for t in x {
            match sym::broadcast(&shape, &t.shape) {
                Some(s) => shape = s,
                None => lazy = false,
            }
        }
        if lazy {
            return Ok((x.iter().map(|t| t.name.clone()).collect(), shape));
        }
        let names = (0..x.len())
            .map(|i| self.full(&x[i], &types[i].shape))
            .collect::<Result<_, _>>()?;
        Ok((names, out.shape.clone()))
    }

    fn float_tensor(&mut self, dtype: DType, dims: &[i64], values: &[f64]) -> String {
        let raw = match dtype {
            DType::F64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            _ => values
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
        };
        self.constant(proto::elem_type(dtype), dims, raw)
    }

    /// A scan as an ONNX `Scan` whose body is the IR body translated; the values the body reads
    /// from outside are referenced by name.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &mut self,
        body: &Graph,
        sym: &SymGraph,
        operands: &[Tv],
        arg_types: &[SymTensor],
        carries: usize,
        seqs: usize,
        reverse: bool,
        results: &[SymTensor],
    ) -> Result<Vec<Tv>, String> {
        let mut inputs = Vec::new();
        for i in 0..carries + seqs {
            inputs.push(self.full(&operands[i], &arg_types[i].shape)?);
        }
        let loc = self.loc.clone();
        let body_name = self.fresh("scan_body");
        self.graphs.push(GraphProto {
            name: Some(body_name),
            ..Default::default()
        });
        let mut index = 0usize;
        let mut bind =
            |b: &mut Builder, _name: &str, _role: Role, t: &SymTensor| -> Result<Value, String> {
                let i = index;
                index += 1;
                if i < carries + seqs {
                    let name = b.fresh(if i < carries { "carry" } else { "step" });
                    b.graph_mut().input.push(proto::value_info(
                        &name,
                        proto::elem_type(t.dtype),
                        Some(&t.shape),
                    ));
                    Ok(Value::Tensor(Tv {
                        name,
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                    }))
                } else {
                    Ok(Value::Tensor(operands[i].clone()))
                }
            };
        let values = self.graph(body, sym, &mut bind)?;
        let mut used = std::collections::HashSet::new();
        for out in &body.outputs {
            let v = &out.value;
            let t = values[v.index()]
                .as_ref()
                .ok_or("internal: a scan body output was not exported")?
                .tensor()?
                .clone();
            let want = &sym.types[v.index()].tensor().shape;
            let mut name = self.full(&t, want)?;
            // Each output a distinct value computed in the body (not an input, an outer value
            // or a constant).
            let made_here = self
                .graph_mut()
                .node
                .iter()
                .any(|n| n.output.contains(&name));
            if !made_here || used.contains(&name) {
                name = self.node1("Identity", &[&name], vec![]);
            }
            used.insert(name.clone());
            self.graph_mut().output.push(proto::value_info(
                &name,
                proto::elem_type(t.dtype),
                Some(want),
            ));
        }
        let body_graph = self.graphs.pop().expect("the scan body");
        self.loc = loc;
        let outputs = body.outputs.len();
        let mut attrs = vec![
            proto::graph("body", body_graph),
            proto::int("num_scan_inputs", seqs as i64),
        ];
        if reverse {
            attrs.push(proto::ints("scan_input_directions", &vec![1; seqs]));
            attrs.push(proto::ints(
                "scan_output_directions",
                &vec![1; outputs - carries],
            ));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let names = self.node("Scan", &refs, attrs, outputs);
        Ok(names
            .into_iter()
            .zip(results)
            .map(|(name, t)| Tv {
                name,
                dtype: t.dtype,
                shape: t.shape.clone(),
            })
            .collect())
    }
}

impl Tv {
    /// A gather's result keeps the ids' broadcast axes only if the table is whole; the
    /// exporter always gathers from the whole table, so the result has the ids' shape
    /// followed by the table's row shape.
    fn with_shape_of(self, ids: &Tv, ids_full: &[Dim], out: &SymTensor) -> Tv {
        let row = &out.shape[ids_full.len()..];
        let mut shape = ids.shape.clone();
        shape.extend_from_slice(row);
        Tv { shape, ..self }
    }
}

/// The ONNX operator of `op`'s rule.
fn operator(op: &Op) -> Result<&'static str, String> {
    match rules::rule(op.prim()) {
        Rule::Operator(name) => Ok(name),
        Rule::Value | Rule::Unsupported(_) => Err(format!(
            "internal: `{}` is written as an operator, but its rule has none",
            op.name()
        )),
    }
}

/// The error for exporting `op`, whose rule refuses it.
fn unsupported(op: &Op) -> String {
    match rules::rule(op.prim()) {
        Rule::Unsupported(why) => format!("`{}` cannot be exported to ONNX: {why}", op.name()),
        Rule::Operator(_) | Rule::Value => {
            format!("internal: `{}` has an ONNX rule but was refused", op.name())
        }
    }
}

fn window_attrs(w: &Window) -> Vec<super::onnx::AttributeProto> {
    let k = w.kernel as i64;
    let p = w.padding as i64;
    vec![
        proto::ints("kernel_shape", &[k, k]),
        proto::ints("strides", &[w.stride as i64; 2]),
        proto::ints("pads", &[p, p, p, p]),
        proto::ints("dilations", &[w.dilation as i64; 2]),
    ]
}

fn raw_bytes(t: &Tensor) -> Vec<u8> {
    match t {
        Tensor::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::F64(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::I32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Tensor::Bool(a) => a.iter().map(|&v| u8::from(v)).collect(),
    }
}

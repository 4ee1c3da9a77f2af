//! The graph IR: SSA values with a dtype and a concrete shape, computed by a closed set of
//! primitives. Lowering builds graphs, differentiation extends them, the passes rewrite them and
//! the backends execute them. Every node remembers the source line and layer instance that made it.
//!
//! Conventions that keep every later stage simple:
//! - elementwise ops take operands of one identical shape: broadcasting is an explicit
//!   `broadcast` node (so its gradient is an explicit sum);
//! - reductions drop the reduced axes (lowering reshapes for `keep: true`);
//! - `matmul` contracts `[..S, M, K] @ [..S, K, N]` with equal batch axes;
//! - a `scan` is one node holding its body graph: a loop, never unrolled.

pub mod composite;
mod infer;
pub mod primitive;
#[cfg(test)]
pub(crate) mod samples;
pub mod stages;
pub mod text;
mod verify;

pub use infer::infer;
pub use primitive::{Class, Prim, Primitive};
pub use verify::{Verified, verify};

use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    I32,
    Bool,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 => "i32",
            DType::Bool => "bool",
        }
    }

    pub fn from_name(s: &str) -> Option<DType> {
        Some(match s {
            "f32" => DType::F32,
            "f64" => DType::F64,
            "i32" => DType::I32,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// A tensor's dtype and concrete, row-major shape (`[]` is a scalar).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<usize>) -> TensorType {
        TensorType { dtype, shape }
    }

    pub fn scalar(dtype: DType) -> TensorType {
        TensorType::new(dtype, Vec::new())
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn with_dtype(&self, dtype: DType) -> TensorType {
        TensorType::new(dtype, self.shape.clone())
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dtype.name())?;
        let dims: Vec<String> = self.shape.iter().map(usize::to_string).collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

/// A node's result: one tensor, or (for `scan`) several, taken apart with `get`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Tensor(TensorType),
    Tuple(Vec<TensorType>),
}

impl Type {
    pub fn tensor(&self) -> Option<&TensorType> {
        match self {
            Type::Tensor(t) => Some(t),
            Type::Tuple(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// What a graph input stands for; the runtime feeds each role from a different place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A batch of a data field (`x`, `y`).
    Data,
    /// A trainable parameter (`Mlp.dense_1.w`).
    Param,
    /// Layer state such as batch-norm running statistics.
    State,
    /// Optimizer state (`Mlp.dense_1.w.m`).
    OptState,
    /// A scalar of the training loop: `step` (1-based) or `epoch` (0-based).
    Counter,
    /// The random key `i32[2]`: the seed and a counter that changes every step.
    Rng,
    /// A value the caller provides to a graph that is spliced elsewhere (a gradient, a scan slice).
    Arg,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Data => "data",
            Role::Param => "param",
            Role::State => "state",
            Role::OptState => "opt_state",
            Role::Counter => "counter",
            Role::Rng => "rng",
            Role::Arg => "arg",
        }
    }

    pub fn from_name(s: &str) -> Option<Role> {
        Some(match s {
            "data" => Role::Data,
            "param" => Role::Param,
            "state" => Role::State,
            "opt_state" => Role::OptState,
            "counter" => Role::Counter,
            "rng" => Role::Rng,
            "arg" => Role::Arg,
            _ => return None,
        })
    }
}

/// What a graph output is. Later stages find outputs by role (the step's loss, the metrics, the
/// values that replace inputs), never by spelling out names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputRole {
    /// A value the caller reads by name: a scan body's carries and slices, a spliced graph's
    /// results, a test's outputs.
    Value,
    /// The model's output `out`, which evaluation, prediction and whole-split metrics read.
    Prediction,
    /// The loss a training step minimizes; in an evaluation graph of several phases, each
    /// phase's loss (`loss.<phase>`).
    Loss,
    /// A metric's value on the batch, and how batch values combine over a split.
    Metric(Aggregation),
    /// The next value of the input named like this output (in the init graph, its first value):
    /// a parameter, layer state or optimizer state.
    Update(Role),
    /// `grad.<input>`: the gradient of the loss with respect to that input.
    Gradient,
    /// A statistic of a training step that the runtime watches (gradient health, the learning
    /// rate), named `health.<subject>.<statistic>`; a step computes them only when asked.
    Health(Health),
}

impl OutputRole {
    /// The words after an output's name in the text form (empty for `Value`).
    pub fn words(self) -> String {
        match self {
            OutputRole::Value => String::new(),
            OutputRole::Prediction => "prediction".into(),
            OutputRole::Loss => "loss".into(),
            OutputRole::Metric(a) => format!("metric {}", a.name()),
            OutputRole::Update(r) => format!("new {}", r.name()),
            OutputRole::Gradient => "grad".into(),
            OutputRole::Health(h) => format!("health {}", h.name()),
        }
    }
}

/// What a watched statistic of a training step measures. The norms are over all parameters of
/// one layer together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// ‖∂loss/∂p‖, before any clipping.
    GradNorm,
    /// ‖p‖ before the update.
    WeightNorm,
    /// ‖p_new − p‖: how far the step moved the parameters.
    UpdateNorm,
    /// Per unit of a ReLU's output (a feature; a channel of an image), the fraction of the
    /// batch's values that are positive.
    Active,
    /// The learning rate of the step, as its schedule computed it.
    LearningRate,
}

impl Health {
    pub const ALL: [Health; 5] = [
        Health::GradNorm,
        Health::WeightNorm,
        Health::UpdateNorm,
        Health::Active,
        Health::LearningRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Health::GradNorm => "grad_norm",
            Health::WeightNorm => "weight_norm",
            Health::UpdateNorm => "update_norm",
            Health::Active => "active",
            Health::LearningRate => "learning_rate",
        }
    }

    pub fn from_name(s: &str) -> Option<Health> {
        Health::ALL.into_iter().find(|h| h.name() == s)
    }
}

/// How a metric's batch values combine into its value over a split. A metric declares it in its
/// definition (`std.metrics`); the runtime reads it from the metric's output role. Serialized
/// in the running sums of an interrupted epoch's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Aggregation {
    /// The mean of the batch values, each weighted by its batch's size.
    Mean,
    /// The root of the weighted mean of the squared batch values (the split's exact RMSE when
    /// each batch value is a batch's RMSE).
    RootMeanSquare,
    /// R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)², from sums of the prediction and the target over the
    /// whole split (not a mean of anything per batch).
    R2,
    /// The exponential of the weighted mean of the logarithms of the batch values (a weighted
    /// geometric mean): a split's exact perplexity when each batch value is the exponential of
    /// the batch's mean cross-entropy and every sample holds the same number of tokens.
    GeometricMean,
}

impl Aggregation {
    pub const ALL: [Aggregation; 4] = [
        Aggregation::Mean,
        Aggregation::RootMeanSquare,
        Aggregation::R2,
        Aggregation::GeometricMean,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::RootMeanSquare => "root_mean_square",
            Aggregation::R2 => "r2",
            Aggregation::GeometricMean => "geometric_mean",
        }
    }

    pub fn from_name(s: &str) -> Option<Aggregation> {
        Aggregation::ALL.into_iter().find(|a| a.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }

    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dist {
    Uniform,
    Normal,
}

/// Window geometry shared by `unfold` and `fold` (square kernels over the last two axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Window {
    /// The number of window positions along an axis of length `n`; `None` when the window does
    /// not fit, is degenerate (a zero kernel, stride or dilation) or its extent overflows.
    pub fn out_len(&self, n: usize) -> Option<usize> {
        if self.kernel == 0 || self.stride == 0 || self.dilation == 0 {
            return None;
        }
        let span = self.dilation.checked_mul(self.kernel - 1)?.checked_add(1)?;
        let padded = self.padding.checked_mul(2)?.checked_add(n)?;
        (padded >= span).then(|| (padded - span) / self.stride + 1)
    }
}

/// The primitives. Attributes that fix the result's type (shapes, dtypes) live in the op, so a
/// node's type always follows from its op and its operands (`infer`).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Input {
        name: String,
        role: Role,
        ty: TensorType,
    },
    /// A tensor filled with one value.
    Const {
        value: f64,
        ty: TensorType,
    },
    /// Each element's index along `axis`.
    Iota {
        axis: usize,
        ty: TensorType,
    },
    /// Counter-based random numbers from the key operand `i32[2]`; `stream` tells apart the random
    /// nodes of one graph, so each draws different numbers from the same key.
    Rand {
        dist: Dist,
        stream: u32,
        ty: TensorType,
    },
    Neg,
    Exp,
    Log,
    Sqrt,
    Sin,
    Cos,
    /// The error function 2/√π ∫₀ˣ e^(−t²) dt (exact GELU is x·(1 + erf(x/√2))/2).
    Erf,
    /// The hyperbolic tangent; the backends compute it as [`composite::recipe`] says.
    Tanh,
    /// The logistic function 1 / (1 + e^−x); computed as [`composite::recipe`] says.
    Sigmoid,
    Not,
    Cast {
        to: DType,
    },
    /// The identity, through which no gradient flows.
    Detach,
    /// The sum of its operand over the shards of a data-parallel step (`ir::stages` cuts the
    /// step there, and the runtime adds the shards' values in shard order); the identity in one
    /// process. Its VJP is the same sum of the cotangent.
    AllSum,
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Cmp(CmpOp),
    And,
    Or,
    /// `select(cond, a, b)`: a where cond is true, else b.
    Select,
    Sum {
        axes: Vec<usize>,
    },
    ReduceMax {
        axes: Vec<usize>,
    },
    /// The index (i32) of the first maximum along `axis`, which is dropped.
    Argmax {
        axis: usize,
    },
    Reshape {
        shape: Vec<usize>,
    },
    Permute {
        perm: Vec<usize>,
    },
    /// Numpy broadcasting to `shape`: operand axes align right; each is 1 or equal.
    Broadcast {
        shape: Vec<usize>,
    },
    Slice {
        axis: usize,
        start: usize,
        end: usize,
    },
    /// Zeros added before (`lo`) and after (`hi`) along `axis`.
    Pad {
        axis: usize,
        lo: usize,
        hi: usize,
    },
    Concat {
        axis: usize,
    },
    MatMul,
    /// im2col over the last two axes: `[B, C, H, W]` → `[B, C·k·k, OH·OW]`.
    Unfold(Window),
    /// col2im, the adjoint of `unfold`: `[B, C·k·k, OH·OW]` → `[B, C, H, W]`, overlaps summed.
    Fold {
        window: Window,
        size: [usize; 2],
    },
    /// Rows of a table: `table[V, ..D]`, `ids i32[..S]` → `[..S, ..D]`.
    Gather,
    /// The adjoint of `gather`: `ids i32[..S]`, `updates [..S, ..D]` → `[rows, ..D]`, summed.
    ScatterAdd {
        rows: usize,
    },
    /// A loop over axis 0 of the sequences. Operands: `carries`, then `seqs`, then constants the
    /// body reads. The body's inputs are the same list with each sequence replaced by one slice;
    /// its outputs are the new carries, then the per-step outputs. The result is the final
    /// carries, then each per-step output stacked along a new axis 0. `reverse` runs the steps
    /// from last to first (the backward pass of a scan).
    Scan {
        body: Box<Graph>,
        carries: usize,
        seqs: usize,
        reverse: bool,
    },
    /// Element `index` of a tuple result.
    Get {
        index: usize,
    },
}

/// Where a node came from: the layer instance (`Mlp.dense_1`) and the source position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Loc {
    pub scope: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Loc {
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub args: Vec<ValueId>,
    pub ty: Type,
    pub loc: Loc,
}

/// One result of a graph: its name, value and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub value: ValueId,
    pub role: OutputRole,
}

impl Output {
    pub fn new(name: impl Into<String>, value: ValueId, role: OutputRole) -> Output {
        Output {
            name: name.into(),
            value,
            role,
        }
    }
}

/// A graph: nodes in topological order (a node's operands come before it), named outputs with
/// roles. Inputs are `input` nodes. Node `i` defines value `%i`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub nodes: Vec<Node>,
    pub outputs: Vec<Output>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    pub fn node(&self, v: ValueId) -> &Node {
        &self.nodes[v.index()]
    }

    /// The tensor type of a value (panics on a tuple, which only `get` may use).
    pub fn ty(&self, v: ValueId) -> &TensorType {
        match &self.node(v).ty {
            Type::Tensor(t) => t,
            Type::Tuple(_) => panic!("{v} is a tuple; take its parts with `get`"),
        }
    }

    /// Adds a node after checking its operands; the error says what is wrong, for the verifier
    /// and for stages that build graphs from checked programs (where it is an internal error).
    pub fn try_add(&mut self, op: Op, args: Vec<ValueId>, loc: Loc) -> Result<ValueId, String> {
        let types = args
            .iter()
            .map(|a| {
                self.nodes
                    .get(a.index())
                    .map(|n| &n.ty)
                    .ok_or_else(|| format!("operand {a} is not defined"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ty = infer(&op, &types)?;
        self.nodes.push(Node { op, args, ty, loc });
        Ok(ValueId(self.nodes.len() as u32 - 1))
    }

    /// Adds a node that the caller built from well-typed operands.
    pub fn add(&mut self, op: Op, args: Vec<ValueId>, loc: Loc) -> ValueId {
        let name = op.name();
        match self.try_add(op, args, loc) {
            Ok(v) => v,
            Err(e) => panic!("internal error: ill-typed `{name}` node: {e}"),
        }
    }

    pub fn input(&mut self, name: impl Into<String>, role: Role, ty: TensorType) -> ValueId {
        let op = Op::Input {
            name: name.into(),
            role,
            ty,
        };
        self.add(op, Vec::new(), Loc::default())
    }

    /// Every input node: its value, name and role, in order.
    pub fn inputs(&self) -> impl Iterator<Item = (ValueId, &str, Role)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.op {
                Op::Input { name, role, .. } => Some((ValueId(i as u32), name.as_str(), *role)),
                _ => None,
            })
    }

    pub fn find_input(&self, name: &str) -> Option<ValueId> {
        self.inputs()
            .find(|(_, n, _)| *n == name)
            .map(|(v, _, _)| v)
    }

    pub fn output(&self, name: &str) -> Option<ValueId> {
        self.outputs
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.value)
    }

    /// Adds an output, or replaces the one of the same name.
    pub fn set_output(&mut self, name: impl Into<String>, value: ValueId, role: OutputRole) {
        let name = name.into();
        self.outputs.retain(|o| o.name != name);
        self.outputs.push(Output { name, value, role });
    }

    /// Appends an output (the verifier rejects a name used twice).
    pub fn add_output(&mut self, name: impl Into<String>, value: ValueId, role: OutputRole) {
        self.outputs.push(Output::new(name, value, role));
    }

    /// The value of the loss output (the first one, in a graph of several phases' losses).
    pub fn loss(&self) -> Option<ValueId> {
        self.outputs
            .iter()
            .find(|o| o.role == OutputRole::Loss)
            .map(|o| o.value)
    }

    /// The number of nodes, counting scan bodies.
    pub fn size(&self) -> usize {
        self.nodes
            .iter()
            .map(|n| match &n.op {
                Op::Scan { body, .. } => 1 + body.size(),
                _ => 1,
            })
            .sum()
    }
}

impl Graph {
    /// The graph without the outputs `drop` selects, nor the nodes that only they needed (nodes
    /// that no output needed stay, so that the rest of the graph is exactly as it was).
    pub fn without_outputs(&self, drop: &dyn Fn(&Output) -> bool) -> Graph {
        let needed = |outputs: &mut dyn Iterator<Item = &Output>| {
            let mut live = vec![false; self.nodes.len()];
            for o in outputs {
                live[o.value.index()] = true;
            }
            for (i, node) in self.nodes.iter().enumerate().rev() {
                if live[i] {
                    for a in &node.args {
                        live[a.index()] = true;
                    }
                }
            }
            live
        };
        let before = needed(&mut self.outputs.iter());
        let after = needed(&mut self.outputs.iter().filter(|o| !drop(o)));
        let mut keep: Vec<bool> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| !before[i] || after[i] || matches!(n.op, Op::Input { .. }))
            .collect();
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if keep[i] {
                for a in &node.args {
                    keep[a.index()] = true;
                }
            }
        }
        let mut out = Graph::new(self.name.clone());
        let mut map: Vec<Option<ValueId>> = vec![None; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            let mut n = node.clone();
            n.args = node
                .args
                .iter()
                .map(|a| map[a.index()].expect("a kept node's operands are kept"))
                .collect();
            out.nodes.push(n);
            map[i] = Some(ValueId(out.nodes.len() as u32 - 1));
        }
        out.outputs = self
            .outputs
            .iter()
            .filter(|o| !drop(o))
            .map(|o| Output {
                value: map[o.value.index()].expect("kept outputs are kept"),
                ..o.clone()
            })
            .collect();
        out
    }

    /// Copies `src`'s computation into this graph: each `input` of `src` is replaced by the value
    /// `inputs` gives for its name. Returns `src`'s outputs as values of this graph.
    pub fn splice(
        &mut self,
        src: &Graph,
        inputs: &dyn Fn(&str) -> Option<ValueId>,
    ) -> Result<Vec<Output>, String> {
        let mut map: Vec<ValueId> = Vec::with_capacity(src.nodes.len());
        for node in &src.nodes {
            let v = match &node.op {
                Op::Input { name, .. } => {
                    inputs(name).ok_or_else(|| format!("nothing is bound to input `{name}`"))?
                }
                op => {
                    let args = node.args.iter().map(|a| map[a.index()]).collect();
                    self.try_add(op.clone(), args, node.loc.clone())?
                }
            };
            map.push(v);
        }
        Ok(src
            .outputs
            .iter()
            .map(|o| Output {
                value: map[o.value.index()],
                ..o.clone()
            })
            .collect())
    }
}

//! From a graph to a plan: where every value lives, which nodes fuse into one loop nest, and
//! which run as library calls.
//!
//! - `reshape`, `permute`, `broadcast` and `slice` copy nothing: they make strided views of a
//!   buffer, which the loops that read them index directly.
//! - Elementwise nodes (and constants) become expressions. An expression read by exactly one
//!   elementwise node, reduction, `pad` or `concat` is computed inside that consumer's loop;
//!   otherwise it is stored once by a loop nest of its own (a kernel). Constants and `iota` are
//!   recomputed wherever they are read.
//! - `sum` and `reduce_max` are kernels that fold their (fused) operand into a fresh buffer.
//! - `matmul` calls gemm on the operands' views. Everything else, and any op on a dtype the
//!   generated code does not handle, is a library call into the reference interpreter.

use crate::ir::{DType, Graph, Op, TensorType, Type, ValueId};

pub type BufId = usize;

#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// A graph input, read in place.
    Input(String),
    /// Scratch memory at a byte offset in the arena.
    Arena(usize),
    /// A graph output, allocated for each run and handed to the caller.
    Output,
}

#[derive(Debug, Clone)]
pub struct Buffer {
    pub dtype: DType,
    pub numel: usize,
    pub storage: Storage,
}

/// A strided window on a buffer, in elements.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub buf: BufId,
    pub offset: isize,
    pub shape: Vec<usize>,
    pub strides: Vec<isize>,
}

fn row_major(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0; shape.len()];
    let mut step = 1isize;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = step;
        step *= n as isize;
    }
    strides
}

impl View {
    fn whole(buf: BufId, shape: &[usize]) -> View {
        View {
            buf,
            offset: 0,
            shape: shape.to_vec(),
            strides: row_major(shape),
        }
    }

    /// Whether the elements are laid out row-major without gaps (axes of length 1 aside).
    pub fn is_row_major(&self) -> bool {
        self.shape
            .iter()
            .zip(&self.strides)
            .zip(row_major(&self.shape))
            .all(|((&n, &s), r)| n == 1 || s == r)
    }
}

/// How one element of an expression is computed.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprOp {
    /// The element of `Kernel::loads[i]` at the current position.
    Load(usize),
    Const(f64),
    /// The current position along an axis of the iteration space.
    Iota(usize),
    /// An elementwise op of the IR on earlier expression nodes.
    Op(Op),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExprNode {
    pub op: ExprOp,
    pub args: Vec<usize>,
    pub dtype: DType,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fold {
    Sum,
    Max,
}

/// One loop nest over `space`: evaluates `expr` (its last node is the result) at every position
/// and stores it through `out`, or folds it into `out` when `reduce` is set (`out` then has
/// stride 0 along the reduced axes and its buffer is filled with the fold's start first).
#[derive(Debug, Clone)]
pub struct Kernel {
    pub space: Vec<usize>,
    pub loads: Vec<View>,
    pub expr: Vec<ExprNode>,
    pub out: View,
    pub reduce: Option<Fold>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Kernel(Kernel),
    /// `[..S, M, K] @ [..S, K, N]` into a fresh row-major buffer.
    MatMul {
        a: View,
        b: View,
        out: View,
    },
    /// Node `node` of the graph, run by the reference interpreter on copies of `args` (row-major
    /// views); its result is copied into `outs`.
    Library {
        node: usize,
        args: Vec<View>,
        out: BufId,
    },
    /// Node `node`, a `scan`, with its body compiled on its own. The operands are row-major
    /// views (carries, sequences, constants); each carry lives in two scratch buffers, read
    /// from one and written to the other by turns, starting in the first (already filled).
    /// `outs` are the result's parts: the final carries, then the stacked per-step outputs.
    Scan {
        node: usize,
        args: Vec<View>,
        carries: Vec<[BufId; 2]>,
        outs: Vec<BufId>,
    },
}

impl Step {
    /// Every buffer the step reads or writes.
    pub fn buffers(&self) -> Vec<BufId> {
        match self {
            Step::Kernel(k) => k.loads.iter().map(|v| v.buf).chain([k.out.buf]).collect(),
            Step::MatMul { a, b, out } => vec![a.buf, b.buf, out.buf],
            Step::Library { args, out, .. } => args.iter().map(|v| v.buf).chain([*out]).collect(),
            Step::Scan {
                args,
                carries,
                outs,
                ..
            } => args
                .iter()
                .map(|v| v.buf)
                .chain(carries.iter().flatten().copied())
                .chain(outs.iter().copied())
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub buffers: Vec<Buffer>,
    pub steps: Vec<Step>,
    /// Each graph output and the buffer that holds it (row-major, exactly its size).
    pub outputs: Vec<(String, BufId)>,
    pub arena_bytes: usize,
}

/// An expression not yet stored anywhere.
#[derive(Debug, Clone)]
struct Fused {
    ty: TensorType,
    loads: Vec<View>,
    expr: Vec<ExprNode>,
}

impl Fused {
    fn leaf(ty: TensorType, op: ExprOp) -> Fused {
        let dtype = ty.dtype;
        Fused {
            ty,
            loads: Vec::new(),
            expr: vec![ExprNode {
                op,
                args: Vec::new(),
                dtype,
            }],
        }
    }

    /// A constant or an index, cheaper to recompute at every use than to store.
    fn is_free(&self) -> bool {
        self.loads.is_empty() && self.expr.len() == 1
    }

    fn constant(&self) -> Option<f64> {
        match (self.expr.as_slice(), self.loads.is_empty()) {
            (
                [
                    ExprNode {
                        op: ExprOp::Const(c),
                        ..
                    },
                ],
                true,
            ) => Some(*c),
            _ => None,
        }
    }

    /// Appends `other`'s nodes; returns the index of its result. A view both read is loaded
    /// once.
    fn absorb(&mut self, other: Fused) -> usize {
        let nodes = self.expr.len();
        let loads: Vec<usize> = other
            .loads
            .into_iter()
            .map(|view| match self.loads.iter().position(|v| *v == view) {
                Some(i) => i,
                None => {
                    self.loads.push(view);
                    self.loads.len() - 1
                }
            })
            .collect();
        for mut node in other.expr {
            match &mut node.op {
                ExprOp::Load(i) => *i = loads[*i],
                _ => node.args.iter_mut().for_each(|a| *a += nodes),
            }
            self.expr.push(node);
        }
        self.expr.len() - 1
    }

    fn load(view: View, dtype: DType) -> Fused {
        let ty = TensorType::new(dtype, view.shape.clone());
        let mut f = Fused::leaf(ty, ExprOp::Load(0));
        f.loads.push(view);
        f
    }
}

#[derive(Debug, Clone)]
enum Val {
    View(View),
    Fused(Fused),
    /// The parts of a `scan`'s result.
    Parts(Vec<BufId>),
    /// Consumed by its only reader.
    Taken,
}

struct Planner<'g> {
    graph: &'g Graph,
    uses: Vec<usize>,
    /// The single node reading each value, when exactly one does and no output is it.
    sole_reader: Vec<Option<usize>>,
    buffers: Vec<Buffer>,
    steps: Vec<Step>,
    vals: Vec<Val>,
}

/// Plans `graph`, which must verify.
pub fn plan(graph: &Graph) -> Result<Plan, String> {
    let n = graph.nodes.len();
    let mut uses = vec![0; n];
    let mut sole_reader = vec![None; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        for a in &node.args {
            uses[a.index()] += 1;
            sole_reader[a.index()] = Some(i);
        }
    }
    for o in &graph.outputs {
        uses[o.value.index()] += 1;
        sole_reader[o.value.index()] = None;
    }
    for (u, r) in uses.iter().zip(sole_reader.iter_mut()) {
        if *u != 1 {
            *r = None;
        }
    }
    let mut p = Planner {
        graph,
        uses,
        sole_reader,
        buffers: Vec::new(),
        steps: Vec::new(),
        vals: vec![Val::Taken; n],
    };
    for i in 0..n {
        let val = p.node(i)?;
        p.vals[i] = match val {
            Val::Fused(f) if !f.is_free() && !p.fuses_into_reader(i) => Val::View(p.store(f)),
            v => v,
        };
    }
    let outputs = graph
        .outputs
        .iter()
        .map(|o| Ok((o.name.clone(), p.output(o.value)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let arena_bytes = assign_memory(&mut p.buffers, &p.steps);
    Ok(Plan {
        buffers: p.buffers,
        steps: p.steps,
        outputs,
        arena_bytes,
    })
}

/// Whether the generated loops compute `op` on operands of `dtype` exactly as the interpreter
/// does; everything else goes to the library, which also reports the errors (an integer
/// division by zero, `neg` of a bool).
fn fusible(op: &Op, dtype: DType) -> bool {
    let num = matches!(dtype, DType::F32 | DType::F64 | DType::I32);
    match op {
        Op::Neg | Op::Add | Op::Sub | Op::Mul | Op::Max | Op::Min => num,
        Op::Exp | Op::Log | Op::Sqrt | Op::Sin | Op::Cos | Op::Div => dtype.is_float(),
        Op::Not | Op::And | Op::Or => dtype == DType::Bool,
        Op::Cast { .. } | Op::Cmp(_) | Op::Select => true,
        _ => false,
    }
}

fn reduction(op: &Op, dtype: DType) -> Option<(Fold, &[usize])> {
    let num = matches!(dtype, DType::F32 | DType::F64 | DType::I32);
    match op {
        Op::Sum { axes } if num => Some((Fold::Sum, axes)),
        Op::ReduceMax { axes } if num => Some((Fold::Max, axes)),
        _ => None,
    }
}

impl Planner<'_> {
    fn ty(&self, v: ValueId) -> &TensorType {
        self.graph.ty(v)
    }

    fn new_buffer(&mut self, ty: &TensorType, storage: Storage) -> BufId {
        self.buffers.push(Buffer {
            dtype: ty.dtype,
            numel: ty.numel(),
            storage,
        });
        self.buffers.len() - 1
    }

    /// Whether node `i`'s expression can be computed inside the loop of its only reader.
    fn fuses_into_reader(&self, i: usize) -> bool {
        let Some(r) = self.sole_reader[i] else {
            return false;
        };
        let reader = &self.graph.nodes[r];
        let operand_dtype = self.ty(reader.args[0]).dtype;
        match &reader.op {
            Op::Pad { .. } | Op::Concat { .. } => true,
            Op::Detach => self.fuses_into_reader(r),
            op => {
                fusible(op, operand_dtype)
                    || (reader.args.len() == 1 && reduction(op, operand_dtype).is_some())
            }
        }
    }

    /// Takes the value of operand `v`: moved out when this is its only reader.
    fn take(&mut self, v: ValueId) -> Val {
        let i = v.index();
        match &self.vals[i] {
            Val::Fused(f) if f.is_free() => self.vals[i].clone(),
            _ if self.uses[i] == 1 => std::mem::replace(&mut self.vals[i], Val::Taken),
            val => val.clone(),
        }
    }

    fn operand_fused(&mut self, v: ValueId) -> Result<Fused, String> {
        let dtype = self.ty(v).dtype;
        match self.take(v) {
            Val::View(view) => Ok(Fused::load(view, dtype)),
            Val::Fused(f) => Ok(f),
            _ => Err(format!("internal error: {v} is not a tensor here")),
        }
    }

    /// Operand `v` as a view, storing it first if it is an expression.
    fn operand_view(&mut self, v: ValueId) -> Result<View, String> {
        match self.take(v) {
            Val::View(view) => Ok(view),
            Val::Fused(f) => Ok(self.store(f)),
            _ => Err(format!("internal error: {v} is not a tensor here")),
        }
    }

    /// Operand `v` as a row-major view, copied by a kernel when it is strided otherwise (a
    /// compiled copy is much faster than reading the view element by element at run time).
    fn row_major_operand(&mut self, v: ValueId) -> Result<View, String> {
        let dtype = self.ty(v).dtype;
        let view = self.operand_view(v)?;
        Ok(if view.is_row_major() {
            view
        } else {
            self.store(Fused::load(view, dtype))
        })
    }

    /// Stores an expression into a fresh row-major buffer.
    fn store(&mut self, f: Fused) -> View {
        let buf = self.new_buffer(&f.ty, Storage::Arena(0));
        let out = View::whole(buf, &f.ty.shape);
        self.steps.push(Step::Kernel(Kernel {
            space: f.ty.shape.clone(),
            loads: f.loads,
            expr: f.expr,
            out: out.clone(),
            reduce: None,
        }));
        out
    }

    /// Writes an expression through `out` (a view of an existing buffer).
    fn store_into(&mut self, f: Fused, out: View) {
        self.steps.push(Step::Kernel(Kernel {
            space: f.ty.shape.clone(),
            loads: f.loads,
            expr: f.expr,
            out,
            reduce: None,
        }));
    }

    /// Node `i`'s operands as row-major views.
    fn row_major_operands(&mut self, i: usize) -> Result<Vec<View>, String> {
        let args = self.graph.nodes[i].args.clone();
        args.into_iter()
            .map(|a| self.row_major_operand(a))
            .collect()
    }

    fn library(&mut self, i: usize, ty: &TensorType) -> Result<Val, String> {
        let args = self.row_major_operands(i)?;
        let out = self.new_buffer(ty, Storage::Arena(0));
        self.steps.push(Step::Library { node: i, args, out });
        Ok(Val::View(View::whole(out, &ty.shape)))
    }

    fn node(&mut self, i: usize) -> Result<Val, String> {
        let node = &self.graph.nodes[i];
        let args = node.args.clone();
        let ty = match &node.ty {
            Type::Tensor(t) => Some(t.clone()),
            Type::Tuple(_) => None,
        };
        let first_dtype = args
            .first()
            .and_then(|a| self.graph.node(*a).ty.tensor())
            .map(|t| t.dtype);
        Ok(match (&node.op, ty) {
            (Op::Input { name, ty, .. }, _) => {
                let buf = self.new_buffer(ty, Storage::Input(name.clone()));
                Val::View(View::whole(buf, &ty.shape))
            }
            (Op::Const { value, ty }, _) => {
                Val::Fused(Fused::leaf(ty.clone(), ExprOp::Const(*value)))
            }
            (Op::Iota { axis, ty }, _) => Val::Fused(Fused::leaf(ty.clone(), ExprOp::Iota(*axis))),
            (Op::Detach, _) => self.take(args[0]),
            (Op::Get { index }, Some(ty)) => match &self.vals[args[0].index()] {
                Val::Parts(parts) => Val::View(View::whole(parts[*index], &ty.shape)),
                _ => return Err(format!("internal error: %{i} takes a part of a non-tuple")),
            },
            (op, Some(ty)) if fusible(op, first_dtype.unwrap_or(ty.dtype)) && !args.is_empty() => {
                let mut f = Fused {
                    ty: ty.clone(),
                    loads: Vec::new(),
                    expr: Vec::new(),
                };
                let mut operands = Vec::new();
                for a in args {
                    let operand = self.operand_fused(a)?;
                    operands.push(f.absorb(operand));
                }
                f.expr.push(ExprNode {
                    op: ExprOp::Op(op.clone()),
                    args: operands,
                    dtype: ty.dtype,
                });
                Val::Fused(f)
            }
            (op, Some(ty)) if reduction(op, first_dtype.unwrap_or(ty.dtype)).is_some() => {
                let (fold, axes) = reduction(op, ty.dtype).expect("checked above");
                if axes.is_empty() {
                    return Ok(self.take(args[0]));
                }
                let axes = axes.to_vec();
                let f = self.operand_fused(args[0])?;
                let buf = self.new_buffer(&ty, Storage::Arena(0));
                let kept = row_major(&ty.shape);
                let mut strides = Vec::new();
                let mut next = kept.iter();
                for axis in 0..f.ty.shape.len() {
                    if axes.contains(&axis) {
                        strides.push(0);
                    } else {
                        strides.push(*next.next().ok_or("internal error: reduction rank")?);
                    }
                }
                let out = View {
                    buf,
                    offset: 0,
                    shape: f.ty.shape.clone(),
                    strides,
                };
                self.steps.push(Step::Kernel(Kernel {
                    space: f.ty.shape.clone(),
                    loads: f.loads,
                    expr: f.expr,
                    out,
                    reduce: Some(fold),
                }));
                Val::View(View::whole(buf, &ty.shape))
            }
            (
                Op::Reshape { .. } | Op::Permute { .. } | Op::Broadcast { .. } | Op::Slice { .. },
                Some(ty),
            ) => self.view_op(i, ty)?,
            (Op::Pad { axis, lo, .. }, Some(ty)) => {
                let (axis, lo) = (*axis, *lo);
                let buf = self.new_buffer(&ty, Storage::Arena(0));
                let whole = View::whole(buf, &ty.shape);
                let zero = Fused::leaf(ty.clone(), ExprOp::Const(0.0));
                self.store_into(zero, whole.clone());
                let inner = self.operand_fused(args[0])?;
                let n = inner.ty.shape[axis];
                let slot = slice(&whole, axis, lo, lo + n);
                self.store_into(inner, slot);
                Val::View(whole)
            }
            (Op::Concat { axis }, Some(ty)) => {
                let axis = *axis;
                let buf = self.new_buffer(&ty, Storage::Arena(0));
                let whole = View::whole(buf, &ty.shape);
                let mut start = 0;
                for a in args {
                    let part = self.operand_fused(a)?;
                    let n = part.ty.shape[axis];
                    self.store_into(part, slice(&whole, axis, start, start + n));
                    start += n;
                }
                Val::View(whole)
            }
            (Op::MatMul, Some(ty)) if ty.dtype.is_float() => {
                let a = self.operand_view(args[0])?;
                let b = self.operand_view(args[1])?;
                let (a, b) = (
                    self.gemm_operand(a, ty.dtype),
                    self.gemm_operand(b, ty.dtype),
                );
                let buf = self.new_buffer(&ty, Storage::Arena(0));
                let out = View::whole(buf, &ty.shape);
                self.steps.push(Step::MatMul {
                    a,
                    b,
                    out: out.clone(),
                });
                Val::View(out)
            }
            (Op::Scan { carries, .. }, None) => self.scan(i, *carries)?,
            (_, Some(ty)) => self.library(i, &ty)?,
            (op, None) => return Err(format!("internal error: `{}` makes a tuple", op.name())),
        })
    }

    fn scan(&mut self, i: usize, carries: usize) -> Result<Val, String> {
        let node = &self.graph.nodes[i];
        let Type::Tuple(parts) = node.ty.clone() else {
            return Err(format!("internal error: scan %{i} is not a tuple"));
        };
        let args = self.row_major_operands(i)?;
        let mut carry_bufs = Vec::new();
        for (c, ty) in parts[..carries].iter().enumerate() {
            let first = self.new_buffer(ty, Storage::Arena(0));
            let second = self.new_buffer(ty, Storage::Arena(0));
            let initial = Fused::load(args[c].clone(), ty.dtype);
            self.store_into(initial, View::whole(first, &ty.shape));
            carry_bufs.push([first, second]);
        }
        let outs: Vec<BufId> = parts
            .iter()
            .map(|t| self.new_buffer(t, Storage::Arena(0)))
            .collect();
        self.steps.push(Step::Scan {
            node: i,
            args,
            carries: carry_bufs,
            outs: outs.clone(),
        });
        Ok(Val::Parts(outs))
    }

    /// gemm reads any strides but zero ones (a broadcast matrix): those are copied first.
    fn gemm_operand(&mut self, v: View, dtype: DType) -> View {
        let r = v.shape.len();
        if v.strides[r - 2..]
            .iter()
            .zip(&v.shape[r - 2..])
            .all(|(&s, &n)| s != 0 || n == 1)
        {
            v
        } else {
            self.store(Fused::load(v, dtype))
        }
    }

    fn view_op(&mut self, i: usize, ty: TensorType) -> Result<Val, String> {
        let node = &self.graph.nodes[i];
        let arg = node.args[0];
        let dtype = ty.dtype;
        let val = self.take(arg);
        if let Val::Fused(f) = &val
            && let Some(c) = f.constant()
        {
            return Ok(Val::Fused(Fused::leaf(ty, ExprOp::Const(c))));
        }
        let view = match val {
            Val::View(v) => v,
            Val::Fused(f) => self.store(f),
            _ => return Err(format!("internal error: %{i} views a non-tensor")),
        };
        Ok(Val::View(match &node.op {
            Op::Reshape { shape } => {
                let view = if view.is_row_major() {
                    view
                } else {
                    self.store(Fused::load(view, dtype))
                };
                View {
                    buf: view.buf,
                    offset: view.offset,
                    shape: shape.clone(),
                    strides: row_major(shape),
                }
            }
            Op::Permute { perm } => View {
                buf: view.buf,
                offset: view.offset,
                shape: perm.iter().map(|&p| view.shape[p]).collect(),
                strides: perm.iter().map(|&p| view.strides[p]).collect(),
            },
            Op::Broadcast { shape } => {
                let lead = shape.len() - view.shape.len();
                let strides = (0..shape.len())
                    .map(|d| match d.checked_sub(lead) {
                        Some(s) if view.shape[s] == shape[d] => view.strides[s],
                        _ => 0,
                    })
                    .collect();
                View {
                    buf: view.buf,
                    offset: view.offset,
                    shape: shape.clone(),
                    strides,
                }
            }
            Op::Slice { axis, start, end } => slice(&view, *axis, *start, *end),
            op => return Err(format!("internal error: `{}` is not a view", op.name())),
        }))
    }

    /// The buffer holding output `v`: its own buffer when nothing else claims it, else a copy.
    fn output(&mut self, v: ValueId) -> Result<BufId, String> {
        let ty = self.ty(v).clone();
        let own = match &self.vals[v.index()] {
            Val::View(view) => {
                let b = &self.buffers[view.buf];
                let whole = *view == View::whole(view.buf, &ty.shape) && b.numel == ty.numel();
                (whole && matches!(b.storage, Storage::Arena(_))).then_some(view.buf)
            }
            _ => None,
        };
        if let Some(buf) = own {
            self.buffers[buf].storage = Storage::Output;
            return Ok(buf);
        }
        let f = match self.vals[v.index()].clone() {
            Val::View(view) => Fused::load(view, ty.dtype),
            Val::Fused(f) => f,
            _ => return Err(format!("internal error: output {v} is not a tensor")),
        };
        let buf = self.new_buffer(&ty, Storage::Output);
        self.store_into(f, View::whole(buf, &ty.shape));
        Ok(buf)
    }
}

fn slice(v: &View, axis: usize, start: usize, end: usize) -> View {
    let mut shape = v.shape.clone();
    shape[axis] = end - start;
    View {
        buf: v.buf,
        offset: v.offset + start as isize * v.strides[axis],
        shape,
        strides: v.strides.clone(),
    }
}

pub fn dtype_size(d: DType) -> usize {
    match d {
        DType::F32 | DType::I32 => 4,
        DType::F64 => 8,
        DType::Bool => 1,
    }
}

/// Places every scratch buffer in the arena so that buffers alive during the same step never
/// overlap; returns the arena's size in bytes.
fn assign_memory(buffers: &mut [Buffer], steps: &[Step]) -> usize {
    const ALIGN: usize = 64;
    let mut first = vec![usize::MAX; buffers.len()];
    let mut last = vec![0; buffers.len()];
    for (s, step) in steps.iter().enumerate() {
        for b in step.buffers() {
            first[b] = first[b].min(s);
            last[b] = last[b].max(s);
        }
    }
    let mut order: Vec<BufId> = (0..buffers.len())
        .filter(|&b| matches!(buffers[b].storage, Storage::Arena(_)) && first[b] != usize::MAX)
        .collect();
    order.sort_by_key(|&b| first[b]);
    // Blocks in use: (offset, size, last step).
    let mut live: Vec<(usize, usize, usize)> = Vec::new();
    let mut top = 0;
    for b in order {
        live.retain(|&(_, _, end)| end >= first[b]);
        live.sort_unstable();
        let size = (buffers[b].numel * dtype_size(buffers[b].dtype)).div_ceil(ALIGN) * ALIGN;
        let mut offset = 0;
        for &(o, s, _) in &live {
            if o >= offset + size {
                break;
            }
            offset = offset.max(o + s);
        }
        live.push((offset, size, last[b]));
        top = top.max(offset + size);
        buffers[b].storage = Storage::Arena(offset);
    }
    top
}

//! From a graph to a plan: where every value lives, which nodes fuse into one loop nest, and
//! which run as library calls.
//!
//! - `reshape`, `permute`, `broadcast` and `slice` copy nothing: they make strided views of a
//!   buffer, which the loops that read them index directly.
//! - Elementwise nodes (and constants) become expressions over an iteration space. An
//!   expression read by exactly one elementwise node, reduction, `pad` or `concat` is computed
//!   inside that consumer's loop; so is a cheap one (a comparison, a cast, one arithmetic op)
//!   read by several, which each reader recomputes. A `reshape` or `slice` of an expression, and
//!   a `broadcast` of a cheap one, stay expressions: the iteration space is *refined* (an axis
//!   split into several) until every load is a strided view of it. Anything else is stored once
//!   by a loop nest of its own (a kernel).
//! - `sum` and `reduce_max` are kernels that fold their (fused) operand into a fresh buffer.
//! - After planning, a kernel whose results the next kernel over the same space reads is merged
//!   into it: one loop nest then stores several results (an optimizer's new state and
//!   parameter; an activation's gradient and the bias gradient summed from it).
//! - `matmul` calls gemm on the operands' views. Everything else, and any op on a dtype the
//!   generated code does not handle, is a library call into the shared kernels
//!   (`tensor::kernels`), which the interpreter runs.
//! - An output that replaces an input of the same name (a training step's new parameters and
//!   optimizer state) is written over that input when the kernel computing it is the last to
//!   read it, else copied over it at the end; either way only after a guard has checked that
//!   the loss is finite, so a step that fails leaves its inputs as they were.

use crate::ir::composite::{self, Operand};
use crate::ir::primitive::Cost;
use crate::ir::{Class, DType, Graph, Op, OutputRole, Role, TensorType, Type, ValueId};
use std::ops::Range;

pub type BufId = usize;

#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// A graph input, read in place (and written in place when an output replaces it).
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

pub fn row_major(shape: &[usize]) -> Vec<isize> {
    let mut strides = vec![0; shape.len()];
    let mut step = 1isize;
    for (s, &n) in strides.iter_mut().zip(shape).rev() {
        *s = step;
        step *= n as isize;
    }
    strides
}

impl View {
    pub fn whole(buf: BufId, shape: &[usize]) -> View {
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

    /// The same elements seen through a finer space: `ranges[a]` are the axes of `space` that
    /// axis `a` of this view was split into.
    fn split(&self, ranges: &[Range<usize>], space: &[usize]) -> View {
        let mut strides = vec![0; space.len()];
        for (axis, range) in ranges.iter().enumerate() {
            let mut step = self.strides[axis];
            for d in range.clone().rev() {
                strides[d] = step;
                step *= space[d] as isize;
            }
        }
        View {
            buf: self.buf,
            offset: self.offset,
            shape: space.to_vec(),
            strides,
        }
    }
}

/// How one element of an expression is computed.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprOp {
    /// The element of `Kernel::loads[i]` at the current position.
    Load(usize),
    Const(f64),
    /// A position: Σ index·weight over axes of the iteration space (an `iota` along an axis
    /// that the space splits into several).
    Index(Vec<(usize, i64)>),
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

/// A value a kernel writes: expression node `value` at every position, stored through `view`,
/// or folded into it when `fold` is set (`view` then has stride 0 along the reduced axes, and
/// its buffer is filled with the fold's start first). A fold follows the interpreter's order
/// (`tensor::kernels::reduce`): each run of the trailing reduced axes folds into eight partial
/// results, combined as a fixed tree; the runs fold in order.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelOut {
    pub value: usize,
    pub view: View,
    pub fold: Option<Fold>,
}

/// One loop nest over `space`: evaluates `expr` at every position and writes `outs`.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub space: Vec<usize>,
    pub loads: Vec<View>,
    pub expr: Vec<ExprNode>,
    pub outs: Vec<KernelOut>,
    /// The graph nodes the kernel computes (for listings and profiles).
    pub nodes: Vec<usize>,
}

impl Kernel {
    /// Roughly how many simple operations the loop nest performs, for deciding whether it is
    /// worth splitting between threads: per position one per load, store and op, each op
    /// weighted by its cost in the primitive table (a division or square root 4, a math call 20).
    pub fn work(&self) -> usize {
        let per_position: usize = self.loads.len()
            + self.outs.len()
            + self
                .expr
                .iter()
                .map(|n| match &n.op {
                    ExprOp::Op(op) => op.primitive().cost.weight(),
                    ExprOp::Index(_) => 1,
                    ExprOp::Load(_) | ExprOp::Const(_) => 0,
                })
                .sum::<usize>();
        self.space.iter().product::<usize>() * per_position
    }

    /// The same loop nest over a finer space (`space` must refine the kernel's).
    fn refined(&self, space: &[usize]) -> Option<Kernel> {
        if space == self.space.as_slice() {
            return Some(self.clone());
        }
        let ranges = refinement(&self.space, space)?;
        let mut k = self.clone();
        k.space = space.to_vec();
        for v in &mut k.loads {
            *v = v.split(&ranges, space);
        }
        for o in &mut k.outs {
            o.view = o.view.split(&ranges, space);
        }
        for n in &mut k.expr {
            if let ExprOp::Index(terms) = &mut n.op {
                *terms = split_terms(terms, &ranges, space);
            }
        }
        Some(k)
    }

    fn reads(&self) -> impl Iterator<Item = BufId> + '_ {
        self.loads.iter().map(|v| v.buf)
    }

    fn writes(&self) -> impl Iterator<Item = BufId> + '_ {
        self.outs.iter().map(|o| o.view.buf)
    }
}

#[derive(Debug, Clone)]
pub enum Step {
    Kernel(Kernel),
    /// `[..S, M, K] @ [..S, K, N]` into a fresh row-major buffer; when `sum_batch` (a product
    /// `[S, M, K] @ [S, K, N]` whose only reader is a `sum` over its batch axis), the products
    /// summed into `out` (`[M, N]`) instead, starting from zero in batch order, as that `sum`
    /// folds them, without storing them all first (a convolution's weight gradient).
    MatMul {
        node: usize,
        a: View,
        b: View,
        out: View,
        sum_batch: bool,
    },
    /// Node `node` of the graph, run by the shared kernels (`tensor::kernels`) on copies of `args` (row-major
    /// views); its result is copied into `out`.
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
    /// Stops the run, before any step overwrites an input, when the scalar `loss` is not
    /// finite.
    Guard {
        loss: BufId,
    },
}

impl Step {
    /// The buffers the step reads.
    pub fn reads(&self) -> Vec<BufId> {
        match self {
            Step::Kernel(k) => k.reads().collect(),
            Step::MatMul { a, b, .. } => vec![a.buf, b.buf],
            Step::Library { args, .. } | Step::Scan { args, .. } => {
                args.iter().map(|v| v.buf).collect()
            }
            Step::Guard { loss } => vec![*loss],
        }
    }

    /// The buffers the step writes.
    pub fn writes(&self) -> Vec<BufId> {
        match self {
            Step::Kernel(k) => k.writes().collect(),
            Step::MatMul { out, .. } => vec![out.buf],
            Step::Library { out, .. } => vec![*out],
            Step::Scan { carries, outs, .. } => {
                carries.iter().flatten().chain(outs).copied().collect()
            }
            Step::Guard { .. } => Vec::new(),
        }
    }
}

/// A graph output: the buffer that holds it (row-major, exactly its size). When it replaces
/// the input of the same name, the buffer is that input's, and the caller's tensor is updated.
#[derive(Debug, Clone)]
pub struct PlanOutput {
    pub name: String,
    pub buf: BufId,
    pub replaces_input: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub buffers: Vec<Buffer>,
    pub steps: Vec<Step>,
    pub outputs: Vec<PlanOutput>,
    pub arena_bytes: usize,
}

/// For each axis of `coarse`, the axes of `fine` it splits into; None when `fine` does not
/// refine `coarse` (both without axes of length 1).
fn refinement(coarse: &[usize], fine: &[usize]) -> Option<Vec<Range<usize>>> {
    let mut ranges = Vec::with_capacity(coarse.len());
    let mut d = 0;
    for &n in coarse {
        let start = d;
        if n == 0 {
            // An empty axis stays one empty axis.
            if fine.get(d) != Some(&0) {
                return None;
            }
            ranges.push(d..d + 1);
            d += 1;
            continue;
        }
        let mut product = 1;
        while product < n {
            product *= *fine.get(d)?;
            d += 1;
        }
        if product != n {
            return None;
        }
        ranges.push(start..d);
    }
    (d == fine.len()).then_some(ranges)
}

/// The coarsest shape that refines both `a` and `b` (equal products, no axes of length 1):
/// every boundary between axes of either is one of it; None when their boundaries interleave
/// in a way no shape can split both (26 as 13·2 and as 2·13).
fn common_refinement(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a == b {
        return Some(a.to_vec());
    }
    if a.contains(&0) || b.contains(&0) {
        return None;
    }
    let suffixes = |s: &[usize]| {
        let mut v = vec![1usize];
        let mut p = 1usize;
        for &n in s.iter().rev() {
            p = p.checked_mul(n)?;
            v.push(p);
        }
        Some(v)
    };
    let mut points = suffixes(a)?;
    points.extend(suffixes(b)?);
    points.sort_unstable();
    points.dedup();
    if points.windows(2).any(|w| w[1] % w[0] != 0) {
        return None;
    }
    Some(points.windows(2).rev().map(|w| w[1] / w[0]).collect())
}

fn split_terms(
    terms: &[(usize, i64)],
    ranges: &[Range<usize>],
    space: &[usize],
) -> Vec<(usize, i64)> {
    let mut out = Vec::new();
    for &(axis, weight) in terms {
        let mut w = weight;
        for d in ranges[axis].clone().rev() {
            out.push((d, w));
            w *= space[d] as i64;
        }
    }
    out
}

/// The iteration space of a shape: its axes of length more than 1.
fn squeeze(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&n| n != 1).collect()
}

/// An expression not yet stored anywhere. Its logical type is `ty`; it is computed over
/// `space`, which refines `ty.shape` with axes of length 1 dropped: logical axis `a` is the
/// axes `groups[a]` of the space (none for an axis of length 1). Loads are views of shape
/// `space`.
#[derive(Debug, Clone)]
struct Fused {
    ty: TensorType,
    space: Vec<usize>,
    groups: Vec<Range<usize>>,
    loads: Vec<View>,
    expr: Vec<ExprNode>,
    nodes: Vec<usize>,
}

/// For a shape and a refinement of its non-unit axes, each logical axis's group of space axes.
fn groups_of(shape: &[usize], space: &[usize]) -> Option<Vec<Range<usize>>> {
    let ranges = refinement(&squeeze(shape), space)?;
    let mut it = ranges.into_iter();
    Some(
        shape
            .iter()
            .map(|&n| {
                if n == 1 {
                    0..0
                } else {
                    it.next().expect("one range per non-unit axis")
                }
            })
            .collect(),
    )
}

impl Fused {
    fn leaf(ty: TensorType, op: ExprOp) -> Fused {
        let space = squeeze(&ty.shape);
        let groups = groups_of(&ty.shape, &space).expect("a shape refines itself");
        let dtype = ty.dtype;
        Fused {
            ty,
            space,
            groups,
            loads: Vec::new(),
            expr: vec![ExprNode {
                op,
                args: Vec::new(),
                dtype,
            }],
            nodes: Vec::new(),
        }
    }

    /// `iota` along logical `axis` (zero everywhere when the axis has length 1).
    fn iota(ty: TensorType, axis: usize) -> Fused {
        let mut f = Fused::leaf(ty, ExprOp::Const(0.0));
        let group = f.groups[axis].clone();
        if !group.is_empty() {
            f.expr[0].op = ExprOp::Index(split_terms(&[(0, 1)], &[group], &f.space));
        }
        f
    }

    fn load(view: View, dtype: DType) -> Fused {
        let ty = TensorType::new(dtype, view.shape.clone());
        let mut f = Fused::leaf(ty, ExprOp::Load(0));
        f.loads.push(f.view_in_space(&view));
        f
    }

    /// A view of this expression's logical shape, seen through its space.
    fn view_in_space(&self, view: &View) -> View {
        let mut strides = vec![0; self.space.len()];
        for (axis, range) in self.groups.iter().enumerate() {
            let mut step = view.strides[axis];
            for d in range.clone().rev() {
                strides[d] = step;
                step *= self.space[d] as isize;
            }
        }
        View {
            buf: view.buf,
            offset: view.offset,
            shape: self.space.clone(),
            strides,
        }
    }

    /// Appends the steps of a composite op on expression node `x`; the last step is its value.
    fn push_recipe(&mut self, steps: &[composite::Step], x: usize) -> Result<(), String> {
        let dtype = self.expr[x].dtype;
        let dtypes = composite::dtypes(steps, dtype)?;
        let mut constants = Vec::new();
        for step in steps {
            for a in &step.args {
                if let Operand::Const(c) = a
                    && !constants.iter().any(|(k, _)| k == c)
                {
                    self.expr.push(ExprNode {
                        op: ExprOp::Const(*c),
                        args: Vec::new(),
                        dtype,
                    });
                    constants.push((*c, self.expr.len() - 1));
                }
            }
        }
        let base = self.expr.len();
        for (step, &step_dtype) in steps.iter().zip(&dtypes) {
            let args = step
                .args
                .iter()
                .map(|a| match a {
                    Operand::X => x,
                    Operand::Step(k) => base + k,
                    Operand::Const(c) => {
                        constants
                            .iter()
                            .find(|(k, _)| k == c)
                            .expect("pushed above")
                            .1
                    }
                })
                .collect();
            self.expr.push(ExprNode {
                op: ExprOp::Op(step.op.clone()),
                args,
                dtype: step_dtype,
            });
        }
        Ok(())
    }

    /// A constant or an index, cheaper to recompute at every use than to store.
    fn is_free(&self) -> bool {
        self.loads.is_empty() && self.expr.len() == 1
    }

    /// Cheap enough to recompute in every reader: a few loads and cheap ops, nothing that
    /// calls a function or divides.
    fn is_cheap(&self) -> bool {
        let ops = self
            .expr
            .iter()
            .filter(|n| matches!(n.op, ExprOp::Op(_)))
            .count();
        self.loads.len() <= 3
            && ops <= 4
            && self.expr.iter().all(|n| match &n.op {
                ExprOp::Op(op) => op.primitive().cost == Cost::Cheap,
                ExprOp::Load(_) | ExprOp::Const(_) | ExprOp::Index(_) => true,
            })
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

    /// The same expression over `space`, which refines its own.
    fn refine_to(&mut self, space: &[usize]) {
        if space == self.space.as_slice() {
            return;
        }
        let ranges = refinement(&self.space, space).expect("a refinement of the space");
        for v in &mut self.loads {
            *v = v.split(&ranges, space);
        }
        for n in &mut self.expr {
            if let ExprOp::Index(terms) = &mut n.op {
                *terms = split_terms(terms, &ranges, space);
            }
        }
        self.groups = self
            .groups
            .iter()
            .map(|g| {
                if g.is_empty() {
                    0..0
                } else {
                    ranges[g.start].start..ranges[g.end - 1].end
                }
            })
            .collect();
        self.space = space.to_vec();
    }

    /// Appends `other`'s nodes; returns the index of its result. A view both read is loaded
    /// once. Both must be over the same space.
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
        for n in other.nodes {
            if !self.nodes.contains(&n) {
                self.nodes.push(n);
            }
        }
        self.expr.len() - 1
    }

    /// Reshapes the expression to `shape` by refining its space, when some shape refines both;
    /// false (the expression unchanged in meaning) when none does.
    fn reshape(&mut self, shape: &[usize]) -> bool {
        let target = squeeze(shape);
        let Some(space) = common_refinement(&self.space, &target) else {
            return false;
        };
        self.refine_to(&space);
        let Some(groups) = groups_of(shape, &space) else {
            return false;
        };
        self.groups = groups;
        self.ty = TensorType::new(self.ty.dtype, shape.to_vec());
        true
    }

    /// Broadcasts the expression to `shape`: new and stretched axes are new axes of the space,
    /// along which every load has stride 0.
    fn broadcast(self, shape: &[usize]) -> Fused {
        let lead = shape.len() - self.ty.shape.len();
        let mut space = Vec::new();
        let mut groups = Vec::new();
        // For each old space axis, its new position.
        let mut moved = vec![0; self.space.len()];
        for (d, &n) in shape.iter().enumerate() {
            let start = space.len();
            match d.checked_sub(lead) {
                Some(s) if self.ty.shape[s] == n => {
                    for old in self.groups[s].clone() {
                        moved[old] = space.len();
                        space.push(self.space[old]);
                    }
                }
                _ if n != 1 => space.push(n),
                _ => {}
            }
            groups.push(start..space.len());
        }
        let restride = |v: &View| {
            let mut strides = vec![0; space.len()];
            for (old, &new) in moved.iter().enumerate() {
                strides[new] = v.strides[old];
            }
            View {
                buf: v.buf,
                offset: v.offset,
                shape: space.clone(),
                strides,
            }
        };
        let loads = self.loads.iter().map(restride).collect();
        let expr = self
            .expr
            .into_iter()
            .map(|mut n| {
                if let ExprOp::Index(terms) = &mut n.op {
                    for t in terms.iter_mut() {
                        t.0 = moved[t.0];
                    }
                }
                n
            })
            .collect();
        Fused {
            ty: TensorType::new(self.ty.dtype, shape.to_vec()),
            space,
            groups,
            loads,
            expr,
            nodes: self.nodes,
        }
    }

    /// Slices the expression along a logical axis that is one axis of its space; false (the
    /// expression unchanged) when the axis is split, or the slice would leave an axis of
    /// length 1, or an index reads the axis.
    fn slice(&mut self, axis: usize, start: usize, end: usize) -> bool {
        let group = self.groups[axis].clone();
        let uses_index = self.expr.iter().any(|n| matches!(n.op, ExprOp::Index(_)));
        if group.len() != 1 || uses_index || end - start <= 1 {
            return false;
        }
        let d = group.start;
        for v in &mut self.loads {
            v.offset += start as isize * v.strides[d];
            v.shape[d] = end - start;
        }
        self.space[d] = end - start;
        self.ty.shape[axis] = end - start;
        true
    }
}

/// Brings several expressions of one logical shape onto one space, refining each axis to the
/// common refinement of their splits of it; false when there is none.
fn unify(parts: &mut [Fused]) -> bool {
    let Some(first) = parts.first() else {
        return true;
    };
    let mut space = Vec::new();
    for axis in 0..first.ty.shape.len() {
        let mut split = first.space[first.groups[axis].clone()].to_vec();
        for p in &parts[1..] {
            match common_refinement(&split, &p.space[p.groups[axis].clone()]) {
                Some(c) => split = c,
                None => return false,
            }
        }
        space.extend(split);
    }
    parts.iter_mut().for_each(|p| p.refine_to(&space));
    true
}

#[derive(Debug, Clone)]
enum Val {
    View(View),
    Fused(Fused),
    /// The parts of a `scan`'s result.
    Parts(Vec<BufId>),
    /// A pad read only by another pad, which stores `inner` into its own buffer: `pads` are
    /// the pads (axis, zeros before, the extent padded) from the innermost out. Pooling's
    /// gradient pads its columns and then its rows: one buffer, zeroed once, and no copy.
    Padding {
        inner: Fused,
        pads: Vec<(usize, usize, usize)>,
    },
    /// Consumed by its only reader.
    Taken,
}

struct Planner<'g> {
    graph: &'g Graph,
    uses: Vec<usize>,
    /// The nodes reading each value (an output counts as a reader that fuses nothing).
    readers: Vec<Vec<usize>>,
    is_output: Vec<bool>,
    buffers: Vec<Buffer>,
    steps: Vec<Step>,
    vals: Vec<Val>,
    /// Buffers that already hold an output.
    claimed: Vec<BufId>,
    /// Per node: a product already summed over its batch for its only reader, a `sum`.
    summed_over_batch: Vec<bool>,
}

/// Plans `graph`, which must verify.
pub fn plan(graph: &Graph) -> Result<Plan, String> {
    let n = graph.nodes.len();
    let mut uses = vec![0; n];
    let mut readers = vec![Vec::new(); n];
    let mut is_output = vec![false; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        for a in &node.args {
            uses[a.index()] += 1;
            readers[a.index()].push(i);
        }
    }
    for o in &graph.outputs {
        uses[o.value.index()] += 1;
        is_output[o.value.index()] = true;
    }
    let mut p = Planner {
        graph,
        uses,
        readers,
        is_output,
        buffers: Vec::new(),
        steps: Vec::new(),
        vals: vec![Val::Taken; n],
        claimed: Vec::new(),
        summed_over_batch: vec![false; n],
    };
    for i in 0..n {
        let val = p.node(i)?;
        p.vals[i] = match val {
            Val::Fused(f) if !f.is_free() && !p.fuses_into_readers(i, &f) => Val::View(p.store(f)),
            v => v,
        };
    }
    let replaced = p.replaced_inputs();
    let mut outputs = Vec::new();
    for o in &graph.outputs {
        let buf = p.output(o.value, replaced.contains(&o.name))?;
        outputs.push(PlanOutput {
            name: o.name.clone(),
            buf,
            replaces_input: false,
        });
    }
    merge_kernels(&mut p.steps);
    p.write_over_inputs(&mut outputs, &replaced)?;
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
    let p = op.primitive();
    match op {
        // `detach` is planned as its operand.
        Op::Detach => false,
        // Integer division goes to the library, which reports a zero divisor.
        Op::Div => dtype.is_float(),
        _ => p.class == Class::Elementwise && p.operands.admit(dtype),
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

    /// Whether reader `r` computes an operand expression inside its own loop.
    fn reader_fuses(&self, r: usize, operand: &Fused) -> bool {
        let reader = &self.graph.nodes[r];
        let operand_dtype = self.ty(reader.args[0]).dtype;
        match &reader.op {
            Op::Pad { .. } | Op::Concat { .. } => true,
            Op::Detach | Op::AllSum | Op::Reshape { .. } | Op::Slice { .. } => {
                self.fuses_into_readers(r, operand)
            }
            Op::Broadcast { .. } => operand.is_cheap() && self.fuses_into_readers(r, operand),
            op => {
                fusible(op, operand_dtype)
                    || (reader.args.len() == 1 && reduction(op, operand_dtype).is_some())
            }
        }
    }

    /// Whether node `i`'s expression needs no buffer: its only reader computes it, or every
    /// reader does and it is cheap to recompute. (Conservative for view readers: a reshape or
    /// slice that turns out not to fit stores the expression then.)
    fn fuses_into_readers(&self, i: usize, f: &Fused) -> bool {
        if self.is_output[i] {
            return false;
        }
        match self.readers[i].as_slice() {
            [] => false,
            [r] => self.reader_fuses(*r, f),
            rs => f.is_cheap() && rs.iter().all(|&r| self.reader_fuses(r, f)),
        }
    }

    /// The type of the `sum` that is product `i`'s only reader, when it sums over the one batch
    /// axis of `[S, M, K] @ [S, K, N]` and folds the products one after another from zero
    /// (`M·N` > 1: a kept axis longer than 1, so no partial sums; see `tensor::kernels`).
    fn batch_sum_of(&self, i: usize) -> Option<TensorType> {
        let [r] = self.readers[i].as_slice() else {
            return None;
        };
        let reader = &self.graph.nodes[*r];
        let shape = &self.graph.nodes[i].ty.tensor()?.shape;
        let folds_in_order = matches!(&reader.op, Op::Sum { axes } if axes[..] == [0])
            && shape.len() == 3
            && shape[1] * shape[2] > 1;
        if self.is_output[i] || !folds_in_order {
            return None;
        }
        reader.ty.tensor().cloned()
    }

    /// Takes the value of operand `v`: moved out when this is its only reader.
    fn take(&mut self, v: ValueId) -> Val {
        let i = v.index();
        match &self.vals[i] {
            Val::Fused(f) if f.is_free() || f.is_cheap() => self.vals[i].clone(),
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
        let buf = self.new_buffer(&f.ty.clone(), Storage::Arena(0));
        let out = View::whole(buf, &f.ty.shape);
        self.store_into(f, out.clone());
        out
    }

    /// Writes an expression through `out` (a view of its logical shape on an existing buffer).
    fn store_into(&mut self, f: Fused, out: View) {
        let view = f.view_in_space(&out);
        let value = f.expr.len() - 1;
        self.steps.push(Step::Kernel(Kernel {
            space: f.space,
            loads: f.loads,
            expr: f.expr,
            outs: vec![KernelOut {
                value,
                view,
                fold: None,
            }],
            nodes: f.nodes,
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
            (Op::Iota { axis, ty }, _) => Val::Fused(Fused::iota(ty.clone(), *axis)),
            // One process holds one shard, whose sum over shards is itself.
            (Op::Detach | Op::AllSum, _) => self.take(args[0]),
            (Op::Sum { .. }, _) if self.summed_over_batch[args[0].index()] => self.take(args[0]),
            (Op::Get { index }, Some(ty)) => match &self.vals[args[0].index()] {
                Val::Parts(parts) => Val::View(View::whole(parts[*index], &ty.shape)),
                _ => return Err(format!("internal error: %{i} takes a part of a non-tuple")),
            },
            (op, Some(ty)) if fusible(op, first_dtype.unwrap_or(ty.dtype)) && !args.is_empty() => {
                let mut operands = Vec::new();
                for a in args {
                    operands.push(self.operand_fused(a)?);
                }
                if !unify(&mut operands) {
                    // No common space: each operand is stored and loaded row-major.
                    operands = operands
                        .into_iter()
                        .map(|f| {
                            let dtype = f.ty.dtype;
                            let view = self.store(f);
                            Fused::load(view, dtype)
                        })
                        .collect();
                }
                let mut f = Fused {
                    ty: ty.clone(),
                    space: operands[0].space.clone(),
                    groups: operands[0].groups.clone(),
                    loads: Vec::new(),
                    expr: Vec::new(),
                    nodes: Vec::new(),
                };
                let refs: Vec<usize> = operands.into_iter().map(|o| f.absorb(o)).collect();
                match composite::recipe(op) {
                    Some(steps) => f.push_recipe(&steps, refs[0])?,
                    None => f.expr.push(ExprNode {
                        op: ExprOp::Op(op.clone()),
                        args: refs,
                        dtype: ty.dtype,
                    }),
                }
                f.nodes.push(i);
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
                let logical = View {
                    buf,
                    offset: 0,
                    shape: f.ty.shape.clone(),
                    strides,
                };
                let view = f.view_in_space(&logical);
                let mut nodes = f.nodes;
                nodes.push(i);
                let value = f.expr.len() - 1;
                self.steps.push(Step::Kernel(Kernel {
                    space: f.space,
                    loads: f.loads,
                    expr: f.expr,
                    outs: vec![KernelOut {
                        value,
                        view,
                        fold: Some(fold),
                    }],
                    nodes,
                }));
                Val::View(View::whole(buf, &ty.shape))
            }
            (
                Op::Reshape { .. } | Op::Permute { .. } | Op::Broadcast { .. } | Op::Slice { .. },
                Some(ty),
            ) => self.view_op(i, ty)?,
            (Op::Pad { axis, lo, .. }, Some(ty)) => {
                let (inner, mut pads) = match self.take(args[0]) {
                    Val::Padding { inner, pads } => (inner, pads),
                    Val::View(view) => (Fused::load(view, self.ty(args[0]).dtype), Vec::new()),
                    Val::Fused(f) => (f, Vec::new()),
                    _ => return Err(format!("internal error: {} is not a tensor here", args[0])),
                };
                pads.push((*axis, *lo, self.ty(args[0]).shape[*axis]));
                let read_by_a_pad = matches!(self.readers[i].as_slice(),
                    [r] if matches!(self.graph.nodes[*r].op, Op::Pad { .. }));
                if read_by_a_pad && !self.is_output[i] {
                    Val::Padding { inner, pads }
                } else {
                    let buf = self.new_buffer(&ty, Storage::Arena(0));
                    let whole = View::whole(buf, &ty.shape);
                    let zero = Fused::leaf(ty.clone(), ExprOp::Const(0.0));
                    self.store_into(zero, whole.clone());
                    let slot = pads
                        .iter()
                        .rev()
                        .fold(whole.clone(), |slot, &(axis, lo, n)| {
                            slice(&slot, axis, lo, lo + n)
                        });
                    self.store_into(inner, slot);
                    Val::View(whole)
                }
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
                let summed = self.batch_sum_of(i);
                self.summed_over_batch[i] = summed.is_some();
                let out_ty = summed.unwrap_or(ty);
                let buf = self.new_buffer(&out_ty, Storage::Arena(0));
                let out = View::whole(buf, &out_ty.shape);
                self.steps.push(Step::MatMul {
                    node: i,
                    a,
                    b,
                    out: out.clone(),
                    sum_batch: self.summed_over_batch[i],
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
        let view = match (val, &node.op) {
            (Val::View(v), _) => v,
            (Val::Fused(mut f), Op::Reshape { shape }) => {
                if f.reshape(shape) {
                    return Ok(Val::Fused(f));
                }
                self.store(f)
            }
            (Val::Fused(mut f), Op::Slice { axis, start, end }) => {
                if f.slice(*axis, *start, *end) {
                    return Ok(Val::Fused(f));
                }
                self.store(f)
            }
            (Val::Fused(f), Op::Broadcast { shape }) if f.is_cheap() => {
                return Ok(Val::Fused(f.broadcast(shape)));
            }
            (Val::Fused(f), _) => self.store(f),
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

    /// The outputs that replace an input of the same name and type: a step's new parameters,
    /// layer state and optimizer state.
    fn replaced_inputs(&self) -> Vec<String> {
        self.graph
            .outputs
            .iter()
            .filter(|o| {
                matches!(
                    o.role,
                    OutputRole::Update(Role::Param | Role::State | Role::OptState)
                ) && self
                    .graph
                    .find_input(&o.name)
                    .is_some_and(|input| self.graph.ty(input) == self.graph.ty(o.value))
            })
            .map(|o| o.name.clone())
            .collect()
    }

    /// The buffer holding output `v`: its own buffer when nothing else claims it, else a copy.
    /// An output that will replace an input lives in the arena until then.
    fn output(&mut self, v: ValueId, replaces: bool) -> Result<BufId, String> {
        let ty = self.ty(v).clone();
        let storage = if replaces {
            Storage::Arena(0)
        } else {
            Storage::Output
        };
        let own = match &self.vals[v.index()] {
            Val::View(view) => {
                let b = &self.buffers[view.buf];
                let whole = *view == View::whole(view.buf, &ty.shape) && b.numel == ty.numel();
                (whole && matches!(b.storage, Storage::Arena(_))).then_some(view.buf)
            }
            _ => None,
        };
        if let Some(buf) = own
            && !self.claimed.contains(&buf)
        {
            self.claimed.push(buf);
            self.buffers[buf].storage = storage;
            return Ok(buf);
        }
        let f = match self.vals[v.index()].clone() {
            Val::View(view) => Fused::load(view, ty.dtype),
            Val::Fused(f) => f,
            _ => return Err(format!("internal error: output {v} is not a tensor")),
        };
        let buf = self.new_buffer(&ty, storage);
        self.store_into(f, View::whole(buf, &ty.shape));
        Ok(buf)
    }

    /// Makes every output that replaces an input write over that input: the kernel computing
    /// it writes the input's buffer directly when no later step reads the input, else a copy
    /// at the end does. A guard before the first such write stops a step whose loss is not
    /// finite.
    fn write_over_inputs(
        &mut self,
        outputs: &mut [PlanOutput],
        replaced: &[String],
    ) -> Result<(), String> {
        if replaced.is_empty() {
            return Ok(());
        }
        let input_buf = |name: &str, buffers: &[Buffer]| {
            buffers
                .iter()
                .position(|b| b.storage == Storage::Input(name.to_string()))
        };
        let loss = self
            .graph
            .outputs
            .iter()
            .zip(outputs.iter())
            .find(|(o, _)| o.role == OutputRole::Loss)
            .map(|(_, planned)| planned.buf);
        let loss_step = loss.and_then(|b| last_writer(&self.steps, b));
        let mut copies = Vec::new();
        for out in outputs.iter_mut().filter(|o| replaced.contains(&o.name)) {
            let input = input_buf(&out.name, &self.buffers)
                .ok_or_else(|| format!("internal error: no input buffer for `{}`", out.name))?;
            let written_in_place = match single_writer(&self.steps, out.buf) {
                Some(w) => {
                    let late_enough = loss_step.is_none_or(|l| w > l);
                    late_enough && self.can_write_over(w, out.buf, input)
                }
                None => false,
            };
            if written_in_place {
                retarget(&mut self.steps, out.buf, input);
            } else {
                copies.push((out.buf, input));
            }
            out.buf = input;
            out.replaces_input = true;
        }
        for (from, to) in copies {
            let b = &self.buffers[from];
            let ty = TensorType::new(b.dtype, vec![b.numel]);
            let f = Fused::load(View::whole(from, &ty.shape), ty.dtype);
            self.store_into(f, View::whole(to, &ty.shape));
        }
        let writes_input = |s: &Step| {
            s.writes()
                .iter()
                .any(|&b| matches!(self.buffers[b].storage, Storage::Input(_)))
        };
        if let Some(loss) = loss
            && let Some(first) = self.steps.iter().position(writes_input)
        {
            self.steps.insert(first, Step::Guard { loss });
        }
        Ok(())
    }

    /// Whether step `w`, a kernel writing `out` whole and row-major, can write `input`'s buffer
    /// instead: no later step reads the input, and `w` reads it only at the positions it writes.
    fn can_write_over(&self, w: usize, out: BufId, input: BufId) -> bool {
        let Step::Kernel(k) = &self.steps[w] else {
            return false;
        };
        let Some(o) = k.outs.iter().find(|o| o.view.buf == out) else {
            return false;
        };
        if o.fold.is_some() || k.outs.iter().filter(|x| x.view.buf == out).count() != 1 {
            return false;
        }
        let same_place = |v: &View| v.offset == o.view.offset && v.strides == o.view.strides;
        let read_alike = k.loads.iter().filter(|v| v.buf == input).all(same_place);
        let read_later = self.steps[w + 1..]
            .iter()
            .any(|s| s.reads().contains(&input));
        read_alike && !read_later
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

fn last_writer(steps: &[Step], buf: BufId) -> Option<usize> {
    steps.iter().rposition(|s| s.writes().contains(&buf))
}

fn single_writer(steps: &[Step], buf: BufId) -> Option<usize> {
    let mut writers = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.writes().contains(&buf));
    match (writers.next(), writers.next()) {
        (Some((w, _)), None) => Some(w),
        _ => None,
    }
}

/// Every use of buffer `from` becomes a use of `to`.
fn retarget(steps: &mut [Step], from: BufId, to: BufId) {
    let fix = |b: &mut BufId| {
        if *b == from {
            *b = to;
        }
    };
    for s in steps {
        match s {
            Step::Kernel(k) => {
                k.loads.iter_mut().for_each(|v| fix(&mut v.buf));
                k.outs.iter_mut().for_each(|o| fix(&mut o.view.buf));
            }
            Step::MatMul { a, b, out, .. } => {
                fix(&mut a.buf);
                fix(&mut b.buf);
                fix(&mut out.buf);
            }
            Step::Library { args, out, .. } => {
                args.iter_mut().for_each(|v| fix(&mut v.buf));
                fix(out);
            }
            Step::Scan {
                args,
                carries,
                outs,
                ..
            } => {
                args.iter_mut().for_each(|v| fix(&mut v.buf));
                carries.iter_mut().flatten().for_each(fix);
                outs.iter_mut().for_each(fix);
            }
            Step::Guard { loss } => fix(loss),
        }
    }
}

/// Merges each kernel that only stores elementwise results into the first later step that
/// reads them, when that is a kernel over the same (or a compatible) space and nothing between
/// them writes what it reads: one loop nest then computes both and stores every result.
fn merge_kernels(steps: &mut Vec<Step>) {
    let mut i = 0;
    while i < steps.len() {
        if let Some((j, merged)) = merge_candidate(steps, i) {
            steps[j] = Step::Kernel(merged);
            steps.remove(i);
        } else {
            i += 1;
        }
    }
}

fn merge_candidate(steps: &[Step], i: usize) -> Option<(usize, Kernel)> {
    let Step::Kernel(a) = &steps[i] else {
        return None;
    };
    if a.outs.iter().any(|o| o.fold.is_some()) {
        return None;
    }
    let written: Vec<BufId> = a.writes().collect();
    let read: Vec<BufId> = a.reads().collect();
    let j = (i + 1..steps.len()).find(|&j| steps[j].reads().iter().any(|b| written.contains(b)))?;
    if steps[i + 1..j].iter().any(|s| {
        s.writes()
            .iter()
            .any(|b| read.contains(b) || written.contains(b))
    }) {
        return None;
    }
    let Step::Kernel(b) = &steps[j] else {
        return None;
    };
    if b.writes()
        .any(|w| read.contains(&w) || written.contains(&w))
    {
        return None;
    }
    let space = common_refinement(&a.space, &b.space)?;
    let (a, b) = (a.refined(&space)?, b.refined(&space)?);
    // Every load of `a`'s results in `b` must be the element `a` computes at that position.
    for v in b.loads.iter().filter(|v| written.contains(&v.buf)) {
        a.outs.iter().find(|o| o.view == *v)?;
    }
    let merged = merge(a, b, &written);
    let lanes = |k: &Kernel| super::codegen::vector_lanes(k);
    let (la, lb) = (
        lanes(steps_kernel(&steps[i])?),
        lanes(steps_kernel(&steps[j])?),
    );
    if lanes(&merged) < la.min(lb) {
        return None;
    }
    Some((j, merged))
}

fn steps_kernel(s: &Step) -> Option<&Kernel> {
    match s {
        Step::Kernel(k) => Some(k),
        _ => None,
    }
}

/// `b` computing `a`'s expression first: loads of `a`'s results become its nodes.
fn merge(a: Kernel, b: Kernel, written: &[BufId]) -> Kernel {
    let mut loads = a.loads.clone();
    let mut expr = a.expr.clone();
    let mut map = Vec::with_capacity(b.expr.len());
    for node in &b.expr {
        let new = match &node.op {
            ExprOp::Load(l) => {
                let view = &b.loads[*l];
                if written.contains(&view.buf) {
                    let o = a.outs.iter().find(|o| o.view == *view).expect("checked");
                    map.push(o.value);
                    continue;
                }
                let at = match loads.iter().position(|v| v == view) {
                    Some(at) => at,
                    None => {
                        loads.push(view.clone());
                        loads.len() - 1
                    }
                };
                ExprNode {
                    op: ExprOp::Load(at),
                    args: Vec::new(),
                    dtype: node.dtype,
                }
            }
            _ => ExprNode {
                op: node.op.clone(),
                args: node.args.iter().map(|&x| map[x]).collect(),
                dtype: node.dtype,
            },
        };
        expr.push(new);
        map.push(expr.len() - 1);
    }
    let mut outs = a.outs;
    outs.extend(b.outs.into_iter().map(|o| KernelOut {
        value: map[o.value],
        ..o
    }));
    let mut nodes = a.nodes;
    for n in b.nodes {
        if !nodes.contains(&n) {
            nodes.push(n);
        }
    }
    Kernel {
        space: b.space,
        loads,
        expr,
        outs,
        nodes,
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
        for b in step.reads().into_iter().chain(step.writes()) {
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

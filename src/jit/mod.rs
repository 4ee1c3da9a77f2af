//! The JIT: compiles a graph into native code with Cranelift and runs it.
//!
//! [`plan`] decides where every value lives (views copy nothing; elementwise chains fuse into
//! the loop of their consumer; scratch buffers share one arena by lifetime), [`codegen`] turns
//! each loop nest into a Cranelift function, and [`Program::run`] calls them in order. `matmul`
//! is handed to gemm, a `scan` runs its own compiled body step by step in place, `unfold` and
//! `fold` run the shared slice kernels (`tensor::linalg`) on the buffers, and the few remaining
//! ops (`gather`, `scatter_add`, random numbers, `argmax`, and any op on a dtype the generated
//! code does not handle) are library calls to the kernels the interpreter runs too
//! (`tensor::kernels`). The generated code computes every element with the interpreter's
//! operations in its order, so the two agree bit for bit except where a reduction over several
//! axes groups its sums differently.

mod codegen;
mod plan;
mod rows;
mod show;
#[cfg(test)]
mod tests;
mod wide;

use crate::ir::{DType, Graph, Op, Verified};
use crate::tensor::product::{self, Dest, Operand};
use crate::tensor::{RunError, Tensor, kernels, linalg};
use codegen::Compiled;
use ndarray::{ArrayD, IxDyn};
use plan::{BufId, Plan, Step, Storage, View, dtype_size};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub use show::{ProfileRow, StepKind};

/// A graph compiled for this machine.
pub struct Program {
    graph: Verified,
    plan: Plan,
    code: codegen::Code,
    /// The compiled kernel of each step that is one.
    kernel_of_step: Vec<Option<usize>>,
    /// The compiled body of each step that is a scan.
    body_of_step: Vec<Option<Program>>,
    /// The buffer of each input node, in the graph's order.
    inputs: Vec<BufId>,
    /// Scratch memory, kept between runs (u64 for alignment).
    arena: Mutex<Vec<u64>>,
    /// For a scan's body that treats batch rows apart: how it runs on a range of rows, and
    /// the scratch memory of the threads beyond the first.
    rows: Option<rows::RowSplit>,
    row_arenas: Mutex<Vec<Vec<u64>>>,
    /// Calls and nanoseconds of each step, when profiling.
    profile: Option<Mutex<Vec<(u64, u64)>>>,
}

/// The number of multiply-adds below which a batch of products runs on one thread: waking the
/// others costs more than they save. (One product alone is split by `product::product`'s
/// own threshold.)
const PARALLEL_MATMUL_WORK: usize = 1 << 20;

/// The work (`plan::Kernel::work`) below which a kernel runs on one thread, for the same reason.
const PARALLEL_KERNEL_WORK: usize = 1 << 19;

/// Compiles `graph`.
pub fn compile(graph: &Graph) -> Result<Program, String> {
    let graph = Verified::new(graph.clone())?;
    let graph = &graph;
    let plan = plan::plan(graph)?;
    let mut kernels = Vec::new();
    let mut kernel_of_step = Vec::new();
    let mut body_of_step = Vec::new();
    for step in &plan.steps {
        kernel_of_step.push(match step {
            Step::Kernel(k) => {
                kernels.push(k);
                Some(kernels.len() - 1)
            }
            _ => None,
        });
        body_of_step.push(match step {
            Step::Scan { node, .. } => match &graph.nodes[*node].op {
                Op::Scan { body, carries, .. } => {
                    let mut body = compile(body)?;
                    body.rows = rows::row_split(&body, *carries);
                    Some(body)
                }
                _ => return Err(format!("internal error: %{node} is not a scan")),
            },
            _ => None,
        });
    }
    let code = codegen::compile(&kernels, &graph.name)?;
    let inputs = graph
        .inputs()
        .map(|(_, name, _)| {
            plan.buffers
                .iter()
                .position(|b| b.storage == Storage::Input(name.to_string()))
                .ok_or_else(|| format!("internal error: input `{name}` has no buffer"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Program {
        graph: graph.clone(),
        plan,
        code,
        kernel_of_step,
        body_of_step,
        inputs,
        arena: Mutex::new(Vec::new()),
        rows: None,
        row_arenas: Mutex::new(Vec::new()),
        profile: None,
    })
}

/// A buffer of one run that the caller receives.
enum Owned {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

impl Owned {
    fn zeros(dtype: DType, n: usize) -> Owned {
        match dtype {
            DType::F32 => Owned::F32(vec![0.0; n]),
            DType::F64 => Owned::F64(vec![0.0; n]),
            DType::I32 => Owned::I32(vec![0; n]),
            DType::Bool => Owned::Bool(vec![false; n]),
        }
    }

    fn address(&mut self) -> *mut u8 {
        match self {
            Owned::F32(v) => v.as_mut_ptr().cast(),
            Owned::F64(v) => v.as_mut_ptr().cast(),
            Owned::I32(v) => v.as_mut_ptr().cast(),
            Owned::Bool(v) => v.as_mut_ptr().cast(),
        }
    }

    fn into_tensor(self, shape: &[usize]) -> Result<Tensor, String> {
        let shape = IxDyn(shape);
        let e = |e: ndarray::ShapeError| e.to_string();
        Ok(match self {
            Owned::F32(v) => Tensor::F32(ArrayD::from_shape_vec(shape, v).map_err(e)?),
            Owned::F64(v) => Tensor::F64(ArrayD::from_shape_vec(shape, v).map_err(e)?),
            Owned::I32(v) => Tensor::I32(ArrayD::from_shape_vec(shape, v).map_err(e)?),
            Owned::Bool(v) => Tensor::Bool(ArrayD::from_shape_vec(shape, v).map_err(e)?),
        })
    }
}

/// The address of a tensor's elements, which must be row-major.
fn tensor_address(t: &Tensor) -> Option<*mut u8> {
    let p: *const u8 = match t {
        Tensor::F32(a) => a.as_slice()?.as_ptr().cast(),
        Tensor::F64(a) => a.as_slice()?.as_ptr().cast(),
        Tensor::I32(a) => a.as_slice()?.as_ptr().cast(),
        Tensor::Bool(a) => a.as_slice()?.as_ptr().cast(),
    };
    // Kernels only read input buffers; the table holds every address as `*mut`.
    Some(p.cast_mut())
}

/// The address of a tensor's elements, to be written; the tensor must be row-major.
fn tensor_address_mut(t: &mut Tensor) -> Option<*mut u8> {
    Some(match t {
        Tensor::F32(a) => a.as_slice_mut()?.as_mut_ptr().cast(),
        Tensor::F64(a) => a.as_slice_mut()?.as_mut_ptr().cast(),
        Tensor::I32(a) => a.as_slice_mut()?.as_mut_ptr().cast(),
        Tensor::Bool(a) => a.as_slice_mut()?.as_mut_ptr().cast(),
    })
}

/// Makes a tensor row-major in place, copying it if it is not.
fn make_row_major(t: &mut Tensor) {
    if tensor_address(t).is_none() {
        *t = row_major_copy(t);
    }
}

fn row_major_copy(t: &Tensor) -> Tensor {
    match t {
        Tensor::F32(a) => Tensor::F32(a.as_standard_layout().into_owned()),
        Tensor::F64(a) => Tensor::F64(a.as_standard_layout().into_owned()),
        Tensor::I32(a) => Tensor::I32(a.as_standard_layout().into_owned()),
        Tensor::Bool(a) => Tensor::Bool(a.as_standard_layout().into_owned()),
    }
}

impl Program {
    /// The graph this program computes.
    pub fn graph(&self) -> &Verified {
        &self.graph
    }

    /// Records the time of every step of later runs (see [`Program::profile`]).
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(|| Mutex::new(vec![(0, 0); self.plan.steps.len()]));
        for body in self.body_of_step.iter_mut().flatten() {
            body.set_profiling(on);
        }
    }

    /// Runs the program on the inputs `input` finds by name; returns every output. Inputs that
    /// outputs replace are copied first, so nothing the caller holds changes.
    pub fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        threads: usize,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        let mut state = HashMap::new();
        for out in self.plan.outputs.iter().filter(|o| o.replaces_input) {
            let t = input(&out.name).ok_or_else(|| self.missing(&out.name))?;
            state.insert(out.name.clone(), row_major_copy(t));
        }
        let (mut result, _) = self.execute_with(input, &mut state, threads, false)?;
        result.extend(state);
        Ok(result)
    }

    /// Runs a training step: the values in `state` that outputs replace are updated in place
    /// (unless the output `loss` is not finite: then none is, and the step stops before any
    /// would be); returns the other outputs. Inputs are looked up in `input`, then in `state`.
    pub fn run_step<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        state: &mut HashMap<String, Tensor>,
        threads: usize,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        Ok(self.execute_with(input, state, threads, true)?.0)
    }

    fn missing(&self, name: &str) -> RunError {
        RunError {
            message: format!("missing input `{name}`"),
            node: self.graph.find_input(name).map(|v| v.index()),
            op: Some("input"),
            loc: None,
        }
    }

    /// Binds the inputs (those that outputs replace from `state`, written in place), runs every
    /// step, and returns the outputs that replace nothing, and whether the run went to the end
    /// (a `guarded` run stops at a guard whose loss is not finite).
    fn execute_with<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        state: &mut HashMap<String, Tensor>,
        threads: usize,
        guarded: bool,
    ) -> Result<(HashMap<String, Tensor>, bool), RunError> {
        let buffers = &self.plan.buffers;
        let mut table: Vec<*mut u8> = vec![std::ptr::null_mut(); buffers.len()];
        let replaced: Vec<&str> = self
            .plan
            .outputs
            .iter()
            .filter(|o| o.replaces_input)
            .map(|o| o.name.as_str())
            .collect();
        let mut written: HashMap<String, *mut u8> = HashMap::new();
        for (name, tensor) in state.iter_mut() {
            if replaced.contains(&name.as_str()) {
                make_row_major(tensor);
                written.insert(name.clone(), tensor_address_mut(tensor).expect("row-major"));
            }
        }
        let state: &HashMap<String, Tensor> = state;
        let mut copies = Vec::new();
        for (&buf, (v, name, _)) in self.inputs.iter().zip(self.graph.inputs()) {
            let want = self.graph.ty(v);
            let fail = |message| RunError {
                message,
                node: Some(v.index()),
                op: Some("input"),
                loc: None,
            };
            let tensor = match written.get(name) {
                Some(_) => state.get(name),
                None => input(name).or_else(|| state.get(name)),
            }
            .ok_or_else(|| fail(format!("missing input `{name}` ({want})")))?;
            let got = tensor.ty();
            if got != *want {
                return Err(fail(format!(
                    "input `{name}` is {got} but the graph expects {want}"
                )));
            }
            table[buf] = match written.get(name) {
                Some(&p) => p,
                None => match tensor_address(tensor) {
                    Some(p) => p,
                    None => {
                        copies.push(row_major_copy(tensor));
                        tensor_address(copies.last().expect("just pushed")).expect("row-major")
                    }
                },
            };
        }
        let mut owned: Vec<Option<Owned>> = buffers.iter().map(|_| None).collect();
        for out in self.plan.outputs.iter().filter(|o| !o.replaces_input) {
            let b = &buffers[out.buf];
            let mut o = Owned::zeros(b.dtype, b.numel);
            table[out.buf] = o.address();
            owned[out.buf] = Some(o);
        }
        // SAFETY: every input and output address in the table points to a live buffer of the
        // planned dtype and size (checked against the graph's types just above); the inputs
        // written in place are the caller's own (`state`), not aliased by any other input.
        let finished = unsafe { self.execute(&mut table, threads, guarded)? };
        let mut result = HashMap::new();
        for out in self.plan.outputs.iter().filter(|o| !o.replaces_input) {
            let v = self.graph.output(&out.name).expect("a planned output");
            let shape = &self.graph.ty(v).shape;
            let Some(o) = owned[out.buf].take() else {
                continue;
            };
            let tensor = o
                .into_tensor(shape)
                .map_err(|e| library_error(&self.graph, v.index(), e))?;
            result.insert(out.name.clone(), tensor);
        }
        Ok((result, finished))
    }

    /// Runs every step. The caller has put the address of every input and output buffer in
    /// `table`; the scratch buffers' are filled in here. Returns false when a guard stopped the
    /// run (only when `guarded`).
    ///
    /// # Safety
    /// Those addresses point to live buffers of the planned dtypes and sizes, and the output
    /// buffers overlap nothing else.
    unsafe fn execute(
        &self,
        table: &mut [*mut u8],
        threads: usize,
        guarded: bool,
    ) -> Result<bool, RunError> {
        let mut arena = self.arena.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: forwarded from the caller.
        unsafe { self.execute_in(table, &mut arena, None, threads, guarded) }
    }

    /// [`Program::execute`] with `arena` as scratch memory, on the batch rows `rows` only when
    /// given (a scan's body with a [`rows::RowSplit`]; then on this thread alone).
    ///
    /// # Safety
    /// As for [`Program::execute`]; with `rows`, no other run touches those rows of the
    /// carries and outputs, nor `arena`.
    unsafe fn execute_in(
        &self,
        table: &mut [*mut u8],
        arena: &mut Vec<u64>,
        rows: Option<std::ops::Range<usize>>,
        threads: usize,
        guarded: bool,
    ) -> Result<bool, RunError> {
        let buffers = &self.plan.buffers;
        let words = self.plan.arena_bytes.div_ceil(8);
        if arena.len() < words {
            arena.resize(words, 0);
        }
        let arena_base: *mut u8 = arena.as_mut_ptr().cast();
        for (address, buffer) in table.iter_mut().zip(buffers) {
            if let Storage::Arena(offset) = buffer.storage {
                // SAFETY: `offset` plus the buffer's size is within `arena_bytes`
                // (`plan::assign_memory`), which the arena holds.
                *address = unsafe { arena_base.add(offset) };
            }
        }
        let split = rows.as_ref().and_then(|r| {
            let split = self.rows.as_ref()?;
            Some((split, r.clone()))
        });
        // Of a run on rows, the one on the first rows stands for the others.
        let timed = self.profile.is_some() && rows.as_ref().is_none_or(|r| r.start == 0);
        let mut times = vec![(0u64, 0u64); if timed { self.plan.steps.len() } else { 0 }];
        for (s, step) in self.plan.steps.iter().enumerate() {
            let started = timed.then(Instant::now);
            let part = split.as_ref().map(|(split, r)| (split.steps[s], r.clone()));
            match step {
                Step::Kernel(k) => {
                    let kernel = &self.code.kernels[self.kernel_of_step[s].expect("a kernel")];
                    match part {
                        // SAFETY: the kernel was generated for this plan; its outermost loop
                        // walks the batch rows, `per_row` iterations each.
                        Some((rows::RowStep::Rows { per_row }, r)) => unsafe {
                            kernel.call(
                                table.as_ptr(),
                                (r.start * per_row) as i64,
                                (r.end * per_row) as i64,
                            )
                        },
                        // SAFETY: the kernel was generated for this plan: it touches only the
                        // buffers the table holds, within the extents of their views.
                        _ => unsafe { run_kernel(kernel, table, k.work(), threads) },
                    }
                }
                Step::MatMul {
                    a,
                    b,
                    out,
                    sum_batch: true,
                    ..
                } => {
                    // SAFETY: the views lie within their buffers, and the output is a fresh
                    // buffer that no operand view reaches.
                    unsafe { matmul_summed(table, a, b, out, buffers[out.buf].dtype, threads) }
                }
                Step::MatMul { a, b, out, .. } => {
                    let dtype = buffers[out.buf].dtype;
                    let (a, out) = match part {
                        Some((rows::RowStep::Rows { .. }, r)) => {
                            (rows::rows_of(a, r.clone()), rows::rows_of(out, r))
                        }
                        _ => (a.clone(), out.clone()),
                    };
                    // SAFETY: the views lie within their buffers, and the output is a fresh
                    // buffer that no operand view reaches.
                    unsafe { matmul(table, &a, b, &out, dtype, threads) }
                }
                Step::Library { node, args, out } => {
                    // SAFETY: the views lie within their buffers, and `out` holds the node's
                    // result type.
                    unsafe { self.library(table, *node, args, *out, threads)? }
                }
                Step::Scan {
                    node,
                    args,
                    carries,
                    outs,
                } => {
                    let body = self.body_of_step[s].as_ref().expect("a compiled body");
                    let scan = ScanStep {
                        node: *node,
                        args,
                        carries,
                        outs,
                    };
                    // SAFETY: as for the other steps; `args` are row-major.
                    unsafe { self.scan(body, table, &scan, threads)? }
                }
                Step::Guard { loss } => {
                    // SAFETY: the loss is a scalar of its buffer's dtype.
                    let finite = unsafe {
                        match buffers[*loss].dtype {
                            DType::F64 => table[*loss].cast::<f64>().read().is_finite(),
                            _ => table[*loss].cast::<f32>().read().is_finite(),
                        }
                    };
                    if guarded && !finite {
                        return Ok(false);
                    }
                }
            }
            if let Some(started) = started {
                times[s].0 += 1;
                times[s].1 += started.elapsed().as_nanos() as u64;
            }
        }
        if let Some(profile) = self.profile.as_ref().filter(|_| timed) {
            let mut total = profile.lock().unwrap_or_else(|e| e.into_inner());
            for (t, (calls, nanos)) in total.iter_mut().zip(times) {
                *t = (t.0 + calls, t.1 + nanos);
            }
        }
        Ok(true)
    }

    /// # Safety
    /// See [`Program::execute`].
    unsafe fn library(
        &self,
        table: &[*mut u8],
        node: usize,
        args: &[View],
        out: BufId,
        threads: usize,
    ) -> Result<(), RunError> {
        // SAFETY: forwarded from the caller.
        if unsafe { self.window_in_place(table, node, args, out, threads)? } {
            return Ok(());
        }
        let buffers = &self.plan.buffers;
        let operands = args
            .iter()
            // SAFETY: the view lies within its buffer, which holds its dtype.
            .map(|v| unsafe { read_view(table, v, buffers[v.buf].dtype) })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| library_error(&self.graph, node, e))?;
        let operands: Vec<&Tensor> = operands.iter().collect();
        let result = kernels::apply(&self.graph.nodes[node].op, &operands, threads)
            .map_err(|e| RunError::at(node, &self.graph.nodes[node], e))?;
        if result.dtype() != buffers[out].dtype {
            let message = format!(
                "a result of {} for a buffer of {}",
                result.ty(),
                buffers[out].dtype.name()
            );
            return Err(library_error(&self.graph, node, message));
        }
        // SAFETY: the buffer holds the result's dtype, just checked (and `write_tensor` checks
        // the element count).
        unsafe { write_tensor(table[out], buffers[out].numel, &result) }
            .map_err(|e| library_error(&self.graph, node, e))
    }

    /// `unfold` and `fold` of floats, computed straight from and into the buffers (library
    /// operands are row-major) by the shared slice kernels, the images split between the
    /// threads (each image is computed alone, so the split changes no bit); false for anything
    /// else.
    ///
    /// # Safety
    /// See [`Program::execute`].
    unsafe fn window_in_place(
        &self,
        table: &[*mut u8],
        node: usize,
        args: &[View],
        out: BufId,
        threads: usize,
    ) -> Result<bool, RunError> {
        let n = &self.graph.nodes[node];
        let Some(arg) = args.first() else {
            return Ok(false);
        };
        let dtype = self.plan.buffers[out].dtype;
        let (images, h, wd, window) = match (&n.op, arg.shape.as_slice()) {
            (Op::Unfold(w), &[b, c, h, wd]) => (b * c, h, wd, w),
            (Op::Fold { window, size }, &[b, ckk, _]) => {
                let kk = window.kernel * window.kernel;
                if kk == 0 || ckk % kk != 0 {
                    return Ok(false);
                }
                (b * ckk / kk, size[0], size[1], window)
            }
            _ => return Ok(false),
        };
        if !dtype.is_float() {
            return Ok(false);
        }
        let unfold = matches!(n.op, Op::Unfold(_));
        let in_len: usize = arg.shape.iter().product();
        let out_len = self.plan.buffers[out].numel;
        macro_rules! run {
            ($t:ty) => {{
                // SAFETY: the operand view is row-major inside its buffer and the output buffer
                // holds `out_len` elements of the node's dtype; they do not overlap.
                let (x, y) = unsafe {
                    let base = table[arg.buf].cast::<$t>().offset(arg.offset);
                    (
                        std::slice::from_raw_parts(base, in_len),
                        std::slice::from_raw_parts_mut(table[out].cast::<$t>(), out_len),
                    )
                };
                let one = |x: &[$t], y: &mut [$t], images: usize| {
                    // Without padding every window lies inside the image, and an unfold
                    // writes every element of its output.
                    if !unfold || window.padding > 0 {
                        y.fill(0.0);
                    }
                    let dims = [images, h, wd];
                    if unfold {
                        linalg::unfold_into(x, dims, window, y)
                    } else {
                        linalg::fold_into(x, dims, window, y, |a, b| a + b)
                    }
                };
                let parts = threads.min(images / MIN_IMAGES_PER_THREAD).max(1);
                if parts > 1 {
                    let per_part = images.div_ceil(parts);
                    let (x_image, y_image) = (in_len / images, out_len / images);
                    let pieces: Vec<Mutex<(&[$t], &mut [$t])>> = x
                        .chunks(per_part * x_image)
                        .zip(y.chunks_mut(per_part * y_image))
                        .map(Mutex::new)
                        .collect();
                    let failed = Mutex::new(None);
                    on_threads(pieces.len(), &|p| {
                        let mut piece = pieces[p].lock().unwrap_or_else(|e| e.into_inner());
                        let (x, y) = &mut *piece;
                        if let Err(e) = one(x, y, x.len() / x_image) {
                            *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        }
                    });
                    match failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
                        Some(e) => Err(e),
                        None => Ok(()),
                    }
                } else {
                    one(x, y, images)
                }
            }};
        }
        let done = match dtype {
            DType::F64 => run!(f64),
            _ => run!(f32),
        };
        done.map_err(|e| library_error(&self.graph, node, e))?;
        Ok(true)
    }

    /// Runs a scan's body once per step, in place: each step reads the carries from one
    /// scratch buffer and writes them to the other, reads its slice of each sequence where it
    /// is and writes its outputs straight into their slot of the stacked results.
    ///
    /// # Safety
    /// See [`Program::execute`].
    unsafe fn scan(
        &self,
        body: &Program,
        table: &[*mut u8],
        scan: &ScanStep<'_>,
        threads: usize,
    ) -> Result<(), RunError> {
        let n = &self.graph.nodes[scan.node];
        let Op::Scan { seqs, reverse, .. } = n.op else {
            return Err(library_error(&self.graph, scan.node, "not a scan".into()));
        };
        let buffers = &self.plan.buffers;
        let carries = scan.carries.len();
        let steps = scan.args[carries].shape[0];
        let walk = ScanWalk {
            scan,
            seqs,
            reverse,
            steps,
        };
        let parts = match &body.rows {
            Some(split) if threads >= 2 => threads.min(split.rows / MIN_ROWS_PER_THREAD),
            _ => 1,
        };
        let mut arena = body.arena.lock().unwrap_or_else(|e| e.into_inner());
        if parts < 2 {
            // SAFETY: forwarded from the caller.
            unsafe { self.scan_steps(body, table, &walk, &mut arena, None, threads)? };
        } else {
            let rows = body.rows.as_ref().map_or(0, |split| split.rows);
            let mut spare = body.row_arenas.lock().unwrap_or_else(|e| e.into_inner());
            spare.resize_with(parts - 1, Vec::new);
            let shared = SharedScan {
                outer: self,
                body,
                walk: &walk,
                table: table.as_ptr(),
                len: table.len(),
            };
            let arenas: Vec<&mut Vec<u64>> = std::iter::once(&mut *arena)
                .chain(spare.iter_mut())
                .collect();
            let results: Vec<Result<(), RunError>> = arenas
                .into_par_iter()
                .enumerate()
                .map(|(p, arena)| {
                    let s = &shared;
                    // SAFETY: the table outlives the parallel iterator, which joins its threads.
                    let table = unsafe { std::slice::from_raw_parts(s.table, s.len) };
                    let part = rows * p / parts..rows * (p + 1) / parts;
                    // SAFETY: the body's row split shows that runs on disjoint rows touch
                    // disjoint parts of the carries and outputs; each has its own arena.
                    unsafe {
                        s.outer
                            .scan_steps(s.body, table, s.walk, arena, Some(part), 1)
                    }
                })
                .collect();
            results.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
        let last = steps % 2;
        for (c, pair) in scan.carries.iter().enumerate() {
            let b = &buffers[pair[0]];
            // SAFETY: both buffers hold one carry (same dtype and size) and are distinct.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    table[pair[last]],
                    table[scan.outs[c]],
                    b.numel * dtype_size(b.dtype),
                )
            };
        }
        Ok(())
    }

    /// Runs every step of a scan's body, on the batch rows `rows` only when given, with
    /// `arena` as its scratch memory; the carries end in their buffers of turn `steps % 2`.
    ///
    /// # Safety
    /// See [`Program::execute_in`].
    unsafe fn scan_steps(
        &self,
        body: &Program,
        table: &[*mut u8],
        walk: &ScanWalk<'_, '_>,
        arena: &mut Vec<u64>,
        rows: Option<std::ops::Range<usize>>,
        threads: usize,
    ) -> Result<(), RunError> {
        let scan = walk.scan;
        let buffers = &self.plan.buffers;
        let carries = scan.carries.len();
        let steps = walk.steps;
        let address = |v: &View| {
            let size = dtype_size(buffers[v.buf].dtype);
            // SAFETY: the view's offset is inside its buffer.
            unsafe { table[v.buf].add(v.offset as usize * size) }
        };
        // Bytes per step of a row-major sequence or stacked output: its elements after axis 0.
        let step_bytes =
            |v: &View| v.shape[1..].iter().product::<usize>() * dtype_size(buffers[v.buf].dtype);
        let mut body_table = vec![std::ptr::null_mut(); body.plan.buffers.len()];
        for (turn, i) in (0..steps).enumerate() {
            let t = if walk.reverse { steps - 1 - i } else { i };
            let current = turn % 2;
            for (i, &buf) in body.inputs.iter().enumerate() {
                body_table[buf] = if i < carries {
                    table[scan.carries[i][current]]
                } else if i < carries + walk.seqs {
                    let v = &scan.args[i];
                    // SAFETY: step `t` of a row-major sequence lies inside it.
                    unsafe { address(v).add(t * step_bytes(v)) }
                } else {
                    address(&scan.args[i])
                };
            }
            for (j, out) in body.plan.outputs.iter().enumerate() {
                body_table[out.buf] = if j < carries {
                    table[scan.carries[j][1 - current]]
                } else {
                    let out = scan.outs[j];
                    let whole = buffers[out].numel * dtype_size(buffers[out].dtype);
                    // SAFETY: slot `t` of a stacked output lies inside it.
                    unsafe { table[out].add(t * (whole / steps)) }
                };
            }
            // SAFETY: every address is a live buffer of the body's planned types: the carry
            // buffers and slots hold exactly one step's values, and outputs overlap nothing.
            unsafe { body.execute_in(&mut body_table, arena, rows.clone(), threads, false) }
                .map_err(|mut e| {
                    e.message = format!("{} (at step {t} of the scan %{})", e.message, scan.node);
                    e
                })?;
        }
        Ok(())
    }
}

/// The rows each thread takes at least when a scan is split by rows: fewer make products too
/// thin to be worth a thread.
const MIN_ROWS_PER_THREAD: usize = 8;

/// The fewest images (of one channel) an `unfold` or `fold` gives each thread: fewer are not
/// worth forking for.
const MIN_IMAGES_PER_THREAD: usize = 16;

/// What the threads of a scan split by rows share.
struct SharedScan<'a, 's, 'p> {
    outer: &'a Program,
    body: &'a Program,
    walk: &'a ScanWalk<'s, 'p>,
    table: *const *mut u8,
    len: usize,
}
// SAFETY: the threads only read the programs' plans and call their compiled code (which does
// not change while they run); they write disjoint rows of the carries and outputs through the
// table (see `rows`), each into its own arena; the parallel iterator joins them before the
// table and programs go.
unsafe impl Sync for SharedScan<'_, '_, '_> {}

/// How a scan walks its steps.
struct ScanWalk<'s, 'p> {
    scan: &'s ScanStep<'p>,
    seqs: usize,
    reverse: bool,
    steps: usize,
}

/// A scan step's operands, as planned.
struct ScanStep<'p> {
    node: usize,
    args: &'p [View],
    carries: &'p [[BufId; 2]],
    outs: &'p [BufId],
}

fn library_error(graph: &Graph, node: usize, message: String) -> RunError {
    let n = &graph.nodes[node];
    RunError {
        message: format!("internal error: {message}"),
        node: Some(node),
        op: Some(n.op.name()),
        loc: Some(n.loc.clone()),
    }
}

/// The element offsets a view visits, in row-major order.
fn view_offsets(v: &View) -> impl Iterator<Item = isize> + '_ {
    let numel: usize = v.shape.iter().product();
    let mut index = vec![0usize; v.shape.len()];
    let mut offset = v.offset;
    (0..numel).map(move |_| {
        let here = offset;
        for d in (0..index.len()).rev() {
            index[d] += 1;
            offset += v.strides[d];
            if index[d] < v.shape[d] {
                break;
            }
            offset -= v.strides[d] * v.shape[d] as isize;
            index[d] = 0;
        }
        here
    })
}

/// Copies a row-major view's elements into a tensor.
///
/// # Safety
/// The view's elements lie in its buffer, which holds `dtype` elements.
unsafe fn read_view(table: &[*mut u8], v: &View, dtype: DType) -> Result<Tensor, String> {
    unsafe fn copy<T: Copy>(base: *const u8, v: &View) -> Vec<T> {
        let numel = v.shape.iter().product();
        // SAFETY: the caller guarantees the view's `numel` elements from `offset` are inside
        // the buffer.
        unsafe { std::slice::from_raw_parts(base.cast::<T>().offset(v.offset), numel).to_vec() }
    }
    if !v.is_row_major() {
        return Err("a library operand is not row-major".into());
    }
    let base = table[v.buf];
    let shape = IxDyn(&v.shape);
    let e = |e: ndarray::ShapeError| e.to_string();
    // SAFETY: forwarded from the caller.
    unsafe {
        Ok(match dtype {
            DType::F32 => Tensor::F32(ArrayD::from_shape_vec(shape, copy(base, v)).map_err(e)?),
            DType::F64 => Tensor::F64(ArrayD::from_shape_vec(shape, copy(base, v)).map_err(e)?),
            DType::I32 => Tensor::I32(ArrayD::from_shape_vec(shape, copy(base, v)).map_err(e)?),
            DType::Bool => {
                let bytes: Vec<u8> = copy(base, v);
                let bools = bytes.into_iter().map(|b| b != 0).collect();
                Tensor::Bool(ArrayD::from_shape_vec(shape, bools).map_err(e)?)
            }
        })
    }
}

/// Copies a tensor's elements, row-major, to `dst`.
///
/// # Safety
/// `dst` holds `numel` elements of the tensor's dtype.
unsafe fn write_tensor(dst: *mut u8, numel: usize, t: &Tensor) -> Result<(), String> {
    unsafe fn put<T: Copy>(dst: *mut u8, a: &ArrayD<T>) {
        let dst: *mut T = dst.cast();
        match a.as_slice() {
            // SAFETY: the caller checked that the buffer holds this many elements.
            Some(values) => unsafe {
                std::ptr::copy_nonoverlapping(values.as_ptr(), dst, values.len())
            },
            None => {
                for (i, &x) in a.iter().enumerate() {
                    // SAFETY: as above.
                    unsafe { dst.add(i).write(x) };
                }
            }
        }
    }
    if t.shape().iter().product::<usize>() != numel {
        return Err(format!("a result of {} for a buffer of {numel}", t.ty()));
    }
    // SAFETY: forwarded from the caller; the element count was just checked.
    unsafe {
        match t {
            Tensor::F32(a) => put(dst, a),
            Tensor::F64(a) => put(dst, a),
            Tensor::I32(a) => put(dst, a),
            Tensor::Bool(a) => put(dst, a),
        }
    }
    Ok(())
}

/// `[..S, M, K] @ [..S, K, N]`, one gemm call per batch index, reading the operands through
/// their strides.
///
/// # Safety
/// The views lie within their buffers, which hold `dtype` elements; `out` is row-major and
/// overlaps neither operand.
/// The table's addresses, shared by the threads of one step.
#[derive(Clone, Copy)]
struct SharedTable(*const *mut u8);
// SAFETY: the threads of a split kernel (`Compiled::outer`) or of a batch of products write
// disjoint parts of the step's output and only read the rest, and the table outlives them
// (`rayon::scope` joins them).
unsafe impl Send for SharedTable {}
unsafe impl Sync for SharedTable {}

/// Runs `part(p)` for every part `p` of `0..parts` on the threads of the current pool: part `p`
/// always on the thread of index `p` modulo the pool's size. The parts of one step's kernels,
/// products and unfolds follow the batch, so each thread reads what it wrote itself a moment
/// before: from its own cache, rather than from the other core's, which is slow when the two
/// cores of a virtual machine sit on different dies of the host (a round trip of about 330 ns
/// against 70 measured on this machine, as the host moves them): in those periods a two-thread
/// CNN step took 20.0 ms with its parts handed out by work stealing, 17.0 with fixed parts.
fn on_threads(parts: usize, part: &(dyn Fn(usize) + Sync)) {
    rayon::broadcast(|ctx| {
        for p in (ctx.index()..parts).step_by(ctx.num_threads()) {
            part(p);
        }
    });
}

/// Runs a kernel, its outermost loop split into `threads` ranges when it can be and the kernel
/// is large enough to gain from it.
///
/// # Safety
/// The kernel was compiled for the plan whose buffers `table` holds.
unsafe fn run_kernel(kernel: &Compiled, table: &[*mut u8], work: usize, threads: usize) {
    let parts = threads.min(kernel.outer);
    if parts < 2 || work < PARALLEL_KERNEL_WORK {
        // SAFETY: the caller's guarantee; a kernel that can't be split ignores the bounds.
        unsafe { kernel.call(table.as_ptr(), 0, kernel.outer as i64) };
        return;
    }
    let shared = SharedTable(table.as_ptr());
    let n = kernel.outer;
    on_threads(parts, &|part| {
        let (begin, end) = (n * part / parts, n * (part + 1) / parts);
        let table = shared;
        // SAFETY: as above; the ranges are disjoint and cover the loop.
        unsafe { kernel.call(table.0, begin as i64, end as i64) }
    });
}

/// The products `a[s] @ b[s]` of a batch summed into `out` (`[M, N]`, row-major), from zero
/// in batch order: each product into a scratch matrix that stays in cache, then added, so every
/// element is the `sum` the interpreter folds over the stored products. On several threads,
/// each takes a band of the rows of every product (a row's sum never leaves its thread).
///
/// # Safety
/// As [`matmul`]'s, for `[S, M, K] @ [S, K, N]`.
unsafe fn matmul_summed(
    table: &[*mut u8],
    a: &View,
    b: &View,
    out: &View,
    dtype: DType,
    threads: usize,
) {
    match dtype {
        // SAFETY: the caller's guarantee.
        DType::F64 => unsafe { summed_products::<f64>(table, a, b, out, threads) },
        // SAFETY: the caller's guarantee.
        _ => unsafe { summed_products::<f32>(table, a, b, out, threads) },
    }
}

/// [`matmul_summed`] for elements of type `T`.
///
/// # Safety
/// As [`matmul_summed`]'s, and the buffers hold `T`s.
unsafe fn summed_products<T: product::Real + std::ops::Add<Output = T>>(
    table: &[*mut u8],
    a: &View,
    b: &View,
    out: &View,
    threads: usize,
) {
    let (batch, m, k, n) = (a.shape[0], a.shape[1], a.shape[2], b.shape[2]);
    // SAFETY: the views lie within their buffers (the caller's guarantee).
    let at = |v: &View| unsafe { table[v.buf].cast::<T>().offset(v.offset) } as usize;
    // Addresses as numbers, so that the bands' closure can be sent to other threads.
    let (pa, pb) = (at(a), at(b));
    // SAFETY: `out` is a fresh row-major `[M, N]` buffer that no operand reaches.
    let sums = unsafe { std::slice::from_raw_parts_mut(at(out) as *mut T, m * n) };
    sums.fill(T::ZERO);
    if m == 0 || n == 0 {
        return;
    }
    let band = |first_row: usize, band_sums: &mut [T]| {
        let rows = band_sums.len() / n;
        let mut scratch = vec![T::ZERO; rows * n];
        let (lhs, rhs) = (pa as *const T, pb as *const T);
        for s in 0..batch as isize {
            // SAFETY: rows `first_row..first_row + rows` of product `s`'s operands lie within
            // their buffers; the scratch matrix is this band's own.
            unsafe {
                product::product::<T>(
                    rows,
                    n,
                    k,
                    Dest {
                        ptr: scratch.as_mut_ptr(),
                        row_stride: n as isize,
                    },
                    Operand {
                        ptr: lhs.offset(s * a.strides[0] + first_row as isize * a.strides[1]),
                        row_stride: a.strides[1],
                        col_stride: a.strides[2],
                    },
                    Operand {
                        ptr: rhs.offset(s * b.strides[0]),
                        row_stride: b.strides[1],
                        col_stride: b.strides[2],
                    },
                    1,
                )
            };
            for (sum, &p) in band_sums.iter_mut().zip(&scratch) {
                *sum = *sum + p;
            }
        }
    };
    let work = batch * m * n * k;
    let bands = if threads > 1 && work >= PARALLEL_MATMUL_WORK {
        threads.min(m)
    } else {
        1
    };
    if bands == 1 {
        band(0, sums);
        return;
    }
    let rows_per_band = m.div_ceil(bands);
    rayon::scope(|scope| {
        for (i, band_sums) in sums.chunks_mut(rows_per_band * n).enumerate() {
            let band = &band;
            scope.spawn(move |_| band(i * rows_per_band, band_sums));
        }
    });
}

/// # Safety
/// The views lie within the buffers `table` holds, and the output is a fresh buffer that no
/// operand view reaches.
unsafe fn matmul(table: &[*mut u8], a: &View, b: &View, out: &View, dtype: DType, threads: usize) {
    let r = a.shape.len();
    let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let batch = View {
        buf: 0,
        offset: 0,
        shape: a.shape[..r - 2].to_vec(),
        strides: vec![0; r - 2],
    };
    let batch_views = |v: &View| View {
        strides: v.strides[..r - 2].to_vec(),
        offset: v.offset,
        ..batch.clone()
    };
    let (ba, bb, bo) = (batch_views(a), batch_views(b), batch_views(out));
    let products: Vec<[isize; 3]> = view_offsets(&ba)
        .zip(view_offsets(&bb))
        .zip(view_offsets(&bo))
        .map(|((oa, ob), oo)| [oa, ob, oo])
        .collect();
    let size = dtype_size(dtype) as isize;
    let shared = SharedTable(table.as_ptr());
    let multiply = |[oa, ob, oo]: [isize; 3], threads: usize| {
        let table = shared;
        // SAFETY: the offsets are those of the views' matrices, inside their buffers.
        let (pa, pb, po) = unsafe {
            (
                (*table.0.add(a.buf)).offset(oa * size),
                (*table.0.add(b.buf)).offset(ob * size),
                (*table.0.add(out.buf)).offset(oo * size),
            )
        };
        macro_rules! call {
            ($t:ty) => {
                // SAFETY: m×k, k×n and m×n matrices at these addresses with these strides lie
                // within their buffers (the caller's guarantee); the output is fresh.
                unsafe {
                    product::product::<$t>(
                        m,
                        n,
                        k,
                        Dest {
                            ptr: po.cast(),
                            row_stride: n as isize,
                        },
                        Operand {
                            ptr: pa.cast_const().cast(),
                            row_stride: a.strides[r - 2],
                            col_stride: a.strides[r - 1],
                        },
                        Operand {
                            ptr: pb.cast_const().cast(),
                            row_stride: b.strides[r - 2],
                            col_stride: b.strides[r - 1],
                        },
                        threads,
                    )
                }
            };
        }
        match dtype {
            DType::F64 => call!(f64),
            _ => call!(f32),
        }
    };
    let work = products.len() * m * n * k;
    if threads < 2 || products.len() < threads || work < PARALLEL_MATMUL_WORK {
        // `product` splits each product that is large enough over the threads.
        products.into_iter().for_each(|p| multiply(p, threads));
    } else {
        // Many small products (a convolution's, one per image): whole products per thread
        // rather than each one split.
        let per_thread = products.len().div_ceil(threads);
        let parts: Vec<&[[isize; 3]]> = products.chunks(per_thread).collect();
        on_threads(parts.len(), &|p| {
            parts[p].iter().for_each(|&p| multiply(p, 1))
        });
    }
}

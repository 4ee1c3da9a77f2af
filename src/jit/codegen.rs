//! Cranelift code for the plan's kernels: one function per loop nest, `fn(table)`, where
//! `table[b]` is the address of buffer `b` for this run.
//!
//! Adjacent axes that every access walks contiguously are merged, so most kernels are one flat
//! loop. The innermost loop of an f32 kernel whose accesses are contiguous or broadcast runs four
//! lanes at a time (x86-64 Cranelift emits 128-bit vectors), then finishes element by element.
//! Every element is computed with the interpreter's operations in the interpreter's order (no
//! fused multiply-add, folds in index order, `log`/`sin`/`cos` through the same library calls, and
//! the interpreter's own f32 `exp` inlined on vectors), so kernels agree with it bit for bit.

use super::plan::{ExprNode, ExprOp, Fold, Kernel, KernelOut, View, dtype_size};
use super::wide::WideKernel;
use crate::ir::{CmpOp, DType, Op, Prim};
use crate::tensor::math::{self, Math};
use crate::tensor::product::{self, Dest, Operand};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    AbiParam, ConstantData, Endianness, FuncRef, InstBuilder, MemFlagsData, StackSlot,
    StackSlotData, StackSlotKind, Type, UserFuncName, Value, types,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::HashMap;

/// A compiled kernel: reads and writes the buffers whose addresses `table` holds, for the
/// iterations `begin..end` of its outermost loop when it can be split (see [`Compiled`]).
pub type KernelFn = unsafe extern "C" fn(table: *const *mut u8, begin: i64, end: i64);

/// A kernel's code, and the extent of its outermost loop when its iterations write disjoint
/// outputs, so that ranges of them can run on different threads (0 when they can't, or
/// there's no loop: then the bounds are ignored).
pub struct Compiled {
    pub run: KernelFn,
    pub outer: usize,
    /// The lanes its innermost loop computes at once (1: element by element).
    pub lanes: usize,
    /// The kernel on sixteen lanes, which runs instead of `run` when there is one.
    pub wide: Option<WideKernel>,
    /// A kernel that only copies a matrix it reads across its rows (a transposed operand
    /// made once for the products that read it): copied by tiles instead, which `run` does
    /// one strided element at a time.
    pub transpose: Option<Transpose>,
}

/// A `rows`×`cols` copy, from `from` (any strides) into the row-major `to`.
#[derive(Debug)]
pub struct Transpose {
    from: View,
    to: View,
    dtype: DType,
}

impl Transpose {
    /// The copy `k` performs, when it is a copy of a matrix read across its rows.
    fn of(k: &Kernel) -> Option<Transpose> {
        let [load] = k.loads.as_slice() else {
            return None;
        };
        let [out] = k.outs.as_slice() else {
            return None;
        };
        let node = k.expr.get(out.value)?;
        let &[_, cols] = k.space.as_slice() else {
            return None;
        };
        let copies = node.op == ExprOp::Load(0)
            && out.fold.is_none()
            && matches!(node.dtype, DType::F32 | DType::F64);
        let across = matches!(load.strides[..], [_, s] if s != 1);
        let row_major = out.view.strides == [cols as isize, 1];
        (copies && across && row_major).then(|| Transpose {
            from: load.clone(),
            to: out.view.clone(),
            dtype: node.dtype,
        })
    }

    /// Copies rows `begin..end`.
    ///
    /// # Safety
    /// The views lie within the buffers `table` holds, which do not overlap.
    unsafe fn run(&self, table: *const *mut u8, begin: usize, end: usize) {
        let cols = self.to.shape[1];
        macro_rules! copy {
            ($t:ty) => {{
                // SAFETY: rows `begin..end` of both views lie within their buffers (the
                // caller's guarantee).
                unsafe {
                    let from = (*table.add(self.from.buf))
                        .cast::<$t>()
                        .offset(self.from.offset + begin as isize * self.from.strides[0]);
                    let to = (*table.add(self.to.buf))
                        .cast::<$t>()
                        .offset(self.to.offset + (begin * cols) as isize);
                    product::copy_into(
                        Operand {
                            ptr: from.cast_const(),
                            row_stride: self.from.strides[0],
                            col_stride: self.from.strides[1],
                        },
                        end - begin,
                        cols,
                        Dest {
                            ptr: to,
                            row_stride: cols as isize,
                        },
                        1,
                    )
                }
            }};
        }
        match self.dtype {
            DType::F64 => copy!(f64),
            _ => copy!(f32),
        }
    }
}

impl Compiled {
    /// Runs the iterations `begin..end` of the outermost loop (all of them when it can't be
    /// split).
    ///
    /// # Safety
    /// The kernel was compiled for the plan whose buffers `table` holds.
    pub unsafe fn call(&self, table: *const *mut u8, begin: i64, end: i64) {
        match (&self.wide, &self.transpose) {
            // SAFETY: the caller's guarantee; a `WideKernel` exists only with AVX-512.
            (Some(w), _) => unsafe { w.run(table, begin, end, self.outer != 0) },
            // Its outer loop is its rows, so `begin..end` are rows (`compile`).
            // SAFETY: the caller's guarantee.
            (None, Some(t)) => unsafe { t.run(table, begin as usize, end as usize) },
            // SAFETY: the caller's guarantee.
            (None, None) => unsafe { (self.run)(table, begin, end) },
        }
    }
}

/// The machine code of a plan's kernels; freed on drop.
pub struct Code {
    module: Option<JITModule>,
    pub kernels: Vec<Compiled>,
}

impl Drop for Code {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: the function pointers in `kernels` are dropped with `self` and were never
            // handed out beyond it, so no code of this module runs after it is freed.
            unsafe { module.free_memory() };
        }
    }
}

/// Whether the processor fuses multiply-adds on vectors: [`math::exp_f32`]'s steps are then
/// emitted inline, else (x86 before Haswell) its four lanes are one call.
fn vector_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

/// The functions kernels call, those of the primitive table's math primitives: symbol, address,
/// and the type of the argument and result (a pointer, with no result, for the four-lane ones).
fn math_functions() -> Vec<(&'static str, *const u8, Option<Type>)> {
    Prim::ALL
        .iter()
        .filter_map(|p| p.info().math)
        .flat_map(|m| {
            [
                (m.symbol_f32, m.f32 as *const u8, Some(types::F32)),
                (m.symbol_f64, m.f64 as *const u8, Some(types::F64)),
                (m.symbol_f32x4, m.f32x4 as *const u8, None),
            ]
        })
        .collect()
}

fn clif_type(d: DType) -> Type {
    match d {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I32 => types::I32,
        DType::Bool => types::I8,
    }
}

fn float_cc(c: CmpOp) -> FloatCC {
    match c {
        CmpOp::Eq => FloatCC::Equal,
        CmpOp::Ne => FloatCC::NotEqual,
        CmpOp::Lt => FloatCC::LessThan,
        CmpOp::Le => FloatCC::LessThanOrEqual,
        CmpOp::Gt => FloatCC::GreaterThan,
        CmpOp::Ge => FloatCC::GreaterThanOrEqual,
    }
}

fn int_cc(c: CmpOp, signed: bool) -> IntCC {
    match (c, signed) {
        (CmpOp::Eq, _) => IntCC::Equal,
        (CmpOp::Ne, _) => IntCC::NotEqual,
        (CmpOp::Lt, true) => IntCC::SignedLessThan,
        (CmpOp::Le, true) => IntCC::SignedLessThanOrEqual,
        (CmpOp::Gt, true) => IntCC::SignedGreaterThan,
        (CmpOp::Ge, true) => IntCC::SignedGreaterThanOrEqual,
        (CmpOp::Lt, false) => IntCC::UnsignedLessThan,
        (CmpOp::Le, false) => IntCC::UnsignedLessThanOrEqual,
        (CmpOp::Gt, false) => IntCC::UnsignedGreaterThan,
        (CmpOp::Ge, false) => IntCC::UnsignedGreaterThanOrEqual,
    }
}

/// Compiles every kernel into one module; `name` prefixes the functions' symbols (which
/// profilers show).
pub fn compile(kernels: &[&Kernel], name: &str) -> Result<Code, String> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
    let isa = cranelift_native::builder()
        .map_err(|e| {
            format!("the JIT does not support this machine ({e}); run with `--backend interp`")
        })?
        .finish(settings::Flags::new(flags))
        .map_err(|e| e.to_string())?;
    let mut jit = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
    for (name, address, _) in math_functions() {
        jit.symbol(name, address);
    }
    let mut module = JITModule::new(jit);
    let mut math = HashMap::new();
    let pointer = module.target_config().pointer_type();
    for (name, _, ty) in math_functions() {
        let mut sig = module.make_signature();
        match ty {
            Some(ty) => {
                sig.params.push(AbiParam::new(ty));
                sig.returns.push(AbiParam::new(ty));
            }
            None => sig.params.push(AbiParam::new(pointer)),
        }
        let id = module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| e.to_string())?;
        math.insert(name, id);
    }
    let mut ctx = module.make_context();
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut ids = Vec::new();
    let mut shapes = Vec::new();
    let mut wide = Vec::new();
    let transposes: Vec<Option<Transpose>> = kernels.iter().map(|k| Transpose::of(k)).collect();
    for (n, kernel) in kernels.iter().enumerate() {
        let dtypes = access_dtypes(kernel);
        let (lay, _) = plan_layout(kernel, &dtypes, fold_out(kernel)?);
        wide.push(match WideKernel::assemble(kernel, &lay, &dtypes) {
            Some(assembled) => {
                let mut sig = module.make_signature();
                sig.params.extend([AbiParam::new(pointer); 4]);
                let id = module
                    .declare_function(&format!("{name}.k{n}.wide"), Linkage::Local, &sig)
                    .map_err(|e| e.to_string())?;
                module
                    .define_function_bytes(id, 64, &assembled.code, &[])
                    .map_err(|e| format!("placing kernel {n}'s sixteen-lane code: {e:?}"))?;
                Some((assembled, id))
            }
            None => None,
        });
        ctx.func.signature.params.push(AbiParam::new(pointer));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        ctx.func.signature.params.push(AbiParam::new(types::I64));
        let id = module
            .declare_function(&format!("{name}.k{n}"), Linkage::Local, &ctx.func.signature)
            .map_err(|e| e.to_string())?;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        let builder = FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
        shapes.push(Emitter::new(builder, &mut module, &math, kernel, pointer)?.emit());
        module
            .define_function(id, &mut ctx)
            .map_err(|e| format!("compiling kernel {n}: {e:?}"))?;
        module.clear_context(&mut ctx);
        ids.push(id);
    }
    module.finalize_definitions().map_err(|e| e.to_string())?;
    let kernels = ids
        .iter()
        .zip(shapes)
        .zip(wide)
        .zip(transposes)
        .map(|(((&id, (outer, lanes)), wide), transpose)| {
            let code = module.get_finalized_function(id);
            // SAFETY: `code` is a finalized function compiled with the signature
            // `fn(pointer, i64, i64)`, the platform's C calling convention, which `KernelFn` is.
            let run = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
            let lanes = if wide.is_some() { 16 } else { lanes };
            let wide = wide.map(|(assembled, id)| {
                let address = module.get_finalized_function(id);
                // SAFETY: `address` holds the assembled code, finalized as executable, and the
                // module outlives the kernels (`Code`).
                unsafe { assembled.placed_at(address) }
            });
            // A copy by tiles splits between threads by its rows, whatever the loops' order.
            let outer = match (&wide, &transpose) {
                (None, Some(t)) => t.to.shape[0],
                _ => outer,
            };
            Compiled {
                run,
                outer,
                lanes,
                wide,
                transpose,
            }
        })
        .collect();
    Ok(Code {
        module: Some(module),
        kernels,
    })
}

/// A kernel's loops after merging axes: the extents, and the strides in bytes of each group of
/// accesses that walk them alike (they share one offset per loop level).
pub(super) struct Layout {
    pub dims: Vec<usize>,
    pub strides: Vec<Vec<i64>>,
    /// The group of each access (the loads, then the outputs).
    pub group: Vec<usize>,
    /// Short reduced axes taken out of the loop nest and unrolled in its body (a pooling
    /// window): their extents, and each group's strides along them.
    pub unrolled: Vec<usize>,
    pub unrolled_strides: Vec<Vec<i64>>,
    /// How many of the innermost unrolled axes make up the trailing run of the fold.
    run_unrolled: usize,
    /// The first looped dimension of the fold's trailing run, when the run is looped.
    run_start: Option<usize>,
    /// Per group: loads that repeat each element `period` times along the innermost loop
    /// (`period`, and the bytes between the elements); their stride there is the average,
    /// which is exact at multiples of the period only.
    pub repeat: Vec<Repeat>,
}

/// How a load repeats along the innermost loop: its period and the bytes between its elements.
type Repeat = Option<(usize, i64)>;

impl Layout {
    /// The index along each unrolled axis of the body's unrolled position `p` (row-major).
    pub fn unrolled_index(&self, p: usize) -> Vec<usize> {
        let mut rest = p;
        let mut index = vec![0; self.unrolled.len()];
        for (i, &n) in index.iter_mut().zip(&self.unrolled).rev() {
            *i = rest % n;
            rest /= n;
        }
        index
    }

    /// The unrolled positions of the fold's trailing run: every so many, its partial results
    /// are combined and folded into the result.
    pub fn run_len(&self) -> usize {
        self.unrolled[self.unrolled.len() - self.run_unrolled..]
            .iter()
            .product()
    }
}

/// The most elements a kernel body folds unrolled.
const UNROLLED_WINDOW: usize = 16;

/// The dtype of every access of a kernel: its loads (as the expression reads them), then its
/// outputs.
fn access_dtypes(k: &Kernel) -> Vec<DType> {
    let mut dtypes = vec![DType::F32; k.loads.len()];
    for node in &k.expr {
        if let ExprOp::Load(i) = node.op {
            dtypes[i] = node.dtype;
        }
    }
    dtypes.extend(k.outs.iter().map(|o| k.expr[o.value].dtype));
    dtypes
}

/// The kernel's fold output, if any (a kernel folds at most one value).
fn fold_out(k: &Kernel) -> Result<Option<usize>, String> {
    let mut folds = k.outs.iter().enumerate().filter(|(_, o)| o.fold.is_some());
    match (folds.next(), folds.next()) {
        (None, _) => Ok(None),
        (Some((i, _)), None) => Ok(Some(k.loads.len() + i)),
        _ => Err("internal error: a kernel with two folds".into()),
    }
}

/// The layout, and how its innermost loop runs on vectors. A loop nest whose innermost axis is
/// short (2 or 4) and broadcast in some f32 loads (a pooling window's gradient, read once per
/// window element) is merged with the axis outside it when that makes a vector loop: those
/// loads then repeat each element along the merged axis.
fn plan_layout(k: &Kernel, dtypes: &[DType], fold: Option<usize>) -> (Layout, Vectors) {
    let sizes: Vec<usize> = dtypes.iter().map(|&d| dtype_size(d)).collect();
    let merged = layout(k, &sizes, dtypes, fold, true);
    let v = vectors(k, &merged, dtypes, fold);
    if merged.repeat.iter().all(Option::is_none) || v == Vectors::Lanes {
        return (merged, v);
    }
    let plain = layout(k, &sizes, dtypes, fold, false);
    let v = vectors(k, &plain, dtypes, fold);
    (plain, v)
}

fn layout(
    k: &Kernel,
    sizes: &[usize],
    dtypes: &[DType],
    fold: Option<usize>,
    repeats: bool,
) -> Layout {
    let accesses: Vec<&[isize]> = k
        .loads
        .iter()
        .map(|v| v.strides.as_slice())
        .chain(k.outs.iter().map(|o| o.view.strides.as_slice()))
        .collect();
    let bytes = |a: usize, d: usize| accesses[a][d] as i64 * sizes[a] as i64;
    let has_index = k.expr.iter().any(|n| matches!(n.op, ExprOp::Index(_)));
    let mut dims: Vec<usize> = Vec::new();
    let mut strides: Vec<Vec<i64>> = vec![Vec::new(); accesses.len()];
    for (d, &n) in k.space.iter().enumerate() {
        // An index reads each axis's own position, so its kernels keep their axes as they are.
        if has_index {
            dims.push(n);
            for (a, s) in strides.iter_mut().enumerate() {
                s.push(bytes(a, d));
            }
            continue;
        }
        if n == 1 {
            continue;
        }
        let mergeable = dims.last().is_some()
            && strides
                .iter()
                .enumerate()
                .all(|(a, s)| *s.last().expect("same rank") == bytes(a, d) * n as i64);
        if mergeable {
            *dims.last_mut().expect("checked") *= n;
            for (a, s) in strides.iter_mut().enumerate() {
                *s.last_mut().expect("checked") = bytes(a, d);
            }
        } else {
            dims.push(n);
            for (a, s) in strides.iter_mut().enumerate() {
                s.push(bytes(a, d));
            }
        }
    }
    let mut repeat: Vec<Repeat> = vec![None; accesses.len()];
    if repeats && fold.is_none() && !has_index && dims.len() >= 2 {
        let (o, i) = (dims.len() - 2, dims.len() - 1);
        let period = dims[i];
        let regular = |a: usize| strides[a][o] == strides[a][i] * period as i64;
        let repeated = |a: usize| {
            a < k.loads.len() && dtypes[a] == DType::F32 && strides[a][i] == 0 && strides[a][o] != 0
        };
        let all_fit = (0..accesses.len()).all(|a| regular(a) || repeated(a));
        let is_regular: Vec<bool> = (0..accesses.len()).map(regular).collect();
        if period > 1 && LANES.is_multiple_of(period) && all_fit && is_regular.contains(&false) {
            for (a, s) in strides.iter_mut().enumerate() {
                let inner = s.pop().expect("two levels");
                let outer = s.last_mut().expect("two levels");
                if is_regular[a] {
                    *outer = inner;
                } else {
                    repeat[a] = Some((period, *outer));
                    *outer /= period as i64;
                }
            }
            dims.pop();
            *dims.last_mut().expect("two levels") *= period;
        }
    }
    // The fold's trailing run: the innermost dimensions it reduces. A short one leaves the loop
    // nest with the short reduced dimensions around it (a pooling window), to be folded in
    // straight-line code.
    let reduced = |d: usize| fold.is_some_and(|f| strides[f][d] == 0);
    let run = (0..dims.len()).rev().take_while(|&d| reduced(d)).count();
    let mut unrolled = Vec::new();
    let mut run_start = None;
    if run > 0 {
        let run_len: usize = dims[dims.len() - run..].iter().product();
        if run_len <= UNROLLED_WINDOW && !has_index {
            let mut window = 1;
            for d in (0..dims.len()).rev() {
                if !reduced(d) {
                    continue;
                }
                if window * dims[d] > UNROLLED_WINDOW {
                    break;
                }
                window *= dims[d];
                unrolled.insert(0, d);
            }
        } else {
            run_start = Some(dims.len() - run);
        }
    }
    let split = |s: Vec<i64>| -> (Vec<i64>, Vec<i64>) {
        let looped = (0..s.len()).filter(|d| !unrolled.contains(d)).map(|d| s[d]);
        (looped.collect(), unrolled.iter().map(|&d| s[d]).collect())
    };
    let mut groups: Vec<(Vec<i64>, Repeat)> = Vec::new();
    let group = strides
        .into_iter()
        .zip(&repeat)
        .map(
            |(s, &r)| match groups.iter().position(|g| g.0 == s && g.1 == r) {
                Some(g) => g,
                None => {
                    groups.push((s, r));
                    groups.len() - 1
                }
            },
        )
        .collect();
    let repeat = groups.iter().map(|g| g.1).collect();
    let (strides, unrolled_strides) = groups.into_iter().map(|g| split(g.0)).unzip();
    let extents: Vec<usize> = unrolled.iter().map(|&d| dims[d]).collect();
    let extents_empty = extents.is_empty();
    let dims = (0..dims.len())
        .filter(|d| !unrolled.contains(d))
        .map(|d| dims[d])
        .collect();
    Layout {
        dims,
        strides,
        group,
        unrolled: extents,
        unrolled_strides,
        run_unrolled: if extents_empty { 0 } else { run },
        run_start,
        repeat,
    }
}

/// How a kernel's innermost loop runs on vectors.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Vectors {
    /// Element by element.
    None,
    /// Four independent positions at a time.
    Lanes,
    /// The fold's trailing run, eight partial results at a time (two vectors).
    Run,
}

/// The lanes a kernel's innermost loop computes at once (for the planner's merge decisions and
/// listings): 4, or 1 when it runs element by element.
pub fn vector_lanes(k: &Kernel) -> usize {
    let dtypes = access_dtypes(k);
    let Ok(fold) = fold_out(k) else {
        return 1;
    };
    match plan_layout(k, &dtypes, fold).1 {
        Vectors::None => 1,
        Vectors::Lanes | Vectors::Run => LANES,
    }
}

/// Whether and how the innermost loop runs on vectors: every access is an f32 (or a bool,
/// contiguous) and contiguous, broadcast or (f32) strided along it, and every node has a vector
/// form.
fn vectors(k: &Kernel, lay: &Layout, dtypes: &[DType], fold: Option<usize>) -> Vectors {
    let Some(last) = lay.dims.len().checked_sub(1) else {
        return Vectors::None;
    };
    let stride = |a: usize| lay.strides[lay.group[a]][last];
    let lanes_fit = |a: usize, is_load: bool| {
        let s = stride(a);
        if lay.repeat[lay.group[a]].is_some() {
            return true;
        }
        match dtypes[a] {
            DType::F32 => s != 0 || is_load,
            DType::Bool => s == 1 || is_load && s == 0,
            _ => false,
        }
    };
    let nodes_ok = k.expr.iter().all(|n| match (&n.op, n.dtype) {
        (ExprOp::Load(_), DType::F32 | DType::Bool) | (ExprOp::Const(_), DType::F32) => true,
        (ExprOp::Op(Op::Cmp(_)), DType::Bool) => k.expr[n.args[0]].dtype == DType::F32,
        (ExprOp::Op(Op::And | Op::Or | Op::Not), DType::Bool) => true,
        (ExprOp::Op(Op::Cast { .. }), DType::F32 | DType::Bool) => {
            matches!(k.expr[n.args[0]].dtype, DType::F32 | DType::Bool)
        }
        (ExprOp::Op(op), DType::F32) => {
            op.primitive().math.is_some()
                || matches!(
                    op,
                    Op::Neg
                        | Op::Sqrt
                        | Op::Detach
                        | Op::Add
                        | Op::Sub
                        | Op::Mul
                        | Op::Div
                        | Op::Max
                        | Op::Min
                        | Op::Select
                )
        }
        _ => false,
    });
    let loads_ok = (0..k.loads.len()).all(|a| lanes_fit(a, true));
    let plain_ok = (k.loads.len()..dtypes.len())
        .filter(|&a| Some(a) != fold)
        .all(|a| lanes_fit(a, false));
    if !(nodes_ok && loads_ok && plain_ok) {
        return Vectors::None;
    }
    match fold {
        None => Vectors::Lanes,
        Some(f) if dtypes[f] != DType::F32 => Vectors::None,
        Some(f) => match lay.run_start {
            Some(start) if start == last => Vectors::Run,
            Some(_) => Vectors::None,
            // Lanes of independent results: the fold's output is contiguous along the loop.
            None if stride(f) == 4 => Vectors::Lanes,
            None => Vectors::None,
        },
    }
}

struct Emitter<'a, 'm> {
    b: FunctionBuilder<'a>,
    module: &'m mut JITModule,
    math: &'m HashMap<&'static str, FuncId>,
    math_refs: HashMap<&'static str, FuncRef>,
    /// Where four lanes go through a call.
    lanes_slot: Option<StackSlot>,
    k: &'m Kernel,
    pointer: Type,
    /// The dtype of each access (the loads, then the outputs).
    dtypes: Vec<DType>,
    /// The access that folds, if any.
    fold: Option<usize>,
    lay: Layout,
    vectors: Vectors,
    /// Each access's base address.
    bases: Vec<Value>,
    /// The index variable of each loop level.
    index: Vec<Variable>,
    /// The bounds of the outermost loop, when it can be split between threads.
    range: Option<(Value, Value)>,
}

/// How far a loop runs: a count known when compiling, or the outermost loop's `end` argument.
#[derive(Clone, Copy)]
enum Limit {
    Fixed(usize),
    Until(Value),
}

const FLAGS: MemFlagsData = MemFlagsData::new().with_notrap();
const LANES: usize = 4;
/// The lanes whose partial results `tree` combines first (the sixteen-lane code follows it).
pub(super) const FOLD_LANES: usize = LANES;
/// The partial results of a fold's run (see `plan::KernelOut`).
pub(super) const PARTIALS: usize = 8;

impl<'a, 'm> Emitter<'a, 'm> {
    fn new(
        b: FunctionBuilder<'a>,
        module: &'m mut JITModule,
        math: &'m HashMap<&'static str, FuncId>,
        k: &'m Kernel,
        pointer: Type,
    ) -> Result<Self, String> {
        let dtypes = access_dtypes(k);
        let fold = fold_out(k)?;
        let (lay, vectors) = plan_layout(k, &dtypes, fold);
        Ok(Emitter {
            b,
            module,
            math,
            math_refs: HashMap::new(),
            lanes_slot: None,
            k,
            pointer,
            dtypes,
            fold,
            lay,
            vectors,
            bases: Vec::new(),
            index: Vec::new(),
            range: None,
        })
    }

    /// The output of access `a` (an access past the loads).
    fn output(&self, a: usize) -> &KernelOut {
        &self.k.outs[a - self.k.loads.len()]
    }

    fn fold_kind(&self) -> Fold {
        let f = self.fold.expect("a fold");
        self.output(f).fold.expect("a fold")
    }

    /// Whether the outermost loop's iterations write disjoint outputs: not when it runs along
    /// an axis the fold reduces.
    fn splittable(&self) -> bool {
        let repeats = self.lay.repeat.iter().any(Option::is_some);
        !self.lay.dims.is_empty()
            && self.fold.is_none_or(|f| self.stride(f, 0) != 0)
            && !(repeats && self.lay.dims.len() == 1)
    }

    /// Emits the kernel; the extent of its outermost loop if it can be split (else 0), and its
    /// vector width.
    fn emit(mut self) -> (usize, usize) {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let params = self.b.block_params(entry).to_vec();
        let table = params[0];
        let outer = if self.splittable() && !self.k.space.contains(&0) {
            self.range = Some((params[1], params[2]));
            self.lay.dims[0]
        } else {
            0
        };
        let views = self
            .k
            .loads
            .iter()
            .chain(self.k.outs.iter().map(|o| &o.view));
        let mut bases = Vec::new();
        for (view, &dtype) in views.zip(&self.dtypes) {
            let slot = (view.buf * self.pointer.bytes() as usize) as i32;
            let base = self.b.ins().load(self.pointer, FLAGS, table, slot);
            let offset = view.offset as i64 * dtype_size(dtype) as i64;
            bases.push(self.b.ins().iadd_imm_s(base, offset));
        }
        self.bases = bases;
        if !self.k.space.contains(&0) {
            if self.fold.is_some() {
                self.fill_fold_start();
            }
            let zero = self.b.ins().iconst(types::I64, 0);
            let start = vec![zero; self.lay.strides.len()];
            self.level(0, &start);
        }
        self.b.ins().return_(&[]);
        self.b.seal_all_blocks();
        let config = self.module.target_config();
        self.b.finalize(config);
        let lanes = match self.vectors {
            Vectors::None => 1,
            Vectors::Lanes | Vectors::Run => LANES,
        };
        (outer, lanes)
    }

    /// The fold's start: 0 for sums, the smallest value for maxima.
    fn identity(&mut self, dtype: DType) -> Value {
        let start = match (self.fold_kind(), dtype) {
            (Fold::Sum, _) => 0.0,
            (Fold::Max, DType::I32) => f64::from(i32::MIN),
            (Fold::Max, _) => f64::NEG_INFINITY,
        };
        self.constant(start, dtype)
    }

    /// Sets every element of the fold's (fresh, row-major) output to the fold's start: the
    /// rows of this run's range of the outermost loop, which is then the output's first axis.
    fn fill_fold_start(&mut self) {
        let f = self.fold.expect("a fold");
        let view = &self.output(f).view;
        let numel: usize = self
            .k
            .space
            .iter()
            .zip(&view.strides)
            .filter(|&(_, &s)| s != 0)
            .map(|(&n, _)| n)
            .product();
        let dtype = self.dtypes[f];
        let size = dtype_size(dtype) as i64;
        let counter = self.b.declare_var(types::I64);
        let offset = self.b.declare_var(types::I64);
        let limit = match self.range {
            Some((begin, end)) => {
                let row = self.stride(f, 0) / size;
                let first = self.b.ins().imul_imm_s(begin, row);
                let last = self.b.ins().imul_imm_s(end, row);
                let bytes = self.b.ins().imul_imm_s(first, size);
                self.b.def_var(counter, first);
                self.b.def_var(offset, bytes);
                Limit::Until(last)
            }
            None => {
                let zero = self.b.ins().iconst(types::I64, 0);
                self.b.def_var(counter, zero);
                self.b.def_var(offset, zero);
                Limit::Fixed(numel)
            }
        };
        self.counted_loop(counter, &[(offset, size)], 1, limit, &mut |e, offs| {
            let value = e.identity(dtype);
            let base = e.bases[f];
            let address = e.b.ins().iadd(base, offs[0]);
            e.b.ins().store(FLAGS, value, address, 0);
        });
    }

    /// `for (; i + step <= limit; i += step)` from the counter's value, advancing each
    /// `(offset, stride)` by `stride · step` per iteration; `body` gets the offsets' current
    /// values.
    fn counted_loop(
        &mut self,
        counter: Variable,
        offsets: &[(Variable, i64)],
        step: usize,
        limit: Limit,
        body: &mut dyn FnMut(&mut Self, &[Value]),
    ) {
        if matches!(limit, Limit::Fixed(n) if n < step) {
            return;
        }
        let header = self.b.create_block();
        let inside = self.b.create_block();
        let exit = self.b.create_block();
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(header);
        let i = self.b.use_var(counter);
        let more = match limit {
            Limit::Fixed(n) => {
                self.b
                    .ins()
                    .icmp_imm_s(IntCC::UnsignedLessThanOrEqual, i, (n - step) as i64)
            }
            Limit::Until(end) => {
                let next = self.b.ins().iadd_imm_s(i, step as i64);
                self.b.ins().icmp(IntCC::SignedLessThanOrEqual, next, end)
            }
        };
        self.b.ins().brif(more, inside, &[], exit, &[]);
        self.b.switch_to_block(inside);
        let current: Vec<Value> = offsets.iter().map(|&(v, _)| self.b.use_var(v)).collect();
        body(self, &current);
        for (&(var, stride), &value) in offsets.iter().zip(&current) {
            let next = self.b.ins().iadd_imm_s(value, stride * step as i64);
            self.b.def_var(var, next);
        }
        let i = self.b.use_var(counter);
        let next = self.b.ins().iadd_imm_s(i, step as i64);
        self.b.def_var(counter, next);
        self.b.ins().jump(header, &[]);
        self.b.switch_to_block(exit);
    }

    /// A loop counter and one offset per group for level `d`, starting at `start` (shifted to
    /// the range's beginning for the split outermost loop); the loop's limit.
    fn loop_vars(&mut self, d: usize, start: &[Value]) -> (Variable, Vec<(Variable, i64)>, Limit) {
        let n = self.lay.dims[d];
        let counter = self.b.declare_var(types::I64);
        // The outermost loop of a split kernel runs over its range; every other loop over all.
        let (first, limit) = match self.range {
            Some((begin, end)) if d == 0 => (Some(begin), Limit::Until(end)),
            _ => (None, Limit::Fixed(n)),
        };
        let first_index = match first {
            Some(begin) => begin,
            None => self.b.ins().iconst(types::I64, 0),
        };
        self.b.def_var(counter, first_index);
        let offsets = start
            .iter()
            .enumerate()
            .map(|(g, &s)| {
                let var = self.b.declare_var(types::I64);
                let stride = self.lay.strides[g][d];
                let s = match first {
                    Some(begin) => {
                        let skipped = self.b.ins().imul_imm_s(begin, stride);
                        self.b.ins().iadd(s, skipped)
                    }
                    None => s,
                };
                self.b.def_var(var, s);
                (var, stride)
            })
            .collect();
        (counter, offsets, limit)
    }

    /// The loops from level `d` inward, each group of accesses starting at `start` (bytes).
    fn level(&mut self, d: usize, start: &[Value]) {
        if d == self.lay.dims.len() {
            self.scalar_body(start);
            return;
        }
        if self.lay.run_start == Some(d) {
            self.run(d, start);
            return;
        }
        let inner = d + 1 == self.lay.dims.len();
        let (counter, offsets, limit) = self.loop_vars(d, start);
        self.index.push(counter);
        if inner {
            if self.vectors == Vectors::Lanes {
                self.counted_loop(counter, &offsets, LANES, limit, &mut |e, offs| {
                    e.vector_body(offs)
                });
            }
            if self.lay.repeat.iter().any(Option::is_some) {
                // Repeating loads have no per-element stride: the tail (fewer than four
                // elements, the extent being fixed) is unrolled at known offsets.
                let n = self.lay.dims[d];
                let at: Vec<Value> = offsets.iter().map(|&(v, _)| self.b.use_var(v)).collect();
                for r in 0..n % LANES {
                    let here = self.tail_offsets(&at, d, r);
                    self.scalar_body(&here);
                }
            } else {
                self.counted_loop(counter, &offsets, 1, limit, &mut |e, offs| {
                    e.scalar_body(offs)
                });
            }
        } else {
            self.counted_loop(counter, &offsets, 1, limit, &mut |e, offs| {
                e.level(d + 1, offs)
            });
        }
        self.index.pop();
    }

    /// The fold's trailing run, looped from level `d` to the innermost: eight partial results
    /// (two vectors, or a stack slot element by element), combined by the tree, folded into the
    /// output.
    fn run(&mut self, d: usize, start: &[Value]) {
        let f = self.fold.expect("a run belongs to a fold");
        let dtype = self.dtypes[f];
        let total = if self.vectors == Vectors::Run {
            self.vector_run(d, start)
        } else {
            self.scalar_run(d, start)
        };
        let address = self.address(f, start);
        let old = self.b.ins().load(clif_type(dtype), FLAGS, address, 0);
        let new = self.fold(old, total, dtype, false);
        self.b.ins().store(FLAGS, new, address, 0);
    }

    /// The run on two vectors of partial results; returns the combined value.
    fn vector_run(&mut self, d: usize, start: &[Value]) -> Value {
        let f = self.fold.expect("a fold");
        let n = self.lay.dims[d];
        let (counter, offsets, _) = self.loop_vars(d, start);
        self.index.push(counter);
        let identity = self.identity(DType::F32);
        let identity = self.b.ins().splat(types::F32X4, identity);
        let accs = [
            self.b.declare_var(types::F32X4),
            self.b.declare_var(types::F32X4),
        ];
        for acc in accs {
            self.b.def_var(acc, identity);
        }
        let value = self.output(f).value;
        let limit = Limit::Fixed(n - n % PARTIALS);
        self.counted_loop(counter, &offsets, PARTIALS, limit, &mut |e, offs| {
            for (half, acc) in accs.into_iter().enumerate() {
                let at = e.shifted(offs, d, half * LANES);
                let values = e.vector_values(&at);
                e.store_vector_outputs(&values, &at);
                let old = e.b.use_var(acc);
                let new = e.fold(old, values[value], DType::F32, true);
                e.b.def_var(acc, new);
            }
        });
        let at: Vec<Value> = offsets.iter().map(|&(v, _)| self.b.use_var(v)).collect();
        let mut rest = n % PARTIALS;
        let mut lane_base = 0;
        let mut target = accs[0];
        if rest >= LANES {
            let values = self.vector_values(&at);
            self.store_vector_outputs(&values, &at);
            let old = self.b.use_var(accs[0]);
            let new = self.fold(old, values[value], DType::F32, true);
            self.b.def_var(accs[0], new);
            rest -= LANES;
            lane_base = LANES;
            target = accs[1];
        }
        for i in 0..rest {
            let here = self.shifted(&at, d, lane_base + i);
            let values = self.scalar_values(&here);
            self.store_scalar_outputs(&values, &here);
            let acc = self.b.use_var(target);
            let lane = self.b.ins().extractlane(acc, i as u8);
            let lane = self.fold(lane, values[value], DType::F32, false);
            let acc = self.b.ins().insertlane(acc, lane, i as u8);
            self.b.def_var(target, acc);
        }
        self.index.pop();
        let (a, b) = (self.b.use_var(accs[0]), self.b.use_var(accs[1]));
        let pairs = self.fold(a, b, DType::F32, true);
        let lanes: Vec<Value> = (0..LANES as u8)
            .map(|l| self.b.ins().extractlane(pairs, l))
            .collect();
        let low = self.fold(lanes[0], lanes[1], DType::F32, false);
        let high = self.fold(lanes[2], lanes[3], DType::F32, false);
        self.fold(low, high, DType::F32, false)
    }

    /// The run element by element, its partial results in a stack slot indexed by the
    /// position in the run modulo eight; returns the combined value.
    fn scalar_run(&mut self, d: usize, start: &[Value]) -> Value {
        let f = self.fold.expect("a fold");
        let dtype = self.dtypes[f];
        let size = dtype_size(dtype) as u32;
        let data = StackSlotData::new(StackSlotKind::ExplicitSlot, size * PARTIALS as u32, 3);
        let slot = self.b.create_sized_stack_slot(data);
        let identity = self.identity(dtype);
        for p in 0..PARTIALS {
            self.b
                .ins()
                .stack_store(self.pointer, identity, slot, (p as u32 * size) as i32);
        }
        let position = self.b.declare_var(types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(position, zero);
        self.run_level(d, start, slot, position);
        let partials: Vec<Value> = (0..PARTIALS)
            .map(|p| {
                self.b.ins().stack_load(
                    self.pointer,
                    clif_type(dtype),
                    slot,
                    (p as u32 * size) as i32,
                )
            })
            .collect();
        self.tree(
            &partials.into_iter().map(Some).collect::<Vec<_>>(),
            dtype,
            false,
        )
        .expect("eight partial results")
    }

    fn run_level(&mut self, d: usize, start: &[Value], slot: StackSlot, position: Variable) {
        let (counter, offsets, limit) = self.loop_vars(d, start);
        self.index.push(counter);
        let inner = d + 1 == self.lay.dims.len();
        self.counted_loop(counter, &offsets, 1, limit, &mut |e, offs| {
            if inner {
                let f = e.fold.expect("a fold");
                let dtype = e.dtypes[f];
                let values = e.scalar_values(offs);
                e.store_scalar_outputs(&values, offs);
                let p = e.b.use_var(position);
                let lane = e.b.ins().band_imm_s(p, (PARTIALS - 1) as i64);
                let bytes = e.b.ins().imul_imm_s(lane, dtype_size(dtype) as i64);
                let base = e.b.ins().stack_addr(e.pointer, slot, 0);
                let address = e.b.ins().iadd(base, bytes);
                let old = e.b.ins().load(clif_type(dtype), FLAGS, address, 0);
                let x = values[e.output(f).value];
                let new = e.fold(old, x, dtype, false);
                e.b.ins().store(FLAGS, new, address, 0);
                let next = e.b.ins().iadd_imm_s(p, 1);
                e.b.def_var(position, next);
            } else {
                e.run_level(d + 1, offs, slot, position);
            }
        });
        self.index.pop();
    }

    /// Combines partial results as ((p0·p4)·(p1·p5))·((p2·p6)·(p3·p7)); an absent one is the
    /// fold's start, which changes nothing it is combined with.
    fn tree(&mut self, p: &[Option<Value>], dtype: DType, vector: bool) -> Option<Value> {
        let combine = |e: &mut Self, a: Option<Value>, b: Option<Value>| match (a, b) {
            (Some(a), Some(b)) => Some(e.fold(a, b, dtype, vector)),
            (a, b) => a.or(b),
        };
        let at = |i: usize| p.get(i).copied().flatten();
        let q: Vec<Option<Value>> = (0..LANES)
            .map(|l| combine(self, at(l), at(l + LANES)))
            .collect();
        let low = combine(self, q[0], q[1]);
        let high = combine(self, q[2], q[3]);
        combine(self, low, high)
    }

    /// The offsets of element `r` after a whole number of vectors along level `d` (a repeating
    /// load's offset moves once per period).
    fn tail_offsets(&mut self, at: &[Value], d: usize, r: usize) -> Vec<Value> {
        at.iter()
            .enumerate()
            .map(|(g, &o)| {
                let delta = match self.lay.repeat[g] {
                    Some((period, bytes)) => (r / period) as i64 * bytes,
                    None => self.lay.strides[g][d] * r as i64,
                };
                if delta == 0 {
                    o
                } else {
                    self.b.ins().iadd_imm_s(o, delta)
                }
            })
            .collect()
    }

    /// Offsets moved `steps` positions along level `d`.
    fn shifted(&mut self, offsets: &[Value], d: usize, steps: usize) -> Vec<Value> {
        offsets
            .iter()
            .enumerate()
            .map(|(g, &o)| {
                let delta = self.lay.strides[g][d] * steps as i64;
                if delta == 0 {
                    o
                } else {
                    self.b.ins().iadd_imm_s(o, delta)
                }
            })
            .collect()
    }

    fn fold(&mut self, acc: Value, x: Value, dtype: DType, vector: bool) -> Value {
        match (self.fold_kind(), dtype) {
            (Fold::Sum, DType::I32) => self.b.ins().iadd(acc, x),
            (Fold::Sum, _) => self.b.ins().fadd(acc, x),
            (Fold::Max, DType::I32) => self.b.ins().smax(acc, x),
            (Fold::Max, _) => self.float_pick(FloatCC::GreaterThan, acc, x, vector),
        }
    }

    /// `a` where `a cc b` or `a` is NaN, else `b`: the interpreter's `max` and `min`. On
    /// vectors, the processor's own `max`/`min` (which gives `b` where either is NaN) and a
    /// blend of `a` where it is NaN: three instructions, where a mask of two comparisons and a
    /// bit select take six. (Cranelift emits `maxps`/`minps` for a bit select by exactly the
    /// comparison `b < a` / `a < b` between the two operands.)
    fn float_pick(&mut self, cc: FloatCC, a: Value, b: Value, vector: bool) -> Value {
        if vector {
            let a_wins = match cc {
                FloatCC::GreaterThan => self.b.ins().fcmp(FloatCC::LessThan, b, a),
                FloatCC::LessThan => self.b.ins().fcmp(FloatCC::LessThan, a, b),
                other => unreachable!("`{other}` picks neither the larger nor the smaller"),
            };
            let a_wins = self.as_f32x4(a_wins);
            let picked = self.b.ins().bitselect(a_wins, a, b);
            let nan = self.b.ins().fcmp(FloatCC::Unordered, a, a);
            return self.lane_select(nan, a, picked);
        }
        let wins = self.b.ins().fcmp(cc, a, b);
        let nan = self.b.ins().fcmp(FloatCC::Unordered, a, a);
        let take_a = self.b.ins().bor(wins, nan);
        self.b.ins().select(take_a, a, b)
    }

    /// The lanes of `a` where `mask` is set, else those of `b`. A mask straight from a
    /// comparison (all bits of a lane set or none) becomes one blend instruction, where a bit
    /// select of any other mask takes three.
    fn lane_select(&mut self, mask: Value, a: Value, b: Value) -> Value {
        let mask = if self.b.func.dfg.value_type(mask) == types::F32X4 {
            mask
        } else {
            self.as_f32x4(mask)
        };
        self.b.ins().bitselect(mask, a, b)
    }

    /// `max(x, +0.0)` (a ReLU): `x` where it is greater than 0 or NaN, else +0.0, as
    /// [`Self::float_pick`] gives it, in two instructions: the lanes where `x ≤ 0` (false for
    /// NaN) are cleared.
    fn max_with_positive_zero(&mut self, x: Value) -> Value {
        let zero = self.constant(0.0, DType::F32);
        let zeros = self.b.ins().splat(types::F32X4, zero);
        let at_most_zero = self.b.ins().fcmp(FloatCC::LessThanOrEqual, x, zeros);
        let at_most_zero = self.as_f32x4(at_most_zero);
        self.b.ins().band_not(x, at_most_zero)
    }

    /// The same 128 bits as four f32 lanes: a comparison's mask, or built exponent bits.
    fn as_f32x4(&mut self, bits: Value) -> Value {
        let flags = MemFlagsData::new().with_endianness(Endianness::Little);
        self.b.ins().bitcast(types::F32X4, flags, bits)
    }

    fn constant(&mut self, value: f64, dtype: DType) -> Value {
        match dtype {
            DType::F32 => self.b.ins().f32const(value as f32),
            DType::F64 => self.b.ins().f64const(value),
            DType::I32 => self.b.ins().iconst(types::I32, i64::from(value as i32)),
            DType::Bool => self.b.ins().iconst(types::I8, i64::from(value != 0.0)),
        }
    }

    /// The address of `access` at the current position; `offsets` are the groups' offsets.
    fn address(&mut self, access: usize, offsets: &[Value]) -> Value {
        let offset = offsets[self.lay.group[access]];
        self.b.ins().iadd(self.bases[access], offset)
    }

    /// An access's stride in bytes along level `d`.
    fn stride(&self, access: usize, d: usize) -> i64 {
        self.lay.strides[self.lay.group[access]][d]
    }

    /// Every expression node's value at one position.
    fn scalar_values(&mut self, offsets: &[Value]) -> Vec<Value> {
        let mut values: Vec<Value> = Vec::with_capacity(self.k.expr.len());
        for node in &self.k.expr {
            let v = self.scalar_node(node, &values, offsets);
            values.push(v);
        }
        values
    }

    /// Stores the plain (not folded) outputs at one position.
    fn store_scalar_outputs(&mut self, values: &[Value], offsets: &[Value]) {
        for a in self.k.loads.len()..self.dtypes.len() {
            if Some(a) == self.fold {
                continue;
            }
            let address = self.address(a, offsets);
            let v = values[self.output(a).value];
            self.b.ins().store(FLAGS, v, address, 0);
        }
    }

    /// One position of the loop nest: the plain outputs stored, the fold's value (at every
    /// unrolled position, run by run) folded into its output.
    fn scalar_body(&mut self, offsets: &[Value]) {
        let Some(f) = self.fold else {
            let values = self.scalar_values(offsets);
            self.store_scalar_outputs(&values, offsets);
            return;
        };
        let dtype = self.dtypes[f];
        let address = self.address(f, offsets);
        let old = self.b.ins().load(clif_type(dtype), FLAGS, address, 0);
        let new = self.fold_window(offsets, old, dtype, false);
        self.b.ins().store(FLAGS, new, address, 0);
    }

    /// Folds the expression at every unrolled position (just the current one when there are
    /// none) into `acc`: the positions of each run of the unrolled trailing axes combined by the
    /// tree, the runs in order. Plain outputs are stored at every position.
    fn fold_window(
        &mut self,
        offsets: &[Value],
        mut acc: Value,
        dtype: DType,
        vector: bool,
    ) -> Value {
        let f = self.fold.expect("a fold");
        let value = self.output(f).value;
        let positions: usize = self.lay.unrolled.iter().product();
        let run_len = self.lay.run_len();
        let mut partials: Vec<Option<Value>> = vec![None; PARTIALS];
        for p in 0..positions {
            let index = self.lay.unrolled_index(p);
            let shifted: Vec<Value> = offsets
                .iter()
                .zip(&self.lay.unrolled_strides)
                .map(|(&offset, strides)| {
                    let delta: i64 = index.iter().zip(strides).map(|(&i, &s)| i as i64 * s).sum();
                    if delta == 0 {
                        offset
                    } else {
                        self.b.ins().iadd_imm_s(offset, delta)
                    }
                })
                .collect();
            let x = if vector {
                let values = self.vector_values(&shifted);
                self.store_vector_outputs(&values, &shifted);
                values[value]
            } else {
                let values = self.scalar_values(&shifted);
                self.store_scalar_outputs(&values, &shifted);
                values[value]
            };
            if self.lay.run_unrolled == 0 {
                acc = self.fold(acc, x, dtype, vector);
                continue;
            }
            let t = p % run_len;
            let slot = &mut partials[t % PARTIALS];
            *slot = Some(match *slot {
                Some(old) => self.fold(old, x, dtype, vector),
                None => x,
            });
            if t + 1 == run_len {
                let run = self
                    .tree(&partials, dtype, vector)
                    .expect("a run has elements");
                acc = self.fold(acc, run, dtype, vector);
                partials = vec![None; PARTIALS];
            }
        }
        acc
    }

    fn math_ref(&mut self, symbol: &'static str) -> FuncRef {
        match self.math_refs.get(symbol) {
            Some(&f) => f,
            None => {
                let f = self
                    .module
                    .declare_func_in_func(self.math[symbol], self.b.func);
                self.math_refs.insert(symbol, f);
                f
            }
        }
    }

    /// `op` on each lane of an f32x4, through a 16-byte stack slot.
    fn call_math4(&mut self, math: Math, x: Value) -> Value {
        let slot = match self.lanes_slot {
            Some(slot) => slot,
            None => {
                let data = StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4);
                let slot = self.b.create_sized_stack_slot(data);
                self.lanes_slot = Some(slot);
                slot
            }
        };
        let func = self.math_ref(math.symbol_f32x4);
        self.b.ins().stack_store(self.pointer, x, slot, 0);
        let address = self.b.ins().stack_addr(self.pointer, slot, 0);
        self.b.ins().call(func, &[address]);
        self.b.ins().stack_load(self.pointer, types::F32X4, slot, 0)
    }

    /// [`math::exp_f32`] on four lanes, step for step, so both agree bit for bit.
    fn vector_exp(&mut self, x: Value) -> Value {
        let splat = |s: &mut Self, c: f32| {
            let c = s.b.ins().f32const(c);
            s.b.ins().splat(types::F32X4, c)
        };
        let low = splat(self, math::EXP_LOW);
        let below = self.b.ins().fcmp(FloatCC::LessThan, x, low);
        let clamped = self.lane_select(below, low, x);
        let high = splat(self, math::EXP_HIGH);
        let above = self.b.ins().fcmp(FloatCC::GreaterThan, clamped, high);
        let clamped = self.lane_select(above, high, clamped);

        let log2_e = splat(self, math::LOG2_E);
        let n = self.b.ins().fmul(clamped, log2_e);
        let n = self.b.ins().nearest(n);
        let minus_ln2_hi = splat(self, -math::LN2_HI);
        let minus_ln2_lo = splat(self, -math::LN2_LO);
        let r = self.b.ins().fma(n, minus_ln2_hi, clamped);
        let r = self.b.ins().fma(n, minus_ln2_lo, r);

        let r2 = self.b.ins().fmul(r, r);
        let [c7, c6, c5, c4, c3, c2] = math::EXP_TAYLOR.map(|c| splat(self, c));
        let high = self.b.ins().fma(c7, r, c6);
        let middle = self.b.ins().fma(c5, r, c4);
        let low = self.b.ins().fma(c3, r, c2);
        let p = self.b.ins().fma(high, r2, middle);
        let p = self.b.ins().fma(p, r2, low);
        let tail = self.b.ins().fma(r2, p, r);
        let one = splat(self, 1.0);
        let p = self.b.ins().fadd(one, tail);

        let n = self.b.ins().fcvt_to_sint_sat(types::I32X4, n);
        let half = self.b.ins().sshr_imm_u(n, 1);
        let rest = self.b.ins().isub(n, half);
        let bias = self.b.ins().iconst(types::I32, 127);
        let bias = self.b.ins().splat(types::I32X4, bias);
        let mut y = p;
        for k in [half, rest] {
            let exponent = self.b.ins().iadd(k, bias);
            let bits = self.b.ins().ishl_imm_u(exponent, 23);
            let power = self.as_f32x4(bits);
            y = self.b.ins().fmul(y, power);
        }
        let nan = self.b.ins().fcmp(FloatCC::Unordered, x, x);
        self.lane_select(nan, x, y)
    }

    fn call_math(&mut self, math: Math, dtype: DType, x: Value) -> Value {
        let symbol = match dtype {
            DType::F32 => math.symbol_f32,
            _ => math.symbol_f64,
        };
        let func = self.math_ref(symbol);
        let call = self.b.ins().call(func, &[x]);
        self.b.inst_results(call)[0]
    }

    fn scalar_node(&mut self, node: &ExprNode, values: &[Value], offsets: &[Value]) -> Value {
        let ty = clif_type(node.dtype);
        let arg = |i: usize| values[node.args[i]];
        let arg_dtype = |i: usize| self.k.expr[node.args[i]].dtype;
        let float = node.dtype.is_float();
        let op = match &node.op {
            ExprOp::Load(i) => {
                let address = self.address(*i, offsets);
                return self.b.ins().load(ty, FLAGS, address, 0);
            }
            ExprOp::Const(c) => return self.constant(*c, node.dtype),
            ExprOp::Index(terms) => {
                // Kernels with an index keep every axis as a loop level.
                let mut i = self.b.ins().iconst(types::I64, 0);
                for &(axis, weight) in terms {
                    let at = self.b.use_var(self.index[axis]);
                    let term = self.b.ins().imul_imm_s(at, weight);
                    i = self.b.ins().iadd(i, term);
                }
                return match node.dtype {
                    DType::F32 | DType::F64 => self.b.ins().fcvt_from_uint(ty, i),
                    DType::I32 => self.b.ins().ireduce(types::I32, i),
                    DType::Bool => self.b.ins().icmp_imm_s(IntCC::NotEqual, i, 0),
                };
            }
            ExprOp::Op(op) => op,
        };
        if let Some(math) = op.primitive().math {
            return self.call_math(math, node.dtype, arg(0));
        }
        let ins = self.b.ins();
        match op {
            Op::Neg if float => ins.fneg(arg(0)),
            Op::Neg => ins.ineg(arg(0)),
            Op::Sqrt => ins.sqrt(arg(0)),
            Op::Not => ins.bxor_imm_u(arg(0), 1),
            Op::Detach => arg(0),
            Op::Cast { to } => self.cast(arg(0), arg_dtype(0), *to),
            Op::Add if float => ins.fadd(arg(0), arg(1)),
            Op::Sub if float => ins.fsub(arg(0), arg(1)),
            Op::Mul if float => ins.fmul(arg(0), arg(1)),
            Op::Div => ins.fdiv(arg(0), arg(1)),
            Op::Add => ins.iadd(arg(0), arg(1)),
            Op::Sub => ins.isub(arg(0), arg(1)),
            Op::Mul => ins.imul(arg(0), arg(1)),
            Op::Max if float => self.float_pick(FloatCC::GreaterThan, arg(0), arg(1), false),
            Op::Min if float => self.float_pick(FloatCC::LessThan, arg(0), arg(1), false),
            Op::Max => ins.smax(arg(0), arg(1)),
            Op::Min => ins.smin(arg(0), arg(1)),
            Op::Cmp(c) => match arg_dtype(0) {
                DType::F32 | DType::F64 => ins.fcmp(float_cc(*c), arg(0), arg(1)),
                DType::I32 => ins.icmp(int_cc(*c, true), arg(0), arg(1)),
                DType::Bool => ins.icmp(int_cc(*c, false), arg(0), arg(1)),
            },
            Op::And => ins.band(arg(0), arg(1)),
            Op::Or => ins.bor(arg(0), arg(1)),
            Op::Select => ins.select(arg(0), arg(1), arg(2)),
            op => unreachable!("the planner fuses no `{}`", op.name()),
        }
    }

    /// `cast` as the interpreter converts: through f64, floats to i32 truncating and saturating
    /// (NaN → 0), anything to bool as `x != 0`.
    fn cast(&mut self, x: Value, from: DType, to: DType) -> Value {
        let ins = self.b.ins();
        let to_ty = clif_type(to);
        match (from, to) {
            _ if from == to => x,
            (DType::F32, DType::F64) => ins.fpromote(types::F64, x),
            (DType::F64, DType::F32) => ins.fdemote(types::F32, x),
            (DType::F32 | DType::F64, DType::I32) => ins.fcvt_to_sint_sat(types::I32, x),
            (DType::F32 | DType::F64, DType::Bool) => {
                let zero = self.constant(0.0, from);
                self.b.ins().fcmp(FloatCC::NotEqual, x, zero)
            }
            (DType::I32, DType::Bool) => ins.icmp_imm_s(IntCC::NotEqual, x, 0),
            (DType::I32, _) => ins.fcvt_from_sint(to_ty, x),
            (DType::Bool, DType::I32) => ins.uextend(types::I32, x),
            (DType::Bool, _) => {
                let wide = ins.uextend(types::I32, x);
                self.b.ins().fcvt_from_sint(to_ty, wide)
            }
            _ => unreachable!("every pair of dtypes is covered"),
        }
    }

    /// Elements 0, 2, 4 and 6 from `address` (a view with a stride of two, as a pooling window
    /// reads): two vector loads, of elements 0–3 and 3–6 (none past the last lane's), and one
    /// shuffle, where lane by lane it would take four loads and three inserts.
    fn every_other_lane(&mut self, address: Value) -> Value {
        let low = self.b.ins().load(types::F32X4, FLAGS, address, 0);
        let high = self.b.ins().load(types::F32X4, FLAGS, address, 12);
        // Lanes 0 and 2 of `low`, then lanes 1 and 3 of `high` (numbered 4–7), by bytes.
        let bytes: Vec<u8> = [0u8, 2, 5, 7]
            .iter()
            .flat_map(|&lane| (0..4).map(move |b| lane * 4 + b))
            .collect();
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(bytes));
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let low = self.b.ins().bitcast(types::I8X16, little, low);
        let high = self.b.ins().bitcast(types::I8X16, little, high);
        let picked = self.b.ins().shuffle(low, high, mask);
        self.b.ins().bitcast(types::F32X4, little, picked)
    }

    /// Lanes (x0, x0, x1, x1) of two adjacent elements at `address` (a pooling window's
    /// gradient, read once per window column): one 8-byte load and one shuffle.
    fn each_twice(&mut self, address: Value) -> Value {
        let pair = self.b.ins().load(types::I64, FLAGS, address, 0);
        let v = self.b.ins().scalar_to_vector(types::I64X2, pair);
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let v = self.b.ins().bitcast(types::I8X16, little, v);
        let bytes: Vec<u8> = [0u8, 0, 1, 1]
            .iter()
            .flat_map(|&lane| (0..4).map(move |b| lane * 4 + b))
            .collect();
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(bytes));
        let picked = self.b.ins().shuffle(v, v, mask);
        self.b.ins().bitcast(types::F32X4, little, picked)
    }

    /// Four bools (bytes 0 or 1) at `address` as a lane mask; one bool (stride 0) in every lane.
    fn load_mask(&mut self, address: Value, broadcast: bool) -> Value {
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let wide = if broadcast {
            let b = self.b.ins().load(types::I8, FLAGS, address, 0);
            let b = self.b.ins().uextend(types::I32, b);
            self.b.ins().splat(types::I32X4, b)
        } else {
            let four = self.b.ins().load(types::I32, FLAGS, address, 0);
            let v = self.b.ins().scalar_to_vector(types::I32X4, four);
            let bytes = self.b.ins().bitcast(types::I8X16, little, v);
            let halves = self.b.ins().uwiden_low(bytes);
            self.b.ins().uwiden_low(halves)
        };
        let zero = self.b.ins().iconst(types::I32, 0);
        let zeros = self.b.ins().splat(types::I32X4, zero);
        let mask = self.b.ins().icmp(IntCC::NotEqual, wide, zeros);
        self.as_f32x4(mask)
    }

    /// Stores a lane mask as four bools (bytes 0 or 1).
    fn store_mask(&mut self, mask: Value, address: Value) {
        let little = MemFlagsData::new().with_endianness(Endianness::Little);
        let ints = self.b.ins().bitcast(types::I32X4, little, mask);
        let one = self.b.ins().iconst(types::I32, 1);
        let ones = self.b.ins().splat(types::I32X4, one);
        let bits = self.b.ins().band(ints, ones);
        let halves = self.b.ins().unarrow(bits, bits);
        let bytes = self.b.ins().unarrow(halves, halves);
        let words = self.b.ins().bitcast(types::I32X4, little, bytes);
        let four = self.b.ins().extractlane(words, 0);
        self.b.ins().store(FLAGS, four, address, 0);
    }

    /// Four lanes of every expression node; bools are lane masks (all ones or zeros) typed as
    /// f32x4.
    fn vector_values(&mut self, offsets: &[Value]) -> Vec<Value> {
        let mut values: Vec<Value> = Vec::with_capacity(self.k.expr.len());
        for node in &self.k.expr {
            let v = self.vector_node(node, &values, offsets);
            values.push(v);
        }
        values
    }

    /// Stores the plain outputs' four lanes: contiguous, or lane by lane along a stride.
    fn store_vector_outputs(&mut self, values: &[Value], offsets: &[Value]) {
        let last = self.lay.dims.len() - 1;
        for a in self.k.loads.len()..self.dtypes.len() {
            if Some(a) == self.fold {
                continue;
            }
            let address = self.address(a, offsets);
            let x = values[self.output(a).value];
            let stride = self.stride(a, last);
            if self.dtypes[a] == DType::Bool {
                self.store_mask(x, address);
            } else if stride == dtype_size(DType::F32) as i64 {
                self.b.ins().store(FLAGS, x, address, 0);
            } else {
                for l in 0..LANES {
                    let lane = self.b.ins().extractlane(x, l as u8);
                    self.b
                        .ins()
                        .store(FLAGS, lane, address, (stride * l as i64) as i32);
                }
            }
        }
    }

    /// Four positions of the loop nest: plain outputs stored, the fold's four independent
    /// results (at every unrolled position) folded into its output.
    fn vector_body(&mut self, offsets: &[Value]) {
        let Some(f) = self.fold else {
            let values = self.vector_values(offsets);
            self.store_vector_outputs(&values, offsets);
            return;
        };
        let address = self.address(f, offsets);
        let old = self.b.ins().load(types::F32X4, FLAGS, address, 0);
        let new = self.fold_window(offsets, old, DType::F32, true);
        self.b.ins().store(FLAGS, new, address, 0);
    }

    fn vector_node(&mut self, node: &ExprNode, values: &[Value], offsets: &[Value]) -> Value {
        let v4 = types::F32X4;
        let arg = |i: usize| values[node.args[i]];
        let positive_zero = |e: usize| matches!(self.k.expr[e].op, ExprOp::Const(c) if c == 0.0 && c.is_sign_positive());
        let op = match &node.op {
            ExprOp::Load(i) => {
                let address = self.address(*i, offsets);
                let last = self.lay.dims.len() - 1;
                let stride = self.stride(*i, last);
                if node.dtype == DType::Bool {
                    return self.load_mask(address, stride == 0);
                }
                if let Some((2, 4)) = self.lay.repeat[self.lay.group[*i]] {
                    return self.each_twice(address);
                }
                if let Some((period, bytes)) = self.lay.repeat[self.lay.group[*i]] {
                    // Lanes (x0, x0, x1, x1) or (x0, x0, x0, x0).
                    let x = self.b.ins().load(types::F32, FLAGS, address, 0);
                    let mut v = self.b.ins().splat(v4, x);
                    for first in (period..LANES).step_by(period) {
                        let offset = (bytes * (first / period) as i64) as i32;
                        let x = self.b.ins().load(types::F32, FLAGS, address, offset);
                        for l in first..first + period {
                            v = self.b.ins().insertlane(v, x, l as u8);
                        }
                    }
                    return v;
                }
                return match stride {
                    0 => {
                        let x = self.b.ins().load(types::F32, FLAGS, address, 0);
                        self.b.ins().splat(v4, x)
                    }
                    4 => self.b.ins().load(v4, FLAGS, address, 0),
                    8 => self.every_other_lane(address),
                    _ => {
                        // A strided view: the four lanes one by one.
                        let x = self.b.ins().load(types::F32, FLAGS, address, 0);
                        let mut v = self.b.ins().scalar_to_vector(v4, x);
                        for l in 1..LANES {
                            let offset = (stride * l as i64) as i32;
                            let x = self.b.ins().load(types::F32, FLAGS, address, offset);
                            v = self.b.ins().insertlane(v, x, l as u8);
                        }
                        v
                    }
                };
            }
            ExprOp::Const(c) => {
                let x = self.constant(*c, DType::F32);
                return self.b.ins().splat(v4, x);
            }
            ExprOp::Index(_) => unreachable!("kernels with an index are not vectorized"),
            ExprOp::Op(op) => op,
        };
        match op {
            Op::Neg => self.b.ins().fneg(arg(0)),
            Op::Sqrt => self.b.ins().sqrt(arg(0)),
            Op::Exp if vector_fma() => self.vector_exp(arg(0)),
            op if let Some(math) = op.primitive().math => self.call_math4(math, arg(0)),
            Op::Detach => arg(0),
            Op::Add => self.b.ins().fadd(arg(0), arg(1)),
            Op::Sub => self.b.ins().fsub(arg(0), arg(1)),
            Op::Mul => self.b.ins().fmul(arg(0), arg(1)),
            Op::Div => self.b.ins().fdiv(arg(0), arg(1)),
            Op::Max if positive_zero(node.args[1]) => self.max_with_positive_zero(arg(0)),
            Op::Max => self.float_pick(FloatCC::GreaterThan, arg(0), arg(1), true),
            Op::Min => self.float_pick(FloatCC::LessThan, arg(0), arg(1), true),
            Op::Cmp(c) => {
                let mask = self.b.ins().fcmp(float_cc(*c), arg(0), arg(1));
                self.as_f32x4(mask)
            }
            Op::And => self.b.ins().band(arg(0), arg(1)),
            Op::Or => self.b.ins().bor(arg(0), arg(1)),
            Op::Not => self.b.ins().bnot(arg(0)),
            Op::Select => self.lane_select(arg(0), arg(1), arg(2)),
            Op::Cast { to } => match (self.k.expr[node.args[0]].dtype, to) {
                (DType::Bool, DType::F32) => {
                    let one = self.constant(1.0, DType::F32);
                    let ones = self.b.ins().splat(v4, one);
                    self.b.ins().band(arg(0), ones)
                }
                (DType::F32, DType::Bool) => {
                    let zero = self.constant(0.0, DType::F32);
                    let zeros = self.b.ins().splat(v4, zero);
                    let mask = self.b.ins().fcmp(FloatCC::NotEqual, arg(0), zeros);
                    self.as_f32x4(mask)
                }
                _ => arg(0),
            },
            op => unreachable!("`{}` is not vectorized", op.name()),
        }
    }
}

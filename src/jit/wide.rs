//! Kernels on sixteen lanes. Cranelift emits 128-bit vectors only, so a kernel dominated by
//! arithmetic (an LSTM's gates: five exponentials and five divisions per element; Adam's update)
//! runs a quarter as wide as the processor allows. On a processor with AVX-512, such a kernel
//! runs here instead: a small interpreter of the kernel's expression whose every instruction
//! computes 256 positions (sixteen 16-lane vectors), so the cost of dispatching an instruction is
//! shared by 256 elements and each operation is one AVX-512 instruction per vector.
//!
//! Each instruction is the operation the Cranelift code performs (`codegen`), so both agree bit
//! for bit with the interpreter: IEEE arithmetic, the interpreter's `max`/`min` with their NaN
//! rule, and [`math::exp_f32`]'s steps with its fused multiply-adds. A kernel qualifies when it
//! folds nothing, reads and writes f32 only (bools live in its expression as lane masks), every
//! access is contiguous or broadcast along the innermost loop, and it has no index or math call.
//! The Cranelift code of every kernel is compiled too: it runs where AVX-512 is absent and when
//! `NNL_JIT_WIDE=0`, which exists to compare the two.

use super::codegen::Layout;
use super::plan::{BufId, ExprNode, ExprOp, Kernel};
use crate::ir::composite::{self, Operand};
use crate::ir::{CmpOp, DType, Op};
#[cfg(target_arch = "x86_64")]
use crate::tensor::math;

/// The elements one instruction computes: sixteen vectors of sixteen lanes. Many vectors per
/// instruction also keep a vector's store and the next instruction's load of it far apart
/// (a load right after the store of a 64-byte vector waits on some processors).
const TILE: usize = 256;
const LANES: usize = 16;
const VECTORS: usize = TILE / LANES;

/// The narrowest innermost loop worth running here: below it most lanes would idle.
const MIN_INNER: usize = 16;

/// One instruction: computes an expression node's value at the tile's positions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Instr {
    /// Access `a` (a load): its contiguous elements, or its one element on every lane.
    Load {
        access: usize,
        broadcast: bool,
    },
    Const(f32),
    Neg(usize),
    Sqrt(usize),
    Exp(usize),
    /// A `sigmoid` or `tanh` whose recipe (`ir::composite`) the expression spells out step by
    /// step: computed in registers by the same steps.
    Sigmoid(usize),
    Tanh(usize),
    /// A step of such a recipe, computed by the instruction that ends it.
    InRecipe,
    Add(usize, usize),
    Sub(usize, usize),
    Mul(usize, usize),
    Div(usize, usize),
    /// The interpreter's `max` and `min`: the first operand where it wins or is NaN.
    Max(usize, usize),
    Min(usize, usize),
    /// A comparison's lane mask (all bits set where true).
    Cmp(CmpOp, usize, usize),
    And(usize, usize),
    Or(usize, usize),
    Not(usize),
    /// Mask ? a : b.
    Select(usize, usize, usize),
    /// A mask as 1.0 or 0.0.
    MaskToF32(usize),
    /// Whether an f32 is not 0 (NaN included), as a mask.
    F32ToMask(usize),
    Copy(usize),
}

/// A kernel that runs on sixteen lanes.
#[derive(Debug)]
pub struct WideKernel {
    /// The loop extents (the layout's merged dimensions); the last is the vector loop.
    dims: Vec<usize>,
    /// Per access (the loads, then the outputs): its buffer, its first element's byte offset,
    /// and its byte strides along `dims`.
    accesses: Vec<(BufId, i64, Vec<i64>)>,
    /// The instructions that compute something an output needs, in order, each with the slot
    /// it writes; operands name slots.
    program: Vec<(usize, Instr)>,
    /// How many slots of 256 values the program uses.
    slots: usize,
    /// The outputs: the slot whose values each stores, and its access.
    outs: Vec<(usize, usize)>,
}

impl WideKernel {
    /// The kernel on sixteen lanes, when this processor has AVX-512 and the kernel qualifies
    /// (see the module's description); `lay` is the layout its Cranelift code uses.
    pub fn new(k: &Kernel, lay: &Layout, dtypes: &[DType]) -> Option<WideKernel> {
        if !available() || std::env::var("NNL_JIT_WIDE").is_ok_and(|v| v == "0") {
            return None;
        }
        let last = lay.dims.len().checked_sub(1)?;
        let simple_layout = lay.unrolled.is_empty()
            && lay.repeat.iter().all(Option::is_none)
            && lay.dims[last] >= MIN_INNER
            && k.outs.iter().all(|o| o.fold.is_none())
            && dtypes.iter().all(|&d| d == DType::F32);
        if !simple_layout {
            return None;
        }
        let loads = k.loads.len();
        let accesses: Vec<(BufId, i64, Vec<i64>)> = k
            .loads
            .iter()
            .chain(k.outs.iter().map(|o| &o.view))
            .enumerate()
            .map(|(a, view)| {
                let strides = lay.strides[lay.group[a]].clone();
                (view.buf, view.offset as i64 * 4, strides)
            })
            .collect();
        let inner = |a: usize| accesses[a].2[last];
        if (0..loads).any(|a| !matches!(inner(a), 0 | 4))
            || (loads..accesses.len()).any(|a| inner(a) != 4)
        {
            return None;
        }
        // A tile is read whole before it is written: an output may share a buffer with a load
        // only through the very same view (an update in place).
        for o in &k.outs {
            let same_buffer = k.loads.iter().filter(|v| v.buf == o.view.buf);
            if same_buffer.into_iter().any(|v| *v != o.view) {
                return None;
            }
        }
        let broadcast: Vec<bool> = (0..loads).map(|a| inner(a) == 0).collect();
        let mut instrs = k
            .expr
            .iter()
            .map(|n| instr(n, k, &broadcast))
            .collect::<Option<Vec<_>>>()?;
        let outputs: Vec<usize> = k.outs.iter().map(|o| o.value).collect();
        for (op, recipe) in [
            (Op::Sigmoid, Instr::Sigmoid as fn(usize) -> Instr),
            (Op::Tanh, Instr::Tanh),
        ] {
            let steps = composite::recipe(&op).expect("a composite op");
            for end in 0..instrs.len() {
                let taken =
                    |i: &Instr| matches!(i, Instr::InRecipe | Instr::Sigmoid(_) | Instr::Tanh(_));
                let free = end + 1 >= steps.len()
                    && !instrs[end + 1 - steps.len()..=end].iter().any(taken);
                if !free {
                    continue;
                }
                if let Some(x) = spelled_out(k, &steps, end, &outputs) {
                    instrs[end + 1 - steps.len()..end].fill(Instr::InRecipe);
                    instrs[end] = recipe(x);
                }
            }
        }
        // Sixteen lanes pay where arithmetic dominates; a kernel of a few cheap operations per
        // element runs faster in registers on four.
        let transcendental =
            |i: &Instr| matches!(i, Instr::Exp(_) | Instr::Sigmoid(_) | Instr::Tanh(_));
        if !instrs.iter().any(transcendental) {
            return None;
        }
        let (program, slot_of, slots) = allocate(&instrs, &outputs);
        let outs = outputs
            .iter()
            .enumerate()
            .map(|(i, &value)| (slot_of[value], loads + i))
            .collect();
        Some(WideKernel {
            dims: lay.dims.clone(),
            accesses,
            program,
            slots,
            outs,
        })
    }

    /// Runs the kernel on the buffers `table` holds: the iterations `begin..end` of its
    /// outermost loop when `split`, else all of them (as its Cranelift code does).
    ///
    /// # Safety
    /// The kernel was planned for the buffers `table` holds, and this processor has AVX-512
    /// (a `WideKernel` exists only then).
    pub unsafe fn run(&self, table: *const *mut u8, begin: i64, end: i64, split: bool) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's guarantee.
        unsafe {
            self.run_avx512(table, begin as usize, end as usize, split)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (table, begin, end, split);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_avx512(&self, table: *const *mut u8, begin: usize, end: usize, split: bool) {
        use std::arch::x86_64::{__m512, _mm512_setzero_ps};
        if self.dims.contains(&0) {
            return;
        }
        let bases: Vec<*mut u8> = self
            .accesses
            .iter()
            // SAFETY: `table` holds an address for every buffer of the plan.
            .map(|(buf, offset, _)| unsafe { (*table.add(*buf)).offset(*offset as isize) })
            .collect();
        let mut values: Vec<[__m512; VECTORS]> = vec![[_mm512_setzero_ps(); VECTORS]; self.slots];
        let mut at = bases.clone();
        let last = self.dims.len() - 1;
        let range = |n: usize| if split { begin..end } else { 0..n };
        if last == 0 {
            // SAFETY: the range lies within the loop's extent.
            unsafe { self.row(&bases, range(self.dims[0]), &mut values) };
            return;
        }
        // The positions of the outer loops, the first within its range.
        let mut index = vec![0usize; last];
        let outer = range(self.dims[0]);
        if outer.is_empty() {
            return;
        }
        index[0] = outer.start;
        loop {
            for (a, (_, _, strides)) in self.accesses.iter().enumerate() {
                let offset: i64 = index.iter().zip(strides).map(|(&i, &s)| i as i64 * s).sum();
                at[a] = bases[a].wrapping_offset(offset as isize);
            }
            // SAFETY: `at` addresses this row of every access.
            unsafe { self.row(&at, 0..self.dims[last], &mut values) };
            let mut d = last - 1;
            loop {
                index[d] += 1;
                let limit = if d == 0 { outer.end } else { self.dims[d] };
                if index[d] < limit {
                    break;
                }
                if d == 0 {
                    return;
                }
                index[d] = 0;
                d -= 1;
            }
        }
    }

    /// The positions `range` of the vector loop, where access `a` starts at `at[a]`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn row(
        &self,
        at: &[*mut u8],
        range: std::ops::Range<usize>,
        values: &mut [[std::arch::x86_64::__m512; VECTORS]],
    ) {
        use simd::*;
        use std::arch::x86_64::*;
        let mut start = range.start;
        while start < range.end {
            let len = (range.end - start).min(TILE);
            let masks: [u16; VECTORS] = std::array::from_fn(|j| {
                let active = len.saturating_sub(j * LANES).min(LANES);
                ((1u32 << active) - 1) as u16
            });
            // The vectors with an active lane.
            let count = len.div_ceil(LANES);
            let slots = values.as_mut_ptr();
            for &(i, ref instr) in &self.program {
                // Instruction writes slot `i`, which none of its operands is (`allocate`).
                macro_rules! v {
                    ($x:expr, $j:expr) => {
                        // SAFETY: every slot number is below the number of slots.
                        unsafe { (*slots.add($x))[$j] }
                    };
                }
                macro_rules! each {
                    (|$j:ident| $e:expr) => {
                        for $j in 0..count {
                            let value = $e;
                            // SAFETY: `i` < the number of slots, and no operand is slot `i`.
                            unsafe { (*slots.add(i))[$j] = value };
                        }
                    };
                }
                match *instr {
                    Instr::Load {
                        access,
                        broadcast: true,
                    } => {
                        // SAFETY: a broadcast access reads one element per row.
                        let x = _mm512_set1_ps(unsafe { *at[access].cast::<f32>() });
                        each!(|j| x)
                    }
                    Instr::Load {
                        access,
                        broadcast: false,
                    } => {
                        let p = at[access].cast::<f32>();
                        // SAFETY: the active lanes lie within the row.
                        each!(|j| unsafe { load(p.add(start + j * LANES), masks[j]) })
                    }
                    Instr::Const(c) => {
                        let c = _mm512_set1_ps(c);
                        each!(|j| c)
                    }
                    Instr::Neg(x) => each!(|j| xor(v!(x, j), _mm512_set1_ps(-0.0))),
                    Instr::Sqrt(x) => each!(|j| _mm512_sqrt_ps(v!(x, j))),
                    Instr::Exp(x) => each!(|j| exp(v!(x, j))),
                    Instr::Sigmoid(x) => each!(|j| sigmoid(v!(x, j))),
                    Instr::Tanh(x) => each!(|j| tanh(v!(x, j))),
                    Instr::InRecipe => {}
                    Instr::Add(a, b) => each!(|j| _mm512_add_ps(v!(a, j), v!(b, j))),
                    Instr::Sub(a, b) => each!(|j| _mm512_sub_ps(v!(a, j), v!(b, j))),
                    Instr::Mul(a, b) => each!(|j| _mm512_mul_ps(v!(a, j), v!(b, j))),
                    Instr::Div(a, b) => each!(|j| _mm512_div_ps(v!(a, j), v!(b, j))),
                    Instr::Max(a, b) => each!(|j| pick::<_CMP_GT_OQ>(v!(a, j), v!(b, j))),
                    Instr::Min(a, b) => each!(|j| pick::<_CMP_LT_OQ>(v!(a, j), v!(b, j))),
                    Instr::Cmp(c, a, b) => each!(|j| compare(c, v!(a, j), v!(b, j))),
                    Instr::And(a, b) => each!(|j| and(v!(a, j), v!(b, j))),
                    Instr::Or(a, b) => each!(|j| or(v!(a, j), v!(b, j))),
                    Instr::Not(x) => each!(|j| xor(v!(x, j), all_ones())),
                    Instr::Select(m, a, b) => each!(|j| select(v!(m, j), v!(a, j), v!(b, j))),
                    Instr::MaskToF32(x) => each!(|j| and(v!(x, j), _mm512_set1_ps(1.0))),
                    Instr::F32ToMask(x) => each!(|j| {
                        mask_vector(_mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(
                            v!(x, j),
                            _mm512_setzero_ps(),
                        ))
                    }),
                    Instr::Copy(x) => each!(|j| v!(x, j)),
                }
            }
            for &(value, access) in &self.outs {
                let p = at[access].cast::<f32>();
                for (j, &m) in masks.iter().enumerate().take(count) {
                    // SAFETY: the active lanes lie within the row; the output is contiguous.
                    unsafe { store(p.add(start + j * LANES), m, values[value][j]) };
                }
            }
            start += len;
        }
    }
}

impl Instr {
    /// The values it reads.
    fn operands(&self) -> Vec<usize> {
        match *self {
            Instr::Load { .. } | Instr::Const(_) | Instr::InRecipe => Vec::new(),
            Instr::Neg(x)
            | Instr::Sqrt(x)
            | Instr::Exp(x)
            | Instr::Sigmoid(x)
            | Instr::Tanh(x)
            | Instr::Not(x)
            | Instr::MaskToF32(x)
            | Instr::F32ToMask(x)
            | Instr::Copy(x) => vec![x],
            Instr::Add(a, b)
            | Instr::Sub(a, b)
            | Instr::Mul(a, b)
            | Instr::Div(a, b)
            | Instr::Max(a, b)
            | Instr::Min(a, b)
            | Instr::Cmp(_, a, b)
            | Instr::And(a, b)
            | Instr::Or(a, b) => vec![a, b],
            Instr::Select(m, a, b) => vec![m, a, b],
        }
    }

    /// The same instruction reading `to(x)` where it read `x`.
    fn renamed(self, to: &dyn Fn(usize) -> usize) -> Instr {
        match self {
            Instr::Load { .. } | Instr::Const(_) | Instr::InRecipe => self,
            Instr::Neg(x) => Instr::Neg(to(x)),
            Instr::Sqrt(x) => Instr::Sqrt(to(x)),
            Instr::Exp(x) => Instr::Exp(to(x)),
            Instr::Sigmoid(x) => Instr::Sigmoid(to(x)),
            Instr::Tanh(x) => Instr::Tanh(to(x)),
            Instr::Not(x) => Instr::Not(to(x)),
            Instr::MaskToF32(x) => Instr::MaskToF32(to(x)),
            Instr::F32ToMask(x) => Instr::F32ToMask(to(x)),
            Instr::Copy(x) => Instr::Copy(to(x)),
            Instr::Add(a, b) => Instr::Add(to(a), to(b)),
            Instr::Sub(a, b) => Instr::Sub(to(a), to(b)),
            Instr::Mul(a, b) => Instr::Mul(to(a), to(b)),
            Instr::Div(a, b) => Instr::Div(to(a), to(b)),
            Instr::Max(a, b) => Instr::Max(to(a), to(b)),
            Instr::Min(a, b) => Instr::Min(to(a), to(b)),
            Instr::Cmp(c, a, b) => Instr::Cmp(c, to(a), to(b)),
            Instr::And(a, b) => Instr::And(to(a), to(b)),
            Instr::Or(a, b) => Instr::Or(to(a), to(b)),
            Instr::Select(m, a, b) => Instr::Select(to(m), to(a), to(b)),
        }
    }
}

/// The instructions that `outputs` need, each with the slot it writes, reading slots; the slot
/// of every instruction; the number of slots. A slot is reused once its value has been read for
/// the last time: an LSTM's gate kernel has 81 instructions, most the steps of recipes computed
/// in registers, and a slot each (81 KB per tile) kept it out of the first-level cache.
fn allocate(instrs: &[Instr], outputs: &[usize]) -> (Vec<(usize, Instr)>, Vec<usize>, usize) {
    let mut live = vec![false; instrs.len()];
    for &o in outputs {
        live[o] = true;
    }
    for i in (0..instrs.len()).rev() {
        if live[i] {
            for x in instrs[i].operands() {
                live[x] = true;
            }
        }
    }
    // The last instruction to read each value; outputs are read after every instruction.
    let mut last_read = vec![0; instrs.len()];
    for (i, instr) in instrs.iter().enumerate().filter(|&(i, _)| live[i]) {
        for x in instr.operands() {
            last_read[x] = i;
        }
    }
    for &o in outputs {
        last_read[o] = usize::MAX;
    }
    let mut slot_of = vec![usize::MAX; instrs.len()];
    let mut free: Vec<usize> = Vec::new();
    let mut slots = 0;
    let mut program = Vec::new();
    for (i, &instr) in instrs.iter().enumerate().filter(|&(i, _)| live[i]) {
        let slot = free.pop().unwrap_or_else(|| {
            slots += 1;
            slots - 1
        });
        slot_of[i] = slot;
        program.push((slot, instr.renamed(&|x| slot_of[x])));
        // Freed after the write's slot is taken, so no instruction writes a slot it reads.
        for x in instr.operands() {
            if last_read[x] == i && !free.contains(&slot_of[x]) {
                free.push(slot_of[x]);
            }
        }
    }
    (program, slot_of, slots)
}

/// The instruction of expression node `n`, or None when it has no sixteen-lane form here.
fn instr(n: &ExprNode, k: &Kernel, broadcast: &[bool]) -> Option<Instr> {
    let a = |i: usize| n.args[i];
    let arg_dtype = |i: usize| k.expr[n.args[i]].dtype;
    Some(match (&n.op, n.dtype) {
        (ExprOp::Load(access), DType::F32) => Instr::Load {
            access: *access,
            broadcast: broadcast[*access],
        },
        (ExprOp::Const(c), DType::F32) => Instr::Const(*c as f32),
        (ExprOp::Op(Op::Cmp(c)), DType::Bool) if arg_dtype(0) == DType::F32 => {
            Instr::Cmp(*c, a(0), a(1))
        }
        (ExprOp::Op(Op::And), DType::Bool) => Instr::And(a(0), a(1)),
        (ExprOp::Op(Op::Or), DType::Bool) => Instr::Or(a(0), a(1)),
        (ExprOp::Op(Op::Not), DType::Bool) => Instr::Not(a(0)),
        (ExprOp::Op(Op::Cast { .. }), DType::F32) => match arg_dtype(0) {
            DType::Bool => Instr::MaskToF32(a(0)),
            DType::F32 => Instr::Copy(a(0)),
            _ => return None,
        },
        (ExprOp::Op(Op::Cast { .. }), DType::Bool) => match arg_dtype(0) {
            DType::F32 => Instr::F32ToMask(a(0)),
            DType::Bool => Instr::Copy(a(0)),
            _ => return None,
        },
        (ExprOp::Op(Op::Select), DType::F32) => Instr::Select(a(0), a(1), a(2)),
        (ExprOp::Op(op), DType::F32) => match op {
            Op::Neg => Instr::Neg(a(0)),
            Op::Sqrt => Instr::Sqrt(a(0)),
            Op::Exp => Instr::Exp(a(0)),
            Op::Detach => Instr::Copy(a(0)),
            Op::Add => Instr::Add(a(0), a(1)),
            Op::Sub => Instr::Sub(a(0), a(1)),
            Op::Mul => Instr::Mul(a(0), a(1)),
            Op::Div => Instr::Div(a(0), a(1)),
            Op::Max => Instr::Max(a(0), a(1)),
            Op::Min => Instr::Min(a(0), a(1)),
            _ => return None,
        },
        _ => return None,
    })
}

/// When expression nodes `end + 1 − steps.len() ..= end` spell out `steps` (a recipe) on one
/// node `x` before them, and no other node or output reads the steps before the last: `x`.
fn spelled_out(
    k: &Kernel,
    steps: &[composite::Step],
    end: usize,
    outputs: &[usize],
) -> Option<usize> {
    let base = (end + 1).checked_sub(steps.len())?;
    let mut x = None;
    for (s, step) in steps.iter().enumerate() {
        let node = &k.expr[base + s];
        if node.op != ExprOp::Op(step.op.clone()) || node.args.len() != step.args.len() {
            return None;
        }
        for (&arg, operand) in node.args.iter().zip(&step.args) {
            let fits = match *operand {
                Operand::X => arg < base && *x.get_or_insert(arg) == arg,
                Operand::Step(m) => arg == base + m,
                Operand::Const(c) => k.expr[arg].op == ExprOp::Const(c),
            };
            if !fits {
                return None;
            }
        }
    }
    let inside = base..end;
    let read_outside = k
        .expr
        .iter()
        .enumerate()
        .any(|(i, n)| !(base..=end).contains(&i) && n.args.iter().any(|a| inside.contains(a)));
    if read_outside || outputs.iter().any(|o| inside.contains(o)) {
        return None;
    }
    x
}

/// Whether this processor runs sixteen-lane kernels.
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The sixteen-lane operations, each the one the Cranelift code performs on four lanes.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::math;
    use crate::ir::CmpOp;
    use std::arch::x86_64::*;

    /// The lanes of `mask` from `p` (zeros elsewhere); a whole vector by a plain load, which
    /// some processors run faster than a masked one.
    ///
    /// # Safety
    /// The active lanes are readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn load(p: *const f32, mask: u16) -> __m512 {
        // SAFETY: the caller's guarantee.
        unsafe {
            if mask == u16::MAX {
                _mm512_loadu_ps(p)
            } else {
                _mm512_maskz_loadu_ps(mask, p)
            }
        }
    }

    /// Stores the lanes of `mask` at `p`, a whole vector by a plain store.
    ///
    /// # Safety
    /// The active lanes are writable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn store(p: *mut f32, mask: u16, x: __m512) {
        // SAFETY: the caller's guarantee.
        unsafe {
            if mask == u16::MAX {
                _mm512_storeu_ps(p, x)
            } else if mask != 0 {
                _mm512_mask_storeu_ps(p, mask, x)
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn and(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_and_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn or(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn xor(a: __m512, b: __m512) -> __m512 {
        _mm512_castsi512_ps(_mm512_xor_si512(
            _mm512_castps_si512(a),
            _mm512_castps_si512(b),
        ))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn all_ones() -> __m512 {
        _mm512_castsi512_ps(_mm512_set1_epi32(-1))
    }

    /// A comparison's result as lane masks, all bits set where true.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn mask_vector(k: __mmask16) -> __m512 {
        _mm512_castsi512_ps(_mm512_maskz_mov_epi32(k, _mm512_set1_epi32(-1)))
    }

    /// Cranelift's `bitselect`: the bits of `a` where `mask` has them set, else those of `b`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn select(mask: __m512, a: __m512, b: __m512) -> __m512 {
        let [m, a, b] = [mask, a, b].map(|x| _mm512_castps_si512(x));
        _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<0xCA>(m, a, b))
    }

    /// `a` where `a CC b` holds or `a` is NaN, else `b`: the interpreter's `max` (CC: greater
    /// than) and `min` (less than).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn pick<const CC: i32>(a: __m512, b: __m512) -> __m512 {
        let take_a = _mm512_cmp_ps_mask::<CC>(a, b) | _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a);
        _mm512_mask_blend_ps(take_a, b, a)
    }

    /// The comparisons Cranelift's `FloatCC` names: ordered, except "not equal".
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn compare(c: CmpOp, a: __m512, b: __m512) -> __m512 {
        mask_vector(match c {
            CmpOp::Eq => _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b),
            CmpOp::Ne => _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(a, b),
            CmpOp::Lt => _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b),
            CmpOp::Le => _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, b),
            CmpOp::Gt => _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b),
            CmpOp::Ge => _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b),
        })
    }

    /// `sigmoid` by its recipe: 1 / (1 + e^−x).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn sigmoid(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let e = exp(xor(x, _mm512_set1_ps(-0.0)));
        _mm512_div_ps(one, _mm512_add_ps(one, e))
    }

    /// `tanh` by its recipe: sign(x) (1 − t) / (1 + t) with t = e^−2|x|, and the odd Taylor
    /// series for |x| < 0.1.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn tanh(x: __m512) -> __m512 {
        let zero = _mm512_setzero_ps();
        let one = _mm512_set1_ps(1.0);
        let negative = compare(CmpOp::Lt, x, zero);
        let abs = select(negative, xor(x, _mm512_set1_ps(-0.0)), x);
        let t = exp(_mm512_mul_ps(_mm512_set1_ps(-2.0), abs));
        let ratio = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
        let signed = select(negative, xor(ratio, _mm512_set1_ps(-0.0)), ratio);
        let x2 = _mm512_mul_ps(x, x);
        let inner = _mm512_mul_ps(x2, _mm512_set1_ps((2.0f64 / 15.0) as f32));
        let inner = _mm512_add_ps(_mm512_set1_ps((-1.0f64 / 3.0) as f32), inner);
        let inner = _mm512_mul_ps(x2, inner);
        let inner = _mm512_add_ps(one, inner);
        let series = _mm512_mul_ps(x, inner);
        let small = compare(CmpOp::Lt, abs, _mm512_set1_ps(0.1f64 as f32));
        select(small, series, signed)
    }

    /// [`math::exp_f32`] on sixteen lanes, step for step.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub fn exp(x: __m512) -> __m512 {
        let low = _mm512_set1_ps(math::EXP_LOW);
        let below = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, low);
        let clamped = _mm512_mask_blend_ps(below, x, low);
        let high = _mm512_set1_ps(math::EXP_HIGH);
        let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(clamped, high);
        let clamped = _mm512_mask_blend_ps(above, clamped, high);

        let n = _mm512_mul_ps(clamped, _mm512_set1_ps(math::LOG2_E));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(n);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-math::LN2_HI), clamped);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-math::LN2_LO), r);

        let r2 = _mm512_mul_ps(r, r);
        let [c7, c6, c5, c4, c3, c2] = math::EXP_TAYLOR.map(|c| _mm512_set1_ps(c));
        let high = _mm512_fmadd_ps(c7, r, c6);
        let middle = _mm512_fmadd_ps(c5, r, c4);
        let low = _mm512_fmadd_ps(c3, r, c2);
        let p = _mm512_fmadd_ps(high, r2, middle);
        let p = _mm512_fmadd_ps(p, r2, low);
        let tail = _mm512_fmadd_ps(r2, p, r);
        let p = _mm512_add_ps(_mm512_set1_ps(1.0), tail);

        // n is a whole number in [-151, 129] here (NaN lanes are replaced below).
        let n = _mm512_cvtps_epi32(n);
        let half = _mm512_srai_epi32::<1>(n);
        let rest = _mm512_sub_epi32(n, half);
        let bias = _mm512_set1_epi32(127);
        let mut y = p;
        for k in [half, rest] {
            let power = _mm512_slli_epi32::<23>(_mm512_add_epi32(k, bias));
            y = _mm512_mul_ps(y, _mm512_castsi512_ps(power));
        }
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_blend_ps(nan, y, x)
    }
}

//! Kernels on sixteen lanes. Cranelift emits 128-bit vectors only, so a kernel dominated by
//! arithmetic (an LSTM's gates: five exponentials and five divisions per element; Adam's update:
//! a square root and a division) runs a quarter as wide as the processor allows. On a processor
//! with AVX-512, such a kernel runs here instead: its expression is assembled into AVX-512
//! machine code that computes sixteen positions at a time with every value in a register, and
//! the code is placed in the plan's JIT module beside the Cranelift code.
//!
//! Each instruction is the operation the Cranelift code performs (`codegen`), so both agree bit
//! for bit with the interpreter: IEEE arithmetic, the interpreter's `max`/`min` with their NaN
//! rule, and [`math::exp_f32`]'s steps with its fused multiply-adds. A kernel qualifies when it
//! reads and writes f32 only (bools live in its expression as lane masks), has no index or math
//! call, and every access is contiguous or broadcast along the innermost loop — or, for pooling,
//! every other element (a window's column at stride two) or each element repeated over a few
//! lanes (a window's gradient); a fold qualifies when it reduces a window unrolled in the body
//! and nothing else (max pooling, and the count of a window's maxima), folded in the order of
//! `codegen`'s `fold_window`. The whole loop nest runs in the assembled code: the outermost
//! loop over the range it is given, the loops inside it as an odometer of static extents.
//! The Cranelift code of every kernel is compiled too: it runs where AVX-512 is absent and when
//! `NNL_JIT_WIDE=0`, which exists to compare the two.

use super::codegen::{FOLD_LANES, Layout, PARTIALS};
use super::plan::{BufId, ExprNode, ExprOp, Fold, Kernel};
use crate::ir::composite::{self, Operand};
use crate::ir::{CmpOp, DType, Op};
use crate::tensor::math;
use iced_x86::code_asm::{
    AsmMemoryOperand, AsmRegister64, AsmRegisterZmm, CodeAssembler, IcedError, ax, cl, dword_bcst,
    dword_ptr, eax, k1, k2, k3, k4, qword_ptr, r8, r9, r10, r11, r12, r13, r14, r15, rax, rbp, rbx,
    rcx, rdi, rdx, rsi, rsp, word_ptr, zmmword_ptr,
};

/// The positions one vector computes, and its bytes.
const LANES: usize = 16;
const VECTOR_BYTES: i32 = 4 * LANES as i32;

/// The narrowest innermost loop worth running here: below it most lanes would idle (pooling
/// windows excepted, whose rows are short but whose four-lane code is slower still).
const MIN_INNER: usize = 16;

/// The registers that hold the expression's values; the rest of the 32 are the scratch
/// registers of the multi-step operations (`exp`, `sigmoid`, `tanh`).
const VALUE_REGISTERS: usize = 24;

/// The general registers that hold the first accesses' addresses; the others are read from
/// the table (`rdi`) where they are used. (`rbp` holds the offset of repeated loads.)
const ADDRESS_REGISTERS: [AsmRegister64; 9] = [r8, r9, r10, r11, rbx, r12, r13, r14, r15];

/// The assembled code of a loop nest: `nest(addresses, len, constants, outer)` computes
/// `outer` iterations of the outermost loop (with one loop, the positions `0..len` of it) and
/// every loop inside, where `addresses[a]` is access `a`'s address at the first position. It
/// advances the addresses of the table that are not in registers.
type NestFn =
    unsafe extern "C" fn(addresses: *mut *mut u8, len: usize, constants: *const u32, outer: usize);

/// How an access's elements lie along the vector loop.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Along {
    /// One element for every lane.
    Broadcast,
    /// Sixteen consecutive elements.
    Contiguous,
    /// Every other element (a pooling window's column): two loads and a permutation.
    EveryOther,
    /// Each element on `period` consecutive lanes (a pooling window's gradient, read once per
    /// window column): one load and a permutation.
    Repeated(usize),
}

/// One instruction: computes an expression node's value at a vector's positions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Instr {
    /// Access `a` (a load), at the vector's positions as `along` lays them out.
    Load {
        access: usize,
        along: Along,
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

/// A kernel assembled for sixteen lanes, whose code is not yet placed in memory.
pub struct Assembled {
    /// The machine code of the loop nest ([`NestFn`]): position-independent, it reads its
    /// constants through a register.
    pub code: Vec<u8>,
    dims: Vec<usize>,
    accesses: Vec<(BufId, i64, Vec<i64>)>,
    constants: Vec<u32>,
}

/// A window fold: the window's positions, each access's byte displacement at each, and how
/// the values fold (`codegen`'s `fold_window`).
struct Window {
    displacements: Vec<Vec<i32>>,
    /// The positions of the fold's trailing run (folded by partials and a tree).
    run_len: usize,
    fold: Fold,
    /// The expression node folded.
    value: usize,
    /// The output access.
    out: usize,
}

impl Assembled {
    /// The kernel whose nest code has been placed at `address`.
    ///
    /// # Safety
    /// `address` holds a copy of `self.code`, executable, for as long as the kernel runs.
    pub unsafe fn placed_at(self, address: *const u8) -> WideKernel {
        WideKernel {
            dims: self.dims,
            accesses: self.accesses,
            constants: self.constants.into_boxed_slice(),
            // SAFETY: the caller's guarantee; the code follows the C calling convention with
            // the parameters of `NestFn` (`NestAssembler::assemble`).
            nest: unsafe { std::mem::transmute::<*const u8, NestFn>(address) },
        }
    }
}

/// A kernel that runs on sixteen lanes.
#[derive(Debug)]
pub struct WideKernel {
    /// The loop extents (the layout's merged dimensions); the last is the vector loop.
    dims: Vec<usize>,
    /// Per access (the loads, then the outputs): its buffer, its first element's byte offset,
    /// and its byte strides along `dims`.
    accesses: Vec<(BufId, i64, Vec<i64>)>,
    /// The constants the code reads, as bits.
    constants: Box<[u32]>,
    nest: NestFn,
}

impl WideKernel {
    /// The kernel assembled for sixteen lanes, when this processor has AVX-512 and the kernel
    /// qualifies (see the module's description); `lay` is the layout its Cranelift code uses.
    pub fn assemble(k: &Kernel, lay: &Layout, dtypes: &[DType]) -> Option<Assembled> {
        if !available() || std::env::var("NNL_JIT_WIDE").is_ok_and(|v| v == "0") {
            return None;
        }
        let last = lay.dims.len().checked_sub(1)?;
        if !dtypes.iter().all(|&d| d == DType::F32) {
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
        let along: Vec<Along> = (0..accesses.len())
            .map(|a| match (lay.repeat[lay.group[a]], inner(a)) {
                (Some((period, 4)), _) if a < loads && LANES.is_multiple_of(period) => {
                    Some(Along::Repeated(period))
                }
                (Some(_), _) => None,
                (None, 0) if a < loads => Some(Along::Broadcast),
                (None, 4) => Some(Along::Contiguous),
                (None, 8) if a < loads => Some(Along::EveryOther),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let window = match k.outs.iter().position(|o| o.fold.is_some()) {
            Some(i) => {
                let out = loads + i;
                let folds_the_window_only = (0..=last).all(|d| lay.strides[lay.group[out]][d] != 0);
                if k.outs.len() != 1 || lay.unrolled.is_empty() || !folds_the_window_only {
                    return None;
                }
                let positions: usize = lay.unrolled.iter().product();
                let displacements = (0..positions)
                    .map(|p| {
                        let index = lay.unrolled_index(p);
                        (0..accesses.len())
                            .map(|a| {
                                let strides = &lay.unrolled_strides[lay.group[a]];
                                let bytes: i64 =
                                    index.iter().zip(strides).map(|(&i, &s)| i as i64 * s).sum();
                                i32::try_from(bytes).ok()
                            })
                            .collect::<Option<Vec<i32>>>()
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Window {
                    displacements,
                    run_len: lay.run_len(),
                    fold: k.outs[i].fold.expect("a fold"),
                    value: k.outs[i].value,
                    out,
                })
            }
            None => None,
        };
        let pooling = window.is_some()
            || along
                .iter()
                .any(|a| matches!(a, Along::EveryOther | Along::Repeated(_)));
        if !pooling && lay.dims[last] < MIN_INNER {
            return None;
        }
        // A position is read before it is written: an output may share a buffer with a load
        // only through the very same view (an update in place).
        for o in &k.outs {
            let same_buffer = k.loads.iter().filter(|v| v.buf == o.view.buf);
            if same_buffer.into_iter().any(|v| *v != o.view) {
                return None;
            }
        }
        let mut instrs = k
            .expr
            .iter()
            .map(|n| instr(n, k, &along))
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
        // Sixteen lanes pay where arithmetic dominates: exponentials, or the divider (Adam's
        // square root and division) over one long run of positions; and for pooling, whose
        // four-lane code shuffles its strided and repeated loads and runs short rows partly
        // element by element. A kernel of a few cheap operations per element is bound by
        // memory on four lanes already.
        let transcendental =
            |i: &Instr| matches!(i, Instr::Exp(_) | Instr::Sigmoid(_) | Instr::Tanh(_));
        let divides = |i: &Instr| matches!(i, Instr::Div(..) | Instr::Sqrt(_));
        let pays = pooling
            || instrs.iter().any(transcendental)
            || (last == 0 && instrs.iter().any(divides));
        if !pays {
            return None;
        }
        let (program, slot_of, slots) = allocate(&instrs, &outputs);
        let window_registers = window.as_ref().map_or(0, |w| 1 + w.run_len.min(PARTIALS));
        if slots + window_registers > VALUE_REGISTERS {
            return None;
        }
        // The odometer of the loops inside the outermost: at the end of a row, level `d`
        // advances each address by its stride less the rows of the levels inside it.
        let advances = (0..last)
            .map(|d| {
                accesses
                    .iter()
                    .map(|(_, _, strides)| {
                        let back: i64 = (d + 1..last)
                            .map(|e| (lay.dims[e] as i64 - 1) * strides[e])
                            .sum();
                        i32::try_from(strides[d] - back).ok()
                    })
                    .collect::<Option<Vec<i32>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        let nest = Nest {
            dims: &lay.dims,
            advances,
            along: &along,
            window: window.as_ref().map(|w| (w, slots)),
        };
        let outs: Vec<(usize, usize)> = outputs
            .iter()
            .enumerate()
            .map(|(i, &value)| (slot_of[value], loads + i))
            .collect();
        let (code, constants) = NestAssembler::assemble(&program, &outs, &slot_of, &nest).ok()?;
        Some(Assembled {
            code,
            dims: lay.dims.clone(),
            accesses,
            constants,
        })
    }

    /// Runs the kernel on the buffers `table` holds: the iterations `begin..end` of its
    /// outermost loop when `split`, else all of them (as its Cranelift code does).
    ///
    /// # Safety
    /// The kernel was planned for the buffers `table` holds, and this processor has AVX-512
    /// (a `WideKernel` exists only then).
    pub unsafe fn run(&self, table: *const *mut u8, begin: i64, end: i64, split: bool) {
        if self.dims.contains(&0) {
            return;
        }
        let outer = if split {
            begin as usize..end as usize
        } else {
            0..self.dims[0]
        };
        if outer.is_empty() {
            return;
        }
        let mut at: Vec<*mut u8> = self
            .accesses
            .iter()
            .map(|(buf, offset, strides)| {
                let skip = offset + outer.start as i64 * strides[0];
                // SAFETY: `table` holds an address for every buffer of the plan.
                unsafe { (*table.add(*buf)).wrapping_offset(skip as isize) }
            })
            .collect();
        let (len, count) = match self.dims.len() {
            1 => (outer.len(), 1),
            n => (self.dims[n - 1], outer.len()),
        };
        // SAFETY: `at` addresses the range's first position of every access, and the range
        // lies within the outermost loop's extent.
        unsafe { (self.nest)(at.as_mut_ptr(), len, self.constants.as_ptr(), count) };
    }
}

/// The loop nest a kernel's code runs, and what its body reads.
struct Nest<'a> {
    dims: &'a [usize],
    /// Per loop outside the vector loop, each access's byte advance (see `assemble`).
    advances: Vec<Vec<i32>>,
    along: &'a [Along],
    /// The window fold, and the first vector register free for its partial results.
    window: Option<(&'a Window, usize)>,
}

/// The 32 vector registers: values in the first [`VALUE_REGISTERS`], scratch above.
const ZMM: [AsmRegisterZmm; 32] = {
    use iced_x86::code_asm::*;
    [
        zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13,
        zmm14, zmm15, zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26,
        zmm27, zmm28, zmm29, zmm30, zmm31,
    ]
};

/// Scratch register `i` (0..8).
fn scratch(i: usize) -> AsmRegisterZmm {
    ZMM[VALUE_REGISTERS + i]
}

/// `vcmpps` predicates: the comparisons Cranelift's `FloatCC` names (ordered, except "not
/// equal"), and "unordered" (a NaN operand).
fn predicate(c: CmpOp) -> i32 {
    match c {
        CmpOp::Eq => 0x00,
        CmpOp::Ne => 0x04,
        CmpOp::Lt => LESS,
        CmpOp::Le => 0x12,
        CmpOp::Gt => GREATER,
        CmpOp::Ge => 0x1D,
    }
}
const LESS: i32 = 0x11;
const GREATER: i32 = 0x1E;
const UNORDERED: i32 = 0x03;

/// The assembler of a loop nest's code, and the constants the code reads (as bits, through
/// `rdx`).
struct NestAssembler {
    a: CodeAssembler,
    constants: Vec<u32>,
}

/// The stack frame's slots (bytes from `rsp`): the lane masks of the permuted loads, then one
/// counter per loop outside the vector loop.
const MASK_REPEATED_WHOLE: i32 = 0;
const MASK_REPEATED_PARTIAL: i32 = 2;
const MASK_EVEN_WHOLE: i32 = 4;
const MASK_EVEN_LOW_PARTIAL: i32 = 6;
const MASK_EVEN_HIGH_PARTIAL: i32 = 8;
const COUNTERS: i32 = 16;

impl NestAssembler {
    /// The code of the loop nest of `program`, which stores `outs` (value slot, access), or
    /// folds its window into its one output; and the constants it reads.
    fn assemble(
        program: &[(usize, Instr)],
        outs: &[(usize, usize)],
        slot_of: &[usize],
        nest: &Nest,
    ) -> Result<(Vec<u8>, Vec<u32>), IcedError> {
        let mut r = NestAssembler {
            a: CodeAssembler::new(64)?,
            constants: Vec::new(),
        };
        let saved = [rbx, rbp, r12, r13, r14, r15];
        for reg in saved {
            r.a.push(reg)?;
        }
        let levels = nest.dims.len() - 1;
        let frame = COUNTERS + 8 * levels as i32;
        r.a.sub(rsp, frame)?;
        // The loop counters: the outermost's from the argument, the others' extents.
        for d in 0..levels {
            let counter = qword_ptr(rsp + COUNTERS + 8 * d as i32);
            if d == 0 {
                r.a.mov(counter, rcx)?;
            } else {
                r.a.mov(counter, nest.dims[d] as i32)?;
            }
        }
        // k1: the lanes of the last, partial vector (none when there is none); rcx: their count.
        r.a.mov(rcx, rsi)?;
        r.a.and(rcx, LANES as i32 - 1)?;
        r.a.mov(rax, 1u64)?;
        r.a.shl(rax, cl)?;
        r.a.dec(rax)?;
        r.a.kmovw(k1, eax)?;
        if let Some(period) = nest.repeat_period() {
            // The elements a repeated load reads: 16 / period, or ⌈lanes / period⌉.
            let elements = (1u32 << (LANES / period)) - 1;
            r.a.mov(word_ptr(rsp + MASK_REPEATED_WHOLE), elements as i32)?;
            r.a.add(rcx, period as i32 - 1)?;
            r.a.shr(rcx, period.trailing_zeros() as i32)?;
            r.a.mov(rax, 1u64)?;
            r.a.shl(rax, cl)?;
            r.a.dec(rax)?;
            r.a.mov(word_ptr(rsp + MASK_REPEATED_PARTIAL), ax)?;
        }
        if nest.along.contains(&Along::EveryOther) {
            // The even elements of two vectors' worth: all of them, or those of the lanes of k1.
            r.a.mov(word_ptr(rsp + MASK_EVEN_WHOLE), 0x5555)?;
            r.a.mov(rcx, rsi)?;
            r.a.and(rcx, LANES as i32 - 1)?;
            r.a.shl(rcx, 1)?;
            r.a.mov(rax, 1u64)?;
            r.a.shl(rax, cl)?;
            r.a.dec(rax)?;
            r.a.and(rax, 0x5555_5555)?;
            r.a.mov(word_ptr(rsp + MASK_EVEN_LOW_PARTIAL), ax)?;
            r.a.shr(rax, 16)?;
            r.a.mov(word_ptr(rsp + MASK_EVEN_HIGH_PARTIAL), ax)?;
        }
        let accesses = nest.along.len();
        for (i, &reg) in ADDRESS_REGISTERS.iter().take(accesses).enumerate() {
            r.a.mov(reg, qword_ptr(rdi + 8 * i as i32))?;
        }
        // rax: the byte offset of the current vector; rcx: the bytes of the whole vectors.
        r.a.mov(rcx, rsi)?;
        r.a.and(rcx, -(LANES as i32))?;
        r.a.shl(rcx, 2)?;
        let mut row = r.a.create_label();
        let mut whole = r.a.create_label();
        let mut partial = r.a.create_label();
        let mut row_end = r.a.create_label();
        let mut done = r.a.create_label();
        r.a.set_label(&mut row)?;
        r.a.xor(rax, rax)?;
        r.a.set_label(&mut whole)?;
        r.a.cmp(rax, rcx)?;
        r.a.jae(partial)?;
        r.vector(program, outs, slot_of, nest, false)?;
        r.a.add(rax, VECTOR_BYTES)?;
        r.a.jmp(whole)?;
        r.a.set_label(&mut partial)?;
        r.a.kortestw(k1, k1)?;
        r.a.jz(row_end)?;
        r.vector(program, outs, slot_of, nest, true)?;
        r.a.set_label(&mut row_end)?;
        // The odometer: the innermost level that has rows left advances; the levels inside
        // it start over.
        let mut advance: Vec<_> = (0..levels).map(|_| r.a.create_label()).collect();
        for d in (0..levels).rev() {
            let counter = qword_ptr(rsp + COUNTERS + 8 * d as i32);
            r.a.dec(counter)?;
            r.a.jnz(advance[d])?;
            if d > 0 {
                r.a.mov(counter, nest.dims[d] as i32)?;
            }
        }
        r.a.jmp(done)?;
        for (d, label) in advance.iter_mut().enumerate() {
            r.a.set_label(label)?;
            for (a, &bytes) in nest.advances[d].iter().enumerate() {
                if bytes == 0 {
                    continue;
                }
                match ADDRESS_REGISTERS.get(a) {
                    Some(&reg) => r.a.add(reg, bytes)?,
                    None => r.a.add(qword_ptr(rdi + 8 * a as i32), bytes)?,
                }
            }
            r.a.jmp(row)?;
        }
        r.a.set_label(&mut done)?;
        r.a.add(rsp, frame)?;
        r.a.vzeroupper()?;
        for reg in saved.into_iter().rev() {
            r.a.pop(reg)?;
        }
        r.a.ret()?;
        let code = r.a.assemble(0)?;
        Ok((code, r.constants))
    }

    /// A register holding access `a`'s address: its own, or `rsi` loaded from the table.
    fn address(&mut self, a: usize) -> Result<AsmRegister64, IcedError> {
        match ADDRESS_REGISTERS.get(a) {
            Some(&reg) => Ok(reg),
            None => {
                self.a.mov(rsi, qword_ptr(rdi + 8 * a as i32))?;
                Ok(rsi)
            }
        }
    }

    /// The constant with these bits, broadcast from the table.
    fn bits(&mut self, bits: u32) -> AsmMemoryOperand {
        let i = match self.constants.iter().position(|&c| c == bits) {
            Some(i) => i,
            None => {
                self.constants.push(bits);
                self.constants.len() - 1
            }
        };
        dword_bcst(rdx + 4 * i as i32)
    }

    /// Sixteen constants, as one vector in the table.
    fn vector_constant(&mut self, lanes: [u32; LANES]) -> AsmMemoryOperand {
        let at = match self
            .constants
            .windows(LANES)
            .position(|w| w == lanes.as_slice())
        {
            Some(i) => i,
            None => {
                self.constants.extend(lanes);
                self.constants.len() - LANES
            }
        };
        zmmword_ptr(rdx + 4 * at as i32)
    }

    fn constant(&mut self, c: f32) -> AsmMemoryOperand {
        self.bits(c.to_bits())
    }

    /// `d` = the constant `c` on every lane.
    fn splat(&mut self, d: AsmRegisterZmm, c: f32) -> Result<(), IcedError> {
        let at = self.constant(c);
        self.a.vbroadcastss(d, dword_ptr(at))
    }

    /// One vector of positions at `rax` (when `partial`, the lanes of k1): the program and
    /// its stores, or the window folded position by position into the output.
    fn vector(
        &mut self,
        program: &[(usize, Instr)],
        outs: &[(usize, usize)],
        slot_of: &[usize],
        nest: &Nest,
        partial: bool,
    ) -> Result<(), IcedError> {
        if let Some(period) = nest.repeat_period() {
            self.a.mov(rbp, rax)?;
            self.a.shr(rbp, period.trailing_zeros() as i32)?;
        }
        let Some((window, first_free)) = nest.window else {
            let none = vec![0; nest.along.len()];
            for &(slot, instr) in program {
                self.instr(ZMM[slot], instr, partial, &none)?;
            }
            for &(slot, access) in outs {
                self.store(access, ZMM[slot], partial)?;
            }
            return Ok(());
        };
        // As `codegen`'s `fold_window`: each run of the window's trailing positions into
        // partial results, combined by the tree and folded into the start.
        let acc = ZMM[first_free];
        let partials: Vec<AsmRegisterZmm> = (0..window.run_len.min(PARTIALS))
            .map(|i| ZMM[first_free + 1 + i])
            .collect();
        let start = match window.fold {
            Fold::Sum => 0.0,
            Fold::Max => f32::NEG_INFINITY,
        };
        self.splat(acc, start)?;
        let value = ZMM[slot_of[window.value]];
        let mut filled = vec![false; partials.len()];
        for (p, displacement) in window.displacements.iter().enumerate() {
            for &(slot, instr) in program {
                self.instr(ZMM[slot], instr, partial, displacement)?;
            }
            let t = p % window.run_len;
            let i = t % PARTIALS;
            if filled[i] {
                self.fold(window.fold, partials[i], value)?;
            } else {
                self.a.vmovaps(partials[i], value)?;
                filled[i] = true;
            }
            if t + 1 == window.run_len {
                let run = self.tree(window.fold, &partials, &filled)?;
                self.fold(window.fold, acc, run)?;
                filled.fill(false);
            }
        }
        self.store(window.out, acc, partial)
    }

    /// `acc` = fold(acc, x), as `codegen`'s `fold` on vectors.
    fn fold(
        &mut self,
        fold: Fold,
        acc: AsmRegisterZmm,
        x: AsmRegisterZmm,
    ) -> Result<(), IcedError> {
        match fold {
            Fold::Sum => self.a.vaddps(acc, acc, x),
            Fold::Max => self.pick(acc, acc, x, GREATER),
        }
    }

    /// The partial results combined as `codegen`'s `tree` does, in place; the register
    /// holding the result.
    fn tree(
        &mut self,
        fold: Fold,
        partials: &[AsmRegisterZmm],
        filled: &[bool],
    ) -> Result<AsmRegisterZmm, IcedError> {
        let combine =
            |r: &mut NestAssembler, a: Option<AsmRegisterZmm>, b: Option<AsmRegisterZmm>| {
                Ok::<_, IcedError>(match (a, b) {
                    (Some(a), Some(b)) => {
                        r.fold(fold, a, b)?;
                        Some(a)
                    }
                    (a, b) => a.or(b),
                })
            };
        let at = |i: usize| (i < partials.len() && filled[i]).then(|| partials[i]);
        let mut q = Vec::with_capacity(FOLD_LANES);
        for l in 0..FOLD_LANES {
            q.push(combine(self, at(l), at(l + FOLD_LANES))?);
        }
        let low = combine(self, q[0], q[1])?;
        let high = combine(self, q[2], q[3])?;
        Ok(combine(self, low, high)?.expect("a run has positions"))
    }

    /// Stores `x` at the vector's positions of output `access`.
    fn store(&mut self, access: usize, x: AsmRegisterZmm, partial: bool) -> Result<(), IcedError> {
        let at = zmmword_ptr(self.address(access)? + rax);
        if partial {
            self.a.vmovups(at.k1(), x)
        } else {
            self.a.vmovups(at, x)
        }
    }

    /// `d` = load `access` at the vector's positions, `displacement` bytes on.
    fn load(
        &mut self,
        d: AsmRegisterZmm,
        access: usize,
        along: Along,
        partial: bool,
        displacement: i32,
    ) -> Result<(), IcedError> {
        let base = self.address(access)?;
        match along {
            Along::Broadcast => self.a.vbroadcastss(d, dword_ptr(base + displacement)),
            Along::Contiguous => {
                let at = zmmword_ptr(base + rax + displacement);
                if partial {
                    self.a.vmovups(d.k1().z(), at)
                } else {
                    self.a.vmovups(d, at)
                }
            }
            Along::EveryOther => {
                let (low, high) = if partial {
                    (MASK_EVEN_LOW_PARTIAL, MASK_EVEN_HIGH_PARTIAL)
                } else {
                    (MASK_EVEN_WHOLE, MASK_EVEN_WHOLE)
                };
                self.a.kmovw(k2, word_ptr(rsp + low))?;
                self.a.kmovw(k3, word_ptr(rsp + high))?;
                let upper = scratch(0);
                self.a
                    .vmovups(d.k2().z(), zmmword_ptr(base + rax * 2 + displacement))?;
                self.a.vmovups(
                    upper.k3().z(),
                    zmmword_ptr(base + rax * 2 + displacement + VECTOR_BYTES),
                )?;
                let even: [u32; LANES] = std::array::from_fn(|l| 2 * l as u32);
                let index = scratch(1);
                let even = self.vector_constant(even);
                self.a.vmovups(index, even)?;
                self.a.vpermt2ps(d, index, upper)
            }
            Along::Repeated(period) => {
                let mask = if partial {
                    MASK_REPEATED_PARTIAL
                } else {
                    MASK_REPEATED_WHOLE
                };
                self.a.kmovw(k2, word_ptr(rsp + mask))?;
                self.a
                    .vmovups(d.k2().z(), zmmword_ptr(base + rbp + displacement))?;
                let spread: [u32; LANES] = std::array::from_fn(|l| (l / period) as u32);
                let index = scratch(1);
                let spread = self.vector_constant(spread);
                self.a.vmovups(index, spread)?;
                self.a.vpermps(d, index, d)
            }
        }
    }

    /// Instruction `instr`, into `d` (which none of its operands is: `allocate`).
    /// Loads are `displacements[access]` bytes on (a window's position).
    fn instr(
        &mut self,
        d: AsmRegisterZmm,
        instr: Instr,
        partial: bool,
        displacements: &[i32],
    ) -> Result<(), IcedError> {
        let v = |x: usize| ZMM[x];
        match instr {
            Instr::Load { access, along } => {
                self.load(d, access, along, partial, displacements[access])
            }
            Instr::Const(c) => self.splat(d, c),
            Instr::Neg(x) => {
                let sign = self.constant(-0.0);
                self.a.vpxord(d, v(x), sign)
            }
            Instr::Sqrt(x) => self.a.vsqrtps(d, v(x)),
            Instr::Exp(x) => self.exp(d, v(x)),
            Instr::Sigmoid(x) => self.sigmoid(d, v(x)),
            Instr::Tanh(x) => self.tanh(d, v(x)),
            // A recipe's inner step: never live (`spelled_out`), so never in a program.
            Instr::InRecipe => Ok(()),
            Instr::Add(a, b) => self.a.vaddps(d, v(a), v(b)),
            Instr::Sub(a, b) => self.a.vsubps(d, v(a), v(b)),
            Instr::Mul(a, b) => self.a.vmulps(d, v(a), v(b)),
            Instr::Div(a, b) => self.a.vdivps(d, v(a), v(b)),
            Instr::Max(a, b) => self.pick(d, v(a), v(b), GREATER),
            Instr::Min(a, b) => self.pick(d, v(a), v(b), LESS),
            Instr::Cmp(c, a, b) => {
                self.a.vcmpps(k2, v(a), v(b), predicate(c))?;
                self.mask_vector(d)
            }
            Instr::And(a, b) => self.a.vpandd(d, v(a), v(b)),
            Instr::Or(a, b) => self.a.vpord(d, v(a), v(b)),
            Instr::Not(x) => {
                let ones = self.bits(u32::MAX);
                self.a.vpxord(d, v(x), ones)
            }
            Instr::Select(m, a, b) => {
                // Cranelift's `bitselect`: the bits of `a` where the mask's are set, else `b`'s.
                self.a.vmovaps(d, v(m))?;
                self.a.vpternlogd(d, v(a), v(b), 0xCA)
            }
            Instr::MaskToF32(x) => {
                let one = self.constant(1.0);
                self.a.vpandd(d, v(x), one)
            }
            Instr::F32ToMask(x) => {
                let zero = self.constant(0.0);
                self.a.vcmpps(k2, v(x), zero, predicate(CmpOp::Ne))?;
                self.mask_vector(d)
            }
            Instr::Copy(x) => self.a.vmovaps(d, v(x)),
        }
    }

    /// `d` = the lanes of k2 as masks (all bits set where true).
    fn mask_vector(&mut self, d: AsmRegisterZmm) -> Result<(), IcedError> {
        self.a.vpternlogd(d.k2().z(), d, d, 0xFF)
    }

    /// `a` where `a CC b` holds or `a` is NaN, else `b`: the interpreter's `max` (CC: greater
    /// than) and `min` (less than).
    fn pick(
        &mut self,
        d: AsmRegisterZmm,
        a: AsmRegisterZmm,
        b: AsmRegisterZmm,
        cc: i32,
    ) -> Result<(), IcedError> {
        self.a.vcmpps(k2, a, b, cc)?;
        self.a.vcmpps(k3, a, a, UNORDERED)?;
        self.a.korw(k2, k2, k3)?;
        self.a.vblendmps(d.k2(), b, a)
    }

    /// `sigmoid` by its recipe: 1 / (1 + e^−x).
    fn sigmoid(&mut self, d: AsmRegisterZmm, x: AsmRegisterZmm) -> Result<(), IcedError> {
        let e = scratch(7);
        let sign = self.constant(-0.0);
        self.a.vpxord(e, x, sign)?;
        self.exp(e, e)?;
        let one = self.constant(1.0);
        self.a.vaddps(e, e, one)?;
        self.splat(d, 1.0)?;
        self.a.vdivps(d, d, e)
    }

    /// `tanh` by its recipe: sign(x) (1 − t) / (1 + t) with t = e^−2|x|, and the odd Taylor
    /// series for |x| < 0.1. Negative lanes in k3, small ones in k4.
    fn tanh(&mut self, d: AsmRegisterZmm, x: AsmRegisterZmm) -> Result<(), IcedError> {
        let [ratio, other, series, t] = [0, 1, 2, 7].map(scratch);
        let sign = self.constant(-0.0);
        let zero = self.constant(0.0);
        self.a.vpxord(t, x, sign)?;
        self.a.vcmpps(k3, x, zero, LESS)?;
        self.a.vblendmps(t.k3(), x, t)?;
        let tenth = self.constant(0.1f64 as f32);
        self.a.vcmpps(k4, t, tenth, LESS)?;
        let minus_two = self.constant(-2.0);
        self.a.vmulps(t, t, minus_two)?;
        self.exp(t, t)?;
        self.splat(ratio, 1.0)?;
        self.a.vsubps(ratio, ratio, t)?;
        let one = self.constant(1.0);
        self.a.vaddps(other, t, one)?;
        self.a.vdivps(ratio, ratio, other)?;
        self.a.vpxord(other, ratio, sign)?;
        self.a.vblendmps(ratio.k3(), ratio, other)?;
        let x2 = other;
        self.a.vmulps(x2, x, x)?;
        let c3 = self.constant((2.0f64 / 15.0) as f32);
        self.a.vmulps(series, x2, c3)?;
        let c1 = self.constant((-1.0f64 / 3.0) as f32);
        self.a.vaddps(series, series, c1)?;
        self.a.vmulps(series, x2, series)?;
        self.a.vaddps(series, series, one)?;
        self.a.vmulps(series, x, series)?;
        self.a.vblendmps(d.k4(), ratio, series)
    }

    /// [`math::exp_f32`], step for step, into `d` (which may be `x`; neither is one of the
    /// first seven scratch registers). Uses k2.
    fn exp(&mut self, d: AsmRegisterZmm, x: AsmRegisterZmm) -> Result<(), IcedError> {
        let [clamped, n, r, r2, p, middle, low] = [0, 1, 2, 3, 4, 5, 6].map(scratch);
        let below = self.constant(math::EXP_LOW);
        self.a.vcmpps(k2, x, below, LESS)?;
        self.a.vblendmps(clamped.k2(), x, below)?;
        let above = self.constant(math::EXP_HIGH);
        self.a.vcmpps(k2, clamped, above, GREATER)?;
        self.a.vblendmps(clamped.k2(), clamped, above)?;

        let log2e = self.constant(math::LOG2_E);
        self.a.vmulps(n, clamped, log2e)?;
        // Rounded to nearest, exceptions suppressed.
        self.a.vrndscaleps(n, n, 8)?;
        self.a.vmovaps(r, clamped)?;
        let ln2_hi = self.constant(-math::LN2_HI);
        self.a.vfmadd231ps(r, n, ln2_hi)?;
        let ln2_lo = self.constant(-math::LN2_LO);
        self.a.vfmadd231ps(r, n, ln2_lo)?;

        self.a.vmulps(r2, r, r)?;
        let [c7, c6, c5, c4, c3, c2] = math::EXP_TAYLOR;
        for (reg, times, plus) in [(p, c7, c6), (middle, c5, c4), (low, c3, c2)] {
            self.splat(reg, times)?;
            let plus = self.constant(plus);
            self.a.vfmadd213ps(reg, r, plus)?;
        }
        self.a.vfmadd213ps(p, r2, middle)?;
        self.a.vfmadd213ps(p, r2, low)?;
        self.a.vfmadd213ps(p, r2, r)?;
        let one = self.constant(1.0);
        self.a.vaddps(p, p, one)?;

        // n is a whole number in [-151, 129] here (NaN lanes are replaced below): 2^n as two
        // powers, each a normal number.
        let (whole, half) = (n, middle);
        self.a.vcvtps2dq(whole, n)?;
        self.a.vpsrad(half, whole, 1)?;
        self.a.vpsubd(whole, whole, half)?;
        let bias = self.bits(127);
        for power in [half, whole] {
            self.a.vpaddd(power, power, bias)?;
            self.a.vpslld(power, power, 23)?;
            self.a.vmulps(p, p, power)?;
        }
        self.a.vcmpps(k2, x, x, UNORDERED)?;
        self.a.vblendmps(d.k2(), p, x)
    }
}

impl Nest<'_> {
    /// The period of the repeated loads (one for all: the layout's innermost merged axis).
    fn repeat_period(&self) -> Option<usize> {
        self.along.iter().find_map(|a| match a {
            Along::Repeated(period) => Some(*period),
            _ => None,
        })
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

/// The instructions that `outputs` need, each with the slot (vector register) it writes,
/// reading slots; the slot of every instruction; the number of slots. A slot is reused once its
/// value has been read for the last time: an LSTM's gate kernel has 81 instructions, most the
/// steps of recipes computed in scratch registers, and needs few slots.
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
fn instr(n: &ExprNode, k: &Kernel, along: &[Along]) -> Option<Instr> {
    let a = |i: usize| n.args[i];
    let arg_dtype = |i: usize| k.expr[n.args[i]].dtype;
    Some(match (&n.op, n.dtype) {
        (ExprOp::Load(access), DType::F32) => Instr::Load {
            access: *access,
            along: along[*access],
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

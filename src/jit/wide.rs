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
//! folds nothing, reads and writes f32 only (bools live in its expression as lane masks), every
//! access is contiguous or broadcast along the innermost loop, and it has no index or math call.
//! The Cranelift code of every kernel is compiled too: it runs where AVX-512 is absent and when
//! `NNL_JIT_WIDE=0`, which exists to compare the two.

use super::codegen::Layout;
use super::plan::{BufId, ExprNode, ExprOp, Kernel};
use crate::ir::composite::{self, Operand};
use crate::ir::{CmpOp, DType, Op};
use crate::tensor::math;
use iced_x86::code_asm::{
    AsmRegister64, AsmRegisterZmm, CodeAssembler, IcedError, cl, dword_bcst, dword_ptr, eax, k1,
    k2, k3, k4, qword_ptr, r8, r9, r10, r11, r12, r13, r14, r15, rax, rbp, rbx, rcx, rdi, rdx, rsi,
    zmmword_ptr,
};

/// The positions one vector computes, and its bytes.
const LANES: usize = 16;
const VECTOR_BYTES: i32 = 4 * LANES as i32;

/// The narrowest innermost loop worth running here: below it most lanes would idle.
const MIN_INNER: usize = 16;

/// The registers that hold the expression's values; the rest of the 32 are the scratch
/// registers of the multi-step operations (`exp`, `sigmoid`, `tanh`).
const VALUE_REGISTERS: usize = 24;

/// The general registers that hold the first accesses' addresses; the others are read from
/// the table (`rdi`) where they are used.
const ADDRESS_REGISTERS: [AsmRegister64; 10] = [r8, r9, r10, r11, rbx, rbp, r12, r13, r14, r15];

/// The assembled code of a row: `row(addresses, len, constants)` computes positions `0..len`
/// of the innermost loop, where `addresses[a]` is access `a`'s address at position 0.
type RowFn = unsafe extern "C" fn(addresses: *const *mut u8, len: usize, constants: *const u32);

/// One instruction: computes an expression node's value at a vector's positions.
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

/// A kernel assembled for sixteen lanes, whose code is not yet placed in memory.
pub struct Assembled {
    /// The machine code of a row ([`RowFn`]): position-independent, it reads its constants
    /// through a register.
    pub code: Vec<u8>,
    dims: Vec<usize>,
    accesses: Vec<(BufId, i64, Vec<i64>)>,
    broadcast: Vec<bool>,
    constants: Vec<u32>,
}

impl Assembled {
    /// The kernel whose row code has been placed at `address`.
    ///
    /// # Safety
    /// `address` holds a copy of `self.code`, executable, for as long as the kernel runs.
    pub unsafe fn placed_at(self, address: *const u8) -> WideKernel {
        WideKernel {
            dims: self.dims,
            accesses: self.accesses,
            broadcast: self.broadcast,
            constants: self.constants.into_boxed_slice(),
            // SAFETY: the caller's guarantee; the code follows the C calling convention with
            // the parameters of `RowFn` (`Rows::prologue`).
            row: unsafe { std::mem::transmute::<*const u8, RowFn>(address) },
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
    /// Per access: whether it reads one element for the whole innermost loop.
    broadcast: Vec<bool>,
    /// The constants the row code reads, as bits.
    constants: Box<[u32]>,
    row: RowFn,
}

impl WideKernel {
    /// The kernel assembled for sixteen lanes, when this processor has AVX-512 and the kernel
    /// qualifies (see the module's description); `lay` is the layout its Cranelift code uses.
    pub fn assemble(k: &Kernel, lay: &Layout, dtypes: &[DType]) -> Option<Assembled> {
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
        // A position is read before it is written: an output may share a buffer with a load
        // only through the very same view (an update in place).
        for o in &k.outs {
            let same_buffer = k.loads.iter().filter(|v| v.buf == o.view.buf);
            if same_buffer.into_iter().any(|v| *v != o.view) {
                return None;
            }
        }
        let broadcast: Vec<bool> = (0..accesses.len()).map(|a| inner(a) == 0).collect();
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
        // Sixteen lanes pay where arithmetic dominates: exponentials, or the divider (Adam's
        // square root and division) over one long run of positions. A kernel of a few cheap
        // operations per element is bound by memory on four lanes already, and one of many
        // short rows pays a call per row here.
        let transcendental =
            |i: &Instr| matches!(i, Instr::Exp(_) | Instr::Sigmoid(_) | Instr::Tanh(_));
        let divides = |i: &Instr| matches!(i, Instr::Div(..) | Instr::Sqrt(_));
        let pays = instrs.iter().any(transcendental) || (last == 0 && instrs.iter().any(divides));
        if !pays {
            return None;
        }
        let (program, slot_of, slots) = allocate(&instrs, &outputs);
        if slots > VALUE_REGISTERS {
            return None;
        }
        let outs: Vec<(usize, usize)> = outputs
            .iter()
            .enumerate()
            .map(|(i, &value)| (slot_of[value], loads + i))
            .collect();
        let (code, constants) = Rows::assemble(&program, &outs, accesses.len()).ok()?;
        Some(Assembled {
            code,
            dims: lay.dims.clone(),
            accesses,
            broadcast,
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
        let (begin, end) = (begin as usize, end as usize);
        let bases: Vec<*mut u8> = self
            .accesses
            .iter()
            // SAFETY: `table` holds an address for every buffer of the plan.
            .map(|(buf, offset, _)| unsafe { (*table.add(*buf)).offset(*offset as isize) })
            .collect();
        let last = self.dims.len() - 1;
        let range = |n: usize| if split { begin..end } else { 0..n };
        let constants = self.constants.as_ptr();
        if last == 0 {
            let positions = range(self.dims[0]);
            let at: Vec<*mut u8> = bases
                .iter()
                .zip(&self.broadcast)
                .map(|(&base, &broadcast)| {
                    let skip = if broadcast { 0 } else { positions.start * 4 };
                    base.wrapping_add(skip)
                })
                .collect();
            // SAFETY: `at` addresses the range's first position of every access, and the
            // range lies within the loop's extent.
            unsafe { (self.row)(at.as_ptr(), positions.len(), constants) };
            return;
        }
        let mut at = bases.clone();
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
            unsafe { (self.row)(at.as_ptr(), self.dims[last], constants) };
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

/// The assembler of a row's code, and the constants the code reads (as bits, through `rdx`).
struct Rows {
    a: CodeAssembler,
    constants: Vec<u32>,
}

impl Rows {
    /// The code of a row of `program` that stores `outs` (value slot, access) for `accesses`
    /// addresses, and the constants it reads.
    fn assemble(
        program: &[(usize, Instr)],
        outs: &[(usize, usize)],
        accesses: usize,
    ) -> Result<(Vec<u8>, Vec<u32>), IcedError> {
        let mut r = Rows {
            a: CodeAssembler::new(64)?,
            constants: Vec::new(),
        };
        let saved = [rbx, rbp, r12, r13, r14, r15];
        for reg in saved {
            r.a.push(reg)?;
        }
        // k1: the lanes of the last, partial vector (none when there is none).
        r.a.mov(rcx, rsi)?;
        r.a.and(rcx, LANES as i32 - 1)?;
        r.a.mov(rax, 1u64)?;
        r.a.shl(rax, cl)?;
        r.a.dec(rax)?;
        r.a.kmovw(k1, eax)?;
        for (i, &reg) in ADDRESS_REGISTERS.iter().take(accesses).enumerate() {
            r.a.mov(reg, qword_ptr(rdi + 8 * i as i32))?;
        }
        // rax: the byte offset of the current vector; rcx: the bytes of the whole vectors.
        let mut whole = r.a.create_label();
        let mut partial = r.a.create_label();
        let mut done = r.a.create_label();
        r.a.xor(rax, rax)?;
        r.a.mov(rcx, rsi)?;
        r.a.and(rcx, -(LANES as i32))?;
        r.a.shl(rcx, 2)?;
        r.a.set_label(&mut whole)?;
        r.a.cmp(rax, rcx)?;
        r.a.jae(partial)?;
        r.body(program, outs, false)?;
        r.a.add(rax, VECTOR_BYTES)?;
        r.a.jmp(whole)?;
        r.a.set_label(&mut partial)?;
        r.a.kortestw(k1, k1)?;
        r.a.jz(done)?;
        r.body(program, outs, true)?;
        r.a.set_label(&mut done)?;
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
    fn bits(&mut self, bits: u32) -> iced_x86::code_asm::AsmMemoryOperand {
        let i = match self.constants.iter().position(|&c| c == bits) {
            Some(i) => i,
            None => {
                self.constants.push(bits);
                self.constants.len() - 1
            }
        };
        dword_bcst(rdx + 4 * i as i32)
    }

    fn constant(&mut self, c: f32) -> iced_x86::code_asm::AsmMemoryOperand {
        self.bits(c.to_bits())
    }

    /// `d` = the constant `c` on every lane.
    fn splat(&mut self, d: AsmRegisterZmm, c: f32) -> Result<(), IcedError> {
        let at = self.constant(c);
        self.a.vbroadcastss(d, dword_ptr(at))
    }

    /// One vector of positions at `rax` (when `partial`, the lanes of k1; the others are zero).
    fn body(
        &mut self,
        program: &[(usize, Instr)],
        outs: &[(usize, usize)],
        partial: bool,
    ) -> Result<(), IcedError> {
        for &(slot, instr) in program {
            self.instr(ZMM[slot], instr, partial)?;
        }
        for &(slot, access) in outs {
            let at = zmmword_ptr(self.address(access)? + rax);
            if partial {
                self.a.vmovups(at.k1(), ZMM[slot])?;
            } else {
                self.a.vmovups(at, ZMM[slot])?;
            }
        }
        Ok(())
    }

    /// Instruction `instr`, into `d` (which none of its operands is: `allocate`).
    fn instr(&mut self, d: AsmRegisterZmm, instr: Instr, partial: bool) -> Result<(), IcedError> {
        let v = |x: usize| ZMM[x];
        match instr {
            Instr::Load {
                access,
                broadcast: true,
            } => {
                let base = self.address(access)?;
                self.a.vbroadcastss(d, dword_ptr(base))
            }
            Instr::Load {
                access,
                broadcast: false,
            } => {
                let at = zmmword_ptr(self.address(access)? + rax);
                if partial {
                    self.a.vmovups(d.k1().z(), at)
                } else {
                    self.a.vmovups(d, at)
                }
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

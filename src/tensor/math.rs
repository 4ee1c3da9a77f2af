//! The scalar math both backends compute with: the functions of the math primitives (`exp`,
//! `log`, `sin`, `cos`, `erf`) with the C ABI the JIT's generated code calls, named in the
//! primitive table (`ir::primitive`), and f32 `exp`.
//!
//! `exp` in f32, computed with nothing but the operations both backends have: the JIT emits the
//! same steps on four lanes at a time (`jit::codegen`), so its vector loops agree with the
//! interpreter bit for bit without calling a scalar library function per element.
//!
//! e^x = 2^n · e^r with n = round(x / ln 2) and r = x − n·ln 2 in [−ln 2 / 2, ln 2 / 2]. ln 2 is
//! split in two (Cody and Waite) so that n·`LN2_HI` is exact. e^r is its Taylor polynomial of
//! degree 7 (the remainder is below 5·10⁻⁹, a twentieth of an f32 ulp), summed with its large
//! terms last. Every multiply-add is fused (one rounding, and one instruction on the JIT's
//! vectors), and the polynomial is evaluated in Estrin's order — three independent pairs, then
//! two steps in r² — so that its dependency chain is three multiply-adds deep instead of five:
//! a loop of exponentials is bound by that chain's latency. 2^n is built from exponent bits in
//! two halves, so that results down to the subnormals round once. Checked over every f32, the
//! error is at most 1.072 ulp (libm's `expf` is within 0.5; Horner's order with the same fused
//! steps, 1.059); the test samples it.

/// Below this, e^x rounds to 0; above `EXP_HIGH` it rounds to ∞. Clamping to them keeps n in
/// the range of two f32 powers of two.
pub const EXP_LOW: f32 = -104.0;
pub const EXP_HIGH: f32 = 89.0;
pub const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// 355/512: nine significant bits, so n·`LN2_HI` is exact for every n the clamp allows.
pub const LN2_HI: f32 = 0.693_359_4;
/// ln 2 − `LN2_HI`.
pub const LN2_LO: f32 = -2.121_944_4e-4;
/// 1/7!, 1/6!, …, 1/2!: the Taylor coefficients after 1 + r.
pub const EXP_TAYLOR: [f32; 6] = [
    1.0 / 5040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    0.5,
];

/// e^x, for the interpreter and the JIT's scalar loops.
pub fn exp_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let x = x.clamp(EXP_LOW, EXP_HIGH);
    let n = (x * LOG2_E).round_ties_even();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let r2 = r * r;
    let [c7, c6, c5, c4, c3, c2] = EXP_TAYLOR;
    let high = c7.mul_add(r, c6);
    let middle = c5.mul_add(r, c4);
    let low = c3.mul_add(r, c2);
    let p = high.mul_add(r2, middle).mul_add(r2, low);
    // 1 + (r + r²·p) rounds the large terms last, where one rounding costs the least.
    let p = 1.0 + r2.mul_add(p, r);
    let n = n as i32;
    let half = n >> 1;
    p * power_of_two(half) * power_of_two(n - half)
}

/// 2^k for k in the normal range [−126, 127].
fn power_of_two(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// A math primitive's scalar functions: the interpreter maps them over tensors, the JIT's loops
/// call them by their symbols (the four-lane one from vector loops: one call per vector instead
/// of four keeps the live vector registers from being spilled around every lane).
#[derive(Debug, Clone, Copy)]
pub struct Math {
    pub f32: extern "C" fn(f32) -> f32,
    pub f64: extern "C" fn(f64) -> f64,
    /// The f32 function on the four f32s at the address, in place.
    pub f32x4: unsafe extern "C" fn(*mut f32),
    pub symbol_f32: &'static str,
    pub symbol_f64: &'static str,
    pub symbol_f32x4: &'static str,
}

macro_rules! math {
    ($constant:ident, $name:ident, $f32:expr, $f64:expr) => {
        pub const $constant: Math = {
            extern "C" fn f32(x: f32) -> f32 {
                $f32(x)
            }
            extern "C" fn f64(x: f64) -> f64 {
                $f64(x)
            }
            /// # Safety
            /// `lanes` points to four writable f32s.
            unsafe extern "C" fn f32x4(lanes: *mut f32) {
                for i in 0..4 {
                    // SAFETY: the caller passes the address of four f32s (a 16-byte slot).
                    unsafe { *lanes.add(i) = f32(*lanes.add(i)) };
                }
            }
            Math {
                f32,
                f64,
                f32x4,
                symbol_f32: concat!("nnl_", stringify!($name), "_f32"),
                symbol_f64: concat!("nnl_", stringify!($name), "_f64"),
                symbol_f32x4: concat!("nnl_", stringify!($name), "4_f32"),
            }
        };
    };
}

math!(EXP, exp, exp_f32, f64::exp);
math!(LOG, log, f32::ln, f64::ln);
math!(SIN, sin, f32::sin, f64::sin);
math!(COS, cos, f32::cos, f64::cos);
math!(ERF, erf, libm::erff, libm::erf);

#[cfg(test)]
mod tests {
    use super::exp_f32;

    /// The distance in ulps between an f32 and the exact value (as f64).
    fn ulps(got: f32, want: f64) -> f64 {
        let rounded = want as f32;
        let ulp = if rounded == 0.0 || !rounded.is_normal() {
            f64::from(f32::from_bits(1))
        } else {
            f64::from(f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs())
        };
        (f64::from(got) - want).abs() / ulp
    }

    #[test]
    fn within_one_ulp_over_the_whole_range() {
        // Every 97th f32 from the largest negative input that doesn't underflow to the largest
        // that doesn't overflow: about 22 million inputs, subnormal results included.
        let mut worst = (0.0, 0.0f32);
        let mut check = |x: f32| {
            let e = ulps(exp_f32(x), f64::from(x).exp());
            if e > worst.0 {
                worst = (e, x);
            }
        };
        for bits in (0..=103.9f32.to_bits()).step_by(97) {
            check(-f32::from_bits(bits));
        }
        for bits in (0..=88.72f32.to_bits()).step_by(97) {
            check(f32::from_bits(bits));
        }
        assert!(worst.0 <= 1.072, "{} ulps at {}", worst.0, worst.1);
    }

    #[test]
    fn special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(1.0), std::f32::consts::E);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(88.73), f32::INFINITY);
        assert_eq!(exp_f32(-104.0), 0.0);
        assert_eq!(exp_f32(f32::MAX), f32::INFINITY);
        assert_eq!(exp_f32(f32::MIN), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(-103.0), (-103f64).exp() as f32);
        assert!(exp_f32(88.72) < f32::INFINITY);
    }
}

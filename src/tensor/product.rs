//! The matrix product both backends call. The interpreter (`linalg::matmul`) and the JIT's
//! matmul step multiply through [`product`], so a product's sums are formed in the same order
//! by both, and what the reference computes is what the compiled step computes.
//!
//! With more than one thread, a large product is split over its *output* (a band of rows or
//! of columns per thread), never over `k`: each element is still one dot product summed in the
//! library's order, so the split changes no bit, and the result is the same on any number of
//! threads. Each part runs single-threaded, forked with `rayon::join` from the caller's pool.
//! (`tools/gemm_shapes.py` measures this against the gemm crate's own threading, OpenBLAS and
//! oneDNN on the reference models' products.)

use gemm::Parallelism;

/// A matrix operand: element `(i, j)` is at `ptr + i·row_stride + j·col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct Operand<T> {
    pub ptr: *const T,
    pub row_stride: isize,
    pub col_stride: isize,
}

impl<T: Copy> Operand<T> {
    /// Element `(i, j)`.
    ///
    /// # Safety
    /// It lies inside the allocation the operand points into.
    unsafe fn at(&self, i: usize, j: usize) -> T {
        // SAFETY: the caller's guarantee.
        unsafe {
            *self
                .ptr
                .offset(i as isize * self.row_stride + j as isize * self.col_stride)
        }
    }
}

// SAFETY: operands and destinations only say where values are; `product` reads the operands
// from several threads while no one writes them, and writes disjoint bands of the destination.
unsafe impl<T: Sync> Send for Operand<T> {}
unsafe impl<T: Sync> Sync for Operand<T> {}
unsafe impl<T: Send> Send for Dest<T> {}
unsafe impl<T: Send> Sync for Dest<T> {}

/// A row-major destination matrix with rows `row_stride` elements apart.
#[derive(Clone, Copy, Debug)]
pub struct Dest<T> {
    pub ptr: *mut T,
    pub row_stride: isize,
}

impl<T> Dest<T> {
    /// The address of element `(i, j)`.
    ///
    /// # Safety
    /// It lies inside the allocation the destination points into.
    unsafe fn element(&self, i: usize, j: usize) -> *mut T {
        // SAFETY: the caller's guarantee.
        unsafe { self.ptr.offset(i as isize * self.row_stride + j as isize) }
    }
}

/// How a product is computed (the measurement tool compares them; the backends use
/// [`METHOD`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The gemm crate, threaded by itself (`Parallelism::Rayon`).
    GemmThreads,
    /// The gemm crate single-threaded on each thread's band of the output.
    GemmSplit,
    /// The system BLAS (cargo feature `blas`), single-threaded on each thread's band.
    #[cfg(feature = "blas")]
    Blas,
}

/// The method the backends use.
#[cfg(not(feature = "blas"))]
pub const METHOD: Method = Method::GemmSplit;
#[cfg(feature = "blas")]
pub const METHOD: Method = Method::Blas;

/// The number of multiply-adds below which a product runs on one thread: forking and joining
/// costs more than the second thread saves. Measured with `tools/gemm_shapes.py`.
pub const SPLIT_WORK: usize = 1 << 20;

/// The column length from which a right operand stored by columns is copied row-major before
/// the gemm crate multiplies by it. Measured with `tools/gemm_bench.rs` on one thread: with
/// k = 512 the copy pays at every m tried (m = 32: 0.66 → 0.43 ms, 128: 1.18 → 0.89, 256:
/// 1.67 → 1.47; row-major: 0.15, 0.60, 1.19); with k = 128 and n = 1600 it does not
/// (0.29 → 0.47 ms; row-major 0.25).
const COPY_RIGHT_MIN_K: usize = 256;

/// The fewest rows of the product for which that copy pays: it costs as much whatever `m`, and
/// with m = 9 (the CNN's first weight gradient per image, k = 676, n = 32) it made the product
/// 2.4× slower.
const COPY_RIGHT_MIN_M: usize = 32;

/// Output bands start at multiples of this many rows or columns (a 512-bit vector of f32), so
/// each thread's part keeps the library's full-width kernels.
const BAND_ALIGN: usize = 16;

/// The gemm crate multiplies a product whose sides are both at most this long on a path of
/// its own (in `gemm_basic_generic`, `k` blocked by 512 instead of by its cache model).
const GEMM_SMALL: usize = 64;

/// The element types [`product`] multiplies.
pub trait Real: Copy + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
    /// `dst = a·b` by the system BLAS on the calling thread, the operands laid out as
    /// `blas::layouts` found.
    ///
    /// # Safety
    /// As [`product`]'s, and `layout` is the operands'.
    #[cfg(feature = "blas")]
    unsafe fn blas(
        m: usize,
        n: usize,
        k: usize,
        dst: Dest<Self>,
        a: Operand<Self>,
        b: Operand<Self>,
        layout: [i32; 5],
    );
}

/// `Real` for a float type, its BLAS product being `$gemm`.
macro_rules! real {
    ($t:ty, $gemm:ident) => {
        impl Real for $t {
            const ZERO: $t = 0.0;
            const ONE: $t = 1.0;
            #[cfg(feature = "blas")]
            unsafe fn blas(
                m: usize,
                n: usize,
                k: usize,
                dst: Dest<$t>,
                a: Operand<$t>,
                b: Operand<$t>,
                [ta, lda, tb, ldb, ldc]: [i32; 5],
            ) {
                // SAFETY: the caller's guarantee; the dimensions fit in i32 (`blas::layouts`).
                unsafe {
                    blas::$gemm(
                        blas::ROW_MAJOR,
                        ta,
                        tb,
                        m as i32,
                        n as i32,
                        k as i32,
                        1.0,
                        a.ptr,
                        lda,
                        b.ptr,
                        ldb,
                        0.0,
                        dst.ptr,
                        ldc,
                    )
                }
            }
        }
    };
}

real!(f32, cblas_sgemm);
real!(f64, cblas_dgemm);

/// `dst = a·b` for an m×k `a` and a k×n `b`, on up to `threads` threads of the current rayon
/// pool, by [`METHOD`]. With `k = 0`, `dst` is left as it is (the callers' are zeroed).
///
/// # Safety
/// Every element of the three matrices (by their shapes and strides) is inside one live
/// allocation; `dst` does not overlap the operands, and no two of its elements share an
/// address.
pub unsafe fn product<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: Dest<T>,
    a: Operand<T>,
    b: Operand<T>,
    threads: usize,
) {
    // SAFETY: the caller's guarantee.
    unsafe { product_with(METHOD, [m, n, k], dst, a, b, threads) }
}

/// [`product`] by a given method.
///
/// # Safety
/// As [`product`]'s.
pub unsafe fn product_with<T: Real>(
    method: Method,
    [m, n, k]: [usize; 3],
    dst: Dest<T>,
    a: Operand<T>,
    b: Operand<T>,
    threads: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let threads = if m * n * k < SPLIT_WORK { 1 } else { threads };
    match method {
        Method::GemmThreads => {
            let parallelism = if threads > 1 {
                Parallelism::Rayon(threads)
            } else {
                Parallelism::None
            };
            // SAFETY: the caller's guarantee.
            unsafe { gemm_one(m, n, k, dst, a, b, parallelism) }
        }
        Method::GemmSplit => {
            // The gemm crate packs a right operand stored by columns (`g·Wᵀ`) element by
            // element, which made mlp_big's `g·W₂ᵀ` 1.6× slower than the same product
            // row-major: such an operand is copied row-major first. The library sums in the
            // same order for either layout (`tools/gemm_bench.rs` checks it on the reference
            // models' products), and the interpreter multiplies row-major copies anyway.
            let right_by_columns = b.row_stride == 1
                && b.col_stride != 1
                && k >= COPY_RIGHT_MIN_K
                && m >= COPY_RIGHT_MIN_M;
            if right_by_columns && a.col_stride == 1 && m < n {
                // SAFETY: the caller's guarantee.
                unsafe { transposed_product([m, n, k], dst, a, b, threads) };
                return;
            }
            let b_copy = right_by_columns.then(|| row_major_copy(b, k, n, threads));
            let b = match &b_copy {
                Some(c) => Operand {
                    ptr: c.as_ptr(),
                    row_stride: n as isize,
                    col_stride: 1,
                },
                None => b,
            };
            // SAFETY: the caller's guarantee, which holds for each band; the copy lives until
            // the product is done.
            unsafe {
                split([m, n, k], 0, dst, a, b, threads, &|m, n, dst, a, b| {
                    gemm_one(m, n, k, dst, a, b, Parallelism::None)
                })
            }
        }
        #[cfg(feature = "blas")]
        Method::Blas => {
            // OpenBLAS sums in another order for a transposed operand than for the same
            // values row-major (its packing differs), and the interpreter multiplies row-major
            // copies where the JIT passes views: a transposed operand is copied row-major
            // first (by all threads), so both backends hand OpenBLAS the same layout.
            let a_copy = (a.col_stride != 1).then(|| row_major_copy(a, m, k, threads));
            let b_copy = (b.col_stride != 1).then(|| row_major_copy(b, k, n, threads));
            let dense = |x: Operand<T>, copy: &Option<Vec<T>>, cols: usize| match copy {
                Some(c) => Operand {
                    ptr: c.as_ptr(),
                    row_stride: cols as isize,
                    col_stride: 1,
                },
                None => x,
            };
            let (a, b) = (dense(a, &a_copy, k), dense(b, &b_copy, n));
            // SAFETY: the caller's guarantee; the copies live until the product is done.
            unsafe {
                match blas::layouts(m, n, k, &dst, &a, &b) {
                    // A band's layout fits when the whole product's does (only m or n shrinks).
                    Some(_) => {
                        blas::single_threaded();
                        split(
                            [m, n, k],
                            blas::SMALL_WORK,
                            dst,
                            a,
                            b,
                            threads,
                            &|m, n, dst, a, b| match blas::layouts(m, n, k, &dst, &a, &b) {
                                Some(layout) => T::blas(m, n, k, dst, a, b, layout),
                                None => gemm_one(m, n, k, dst, a, b, Parallelism::None),
                            },
                        )
                    }
                    None => split([m, n, k], 0, dst, a, b, threads, &|m, n, dst, a, b| {
                        gemm_one(m, n, k, dst, a, b, Parallelism::None)
                    }),
                }
            }
        }
    }
}

/// `dst = a·b` computed as `(bᵀ·aᵀ)ᵀ`, for a row-major `a` and a `b` stored by columns with
/// fewer rows in `a` than columns in `b`: `bᵀ` is then row-major as it lies, and only `aᵀ`, the
/// smaller operand, is copied row-major (mlp_big's `g·W₂ᵀ`, g 128×512, W₂ 512×512: 0.87 →
/// 0.69 ms on one thread, `tools/gemm_bench.rs`). The `n`×`m` product is copied transposed into
/// `dst`. Each element is the same dot product, summed by the gemm crate in the same order
/// (it blocks `k` by its length alone, and multiplication commutes), so no bit changes.
///
/// # Safety
/// As [`product`]'s.
unsafe fn transposed_product<T: Real>(
    [m, n, k]: [usize; 3],
    dst: Dest<T>,
    a: Operand<T>,
    b: Operand<T>,
    threads: usize,
) {
    let a_t = row_major_copy(transposed(a), k, m, threads);
    let mut c_t: Vec<T> = Vec::with_capacity(n * m);
    let c_t_dst = Dest {
        ptr: c_t.as_mut_ptr(),
        row_stride: m as isize,
    };
    let a_t = Operand {
        ptr: a_t.as_ptr(),
        row_stride: m as isize,
        col_stride: 1,
    };
    // SAFETY: the caller's guarantee for `b`; `a_t` and `c_t` hold k·m and n·m elements, and
    // every element of `c_t` is written (the library does not read its destination).
    unsafe {
        split(
            [n, m, k],
            0,
            c_t_dst,
            transposed(b),
            a_t,
            threads,
            &|m, n, dst, a, b| gemm_one(m, n, k, dst, a, b, Parallelism::None),
        );
        c_t.set_len(n * m);
    }
    let c = Operand {
        ptr: c_t.as_ptr(),
        row_stride: 1,
        col_stride: m as isize,
    };
    // SAFETY: `c` is the m×n product stored by columns; `dst` holds m rows of n.
    unsafe { copy_into(c, m, n, dst, threads) };
}

/// The transpose of `x`, as it lies.
fn transposed<T>(x: Operand<T>) -> Operand<T> {
    Operand {
        ptr: x.ptr,
        row_stride: x.col_stride,
        col_stride: x.row_stride,
    }
}

/// The `rows`×`cols` matrix `x` copied row-major.
fn row_major_copy<T: Real>(x: Operand<T>, rows: usize, cols: usize, threads: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    let dst = Dest {
        ptr: out.as_mut_ptr(),
        row_stride: cols as isize,
    };
    // SAFETY: `out` has room for rows·cols elements; `x` is `product`'s caller's operand.
    unsafe {
        copy_into(x, rows, cols, dst, threads);
        out.set_len(rows * cols);
    }
    out
}

/// Copies the `rows`×`cols` matrix `x` into `dst`, bands of rows on `threads` threads. Each
/// band is filled by tiles of `TILE`×`TILE` elements, so that a matrix stored by columns is
/// read along a few of its columns at once instead of one element per cache line, and the
/// tile's rows of the copy stay in the cache while it is filled.
///
/// # Safety
/// Every element of `x` lies in one allocation; `dst` holds `rows` rows of `cols` writable
/// elements that overlap neither `x` nor each other.
pub unsafe fn copy_into<T: Real>(
    x: Operand<T>,
    rows: usize,
    cols: usize,
    dst: Dest<T>,
    threads: usize,
) {
    use rayon::prelude::*;
    const TILE: usize = 16;
    let rows_per_band = rows.div_ceil(threads.max(1)).max(1);
    let bands = rows.div_ceil(rows_per_band);
    (0..bands).into_par_iter().for_each(|band| {
        let first = band * rows_per_band;
        let last = (first + rows_per_band).min(rows);
        for r0 in (first..last).step_by(TILE) {
            let r1 = (r0 + TILE).min(last);
            for c0 in (0..cols).step_by(TILE) {
                let c1 = (c0 + TILE).min(cols);
                for r in r0..r1 {
                    for c in c0..c1 {
                        // SAFETY: `(r, c)` is an element of `x` and of `dst` (the caller's
                        // guarantee); the bands' rows are disjoint.
                        unsafe { *dst.element(r, c) = x.at(r, c) };
                    }
                }
            }
        }
    });
}

/// Runs `part` on up to `threads` bands of the output, of rows or of columns. Public for the
/// measurement tool, which splits other libraries' products the same way.
///
/// The gemm crate multiplies a product whose sides are both at most `GEMM_SMALL` on a path of
/// its own, which blocks `k` differently; a band takes that path only when the whole product
/// does, so that splitting never changes a sum's order. Among the cuts that keep to this, the
/// one with the most bands, then the one across the longer side (each band then reads its own
/// part of one operand and all of the other, the smaller).
///
/// With the system BLAS, every band must also stay above `min_band_work` multiply-adds
/// (OpenBLAS multiplies smaller products with kernels of their own).
///
/// # Safety
/// As [`product`]'s, and `part` computes `dst = a·b` for the matrices it is given.
pub unsafe fn split<T: Real>(
    [m, n, k]: [usize; 3],
    min_band_work: usize,
    dst: Dest<T>,
    a: Operand<T>,
    b: Operand<T>,
    threads: usize,
    part: &(dyn Fn(usize, usize, Dest<T>, Operand<T>, Operand<T>) + Sync),
) {
    let whole_small = m <= GEMM_SMALL && n <= GEMM_SMALL;
    let cut = |rows: bool| {
        let (len, other) = if rows { (m, n) } else { (n, m) };
        let bands = Bands {
            dst,
            a,
            b,
            rows,
            m,
            n,
            len,
            parts: 1,
        };
        (1..=threads.min(len / BAND_ALIGN).max(1))
            .rev()
            .map(|parts| Bands { parts, ..bands })
            .find(|cut| {
                (whole_small || other > GEMM_SMALL || cut.narrowest() > GEMM_SMALL)
                    && (cut.parts == 1 || cut.narrowest() * other * k > min_band_work)
            })
            .unwrap_or(bands)
    };
    let (longer, shorter) = (cut(m >= n), cut(m < n));
    let bands = if shorter.parts > longer.parts {
        shorter
    } else {
        longer
    };
    bands.run(0, bands.parts, part);
}

/// The operands of a split product and how it is cut.
#[derive(Clone, Copy)]
struct Bands<T> {
    dst: Dest<T>,
    a: Operand<T>,
    b: Operand<T>,
    rows: bool,
    m: usize,
    n: usize,
    len: usize,
    parts: usize,
}

impl<T: Real> Bands<T> {
    /// The length of the narrowest band (the last).
    fn narrowest(&self) -> usize {
        self.len - self.start(self.parts - 1)
    }

    /// The first row or column of band `i`.
    fn start(&self, i: usize) -> usize {
        if i == self.parts {
            return self.len;
        }
        (self.len * i / self.parts)
            .next_multiple_of(BAND_ALIGN)
            .min(self.len)
    }

    /// Computes bands `first..last`, halving the range over `rayon::join`.
    fn run(
        &self,
        first: usize,
        last: usize,
        part: &(dyn Fn(usize, usize, Dest<T>, Operand<T>, Operand<T>) + Sync),
    ) {
        if last - first > 1 {
            let mid = (first + last) / 2;
            rayon::join(|| self.run(first, mid, part), || self.run(mid, last, part));
            return;
        }
        let (from, to) = (self.start(first), self.start(last));
        if from == to {
            return;
        }
        let (mut dst, mut a, mut b) = (self.dst, self.a, self.b);
        let from = from as isize;
        let (m, n) = if self.rows {
            // SAFETY: rows `from..to` of `dst` and `a` lie inside them.
            unsafe {
                dst.ptr = dst.ptr.offset(from * dst.row_stride);
                a.ptr = a.ptr.offset(from * a.row_stride);
            }
            (to - from as usize, self.n)
        } else {
            // SAFETY: columns `from..to` of `dst` and `b` lie inside them.
            unsafe {
                dst.ptr = dst.ptr.offset(from);
                b.ptr = b.ptr.offset(from * b.col_stride);
            }
            (self.m, to - from as usize)
        };
        part(m, n, dst, a, b);
    }
}

/// One call of the gemm crate.
///
/// # Safety
/// As [`product`]'s.
unsafe fn gemm_one<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: Dest<T>,
    a: Operand<T>,
    b: Operand<T>,
    parallelism: Parallelism,
) {
    // SAFETY: the caller's guarantee; `dst` is not read (`read_dst` is false). gemm
    // dispatches on `T`, which is f32 or f64.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr,
            1,
            dst.row_stride,
            false,
            a.ptr,
            a.col_stride,
            a.row_stride,
            b.ptr,
            b.col_stride,
            b.row_stride,
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The system BLAS's CBLAS interface (OpenBLAS), declared here rather than through a bindings
/// crate: two functions and a thread setting.
#[cfg(feature = "blas")]
mod blas {
    use super::{Dest, Operand};
    use std::sync::Once;

    pub const ROW_MAJOR: i32 = 101;
    /// OpenBLAS (0.3.21, `SMALL_MATRIX_OPT`) takes products of at most about this many
    /// multiply-adds to kernels of their own, which sum in another order.
    pub const SMALL_WORK: usize = 1_000_000;
    const NO_TRANS: i32 = 111;
    const TRANS: i32 = 112;

    #[link(name = "openblas")]
    unsafe extern "C" {
        #[allow(clippy::too_many_arguments)]
        pub fn cblas_sgemm(
            order: i32,
            trans_a: i32,
            trans_b: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f32,
            a: *const f32,
            lda: i32,
            b: *const f32,
            ldb: i32,
            beta: f32,
            c: *mut f32,
            ldc: i32,
        );
        #[allow(clippy::too_many_arguments)]
        pub fn cblas_dgemm(
            order: i32,
            trans_a: i32,
            trans_b: i32,
            m: i32,
            n: i32,
            k: i32,
            alpha: f64,
            a: *const f64,
            lda: i32,
            b: *const f64,
            ldb: i32,
            beta: f64,
            c: *mut f64,
            ldc: i32,
        );
        fn openblas_set_num_threads(n: i32);
    }

    /// The transposition flag and leading dimension CBLAS takes a `rows`×`cols` operand with
    /// (row-major), if it can take it as it lies: one unit stride, the other at least the
    /// length of a row (or column) and within `i32`.
    pub fn layout<T>(x: &Operand<T>, rows: usize, cols: usize) -> Option<[i32; 2]> {
        let lead = |stride: isize, len: usize| {
            (stride >= len.max(1) as isize && stride <= i32::MAX as isize).then_some(stride as i32)
        };
        if x.col_stride == 1 {
            lead(x.row_stride, cols).map(|ld| [NO_TRANS, ld])
        } else if x.row_stride == 1 {
            lead(x.col_stride, rows).map(|ld| [TRANS, ld])
        } else {
            None
        }
    }

    /// The flags and leading dimensions of a product's operands and destination, if CBLAS can
    /// take them as they lie.
    pub fn layouts<T>(
        m: usize,
        n: usize,
        k: usize,
        dst: &Dest<T>,
        a: &Operand<T>,
        b: &Operand<T>,
    ) -> Option<[i32; 5]> {
        let max = i32::MAX as usize;
        if m > max || n > max || k > max {
            return None;
        }
        let [ta, lda] = layout(a, m, k)?;
        let [tb, ldb] = layout(b, k, n)?;
        let [_, ldc] = layout(
            &Operand {
                ptr: dst.ptr.cast_const(),
                row_stride: dst.row_stride,
                col_stride: 1,
            },
            m,
            n,
        )?;
        Some([ta, lda, tb, ldb, ldc])
    }

    /// OpenBLAS runs on the calling thread: the threads are rayon's, splitting the output.
    pub fn single_threaded() {
        static ONCE: Once = Once::new();
        // SAFETY: a plain setting of the library.
        ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−1, 1).
    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    /// `a·b` for an m×k `a` and a k×n `b`, each row-major or (`transposed`) stored as its
    /// transpose, by `product` on `threads` threads of a pool of that size.
    fn multiply<T: Real>(
        [m, n, k]: [usize; 3],
        [ta, tb]: [bool; 2],
        a: &[T],
        b: &[T],
        threads: usize,
    ) -> Vec<T> {
        let operand = |x: &[T], rows: usize, cols: usize, transposed: bool| Operand {
            ptr: x.as_ptr(),
            row_stride: if transposed { 1 } else { cols as isize },
            col_stride: if transposed { rows as isize } else { 1 },
        };
        let mut out = vec![T::ZERO; m * n];
        let dst = Dest {
            ptr: out.as_mut_ptr(),
            row_stride: n as isize,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        // SAFETY: `a` and `b` hold m·k and k·n values, `out` m·n, laid out as described.
        pool.install(|| unsafe {
            product(
                m,
                n,
                k,
                dst,
                operand(a, m, k, ta),
                operand(b, k, n, tb),
                threads,
            )
        });
        out
    }

    fn transpose<T: Copy>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
        (0..cols)
            .flat_map(|j| (0..rows).map(move |i| x[i * cols + j]))
            .collect()
    }

    /// Products of the reference models (mlp_small, mlp_big, the CNN, the LSTM) and shapes
    /// around the gemm crate's small-product path and the band alignment.
    const SHAPES: [([usize; 3], [bool; 2]); 11] = [
        ([64, 128, 784], [false, false]),
        ([128, 512, 784], [false, false]),
        ([128, 512, 512], [false, true]),
        ([32, 512, 512], [false, true]),
        ([512, 10, 128], [true, false]),
        ([784, 512, 128], [true, false]),
        ([64, 1600, 128], [false, true]),
        ([1024, 512, 16], [false, false]),
        ([128, 512, 1024], [true, false]),
        ([130, 60, 300], [false, false]),
        ([65, 70, 400], [true, true]),
    ];

    fn check<T: Real + PartialEq + std::fmt::Debug>(cast: fn(f64) -> T, to_f64: fn(T) -> f64) {
        for ([m, n, k], [ta, tb]) in SHAPES {
            let a: Vec<T> = values(m * k, 1).into_iter().map(cast).collect();
            let b: Vec<T> = values(k * n, 2).into_iter().map(cast).collect();
            let (a_stored, b_stored) = (
                if ta { transpose(&a, m, k) } else { a.clone() },
                if tb { transpose(&b, k, n) } else { b.clone() },
            );
            let one = multiply([m, n, k], [false, false], &a, &b, 1);
            let split = multiply([m, n, k], [false, false], &a, &b, 2);
            let views = multiply([m, n, k], [ta, tb], &a_stored, &b_stored, 2);
            let shape = format!("[{m}, {k}] @ [{k}, {n}] ({ta}, {tb})");
            assert!(one == split, "{shape}: two threads change the bits");
            assert!(one == views, "{shape}: transposed views change the bits");
            for i in 0..m {
                for j in 0..n {
                    let exact: f64 = (0..k)
                        .map(|l| to_f64(a[i * k + l]) * to_f64(b[l * n + j]))
                        .sum();
                    let got = to_f64(one[i * n + j]);
                    assert!(
                        (got - exact).abs() <= 1e-4 * (1.0 + exact.abs()),
                        "{shape}: element ({i}, {j}) is {got}, not {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn products_are_right_and_their_bits_depend_on_neither_threads_nor_layout() {
        check::<f32>(|x| x as f32, f64::from);
        check::<f64>(|x| x, |x| x);
    }
}

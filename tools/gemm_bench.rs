//! Times matrix products by one method on one thread count; driven by tools/gemm_shapes.py,
//! which gives it the reference models' products and runs it once per method and thread count
//! (each in its own process, so one library's idle threads never compete with another's).
//!
//!     gemm_bench METHOD THREADS < products
//!
//! Each input line is one product of a plan: `model batch m n k a_rs a_cs a_bs b_rs b_cs b_bs`
//! (strides in elements; `batch` products `a_bs`/`b_bs` apart).
//! Each output line is a JSON object with the shortest time of one run of the line's products,
//! a hash of the result's bits, and whether the result has the same bits when the operands are
//! first copied row-major (what the interpreter multiplies, where the JIT reads views).
//!
//! Methods: `gemm` (the gemm crate threaded by itself, as nnl called it before
//! `tensor::product`), `split` (`tensor::product`'s own split of the output over gemm),
//! `openblas` (OpenBLAS's own threads), `openblas_split` (single-threaded OpenBLAS on the same
//! split), `dnnl` (oneDNN's sgemm, OpenMP threads), `dnnl_split`. OpenBLAS and oneDNN are
//! loaded at run time (`dlopen`), so this builds without them.

use nnl::tensor::product::{self, Dest, Method, Operand};
use std::ffi::{c_char, c_int, c_void};
use std::io::BufRead;
use std::time::Instant;

unsafe extern "C" {
    fn dlopen(file: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, name: *const c_char) -> *mut c_void;
}
const RTLD_NOW: c_int = 2;
const RTLD_GLOBAL: c_int = 0x100;

type CblasSgemm = unsafe extern "C" fn(
    i32,
    i32,
    i32,
    i32,
    i32,
    i32,
    f32,
    *const f32,
    i32,
    *const f32,
    i32,
    f32,
    *mut f32,
    i32,
);
type DnnlSgemm = unsafe extern "C" fn(
    c_char,
    c_char,
    i64,
    i64,
    i64,
    f32,
    *const f32,
    i64,
    *const f32,
    i64,
    f32,
    *mut f32,
    i64,
) -> c_int;
type SetThreads = unsafe extern "C" fn(c_int);

/// A symbol of a shared library, loaded globally (oneDNN's OpenMP runtime is then reachable).
fn symbol(library: &str, name: &str) -> Result<*mut c_void, String> {
    let file = format!("{library}\0");
    let sym = format!("{name}\0");
    // SAFETY: NUL-terminated strings; loading the libraries runs their initializers only.
    unsafe {
        let handle = dlopen(file.as_ptr().cast(), RTLD_NOW | RTLD_GLOBAL);
        if handle.is_null() {
            return Err(format!("cannot load {library}"));
        }
        let f = dlsym(handle, sym.as_ptr().cast());
        if f.is_null() {
            return Err(format!("no {name} in {library}"));
        }
        Ok(f)
    }
}

#[derive(Clone, Copy)]
enum Library {
    Gemm {
        split: bool,
    },
    OpenBlas {
        sgemm: CblasSgemm,
        split: bool,
    },
    Dnnl {
        sgemm: DnnlSgemm,
        omp_threads: SetThreads,
        split: bool,
    },
}

struct Line {
    model: String,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a: [isize; 3],
    b: [isize; 3],
}

fn parse(line: &str) -> Result<Line, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 11 {
        return Err(format!("expected 11 fields: {line}"));
    }
    let u = |i: usize| f[i].parse::<usize>().map_err(|e| format!("{line}: {e}"));
    let s = |i: usize| f[i].parse::<isize>().map_err(|e| format!("{line}: {e}"));
    Ok(Line {
        model: f[0].to_string(),
        batch: u(1)?,
        m: u(2)?,
        n: u(3)?,
        k: u(4)?,
        a: [s(5)?, s(6)?, s(7)?],
        b: [s(8)?, s(9)?, s(10)?],
    })
}

/// The number of elements a `rows`×`cols` matrix repeated `batch` times with these strides
/// spans.
fn span(batch: usize, rows: usize, cols: usize, [rs, cs, bs]: [isize; 3]) -> usize {
    let last = (batch as isize - 1) * bs + (rows as isize - 1) * rs + (cols as isize - 1) * cs;
    last as usize + 1
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// One product by `library`: `dst = a·b`, all f32, `dst` row-major m×n.
///
/// # Safety
/// The matrices lie inside live allocations.
#[allow(clippy::too_many_arguments)]
unsafe fn multiply(
    library: Library,
    m: usize,
    n: usize,
    k: usize,
    dst: Dest<f32>,
    a: Operand<f32>,
    b: Operand<f32>,
    threads: usize,
) {
    // Row-major CBLAS/oneDNN flags and leading dimension of an operand.
    let layout = |x: &Operand<f32>| {
        if x.col_stride == 1 {
            (false, x.row_stride.max(1))
        } else {
            (true, x.col_stride.max(1))
        }
    };
    let openblas = |sgemm: CblasSgemm| {
        move |m: usize, n: usize, dst: Dest<f32>, a: Operand<f32>, b: Operand<f32>| {
            let ((ta, lda), (tb, ldb)) = (layout(&a), layout(&b));
            let flag = |t: bool| if t { 112 } else { 111 };
            // SAFETY: the caller's guarantee.
            unsafe {
                sgemm(
                    101,
                    flag(ta),
                    flag(tb),
                    m as i32,
                    n as i32,
                    k as i32,
                    1.0,
                    a.ptr,
                    lda as i32,
                    b.ptr,
                    ldb as i32,
                    0.0,
                    dst.ptr,
                    dst.row_stride as i32,
                )
            }
        }
    };
    let dnnl = |sgemm: DnnlSgemm| {
        move |m: usize, n: usize, dst: Dest<f32>, a: Operand<f32>, b: Operand<f32>| {
            let ((ta, lda), (tb, ldb)) = (layout(&a), layout(&b));
            let flag = |t: bool| (if t { b'T' } else { b'N' }) as c_char;
            // SAFETY: the caller's guarantee.
            let status = unsafe {
                sgemm(
                    flag(ta),
                    flag(tb),
                    m as i64,
                    n as i64,
                    k as i64,
                    1.0,
                    a.ptr,
                    lda as i64,
                    b.ptr,
                    ldb as i64,
                    0.0,
                    dst.ptr,
                    dst.row_stride as i64,
                )
            };
            assert_eq!(status, 0, "dnnl_sgemm failed");
        }
    };
    // SAFETY (all): the caller's guarantee.
    unsafe {
        match library {
            Library::Gemm { split: false } => {
                product::product_with(Method::GemmThreads, [m, n, k], dst, a, b, threads)
            }
            Library::Gemm { split: true } => {
                product::product_with(Method::GemmSplit, [m, n, k], dst, a, b, threads)
            }
            Library::OpenBlas { sgemm, split } => {
                let parts = if split && m * n * k >= product::SPLIT_WORK {
                    threads
                } else {
                    1
                };
                product::split([m, n, k], 1_000_000, dst, a, b, parts, &openblas(sgemm))
            }
            Library::Dnnl {
                sgemm,
                omp_threads,
                split: false,
            } => {
                omp_threads(threads as c_int);
                dnnl(sgemm)(m, n, dst, a, b)
            }
            Library::Dnnl {
                sgemm,
                omp_threads,
                split: true,
            } => {
                let parts = if m * n * k >= product::SPLIT_WORK {
                    threads
                } else {
                    1
                };
                let call = dnnl(sgemm);
                product::split([m, n, k], 0, dst, a, b, parts, &move |m, n, dst, a, b| {
                    omp_threads(1);
                    call(m, n, dst, a, b)
                })
            }
        }
    }
}

/// Runs the line's products as the JIT runs a batch: whole products per thread when there are
/// at least as many as threads and enough work, else one after another, each on all threads.
fn run_line(library: Library, line: &Line, a: &[f32], b: &[f32], out: &mut [f32], threads: usize) {
    let (m, n, k) = (line.m, line.n, line.k);
    let out_ptr = out.as_mut_ptr() as usize;
    let one = |i: usize, threads: usize| {
        let at = |s: [isize; 3]| i as isize * s[2];
        let dst = Dest {
            ptr: (out_ptr as *mut f32).wrapping_add(i * m * n),
            row_stride: n as isize,
        };
        let lhs = Operand {
            ptr: a.as_ptr().wrapping_offset(at(line.a)),
            row_stride: line.a[0],
            col_stride: line.a[1],
        };
        let rhs = Operand {
            ptr: b.as_ptr().wrapping_offset(at(line.b)),
            row_stride: line.b[0],
            col_stride: line.b[1],
        };
        // SAFETY: `a`, `b` and `out` were sized by `span` for these strides.
        unsafe { multiply(library, m, n, k, dst, lhs, rhs, threads) }
    };
    if threads > 1 && line.batch >= threads && line.batch * m * n * k >= 1 << 20 {
        let per_thread = line.batch.div_ceil(threads);
        rayon::scope(|scope| {
            for first in (0..line.batch).step_by(per_thread) {
                let one = &one;
                scope.spawn(move |_| {
                    (first..(first + per_thread).min(line.batch)).for_each(|i| one(i, 1))
                });
            }
        });
    } else {
        (0..line.batch).for_each(|i| one(i, threads));
    }
}

/// FNV-1a over the bits.
fn hash(x: &[f32]) -> u64 {
    x.iter().fold(0xcbf2_9ce4_8422_2325, |h, v| {
        (h ^ v.to_bits() as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The same matrices copied row-major, batch after batch.
fn row_major(
    x: &[f32],
    batch: usize,
    rows: usize,
    cols: usize,
    [rs, cs, bs]: [isize; 3],
) -> Vec<f32> {
    let mut out = Vec::with_capacity(batch * rows * cols);
    for i in 0..batch as isize {
        for r in 0..rows as isize {
            for c in 0..cols as isize {
                out.push(x[(i * bs + r * rs + c * cs) as usize]);
            }
        }
    }
    out
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, method, threads] = &args[..] else {
        return Err("usage: gemm_bench METHOD THREADS < products".into());
    };
    let threads: usize = threads.parse().map_err(|e| format!("threads: {e}"))?;
    let openblas = || -> Result<CblasSgemm, String> {
        let set = symbol("libopenblas.so.0", "openblas_set_num_threads")?;
        let sgemm = symbol("libopenblas.so.0", "cblas_sgemm")?;
        // SAFETY: the symbols' C signatures.
        unsafe {
            std::mem::transmute::<*mut c_void, SetThreads>(set)(threads as c_int);
            Ok(std::mem::transmute::<*mut c_void, CblasSgemm>(sgemm))
        }
    };
    let dnnl = |split: bool| -> Result<Library, String> {
        let sgemm = symbol("libdnnl.so.2", "dnnl_sgemm")?;
        let omp = symbol("libgomp.so.1", "omp_set_num_threads")?;
        // SAFETY: the symbols' C signatures.
        unsafe {
            Ok(Library::Dnnl {
                sgemm: std::mem::transmute::<*mut c_void, DnnlSgemm>(sgemm),
                omp_threads: std::mem::transmute::<*mut c_void, SetThreads>(omp),
                split,
            })
        }
    };
    let library = match method.as_str() {
        "gemm" => Library::Gemm { split: false },
        "split" => Library::Gemm { split: true },
        "openblas" => Library::OpenBlas {
            sgemm: openblas()?,
            split: false,
        },
        "openblas_split" => {
            let sgemm = symbol("libopenblas.so.0", "cblas_sgemm")?;
            let set = symbol("libopenblas.so.0", "openblas_set_num_threads")?;
            // SAFETY: the symbols' C signatures.
            unsafe {
                std::mem::transmute::<*mut c_void, SetThreads>(set)(1);
                Library::OpenBlas {
                    sgemm: std::mem::transmute::<*mut c_void, CblasSgemm>(sgemm),
                    split: true,
                }
            }
        }
        "dnnl" => dnnl(false)?,
        "dnnl_split" => dnnl(true)?,
        other => return Err(format!("unknown method `{other}`")),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    for (i, text) in std::io::stdin().lock().lines().enumerate() {
        let text = text.map_err(|e| e.to_string())?;
        if text.trim().is_empty() {
            continue;
        }
        let line = parse(&text)?;
        let (m, n, k) = (line.m, line.n, line.k);
        let a = values(span(line.batch, m, k, line.a), 2 * i as u64);
        let b = values(span(line.batch, k, n, line.b), 2 * i as u64 + 1);
        let mut out = vec![0.0f32; line.batch * m * n];
        let seconds = pool.install(|| {
            for _ in 0..3 {
                run_line(library, &line, &a, &b, &mut out, threads);
            }
            // Samples of at least 5 ms each; the fastest of 9 (on a shared machine, the one
            // least disturbed).
            let start = Instant::now();
            run_line(library, &line, &a, &b, &mut out, threads);
            let once = start.elapsed().as_secs_f64().max(1e-7);
            let reps = ((5e-3 / once).ceil() as usize).max(1);
            let samples: Vec<f64> = (0..9)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..reps {
                        run_line(library, &line, &a, &b, &mut out, threads);
                    }
                    start.elapsed().as_secs_f64() / reps as f64
                })
                .collect();
            samples.into_iter().fold(f64::INFINITY, f64::min)
        });
        let got = hash(&out);
        let dense_a = row_major(&a, line.batch, m, k, line.a);
        let dense_b = row_major(&b, line.batch, k, n, line.b);
        let dense = Line {
            a: [k as isize, 1, (m * k) as isize],
            b: [n as isize, 1, (k * n) as isize],
            model: line.model.clone(),
            ..line
        };
        let mut copied = vec![0.0f32; line.batch * m * n];
        pool.install(|| run_line(library, &dense, &dense_a, &dense_b, &mut copied, threads));
        println!(
            "{{\"line\": {i}, \"model\": \"{}\", \"seconds\": {seconds:e}, \"hash\": \"{got:016x}\", \"layout_invariant\": {}}}",
            dense.model,
            got == hash(&copied)
        );
    }
    Ok(())
}

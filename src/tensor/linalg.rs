//! The primitives that move data by index: `matmul`, `unfold`/`fold` and `gather`/`scatter_add`.

use super::product::{self, Dest, Operand};
use super::{Elem, Float, Num, row_major, unravel};
use crate::ir::Window;
use ndarray::{ArrayD, IxDyn};

/// `[..S, M, K] @ [..S, K, N]`, one product (`product::product`, which the JIT calls too) per
/// batch index, each on up to `threads` threads.
pub(crate) fn matmul<T: Float>(
    a: &ArrayD<T>,
    b: &ArrayD<T>,
    threads: usize,
) -> Result<ArrayD<T>, String> {
    let (sa, sb) = (a.shape(), b.shape());
    let r = sa.len();
    if r < 2 || sb.len() != r || sa[..r - 2] != sb[..r - 2] || sa[r - 1] != sb[r - 2] {
        return Err(format!("matmul of shapes {sa:?} and {sb:?}"));
    }
    let (m, k, n) = (sa[r - 2], sa[r - 1], sb[r - 1]);
    let batch: usize = sa[..r - 2].iter().product();
    let mut shape = sa.to_vec();
    shape[r - 1] = n;
    let mut out = vec![T::default(); batch * m * n];
    if m > 0 && n > 0 && k > 0 {
        let (a, b) = (row_major(a), row_major(b));
        for i in 0..batch {
            let lhs = &a[i * m * k..(i + 1) * m * k];
            let rhs = &b[i * k * n..(i + 1) * k * n];
            let dst = &mut out[i * m * n..(i + 1) * m * n];
            // SAFETY: `lhs` is an m×k, `rhs` a k×n and `dst` an m×n row-major matrix, each a
            // slice of exactly that many elements; `dst` does not alias the operands.
            unsafe {
                product::product(
                    m,
                    n,
                    k,
                    Dest {
                        ptr: dst.as_mut_ptr(),
                        row_stride: n as isize,
                    },
                    Operand {
                        ptr: lhs.as_ptr(),
                        row_stride: k as isize,
                        col_stride: 1,
                    },
                    Operand {
                        ptr: rhs.as_ptr(),
                        row_stride: n as isize,
                        col_stride: 1,
                    },
                    threads,
                );
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

/// A stretch of one window row that lies inside the image: kernel tap `r = ki·k + kj`, the
/// first window position `col = oh·OW + ow` and the pixel `ih·W + iw` it reads, and how many
/// consecutive positions follow (each one `stride` pixels further).
struct Run {
    r: usize,
    col: usize,
    pixel: usize,
    len: usize,
}

/// Every run of a window over an `[H, W]` image, in the order (ki, kj, oh); also the number of
/// window positions `OH·OW`.
fn runs(w: &Window, [h, wd]: [usize; 2]) -> Result<(Vec<Run>, usize), String> {
    let (oh, ow) = window_positions(w, [h, wd])?;
    let at = |o: usize, kk: usize, len: usize| {
        (o * w.stride + kk * w.dilation)
            .checked_sub(w.padding)
            .filter(|&i| i < len)
    };
    let mut runs = Vec::new();
    for ki in 0..w.kernel {
        for kj in 0..w.kernel {
            // The window columns whose tap `kj` falls inside the image form one interval.
            let inside: Vec<usize> = (0..ow).filter(|&oj| at(oj, kj, wd).is_some()).collect();
            let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
                continue;
            };
            let iw = at(first, kj, wd).expect("inside");
            for oi in 0..oh {
                if let Some(ih) = at(oi, ki, h) {
                    runs.push(Run {
                        r: ki * w.kernel + kj,
                        col: oi * ow + first,
                        pixel: ih * wd + iw,
                        len: last - first + 1,
                    });
                }
            }
        }
    }
    Ok((runs, oh * ow))
}

/// im2col: `[B, C, H, W]` → `[B, C·k·k, OH·OW]`, zeros where a window hangs over the border.
pub(crate) fn unfold<T: Elem>(x: &ArrayD<T>, w: &Window) -> Result<ArrayD<T>, String> {
    let &[b, c, h, wd] = x.shape() else {
        return Err(format!("unfold needs [B, C, H, W], got {:?}", x.shape()));
    };
    let (oh, ow) = window_positions(w, [h, wd])?;
    let kk = w.kernel * w.kernel;
    let mut out = vec![T::default(); b * c * kk * oh * ow];
    unfold_into(&row_major(x), [b * c, h, wd], w, &mut out)?;
    ArrayD::from_shape_vec(IxDyn(&[b, c * kk, oh * ow]), out).map_err(|e| e.to_string())
}

/// The window positions `(OH, OW)` over an `[H, W]` image.
fn window_positions(w: &Window, [h, wd]: [usize; 2]) -> Result<(usize, usize), String> {
    if w.kernel == 0 || w.stride == 0 || w.dilation == 0 {
        return Err(format!("degenerate window {w:?}"));
    }
    match (w.out_len(h), w.out_len(wd)) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err(format!("window {w:?} larger than {h}×{wd}")),
    }
}

/// [`unfold`] on row-major slices: `x` holds `images` images of `[H, W]`; `out` gets
/// `[images, k·k, OH·OW]`: every element when there is no padding, else those of the windows'
/// positions inside the image (the others must be zeroed before).
pub fn unfold_into<T: Copy>(
    x: &[T],
    [images, h, wd]: [usize; 3],
    w: &Window,
    out: &mut [T],
) -> Result<(), String> {
    let (runs, l) = runs(w, [h, wd])?;
    let kk = w.kernel * w.kernel;
    if x.len() != images * h * wd || out.len() != images * kk * l {
        return Err(format!("unfold of {} elements into {}", x.len(), out.len()));
    }
    for (image, cols) in x.chunks_exact(h * wd).zip(out.chunks_exact_mut(kk * l)) {
        for run in &runs {
            let dst = &mut cols[run.r * l + run.col..][..run.len];
            if w.stride == 1 {
                dst.copy_from_slice(&image[run.pixel..][..run.len]);
            } else {
                for (t, d) in dst.iter_mut().enumerate() {
                    *d = image[run.pixel + t * w.stride];
                }
            }
        }
    }
    Ok(())
}

/// col2im, the adjoint of `unfold`: `[B, C·k·k, OH·OW]` → `[B, C, H, W]`, overlaps summed in
/// the order (ki, kj, oh, ow).
pub(crate) fn fold<T: Num>(
    y: &ArrayD<T>,
    w: &Window,
    [h, wd]: [usize; 2],
) -> Result<ArrayD<T>, String> {
    let kk = w.kernel * w.kernel;
    let &[b, ckk, _] = y.shape() else {
        return Err(format!("fold needs [B, C·k·k, L], got {:?}", y.shape()));
    };
    if ckk % kk != 0 {
        return Err(format!("fold of {:?} to {h}×{wd} with {w:?}", y.shape()));
    }
    let c = ckk / kk;
    let mut out = vec![T::default(); b * c * h * wd];
    fold_into(&row_major(y), [b * c, h, wd], w, &mut out, T::plus)?;
    ArrayD::from_shape_vec(IxDyn(&[b, c, h, wd]), out).map_err(|e| e.to_string())
}

/// [`fold`] on row-major slices: `y` holds `[images, k·k, OH·OW]`; `out`, zeroed, gets `images`
/// images of `[H, W]`, summed with `add`.
pub fn fold_into<T: Copy>(
    y: &[T],
    [images, h, wd]: [usize; 3],
    w: &Window,
    out: &mut [T],
    add: impl Fn(T, T) -> T,
) -> Result<(), String> {
    let (runs, l) = runs(w, [h, wd])?;
    let kk = w.kernel * w.kernel;
    if y.len() != images * kk * l || out.len() != images * h * wd {
        return Err(format!(
            "fold of {} elements into {} with {w:?}",
            y.len(),
            out.len()
        ));
    }
    for (cols, image) in y.chunks_exact(kk * l).zip(out.chunks_exact_mut(h * wd)) {
        for run in &runs {
            let src = &cols[run.r * l + run.col..][..run.len];
            if w.stride == 1 {
                // Contiguous on both sides, so the compiler vectorizes the additions.
                let dst = &mut image[run.pixel..][..run.len];
                for (p, &v) in dst.iter_mut().zip(src) {
                    *p = add(*p, v);
                }
            } else {
                for (t, &v) in src.iter().enumerate() {
                    let p = &mut image[run.pixel + t * w.stride];
                    *p = add(*p, v);
                }
            }
        }
    }
    Ok(())
}

/// The row an id selects, or a sentence naming the id and where it sits in `ids`.
fn row_of(ids: &ArrayD<i32>, flat: usize, id: i32, rows: usize) -> Result<usize, String> {
    usize::try_from(id)
        .ok()
        .filter(|&i| i < rows)
        .ok_or_else(|| {
            let index = unravel(ids.shape(), flat);
            format!("id {id} at {index:?} is out of range for a table of {rows} rows")
        })
}

/// Rows of a table: `table[V, ..D]`, `ids[..S]` → `[..S, ..D]`.
pub(crate) fn gather<T: Elem>(table: &ArrayD<T>, ids: &ArrayD<i32>) -> Result<ArrayD<T>, String> {
    let Some((&rows, rest)) = table.shape().split_first() else {
        return Err("gather from a scalar".into());
    };
    let width: usize = rest.iter().product();
    let t = row_major(table);
    let mut out = Vec::with_capacity(ids.len() * width);
    for (flat, &id) in ids.iter().enumerate() {
        let row = row_of(ids, flat, id, rows)?;
        out.extend_from_slice(&t[row * width..(row + 1) * width]);
    }
    let shape: Vec<usize> = ids.shape().iter().chain(rest).copied().collect();
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

/// The adjoint of `gather`: `ids[..S]`, `updates[..S, ..D]` → `[rows, ..D]`, summed per row.
pub(crate) fn scatter_add<T: Num>(
    ids: &ArrayD<i32>,
    updates: &ArrayD<T>,
    rows: usize,
) -> Result<ArrayD<T>, String> {
    let Some(rest) = updates.shape().strip_prefix(ids.shape()) else {
        return Err(format!(
            "scatter_add of updates {:?} at ids {:?}",
            updates.shape(),
            ids.shape()
        ));
    };
    let width: usize = rest.iter().product();
    let u = row_major(updates);
    let mut out = vec![T::default(); rows * width];
    for (flat, &id) in ids.iter().enumerate() {
        let row = row_of(ids, flat, id, rows)?;
        let src = &u[flat * width..(flat + 1) * width];
        for (o, &v) in out[row * width..(row + 1) * width].iter_mut().zip(src) {
            *o = o.plus(v);
        }
    }
    let shape: Vec<usize> = std::iter::once(rows).chain(rest.iter().copied()).collect();
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

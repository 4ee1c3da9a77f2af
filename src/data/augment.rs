//! The geometric and colour augmentations of images: each works on the planes of a sample's
//! last two axes (height, width) with random numbers drawn once per sample, so every channel
//! moves the same way. Interpolation is bilinear; what comes from outside the image is 0.

use super::random::Rng;

/// How `random_flip` flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlipAxes {
    Horizontal,
    Vertical,
    Both,
}

/// `random_resized_crop(scale: [a, b], ratio: [r, s])`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropSpec {
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
}

/// Height and width of the planes of `shape`, and the number of planes.
fn planes(shape: &[usize]) -> (usize, usize, usize) {
    let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let n = shape[..shape.len() - 2].iter().product();
    (h, w, n)
}

/// The value at real coordinates `(y, x)` of a `h × w` plane by bilinear interpolation of its
/// four neighbours, those outside the plane counting as 0.
fn bilinear(plane: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let at = |i: f64, j: f64| -> f64 {
        if i >= 0.0 && j >= 0.0 && i < h as f64 && j < w as f64 {
            plane[i as usize * w + j as usize]
        } else {
            0.0
        }
    };
    (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1.0))
        + fy * ((1.0 - fx) * at(y0 + 1.0, x0) + fx * at(y0 + 1.0, x0 + 1.0))
}

/// Turns each plane by `degrees` counter-clockwise about its centre.
pub(super) fn rotate(buf: &mut [f64], shape: &[usize], degrees: f64) {
    let (h, w, _) = planes(shape);
    if h * w == 0 {
        return;
    }
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (cy, cx) = ((h as f64 - 1.0) / 2.0, (w as f64 - 1.0) / 2.0);
    let src = buf.to_vec();
    for (out, inp) in buf.chunks_mut(h * w).zip(src.chunks(h * w)) {
        for i in 0..h {
            for j in 0..w {
                let (y, x) = (i as f64 - cy, j as f64 - cx);
                // The output pixel shows the input pixel the rotation carried there.
                let xs = cos * x - sin * y + cx;
                let ys = sin * x + cos * y + cy;
                out[i * w + j] = bilinear(inp, h, w, ys, xs);
            }
        }
    }
}

/// The crop `(top, left, height, width)` of TorchVision's `RandomResizedCrop`: up to ten tries
/// of an area `U(scale)·H·W` and an aspect ratio `exp(U(ln r, ln s))` (width over height),
/// sizes rounded, placed uniformly where it fits; if none fits, the centred crop of the whole
/// image with its aspect ratio clamped into `[r, s]`.
fn crop_box(h: usize, w: usize, spec: &CropSpec, rng: &mut Rng) -> (usize, usize, usize, usize) {
    let area = (h * w) as f64;
    let (lr, hr) = (spec.ratio.0.ln(), spec.ratio.1.ln());
    for _ in 0..10 {
        let target = area * rng.between(spec.scale.0, spec.scale.1);
        let aspect = rng.between(lr, hr).exp();
        let cw = (target * aspect).sqrt().round() as usize;
        let ch = (target / aspect).sqrt().round() as usize;
        if cw > 0 && cw <= w && ch > 0 && ch <= h {
            let top = rng.below((h - ch + 1) as u64) as usize;
            let left = rng.below((w - cw + 1) as u64) as usize;
            return (top, left, ch, cw);
        }
    }
    let ratio = w as f64 / h as f64;
    let (ch, cw) = if ratio < spec.ratio.0 {
        (((w as f64 / spec.ratio.0).round() as usize).clamp(1, h), w)
    } else if ratio > spec.ratio.1 {
        (h, ((h as f64 * spec.ratio.1).round() as usize).clamp(1, w))
    } else {
        (h, w)
    };
    ((h - ch) / 2, (w - cw) / 2, ch, cw)
}

/// Crops each plane to a random box and resizes the box back to the plane's size (bilinear,
/// pixel centres aligned as `align_corners=False`, coordinates clamped to the box).
pub(super) fn resized_crop(buf: &mut [f64], shape: &[usize], spec: &CropSpec, rng: &mut Rng) {
    let (h, w, _) = planes(shape);
    if h * w == 0 {
        return;
    }
    let (top, left, ch, cw) = crop_box(h, w, spec, rng);
    let (sy, sx) = (ch as f64 / h as f64, cw as f64 / w as f64);
    let src = buf.to_vec();
    for (out, inp) in buf.chunks_mut(h * w).zip(src.chunks(h * w)) {
        for i in 0..h {
            let y = ((i as f64 + 0.5) * sy - 0.5).clamp(0.0, ch as f64 - 1.0);
            for j in 0..w {
                let x = ((j as f64 + 0.5) * sx - 0.5).clamp(0.0, cw as f64 - 1.0);
                // Inside the box, so every neighbour read is inside the plane or weighs 0.
                let (y0, x0) = (y.floor(), x.floor());
                let (fy, fx) = (y - y0, x - x0);
                let at = |a: f64, b: f64| {
                    let (a, b) = ((a as usize).min(ch - 1), (b as usize).min(cw - 1));
                    inp[(top + a) * w + left + b]
                };
                out[i * w + j] = (1.0 - fy) * ((1.0 - fx) * at(y0, x0) + fx * at(y0, x0 + 1.0))
                    + fy * ((1.0 - fx) * at(y0 + 1.0, x0) + fx * at(y0 + 1.0, x0 + 1.0));
            }
        }
    }
}

/// Reverses the planes' columns (horizontal) or rows (vertical).
pub(super) fn flip(buf: &mut [f64], shape: &[usize], horizontal: bool) {
    let (h, w, _) = planes(shape);
    if h * w == 0 {
        return;
    }
    if horizontal {
        buf.chunks_mut(w).for_each(<[f64]>::reverse);
    } else {
        for plane in buf.chunks_mut(h * w) {
            for i in 0..h / 2 {
                let (upper, lower) = plane.split_at_mut((h - 1 - i) * w);
                upper[i * w..(i + 1) * w].swap_with_slice(&mut lower[..w]);
            }
        }
    }
}

/// Scales an RGB image (`[…, 3, H, W]`) by `brightness`, then blends it with the mean of its
/// grey version (`0.299 R + 0.587 G + 0.114 B` over the pixels) by `contrast`: `c·v + (1 − c)·m`.
pub(super) fn jitter(buf: &mut [f64], shape: &[usize], brightness: f64, contrast: f64) {
    let (h, w, _) = planes(shape);
    let plane = h * w;
    if plane == 0 {
        return;
    }
    buf.iter_mut().for_each(|v| *v *= brightness);
    for image in buf.chunks_mut(3 * plane) {
        let (r, rest) = image.split_at(plane);
        let (g, b) = rest.split_at(plane);
        let grey: f64 = (0..plane)
            .map(|p| 0.299 * r[p] + 0.587 * g[p] + 0.114 * b[p])
            .sum();
        let mean = grey / plane as f64;
        image
            .iter_mut()
            .for_each(|v| *v = contrast * *v + (1.0 - contrast) * mean);
    }
}

//! Fields and their transforms: the shape each transform gives, the statistics fitted on the
//! training split, and the evaluation of one sample. A sample travels as row-major f64 values;
//! a missing value is NaN until an `impute` fills it.

use super::DataError;
use super::augment::{self, CropSpec, FlipAxes};
use super::categories::{Encoder, Vocab};
use super::random::Rng;
use super::text::{Tokenizer, TokenizerSpec};
use crate::ir::{DType, TensorType};
use crate::tensor::Tensor;
use std::ops::Range;

/// A column of a table, by index or by header name.
#[derive(Debug, Clone, PartialEq)]
pub enum TableRef {
    Index(usize),
    Name(String),
}

/// Where a field's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `image`, `label`, `x`, `y`, or `array("name")`.
    Named(String),
    /// `col(i)` (one value per sample: `scalar`) or `cols(…)` (a vector per sample).
    Table { refs: Vec<TableRef>, scalar: bool },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Mean,
    Median,
    Constant(f64),
    /// The mean of the `k` nearest training samples that have the value (scikit-learn's
    /// `KNNImputer`), by distance on standardized values.
    Knn(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip {
    /// Beyond this many standard deviations from the mean.
    Z(f64),
    /// Beyond this many interquartile ranges outside the quartiles.
    Iqr(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Flatten,
    Reshape(Vec<usize>),
    Scale(f64),
    MinMax,
    Standardize,
    Impute(Strategy),
    Clip(Clip),
    /// `one_hot(k)` of class indices 0..k−1.
    OneHot(usize),
    /// `label` or `one_hot` of category names, with a vocabulary fitted on the training split
    /// ([`super::categories`]); the field's first step.
    Categories(Encoder),
    /// `random_shift(pixels)`.
    Shift(usize),
    /// `random_flip(horizontal | vertical | both)`.
    Flip(FlipAxes),
    /// `random_rotation(degrees)`: an angle uniform in ±degrees.
    Rotate(f64),
    /// `random_resized_crop(scale:, ratio:)`.
    Crop(CropSpec),
    /// `color_jitter(brightness: b, contrast: c)`: factors uniform in `[max(0, 1 − b), 1 + b]`
    /// and `[max(0, 1 − c), 1 + c]`.
    Jitter {
        brightness: f64,
        contrast: f64,
    },
    /// `gaussian_noise(std)`.
    Noise(f64),
    /// `tokenize(TOKENIZER, length: N)`, optionally followed by `mask`; the field's first step.
    Tokens(Tokens),
}

/// A text column's cell as `length` ids — the ids of its text by a tokenizer fitted on the
/// training split, cut after `length` or padded with the end-of-document id — or, with `mask`,
/// 1 for each id of the text and 0 for each padding id. The source encodes the cells (as it
/// does category names), so the step itself changes nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub spec: TokenizerSpec,
    pub length: usize,
    pub mask: bool,
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Flatten => "flatten",
            Kind::Reshape(_) => "reshape",
            Kind::Scale(_) => "scale",
            Kind::MinMax => "minmax",
            Kind::Standardize => "standardize",
            Kind::Impute(_) => "impute",
            Kind::Clip(_) => "clip_outliers",
            Kind::OneHot(_) => "one_hot",
            Kind::Categories(e) if e.one_hot => "one_hot",
            Kind::Categories(_) => "label",
            Kind::Shift(_) => "random_shift",
            Kind::Flip(_) => "random_flip",
            Kind::Rotate(_) => "random_rotation",
            Kind::Crop(_) => "random_resized_crop",
            Kind::Jitter { .. } => "color_jitter",
            Kind::Noise(_) => "gaussian_noise",
            Kind::Tokens(t) if t.mask => "mask",
            Kind::Tokens(_) => "tokenize",
        }
    }

    pub fn is_augmentation(&self) -> bool {
        match self {
            Kind::Shift(_)
            | Kind::Flip(_)
            | Kind::Rotate(_)
            | Kind::Crop(_)
            | Kind::Jitter { .. }
            | Kind::Noise(_) => true,
            Kind::Flatten
            | Kind::Reshape(_)
            | Kind::Scale(_)
            | Kind::MinMax
            | Kind::Standardize
            | Kind::Impute(_)
            | Kind::Clip(_)
            | Kind::OneHot(_)
            | Kind::Categories(_)
            | Kind::Tokens(_) => false,
        }
    }

    /// Whether the values it gives may have a fraction (so the field must be a float type).
    pub fn makes_floats(&self) -> bool {
        match self {
            Kind::Flatten | Kind::Reshape(_) | Kind::Shift(_) | Kind::Flip(_) => false,
            Kind::Categories(e) => e.one_hot,
            Kind::Tokens(t) => t.mask,
            Kind::Impute(Strategy::Constant(c)) => c.fract() != 0.0,
            _ => true,
        }
    }

    /// The statistics fitted on the training split, each with the shape of one sample at this
    /// step; none for the transforms that fit nothing.
    pub fn stat_names(&self) -> &'static [&'static str] {
        match self {
            Kind::MinMax => &["min", "max"],
            Kind::Standardize => &["mean", "std"],
            Kind::Impute(Strategy::Knn(_)) => &["mean", "std", "donors"],
            Kind::Impute(_) => &["fill"],
            Kind::Clip(_) => &["low", "high"],
            _ => &[],
        }
    }

    fn output_shape(&self, shape: &[usize]) -> Result<Vec<usize>, String> {
        let n: usize = shape.iter().product();
        match self {
            Kind::Flatten => Ok(vec![n]),
            Kind::Reshape(to) if numel(to) == Some(n) => Ok(to.clone()),
            Kind::Reshape(to) => Err(format!(
                "`reshape({})` needs {} values per sample, but the data has {n} ({})",
                dims(to),
                numel(to).map_or("too many".into(), |m| m.to_string()),
                dims(shape)
            )),
            Kind::OneHot(k) => Ok(shape.iter().copied().chain([*k]).collect()),
            Kind::Categories(e) if e.one_hot => Ok(vec![e.width]),
            Kind::Categories(_) => Ok(shape.to_vec()),
            Kind::Tokens(t) => Ok(vec![t.length]),
            Kind::Shift(_) | Kind::Flip(_) | Kind::Rotate(_) | Kind::Crop(_) if shape.len() < 2 => {
                Err(format!(
                    "`{}` needs images, with height and width as the last two axes, but a sample is {}: reshape it first",
                    self.name(),
                    dims(shape)
                ))
            }
            Kind::Jitter { .. } if shape.len() < 3 || shape[shape.len() - 3] != 3 => Err(format!(
                "`color_jitter` needs RGB images, `[3, height, width]`, but a sample is {}",
                dims(shape)
            )),
            _ => Ok(shape.to_vec()),
        }
    }
}

/// The most values one sample may hold at any step, so that a typo cannot exhaust memory.
const MAX_SAMPLE: usize = 1 << 28;

/// The number of values of a shape, unless it overflows.
fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// `[28, 28]`.
pub(super) fn dims(shape: &[usize]) -> String {
    let d: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", d.join(", "))
}

/// The statistics of a step, fitted on the training split (or restored from a checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fit {
    /// The shape of one sample at this step; every statistic has it.
    pub shape: Vec<usize>,
    /// One vector per name of [`Kind::stat_names`].
    pub values: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Step {
    pub kind: Kind,
    pub fit: Option<Fit>,
}

impl Step {
    pub fn new(kind: Kind) -> Step {
        Step { kind, fit: None }
    }
}

/// A value that cannot be used: which value of the sample (counting at the step that failed,
/// which is the raw value's index unless a `one_hot` came before) and why.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fault {
    pub elem: usize,
    pub message: String,
}

/// What makes one training sample's augmentation reproducible.
pub(super) struct Augment {
    pub seed: u64,
    pub epoch: u64,
    pub field: usize,
    pub sample: usize,
}

impl Augment {
    fn rng(&self, step: usize) -> Rng {
        Rng::new(
            self.seed,
            &[
                4,
                self.epoch,
                self.field as u64,
                step as u64,
                self.sample as u64,
            ],
        )
    }
}

/// A declared field: its type, where its values come from and how they are transformed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Field {
    pub name: String,
    pub dtype: DType,
    /// The declared per-sample shape.
    pub shape: Vec<usize>,
    pub column: Column,
    pub steps: Vec<Step>,
    /// The fitted categories of each column a `Categories` step encodes; empty until fitted.
    pub vocab: Vec<Vocab>,
    /// The class names its source gives (the class folders of an `images` source's `label`).
    pub source_classes: Vec<String>,
    /// The tokenizer of a `Tokens` step; None until fitted.
    pub tokenizer: Option<Tokenizer>,
    /// Where the field's name is in the `.nnl` file (a byte offset), for errors at its line.
    pub at: usize,
}

fn nonzero(x: f64) -> f64 {
    if x == 0.0 { 1.0 } else { x }
}

impl Field {
    /// The field as its block declares it, nothing fitted yet.
    pub fn new(spec: &super::spec::FieldSpec) -> Field {
        Field {
            name: spec.name.clone(),
            dtype: spec.dtype,
            shape: spec.shape.clone(),
            column: spec.column.clone(),
            steps: spec.steps.iter().cloned().map(Step::new).collect(),
            vocab: Vec::new(),
            source_classes: Vec::new(),
            tokenizer: None,
            at: spec.at,
        }
    }

    pub fn ty(&self) -> TensorType {
        TensorType::new(self.dtype, self.shape.clone())
    }

    /// The encoder of category names, when the field starts with one.
    pub fn encoder(&self) -> Option<&Encoder> {
        match self.steps.first().map(|s| &s.kind) {
            Some(Kind::Categories(e)) => Some(e),
            _ => None,
        }
    }

    /// The tokenization of a text column, when the field starts with one.
    pub fn tokens(&self) -> Option<&Tokens> {
        match self.steps.first().map(|s| &s.kind) {
            Some(Kind::Tokens(t)) => Some(t),
            _ => None,
        }
    }

    /// Whether the field reads text cells (category names or text to tokenize).
    pub fn reads_text(&self) -> bool {
        self.encoder().is_some() || self.tokens().is_some()
    }

    /// Checks fitted (or restored) vocabularies, one per column, against the declaration: the
    /// number of classes `classes:` states, and the values a `one_hot` gives per sample.
    pub fn check_vocab(&self, columns: &[String]) -> Result<(), String> {
        let Some(e) = self.encoder() else {
            return Ok(());
        };
        if self.vocab.len() != columns.len() {
            return Err(format!(
                "{} vocabularies for {} columns",
                self.vocab.len(),
                columns.len()
            ));
        }
        let what = if e.one_hot { "one_hot" } else { "label" };
        for (v, c) in self.vocab.iter().zip(columns) {
            if let Some(k) = e.classes
                && v.names.len() != k
            {
                return Err(format!(
                    "`{what}(classes: {k})`, but the training split has {} categories in {c}: {}",
                    v.names.len(),
                    v.listed()
                ));
            }
        }
        let width: usize = self.vocab.iter().map(|v| v.width(e)).sum();
        if e.one_hot && width != e.width {
            let parts: Vec<String> = self
                .vocab
                .iter()
                .zip(columns)
                .map(|(v, c)| {
                    let extra = v.width(e) - v.names.len();
                    let extra = if extra > 0 {
                        format!(" + {extra} for missing or unknown")
                    } else {
                        String::new()
                    };
                    format!("{} in {c} ({}){extra}", v.names.len(), v.listed())
                })
                .collect();
            return Err(format!(
                "declared {}{}, but `one_hot` gives {width} values per sample: the training split has {}",
                self.dtype.name(),
                dims(&self.shape),
                parts.join(", ")
            ));
        }
        Ok(())
    }

    fn has_impute(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.kind, Kind::Impute(_)))
    }

    /// The per-sample shape before each step and, last, the result, which must be the declared
    /// shape.
    pub fn shapes(&self, input: &[usize]) -> Result<Vec<Vec<usize>>, String> {
        let mut out = vec![input.to_vec()];
        for s in &self.steps {
            let next = s.kind.output_shape(out.last().expect("starts non-empty"))?;
            if numel(&next).is_none_or(|n| n > MAX_SAMPLE) {
                return Err(format!(
                    "after `{}`, one sample would hold more than {MAX_SAMPLE} values",
                    s.kind.name()
                ));
            }
            out.push(next);
        }
        let last = out.last().expect("starts non-empty");
        if *last != self.shape {
            let how = if self.steps.is_empty() {
                String::new()
            } else {
                " after its transforms".into()
            };
            return Err(format!(
                "declared {}{}, but the data gives {}{} per sample{how}",
                self.dtype.name(),
                dims(&self.shape),
                self.dtype.name(),
                dims(last)
            ));
        }
        Ok(out)
    }

    /// Checks that every statistical step has statistics of the right size for `shapes`.
    pub fn check_fits(&self, shapes: &[Vec<usize>]) -> Result<(), String> {
        for (k, s) in self.steps.iter().enumerate() {
            if s.kind.stat_names().is_empty() {
                continue;
            }
            match &s.fit {
                None => {
                    return Err(format!(
                        "the statistics of `{}` are not fitted: load the data or restore them from a checkpoint",
                        s.kind.name()
                    ));
                }
                Some(f) if f.shape != shapes[k] => {
                    return Err(format!(
                        "the statistics of `{}` are for samples of shape {}, but here a sample is {}",
                        s.kind.name(),
                        dims(&f.shape),
                        dims(&shapes[k])
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Applies `steps` to one sample in place; augmentations only with `aug`. The statistics of
    /// those steps must be fitted for `shapes` ([`Field::check_fits`]).
    pub fn apply(
        &self,
        buf: &mut Vec<f64>,
        shapes: &[Vec<usize>],
        steps: Range<usize>,
        aug: Option<&Augment>,
    ) -> Result<(), Fault> {
        for k in steps {
            let step = &self.steps[k];
            let stat = |i: usize| -> &[f64] {
                &step.fit.as_ref().expect("checked by check_fits").values[i]
            };
            match &step.kind {
                Kind::Flatten | Kind::Reshape(_) => {}
                Kind::Scale(f) => buf.iter_mut().for_each(|v| *v *= f),
                Kind::Standardize => {
                    for ((v, m), s) in buf.iter_mut().zip(stat(0)).zip(stat(1)) {
                        *v = (*v - m) / nonzero(*s);
                    }
                }
                Kind::MinMax => {
                    for ((v, lo), hi) in buf.iter_mut().zip(stat(0)).zip(stat(1)) {
                        *v = (*v - lo) / nonzero(hi - lo);
                    }
                }
                Kind::Impute(Strategy::Knn(k)) => {
                    knn_impute(buf, stat(0), stat(1), stat(2), *k);
                }
                Kind::Impute(_) => {
                    for (v, fill) in buf.iter_mut().zip(stat(0)) {
                        if v.is_nan() {
                            *v = *fill;
                        }
                    }
                }
                Kind::Clip(_) => {
                    for ((v, lo), hi) in buf.iter_mut().zip(stat(0)).zip(stat(1)) {
                        if *v < *lo {
                            *v = *lo;
                        } else if *v > *hi {
                            *v = *hi;
                        }
                    }
                }
                Kind::OneHot(classes) => {
                    let mut out = vec![0.0; buf.len() * classes];
                    for (p, &v) in buf.iter().enumerate() {
                        if v.is_nan() {
                            return Err(Fault {
                                elem: p,
                                message:
                                    "a missing value cannot be one-hot encoded: `impute` it first"
                                        .into(),
                            });
                        }
                        if v.fract() != 0.0 || v < 0.0 || v >= *classes as f64 {
                            return Err(Fault {
                                elem: p,
                                message: format!(
                                    "`one_hot({classes})` needs a class index from 0 to {}, found {v}",
                                    classes - 1
                                ),
                            });
                        }
                        out[p * classes + v as usize] = 1.0;
                    }
                    *buf = out;
                }
                Kind::Categories(e) if e.one_hot => {
                    // The codes are class indices already (the source encoded the names); each
                    // column's one-hot block follows the previous one.
                    let mut out = vec![0.0; e.width];
                    let mut offset = 0;
                    for (&code, v) in buf.iter().zip(&self.vocab) {
                        out[offset + code as usize] = 1.0;
                        offset += v.width(e);
                    }
                    *buf = out;
                }
                Kind::Categories(_) | Kind::Tokens(_) => {}
                Kind::Shift(pixels) => {
                    if let Some(a) = aug {
                        let mut rng = a.rng(k);
                        let span = 2 * *pixels as u64 + 1;
                        let dy = rng.below(span) as isize - *pixels as isize;
                        let dx = rng.below(span) as isize - *pixels as isize;
                        shift(buf, &shapes[k], dy, dx);
                    }
                }
                Kind::Flip(axes) => {
                    if let Some(a) = aug {
                        // One draw per axis that may flip, horizontal first; its top bit says.
                        let mut rng = a.rng(k);
                        if *axes != FlipAxes::Vertical && rng.next_u64() >> 63 == 1 {
                            augment::flip(buf, &shapes[k], true);
                        }
                        if *axes != FlipAxes::Horizontal && rng.next_u64() >> 63 == 1 {
                            augment::flip(buf, &shapes[k], false);
                        }
                    }
                }
                Kind::Rotate(degrees) => {
                    if let Some(a) = aug {
                        let angle = a.rng(k).between(-degrees, *degrees);
                        augment::rotate(buf, &shapes[k], angle);
                    }
                }
                Kind::Crop(spec) => {
                    if let Some(a) = aug {
                        augment::resized_crop(buf, &shapes[k], spec, &mut a.rng(k));
                    }
                }
                Kind::Jitter {
                    brightness,
                    contrast,
                } => {
                    if let Some(a) = aug {
                        let mut rng = a.rng(k);
                        let b = rng.between((1.0 - brightness).max(0.0), 1.0 + brightness);
                        let c = rng.between((1.0 - contrast).max(0.0), 1.0 + contrast);
                        augment::jitter(buf, &shapes[k], b, c);
                    }
                }
                Kind::Noise(std) => {
                    if let Some(a) = aug {
                        let mut rng = a.rng(k);
                        buf.iter_mut().for_each(|v| *v += std * rng.normal());
                    }
                }
            }
        }
        Ok(())
    }

    /// Turns one raw sample into the field's values, checking what can go wrong: a missing
    /// value without `impute`, a bad class for `one_hot`, a value the declared dtype cannot hold.
    pub fn evaluate(
        &self,
        buf: &mut Vec<f64>,
        shapes: &[Vec<usize>],
        aug: Option<&Augment>,
    ) -> Result<(), Fault> {
        if !self.has_impute()
            && let Some(p) = buf.iter().position(|v| v.is_nan())
        {
            return Err(Fault {
                elem: p,
                message: format!("a missing value, and field `{}` has no `impute`", self.name),
            });
        }
        self.apply(buf, shapes, 0..self.steps.len(), aug)?;
        for (p, &v) in buf.iter().enumerate() {
            let bad = match self.dtype {
                DType::I32 => v.fract() != 0.0 || v < i32::MIN as f64 || v > i32::MAX as f64,
                DType::Bool => v != 0.0 && v != 1.0,
                DType::F32 => !(v as f32).is_finite(),
                DType::F64 => !v.is_finite(),
            };
            if bad {
                let want = match self.dtype {
                    DType::I32 => "a whole number in the i32 range",
                    DType::Bool => "0 or 1",
                    _ => "a finite number",
                };
                return Err(Fault {
                    elem: p,
                    message: format!(
                        "field `{}` is {}, which needs {want}, but the value is {v}",
                        self.name,
                        self.dtype.name()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Fills the missing values of one sample from its `k` nearest training samples (`donors`,
/// row-major, one sample a row), as scikit-learn's `KNNImputer` with uniform weights does, on
/// values standardized by the training `mean` and `std`: the distance to a donor is the
/// NaN-Euclidean `sqrt(d / m · Σ (a − b)²)` over the `m` of `d` positions both have; for a
/// missing position, the donors are the training samples that have it, the `k` nearest (ties
/// by sample order; donors without a common position come last and count for nothing) give
/// their mean; with no common position with any of them, the training mean fills it.
fn knn_impute(buf: &mut [f64], mean: &[f64], std: &[f64], donors: &[f64], k: usize) {
    let d = buf.len();
    if d == 0 || !buf.iter().any(|v| v.is_nan()) {
        return;
    }
    let z = |v: f64, p: usize| (v - mean[p]) / nonzero(std[p]);
    let distances: Vec<f64> = donors
        .chunks(d)
        .map(|row| {
            let (mut sum, mut common) = (0.0, 0usize);
            for (p, (&a, &b)) in buf.iter().zip(row).enumerate() {
                if !a.is_nan() && !b.is_nan() {
                    let diff = z(a, p) - z(b, p);
                    sum += diff * diff;
                    common += 1;
                }
            }
            if common == 0 {
                f64::NAN
            } else {
                (d as f64 / common as f64 * sum).sqrt()
            }
        })
        .collect();
    let missing: Vec<usize> = (0..d).filter(|&p| buf[p].is_nan()).collect();
    for p in missing {
        let mut candidates: Vec<(f64, usize)> = donors
            .chunks(d)
            .enumerate()
            .filter(|(_, row)| !row[p].is_nan())
            .map(|(i, _)| (distances[i], i))
            .collect();
        if candidates.iter().all(|(dist, _)| dist.is_nan()) {
            buf[p] = mean[p];
            continue;
        }
        candidates.sort_by(|a, b| match (a.0.is_nan(), b.0.is_nan()) {
            (false, false) => a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)),
            (x, y) => x.cmp(&y).then(a.1.cmp(&b.1)),
        });
        let (mut sum, mut n) = (0.0, 0usize);
        for &(dist, i) in candidates.iter().take(k) {
            if !dist.is_nan() {
                sum += donors[i * d + p];
                n += 1;
            }
        }
        buf[p] = sum / n as f64;
    }
}

/// Moves the content of each `[H, W]` plane (the last two axes) down by `dy` and right by `dx`,
/// filling with zeros: `out[i][j] = in[i − dy][j − dx]`.
fn shift(buf: &mut [f64], shape: &[usize], dy: isize, dx: isize) {
    let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    if h * w == 0 {
        return;
    }
    let src = buf.to_vec();
    for (out, inp) in buf.chunks_mut(h * w).zip(src.chunks(h * w)) {
        for i in 0..h {
            for j in 0..w {
                let (si, sj) = (i as isize - dy, j as isize - dx);
                out[i * w + j] = if (0..h as isize).contains(&si) && (0..w as isize).contains(&sj) {
                    inp[si as usize * w + sj as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

/// Collects what a statistical step needs from the training samples, one position of the
/// sample at a time, skipping missing values.
pub(super) struct Accumulator {
    kind: Kind,
    count: Vec<u64>,
    mean: Vec<f64>,
    /// Welford's sum of squared deviations.
    m2: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    /// Every value, for medians and quartiles.
    values: Vec<Vec<f64>>,
    /// Every sample, missing values included, for `impute(knn)`.
    samples: Option<Vec<f64>>,
}

impl Accumulator {
    pub fn new(kind: &Kind, len: usize) -> Accumulator {
        let quantiles = matches!(
            kind,
            Kind::Impute(Strategy::Median) | Kind::Clip(Clip::Iqr(_))
        );
        Accumulator {
            kind: kind.clone(),
            count: vec![0; len],
            mean: vec![0.0; len],
            m2: vec![0.0; len],
            min: vec![f64::INFINITY; len],
            max: vec![f64::NEG_INFINITY; len],
            values: if quantiles {
                vec![Vec::new(); len]
            } else {
                Vec::new()
            },
            samples: matches!(kind, Kind::Impute(Strategy::Knn(_))).then(Vec::new),
        }
    }

    pub fn add(&mut self, sample: &[f64]) {
        if let Some(all) = &mut self.samples {
            all.extend_from_slice(sample);
        }
        for (p, &v) in sample.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            self.count[p] += 1;
            let d = v - self.mean[p];
            self.mean[p] += d / self.count[p] as f64;
            self.m2[p] += d * (v - self.mean[p]);
            self.min[p] = self.min[p].min(v);
            self.max[p] = self.max[p].max(v);
            if let Some(all) = self.values.get_mut(p) {
                all.push(v);
            }
        }
    }

    /// The statistics, in the order of [`Kind::stat_names`]. Positions that saw no value get
    /// mean 0, standard deviation 0 (which divides as 1), min = max = 0; `impute(mean)` and
    /// `impute(median)` refuse them (the message names the position).
    pub fn finish(mut self) -> Result<Vec<Vec<f64>>, String> {
        let len = self.count.len();
        let std: Vec<f64> = (0..len)
            .map(|p| match self.count[p] {
                0 => 0.0,
                n => (self.m2[p] / n as f64).sqrt(),
            })
            .collect();
        let seen = |v: f64| if v.is_finite() { v } else { 0.0 };
        let empty = |p: usize| {
            format!(
                "no training sample has a value at position {p} of this field, so `impute` has nothing to fill it with"
            )
        };
        Ok(match self.kind {
            Kind::Standardize => vec![self.mean, std],
            Kind::MinMax => vec![
                self.min.into_iter().map(seen).collect(),
                self.max.into_iter().map(seen).collect(),
            ],
            Kind::Impute(Strategy::Constant(c)) => vec![vec![c; len]],
            Kind::Impute(Strategy::Knn(_)) => {
                if let Some(p) = self.count.iter().position(|&n| n == 0) {
                    return Err(empty(p));
                }
                let donors = self.samples.take().unwrap_or_default();
                vec![self.mean, std, donors]
            }
            Kind::Impute(Strategy::Mean) => {
                if let Some(p) = self.count.iter().position(|&n| n == 0) {
                    return Err(empty(p));
                }
                vec![self.mean]
            }
            Kind::Impute(Strategy::Median) => {
                if let Some(p) = self.count.iter().position(|&n| n == 0) {
                    return Err(empty(p));
                }
                vec![self.values.iter_mut().map(|v| quantile(v, 0.5)).collect()]
            }
            Kind::Clip(Clip::Z(z)) => vec![
                (0..len).map(|p| self.mean[p] - z * std[p]).collect(),
                (0..len).map(|p| self.mean[p] + z * std[p]).collect(),
            ],
            Kind::Clip(Clip::Iqr(k)) => {
                let (lo, hi): (Vec<f64>, Vec<f64>) = self
                    .values
                    .iter_mut()
                    .map(|v| {
                        let (q1, q3) = (quantile(v, 0.25), quantile(v, 0.75));
                        (q1 - k * (q3 - q1), q3 + k * (q3 - q1))
                    })
                    .unzip();
                vec![lo, hi]
            }
            _ => Vec::new(),
        })
    }
}

/// The `q`-quantile with linear interpolation between the closest ranks (NumPy's default);
/// 0 for no values. Sorts `v`.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The statistic of `impute(knn)` that holds the training samples, `[n, …sample]`.
const DONORS: &str = "donors";

/// A statistic's shape: the sample's, or for the donors of `impute(knn)` one per sample.
fn stat_shape(stat: &str, sample: &[usize], values: &[f64]) -> Vec<usize> {
    if stat == DONORS {
        let n = values
            .len()
            .checked_div(sample.iter().product())
            .unwrap_or(0);
        std::iter::once(n).chain(sample.iter().copied()).collect()
    } else {
        sample.to_vec()
    }
}

/// A table column as the declaration names it: `` `island` `` or `column 3`.
pub(super) fn table_ref_name(r: &TableRef) -> String {
    match r {
        TableRef::Index(i) => format!("column {i}"),
        TableRef::Name(n) => format!("`{n}`"),
    }
}

/// The fields of a data block with their transforms: what a checkpoint needs to prepare new
/// inputs the way the training data was prepared. [`super::load`] fits the statistics on the
/// training split; [`Pipeline::from_decl`] reads the block alone, and
/// [`Pipeline::restore_stats`] then puts back the statistics a checkpoint saved.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The data block's name, the first part of every statistic's name.
    pub(super) name: String,
    /// The `.nnl` file, for errors.
    pub(super) file: String,
    pub(super) fields: Vec<Field>,
    /// The tokenizer of a block with a `text` source.
    pub(super) text: Option<TextFields>,
}

/// The checkpoint metadata key of the tokenizer of field `field` of data block `data`.
fn tokenizer_key(data: &str, field: &str) -> String {
    format!("data.{data}.{field}.tokenizer")
}

/// The fields read from a `text` source's windows and their tokenizer (fitted on the training
/// split, or restored from a checkpoint).
#[derive(Debug, Clone, PartialEq)]
pub struct TextFields {
    pub(super) spec: TokenizerSpec,
    pub(super) fields: Vec<String>,
    pub(super) tokenizer: Option<Tokenizer>,
}

impl Pipeline {
    /// The fitted tokenizer as `(data.DATA.FIELD.tokenizer, JSON)` pairs, one for each field read
    /// from a `text` source. Empty before fitting.
    fn fitted_tokenizer(&self) -> Vec<(String, String)> {
        let Some(TextFields {
            fields,
            tokenizer: Some(t),
            ..
        }) = &self.text
        else {
            return Vec::new();
        };
        let json = t.to_json();
        fields
            .iter()
            .map(|f| (tokenizer_key(&self.name, f), json.clone()))
            .collect()
    }

    /// Puts back the tokenizer saved by [`Pipeline::fitted_tokenizer`] (other entries are
    /// ignored). Each text field must find its tokenizer, all the same, with the vocabulary size
    /// the `.nnl` file declares (`chars(vocab: N)`), if it declares one.
    fn restore_tokenizer(&mut self, saved: &[(String, String)]) -> Result<(), DataError> {
        let Some(text) = &mut self.text else {
            return Ok(());
        };
        let mut restored: Option<Tokenizer> = None;
        for f in &text.fields {
            let key = tokenizer_key(&self.name, f);
            let err = |m: String| DataError::in_file(&self.file, format!("`{key}`: {m}"));
            let (_, json) = saved
                .iter()
                .find(|(k, _)| *k == key)
                .ok_or_else(|| err("not among the checkpoint's text state".into()))?;
            let t = Tokenizer::from_json(json).map_err(err)?;
            if let Some(v) = text.spec.declared_vocab()
                && v != t.vocab_size()
            {
                return Err(err(format!(
                    "the saved tokenizer has {} ids, but the file declares `vocab: {v}`",
                    t.vocab_size()
                )));
            }
            if restored.as_ref().is_some_and(|r| *r != t) {
                return Err(err("differs from another field's tokenizer".into()));
            }
            restored = Some(t);
        }
        text.tokenizer = restored;
        Ok(())
    }

    /// The fitted tokenizer of a field read from a `text` source, or of a field that
    /// tokenizes a text column.
    pub fn tokenizer(&self, field: &str) -> Option<&Tokenizer> {
        self.text
            .as_ref()
            .filter(|t| t.fields.iter().any(|f| f == field))
            .and_then(|t| t.tokenizer.as_ref())
            .or_else(|| {
                self.fields
                    .iter()
                    .find(|f| f.name == field)?
                    .tokenizer
                    .as_ref()
            })
    }

    /// The data block's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each field's name and per-sample type (no batch axis), in declaration order.
    pub fn fields(&self) -> Vec<(String, TensorType)> {
        self.fields
            .iter()
            .map(|f| (f.name.clone(), f.ty()))
            .collect()
    }

    fn stat_name(&self, field: &Field, k: usize, stat: &str) -> String {
        format!(
            "{}.{}.{k}.{}.{stat}",
            self.name,
            field.name,
            field.steps[k].kind.name()
        )
    }

    /// The fitted statistics as f64 tensors with the per-sample shape at their step, named
    /// `DATA.FIELD.STEP.TRANSFORM.STAT` (`iris.x.0.standardize.mean`, `iris.x.0.standardize.std`);
    /// STEP counts the field's transforms from 0. Steps not fitted yet are left out.
    pub fn fitted_stats(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for f in &self.fields {
            for (k, s) in f.steps.iter().enumerate() {
                let Some(fit) = &s.fit else { continue };
                for (stat, values) in s.kind.stat_names().iter().zip(&fit.values) {
                    let ty = TensorType::new(DType::F64, stat_shape(stat, &fit.shape, values));
                    out.push((
                        self.stat_name(f, k, stat),
                        Tensor::from_f64(&ty, values.clone()),
                    ));
                }
            }
        }
        out
    }

    /// Puts back statistics saved by [`Pipeline::fitted_stats`] (other tensors, such as a
    /// model's parameters, are ignored). Every statistical step must find all of its tensors,
    /// with one shape, in f32 or f64.
    pub fn restore_stats(&mut self, stats: &[(String, Tensor)]) -> Result<(), DataError> {
        let mut restored = Vec::new();
        for (fi, f) in self.fields.iter().enumerate() {
            for (k, s) in f.steps.iter().enumerate() {
                let names = s.kind.stat_names();
                if names.is_empty() {
                    continue;
                }
                let mut fit = Fit {
                    shape: Vec::new(),
                    values: Vec::new(),
                };
                for (i, stat) in names.iter().enumerate() {
                    let name = self.stat_name(f, k, stat);
                    let err = |m: String| DataError::in_file(&self.file, format!("`{name}`: {m}"));
                    let (_, t) = stats
                        .iter()
                        .find(|(n, _)| *n == name)
                        .ok_or_else(|| err("not among the saved statistics".into()))?;
                    if !t.dtype().is_float() {
                        return Err(err(format!("expected f64, found {}", t.ty())));
                    }
                    let sample_shape = if *stat == DONORS {
                        t.shape().get(1..).unwrap_or_default()
                    } else {
                        t.shape()
                    };
                    if i > 0 && sample_shape != fit.shape {
                        return Err(err(format!(
                            "its shape {} differs from `{}`'s {}",
                            dims(t.shape()),
                            names[0],
                            dims(&fit.shape)
                        )));
                    }
                    if i == 0 {
                        fit.shape = t.shape().to_vec();
                    }
                    fit.values.push(t.to_f64());
                }
                restored.push((fi, k, fit));
            }
        }
        for (fi, k, fit) in restored {
            self.fields[fi].steps[k].fit = Some(fit);
        }
        Ok(())
    }

    /// The fitted text state, for a checkpoint's metadata: the vocabularies, key
    /// `data.FIELD.categories`, the value a JSON list with one vocabulary per column the field
    /// encodes, `{"names": [...], "most_frequent": i}`; and the tokenizer of a `text` source,
    /// key `data.DATA.FIELD.tokenizer`.
    pub fn fitted_text(&self) -> Vec<(String, String)> {
        let mut text: Vec<(String, String)> = self
            .fields
            .iter()
            .filter(|f| f.encoder().is_some() && !f.vocab.is_empty())
            .map(|f| {
                let json = serde_json::to_string(&f.vocab).expect("names serialize");
                (format!("data.{}.categories", f.name), json)
            })
            .collect();
        for f in self.fields.iter().filter(|f| !f.source_classes.is_empty()) {
            let json = serde_json::to_string(&f.source_classes).expect("names serialize");
            text.push((format!("data.{}.classes", f.name), json));
        }
        text.extend(self.fitted_tokenizer());
        text.extend(self.fields.iter().filter_map(|f| {
            Some((
                tokenizer_key(&self.name, &f.name),
                f.tokenizer.as_ref()?.to_json(),
            ))
        }));
        text
    }

    /// Puts back the vocabularies and the tokenizer saved by [`Pipeline::fitted_text`] (other
    /// keys are ignored), checked against the declaration as the fitted ones are.
    pub fn restore_text(&mut self, text: &[(String, String)]) -> Result<(), DataError> {
        self.restore_tokenizer(text)?;
        for f in &mut self.fields {
            let key = format!("data.{}.classes", f.name);
            if let Some((_, json)) = text.iter().find(|(k, _)| *k == key) {
                f.source_classes = serde_json::from_str(json).map_err(|e| {
                    DataError::in_file(&self.file, format!("`{key}` is not a list of names: {e}"))
                })?;
            }
        }
        let mut tokenizers = Vec::new();
        for (fi, f) in self.fields.iter().enumerate() {
            let Some(t) = f.tokens() else { continue };
            let key = tokenizer_key(&self.name, &f.name);
            let err = |m: String| self.field_error(f, format!("`{key}`: {m}"));
            let (_, json) = text
                .iter()
                .find(|(k, _)| *k == key)
                .ok_or_else(|| err("not among the checkpoint's text state".into()))?;
            let tokenizer = Tokenizer::from_json(json).map_err(err)?;
            if let Some(v) = t.spec.declared_vocab()
                && v != tokenizer.vocab_size()
            {
                return Err(err(format!(
                    "the saved tokenizer has {} ids, but the file declares `vocab: {v}`",
                    tokenizer.vocab_size()
                )));
            }
            tokenizers.push((fi, tokenizer));
        }
        for (fi, t) in tokenizers {
            self.fields[fi].tokenizer = Some(t);
        }
        let mut restored = Vec::new();
        for (fi, f) in self.fields.iter().enumerate() {
            if f.encoder().is_none() {
                continue;
            }
            let key = format!("data.{}.categories", f.name);
            let err = |m: String| self.field_error(f, m);
            let (_, json) = text
                .iter()
                .find(|(k, _)| *k == key)
                .ok_or_else(|| err(format!("`{key}` is not among the saved vocabularies")))?;
            let vocab: Vec<Vocab> = serde_json::from_str(json)
                .map_err(|e| err(format!("`{key}` is not a list of vocabularies: {e}")))?;
            if vocab
                .iter()
                .any(|v| v.names.is_empty() || v.most_frequent >= v.names.len())
            {
                return Err(err(format!("`{key}` holds an empty vocabulary")));
            }
            let columns: Vec<String> = match &f.column {
                Column::Table { refs, .. } => refs.iter().map(table_ref_name).collect(),
                Column::Named(n) => (0..vocab.len())
                    .map(|i| format!("`{n}` (value {i})"))
                    .collect(),
            };
            let field = Field { vocab, ..f.clone() };
            field
                .check_vocab(&columns)
                .map_err(|m| err(format!("the saved vocabulary does not fit: {m}")))?;
            restored.push((fi, field.vocab));
        }
        for (fi, v) in restored {
            self.fields[fi].vocab = v;
        }
        Ok(())
    }

    /// The class names of a field that `label` encodes from one column, once fitted, or that
    /// reads the labels of class folders.
    pub fn class_names(&self, field: &str) -> Option<Vec<String>> {
        let f = self.fields.iter().find(|f| f.name == field)?;
        match (f.encoder(), &f.vocab[..]) {
            (Some(e), [v]) if !e.one_hot => Some(v.class_names(e)),
            (None, _) if !f.source_classes.is_empty() => Some(f.source_classes.clone()),
            _ => None,
        }
    }

    /// The fields with class names ([`Pipeline::class_names`]).
    pub fn labels(&self) -> Vec<(String, Vec<String>)> {
        self.fields
            .iter()
            .filter_map(|f| Some((f.name.clone(), self.class_names(&f.name)?)))
            .collect()
    }

    /// An error about a field's declaration: at its line in the `.nnl` file when the file can
    /// be read, else naming the file.
    pub(super) fn field_error(&self, f: &Field, message: String) -> DataError {
        let message = format!("data `{}`, field `{}`: {message}", self.name, f.name);
        match std::fs::read(&self.file) {
            Ok(text) if f.at <= text.len() => {
                let before = &text[..f.at];
                let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                let start = before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
                DataError::at(&self.file, line, column, message)
            }
            _ => DataError::in_file(&self.file, message),
        }
    }

    /// Prepares new inputs for a field as its training data were prepared, without
    /// augmentation: `raw` holds samples as the source gives them, batch axis first (`image`:
    /// `[N, 28, 28]`, `cols(0..4)`: `[N, 4]`, `col(4)`: `[N]`; NaN is a missing value); the
    /// result has the field's dtype and shape `[N, …declared]`.
    pub fn transform_inputs(&self, field: &str, raw: &Tensor) -> Result<Tensor, DataError> {
        let err = |m: String| DataError::in_file(&self.file, format!("field `{field}`: {m}"));
        let f = self
            .fields
            .iter()
            .find(|f| f.name == field)
            .ok_or_else(|| err("no such field in this data block".into()))?;
        let Some((&n, per)) = raw.shape().split_first() else {
            return Err(err("the inputs need a batch axis first".into()));
        };
        let shapes = f.shapes(per).map_err(err)?;
        f.check_fits(&shapes).map_err(err)?;
        let values = raw.to_f64();
        let len: usize = per.iter().product();
        let mut out = Vec::with_capacity(n * f.shape.iter().product::<usize>());
        let mut buf = Vec::with_capacity(len);
        for i in 0..n {
            buf.clear();
            buf.extend_from_slice(&values[i * len..(i + 1) * len]);
            f.evaluate(&mut buf, &shapes, None)
                .map_err(|e| err(format!("input sample {i}, value {}: {}", e.elem, e.message)))?;
            out.extend_from_slice(&buf);
        }
        let mut shape = vec![n];
        shape.extend(&f.shape);
        Ok(Tensor::from_f64(&TensorType::new(f.dtype, shape), out))
    }
}

/// One step of a field's preparation for prediction, with its fitted statistics (each with the
/// per-sample shape at that step); augmentations, which prediction skips, are left out.
#[derive(Debug, Clone, PartialEq)]
pub enum PrepStep {
    /// `flatten` or `reshape`: the per-sample shape after it.
    Reshape(Vec<usize>),
    Scale(f64),
    /// `(x - mean) / std`, with a zero `std` already replaced by 1.
    Standardize {
        mean: Vec<f64>,
        std: Vec<f64>,
    },
    /// `(x - min) / range`, with a zero range already replaced by 1.
    MinMax {
        min: Vec<f64>,
        range: Vec<f64>,
    },
    /// A missing value (NaN) becomes `fill`.
    Impute {
        fill: Vec<f64>,
    },
    Clip {
        low: Vec<f64>,
        high: Vec<f64>,
    },
    OneHot(usize),
}

/// How a field turns raw inputs into model inputs ([`Pipeline::transform_inputs`] as data).
#[derive(Debug, Clone, PartialEq)]
pub struct Preparation {
    /// The raw per-sample shape, when the source fixes it without reading data (CSV columns).
    pub raw_shape: Option<Vec<usize>>,
    /// The per-sample shape each statistic has, step by step.
    pub stat_shapes: Vec<Vec<usize>>,
    pub steps: Vec<PrepStep>,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Pipeline {
    /// The preparation of a field for prediction, or None when the block has no such field.
    /// The statistics must be fitted or restored.
    pub fn preparation(&self, field: &str) -> Result<Option<Preparation>, String> {
        let Some(f) = self.fields.iter().find(|f| f.name == field) else {
            return Ok(None);
        };
        let raw_shape = match &f.column {
            Column::Table { scalar: true, .. } => Some(Vec::new()),
            Column::Table { refs, .. } => Some(vec![refs.len()]),
            Column::Named(_) => None,
        };
        let mut steps = Vec::new();
        let mut stat_shapes = Vec::new();
        for s in &f.steps {
            let stat = |i: usize| -> Result<Vec<f64>, String> {
                s.fit
                    .as_ref()
                    .map(|fit| fit.values[i].clone())
                    .ok_or_else(|| format!("the statistics of `{}` are not fitted", s.kind.name()))
            };
            let step = match &s.kind {
                Kind::Flatten | Kind::Reshape(_) => PrepStep::Reshape(Vec::new()),
                Kind::Scale(f) => PrepStep::Scale(*f),
                Kind::Standardize => PrepStep::Standardize {
                    mean: stat(0)?,
                    std: stat(1)?.into_iter().map(nonzero).collect(),
                },
                Kind::MinMax => {
                    let (lo, hi) = (stat(0)?, stat(1)?);
                    let range = lo.iter().zip(&hi).map(|(l, h)| nonzero(h - l)).collect();
                    PrepStep::MinMax { min: lo, range }
                }
                Kind::Impute(Strategy::Knn(_)) => {
                    return Err(format!(
                        "field `{}`: `impute(knn)` fills values from the training samples, which an exported graph does not hold: export without preprocessing",
                        f.name
                    ));
                }
                Kind::Impute(_) => PrepStep::Impute { fill: stat(0)? },
                Kind::Clip(_) => PrepStep::Clip {
                    low: stat(0)?,
                    high: stat(1)?,
                },
                Kind::OneHot(k) => PrepStep::OneHot(*k),
                Kind::Categories(_) => {
                    return Err(format!(
                        "field `{}` encodes category names, which a numeric input cannot carry: export without preprocessing and encode the categories before the model",
                        f.name
                    ));
                }
                Kind::Tokens(_) => {
                    return Err(format!(
                        "field `{}` tokenizes text, which a numeric input cannot carry: export without preprocessing and tokenize the text before the model",
                        f.name
                    ));
                }
                Kind::Shift(_)
                | Kind::Flip(_)
                | Kind::Rotate(_)
                | Kind::Crop(_)
                | Kind::Jitter { .. }
                | Kind::Noise(_) => continue,
            };
            stat_shapes.push(
                s.fit
                    .as_ref()
                    .map(|fit| fit.shape.clone())
                    .unwrap_or_default(),
            );
            steps.push(step);
        }
        let raw_shape = raw_shape.or_else(|| {
            let reshapes = steps.iter().any(|s| matches!(s, PrepStep::Reshape(_)));
            (!reshapes).then(|| {
                let ones = steps
                    .iter()
                    .filter(|s| matches!(s, PrepStep::OneHot(_)))
                    .count();
                f.shape[..f.shape.len() - ones].to_vec()
            })
        });
        // The shape after each reshape: forward from the raw shape when it is known, else
        // `reshape`'s own target, or for `flatten` the shape that follows it.
        let kept: Vec<&Kind> = f
            .steps
            .iter()
            .map(|s| &s.kind)
            .filter(|k| !k.is_augmentation())
            .collect();
        let forward = match &raw_shape {
            Some(raw) => {
                let prepared = Field {
                    steps: kept.iter().map(|k| Step::new((*k).clone())).collect(),
                    ..f.clone()
                };
                Some(prepared.shapes(raw)?)
            }
            None => None,
        };
        let mut later = Some(f.shape.clone());
        for k in (0..steps.len()).rev() {
            match (&mut steps[k], kept[k]) {
                (PrepStep::Reshape(to), kind) => {
                    *to = match (&forward, kind) {
                        (Some(shapes), _) => shapes[k + 1].clone(),
                        (None, Kind::Reshape(target)) => target.clone(),
                        (None, _) => later
                            .clone()
                            .ok_or("the shape after `flatten` depends on the raw inputs' shape")?,
                    };
                    later = None;
                }
                (PrepStep::OneHot(_), _) => {
                    if let Some(l) = &mut later {
                        l.pop();
                    }
                }
                _ => {}
            }
        }
        Ok(Some(Preparation {
            raw_shape,
            stat_shapes,
            steps,
            dtype: f.dtype,
            shape: f.shape.clone(),
        }))
    }
}

impl Pipeline {
    /// The table columns each field reads, by position, for the fields that select columns by
    /// index (`cols(0..30)`, `col(30)`).
    pub fn table_columns(&self) -> Vec<(String, Vec<usize>)> {
        self.fields
            .iter()
            .filter_map(|f| match &f.column {
                Column::Table { refs, .. } => refs
                    .iter()
                    .map(|r| match r {
                        TableRef::Index(i) => Some(*i),
                        TableRef::Name(_) => None,
                    })
                    .collect::<Option<Vec<usize>>>()
                    .map(|cols| (f.name.clone(), cols)),
                Column::Named(_) => None,
            })
            .collect()
    }
}

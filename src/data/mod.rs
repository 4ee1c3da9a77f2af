//! The data pipeline: reads the sources of a `data` block, splits them, fits the statistical
//! transforms on the training split and serves batches of tensors, one per field.
//!
//! [`load`] gives a [`Dataset`]; [`Dataset::batches`] iterates over a split. The fields'
//! transforms and their fitted statistics form a [`Pipeline`], which a checkpoint can save
//! ([`Pipeline::fitted_stats`]) and restore ([`Pipeline::from_decl`] then
//! [`Pipeline::restore_stats`]) to prepare new inputs ([`Pipeline::transform_inputs`]).
//! Nothing here prints; every problem with a file is a [`DataError`], never a panic.
//!
//! # Sources
//!
//! A source named `train` is the training set and one named `test` the test set. A source with
//! another name is a pool: what remains of it after its splits is the training set (so there
//! must not also be a `train` source, and there can be only one pool). Paths are relative to
//! `base_dir`; CSV, IDX and `.npy` files are decompressed when they start with the gzip magic
//! `1f 8b`, whatever their name.
//!
//! - `csv(path, header: false, delimiter: ",", skip: 0)`: `skip` lines are dropped, then with
//!   `header: true` the first record names the columns (for `col("name")`). Blank lines are
//!   ignored; a cell may be quoted (`"a, b"`, `""` inside for a quote, line breaks allowed);
//!   every row must have as many cells as the first. A cell is missing when it is empty or
//!   blank, `NA` or `nan` (any case); otherwise it must be a finite number once surrounding
//!   spaces are trimmed (`1.5e+02`) — checked only for the columns that fields read. A `\r`
//!   before a line break is dropped. The columns are numbered from 0.
//! - `idx(images, labels)`: IDX files (MNIST's format, every element type: u8, i8, i16, i32,
//!   f32, f64; big-endian); the columns `image` (the images file's dimensions after the first,
//!   `[28, 28]` for MNIST) and `label`. Both files must hold the same number of samples; a
//!   file shorter or longer than its header says is an error.
//! - `npy(path)`: the column `x`, one sample per index of the first axis; float32, float64,
//!   int32, int64 (must fit in i32), uint8 or bool.
//! - `npz(path)`: every array is a column, selected with `array("name")`; the dtypes of
//!   [`crate::store::read_npz`].
//! - `text(path, tokenizer: chars(vocab: N), context: N, stride: context, shuffle: false)`: a
//!   UTF-8 text whose non-blank lines are documents. The splits take whole documents; then the
//!   tokenizer is fitted on the training split's documents and each split becomes the windows
//!   of its token stream, columns `x` (`[context]` ids) and `y` (the next id at each position),
//!   one window every `stride` ids (section "Text" of [`text`]). With `shuffle: true` a split's
//!   documents are streamed in the order of a shuffle by `Rng::new(seed, [6, FNV-1a(split)])`
//!   instead of file order (a sorted word list would otherwise put similar words side by side).
//!   A `text` source cannot be joined; another source of the block must be text too if the
//!   training split is.
//! - `images(path, size: [H, W], channels: 3, skip_bad: false)`: a folder of class folders of
//!   PNG and JPEG files, as TorchVision's `ImageFolder` (module [`images`]); the columns `image`
//!   (`[channels, H, W]` bytes) and `label` (the class index), whose field keeps the class
//!   folders' names. Every `images` source of a block must have the same class folders. Cannot
//!   be joined.
//! - `A |> join(B)`: row by row; B's table columns are numbered after A's, and the tables must
//!   have the same number of rows. Named columns must not repeat.
//! - the generators below.
//!
//! # Fields
//!
//! `name: TYPE = COLUMN |> TRANSFORM |> …` reads `COLUMN` — a named column (`image`, `x`,
//! `array("x")`), `col(i)` or `col("name")` (one value per sample, shape `[]`), or `cols(…)` of
//! indices, half-open ranges, names and lists of them (shape `[n]`) — and applies the
//! transforms in order. The result must have the declared per-sample shape, in every source
//! (the error names the file and the field). The declared dtype holds the values: an `i32` or
//! `bool` field admits only `flatten`, `reshape`, `random_shift`, `random_flip` and
//! `impute(constant: c)` with a whole `c`, and its values must be whole numbers in range (0 or
//! 1 for bool); an f32 value must be finite. A sample may hold at most 2²⁸ values. All
//! fields of a source have the same number of samples. A batch holds one tensor per field with
//! the batch axis first. An error about a sample of an `images` source names its file.
//!
//! # Transforms
//!
//! Values are computed in f64. Statistics are per position of the sample at the transform's
//! step (per table column, per pixel), computed over the training split only — missing values
//! skipped — and applied unchanged to every split and to [`Pipeline::transform_inputs`].
//!
//! | transform | effect |
//! | --- | --- |
//! | `flatten`, `reshape([…])` | the per-sample shape; the values stay in row-major order |
//! | `scale(f)` | `v · f` |
//! | `minmax` | `(v − min) / (max − min)`; a zero range divides by 1 |
//! | `standardize` | `(v − mean) / std`, population std (÷ n); a zero std divides by 1 |
//! | `impute(mean)`, `impute(median)`, `impute(constant: c)`, `impute()` = mean | fills missing values |
//! | `impute(knn(k: 5))` | fills each missing value with the mean of the k nearest training samples that have it: scikit-learn's `KNNImputer` (uniform weights) on values standardized by the training mean and population std; distance `sqrt(d / m · Σ (a − b)²)` over the m of d positions both samples have; ties by sample order; no common position with any donor: the training mean. Its statistics are `mean`, `std` and `donors` (the training samples, `[n, …]`); `tests/fixtures/knn_impute/make.py` computed the expected values with scikit-learn |
//! | `clip_outliers(z: 3)` (the default), `clip_outliers(iqr: k)` | clamps to `mean ± z·std`, or to `[q1 − k·(q3 − q1), q3 + k·(q3 − q1)]` |
//! | `one_hot(k)` | appends an axis of k: a class index 0..k−1 becomes a one-hot vector |
//! | `label`, `one_hot` of names | see "Category names" |
//! | `random_shift(p)` | moves each image by whole pixels dy, dx uniform in −p..p, zero fill |
//! | `random_flip(axis)` | `horizontal` (the default) reverses the last axis (width) with probability ½, `vertical` the one before (height), `both` each: one draw per axis, horizontal first, the top bit deciding |
//! | `random_rotation(d)` | turns each image by an angle uniform in [−d, d] degrees, counter-clockwise about its centre, bilinear, zero fill |
//! | `random_resized_crop(scale: [a, b], ratio: [r, s])` | TorchVision's `RandomResizedCrop` box (module [`augment`]) resized back to the image's size, bilinear; defaults `[0.08, 1]`, `[3/4, 4/3]` |
//! | `color_jitter(brightness: b, contrast: c)` | on `[…, 3, H, W]`: `v · B`, then `C · v + (1 − C) · m` with `m` the mean of `0.299 R + 0.587 G + 0.114 B`, `B ~ U(max(0, 1 − b), 1 + b)` then `C ~ U(max(0, 1 − c), 1 + c)`; not clipped |
//! | `gaussian_noise(s)` | adds normal noise of standard deviation s to each value |
//!
//! A missing value is an error unless the field has an `impute`, which fills it (transforms
//! before the `impute` keep it missing). Quantiles (median, quartiles) interpolate linearly
//! between the closest ranks, like NumPy. The last six are augmentations: applied only to
//! training batches, on the images' last two axes (all but `gaussian_noise` need at least two
//! axes, `color_jitter` three channels before them), identity everywhere else — when fitting statistics too; `one_hot` may not
//! follow one. The statistics are exported as f64 tensors named
//! `DATA.FIELD.STEP.TRANSFORM.STAT` ([`Pipeline::fitted_stats`]).
//!
//! # Category names
//!
//! `label(classes:, unknown:, missing:)`, and `one_hot` without `classes` or with `unknown:` or
//! `missing:`, must be a field's first transform. The category of a cell is its trimmed text, or
//! for a number [`categories::number_name`] (`2007`, `0.5`); a missing cell has none. Each
//! column read gets a vocabulary fitted on the training split: its names sorted (numerically
//! when every name parses as a number, else by bytes), and the most frequent name (the first
//! in that order among ties). A name's class is its index; `missing: category` adds a class
//! after the names, `unknown: bucket` one after that; `missing: most_frequent` gives a missing
//! cell the most frequent name's class. Otherwise a missing cell or an unseen name is an error
//! at its cell. `classes: n` must equal each vocabulary's size, and a `one_hot`'s blocks (one
//! per column, side by side) must fill the declared size: both are checked when the data are
//! loaded, at the field's line. Every source's names are encoded once, at load, into class
//! indices that the following steps treat as numbers ([`Pipeline::fitted_text`] saves the
//! vocabularies, [`Pipeline::restore_text`] puts them back, [`Pipeline::transform_raw`] encodes
//! new rows).
//!
//! # Splits
//!
//! `split NAME = F of PARENT` runs once its parent exists (in statement order otherwise): it
//! takes `round(F · n)` samples, `n` being the parent's size before any of its splits (for a
//! pool's remainder, its size once the pool's splits are done); the count must be at least 1
//! and leave at least 1. It takes the **last** samples of the parent's remaining ones in file
//! order, or, with `shuffle(seed: S)` (bare `shuffle`: the block's seed), the last ones after
//! shuffling the remaining ones with `Rng::new(S, [2])`. Both parts keep file order. So
//! `split val = 0.1 of train` on MNIST leaves 54,000 training and 6,000 validation images.
//!
//! # Randomness
//!
//! Every random choice is a stream `Rng::new(seed, path)`: splitmix64 (the generator of
//! [`crate::tensor::random`]) from the key `bits(…bits(bits(seed, p₁), p₂)…, pₖ)` for the path
//! `[p₁, …, pₖ]`; draw `j` is `bits(key, j)`. A uniform is `(draw >> 11) · 2⁻⁵³` in [0, 1),
//! `below(n)` is `(draw · n) >> 64` in 0..n, a normal is `sqrt(−2·ln(1 − u₁))·cos(2π·u₂)` from
//! two uniforms, and a shuffle is Fisher–Yates (for `i` from `len − 1` down to 1, swap `i` with
//! `below(i + 1)`). So nothing depends on batch sizes or on what ran before. The block's seed
//! is `seed N` if the block has it, else the `seed` given to [`load`]. Epoch `e` of the
//! training split visits its samples in the order of a shuffle by `Rng::new(S, [3, e])`, with
//! `S` from the block's `shuffle(seed: S)` setting, else the block's seed; other splits are
//! served in order. The augmentation of training sample `i` (its index in the split) by step
//! `k` of field `f` in epoch `e` draws from `Rng::new(seed, [4, e, f, k, i])`.
//!
//! # Generators
//!
//! Sample `i` draws from `Rng::new(seed, [0, i])`, in the order written; `U(a, b)` is uniform
//! in [a, b), `N` a standard normal. A generator without `seed:` takes the first draw of
//! `Rng::new(block seed, [5, FNV-1a(source name)])`, so `train` and `test` differ.
//!
//! - `xor(n, noise: 0)`: `a, b ~ U(−1, 1)`, then `e₁, e₂ ~ N`; `x = [a + noise·e₁, b + noise·e₂]`
//!   (f64 `[2]`), `y = 1` if exactly one of `a`, `b` is positive, else 0 (i32 `[]`).
//! - `spirals(n, classes: 2, noise: 0)`: class `c = i mod classes`; `t ~ U(0, 1)`, `e₁, e₂ ~ N`;
//!   angle `θ = 2π·c/classes + 3π·t`; `x = [t·cos θ + noise·e₁, t·sin θ + noise·e₂]`, `y = c`.
//! - `blobs(n, centers: 3, features: 2, std: 1)`: the centres are drawn first from
//!   `Rng::new(seed, [1])`, coordinate by coordinate, each `U(−10, 10)`; sample `i` has class
//!   `c = i mod centers` and `x = centre_c + std·N` per feature (`[features]`), `y = c`.
//! - `sine(n, length)`: amplitude `A ~ U(0.5, 1)`, angular frequency `ω ~ U(0.1, 0.5)` radians
//!   per step, phase `φ ~ U(0, 2π)`; `x[t] = A·sin(ω·t + φ)` for `t = 0..length−1` (`[length, 1]`)
//!   and `y = [A·sin(ω·length + φ)]` (`[1]`), the value that follows the window.
//! - `copy_task(n, length, vocab)`: `x[t] = below(vocab)` for each `t` (i32 `[length]`), `y = x`;
//!   `reverse_task`: `y` is `x` reversed; `sort_task`: `y` is `x` sorted ascending.
//!
//! A generator's column may hold at most 2²⁸ values.

mod augment;
mod categories;
mod formats;
mod generate;
mod images;
mod pipeline;
mod random;
mod source;
pub mod spec;
#[cfg(test)]
mod tests;
pub mod text;

pub use categories::{MISSING_NAME, UNKNOWN_NAME};
pub use images::Progress;
pub use pipeline::{Pipeline, PrepStep, Preparation, TextFields};

use crate::ir::{DType, TensorType};
use crate::resolve::Program;
use crate::syntax::ast::{DataDecl, Item};
use crate::tensor::Tensor;
use pipeline::{Accumulator, Augment, Fit};
use random::Rng;
use source::Source;
use spec::Spec;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

/// A problem with the data: the file, the 1-based line and column when the file is text (a
/// CSV cell), and what is wrong. Displayed as `file:line:column: message` (or `file: message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl DataError {
    fn at(file: &str, line: usize, column: usize, message: impl Into<String>) -> DataError {
        DataError {
            file: file.to_string(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
        }
    }

    fn in_file(file: &str, message: impl Into<String>) -> DataError {
        DataError {
            file: file.to_string(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DataError {}

/// The name of the `.nnl` file that holds `data`.
fn nnl_file(program: &Program, data: &DataDecl) -> String {
    program
        .modules
        .iter()
        .find(|m| {
            m.ast
                .items
                .iter()
                .any(|i| matches!(i, Item::Data(d) if std::ptr::eq(d, data)))
        })
        .unwrap_or(&program.modules[program.root])
        .name
        .clone()
}

/// The block as the checker read it (`check::Facts`), and its pipeline before fitting.
fn read_spec(program: &Program, data: &DataDecl) -> Result<(Spec, Pipeline), DataError> {
    let file = nnl_file(program, data);
    let spec = program.facts.data(data.span).cloned().ok_or_else(|| {
        DataError::in_file(
            &file,
            format!(
                "data `{}` was not checked, or did not pass the checker",
                data.name.name
            ),
        )
    })?;
    let text = spec.text_tokenizer().map(|tokenizer| TextFields {
        spec: tokenizer.clone(),
        fields: spec
            .fields
            .iter()
            .filter(|f| matches!(f.column, pipeline::Column::Named(_)))
            .map(|f| f.name.clone())
            .collect(),
        tokenizer: None,
    });
    let pipeline = Pipeline {
        name: data.name.name.to_string(),
        file,
        fields: spec.fields.iter().map(pipeline::Field::new).collect(),
        text,
    };
    Ok((spec, pipeline))
}

impl Pipeline {
    /// The fields and transforms of a data block, without reading any data: the statistics
    /// are not fitted until [`Pipeline::restore_stats`].
    pub fn from_decl(program: &Program, data: &DataDecl) -> Result<Pipeline, DataError> {
        read_spec(program, data).map(|(_, p)| p)
    }
}

/// Samples of one source that form a split.
#[derive(Debug, Clone)]
struct Set {
    name: String,
    source: usize,
    /// Indices of the source's samples, in file order.
    rows: Vec<usize>,
    /// The size that fractions of this set refer to.
    base: usize,
    /// A source statement that is not `train` or `test`.
    pool: bool,
}

/// A loaded data block: its sources, splits and fitted pipeline.
#[derive(Debug, Clone)]
pub struct Dataset {
    pipeline: Pipeline,
    sources: Vec<Source>,
    sets: Vec<Set>,
    shuffle_seed: u64,
    augment_seed: u64,
    /// Each source's fields transformed once, for batches to gather from; made on first use
    /// (after the statistics are fitted or restored).
    prepared: OnceLock<Vec<Vec<Column>>>,
}

/// A field's values for every sample of a source, a sample after another, transformed by the
/// steps before the field's first augmentation.
#[derive(Debug, Clone)]
enum Column {
    /// Every step done: the values in the field's dtype, `[samples, values per sample]`.
    Done(Tensor),
    /// The steps from `from` on (augmentations, and what follows them) remain, done per batch;
    /// `len` values per sample, in f64.
    Pending {
        values: Vec<f64>,
        len: usize,
        from: usize,
    },
}

/// A field that a model reads as class indices (`sparse_cross_entropy`, `accuracy`): each value
/// must be a whole number in `0..classes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassField {
    pub field: String,
    pub classes: usize,
    /// Where the model reads it (`model.nnl:17:10`), for the message; may be empty.
    pub used_at: String,
}

/// One batch: the split's sample indices it holds, and one tensor per field with the batch
/// axis first, keyed by field name.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub indices: Vec<usize>,
    pub tensors: HashMap<String, Tensor>,
}

impl Batch {
    /// The samples at positions `rows` of the batch (a data-parallel shard of it).
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Batch {
        fn cut<T: Clone>(
            a: &ndarray::ArrayD<T>,
            rows: &std::ops::Range<usize>,
        ) -> ndarray::ArrayD<T> {
            a.slice_axis(ndarray::Axis(0), ndarray::Slice::from(rows.clone()))
                .to_owned()
        }
        let tensors = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let part = match t {
                    Tensor::F32(a) => Tensor::F32(cut(a, &rows)),
                    Tensor::F64(a) => Tensor::F64(cut(a, &rows)),
                    Tensor::I32(a) => Tensor::I32(cut(a, &rows)),
                    Tensor::Bool(a) => Tensor::Bool(cut(a, &rows)),
                };
                (name.clone(), part)
            })
            .collect();
        Batch {
            indices: self.indices[rows].to_vec(),
            tensors,
        }
    }
}

/// Loads the data block `data` of `program`: reads its sources (paths relative to `base_dir`,
/// the directory of the `.nnl` file), makes its splits, fits its statistics on the training
/// split and checks every sample of every split, so that batches cannot fail.
pub fn load(
    program: &Program,
    data: &DataDecl,
    base_dir: &Path,
    seed: u64,
) -> Result<Dataset, DataError> {
    load_with(program, data, base_dir, seed, &|_, _, _| {})
}

/// [`load`], telling `progress` how the decoding of image folders advances.
pub fn load_with(
    program: &Program,
    data: &DataDecl,
    base_dir: &Path,
    seed: u64,
    progress: Progress<'_>,
) -> Result<Dataset, DataError> {
    let (spec, mut pipeline) = read_spec(program, data)?;
    let seed = spec.seed.unwrap_or(seed);
    let mut sources = Vec::new();
    for (name, s) in &spec.sources {
        let mut src = source::open(name, s, base_dir, &pipeline.file, seed, progress)?;
        if src.text.is_none() {
            src.resolve(&pipeline.fields)?;
            src.first_bad_cell(&pipeline.fields)?;
        }
        sources.push(src);
    }
    folder_classes(&mut pipeline, &sources)?;
    let mut sets = make_sets(&spec, &sources, seed, &pipeline.file)?;
    let mut sources = window_text(&mut pipeline, sources, &mut sets, seed)?;
    let train = sets
        .iter()
        .find(|s| s.name == "train")
        .expect("make_sets makes a training set");
    fit_categories(&mut pipeline, &sources[train.source], &train.rows)?;
    read_tokenizer_files(&mut pipeline, base_dir)?;
    fit_tokens(&mut pipeline, &sources[train.source], &train.rows)?;
    for src in &mut sources {
        encode_categories(&pipeline, src)?;
        encode_tokens(&pipeline, src)?;
    }
    fit(&mut pipeline, &sources[train.source], &train.rows)?;
    for src in &sources {
        validate(&pipeline, src)?;
    }
    Ok(Dataset {
        pipeline,
        sources,
        sets,
        shuffle_seed: spec.shuffle.flatten().unwrap_or(seed),
        augment_seed: seed,
        prepared: OnceLock::new(),
    })
}

/// Gives the fields that read an `images` source's `label` the class folders' names, which must
/// be the same in every such source (a class index means one class everywhere).
fn folder_classes(pipeline: &mut Pipeline, sources: &[Source]) -> Result<(), DataError> {
    let mut first: Option<(&Source, &[String])> = None;
    for src in sources {
        let Some(images) = &src.images else { continue };
        match first {
            Some((other, classes)) if classes != images.classes.as_slice() => {
                return Err(DataError::in_file(
                    &src.origins[0].path,
                    format!(
                        "source `{}` has the class folders {}, but source `{}` has {}: every folder needs the same classes, so that a class index means the same class",
                        src.name,
                        images.classes.join(", "),
                        other.name,
                        classes.join(", ")
                    ),
                ));
            }
            Some(_) => {}
            None => first = Some((src, &images.classes)),
        }
        for (fi, (input, _)) in src.inputs.iter().enumerate() {
            if matches!(input, source::Input::Array(a) if src.arrays[*a].name == "label") {
                pipeline.fields[fi].source_classes = images.classes.clone();
            }
        }
    }
    Ok(())
}

/// The sets: one per source, then the splits, in the order of section "Splits".
fn make_sets(
    spec: &Spec,
    sources: &[Source],
    seed: u64,
    file: &str,
) -> Result<Vec<Set>, DataError> {
    let err = |m: String| DataError::in_file(file, m);
    let mut sets: Vec<Set> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| Set {
            name: s.name.clone(),
            source: i,
            rows: (0..s.rows).collect(),
            base: s.rows,
            pool: s.name != "train" && s.name != "test",
        })
        .collect();
    let mut pending: Vec<_> = spec.splits.iter().collect();
    // A pool's remainder becomes the training set once nothing else can be split.
    let promote = |sets: &mut Vec<Set>| -> Result<bool, DataError> {
        if sets.iter().any(|s| s.name == "train") {
            return Ok(false);
        }
        let pools: Vec<usize> = (0..sets.len()).filter(|&i| sets[i].pool).collect();
        match pools[..] {
            [p] => {
                sets[p].name = "train".into();
                sets[p].pool = false;
                sets[p].base = sets[p].rows.len();
                Ok(true)
            }
            [] => Ok(false),
            _ => Err(err(format!(
                "the sources `{}` and `{}` could both become the training set: keep one, or name them `train` and `test`",
                sets[pools[0]].name, sets[pools[1]].name
            ))),
        }
    };
    while !pending.is_empty() {
        let Some(pos) = pending
            .iter()
            .position(|sp| sets.iter().any(|s| s.name == sp.parent))
        else {
            if promote(&mut sets)? {
                continue;
            }
            return Err(err(format!(
                "split `{}`: there is no `{}` to split",
                pending[0].name, pending[0].parent
            )));
        };
        let sp = pending.remove(pos);
        if sets.iter().any(|s| s.name == sp.name) {
            return Err(err(format!("`{}` names two sets of samples", sp.name)));
        }
        let p = sets
            .iter()
            .position(|s| s.name == sp.parent)
            .expect("found above");
        let parent = &mut sets[p];
        let k = (sp.fraction * parent.base as f64).round() as usize;
        let left = parent.rows.len();
        if k == 0 || k >= left {
            return Err(err(format!(
                "split `{}` takes {} of `{}`'s {} samples, which leaves {} in `{}` and {k} in `{}`: both need at least one",
                sp.name,
                sp.fraction,
                sp.parent,
                parent.base,
                left.saturating_sub(k),
                sp.parent,
                sp.name
            )));
        }
        let mut order = parent.rows.clone();
        if let Some(s) = sp.shuffle {
            Rng::new(s.unwrap_or(seed), &[2]).shuffle(&mut order);
        }
        let mut taken = order.split_off(left - k);
        order.sort_unstable();
        taken.sort_unstable();
        parent.rows = order;
        let source = parent.source;
        sets.push(Set {
            name: sp.name.clone(),
            source,
            rows: taken,
            base: k,
            pool: false,
        });
    }
    promote(&mut sets)?;
    if !sets.iter().any(|s| s.name == "train") {
        return Err(err(
            "there is no training data: name a source `train`, or split a source and train on the rest"
                .into(),
        ));
    }
    if let Some(pool) = sets.iter().find(|s| s.pool) {
        return Err(err(format!(
            "the source `{}` is not used: only `train`, `test` and one source to split are allowed",
            pool.name
        )));
    }
    Ok(sets)
}

/// The names of the columns a field reads, for messages: `` `island` `` or `column 3`.
fn column_names(src: &Source, fi: usize) -> Vec<String> {
    match &src.inputs[fi].0 {
        source::Input::Cols { cols, .. } => cols
            .iter()
            .map(|&c| {
                let col = &src.columns[c];
                match &col.header {
                    Some(h) => format!("`{h}`"),
                    None => format!("column {c}"),
                }
            })
            .collect(),
        source::Input::Array(a) => {
            let a = &src.arrays[*a];
            let n: usize = a.shape.iter().product();
            if n == 1 {
                vec![format!("`{}`", a.name)]
            } else {
                (0..n)
                    .map(|i| format!("`{}` (value {i})", a.name))
                    .collect()
            }
        }
    }
}

/// Fits the vocabulary of every column that a field encodes as category names, on the
/// training samples, and checks it against the declaration.
fn fit_categories(pipeline: &mut Pipeline, src: &Source, rows: &[usize]) -> Result<(), DataError> {
    for fi in 0..pipeline.fields.len() {
        if pipeline.fields[fi].encoder().is_none() {
            continue;
        }
        let columns = column_names(src, fi);
        let mut vocab = Vec::new();
        for (elem, c) in columns.iter().enumerate() {
            let v = categories::Vocab::fit(rows.iter().map(|&r| src.category(fi, r, elem)))
                .map_err(|m| pipeline.field_error(&pipeline.fields[fi], format!("{c}: {m}")))?;
            vocab.push(v);
        }
        pipeline.fields[fi].vocab = vocab;
        pipeline.fields[fi]
            .check_vocab(&columns)
            .map_err(|m| pipeline.field_error(&pipeline.fields[fi], m))?;
    }
    Ok(())
}

/// Encodes the category names of a source into class indices with the fitted vocabularies:
/// a name not seen in training or a missing cell is an error at its cell unless the encoder
/// says what it means.
fn encode_categories(pipeline: &Pipeline, src: &mut Source) -> Result<(), DataError> {
    for (fi, f) in pipeline.fields.iter().enumerate() {
        let Some(e) = f.encoder() else { continue };
        let indices: Vec<_> = f.vocab.iter().map(categories::Vocab::index).collect();
        let mut codes = Vec::with_capacity(src.rows * f.vocab.len());
        for row in 0..src.rows {
            for (elem, (v, index)) in f.vocab.iter().zip(&indices).enumerate() {
                let key = src.category(fi, row, elem);
                let code = v.code(e, index, key.as_deref()).map_err(|m| {
                    src.error_at(fi, row, elem, &format!("field `{}`: {m}", f.name))
                })?;
                codes.push(code as f64);
            }
        }
        src.codes[fi] = Some(codes);
    }
    Ok(())
}

/// Reads the `tokenizer.json` of every field that tokenizes with `bpe(file: …)` (relative to
/// the `.nnl` file's directory `base`).
fn read_tokenizer_files(pipeline: &mut Pipeline, base: &Path) -> Result<(), DataError> {
    for f in &mut pipeline.fields {
        let Some(pipeline::Step {
            kind:
                pipeline::Kind::Tokens(pipeline::Tokens {
                    spec: text::TokenizerSpec::File { path, json, .. },
                    ..
                }),
            ..
        }) = f.steps.first_mut()
        else {
            continue;
        };
        let p = base.join(&*path);
        let bytes = formats::read_file(&p)?;
        *json = Some(
            String::from_utf8(bytes)
                .map_err(|_| DataError::in_file(&p.display().to_string(), "not UTF-8 text"))?,
        );
    }
    Ok(())
}

/// Fits the tokenizer of every field that tokenizes a text column on the training samples'
/// cells (a missing cell is an empty text).
fn fit_tokens(pipeline: &mut Pipeline, src: &Source, rows: &[usize]) -> Result<(), DataError> {
    for fi in 0..pipeline.fields.len() {
        let Some(t) = pipeline.fields[fi].tokens() else {
            continue;
        };
        let texts: Vec<String> = rows
            .iter()
            .map(|&r| src.category(fi, r, 0).unwrap_or_default())
            .collect();
        let documents: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokenizer = t
            .spec
            .fit(&documents)
            .map_err(|m| pipeline.field_error(&pipeline.fields[fi], m))?;
        pipeline.fields[fi].tokenizer = Some(tokenizer);
    }
    Ok(())
}

/// Tokenizes the text cells of a source with the fitted tokenizers: `length` ids per cell, cut
/// or padded with the end-of-document id (or the mask of the ids that are not padding).
fn encode_tokens(pipeline: &Pipeline, src: &mut Source) -> Result<(), DataError> {
    for (fi, f) in pipeline.fields.iter().enumerate() {
        let (Some(t), Some(tokenizer)) = (f.tokens(), &f.tokenizer) else {
            continue;
        };
        let pad = tokenizer.end_of_document();
        let mut codes = Vec::with_capacity(src.rows * t.length);
        for row in 0..src.rows {
            let ids = tokenizer.encode(&src.category(fi, row, 0).unwrap_or_default());
            codes.extend((0..t.length).map(|i| match (ids.get(i), t.mask) {
                (Some(_), true) => 1.0,
                (None, true) => 0.0,
                (Some(&id), false) => f64::from(id),
                (None, false) => f64::from(pad),
            }));
        }
        src.codes[fi] = Some(codes);
    }
    Ok(())
}

/// Fits the tokenizer of the text sources on the training split's documents and replaces each
/// set of documents by its windows (a source of its own), so that the splits keep whole
/// documents apart. Other sources are kept as they are.
fn window_text(
    pipeline: &mut Pipeline,
    sources: Vec<Source>,
    sets: &mut [Set],
    seed: u64,
) -> Result<Vec<Source>, DataError> {
    if sources.iter().all(|s| s.text.is_none()) {
        return Ok(sources);
    }
    let train = sets
        .iter()
        .find(|s| s.name == "train")
        .expect("make_sets makes a training set");
    let train_src = &sources[train.source];
    let Some(text) = &train_src.text else {
        return Err(DataError::in_file(
            &pipeline.file,
            format!(
                "data `{}`: the training split must be text too when another source is `text`: the tokenizer is fitted on it",
                pipeline.name
            ),
        ));
    };
    let docs: Vec<&str> = train
        .rows
        .iter()
        .map(|&r| text.documents[r].as_str())
        .collect();
    let tokenizer = text
        .tokenizer
        .fit(&docs)
        .map_err(|m| DataError::in_file(&train_src.origins[0].path, m))?;
    if let Some(other) = sources.iter().find(|s| {
        s.text
            .as_ref()
            .is_some_and(|t| t.tokenizer != text.tokenizer)
    }) {
        return Err(DataError::in_file(
            &other.origins[0].path,
            format!(
                "source `{}` declares another tokenizer than the training split's: a data block has one tokenizer",
                other.name
            ),
        ));
    }
    let mut out: Vec<Source> = Vec::new();
    let mut kept: HashMap<usize, usize> = HashMap::new();
    for set in sets.iter_mut() {
        let src = &sources[set.source];
        if let Some(text) = &src.text {
            let mut docs = set.rows.clone();
            if text.shuffle {
                Rng::new(seed, &[6, random::fnv1a(&set.name)]).shuffle(&mut docs);
            }
            let mut w = src.windowed(&tokenizer, &docs).map_err(|m| {
                DataError::in_file(&src.origins[0].path, format!("split `{}`: {m}", set.name))
            })?;
            w.resolve(&pipeline.fields)?;
            set.rows = (0..w.rows).collect();
            set.base = w.rows;
            set.source = out.len();
            out.push(w);
        } else {
            set.source = *kept.entry(set.source).or_insert_with(|| {
                out.push(src.clone());
                out.len() - 1
            });
        }
    }
    if let Some(t) = &mut pipeline.text {
        t.tokenizer = Some(tokenizer);
    }
    Ok(out)
}

/// Fits the statistics of every field's steps, in order, on the training samples.
fn fit(pipeline: &mut Pipeline, src: &Source, rows: &[usize]) -> Result<(), DataError> {
    let mut buf = Vec::new();
    for (fi, field) in pipeline.fields.iter_mut().enumerate() {
        let shapes = src.inputs[fi].1.clone();
        for k in 0..field.steps.len() {
            if field.steps[k].kind.stat_names().is_empty() {
                continue;
            }
            let mut acc = Accumulator::new(&field.steps[k].kind, shapes[k].iter().product());
            for &row in rows {
                src.read(fi, row, &mut buf);
                field
                    .apply(&mut buf, &shapes, 0..k, None)
                    .map_err(|f| src.error_at(fi, row, f.elem, &f.message))?;
                acc.add(&buf);
            }
            let values = acc.finish().map_err(|m| {
                DataError::in_file(
                    src.file_of(&src.inputs[fi].0),
                    format!("field `{}`: {m}", field.name),
                )
            })?;
            field.steps[k].fit = Some(Fit {
                shape: shapes[k].clone(),
                values,
            });
        }
    }
    Ok(())
}

/// Evaluates every sample of a source, so that serving batches cannot fail.
fn validate(pipeline: &Pipeline, src: &Source) -> Result<(), DataError> {
    let mut buf = Vec::new();
    for row in 0..src.rows {
        for (fi, field) in pipeline.fields.iter().enumerate() {
            let shapes = &src.inputs[fi].1;
            field.check_fits(shapes).map_err(|m| {
                DataError::in_file(
                    src.file_of(&src.inputs[fi].0),
                    format!("field `{}`: {m}", field.name),
                )
            })?;
            src.read(fi, row, &mut buf);
            field
                .evaluate(&mut buf, shapes, None)
                .map_err(|f| src.error_at(fi, row, f.elem, &f.message))?;
        }
    }
    Ok(())
}

impl Dataset {
    /// The fields, their transforms and fitted statistics.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Each field's name and per-sample type, in declaration order.
    pub fn fields(&self) -> Vec<(String, TensorType)> {
        self.pipeline.fields()
    }

    /// The files of `images` sources that did not decode and were left out (`skip_bad: true`),
    /// with why.
    pub fn skipped(&self) -> Vec<(String, String)> {
        self.sources
            .iter()
            .filter_map(|s| s.images.as_ref())
            .flat_map(|i| i.skipped.iter().cloned())
            .collect()
    }

    /// What the console says about the files [`Dataset::skipped`] left out, if any.
    pub fn skipped_note(&self) -> Option<String> {
        let skipped = self.skipped();
        let (file, why) = skipped.first()?;
        Some(format!(
            "left out {} image file{} that do not decode (skip_bad: true); the first: {file}: {why}",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" }
        ))
    }

    /// The splits' names and sizes: `train`, `test` if any, then the `split`s.
    pub fn splits(&self) -> Vec<(String, usize)> {
        self.sets
            .iter()
            .map(|s| (s.name.clone(), s.rows.len()))
            .collect()
    }

    /// The number of samples of a split.
    pub fn size(&self, split: &str) -> Option<usize> {
        self.sets
            .iter()
            .find(|s| s.name == split)
            .map(|s| s.rows.len())
    }

    /// Checks that every sample of every split holds a class index in range in each field of
    /// `fields`, so that no batch with a label the model cannot represent is ever trained on or
    /// scored. The error names the split, the sample (file, line and column for CSV) and the
    /// value.
    pub fn check_classes(&self, fields: &[ClassField]) -> Result<(), DataError> {
        let mut buf = Vec::new();
        for c in fields {
            let Some(fi) = self.pipeline.fields.iter().position(|f| f.name == c.field) else {
                continue;
            };
            let field = &self.pipeline.fields[fi];
            for set in &self.sets {
                let src = &self.sources[set.source];
                let shapes = &src.inputs[fi].1;
                for &row in &set.rows {
                    src.read(fi, row, &mut buf);
                    field
                        .evaluate(&mut buf, shapes, None)
                        .map_err(|f| src.error_at(fi, row, f.elem, &f.message))?;
                    let bad = buf
                        .iter()
                        .position(|&v| !(v >= 0.0 && v < c.classes as f64 && v.fract() == 0.0));
                    if let Some(elem) = bad {
                        let at = if c.used_at.is_empty() {
                            String::new()
                        } else {
                            format!(" at {}", c.used_at)
                        };
                        return Err(src.error_at(
                            fi,
                            row,
                            elem,
                            &format!(
                                "class {} is out of range in split `{}`: the model reads `{}` as a class index{at}, one of {} classes (0 to {}); nothing was trained",
                                buf[elem],
                                set.name,
                                c.field,
                                c.classes,
                                c.classes.saturating_sub(1)
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// See [`Pipeline::fitted_stats`].
    pub fn fitted_stats(&self) -> Vec<(String, Tensor)> {
        self.pipeline.fitted_stats()
    }

    /// See [`Pipeline::fitted_text`].
    pub fn fitted_text(&self) -> Vec<(String, String)> {
        self.pipeline.fitted_text()
    }

    /// See [`Pipeline::restore_text`]. The windows were cut with the tokenizer fitted on this
    /// data, so a saved tokenizer that differs from it means the text changed since the
    /// checkpoint was written: an error, not a silent re-encoding. Every source's category
    /// names are encoded again with the restored vocabularies.
    pub fn restore_text(&mut self, text: &[(String, String)]) -> Result<(), DataError> {
        self.prepared = OnceLock::new();
        let folders: Vec<Vec<String>> = self
            .pipeline
            .fields
            .iter()
            .map(|f| f.source_classes.clone())
            .collect();
        let fitted = self
            .pipeline
            .text
            .as_ref()
            .and_then(|t| t.tokenizer.clone());
        self.pipeline.restore_text(text)?;
        let restored = self
            .pipeline
            .text
            .as_ref()
            .and_then(|t| t.tokenizer.as_ref());
        if fitted.is_some() && restored != fitted.as_ref() {
            return Err(DataError::in_file(
                &self.pipeline.file,
                format!(
                    "data `{}`: the checkpoint's tokenizer differs from the one fitted on the training split now: the text changed since the checkpoint was written",
                    self.pipeline.name
                ),
            ));
        }
        if let Some(f) = self
            .pipeline
            .fields
            .iter()
            .zip(&folders)
            .find(|(f, folder)| !folder.is_empty() && f.source_classes != **folder)
            .map(|(f, _)| f)
        {
            return Err(DataError::in_file(
                &self.pipeline.file,
                format!(
                    "data `{}`: the checkpoint's classes of `{}` ({}) differ from the class folders now: the folders changed since the checkpoint was written",
                    self.pipeline.name,
                    f.name,
                    f.source_classes.join(", ")
                ),
            ));
        }
        for src in &mut self.sources {
            encode_categories(&self.pipeline, src)?;
            encode_tokens(&self.pipeline, src)?;
        }
        Ok(())
    }

    /// See [`Pipeline::restore_stats`].
    pub fn restore_stats(&mut self, stats: &[(String, Tensor)]) -> Result<(), DataError> {
        self.prepared = OnceLock::new();
        self.pipeline.restore_stats(stats)
    }

    /// Transforms every source's fields as far as they can be before batching (done on first
    /// use otherwise; a run calls it before its first epoch so that epochs time only batches).
    pub fn prepare(&self) {
        self.prepared();
    }

    /// Every source's fields, transformed as far as they can be before batching.
    fn prepared(&self) -> &[Vec<Column>] {
        self.prepared.get_or_init(|| {
            self.sources
                .iter()
                .map(|src| {
                    let mut buf = Vec::new();
                    self.pipeline
                        .fields
                        .iter()
                        .enumerate()
                        .map(|(fi, f)| {
                            let shapes = &src.inputs[fi].1;
                            let from = f
                                .steps
                                .iter()
                                .position(|s| s.kind.is_augmentation())
                                .unwrap_or(f.steps.len());
                            let mut values = Vec::new();
                            for row in 0..src.rows {
                                src.read(fi, row, &mut buf);
                                f.apply(&mut buf, shapes, 0..from, None)
                                    .expect("every sample was evaluated when the data were loaded");
                                values.extend_from_slice(&buf);
                            }
                            let len = values.len().checked_div(src.rows).unwrap_or(0);
                            if from == f.steps.len() {
                                let ty = TensorType::new(f.dtype, vec![src.rows, len]);
                                Column::Done(Tensor::from_f64(&ty, values))
                            } else {
                                Column::Pending { values, len, from }
                            }
                        })
                        .collect()
                })
                .collect()
        })
    }

    /// See [`Pipeline::transform_inputs`].
    pub fn transform_inputs(&self, field: &str, raw: &Tensor) -> Result<Tensor, DataError> {
        self.pipeline.transform_inputs(field, raw)
    }

    /// The batches of a split for one epoch: `batch_size` samples each, the last one smaller
    /// when the size does not divide evenly. The training split is shuffled per epoch and
    /// augmented; the others come in order, unchanged.
    pub fn batches(
        &self,
        split: &str,
        batch_size: usize,
        epoch: u64,
    ) -> Result<Batches<'_>, DataError> {
        let err = |m: String| DataError::in_file(&self.pipeline.file, m);
        let set = self
            .sets
            .iter()
            .position(|s| s.name == split)
            .ok_or_else(|| {
                let names: Vec<&str> = self.sets.iter().map(|s| s.name.as_str()).collect();
                err(format!(
                    "data `{}` has no split `{split}` (it has {})",
                    self.pipeline.name,
                    names.join(", ")
                ))
            })?;
        if batch_size == 0 {
            return Err(err("the batch size must be at least 1".into()));
        }
        let mut order: Vec<usize> = (0..self.sets[set].rows.len()).collect();
        let training = split == "train";
        if training {
            Rng::new(self.shuffle_seed, &[3, epoch]).shuffle(&mut order);
        }
        Ok(Batches {
            data: self,
            set,
            order,
            size: batch_size,
            next: 0,
            epoch: training.then_some(epoch),
        })
    }

    /// A field's values in a split before any transform, as `nnlc predict` takes them
    /// (`[N, …raw per-sample shape]`, f64, NaN for a missing value), in the split's order.
    pub fn raw_inputs(&self, split: &str, field: &str) -> Result<Tensor, DataError> {
        let err = |m: String| DataError::in_file(&self.pipeline.file, m);
        let set = self
            .sets
            .iter()
            .find(|s| s.name == split)
            .ok_or_else(|| err(format!("no split `{split}`")))?;
        let fi = self
            .pipeline
            .fields
            .iter()
            .position(|f| f.name == field)
            .ok_or_else(|| err(format!("no field `{field}`")))?;
        let src = &self.sources[set.source];
        // A tokenized text arrives as its ids already (the source encoded the cells).
        let per = match self.pipeline.fields[fi].tokens() {
            Some(t) => vec![t.length],
            None => src.inputs[fi].1[0].clone(),
        };
        let mut values = Vec::with_capacity(set.rows.len() * per.iter().product::<usize>());
        let mut buf = Vec::new();
        for &row in &set.rows {
            src.read(fi, row, &mut buf);
            values.extend_from_slice(&buf);
        }
        let mut shape = vec![set.rows.len()];
        shape.extend(per);
        Ok(Tensor::from_f64(
            &TensorType::new(DType::F64, shape),
            values,
        ))
    }

    fn batch(&self, set: usize, indices: Vec<usize>, epoch: Option<u64>) -> Batch {
        let set = &self.sets[set];
        let src = &self.sources[set.source];
        let columns = &self.prepared()[set.source];
        let rows: Vec<usize> = indices.iter().map(|&i| set.rows[i]).collect();
        let mut tensors = HashMap::new();
        for (fi, f) in self.pipeline.fields.iter().enumerate() {
            let mut shape = vec![indices.len()];
            shape.extend(&f.shape);
            let tensor = match &columns[fi] {
                Column::Done(all) => gather_rows(all, &rows, &shape),
                Column::Pending { values, len, from } => {
                    let shapes = &src.inputs[fi].1;
                    let mut out =
                        Vec::with_capacity(indices.len() * f.shape.iter().product::<usize>());
                    let mut buf = Vec::new();
                    for (&i, &row) in indices.iter().zip(&rows) {
                        buf.clear();
                        buf.extend_from_slice(&values[row * len..(row + 1) * len]);
                        let aug = epoch.map(|epoch| Augment {
                            seed: self.augment_seed,
                            epoch,
                            field: fi,
                            sample: i,
                        });
                        f.apply(&mut buf, shapes, *from..f.steps.len(), aug.as_ref())
                            .expect("every sample was evaluated when the data were loaded");
                        out.extend_from_slice(&buf);
                    }
                    Tensor::from_f64(&TensorType::new(f.dtype, shape), out)
                }
            };
            tensors.insert(f.name.clone(), tensor);
        }
        Batch { indices, tensors }
    }

    /// Asks the processor to bring the prepared rows of `indices` (samples of split `set`) into
    /// its caches. The batch after the one just gathered is fetched from memory while the step
    /// trains on that one, so gathering it later reads caches: a data set larger than the
    /// caches (MNIST as f32 is 188 MB) is otherwise read at memory latency, row after row.
    fn prefetch(&self, set: usize, indices: &[usize]) {
        let set = &self.sets[set];
        for column in &self.prepared()[set.source] {
            if let Column::Done(all) = column {
                let (base, row_bytes) = match all {
                    Tensor::F32(a) => (a.as_ptr().cast::<u8>(), a.shape()[1] * 4),
                    Tensor::F64(a) => (a.as_ptr().cast::<u8>(), a.shape()[1] * 8),
                    Tensor::I32(a) => (a.as_ptr().cast::<u8>(), a.shape()[1] * 4),
                    Tensor::Bool(a) => (a.as_ptr().cast::<u8>(), a.shape()[1]),
                };
                for &i in indices {
                    let row = base.wrapping_add(set.rows[i] * row_bytes);
                    for line in (0..row_bytes).step_by(PREFETCH_STRIDE) {
                        prefetch_line(row.wrapping_add(line));
                    }
                }
            }
        }
    }
}

/// The bytes between two prefetched lines of a row: the processor's own prefetcher follows a
/// row once a few of its lines are requested, and requesting every line stalls on the
/// outstanding misses (measured on MNIST rows of 3,136 bytes: every line gained nothing, every
/// fourth to sixteenth line 3% of mnist_mlp's step).
const PREFETCH_STRIDE: usize = 512;

/// A hint to load the cache line at `p` (any address: a prefetch never faults).
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Rows of a `[samples, values]` tensor, shaped `shape`.
fn gather_rows(all: &Tensor, rows: &[usize], shape: &[usize]) -> Tensor {
    fn rows_of<T: Copy>(
        a: &ndarray::ArrayD<T>,
        rows: &[usize],
        shape: &[usize],
    ) -> ndarray::ArrayD<T> {
        let len = a.shape()[1];
        let flat = a.as_slice().expect("prepared columns are row-major");
        let mut out = Vec::with_capacity(rows.len() * len);
        for &r in rows {
            out.extend_from_slice(&flat[r * len..(r + 1) * len]);
        }
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), out).expect("one field per row")
    }
    match all {
        Tensor::F32(a) => Tensor::F32(rows_of(a, rows, shape)),
        Tensor::F64(a) => Tensor::F64(rows_of(a, rows, shape)),
        Tensor::I32(a) => Tensor::I32(rows_of(a, rows, shape)),
        Tensor::Bool(a) => Tensor::Bool(rows_of(a, rows, shape)),
    }
}

/// The batches of one split for one epoch, from [`Dataset::batches`].
pub struct Batches<'a> {
    data: &'a Dataset,
    set: usize,
    /// The split's sample indices in the order of this epoch.
    order: Vec<usize>,
    size: usize,
    next: usize,
    /// The epoch, for the training split (which is augmented).
    epoch: Option<u64>,
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.size).min(self.order.len());
        let indices = self.order[self.next..end].to_vec();
        self.next = end;
        let batch = self.data.batch(self.set, indices, self.epoch);
        let following = (end + self.size).min(self.order.len());
        self.data.prefetch(self.set, &self.order[end..following]);
        Some(batch)
    }

    /// Skips `n` batches without gathering them (a resumed epoch skips those it trained on).
    fn nth(&mut self, n: usize) -> Option<Batch> {
        self.next = n
            .saturating_mul(self.size)
            .saturating_add(self.next)
            .min(self.order.len());
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.order.len() - self.next).div_ceil(self.size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

/// New inputs for `nnlc predict`, as read from a file: the values (samples first, f64, NaN
/// where a cell is missing or not a number) and, for a CSV file, its header and the text and
/// place of every cell that is not a number (category names, for the fields that encode them).
#[derive(Debug, Clone)]
pub struct RawInputs {
    pub values: Tensor,
    table: Option<RawTable>,
}

#[derive(Debug, Clone)]
struct RawTable {
    file: String,
    header: Option<Vec<String>>,
    cells: formats::CellMap,
}

impl RawInputs {
    /// Values read from elsewhere (no table, no category names).
    pub fn from_values(values: Tensor) -> RawInputs {
        RawInputs {
            values,
            table: None,
        }
    }

    /// Whether these are a table with a header row, from which fields select their columns by
    /// name.
    pub fn has_header(&self) -> bool {
        self.table.as_ref().is_some_and(|t| t.header.is_some())
    }

    /// The first cell of the given columns (all when None) that is neither a number nor
    /// missing, as an error: such a cell can only be a category name.
    pub fn first_text(&self, columns: Option<&[usize]>) -> Result<(), DataError> {
        let Some(t) = &self.table else { return Ok(()) };
        let bad = t.cells.texts.iter().find(|((_, c), text)| {
            !formats::is_missing(text) && columns.is_none_or(|cols| cols.contains(c))
        });
        match bad {
            Some((&(row, col), text)) => {
                let (line, column) = t.cells.place(row, col);
                Err(DataError::at(
                    &t.file,
                    line,
                    column,
                    format!("`{}` is not a number", text.trim()),
                ))
            }
            None => Ok(()),
        }
    }
}

/// Reads new inputs for `nnlc predict`, as the data source would give them, samples first: a
/// `.npy` array, or a `.csv` file (optionally gzipped) with one row per sample,
/// comma-separated, with a header row when its first row is not all numbers. Missing cells are
/// NaN, and so are cells that are not numbers (their text is kept for the fields that encode
/// category names; any other field refuses them, [`RawInputs::first_text`]).
pub fn read_inputs(path: &Path) -> Result<RawInputs, DataError> {
    let shown = path.display().to_string();
    let bytes = formats::read_file(path)?;
    let name = shown.trim_end_matches(".gz");
    let (shape, all, table) = if name.ends_with(".npy") {
        let (shape, values) = formats::parse_npy(&shown, &bytes)?;
        let mut all = Vec::new();
        values.extend_into(0..shape.iter().product(), &mut all);
        (shape, all, None)
    } else if name.ends_with(".csv") {
        let text = bytes.strip_prefix(formats::UTF8_BOM).unwrap_or(&bytes);
        let first_line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let header = String::from_utf8_lossy(first_line)
            .split(',')
            .any(|c| !formats::is_missing(c) && c.trim().parse::<f64>().is_err());
        let table = formats::parse_csv(&shown, &bytes, header, b',', 0)?;
        let mut all = Vec::with_capacity(table.rows * table.columns.len());
        for r in 0..table.rows {
            all.extend(table.columns.iter().map(|c| c[r]));
        }
        let raw = RawTable {
            file: shown.clone(),
            header: table.header,
            cells: table.cells,
        };
        (vec![table.rows, table.columns.len()], all, Some(raw))
    } else {
        return Err(DataError::in_file(
            &shown,
            "inputs are read from .npy or .csv files",
        ));
    };
    if shape.is_empty() {
        return Err(DataError::in_file(&shown, "the inputs need a sample axis"));
    }
    Ok(RawInputs {
        values: Tensor::from_f64(&TensorType::new(DType::F64, shape), all),
        table,
    })
}

impl Pipeline {
    /// Whether a field's new inputs must come through [`Pipeline::transform_raw`]: it selects
    /// table columns by name, or encodes category names.
    pub fn reads_raw_table(&self, field: &str) -> bool {
        self.fields.iter().any(|f| {
            f.name == field
                && (f.reads_text()
                    || matches!(&f.column, pipeline::Column::Table { refs, .. }
                        if refs.iter().any(|r| matches!(r, pipeline::TableRef::Name(_)))))
        })
    }

    /// Prepares new inputs for a field from a table as its training data were prepared: the
    /// field's columns are found by header name (or index), its category names encoded with the
    /// fitted vocabularies (a name not seen in training is an error at its cell unless the
    /// field has `unknown: bucket`), then [`Pipeline::transform_inputs`].
    pub fn transform_raw(&self, field: &str, raw: &RawInputs) -> Result<Tensor, DataError> {
        let err = |m: String| DataError::in_file(&self.file, format!("field `{field}`: {m}"));
        let f = self
            .fields
            .iter()
            .find(|f| f.name == field)
            .ok_or_else(|| err("no such field in this data block".into()))?;
        if f.tokens().is_some() {
            return Err(err(
                "it tokenizes text, which `predict` does not read yet: tokenize the text and give the ids".into(),
            ));
        }
        let (Some(t), pipeline::Column::Table { refs, scalar }) = (&raw.table, &f.column) else {
            return match f.encoder() {
                Some(_) => Err(err(
                    "its category names are read from a CSV file: give the inputs as .csv".into(),
                )),
                None => self.transform_inputs(field, &raw.values),
            };
        };
        let &[rows, width] = raw.values.shape() else {
            return Err(err("a table has rows and columns".into()));
        };
        let by_index = refs
            .iter()
            .all(|r| matches!(r, pipeline::TableRef::Index(_)));
        let cols: Vec<usize> = if by_index && width == refs.len() {
            // The file holds the field's columns alone.
            (0..width).collect()
        } else {
            refs.iter()
                .map(|r| match r {
                    pipeline::TableRef::Index(i) if *i < width => Ok(*i),
                    pipeline::TableRef::Index(i) => Err(DataError::in_file(
                        &t.file,
                        format!("field `{field}` reads column {i}, but the inputs have {width} columns"),
                    )),
                    pipeline::TableRef::Name(n) => {
                        let Some(h) = &t.header else {
                            return Err(DataError::in_file(
                                &t.file,
                                format!("field `{field}` reads the column `{n}` by name, but the inputs have no header row"),
                            ));
                        };
                        h.iter().position(|c| c.trim() == n).ok_or_else(|| {
                            DataError::in_file(
                                &t.file,
                                format!("field `{field}` reads the column `{n}`, which the header does not name"),
                            )
                        })
                    }
                })
                .collect::<Result<_, _>>()?
        };
        let values = raw.values.to_f64();
        let mut out = Vec::with_capacity(rows * cols.len());
        match f.encoder() {
            Some(e) => {
                let indices: Vec<_> = f.vocab.iter().map(categories::Vocab::index).collect();
                if f.vocab.len() != cols.len() {
                    return Err(err("its vocabularies are not fitted or restored".into()));
                }
                for r in 0..rows {
                    for (elem, &c) in cols.iter().enumerate() {
                        let key = match t.cells.texts.get(&(r, c)) {
                            Some(text) if formats::is_missing(text) => None,
                            Some(text) => Some(text.trim().to_string()),
                            None => Some(categories::number_name(values[r * width + c])),
                        };
                        let code = f.vocab[elem]
                            .code(e, &indices[elem], key.as_deref())
                            .map_err(|m| {
                                let (line, column) = t.cells.place(r, c);
                                DataError::at(
                                    &t.file,
                                    line,
                                    column,
                                    format!("field `{field}`: {m}"),
                                )
                            })?;
                        out.push(code as f64);
                    }
                }
            }
            None => {
                raw.first_text(Some(&cols))?;
                for r in 0..rows {
                    out.extend(cols.iter().map(|&c| values[r * width + c]));
                }
            }
        }
        let shape = if *scalar {
            vec![rows]
        } else {
            vec![rows, cols.len()]
        };
        self.transform_inputs(
            field,
            &Tensor::from_f64(&TensorType::new(DType::F64, shape), out),
        )
    }
}

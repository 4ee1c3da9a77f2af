//! A `data` block as typed values: sources with their arguments evaluated, fields with their
//! column and transform chain, splits and settings. The checker builds it while it checks the
//! block (`check/data.rs`) and records it in [`crate::check::Facts`]; the pipeline reads it from
//! there and never walks the block's syntax. What only the files can tell (a missing column, a
//! value that is not a number) is the pipeline's to report.

pub use super::augment::{CropSpec, FlipAxes};
pub use super::categories::{Encoder, Missing};
pub use super::generate::{Generator, Task};
pub use super::images::{Layout, MAX_VALUES as MAX_IMAGE_VALUES};
pub use super::pipeline::{Clip, Column, Kind, Strategy, TableRef, Tokens};
pub use super::text::TokenizerSpec;
use crate::ir::DType;

/// Where the samples of one source statement come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    Csv {
        path: String,
        header: bool,
        delimiter: u8,
        skip: usize,
    },
    Idx {
        images: String,
        labels: String,
    },
    Npy(String),
    Npz(String),
    Generate {
        generator: Generator,
        seed: Option<u64>,
    },
    /// `text(path, tokenizer: chars(), context: N, stride: S)`: documents (lines), windowed
    /// after the splits.
    Text {
        path: String,
        tokenizer: TokenizerSpec,
        context: usize,
        stride: usize,
        shuffle: bool,
    },
    /// `images(path, size: [H, W], channels: C, skip_bad: B)`: class folders of PNG and JPEG
    /// files ([`super::images`]).
    Images {
        path: String,
        layout: Layout,
    },
    /// Row by row: the right side's table columns are numbered after the left's.
    Join(Box<SourceSpec>, Box<SourceSpec>),
}

/// A field: its declared per-sample type, where its values come from and its transforms.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub dtype: DType,
    /// The declared per-sample shape.
    pub shape: Vec<usize>,
    pub column: Column,
    /// The transforms, in order (`mask` is a flag of the `tokenize` before it).
    pub steps: Vec<Kind>,
    /// Where the field's name is in the `.nnl` file (a byte offset), for errors at its line.
    pub at: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    pub name: String,
    pub fraction: f64,
    pub parent: String,
    /// `shuffle` (None inside: the block's seed) or `shuffle(seed: N)`; None: not shuffled.
    pub shuffle: Option<Option<u64>>,
}

/// A data block, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The block's name.
    pub name: String,
    pub sources: Vec<(String, SourceSpec)>,
    pub fields: Vec<FieldSpec>,
    pub splits: Vec<SplitSpec>,
    /// `seed N`.
    pub seed: Option<u64>,
    /// `shuffle(seed: N)`; `Some(None)` for a bare `shuffle`.
    pub shuffle: Option<Option<u64>>,
}

impl Spec {
    /// The tokenizer of its `text` source, if it has one.
    pub fn text_tokenizer(&self) -> Option<&TokenizerSpec> {
        self.sources.iter().find_map(|(_, s)| match s {
            SourceSpec::Text { tokenizer, .. } => Some(tokenizer),
            _ => None,
        })
    }
}

//! The vocabulary of `data` blocks, declared once: sources, the tokenizers of text, the column
//! selectors of tables and the transforms of fields, each with its parameters. The checker reads
//! it to report unknown names, bind arguments and read each call into its typed value
//! (`check/data.rs`, `data::spec`), which the data pipeline runs without looking at the syntax.

use super::PrimParam;

const fn req(name: &'static str) -> PrimParam {
    PrimParam::req(name)
}

const fn opt(name: &'static str) -> PrimParam {
    PrimParam::opt(name)
}

/// One closed list: a fieldless enum, its names and its parameter lists, in the order listed
/// (which is the order messages name them in).
macro_rules! catalogue {
    ($(#[$doc:meta])* $E:ident { $($(#[$vdoc:meta])* $V:ident = $name:literal [$($param:expr),* $(,)?]),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $E {
            $($(#[$vdoc])* $V),*
        }

        impl $E {
            pub const ALL: &'static [$E] = &[$($E::$V),*];

            pub fn name(self) -> &'static str {
                match self {
                    $($E::$V => $name),*
                }
            }

            pub fn params(self) -> &'static [PrimParam] {
                match self {
                    $($E::$V => {
                        const PARAMS: &[PrimParam] = &[$($param),*];
                        PARAMS
                    }),*
                }
            }

            pub fn from_name(name: &str) -> Option<$E> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }

            /// Every name, in order.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.name()).collect()
            }
        }
    };
}

catalogue! {
    /// Where a data block's samples come from.
    Source {
        Idx = "idx" [req("images"), req("labels")],
        Csv = "csv" [req("path"), opt("header"), opt("delimiter"), opt("skip")],
        Text = "text" [req("path"), req("tokenizer"), req("context"), opt("stride"), opt("shuffle")],
        Images = "images" [req("path"), req("size"), opt("channels"), opt("skip_bad")],
        Npy = "npy" [req("path")],
        Npz = "npz" [req("path")],
        Xor = "xor" [req("n"), opt("noise"), opt("seed")],
        Spirals = "spirals" [req("n"), opt("classes"), opt("noise"), opt("seed")],
        Blobs = "blobs" [req("n"), opt("centers"), opt("features"), opt("std"), opt("seed")],
        Sine = "sine" [req("n"), req("length"), opt("seed")],
        CopyTask = "copy_task" [req("n"), req("length"), req("vocab"), opt("seed")],
        ReverseTask = "reverse_task" [req("n"), req("length"), req("vocab"), opt("seed")],
        SortTask = "sort_task" [req("n"), req("length"), req("vocab"), opt("seed")],
    }
}

impl Source {
    /// The columns it gives by name; none for tables, whose columns selectors choose.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Source::Idx | Source::Images => &["image", "label"],
            Source::Csv | Source::Npz => &[],
            Source::Npy => &["x"],
            Source::Text
            | Source::Xor
            | Source::Spirals
            | Source::Blobs
            | Source::Sine
            | Source::CopyTask
            | Source::ReverseTask
            | Source::SortTask => &["x", "y"],
        }
    }
}

catalogue! {
    /// The tokenizer of a `text` source or a `tokenize` transform.
    Tokenizer {
        Chars = "chars" [opt("vocab")],
        Bpe = "bpe" [opt("vocab"), opt("file")],
    }
}

catalogue! {
    /// The column selectors of table-like sources.
    Selector {
        Col = "col" [req("index")],
        Cols = "cols" [req("columns")],
        Array = "array" [req("name")],
    }
}

catalogue! {
    /// The transforms applied to a field with `|>`.
    Transform {
        Flatten = "flatten" [],
        Scale = "scale" [req("factor")],
        MinMax = "minmax" [],
        Standardize = "standardize" [],
        /// Without `classes`, or with `unknown` or `missing`, `one_hot` and `label` encode
        /// category names with a vocabulary fitted on the training split.
        OneHot = "one_hot" [opt("classes"), opt("unknown"), opt("missing")],
        Label = "label" [opt("classes"), opt("unknown"), opt("missing")],
        Reshape = "reshape" [req("shape")],
        Impute = "impute" [opt("strategy"), opt("constant")],
        ClipOutliers = "clip_outliers" [opt("z"), opt("iqr")],
        Tokenize = "tokenize" [req("tokenizer"), req("length")],
        Mask = "mask" [],
        RandomShift = "random_shift" [req("pixels")],
        RandomFlip = "random_flip" [opt("axis")],
        RandomRotation = "random_rotation" [req("degrees")],
        RandomResizedCrop = "random_resized_crop" [opt("scale"), opt("ratio")],
        ColorJitter = "color_jitter" [opt("brightness"), opt("contrast")],
        GaussianNoise = "gaussian_noise" [req("std")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_within_each_list() {
        for names in [
            Source::names(),
            Tokenizer::names(),
            Selector::names(),
            Transform::names(),
        ] {
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{names:?}");
        }
    }
}

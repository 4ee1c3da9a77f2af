//! Category names: `label` and the `one_hot` of names. The vocabulary of each column is fitted on
//! the training split (the names sorted; numerically when every name is a number), saved in the
//! checkpoint as text ([`super::Pipeline::fitted_text`]), and each source's names are encoded
//! once, when it is loaded, into class indices that the field's steps then treat as numbers.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a categorical encoder does with a missing cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// An error naming the cell.
    Error,
    /// A category of its own, after the names.
    Category,
    /// The name most frequent in training.
    MostFrequent,
}

/// `label(classes:, unknown:, missing:)` or `one_hot(classes:, unknown:, missing:)` of names.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    pub one_hot: bool,
    /// The number of names per column, when the declaration states it.
    pub classes: Option<usize>,
    /// A name not seen in training gets a class of its own, the last one; otherwise it is an
    /// error naming the cell.
    pub unknown_bucket: bool,
    pub missing: Missing,
    /// For `one_hot`: the values per sample, every column's block together (the declared size).
    pub width: usize,
}

/// The class name of the missing-value category.
pub const MISSING_NAME: &str = "(missing)";
/// The class name of the bucket for names not seen in training.
pub const UNKNOWN_NAME: &str = "(unknown)";

/// The categories of one column, fitted on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Vocab {
    /// The names seen in training, in class order.
    pub names: Vec<String>,
    /// The index of the name most frequent in training (the first in class order among ties).
    pub most_frequent: usize,
}

/// The name of a numeric cell or array value: whole numbers without a fraction (`2007`), others
/// as Rust prints them (the shortest text that reads back the same).
pub(super) fn number_name(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Vocab {
    /// The vocabulary of the names of the training samples (None: missing). Fails when no
    /// training sample has a name.
    pub fn fit(keys: impl Iterator<Item = Option<String>>) -> Result<Vocab, String> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for k in keys.flatten() {
            *counts.entry(k).or_default() += 1;
        }
        if counts.is_empty() {
            return Err("no training sample has a category here: every cell is missing".into());
        }
        let mut names: Vec<String> = counts.keys().cloned().collect();
        let numbers: Option<Vec<f64>> = names.iter().map(|n| n.parse::<f64>().ok()).collect();
        match numbers {
            Some(_) => names.sort_by(|a, b| {
                let (x, y) = (
                    a.parse::<f64>().unwrap_or(0.0),
                    b.parse::<f64>().unwrap_or(0.0),
                );
                x.total_cmp(&y).then_with(|| a.cmp(b))
            }),
            None => names.sort(),
        }
        let mut most_frequent = 0;
        for (i, n) in names.iter().enumerate() {
            if counts[n] > counts[&names[most_frequent]] {
                most_frequent = i;
            }
        }
        Ok(Vocab {
            names,
            most_frequent,
        })
    }

    /// The classes of this column: the names, then the missing category and the unknown bucket
    /// when the encoder has them.
    pub fn width(&self, e: &Encoder) -> usize {
        self.names.len()
            + usize::from(e.missing == Missing::Category)
            + usize::from(e.unknown_bucket)
    }

    /// Every class's name, in class order.
    pub fn class_names(&self, e: &Encoder) -> Vec<String> {
        let mut out = self.names.clone();
        if e.missing == Missing::Category {
            out.push(MISSING_NAME.into());
        }
        if e.unknown_bucket {
            out.push(UNKNOWN_NAME.into());
        }
        out
    }

    /// A lookup from name to class.
    pub fn index(&self) -> HashMap<&str, usize> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect()
    }

    /// The class of a cell (None: missing), or why it has none.
    pub fn code(
        &self,
        e: &Encoder,
        index: &HashMap<&str, usize>,
        key: Option<&str>,
    ) -> Result<usize, String> {
        match key {
            None => match e.missing {
                Missing::Error => Err(
                    "a missing category: declare what it means, `missing: category` (a class of its own) or `missing: most_frequent`"
                        .into(),
                ),
                Missing::Category => Ok(self.names.len()),
                Missing::MostFrequent => Ok(self.most_frequent),
            },
            Some(k) => match index.get(k) {
                Some(&i) => Ok(i),
                None if e.unknown_bucket => {
                    Ok(self.names.len() + usize::from(e.missing == Missing::Category))
                }
                None => Err(format!(
                    "`{k}` is not one of the categories seen in training ({}): declare `unknown: bucket` to give unseen names a class of their own",
                    self.listed()
                )),
            },
        }
    }

    /// The names, shortened for a message.
    pub fn listed(&self) -> String {
        const SHOWN: usize = 8;
        let mut s = self.names[..self.names.len().min(SHOWN)].join(", ");
        if self.names.len() > SHOWN {
            s += &format!(", … {} in all", self.names.len());
        }
        s
    }
}

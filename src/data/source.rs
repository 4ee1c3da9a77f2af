//! A loaded source: numbered table columns (CSV, joined) and named arrays (IDX, npy, npz,
//! generators), where each came from, and how each field reads one sample of it.

use super::DataError;
use super::categories::number_name;
use super::formats::{self, CellMap};
use super::images::Progress;
use super::pipeline::{Column, Field, Kind, TableRef};
use super::random::{Rng, fnv1a};
use super::spec::SourceSpec;
use super::text::TokenizerSpec;
use crate::interp::Tensor;
use std::path::Path;

/// An array's values in row-major order, in the type the file stores them.
#[derive(Debug, Clone)]
pub(super) enum Values {
    U8(Vec<u8>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    pub(super) fn extend_into(&self, range: std::ops::Range<usize>, out: &mut Vec<f64>) {
        match self {
            Values::U8(v) => out.extend(v[range].iter().map(|&x| f64::from(x))),
            Values::I32(v) => out.extend(v[range].iter().map(|&x| f64::from(x))),
            Values::F32(v) => out.extend(v[range].iter().map(|&x| f64::from(x))),
            Values::F64(v) => out.extend_from_slice(&v[range]),
        }
    }
}

/// A named column: `rows` samples of `shape` each.
#[derive(Debug, Clone)]
pub(super) struct NamedArray {
    pub name: String,
    pub rows: usize,
    pub shape: Vec<usize>,
    pub values: Values,
    /// Index into [`Source::origins`].
    pub origin: usize,
}

/// A numbered column of a table: one number per row (NaN where the cell is not a number).
#[derive(Debug, Clone)]
pub(super) struct TableColumn {
    pub values: Vec<f64>,
    pub header: Option<String>,
    pub origin: usize,
    /// The column's index in its own file.
    pub index: usize,
}

/// A file (or, for a generator, the `.nnl` file) that samples came from.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub path: String,
    /// For CSV files, where each cell was.
    pub cells: Option<CellMap>,
}

/// How a field reads one sample from a source.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Input {
    /// Table columns: one value per sample (`scalar`) or a vector.
    Cols {
        cols: Vec<usize>,
        scalar: bool,
    },
    Array(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Source {
    pub name: String,
    pub origins: Vec<Origin>,
    pub columns: Vec<TableColumn>,
    pub arrays: Vec<NamedArray>,
    /// Samples; set by [`Source::resolve`].
    pub rows: usize,
    /// Per field: how it reads a sample, and the per-sample shape before each of its steps.
    pub inputs: Vec<(Input, Vec<Vec<usize>>)>,
    /// Per field that encodes category names: every sample's classes, once encoded
    /// ([`super::encode_categories`]); read instead of the raw values.
    pub codes: Vec<Option<Vec<f64>>>,
    /// A `text` source before the splits: its documents are its samples, and its fields are
    /// read from the windows made afterwards ([`super::text`]).
    pub text: Option<TextSource>,
    /// An `images` source: its classes, each sample's file and the files left out.
    pub images: Option<ImageSamples>,
}

/// What an `images` source keeps besides its columns `image` and `label`.
#[derive(Debug, Clone)]
pub(super) struct ImageSamples {
    /// The class folders' names, in class order.
    pub classes: Vec<String>,
    /// Each sample's file, for messages.
    pub files: Vec<String>,
    /// The files that did not decode, with why (`skip_bad: true`).
    pub skipped: Vec<(String, String)>,
}

/// The documents of a `text` file and how to cut them into windows.
#[derive(Debug, Clone)]
pub(super) struct TextSource {
    pub documents: Vec<String>,
    pub tokenizer: TokenizerSpec,
    pub context: usize,
    pub stride: usize,
    /// Each split's documents are streamed in a random order instead of file order.
    pub shuffle: bool,
}

/// Reads the source of statement `name = spec`. Paths are relative to `base`; `nnl` names the
/// `.nnl` file (the origin of generated samples); `seed` is the block's seed, from which a
/// generator without `seed:` gets `Rng::new(seed, [5, fnv1a(name)])`'s first draw.
pub(super) fn open(
    name: &str,
    spec: &SourceSpec,
    base: &Path,
    nnl: &str,
    seed: u64,
    progress: Progress<'_>,
) -> Result<Source, DataError> {
    let mut s = Source {
        name: name.to_string(),
        origins: Vec::new(),
        columns: Vec::new(),
        arrays: Vec::new(),
        rows: 0,
        inputs: Vec::new(),
        codes: Vec::new(),
        text: None,
        images: None,
    };
    s.add(spec, base, nnl, seed, progress)?;
    Ok(s)
}

impl Source {
    fn origin(&mut self, path: String, cells: Option<CellMap>) -> usize {
        self.origins.push(Origin { path, cells });
        self.origins.len() - 1
    }

    fn add_array(&mut self, a: NamedArray) -> Result<(), DataError> {
        if self.arrays.iter().any(|b| b.name == a.name) {
            return Err(DataError::in_file(
                &self.origins[a.origin].path,
                format!(
                    "source `{}` has two columns named `{}`: only tables can be joined to other sources",
                    self.name, a.name
                ),
            ));
        }
        self.arrays.push(a);
        Ok(())
    }

    fn add(
        &mut self,
        spec: &SourceSpec,
        base: &Path,
        nnl: &str,
        seed: u64,
        progress: Progress<'_>,
    ) -> Result<(), DataError> {
        match spec {
            SourceSpec::Csv {
                path,
                header,
                delimiter,
                skip,
            } => {
                let p = base.join(path);
                let shown = p.display().to_string();
                let table = formats::parse_csv(
                    &shown,
                    &formats::read_file(&p)?,
                    *header,
                    *delimiter,
                    *skip,
                )?;
                if let Some(first) = self.columns.first()
                    && first.values.len() != table.rows
                {
                    return Err(DataError::in_file(
                        &shown,
                        format!(
                            "{} rows, but `{}` has {}: joined tables need the same number of rows",
                            table.rows,
                            self.origins[first.origin].path,
                            first.values.len()
                        ),
                    ));
                }
                let origin = self.origin(shown, Some(table.cells));
                for (index, values) in table.columns.into_iter().enumerate() {
                    self.columns.push(TableColumn {
                        values,
                        header: table.header.as_ref().map(|h| h[index].clone()),
                        origin,
                        index,
                    });
                }
            }
            SourceSpec::Idx { images, labels } => {
                let (ip, lp) = (base.join(images), base.join(labels));
                let (is, ls) = (ip.display().to_string(), lp.display().to_string());
                let (idims, ivalues) = formats::parse_idx(&is, &formats::read_file(&ip)?)?;
                let (ldims, lvalues) = formats::parse_idx(&ls, &formats::read_file(&lp)?)?;
                if idims[0] != ldims[0] {
                    return Err(DataError::in_file(
                        &ls,
                        format!("{} labels, but `{is}` has {} images", ldims[0], idims[0]),
                    ));
                }
                let (io, lo) = (self.origin(is, None), self.origin(ls, None));
                self.add_array(NamedArray {
                    name: "image".into(),
                    rows: idims[0],
                    shape: idims[1..].to_vec(),
                    values: ivalues,
                    origin: io,
                })?;
                self.add_array(NamedArray {
                    name: "label".into(),
                    rows: ldims[0],
                    shape: ldims[1..].to_vec(),
                    values: lvalues,
                    origin: lo,
                })?;
            }
            SourceSpec::Npy(path) => {
                let p = base.join(path);
                let shown = p.display().to_string();
                let (shape, values) = formats::parse_npy(&shown, &formats::read_file(&p)?)?;
                let Some((&rows, per)) = shape.split_first() else {
                    return Err(DataError::in_file(
                        &shown,
                        "a 0-dimensional array has no samples: the first axis counts them",
                    ));
                };
                let origin = self.origin(shown, None);
                self.add_array(NamedArray {
                    name: "x".into(),
                    rows,
                    shape: per.to_vec(),
                    values,
                    origin,
                })?;
            }
            SourceSpec::Npz(path) => {
                let p = base.join(path);
                let shown = p.display().to_string();
                let arrays =
                    crate::store::read_npz(&p).map_err(|e| DataError::in_file(&shown, e))?;
                let origin = self.origin(shown, None);
                for (name, t) in arrays {
                    let (rows, shape) = match t.shape().split_first() {
                        Some((&r, per)) => (r, per.to_vec()),
                        None => (1, Vec::new()),
                    };
                    let values = match t {
                        Tensor::F32(a) => Values::F32(a.iter().copied().collect()),
                        Tensor::F64(a) => Values::F64(a.iter().copied().collect()),
                        Tensor::I32(a) => Values::I32(a.iter().copied().collect()),
                        Tensor::Bool(a) => Values::U8(a.iter().map(|&b| u8::from(b)).collect()),
                    };
                    self.add_array(NamedArray {
                        name,
                        rows,
                        shape,
                        values,
                        origin,
                    })?;
                }
            }
            SourceSpec::Generate {
                generator,
                seed: own,
            } => {
                let seed =
                    own.unwrap_or_else(|| Rng::new(seed, &[5, fnv1a(&self.name)]).next_u64());
                let origin = self.origin(nnl.to_string(), None);
                let arrays = generator
                    .generate(seed, origin)
                    .map_err(|e| DataError::in_file(nnl, format!("source `{}`: {e}", self.name)))?;
                for a in arrays {
                    self.add_array(a)?;
                }
            }
            SourceSpec::Text {
                path,
                tokenizer,
                context,
                stride,
                shuffle,
            } => {
                let p = base.join(path);
                let shown = p.display().to_string();
                let documents = super::text::documents(&shown, &formats::read_file(&p)?)?;
                if documents.is_empty() {
                    return Err(DataError::in_file(
                        &shown,
                        "the text holds no non-blank line",
                    ));
                }
                self.origin(shown, None);
                self.rows = documents.len();
                let mut tokenizer = tokenizer.clone();
                if let TokenizerSpec::File { path, json, .. } = &mut tokenizer {
                    let p = base.join(&*path);
                    let bytes = formats::read_file(&p)?;
                    *json = Some(String::from_utf8(bytes).map_err(|_| {
                        DataError::in_file(&p.display().to_string(), "not UTF-8 text")
                    })?);
                }
                self.text = Some(TextSource {
                    documents,
                    tokenizer,
                    context: *context,
                    stride: *stride,
                    shuffle: *shuffle,
                });
            }
            SourceSpec::Images { path, layout } => {
                let p = base.join(path);
                let shown = p.display().to_string();
                let folder = super::images::read(&p, &shown, *layout, progress)?;
                let origin = self.origin(shown, None);
                let rows = folder.labels.len();
                self.add_array(NamedArray {
                    name: "image".into(),
                    rows,
                    shape: vec![layout.channels, layout.height, layout.width],
                    values: Values::U8(folder.pixels),
                    origin,
                })?;
                self.add_array(NamedArray {
                    name: "label".into(),
                    rows,
                    shape: Vec::new(),
                    values: Values::I32(folder.labels),
                    origin,
                })?;
                self.images = Some(ImageSamples {
                    classes: folder.classes,
                    files: folder.files,
                    skipped: folder.skipped,
                });
            }
            SourceSpec::Join(left, right) => {
                self.add(left, base, nnl, seed, progress)?;
                self.add(right, base, nnl, seed, progress)?;
            }
        }
        Ok(())
    }

    /// The windows of some of this text source's documents (`rows`, in order) as a source of
    /// two named columns, `x` (`[context]` ids) and `y` (the ids that follow each).
    pub fn windowed(
        &self,
        tokenizer: &super::text::Tokenizer,
        rows: &[usize],
    ) -> Result<Source, String> {
        let text = self.text.as_ref().expect("a text source");
        let docs: Vec<&str> = rows.iter().map(|&r| text.documents[r].as_str()).collect();
        let (x, y, n) = super::text::windows(tokenizer, &docs, text.context, text.stride)?;
        let column = |name: &str, values: Vec<i32>| NamedArray {
            name: name.into(),
            rows: n,
            shape: vec![text.context],
            values: Values::I32(values),
            origin: 0,
        };
        Ok(Source {
            name: self.name.clone(),
            origins: self.origins.clone(),
            columns: Vec::new(),
            arrays: vec![column("x", x), column("y", y)],
            rows: 0,
            inputs: Vec::new(),
            codes: Vec::new(),
            text: None,
            images: None,
        })
    }

    /// The file a field's input comes from (its first column's, for several).
    pub fn file_of(&self, input: &Input) -> &str {
        let origin = match input {
            Input::Cols { cols, .. } => self.columns[cols[0]].origin,
            Input::Array(a) => self.arrays[*a].origin,
        };
        &self.origins[origin].path
    }

    fn main_file(&self) -> &str {
        self.origins.first().map_or("", |o| o.path.as_str())
    }

    fn input(&self, column: &Column) -> Result<Input, String> {
        match column {
            Column::Named(name) => self
                .arrays
                .iter()
                .position(|a| a.name == *name)
                .map(Input::Array)
                .ok_or_else(|| {
                    let names: Vec<&str> = self.arrays.iter().map(|a| a.name.as_str()).collect();
                    if names.is_empty() {
                        format!("`{name}` is not a column: this source is a table, select with `col` or `cols`")
                    } else {
                        format!("`{name}` is not a column of this source (it has {})", names.join(", "))
                    }
                }),
            Column::Table { refs, scalar } => {
                if self.columns.is_empty() {
                    return Err("`col` and `cols` select columns of a table, but this source has none".into());
                }
                let cols = refs
                    .iter()
                    .map(|r| match r {
                        TableRef::Index(i) if *i < self.columns.len() => Ok(*i),
                        TableRef::Index(i) => Err(format!(
                            "there is no column {i}: the table has {} columns, numbered from 0",
                            self.columns.len()
                        )),
                        TableRef::Name(n) => {
                            let found: Vec<usize> = (0..self.columns.len())
                                .filter(|&c| self.columns[c].header.as_deref() == Some(n))
                                .collect();
                            match found[..] {
                                [c] => Ok(c),
                                [] if self.columns.iter().all(|c| c.header.is_none()) => Err(format!(
                                    "cannot select `{n}` by name: the table has no header (`header: true`)"
                                )),
                                [] => Err(format!("no column is named `{n}` in the header")),
                                _ => Err(format!("several columns are named `{n}`")),
                            }
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Ok(Input::Cols {
                    cols,
                    scalar: *scalar,
                })
            }
        }
    }

    fn input_rows(&self, input: &Input) -> usize {
        match input {
            Input::Cols { cols, .. } => self.columns[cols[0]].values.len(),
            Input::Array(a) => self.arrays[*a].rows,
        }
    }

    fn input_shape(&self, input: &Input) -> Vec<usize> {
        match input {
            Input::Cols { scalar: true, .. } => Vec::new(),
            Input::Cols { cols, .. } => vec![cols.len()],
            Input::Array(a) => self.arrays[*a].shape.clone(),
        }
    }

    /// Finds every field's input, checks that all fields have the same number of samples and
    /// that each field's transforms give its declared shape.
    pub fn resolve(&mut self, fields: &[Field]) -> Result<(), DataError> {
        let mut first: Option<(&str, usize, String)> = None;
        let mut inputs = Vec::new();
        for f in fields {
            let input = self.input(&f.column).map_err(|m| {
                DataError::in_file(self.main_file(), format!("field `{}`: {m}", f.name))
            })?;
            let file = self.file_of(&input).to_string();
            let rows = self.input_rows(&input);
            if let Some((other, n, other_file)) = &first
                && *n != rows
            {
                return Err(DataError::in_file(
                    &file,
                    format!(
                        "field `{}` has {rows} samples here, but field `{other}` has {n} in `{other_file}`",
                        f.name
                    ),
                ));
            }
            first.get_or_insert((&f.name, rows, file.clone()));
            let shapes = f
                .shapes(&self.input_shape(&input))
                .map_err(|m| DataError::in_file(&file, format!("field `{}`: {m}", f.name)))?;
            inputs.push((input, shapes));
        }
        self.rows = first.map_or(0, |(_, n, _)| n);
        self.codes = vec![None; inputs.len()];
        self.inputs = inputs;
        Ok(())
    }

    /// One raw sample of field `field`: its values in row-major order.
    pub fn read(&self, field: usize, row: usize, out: &mut Vec<f64>) {
        out.clear();
        if let Some(codes) = &self.codes[field] {
            let len = codes.len() / self.rows.max(1);
            out.extend_from_slice(&codes[row * len..(row + 1) * len]);
            return;
        }
        match &self.inputs[field].0 {
            Input::Cols { cols, .. } => {
                out.extend(cols.iter().map(|&c| self.columns[c].values[row]))
            }
            Input::Array(a) => {
                let a = &self.arrays[*a];
                let len: usize = a.shape.iter().product();
                a.values.extend_into(row * len..(row + 1) * len, out);
            }
        }
    }

    /// The category name of value `elem` of sample `row` of field `field`: a CSV cell's text
    /// (trimmed), a number's [`number_name`]; None when it is missing.
    pub fn category(&self, field: usize, row: usize, elem: usize) -> Option<String> {
        match &self.inputs[field].0 {
            Input::Cols { cols, .. } => {
                let col = &self.columns[cols[elem]];
                let text = self.origins[col.origin]
                    .cells
                    .as_ref()
                    .and_then(|c| c.texts.get(&(row, col.index)));
                match text {
                    Some(t) if formats::is_missing(t) => None,
                    Some(t) => Some(t.trim().to_string()),
                    None => {
                        let v = col.values[row];
                        (!v.is_nan()).then(|| number_name(v))
                    }
                }
            }
            Input::Array(a) => {
                let a = &self.arrays[*a];
                let len: usize = a.shape.iter().product();
                let mut v = Vec::with_capacity(1);
                a.values
                    .extend_into(row * len + elem..row * len + elem + 1, &mut v);
                (!v[0].is_nan()).then(|| number_name(v[0]))
            }
        }
    }

    /// An error about value `elem` of sample `row` of field `field`: at its cell for a CSV
    /// file; otherwise naming the sample (counted from 0) and, for samples of several values,
    /// the value.
    pub fn error_at(&self, field: usize, row: usize, elem: usize, message: &str) -> DataError {
        let (input, shapes) = &self.inputs[field];
        let file = self.file_of(input);
        if let Input::Cols { cols, .. } = input {
            // Past the raw values (after a `one_hot`), only the row is known.
            let (col, exact) = match cols.get(elem) {
                Some(&c) => (&self.columns[c], true),
                None => (&self.columns[cols[0]], false),
            };
            let origin = &self.origins[col.origin];
            if let Some(cells) = &origin.cells {
                let (line, column) = cells.place(row, col.index);
                return DataError {
                    file: origin.path.clone(),
                    line: Some(line),
                    column: exact.then_some(column),
                    message: message.to_string(),
                };
            }
        }
        if let Some(images) = &self.images {
            // The sample's own file, and the value's place in it.
            let value = if shapes[0].iter().product::<usize>() > 1 {
                format!("value {elem}: ")
            } else {
                String::new()
            };
            DataError::in_file(&images.files[row], format!("{value}{message}"))
        } else if shapes[0].iter().product::<usize>() > 1 {
            DataError::in_file(file, format!("sample {row}, value {elem}: {message}"))
        } else {
            DataError::in_file(file, format!("sample {row}: {message}"))
        }
    }

    /// The first cell (in file order) that a field reads and that is neither a number nor
    /// missing, as an error.
    pub fn first_bad_cell(&self, fields: &[Field]) -> Result<(), DataError> {
        for (o, origin) in self.origins.iter().enumerate() {
            let Some(cells) = &origin.cells else { continue };
            for (&(row, c), text) in &cells.texts {
                if formats::is_missing(text) {
                    continue;
                }
                let user = self.inputs.iter().zip(fields).find(|((input, _), f)| {
                    f.encoder().is_none() && matches!(input, Input::Cols { cols, .. }
                        if cols.iter().any(|&k| self.columns[k].origin == o && self.columns[k].index == c))
                });
                if let Some((_, f)) = user {
                    let (line, column) = cells.place(row, c);
                    let help = if f.steps.iter().any(|s| matches!(s.kind, Kind::OneHot(_))) {
                        ": to encode category names, write `one_hot` without `classes` (its categories are fitted on the training split)"
                    } else {
                        ""
                    };
                    return Err(DataError::at(
                        &origin.path,
                        line,
                        column,
                        format!(
                            "`{}` is not a number (field `{}`){help}",
                            text.trim(),
                            f.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

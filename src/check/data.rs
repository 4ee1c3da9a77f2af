//! The `data` block: known sources and their arguments, column selections, transforms, declared
//! feature types, and splits whose fractions leave something to train on. While it checks the
//! block, the checker reads it into the typed spec the data pipeline runs (`data::spec::Spec`,
//! recorded in `Facts`): each call's arguments are bound once, here, and `read` turns them into
//! values. The shapes, classes and vocabularies checked below are read from that spec.

mod read;

use super::ty::{Shape, ShapeElem, Ty};
use super::{ArgVal, Checker, Frame, Slot};
use crate::data::spec::{
    Column, FieldSpec, Generator, Kind, Missing, SourceSpec, Spec, SplitSpec, TokenizerSpec,
};
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::ir::DType;
use crate::prim::PrimParam;
use crate::prim::data::{Selector, Source, Tokenizer, Transform};
use crate::source::Span;
use crate::syntax::ast::*;
use read::{Bound, Wrong};

/// The values the categorical options take, as bare names.
const CATEGORICAL_OPTIONS: &[(&str, &[&str])] = &[
    ("unknown", &["error", "bucket"]),
    ("missing", &["error", "category", "most_frequent"]),
];

/// The axes `random_flip` takes, as bare names.
const FLIP_AXES: &[&str] = &["horizontal", "vertical", "both"];

const SETTINGS: &[&str] = &["shuffle", "seed"];

/// The parameters of the `shuffle` setting and split option.
const SHUFFLE: &[PrimParam] = &[PrimParam::opt("seed")];

/// The parameter of `knn` in `impute(knn(k: N))`.
const KNN: &[PrimParam] = &[PrimParam::opt("k")];

/// What the training block needs to know about a data set.
#[derive(Default)]
pub(crate) struct DataInfo {
    /// Fields with their per-sample types and declaration spans.
    pub fields: Vec<(String, Ty, Span)>,
    pub splits: Vec<String>,
    pub sources: Vec<String>,
    /// Integer fields whose values the sources fix: a generator's labels (`spirals(classes:
    /// 5)` makes 0 to 4), with the number of classes and the source that says so.
    pub classes: Vec<(String, i64, String)>,
    /// Fields encoded by a `label` without `classes:`, with the `label`'s span.
    pub unstated_classes: Vec<(String, Span)>,
}

/// What a data block's sources give its fields.
#[derive(Clone, Copy)]
struct Given<'a> {
    /// The named columns, None when a source failed (its columns are unknown, not missing).
    columns: Option<&'a [&'a str]>,
    /// Whether columns are chosen by selectors (`col`, `cols`).
    table_like: bool,
    /// The per-sample shape of the `image` column of `images` sources, when known.
    image_shape: Option<&'a (Vec<i64>, Span)>,
}

/// One source statement as checked.
struct SourceRead {
    /// The columns it gives by name.
    columns: Vec<&'static str>,
    /// Whether columns are chosen by selectors.
    table_like: bool,
    /// The catalogue's source, for a call to one.
    source: Option<Source>,
    /// Its value, when it checked clean.
    spec: Option<SourceSpec>,
    /// The span of its arguments, and of a `text` source's tokenizer.
    args: Span,
    tokenizer: Option<Span>,
}

/// One field as checked: its column and the transforms read so far.
#[derive(Default)]
struct FieldRead {
    column: Option<Column>,
    steps: Vec<Kind>,
    /// The declared number of values per sample (what a `one_hot` of names gives).
    width: usize,
    /// The diagnostics before the field's: after an error in it, its steps are not read.
    start: usize,
    /// The span of the `label` transform, when the field has one.
    label: Option<Span>,
    /// The span of the tokenizer of a leading `tokenize`.
    tokenizer: Option<Span>,
}

fn slots(params: &[PrimParam]) -> Vec<Slot<'static>> {
    params
        .iter()
        .map(|p| Slot {
            name: p.name,
            optional: p.optional,
        })
        .collect()
}

fn ir_dtype(d: Dtype) -> DType {
    match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::I32 => DType::I32,
        Dtype::Bool => DType::Bool,
    }
}

/// How many classes a generator's `y` holds (0 to n - 1); None for regression targets.
fn generator_classes(s: &SourceSpec) -> Option<i64> {
    let SourceSpec::Generate { generator, .. } = s else {
        return None;
    };
    let n = match generator {
        Generator::Xor { .. } => 2,
        Generator::Spirals { classes, .. } => *classes,
        Generator::Blobs { centers, .. } => *centers,
        Generator::Tokens { vocab, .. } => *vocab,
        Generator::Sine { .. } => return None,
    };
    i64::try_from(n).ok()
}

fn declared_vocab(t: &TokenizerSpec) -> Option<i64> {
    t.declared_vocab().and_then(|v| i64::try_from(v).ok())
}

impl Checker<'_> {
    /// Whether an error was reported since the diagnostics numbered `mark`.
    fn failed_since(&self, mark: usize) -> bool {
        self.diags[mark..].iter().any(Diagnostic::is_error)
    }

    /// Reports a value the block's reading refused.
    fn wrong(&mut self, code: &'static str, w: Wrong) {
        let label = match code {
            codes::SETTING_VALUE => "not accepted here",
            codes::DATA_MODEL_MISMATCH => "does not fit the declaration",
            _ => "not allowed here",
        };
        self.emit(Diagnostic::error(code, w.message).with_primary(w.span, label));
    }

    pub(super) fn check_data(&mut self, module: usize, d: &DataDecl) -> DataInfo {
        let start = self.diags.len();
        let mut info = DataInfo::default();
        let mut spec = Spec {
            name: d.name.name.to_string(),
            sources: Vec::new(),
            fields: Vec::new(),
            splits: Vec::new(),
            seed: None,
            shuffle: None,
        };
        let mut f = Frame::new(module, None);
        let mut columns: Vec<&str> = Vec::new();
        let mut table_like = false;
        let mut sources_known = true;
        // Each source as read, with how it was written.
        let mut read: Vec<(Option<SourceRead>, Span)> = Vec::new();
        for s in &d.stmts {
            if let DataStmt::Source { name, value, .. } = s {
                if info.sources.iter().any(|n| n == name.name.as_str()) {
                    self.emit(
                        Diagnostic::error(
                            codes::DUPLICATE_DEFINITION,
                            format!("the source `{}` is defined twice", name.name),
                        )
                        .with_primary(name.span, "defined again here")
                        .with_help("give each source its own name"),
                    );
                }
                let r = self.data_source(&mut f, value);
                match &r {
                    Some(r) => {
                        columns.extend(&r.columns);
                        table_like |= r.table_like;
                        if let Some(s) = &r.spec {
                            spec.sources.push((name.name.to_string(), s.clone()));
                        }
                    }
                    None => sources_known = false,
                }
                read.push((r, value.span));
                info.sources.push(name.name.to_string());
            }
        }
        // A source that failed was reported; its columns are unknown, not missing.
        let columns = sources_known.then_some(columns.as_slice());
        // The images' shape, when every `images` source reads the same one.
        let images: Vec<Option<(Vec<i64>, Span)>> = read
            .iter()
            .filter_map(|(r, _)| r.as_ref())
            .filter(|r| r.source == Some(Source::Images))
            .map(|r| match &r.spec {
                Some(SourceSpec::Images { layout, .. }) => Some((
                    vec![
                        layout.channels as i64,
                        layout.height as i64,
                        layout.width as i64,
                    ],
                    r.args,
                )),
                _ => None,
            })
            .collect();
        let image_shape = match images.split_first() {
            Some((Some(first), rest))
                if rest
                    .iter()
                    .all(|r| r.as_ref().is_some_and(|r| r.0 == first.0)) =>
            {
                Some(first.clone())
            }
            _ => None,
        };
        // The generators' labels, when every source is a generator that says how many.
        let labels = read
            .iter()
            .try_fold(None::<(i64, String)>, |most, (r, written)| {
                let k = generator_classes(r.as_ref()?.spec.as_ref()?)?;
                Some(Some(match most {
                    Some(m) if m.0 >= k => m,
                    _ => (k, self.sources.text(*written).to_string()),
                }))
            })
            .flatten();
        // The ids of a `text` source whose tokenizer declares its vocabulary (`x` and `y`
        // hold 0 to vocab - 1).
        let text_ids: Option<(i64, String)> = read.iter().find_map(|(r, _)| {
            let r = r.as_ref()?;
            match (&r.spec, r.tokenizer) {
                (Some(SourceSpec::Text { tokenizer, .. }), Some(span)) => Some((
                    declared_vocab(tokenizer)?,
                    self.sources.text(span).to_string(),
                )),
                _ => None,
            }
        });
        let mut taken: Vec<(String, f64, Span)> = Vec::new();
        for s in &d.stmts {
            match s {
                DataStmt::Source { .. } => {}
                DataStmt::Field {
                    name, ty, value, ..
                } => {
                    let declared = self.sample_type(&mut f, ty);
                    let mark = self.diags.len();
                    let given = Given {
                        columns,
                        table_like,
                        image_shape: image_shape.as_ref(),
                    };
                    let field = self.data_field(&mut f, value, &declared, ty.span, &given);
                    if !self.failed_since(mark)
                        && let Some(s) = self.field_spec(name, ty, &declared, &field)
                    {
                        spec.fields.push(s);
                    }
                    // A field that does not fit its own declaration has no reliable type: later
                    // uses of it would only repeat the error.
                    let fits = !self.failed_since(mark);
                    let whole_column = match (&field.column, field.steps.is_empty()) {
                        (Some(Column::Named(c)), true) => Some(c.as_str()),
                        _ => None,
                    };
                    // `y: i32 = y`: the generator's labels as they are.
                    if let (Some((k, source)), Some("y"), Ty::Tensor(dt, shape)) =
                        (&labels, whole_column, &declared)
                        && !dt.is_float()
                        && fits
                        && shape.0.is_empty()
                    {
                        info.classes
                            .push((name.name.to_string(), *k, source.clone()));
                    }
                    if let Some(span) = field.label {
                        match field.steps.first() {
                            Some(Kind::Categories(e)) if fits && !e.one_hot => {
                                match e.classes {
                                    // `unknown: bucket` and `missing: category` add a class
                                    // each, after the names.
                                    Some(k) => info.classes.push((
                                        name.name.to_string(),
                                        (k + usize::from(e.unknown_bucket)
                                            + usize::from(e.missing == Missing::Category))
                                            as i64,
                                        self.sources.text(span).to_string(),
                                    )),
                                    None => {
                                        info.unstated_classes.push((name.name.to_string(), span))
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    if let (Some((v, tokenizer)), Some("x" | "y"), Ty::Tensor(dt, _)) =
                        (&text_ids, whole_column, &declared)
                        && !dt.is_float()
                        && fits
                    {
                        info.classes
                            .push((name.name.to_string(), *v, tokenizer.clone()));
                    }
                    if let (Some(Kind::Tokens(t)), Some(span), Ty::Tensor(dt, _)) =
                        (field.steps.first(), field.tokenizer, &declared)
                        && !t.mask
                        && !dt.is_float()
                        && fits
                        && let Some(v) = declared_vocab(&t.spec)
                    {
                        let tokenizer = self.sources.text(span).to_string();
                        info.classes.push((name.name.to_string(), v, tokenizer));
                    }
                    let ty_known = if fits { declared } else { Ty::Unknown };
                    info.fields
                        .push((name.name.to_string(), ty_known, name.span.to(ty.span)));
                }
                DataStmt::Split {
                    name,
                    fraction,
                    of,
                    options,
                    span,
                } => {
                    let mark = self.diags.len();
                    let known_parent = info.sources.iter().any(|n| n == of.name.as_str())
                        || info.splits.iter().any(|n| n == of.name.as_str())
                        || of.name == "train";
                    if !known_parent {
                        let cands: Vec<&str> = info
                            .sources
                            .iter()
                            .chain(&info.splits)
                            .map(String::as_str)
                            .collect();
                        let mut diag = Diagnostic::error(
                            codes::UNKNOWN_DATA_VOCABULARY,
                            format!(
                                "cannot split `{}`: no source or split has that name",
                                of.name
                            ),
                        )
                        .with_primary(of.span, "unknown source");
                        diag = match crate::suggest::closest(&of.name, cands.iter().copied()) {
                            Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                            None if cands.is_empty() => diag,
                            None => diag.with_help(format!("split one of: {}", cands.join(", "))),
                        };
                        self.emit(diag);
                    }
                    let frac = match self.expr(&mut f, fraction) {
                        Ty::Float(Some(v)) => Some(v),
                        Ty::Int(dm) => dm.as_const().map(|v| v as f64),
                        _ => None,
                    };
                    match frac {
                        Some(v) if v > 0.0 && v < 1.0 => {
                            taken.push((of.name.to_string(), v, *span));
                            let total: f64 = taken.iter().filter(|(p, _, _)| *p == of.name).map(|(_, v, _)| v).sum();
                            if total >= 1.0 - 1e-9 {
                                let mut diag = Diagnostic::error(
                                    codes::SPLIT_FRACTIONS,
                                    format!("the splits of `{}` take {:.0}% of it, leaving nothing to train on", of.name, total * 100.0),
                                )
                                .with_primary(fraction.span, format!("this brings the total to {total}"));
                                for (p, v, sp) in &taken {
                                    if *p == of.name && sp != span {
                                        diag = diag.with_secondary(*sp, format!("takes {v}"));
                                    }
                                }
                                self.emit(diag.with_help("the fractions split off one source must add up to less than 1; what remains is the training split"));
                            }
                        }
                        _ => self.emit(
                            Diagnostic::error(codes::SPLIT_FRACTIONS, "a split fraction must be a number between 0 and 1")
                                .with_primary(fraction.span, "not in (0, 1)")
                                .with_help("write the share of the source to split off, e.g. `split val = 0.1 of train`"),
                        ),
                    }
                    let mut shuffle = None;
                    for o in options {
                        shuffle = self.data_option(&mut f, o).or(shuffle);
                    }
                    if let (false, Some(fraction)) = (self.failed_since(mark), frac) {
                        spec.splits.push(SplitSpec {
                            name: name.name.to_string(),
                            fraction,
                            parent: of.name.to_string(),
                            shuffle,
                        });
                    }
                    info.splits.push(name.name.to_string());
                }
                DataStmt::Setting(s) => self.data_setting(&mut f, s, &mut spec),
            }
        }
        if spec.fields.is_empty() && !self.failed_since(start) {
            self.emit(
                Diagnostic::error(codes::SETTING, "the data block declares no fields")
                    .with_primary(d.name.span, "no fields")
                    .with_help("declare what a sample holds, like `x: f32[4] = cols(0..4)`"),
            );
        }
        // The block is recorded once (a train block checks its data block again).
        if !self.failed_since(start) && self.facts.data(d.span).is_none() {
            self.facts.data.push((d.span, spec));
        }
        info
    }

    /// A field's typed spec, from its declaration and what `data_field` read.
    fn field_spec(
        &mut self,
        name: &Ident,
        ty: &TypeExpr,
        declared: &Ty,
        field: &FieldRead,
    ) -> Option<FieldSpec> {
        let (Ty::Tensor(dtype, shape), Some(column)) = (declared, &field.column) else {
            return None;
        };
        let Some(dims) = shape
            .concrete()
            .and_then(|d| d.iter().map(|&n| usize::try_from(n).ok()).collect())
        else {
            self.emit(
                Diagnostic::error(
                    codes::NOT_A_CONSTANT,
                    "a field's shape must be made of numbers",
                )
                .with_primary(ty.span, "not a fixed shape")
                .with_help("declare the shape of one sample with numbers, like `f32[28, 28]`"),
            );
            return None;
        };
        let dtype = ir_dtype(*dtype);
        if !dtype.is_float()
            && let Some(s) = field.steps.iter().find(|s| s.makes_floats())
        {
            self.emit(
                Diagnostic::error(
                    codes::DATA_MODEL_MISMATCH,
                    format!(
                        "declared {}, but `{}` makes floating-point values: declare it f32",
                        dtype.name(),
                        s.name()
                    ),
                )
                .with_primary(ty.span, "not a floating-point type")
                .with_help("declare the field `f32`"),
            );
            return None;
        }
        Some(FieldSpec {
            name: name.name.to_string(),
            dtype,
            shape: dims,
            column: column.clone(),
            steps: field.steps.clone(),
            at: name.span.start as usize,
        })
    }

    /// A field's declared per-sample type (`f32[784]`, `i32`).
    pub(super) fn sample_type(&mut self, f: &mut Frame, t: &TypeExpr) -> Ty {
        match &t.kind {
            TypeKind::Tensor { dtype, shape } => {
                let shape = match shape {
                    Some(s) => {
                        let mark = self.diags.len();
                        match self.eval_shape(f, s, false) {
                            Some(sh) if sh.0.iter().all(is_known_size) => sh,
                            _ => {
                                // A sample's size cannot be a symbol: nothing binds it, and the
                                // loader needs numbers.
                                if !self.failed_since(mark) {
                                    self.emit(
                                        Diagnostic::error(
                                            codes::NOT_A_CONSTANT,
                                            format!(
                                                "the shape of a data field must be known sizes, not `{}`",
                                                self.sources.text(s.span)
                                            ),
                                        )
                                        .with_primary(s.span, "not numbers")
                                        .with_help("write one sample's sizes as numbers, like `x: f32[784]` or `x: f32[1, 28, 28]`"),
                                    );
                                }
                                return Ty::Unknown;
                            }
                        }
                    }
                    None => Shape::scalar(),
                };
                Ty::Tensor(*dtype, shape)
            }
            _ => {
                self.emit(
                    Diagnostic::error(codes::FIELD_NOT_TENSOR, "a data field needs a tensor type")
                        .with_primary(t.span, "not a tensor type")
                        .with_help(
                            "declare the shape of one sample, like `x: f32[784]` or `y: i32`",
                        ),
                );
                Ty::Unknown
            }
        }
    }

    /// A source expression: its columns, whether columns are chosen by selectors, and its
    /// value when it checks clean.
    fn data_source(&mut self, f: &mut Frame, e: &Expr) -> Option<SourceRead> {
        match &e.kind {
            ExprKind::Pipe { lhs, rhs } => {
                let left = self.data_source(f, lhs)?;
                match &rhs.kind {
                    ExprKind::Call(call) if matches!(&call.callee.kind, ExprKind::Name(n) if n.name == "join") =>
                    {
                        let args = &call.args;
                        if args.len() != 1 || args[0].name.is_some() {
                            self.emit(
                                Diagnostic::error(codes::ARGUMENT_COUNT, "`join` takes one source")
                                    .with_primary(rhs.span, "write `|> join(csv(…))`"),
                            );
                            return None;
                        }
                        let right = self.data_source(f, &args[0].value)?;
                        let unjoinable = [&left, &right].into_iter().find_map(|s| match s.source {
                            Some(Source::Text) => Some("a `text` source cannot be joined: its samples are windows of its text"),
                            Some(Source::Images) => Some("an `images` source cannot be joined: its samples are the files of its folders"),
                            _ => None,
                        });
                        let spec = match (left.spec, right.spec, unjoinable) {
                            (_, _, Some(message)) => {
                                self.wrong(codes::SETTING, Wrong::at(rhs.span, message));
                                None
                            }
                            (Some(l), Some(r), None) => {
                                Some(SourceSpec::Join(Box::new(l), Box::new(r)))
                            }
                            _ => None,
                        };
                        let mut columns = left.columns;
                        columns.extend(right.columns);
                        Some(SourceRead {
                            columns,
                            table_like: left.table_like || right.table_like,
                            source: None,
                            spec,
                            args: e.span,
                            tokenizer: None,
                        })
                    }
                    _ => {
                        self.emit(
                            Diagnostic::error(codes::UNKNOWN_DATA_VOCABULARY, "only `join(…)` can follow a source")
                                .with_primary(rhs.span, "not a source operation")
                                .with_help("transforms belong to fields: `x: f32[4] = cols(0..4) |> standardize`"),
                        );
                        None
                    }
                }
            }
            ExprKind::Call(call) => {
                let Call {
                    callee,
                    args,
                    args_span,
                } = &**call;
                let ExprKind::Name(n) = &callee.kind else {
                    self.unknown_source(callee.span, "this");
                    return None;
                };
                let Some(source) = Source::from_name(&n.name) else {
                    self.unknown_source(n.span, &n.name);
                    return None;
                };
                let mark = self.diags.len();
                let cols = source.columns();
                let mut tokenizer = None;
                let vals: Vec<ArgVal> = args
                    .iter()
                    .map(|a| {
                        let is_tokenizer = a.name.as_ref().is_some_and(|n| n.name == "tokenizer");
                        ArgVal {
                            name: a.name.clone(),
                            ty: if is_tokenizer {
                                tokenizer = self.tokenizer(f, &a.value).map(|t| (t, a.value.span));
                                Ty::Unknown
                            } else {
                                self.expr(f, &a.value)
                            },
                            span: a.value.span,
                        }
                    })
                    .collect();
                let bound = self.bind_slots(&slots(source.params()), &vals, &n.name, *args_span)?;
                for (a, v) in args.iter().zip(&vals) {
                    let is_path = a.name.as_ref().map_or(matches!(v.ty, Ty::Str(_)), |n| {
                        ["path", "images", "labels"].contains(&n.name.as_str())
                    });
                    if is_path && !matches!(v.ty, Ty::Str(_)) {
                        self.emit(
                            Diagnostic::error(
                                codes::PATH_NOT_STRING,
                                format!("a file path must be a string, found {}", v.ty),
                            )
                            .with_primary(v.span, "not a string"),
                        );
                    }
                }
                let tokenizer_span = tokenizer.as_ref().map(|t| t.1);
                let spec = if self.failed_since(mark) {
                    None
                } else {
                    let b = Bound::new(&n.name, *args_span, source.params(), args, bound);
                    match read::source(source, &b, tokenizer.map(|t| t.0)) {
                        Ok(s) => Some(s),
                        Err(w) => {
                            self.wrong(codes::SETTING_VALUE, w);
                            None
                        }
                    }
                };
                Some(SourceRead {
                    columns: cols.to_vec(),
                    table_like: cols.is_empty(),
                    source: Some(source),
                    spec,
                    args: *args_span,
                    tokenizer: tokenizer_span,
                })
            }
            _ => {
                self.unknown_source(e.span, self.sources.text(e.span).to_string().as_str());
                None
            }
        }
    }

    /// A tokenizer: `chars()`, `chars(vocab: 512)`, `bpe(file: "tokenizer.json")`; its value
    /// when it checks clean.
    fn tokenizer(&mut self, f: &mut Frame, e: &Expr) -> Option<TokenizerSpec> {
        let (name, args, args_span) = match &e.kind {
            ExprKind::Call(call) => match &call.callee.kind {
                ExprKind::Name(n) => (n.name.as_str(), call.args.as_slice(), call.args_span),
                _ => ("", call.args.as_slice(), call.args_span),
            },
            ExprKind::Name(n) => (n.name.as_str(), &[][..], n.span),
            _ => ("", &[][..], e.span),
        };
        let Some(tokenizer) = Tokenizer::from_name(name) else {
            let names = Tokenizer::names();
            self.emit(
                Diagnostic::error(
                    codes::UNKNOWN_DATA_VOCABULARY,
                    format!("`{}` is not a tokenizer", self.sources.text(e.span)),
                )
                .with_primary(e.span, "unknown tokenizer")
                .with_help(format!(
                    "the tokenizers are {}: `tokenizer: chars()`",
                    names.join(", ")
                )),
            );
            return None;
        };
        let mark = self.diags.len();
        let vals = self.eval_args(f, args);
        let bound = self.bind_slots(&slots(tokenizer.params()), &vals, name, args_span);
        for v in &vals {
            let is_vocab = v.name.as_ref().is_none_or(|n| n.name == "vocab");
            if is_vocab && !matches!(v.ty, Ty::Int(_) | Ty::Unknown) {
                self.emit(
                    Diagnostic::error(
                        codes::UNKNOWN_DATA_VOCABULARY,
                        format!("a vocabulary size is a whole number, found {}", v.ty),
                    )
                    .with_primary(v.span, "not an integer"),
                );
            }
        }
        if self.failed_since(mark) {
            return None;
        }
        let b = Bound::new(name, args_span, tokenizer.params(), args, bound?);
        read::tokenizer(tokenizer, &b)
            .map_err(|w| self.wrong(codes::SETTING_VALUE, w))
            .ok()
    }

    fn unknown_source(&mut self, span: Span, name: &str) {
        let names = Source::names();
        let mut d = Diagnostic::error(
            codes::UNKNOWN_DATA_VOCABULARY,
            format!("`{name}` is not a data source"),
        )
        .with_primary(span, "unknown source");
        d = match crate::suggest::closest(name, names.iter().copied()) {
            Some(s) => d.with_help(format!("did you mean `{s}`?")),
            None => d.with_help(format!("the sources are {}", names.join(", "))),
        };
        self.emit(d);
    }

    /// Adds a transform read at `span` to the field, unless the field has failed so far.
    fn push_step(
        &mut self,
        field: &mut FieldRead,
        span: Span,
        kind: impl FnOnce() -> Result<Kind, Wrong>,
    ) {
        if self.failed_since(field.start) {
            return;
        }
        let Some(column) = &field.column else { return };
        let pushed = kind().map_err(|w| (codes::SETTING_VALUE, w)).and_then(|k| {
            read::push_step(&mut field.steps, k, column, field.width, span)
                .map_err(|w| (codes::SETTING, w))
        });
        if let Err((code, w)) = pushed {
            self.wrong(code, w);
        }
    }

    /// A field's expression: a column (or selector) piped through transforms, read.
    fn data_field(
        &mut self,
        f: &mut Frame,
        e: &Expr,
        declared: &Ty,
        decl_span: Span,
        given: &Given,
    ) -> FieldRead {
        let mut field = FieldRead {
            width: match declared {
                Ty::Tensor(_, s) => s
                    .concrete()
                    .and_then(|d| {
                        d.iter()
                            .try_fold(1usize, |n, &x| n.checked_mul(usize::try_from(x).ok()?))
                    })
                    .unwrap_or(0),
                _ => 0,
            },
            start: self.diags.len(),
            ..FieldRead::default()
        };
        self.check_field(f, e, declared, decl_span, given, &mut field);
        field
    }

    fn check_field(
        &mut self,
        f: &mut Frame,
        e: &Expr,
        declared: &Ty,
        decl_span: Span,
        given: &Given,
        field: &mut FieldRead,
    ) {
        let Given {
            columns,
            table_like,
            image_shape,
        } = *given;
        let mut transforms = Vec::new();
        let mut head = e;
        while let ExprKind::Pipe { lhs, rhs } = &head.kind {
            transforms.push(&**rhs);
            head = lhs;
        }
        transforms.reverse();
        let mut selected: Option<usize> = None;
        let mark = self.diags.len();
        match &head.kind {
            ExprKind::Name(n) if columns.is_none_or(|c| c.contains(&n.name.as_str())) => {
                field.column = Some(Column::Named(n.name.to_string()));
            }
            ExprKind::Call(call) if selector(&call.callee).is_some() => {
                let Call {
                    callee,
                    args,
                    args_span,
                } = &**call;
                let (n, selector) = selector(callee).expect("matched");
                let vals: Vec<ArgVal> = self.eval_args(f, args);
                let bound = if selector == Selector::Cols {
                    // Indices, ranges and names count; anything else leaves the count unknown.
                    let mut count = Some(0usize);
                    for v in &vals {
                        let n = match &v.ty {
                            Ty::Shape(s) => Some(s.0.len()),
                            Ty::Int(_) | Ty::Str(_) => Some(1),
                            _ => None,
                        };
                        count = count.zip(n).map(|(c, n)| c + n);
                    }
                    selected = count;
                    None
                } else {
                    selected = (selector == Selector::Col).then_some(1);
                    self.bind_slots(&slots(selector.params()), &vals, &n.name, *args_span)
                };
                if let Some(columns) = columns
                    && !table_like
                {
                    self.emit(
                        Diagnostic::error(codes::UNKNOWN_DATA_VOCABULARY, format!("`{}` selects columns of a table, but this data's sources have named columns", n.name))
                            .with_primary(callee.span, "not a table source")
                            .with_help(format!("use one of: {}", columns.join(", "))),
                    );
                }
                if !self.failed_since(mark) {
                    let b =
                        bound.map(|b| Bound::new(&n.name, *args_span, selector.params(), args, b));
                    let column = match (selector, b) {
                        (Selector::Cols, _) => Some(read::cols(args, *args_span)),
                        (Selector::Col, Some(b)) => Some(read::col(&b)),
                        (Selector::Array, Some(b)) => Some(read::array(&b)),
                        // Not bound: reported.
                        (_, None) => None,
                    };
                    match column {
                        Some(Ok(c)) => field.column = Some(c),
                        Some(Err(w)) => self.wrong(codes::SETTING_VALUE, w),
                        None => {}
                    }
                }
            }
            _ => {
                let columns = columns.unwrap_or_default();
                let name = self.sources.text(head.span).to_string();
                let mut cands: Vec<&str> = columns.to_vec();
                if table_like {
                    cands.extend([Selector::Col.name(), Selector::Cols.name()]);
                }
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_DATA_VOCABULARY,
                    format!("`{name}` is not a column of this data"),
                )
                .with_primary(head.span, "unknown column");
                d = match crate::suggest::closest(&name, cands.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None if table_like => d.with_help(
                        "select table columns with `col(3)`, `cols(0..4)` or `col(\"name\")`",
                    ),
                    None => d.with_help(format!("the columns are {}", columns.join(", "))),
                };
                self.emit(d);
            }
        }
        let mut one_hot: Option<(i64, Span)> = None;
        // `one_hot` of category names: a vector of the declared size, checked when the
        // vocabulary is fitted.
        let mut one_hot_names = false;
        let mut reshaped = false;
        // The per-sample shape as the selection gives it (`cols` a vector, `col` one value) and
        // the transforms make it, while it is known.
        let mut per_sample: Option<Vec<i64>> = match selected {
            Some(n) if is_cols(head) => Some(vec![n as i64]),
            Some(_) => Some(Vec::new()),
            None => None,
        };
        // The images of an `images` source, `[C, H, W]`.
        let image =
            image_shape.filter(|_| matches!(&field.column, Some(Column::Named(n)) if n == "image"));
        if let Some((shape, _)) = image {
            per_sample = Some(shape.clone());
        }
        for t in transforms {
            let (name, args, span) = match &t.kind {
                ExprKind::Name(n) => (n, &[][..], t.span),
                ExprKind::Call(call) => match &call.callee.kind {
                    ExprKind::Name(n) => (n, call.args.as_slice(), call.args_span),
                    _ => {
                        self.not_a_transform(t.span);
                        continue;
                    }
                },
                _ => {
                    self.not_a_transform(t.span);
                    continue;
                }
            };
            let Some(transform) = Transform::from_name(&name.name) else {
                let names = Transform::names();
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_DATA_VOCABULARY,
                    format!("`{}` is not a data transform", name.name),
                )
                .with_primary(name.span, "unknown transform");
                d = match crate::suggest::closest(&name.name, names.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("the transforms are {}", names.join(", "))),
                };
                self.emit(d);
                continue;
            };
            let params = transform.params();
            let what = name.name.as_str();
            if matches!(transform, Transform::OneHot | Transform::Label) {
                let names = self.categorical_options(args);
                // The options are bare names, not expressions: only `classes` is evaluated.
                let vals: Vec<ArgVal> =
                    args.iter()
                        .map(|a| {
                            let option = a.name.as_ref().is_some_and(|n| {
                                CATEGORICAL_OPTIONS.iter().any(|(o, _)| *o == n.name)
                            });
                            ArgVal {
                                name: a.name.clone(),
                                ty: if option {
                                    Ty::Unknown
                                } else {
                                    self.expr(f, &a.value)
                                },
                                span: a.value.span,
                            }
                        })
                        .collect();
                let bound = self.bind_slots(&slots(params), &vals, what, span);
                let classes = bound.as_ref().and_then(|b| b.first().cloned().flatten());
                if let Some(c) = &classes
                    && !matches!(c.ty, Ty::Int(_) | Ty::Unknown)
                {
                    self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            format!(
                                "`classes` of `{}` must be an integer, found {}",
                                name.name, c.ty
                            ),
                        )
                        .with_primary(c.span, "not an integer"),
                    );
                }
                if let Some(b) = bound {
                    self.push_step(field, t.span, || {
                        read::transform(transform, &Bound::new(what, span, params, args, b), None)
                    });
                }
                if transform == Transform::Label {
                    field.label = Some(t.span);
                    continue;
                }
                match classes {
                    Some(ArgVal {
                        ty: Ty::Int(d),
                        span,
                        ..
                    }) if !names => {
                        one_hot = d.as_const().map(|n| (n, span));
                    }
                    _ => one_hot_names = true,
                }
                per_sample = None;
                continue;
            }
            if transform == Transform::Tokenize {
                // The tokenizer is a call such as `chars()`, checked as a text source's is.
                let mut tokenizer = None;
                let vals: Vec<ArgVal> = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let is_tokenizer =
                            a.name.as_ref().map_or(i == 0, |n| n.name == "tokenizer");
                        ArgVal {
                            name: a.name.clone(),
                            ty: if is_tokenizer {
                                tokenizer = self.tokenizer(f, &a.value);
                                field.tokenizer = Some(a.value.span);
                                Ty::Unknown
                            } else {
                                self.expr(f, &a.value)
                            },
                            span: a.value.span,
                        }
                    })
                    .collect();
                let bound = self.bind_slots(&slots(params), &vals, what, span);
                let length = bound.as_ref().and_then(|b| b.get(1).cloned().flatten());
                // One text becomes `length` ids: the selection's count is not the field's.
                reshaped = true;
                per_sample = match length {
                    Some(ArgVal { ty: Ty::Int(d), .. }) => d.as_const().map(|n| vec![n]),
                    Some(ArgVal { ty, span, .. }) if !ty.is_unknown() => {
                        self.emit(
                            Diagnostic::error(
                                codes::SETTING_VALUE,
                                format!("`length` of `tokenize` must be an integer, found {ty}"),
                            )
                            .with_primary(span, "not an integer"),
                        );
                        None
                    }
                    _ => None,
                };
                if let Some(b) = bound {
                    self.push_step(field, t.span, || {
                        read::transform(
                            transform,
                            &Bound::new(what, span, params, args, b),
                            tokenizer,
                        )
                    });
                }
                continue;
            }
            if transform == Transform::Impute {
                self.impute(f, field, t.span, args, span);
                continue;
            }
            let vals: Vec<ArgVal> = self.eval_args(f, args);
            if transform == Transform::RandomFlip {
                self.flip_axis(args);
            }
            if transform == Transform::ColorJitter
                && let Some(s) = &per_sample
                && (s.len() < 3 || s[s.len() - 3] != 3)
            {
                let mut d = Diagnostic::error(
                    codes::DATA_MODEL_MISMATCH,
                    format!(
                        "`color_jitter` changes the colours of RGB images, `[3, height, width]`, but a sample here is {}",
                        dims(s)
                    ),
                )
                .with_primary(name.span, "needs three colour channels");
                if let Some((_, src)) = image {
                    d = d.with_secondary(*src, "the images are read here").with_help("read the images with `channels: 3`, or leave `color_jitter` out for grey images");
                }
                self.emit(d);
                return;
            }
            let bound = self.bind_slots(&slots(params), &vals, what, span);
            if let Some(b) = bound {
                if transform == Transform::Mask {
                    if !self.failed_since(field.start)
                        && let Err(w) = read::push_mask(&mut field.steps, t.span)
                    {
                        self.wrong(codes::SETTING, w);
                    }
                } else {
                    self.push_step(field, t.span, || {
                        read::transform(transform, &Bound::new(what, span, params, args, b), None)
                    });
                }
            }
            match transform {
                Transform::Flatten => {
                    reshaped = true;
                    per_sample = per_sample.and_then(|s| Some(vec![numel(&s)?]));
                }
                Transform::Reshape => {
                    reshaped = true;
                    let to = match vals.first().map(|v| &v.ty) {
                        Some(Ty::Shape(to)) => to.concrete(),
                        _ => None,
                    };
                    if let (Some(from), Some(to)) = (&per_sample, &to) {
                        let (have, want) = (numel(from), numel(to));
                        if have != want {
                            let count = |n: Option<i64>| {
                                n.map_or("more than 2^63".into(), |n| n.to_string())
                            };
                            let (have, want) = (count(have), count(want));
                            self.emit(
                                Diagnostic::error(codes::DATA_MODEL_MISMATCH, format!("`reshape` to {} needs {want} values per sample, but it is given {have} ({})", dims(to), dims(from)))
                                    .with_primary(span, format!("{want} values"))
                                    .with_secondary(decl_span, "declared here")
                                    .with_help("the number of values per sample must stay the same"),
                            );
                            return;
                        }
                    }
                    per_sample = to;
                }
                _ => {}
            }
        }
        let Ty::Tensor(dtype, shape) = declared else {
            return;
        };
        if let (Some((given, src)), Some(got), Some(want)) = (image, &per_sample, shape.concrete())
            && numel(got) != numel(&want)
        {
            let (channels, h, w) = (given[0], given[1], given[2]);
            let suggest = if want.len() == 3 && want[1..] == given[1..] {
                format!(
                    "read the images with `channels: {}`, or declare the field `{}[{channels}, {h}, {w}]`",
                    want[0],
                    dtype.name()
                )
            } else if want.len() == 3 && (want[0] == 1 || want[0] == 3) {
                format!(
                    "read the images with `size: [{}, {}], channels: {}`, or declare the field `{}[{channels}, {h}, {w}]`",
                    want[1],
                    want[2],
                    want[0],
                    dtype.name()
                )
            } else {
                format!("declare the field `{}[{channels}, {h}, {w}]`", dtype.name())
            };
            let after = if *got == *given {
                String::new()
            } else {
                format!(", {} after its transforms", dims(got))
            };
            self.emit(
                Diagnostic::error(
                    codes::DATA_MODEL_MISMATCH,
                    format!(
                        "the images are {} per sample ({channels} channel{}, {h}×{w}){after}, but the field is declared {}{shape}",
                        dims(given),
                        if channels == 1 { "" } else { "s" },
                        dtype.name()
                    ),
                )
                .with_primary(e.span, format!("{} values per sample", numel(got).unwrap_or(0)))
                .with_secondary(*src, format!("{} per sample", dims(given)))
                .with_secondary(decl_span, "declared here")
                .with_help(suggest),
            );
            return;
        }
        if let Some((n, span)) = one_hot {
            let want = Shape::of_dims([super::dim::Dim::constant(n)]);
            if *shape != want || !dtype.is_float() {
                self.emit(
                    Diagnostic::error(codes::DATA_MODEL_MISMATCH, format!("`one_hot({n})` gives f32[{n}] per sample, but the field is declared {}{shape}", dtype.name()))
                        .with_primary(span, format!("f32[{n}] per sample"))
                        .with_secondary(decl_span, "declared here")
                        .with_help(format!("declare the field as `f32[{n}]`")),
                );
            }
        }
        if let (Some(got), Some(want), None) = (&per_sample, shape.concrete(), one_hot)
            && *got != want
            && numel(got).is_some()
            && numel(got) == numel(&want)
        {
            // The right number of values in the wrong shape: the checker sees it, the data
            // loader would refuse it only at run time.
            let declared_as = format!("{}{shape}", dtype.name());
            let source = self.sources.text(e.span).to_string();
            let (message, help) = if got.is_empty() {
                (
                    format!(
                        "this gives one value per sample, but the field is declared {declared_as}"
                    ),
                    format!(
                        "declare the field as `{}` for one value per sample, or write `{source} |> reshape({})`",
                        dtype.name(),
                        dims(&want)
                    ),
                )
            } else {
                (
                    format!(
                        "this gives {}{} per sample, but the field is declared {declared_as}",
                        dtype.name(),
                        dims(got)
                    ),
                    format!(
                        "the number of values matches: reshape them, `{source} |> reshape({})`",
                        dims(&want)
                    ),
                )
            };
            self.emit(
                Diagnostic::error(codes::DATA_MODEL_MISMATCH, message)
                    .with_primary(
                        e.span,
                        match got.len() {
                            0 => "one value per sample".to_string(),
                            _ => format!("{} per sample", dims(got)),
                        },
                    )
                    .with_secondary(decl_span, "declared here")
                    .with_help(help),
            );
            return;
        }
        if one_hot_names {
            if shape.0.len() != 1 || !dtype.is_float() {
                self.emit(
                    Diagnostic::error(codes::DATA_MODEL_MISMATCH, format!("`one_hot` of category names gives one f32 vector per sample, but the field is declared {}", if shape.0.is_empty() { dtype.name().to_string() } else { format!("{}{shape}", dtype.name()) }))
                        .with_primary(e.span, "a vector per sample")
                        .with_secondary(decl_span, "declared here")
                        .with_help("declare the field as `f32[N]`, N the number of categories (of every column selected, together)"),
                );
            }
            return;
        }
        if let (Some(count), false) = (selected, reshaped) {
            // `one_hot` turns the one label column into the declared vector.
            let declared_n = if one_hot.is_some() {
                Some(1)
            } else {
                shape.concrete().map(|d| d.iter().product::<i64>())
            };
            if let Some(dn) = declared_n.filter(|dn| *dn != count as i64) {
                let s = if count == 1 { "" } else { "s" };
                let (message, help) = if one_hot.is_some() {
                    (
                        format!(
                            "this selects {count} column{s} but `one_hot` encodes one label column"
                        ),
                        "select the label column alone: `col(4) |> one_hot(3)`",
                    )
                } else {
                    (
                        format!(
                            "this selects {count} column{s} but the field is declared {}{shape} ({dn} values)",
                            dtype.name()
                        ),
                        "ranges are half-open: `cols(0..4)` selects columns 0, 1, 2 and 3",
                    )
                };
                self.emit(
                    Diagnostic::error(codes::DATA_MODEL_MISMATCH, message)
                        .with_primary(head.span, format!("{count} column{s}"))
                        .with_secondary(decl_span, "declared here")
                        .with_help(help),
                );
            }
        }
    }

    /// Checks the axis of `random_flip`, a bare name.
    fn flip_axis(&mut self, args: &[Arg]) {
        let Some(a) = args.first() else { return };
        let ok = match &a.value.kind {
            ExprKind::Name(v) => FLIP_AXES.contains(&v.name.as_str()),
            ExprKind::Str(s) => FLIP_AXES.contains(&&**s),
            _ => false,
        };
        if !ok {
            self.emit(
                Diagnostic::error(
                    codes::SETTING_VALUE,
                    "`random_flip` flips `horizontal` (the default), `vertical` or `both`",
                )
                .with_primary(a.value.span, "not one of these names")
                .with_help("write `random_flip(vertical)`"),
            );
        }
    }

    /// Checks the bare-name options of `one_hot` and `label` (`unknown: bucket`); returns
    /// whether any is given, which makes the encoder one of category names.
    fn categorical_options(&mut self, args: &[Arg]) -> bool {
        let mut given = false;
        for a in args {
            let Some(n) = &a.name else { continue };
            let Some((_, allowed)) = CATEGORICAL_OPTIONS.iter().find(|(o, _)| *o == n.name) else {
                continue;
            };
            given = true;
            let value = match &a.value.kind {
                ExprKind::Name(v) => Some(v.name.as_str()),
                ExprKind::Str(s) => Some(&**s),
                _ => None,
            };
            if !value.is_some_and(|v| allowed.contains(&v)) {
                self.emit(
                    Diagnostic::error(
                        codes::SETTING_VALUE,
                        format!(
                            "`{}` takes {}",
                            n.name,
                            allowed
                                .iter()
                                .map(|a| format!("`{a}`"))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        ),
                    )
                    .with_primary(a.value.span, "not one of these names")
                    .with_help(format!(
                        "write `{}: {}`",
                        n.name,
                        allowed[allowed.len() - 1]
                    )),
                );
            }
        }
        given
    }

    fn not_a_transform(&mut self, span: Span) {
        self.emit(
            Diagnostic::error(
                codes::UNKNOWN_DATA_VOCABULARY,
                "a transform must be a name or a call",
            )
            .with_primary(span, "not a transform")
            .with_help("write a transform such as `|> scale(1 / 255)`"),
        );
    }

    /// `impute(mean)`, `impute(constant: 0)` or `impute(knn(k: N))`, whose inner call is bound
    /// by its own parameters.
    fn impute(&mut self, f: &mut Frame, field: &mut FieldRead, at: Span, args: &[Arg], span: Span) {
        let vals: Vec<ArgVal> = self.eval_args(f, args);
        let knn = args.iter().find_map(|a| match &a.value.kind {
            ExprKind::Call(call) if matches!(&call.callee.kind, ExprKind::Name(n) if n.name == "knn") => {
                Some((&call.args, call.args_span))
            }
            _ => None,
        });
        let params = Transform::Impute.params();
        match knn {
            Some(_) if args.len() != 1 => self.emit(
                Diagnostic::error(
                    codes::SETTING_VALUE,
                    "`impute(knn(k: N))` takes nothing else",
                )
                .with_primary(span, "more than `knn(…)`"),
            ),
            Some((knn_args, knn_span)) => {
                let knn_vals = self.eval_args(f, knn_args);
                if let Some(b) = self.bind_slots(&slots(KNN), &knn_vals, "knn", knn_span) {
                    self.push_step(field, at, || {
                        read::knn(&Bound::new("knn", knn_span, KNN, knn_args, b))
                    });
                }
            }
            None => {
                if let Some(b) = self.bind_slots(&slots(params), &vals, "impute", span) {
                    self.push_step(field, at, || {
                        read::transform(
                            Transform::Impute,
                            &Bound::new("impute", span, params, args, b),
                            None,
                        )
                    });
                }
            }
        }
    }

    /// A split's option, `shuffle(seed: N)`: `Some(seed)` when it checks clean.
    fn data_option(&mut self, f: &mut Frame, o: &Expr) -> Option<Option<u64>> {
        match &o.kind {
            ExprKind::Call(call) if matches!(&call.callee.kind, ExprKind::Name(n) if n.name == "shuffle") => {
                self.shuffle(f, &call.args, call.args_span)
            }
            _ => {
                self.emit(
                    Diagnostic::error(codes::SETTING, "unknown split option")
                        .with_primary(o.span, "not a split option")
                        .with_help("a split takes `shuffle(seed: 42)`"),
                );
                None
            }
        }
    }

    /// `shuffle(seed: N)`'s seed (None inside for the block's), when it checks clean.
    fn shuffle(&mut self, f: &mut Frame, args: &[Arg], span: Span) -> Option<Option<u64>> {
        let mark = self.diags.len();
        let vals: Vec<ArgVal> = self.eval_args(f, args);
        let b = self.bind_slots(&slots(SHUFFLE), &vals, "shuffle", span)?;
        if self.failed_since(mark) {
            return None;
        }
        Bound::new("shuffle", span, SHUFFLE, args, b)
            .seed()
            .map_err(|w| self.wrong(codes::SETTING_VALUE, w))
            .ok()
    }

    fn data_setting(&mut self, f: &mut Frame, s: &Setting, spec: &mut Spec) {
        match (s.name.name.as_str(), &s.value) {
            ("shuffle", SettingValue::Call(args, span)) => {
                if let Some(seed) = self.shuffle(f, args, *span) {
                    spec.shuffle = Some(seed);
                }
            }
            ("seed", SettingValue::Values(v)) if v.len() == 1 => {
                let t = self.expr(f, &v[0]);
                match &t {
                    Ty::Int(d) if let Some(c) = d.as_const().filter(|c| *c >= 0) => {
                        spec.seed = Some(c as u64);
                    }
                    t if t.is_unknown() => {}
                    _ => self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            "`seed` must be a non-negative whole number",
                        )
                        .with_primary(v[0].span, "not a non-negative integer"),
                    ),
                }
            }
            (name, _) => {
                let mut d =
                    Diagnostic::error(codes::SETTING, format!("`{name}` is not a data setting"))
                        .with_primary(s.name.span, "unknown setting");
                d = match crate::suggest::closest(name, SETTINGS.iter().copied()) {
                    Some(sugg) => d.with_help(format!("did you mean `{sugg}`?")),
                    None => d.with_help("a data block holds sources (`train = idx(…)`), fields (`x: f32[4] = …`), splits, `shuffle(seed: …)` and `seed N`"),
                };
                self.emit(d);
            }
        }
    }
}

/// Whether a field's selection is `cols(…)` (a vector per sample) rather than `col(…)`.
fn is_cols(head: &Expr) -> bool {
    matches!(&head.kind, ExprKind::Call(call) if selector(&call.callee).is_some_and(|(_, s)| s == Selector::Cols))
}

/// The number of values of a per-sample shape; None beyond 64 bits.
fn numel(d: &[i64]) -> Option<i64> {
    d.iter().try_fold(1i64, |n, &x| n.checked_mul(x))
}

/// `[1, 8, 8]`.
fn dims(d: &[i64]) -> String {
    let d: Vec<String> = d.iter().map(i64::to_string).collect();
    format!("[{}]", d.join(", "))
}

/// The column selector a callee names, with its name.
fn selector(callee: &Expr) -> Option<(&Ident, Selector)> {
    match &callee.kind {
        ExprKind::Name(n) => Some((n, Selector::from_name(&n.name)?)),
        _ => None,
    }
}

/// Whether a dimension of a declared shape is a number.
fn is_known_size(elem: &ShapeElem) -> bool {
    matches!(elem, ShapeElem::Dim(d) if d.as_const().is_some())
}

#[cfg(test)]
mod tests {
    use crate::data::spec::*;
    use crate::ir::DType;
    use crate::syntax::ast::Item;

    struct NoFiles;

    impl crate::resolve::Loader for NoFiles {
        fn load(&self, _: &str) -> Result<String, String> {
            Err("no files here".into())
        }
    }

    /// The spec the checker recorded for the first data block of `text`, and its errors.
    fn spec_of(text: &str) -> (Option<Spec>, Vec<String>) {
        let (out, program) = crate::check_program("t.nnl", text, &NoFiles);
        let span = program.modules[program.root]
            .ast
            .items
            .iter()
            .find_map(|i| match i {
                Item::Data(d) => Some(d.span),
                _ => None,
            })
            .expect("a data block");
        let errors = out
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect();
        (program.facts.data(span).cloned(), errors)
    }

    #[test]
    fn the_facts_carry_the_data_blocks_spec() {
        let (spec, errors) = spec_of(
            r#"data d {
                source = csv("t.csv", header: true, delimiter: ";") |> join(csv("u.csv"))
                x: f32[1, 2, 2] = cols(0..3, "w") |> impute(knn(k: 3)) |> standardize |> reshape([1, 2, 2]) |> random_flip(vertical)
                y: i32 = col("kind") |> label(unknown: bucket)
                t: i32[8] = col(5) |> tokenize(bpe(vocab: 300), length: 8)
                m: f32[8] = col(5) |> tokenize(chars(), length: 8) |> mask
                split val = 0.25 of source, shuffle(seed: 4)
                seed 7
                shuffle(seed: 9)
            }"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let spec = spec.expect("recorded");
        let csv = |path: &str, header, delimiter| SourceSpec::Csv {
            path: path.into(),
            header,
            delimiter,
            skip: 0,
        };
        assert_eq!(
            spec.sources,
            [(
                "source".to_string(),
                SourceSpec::Join(
                    Box::new(csv("t.csv", true, b';')),
                    Box::new(csv("u.csv", false, b','))
                )
            )]
        );
        let x = &spec.fields[0];
        assert_eq!((x.dtype, x.shape.as_slice()), (DType::F32, &[1, 2, 2][..]));
        assert_eq!(
            x.column,
            Column::Table {
                refs: vec![
                    TableRef::Index(0),
                    TableRef::Index(1),
                    TableRef::Index(2),
                    TableRef::Name("w".into())
                ],
                scalar: false
            }
        );
        assert_eq!(
            x.steps,
            [
                Kind::Impute(Strategy::Knn(3)),
                Kind::Standardize,
                Kind::Reshape(vec![1, 2, 2]),
                Kind::Flip(FlipAxes::Vertical)
            ]
        );
        assert_eq!(
            spec.fields[1].steps,
            [Kind::Categories(Encoder {
                one_hot: false,
                classes: None,
                unknown_bucket: true,
                missing: Missing::Error,
                width: 0
            })]
        );
        let tokens = |spec, mask| {
            vec![Kind::Tokens(Tokens {
                spec,
                length: 8,
                mask,
            })]
        };
        assert_eq!(
            spec.fields[2].steps,
            tokens(TokenizerSpec::Bpe { vocab: 300 }, false)
        );
        assert_eq!(
            spec.fields[3].steps,
            tokens(TokenizerSpec::Chars { vocab: None }, true)
        );
        assert_eq!(
            spec.splits,
            [SplitSpec {
                name: "val".into(),
                fraction: 0.25,
                parent: "source".into(),
                shuffle: Some(Some(4))
            }]
        );
        assert_eq!((spec.seed, spec.shuffle), (Some(7), Some(Some(9))));
    }

    #[test]
    fn what_the_spec_refuses_is_a_diagnostic_and_nothing_is_recorded() {
        for (block, want) in [
            (
                r#"csv("t.csv", delimiter: ";;")  x: f32 = col(0)"#,
                "E0310: `delimiter` must be one ASCII character",
            ),
            (
                r#"sine(n: -1, length: 4)  x: f32[4, 1] = x"#,
                "E0310: `n` of `sine` must be a whole number ≥ 0",
            ),
            (
                r#"csv("t.csv")  x: i32[2] = cols(0..2) |> scale(2)"#,
                "E0304: declared i32, but `scale` makes floating-point values",
            ),
            (
                r#"csv("t.csv")  x: f32[2] = col(0) |> gaussian_noise(1) |> one_hot(2)"#,
                "E0305: `one_hot` cannot follow the augmentation `gaussian_noise`",
            ),
            (
                r#"csv("t.csv")  x: f32 = col(0) |> mask"#,
                "E0305: `mask` follows `tokenize(…)`",
            ),
        ] {
            let (spec, errors) = spec_of(&format!("data d {{ train = {block} }}"));
            assert!(spec.is_none(), "{block}");
            assert!(
                errors.len() == 1 && errors[0].starts_with(want),
                "{block}: {errors:?}"
            );
        }
    }
}

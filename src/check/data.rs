//! The `data` block: known sources and their arguments, column selections, transforms, declared
//! feature types, and splits whose fractions leave something to train on.

use super::ty::{Shape, Ty};
use super::{ArgVal, Checker, Frame, Slot};
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::prim::PrimParam;
use crate::prim::data::{Selector, Source, Tokenizer, Transform};
use crate::source::Span;
use crate::syntax::ast::*;

/// The values the categorical options take, as bare names.
const CATEGORICAL_OPTIONS: &[(&str, &[&str])] = &[
    ("unknown", &["error", "bucket"]),
    ("missing", &["error", "category", "most_frequent"]),
];

/// The axes `random_flip` takes, as bare names.
const FLIP_AXES: &[&str] = &["horizontal", "vertical", "both"];

const SETTINGS: &[&str] = &["shuffle", "seed"];

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

/// The per-sample shape `[C, H, W]` an `images(…)` source gives, when its `size` and `channels`
/// are written as numbers, with the span of its arguments.
fn images_shape(e: &Expr) -> Option<(Vec<i64>, Span)> {
    let ExprKind::Call {
        callee,
        args,
        args_span,
    } = &e.kind
    else {
        return None;
    };
    if source_of(callee) != Some(Source::Images) {
        return None;
    }
    let arg = |name: &str, position: usize| {
        args.iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == name))
            .or_else(|| {
                args.get(position).filter(|a| {
                    a.name.is_none() && args[..position].iter().all(|b| b.name.is_none())
                })
            })
    };
    let int = |e: &Expr| match e.kind {
        ExprKind::Number {
            value,
            is_int: true,
        } if (1.0..1e15).contains(&value) => Some(value as i64),
        _ => None,
    };
    let size: Vec<i64> = match &arg("size", 1)?.value.kind {
        ExprKind::List(items) if items.len() == 2 => items
            .iter()
            .map(|i| match i {
                ListItem::Expr(e) => int(e),
                ListItem::Spread(_) => None,
            })
            .collect::<Option<_>>()?,
        _ => return None,
    };
    let channels = match arg("channels", 2) {
        Some(a) => int(&a.value)?,
        None => 3,
    };
    Some((vec![channels, size[0], size[1]], *args_span))
}

/// For a field encoded with `label`: the number of classes it states, None when it states none.
fn label_classes(value: &Expr) -> Option<(Option<i64>, Span)> {
    let mut head = value;
    while let ExprKind::Pipe { lhs, rhs } = &head.kind {
        let (name, args) = match &rhs.kind {
            ExprKind::Name(n) => (n, &[][..]),
            ExprKind::Call { callee, args, .. } => match &callee.kind {
                ExprKind::Name(n) => (n, args.as_slice()),
                _ => break,
            },
            _ => break,
        };
        if Transform::from_name(&name.name) == Some(Transform::Label) {
            let classes = args
                .iter()
                .find(|a| a.name.as_ref().is_none_or(|n| n.name == "classes"))
                .map(|a| match a.value.kind {
                    ExprKind::Number {
                        value,
                        is_int: true,
                    } if (1.0..1e15).contains(&value) => Some(value as i64),
                    _ => None,
                });
            // `unknown: bucket` and `missing: category` add a class each, after the names.
            let extra = args
                .iter()
                .filter(|a| {
                    let option = a.name.as_ref().map(|n| n.name.as_str());
                    let value = match &a.value.kind {
                        ExprKind::Name(v) => Some(v.name.as_str()),
                        ExprKind::Str(v) => Some(v.as_str()),
                        _ => None,
                    };
                    matches!(
                        (option, value),
                        (Some("unknown"), Some("bucket")) | (Some("missing"), Some("category"))
                    )
                })
                .count() as i64;
            return match classes {
                // Written, but not as a number: nothing to compare with, and nothing missing.
                Some(None) => None,
                Some(Some(k)) => Some((Some(k + extra), rhs.span)),
                None => Some((None, rhs.span)),
            };
        }
        head = lhs;
    }
    None
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

impl Checker<'_> {
    pub(super) fn check_data(&mut self, module: usize, d: &DataDecl) -> DataInfo {
        let mut info = DataInfo::default();
        let mut f = Frame::new(module, None);
        let mut columns: Vec<&str> = Vec::new();
        let mut table_like = false;
        let mut sources_known = true;
        for s in &d.stmts {
            if let DataStmt::Source { name, value, .. } = s {
                match self.data_source(&mut f, value) {
                    Some((cols, table)) => {
                        columns.extend(cols);
                        table_like |= table;
                    }
                    None => sources_known = false,
                }
                info.sources.push(name.name.clone());
            }
        }
        // A source that failed was reported; its columns are unknown, not missing.
        let columns = sources_known.then_some(columns.as_slice());
        // The images' shape, when every `images` source states the same one.
        let mut images: Vec<Option<(Vec<i64>, Span)>> = Vec::new();
        for s in &d.stmts {
            if let DataStmt::Source { value, .. } = s
                && matches!(&value.kind, ExprKind::Call { callee, .. } if source_of(callee) == Some(Source::Images))
            {
                images.push(images_shape(value));
            }
        }
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
        let label_counts: Vec<Option<(i64, String)>> = d
            .stmts
            .iter()
            .filter_map(|s| match s {
                DataStmt::Source { value, .. } => {
                    Some(generator_classes(self.sources.text(value.span), value))
                }
                _ => None,
            })
            .collect();
        let labels = label_counts
            .iter()
            .try_fold(None::<(i64, String)>, |most, c| {
                let c = c.clone()?;
                Some(Some(match most {
                    Some(m) if m.0 >= c.0 => m,
                    _ => c,
                }))
            })
            .flatten();
        // The ids of a `text` source whose tokenizer declares its vocabulary (`x` and `y`
        // hold 0 to vocab - 1).
        let text_ids: Option<(i64, String)> = d.stmts.iter().find_map(|s| match s {
            DataStmt::Source { value, .. } => {
                text_vocab(value).map(|(v, span)| (v, self.sources.text(span).to_string()))
            }
            _ => None,
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
                    self.data_field(&mut f, value, &declared, ty.span, &given);
                    // A field that does not fit its own declaration has no reliable type: later
                    // uses of it would only repeat the error.
                    let fits = !self.diags[mark..].iter().any(Diagnostic::is_error);
                    // `y: i32 = y`: the generator's labels as they are.
                    if let (Some((k, source)), ExprKind::Name(column), Ty::Tensor(dt, shape)) =
                        (&labels, &value.kind, &declared)
                        && column.name == "y"
                        && !dt.is_float()
                        && fits
                        && shape.0.is_empty()
                    {
                        info.classes.push((name.name.clone(), *k, source.clone()));
                    }
                    match label_classes(value) {
                        Some((Some(k), span)) if fits => info.classes.push((
                            name.name.clone(),
                            k,
                            self.sources.text(span).to_string(),
                        )),
                        Some((None, span)) => {
                            info.unstated_classes.push((name.name.clone(), span));
                        }
                        _ => {}
                    }
                    if let (Some((v, tokenizer)), ExprKind::Name(column), Ty::Tensor(dt, _)) =
                        (&text_ids, &value.kind, &declared)
                        && ["x", "y"].contains(&column.name.as_str())
                        && !dt.is_float()
                        && fits
                    {
                        info.classes
                            .push((name.name.clone(), *v, tokenizer.clone()));
                    }
                    if let (Some((v, span)), Ty::Tensor(dt, _)) =
                        (tokenized_vocab(value), &declared)
                        && !dt.is_float()
                        && fits
                    {
                        let tokenizer = self.sources.text(span).to_string();
                        info.classes.push((name.name.clone(), v, tokenizer));
                    }
                    let ty_known = if fits { declared } else { Ty::Unknown };
                    info.fields
                        .push((name.name.clone(), ty_known, name.span.to(ty.span)));
                }
                DataStmt::Split {
                    name,
                    fraction,
                    of,
                    options,
                    span,
                } => {
                    let known_parent = info.sources.contains(&of.name)
                        || info.splits.contains(&of.name)
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
                            taken.push((of.name.clone(), v, *span));
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
                    for o in options {
                        self.data_option(&mut f, o);
                    }
                    info.splits.push(name.name.clone());
                }
                DataStmt::Setting(s) => self.data_setting(&mut f, s),
            }
        }
        info
    }

    /// A field's declared per-sample type (`f32[784]`, `i32`).
    pub(super) fn sample_type(&mut self, f: &mut Frame, t: &TypeExpr) -> Ty {
        match &t.kind {
            TypeKind::Tensor { dtype, shape } => {
                let shape = match shape {
                    Some(s) => match self.eval_shape(f, s, false) {
                        Some(s) => s,
                        None => return Ty::Unknown,
                    },
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

    /// A source expression: returns its columns, and whether columns are chosen by selectors.
    fn data_source(&mut self, f: &mut Frame, e: &Expr) -> Option<(Vec<&'static str>, bool)> {
        match &e.kind {
            ExprKind::Pipe { lhs, rhs } => {
                let left = self.data_source(f, lhs)?;
                match &rhs.kind {
                    ExprKind::Call { callee, args, .. } if matches!(&callee.kind, ExprKind::Name(n) if n.name == "join") =>
                    {
                        if args.len() != 1 {
                            self.emit(
                                Diagnostic::error(codes::ARGUMENT_COUNT, "`join` takes one source")
                                    .with_primary(rhs.span, "write `|> join(csv(…))`"),
                            );
                            return None;
                        }
                        let right = self.data_source(f, &args[0].value)?;
                        let mut cols = left.0;
                        cols.extend(right.0);
                        Some((cols, left.1 || right.1))
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
            ExprKind::Call {
                callee,
                args,
                args_span,
            } => {
                let ExprKind::Name(n) = &callee.kind else {
                    self.unknown_source(callee.span, "this");
                    return None;
                };
                let Some(source) = Source::from_name(&n.name) else {
                    self.unknown_source(n.span, &n.name);
                    return None;
                };
                let cols = source.columns();
                let vals: Vec<ArgVal> = args
                    .iter()
                    .map(|a| {
                        let tokenizer = a.name.as_ref().is_some_and(|n| n.name == "tokenizer");
                        ArgVal {
                            name: a.name.clone(),
                            ty: if tokenizer {
                                self.tokenizer(f, &a.value);
                                Ty::Unknown
                            } else {
                                self.expr(f, &a.value)
                            },
                            span: a.value.span,
                        }
                    })
                    .collect();
                self.bind_slots(&slots(source.params()), &vals, &n.name, *args_span)?;
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
                Some((cols.to_vec(), cols.is_empty()))
            }
            _ => {
                self.unknown_source(e.span, self.sources.text(e.span).to_string().as_str());
                None
            }
        }
    }

    /// A `text` source's tokenizer: `chars()`, `chars(vocab: 512)`.
    fn tokenizer(&mut self, f: &mut Frame, e: &Expr) {
        let (name, args, args_span) = match &e.kind {
            ExprKind::Call {
                callee,
                args,
                args_span,
            } => match &callee.kind {
                ExprKind::Name(n) => (n.name.as_str(), args.as_slice(), *args_span),
                _ => ("", args.as_slice(), *args_span),
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
            return;
        };
        let vals = self.eval_args(f, args);
        self.bind_slots(&slots(tokenizer.params()), &vals, name, args_span);
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

    /// A field's expression: a column (or selector) piped through transforms.
    fn data_field(
        &mut self,
        f: &mut Frame,
        e: &Expr,
        declared: &Ty,
        decl_span: Span,
        given: &Given,
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
        match &head.kind {
            ExprKind::Name(n) if columns.is_none_or(|c| c.contains(&n.name.as_str())) => {}
            ExprKind::Call {
                callee,
                args,
                args_span,
            } if selector(callee).is_some() => {
                let (n, selector) = selector(callee).expect("matched");
                let vals: Vec<ArgVal> = self.eval_args(f, args);
                if selector == Selector::Cols {
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
                } else {
                    self.bind_slots(&slots(selector.params()), &vals, &n.name, *args_span);
                    selected = (selector == Selector::Col).then_some(1);
                }
                if let Some(columns) = columns
                    && !table_like
                {
                    self.emit(
                        Diagnostic::error(codes::UNKNOWN_DATA_VOCABULARY, format!("`{}` selects columns of a table, but this data's sources have named columns", n.name))
                            .with_primary(callee.span, "not a table source")
                            .with_help(format!("use one of: {}", columns.join(", "))),
                    );
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
            image_shape.filter(|_| matches!(&head.kind, ExprKind::Name(n) if n.name == "image"));
        if let Some((shape, _)) = image {
            per_sample = Some(shape.clone());
        }
        for t in transforms {
            let (name, args, span) = match &t.kind {
                ExprKind::Name(n) => (n, &[][..], t.span),
                ExprKind::Call {
                    callee,
                    args,
                    args_span,
                } => match &callee.kind {
                    ExprKind::Name(n) => (n, args.as_slice(), *args_span),
                    _ => continue,
                },
                _ => continue,
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
                let bound = self.bind_slots(&slots(params), &vals, &name.name, span);
                let classes = bound.and_then(|b| b.into_iter().next().flatten());
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
                if transform == Transform::Label {
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
                let vals: Vec<ArgVal> = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let tokenizer = a.name.as_ref().map_or(i == 0, |n| n.name == "tokenizer");
                        ArgVal {
                            name: a.name.clone(),
                            ty: if tokenizer {
                                self.tokenizer(f, &a.value);
                                Ty::Unknown
                            } else {
                                self.expr(f, &a.value)
                            },
                            span: a.value.span,
                        }
                    })
                    .collect();
                let bound = self.bind_slots(&slots(params), &vals, &name.name, span);
                let length = bound.and_then(|b| b.into_iter().nth(1).flatten());
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
                continue;
            }
            let vals: Vec<ArgVal> = self.eval_args(f, args);
            if transform == Transform::Impute {
                continue;
            }
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
            self.bind_slots(&slots(params), &vals, &name.name, span);
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
            ExprKind::Str(s) => FLIP_AXES.contains(&s.as_str()),
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
                ExprKind::Str(s) => Some(s.as_str()),
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

    fn data_option(&mut self, f: &mut Frame, o: &Expr) {
        match &o.kind {
            ExprKind::Call {
                callee,
                args,
                args_span,
            } if matches!(&callee.kind, ExprKind::Name(n) if n.name == "shuffle") => {
                let vals: Vec<ArgVal> = self.eval_args(f, args);
                self.bind_slots(
                    &[Slot {
                        name: "seed",
                        optional: true,
                    }],
                    &vals,
                    "shuffle",
                    *args_span,
                );
            }
            _ => self.emit(
                Diagnostic::error(codes::SETTING, "unknown split option")
                    .with_primary(o.span, "not a split option")
                    .with_help("a split takes `shuffle(seed: 42)`"),
            ),
        }
    }

    fn data_setting(&mut self, f: &mut Frame, s: &Setting) {
        match (s.name.name.as_str(), &s.value) {
            ("shuffle", SettingValue::Call(args, span)) => {
                let vals: Vec<ArgVal> = self.eval_args(f, args);
                self.bind_slots(
                    &[Slot {
                        name: "seed",
                        optional: true,
                    }],
                    &vals,
                    "shuffle",
                    *span,
                );
            }
            ("seed", SettingValue::Values(v)) if v.len() == 1 => {
                let t = self.expr(f, &v[0]);
                if !matches!(&t, Ty::Int(d) if d.as_const().is_some_and(|c| c >= 0))
                    && !t.is_unknown()
                {
                    self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            "`seed` must be a non-negative whole number",
                        )
                        .with_primary(v[0].span, "not a non-negative integer"),
                    );
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
    matches!(&head.kind, ExprKind::Call { callee, .. } if selector(callee).is_some_and(|(_, s)| s == Selector::Cols))
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

/// How many classes a generator's `y` holds (0 to n - 1), and how the source was written; None
/// for other sources, regression targets, or counts that are not written as numbers.
fn generator_classes(written: &str, e: &Expr) -> Option<(i64, String)> {
    let ExprKind::Call { callee, args, .. } = &e.kind else {
        return None;
    };
    let ExprKind::Name(n) = &callee.kind else {
        return None;
    };
    let (param, position, default) = match n.name.as_str() {
        "xor" => return Some((2, written.to_string())),
        "spirals" => ("classes", 1, Some(2)),
        "blobs" => ("centers", 1, Some(3)),
        "copy_task" | "reverse_task" | "sort_task" => ("vocab", 2, None),
        _ => return None,
    };
    let named = args
        .iter()
        .find(|a| a.name.as_ref().is_some_and(|x| x.name == param));
    let arg = named.or_else(|| args.iter().filter(|a| a.name.is_none()).nth(position));
    let count = match arg.map(|a| &a.value.kind) {
        Some(ExprKind::Number {
            value,
            is_int: true,
        }) if *value >= 1.0 && *value <= i64::MAX as f64 => *value as i64,
        Some(_) => return None,
        None => default?,
    };
    Some((count, written.to_string()))
}

/// The vocabulary a `text` source's tokenizer declares as a number (`chars(vocab: 80)`,
/// `bpe(512)`, `bpe(file: "t.json", vocab: 512)`), with the tokenizer's span.
fn text_vocab(e: &Expr) -> Option<(i64, Span)> {
    let (source, args) = call(e)?;
    if Source::from_name(source) != Some(Source::Text) {
        return None;
    }
    let tokenizer = &args
        .iter()
        .find(|a| a.name.as_ref().is_some_and(|n| n.name == "tokenizer"))?
        .value;
    Some((declared_vocab(tokenizer)?, tokenizer.span))
}

/// The ids of a field that tokenizes a column (`col("t") |> tokenize(bpe(vocab: 512), …)`,
/// not followed by `mask`): the vocabulary its tokenizer declares, with the tokenizer's span.
fn tokenized_vocab(value: &Expr) -> Option<(i64, Span)> {
    let mut transforms = Vec::new();
    let mut head = value;
    while let ExprKind::Pipe { lhs, rhs } = &head.kind {
        transforms.push(&**rhs);
        head = lhs;
    }
    let (first, later) = transforms.split_last()?;
    if later
        .iter()
        .any(|t| matches!(&t.kind, ExprKind::Name(n) if Transform::from_name(&n.name) == Some(Transform::Mask)))
    {
        return None;
    }
    let (name, args) = call(first)?;
    if Transform::from_name(name) != Some(Transform::Tokenize) {
        return None;
    }
    let tokenizer = &args
        .iter()
        .enumerate()
        .find(|(i, a)| a.name.as_ref().map_or(*i == 0, |n| n.name == "tokenizer"))?
        .1
        .value;
    Some((declared_vocab(tokenizer)?, tokenizer.span))
}

/// The source a callee names.
fn source_of(callee: &Expr) -> Option<Source> {
    match &callee.kind {
        ExprKind::Name(n) => Source::from_name(&n.name),
        _ => None,
    }
}

/// The column selector a callee names, with its name.
fn selector(callee: &Expr) -> Option<(&Ident, Selector)> {
    match &callee.kind {
        ExprKind::Name(n) => Some((n, Selector::from_name(&n.name)?)),
        _ => None,
    }
}

fn call(e: &Expr) -> Option<(&str, &[Arg])> {
    match &e.kind {
        ExprKind::Call { callee, args, .. } => match &callee.kind {
            ExprKind::Name(n) => Some((n.name.as_str(), args.as_slice())),
            _ => None,
        },
        _ => None,
    }
}

/// The `vocab` a tokenizer call declares as a number (named, or its first positional argument).
fn declared_vocab(tokenizer: &Expr) -> Option<i64> {
    let (_, args) = call(tokenizer)?;
    let vocab = args
        .iter()
        .find(|a| a.name.as_ref().is_some_and(|n| n.name == "vocab"))
        .or_else(|| args.iter().find(|a| a.name.is_none()))?;
    match &vocab.value.kind {
        ExprKind::Number {
            value,
            is_int: true,
        } if *value >= 1.0 && *value <= i64::MAX as f64 => Some(*value as i64),
        _ => None,
    }
}

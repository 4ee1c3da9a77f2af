//! The values of a `data` block's calls, read into the typed spec (`data::spec`) from the
//! arguments the checker has bound: each source, tokenizer, selector and transform becomes its
//! typed value here, once. What the types cannot say (a two-character delimiter, a negative
//! count, a crop scale above 1) is a [`Wrong`] at the argument, which the checker reports.

use super::super::ArgVal;
use crate::data::spec::*;
use crate::prim::PrimParam;
use crate::prim::data::{Source, Tokenizer, Transform};
use crate::source::Span;
use crate::syntax::ast::*;

/// A value of the block that its call does not accept, where it is written.
pub(super) struct Wrong {
    pub span: Span,
    pub message: String,
}

impl Wrong {
    pub fn at(span: Span, message: impl Into<String>) -> Wrong {
        Wrong {
            span,
            message: message.into(),
        }
    }
}

type Res<T> = Result<T, Wrong>;

/// A value known before any data is read.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Const {
    Num(f64),
    Str(String),
    Bool(bool),
    /// A bare name, as in `impute(mean)`.
    Sym(String),
    List(Vec<Const>),
    /// `a..b`, half-open.
    Range(i64, i64),
}

impl Const {
    fn describe(&self) -> String {
        match self {
            Const::Num(v) => format!("the number {v}"),
            Const::Str(s) => format!("the string \"{s}\""),
            Const::Bool(b) => format!("`{b}`"),
            Const::Sym(s) => format!("`{s}`"),
            Const::List(_) => "a list".into(),
            Const::Range(a, b) => format!("the range {a}..{b}"),
        }
    }
}

/// Evaluates an argument made of literals, names, lists, ranges and arithmetic.
pub(super) fn eval(e: &Expr) -> Res<Const> {
    let wrong = |m: String| Wrong::at(e.span, m);
    match &e.kind {
        ExprKind::Number { value, .. } => Ok(Const::Num(*value)),
        ExprKind::Str(s) => Ok(Const::Str(s.to_string())),
        ExprKind::Bool(b) => Ok(Const::Bool(*b)),
        ExprKind::Name(n) => Ok(Const::Sym(n.name.to_string())),
        ExprKind::Unary {
            op: UnOp::Neg,
            expr,
        } => match eval(expr)? {
            Const::Num(v) => Ok(Const::Num(-v)),
            c => Err(wrong(format!("cannot negate {}", c.describe()))),
        },
        ExprKind::Binary { op, lhs, rhs, .. } => {
            let (Const::Num(a), Const::Num(b)) = (eval(lhs)?, eval(rhs)?) else {
                return Err(wrong(format!("`{}` needs two numbers here", op.symbol())));
            };
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::FloorDiv => (a / b).floor(),
                BinOp::Rem => a.rem_euclid(b),
                BinOp::Pow => a.powf(b),
                _ => return Err(wrong(format!("`{}` is not arithmetic", op.symbol()))),
            };
            if v.is_finite() {
                Ok(Const::Num(v))
            } else {
                Err(wrong(format!("`{}` gives {v}", op.symbol())))
            }
        }
        ExprKind::Range { lo, hi } => match (eval(lo)?, eval(hi)?) {
            (Const::Num(a), Const::Num(b)) if a.fract() == 0.0 && b.fract() == 0.0 => {
                Ok(Const::Range(a as i64, b as i64))
            }
            _ => Err(wrong("a range needs integer bounds".into())),
        },
        ExprKind::List(items) => items
            .iter()
            .map(|i| match i {
                ListItem::Expr(e) => eval(e),
                ListItem::Spread(n) => Err(Wrong::at(
                    n.span,
                    format!("cannot spread `{}` here", n.name),
                )),
            })
            .collect::<Result<_, _>>()
            .map(Const::List),
        _ => Err(wrong(
            "not a constant: write numbers, strings, names, lists or ranges".into(),
        )),
    }
}

/// A whole number that fits in `usize`.
fn count(c: &Const, what: &str) -> Result<usize, String> {
    match c {
        Const::Num(v) if v.fract() == 0.0 && *v >= 0.0 && *v < 2f64.powi(53) => Ok(*v as usize),
        _ => Err(format!(
            "{what} must be a whole number ≥ 0, found {}",
            c.describe()
        )),
    }
}

fn number(c: &Const, what: &str) -> Result<f64, String> {
    match c {
        Const::Num(v) => Ok(*v),
        _ => Err(format!("{what} must be a number, found {}", c.describe())),
    }
}

/// A call's arguments in parameter order, as the checker bound them.
pub(super) struct Bound<'a> {
    what: String,
    call: Span,
    slots: Vec<(&'static str, Option<&'a Expr>)>,
}

impl<'a> Bound<'a> {
    /// `bound` is the checker's binding of `args` to `params` (each value in parameter order).
    pub fn new(
        what: &str,
        call: Span,
        params: &[PrimParam],
        args: &'a [Arg],
        bound: Vec<Option<ArgVal>>,
    ) -> Bound<'a> {
        let slots = params
            .iter()
            .zip(bound)
            .map(|(p, v)| {
                let expr = v.and_then(|v| {
                    args.iter()
                        .find(|a| a.value.span == v.span)
                        .map(|a| &a.value)
                });
                (p.name, expr)
            })
            .collect();
        Bound {
            what: what.to_string(),
            call,
            slots,
        }
    }

    /// The expression given for `name`.
    pub fn expr(&self, name: &str) -> Option<&'a Expr> {
        self.slots
            .iter()
            .find(|(p, _)| *p == name)
            .and_then(|(_, e)| *e)
    }

    /// The value given for `name`, with where it is written.
    fn get(&self, name: &str) -> Res<Option<(Const, Span)>> {
        self.expr(name)
            .map(|e| eval(e).map(|c| (c, e.span)))
            .transpose()
    }

    fn required(&self, name: &str) -> Res<(Const, Span)> {
        self.get(name)?
            .ok_or_else(|| Wrong::at(self.call, format!("`{}` needs `{name}`", self.what)))
    }

    fn what(&self, name: &str) -> String {
        format!("`{}` of `{}`", name, self.what)
    }

    fn count(&self, name: &str, default: Option<usize>) -> Res<usize> {
        match (self.get(name)?, default) {
            (Some((c, span)), _) => count(&c, &self.what(name)).map_err(|m| Wrong::at(span, m)),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(Wrong::at(
                self.call,
                format!("`{}` needs `{name}`", self.what),
            )),
        }
    }

    fn positive(&self, name: &str, default: Option<usize>) -> Res<usize> {
        match self.count(name, default)? {
            0 => Err(Wrong::at(
                self.expr(name).map_or(self.call, |e| e.span),
                format!("{} must be at least 1", self.what(name)),
            )),
            n => Ok(n),
        }
    }

    /// A positive count, or None when not given.
    fn positive_opt(&self, name: &str) -> Res<Option<usize>> {
        match self.expr(name) {
            None => Ok(None),
            Some(_) => self.positive(name, None).map(Some),
        }
    }

    fn number(&self, name: &str) -> Res<Option<f64>> {
        self.get(name)?
            .map(|(c, span)| number(&c, &self.what(name)).map_err(|m| Wrong::at(span, m)))
            .transpose()
    }

    fn non_negative(&self, name: &str, default: f64) -> Res<f64> {
        let v = self.number(name)?.unwrap_or(default);
        if v >= 0.0 {
            Ok(v)
        } else {
            Err(Wrong::at(
                self.expr(name).map_or(self.call, |e| e.span),
                format!("{} must not be negative, found {v}", self.what(name)),
            ))
        }
    }

    fn text(&self, name: &str) -> Res<String> {
        match self.required(name)? {
            (Const::Str(s), _) => Ok(s),
            (c, span) => Err(Wrong::at(
                span,
                format!(
                    "{} must be a string, found {}",
                    self.what(name),
                    c.describe()
                ),
            )),
        }
    }

    /// A flag, false when not given.
    fn flag(&self, name: &str) -> Res<bool> {
        match self.get(name)? {
            None => Ok(false),
            Some((Const::Bool(b), _)) => Ok(b),
            Some((c, span)) => Err(Wrong::at(
                span,
                format!(
                    "{} must be true or false, found {}",
                    self.what(name),
                    c.describe()
                ),
            )),
        }
    }

    /// A categorical option given as a bare name or a string (`unknown: bucket`).
    fn option(&self, name: &str) -> Res<Option<String>> {
        match self.get(name)? {
            None => Ok(None),
            Some((Const::Sym(s) | Const::Str(s), _)) => Ok(Some(s)),
            Some((c, span)) => Err(Wrong::at(
                span,
                format!("{} must be a name, found {}", self.what(name), c.describe()),
            )),
        }
    }

    pub fn seed(&self) -> Res<Option<u64>> {
        Ok(self
            .get("seed")?
            .map(|(c, span)| count(&c, &self.what("seed")).map_err(|m| Wrong::at(span, m)))
            .transpose()?
            .map(|s| s as u64))
    }
}

/// A source call, its arguments bound; `tokenizer` is a `text` source's, read apart.
pub(super) fn source(src: Source, b: &Bound, tokenizer: Option<TokenizerSpec>) -> Res<SourceSpec> {
    let generate = |generator| -> Res<SourceSpec> {
        Ok(SourceSpec::Generate {
            generator,
            seed: b.seed()?,
        })
    };
    let tokens = |task| -> Res<SourceSpec> {
        let vocab = b.positive("vocab", None)?;
        if vocab > i32::MAX as usize {
            return Err(Wrong::at(
                b.expr("vocab").map_or(b.call, |e| e.span),
                format!("`vocab` of `{}` must fit in i32", b.what),
            ));
        }
        generate(Generator::Tokens {
            task,
            n: b.count("n", None)?,
            length: b.positive("length", None)?,
            vocab,
        })
    };
    match src {
        Source::Text => {
            let Some(tokenizer) = tokenizer else {
                return Err(Wrong::at(
                    b.call,
                    "`text` needs `tokenizer:`, such as `tokenizer: chars()`",
                ));
            };
            let context = b.positive("context", None)?;
            Ok(SourceSpec::Text {
                path: b.text("path")?,
                tokenizer,
                context,
                stride: b.positive("stride", Some(context))?,
                shuffle: b.flag("shuffle")?,
            })
        }
        Source::Csv => {
            let delimiter = match b.get("delimiter")? {
                None => b',',
                Some((Const::Str(s), _)) if matches!(s.as_bytes(), [d] if d.is_ascii() && !matches!(d, b'"' | b'\n' | b'\r')) => {
                    s.as_bytes()[0]
                }
                Some((c, span)) => {
                    return Err(Wrong::at(
                        span,
                        format!(
                            "`delimiter` must be one ASCII character other than a quote or a line break, found {}",
                            c.describe()
                        ),
                    ));
                }
            };
            Ok(SourceSpec::Csv {
                path: b.text("path")?,
                header: b.flag("header")?,
                delimiter,
                skip: b.count("skip", Some(0))?,
            })
        }
        Source::Idx => Ok(SourceSpec::Idx {
            images: b.text("images")?,
            labels: b.text("labels")?,
        }),
        Source::Images => images(b),
        Source::Npy => Ok(SourceSpec::Npy(b.text("path")?)),
        Source::Npz => Ok(SourceSpec::Npz(b.text("path")?)),
        Source::Xor => generate(Generator::Xor {
            n: b.count("n", None)?,
            noise: b.non_negative("noise", 0.0)?,
        }),
        Source::Spirals => generate(Generator::Spirals {
            n: b.count("n", None)?,
            classes: b.positive("classes", Some(2))?,
            noise: b.non_negative("noise", 0.0)?,
        }),
        Source::Blobs => generate(Generator::Blobs {
            n: b.count("n", None)?,
            centers: b.positive("centers", Some(3))?,
            features: b.positive("features", Some(2))?,
            std: b.non_negative("std", 1.0)?,
        }),
        Source::Sine => generate(Generator::Sine {
            n: b.count("n", None)?,
            length: b.positive("length", None)?,
        }),
        Source::CopyTask => tokens(Task::Copy),
        Source::ReverseTask => tokens(Task::Reverse),
        Source::SortTask => tokens(Task::Sort),
    }
}

/// `images(path, size: [H, W], channels: 1 | 3, skip_bad: false)`; three channels by default.
fn images(b: &Bound) -> Res<SourceSpec> {
    let size = match b.required("size")? {
        (Const::List(items), span) if items.len() == 2 => items
            .iter()
            .map(|c| match count(c, "a dimension of `size`") {
                Err(m) => Err(Wrong::at(span, m)),
                Ok(0) => Err(Wrong::at(span, "a dimension of `size` must be at least 1")),
                Ok(n) if n > 1 << 16 => Err(Wrong::at(
                    span,
                    format!("a dimension of `size` may be at most 65536, found {n}"),
                )),
                Ok(n) => Ok(n),
            })
            .collect::<Res<Vec<usize>>>()?,
        (c, span) => {
            return Err(Wrong::at(
                span,
                format!(
                    "`size` of `images` is `[height, width]`, found {}",
                    c.describe()
                ),
            ));
        }
    };
    let channels = b.count("channels", Some(3))?;
    let at = b.expr("channels").map_or(b.call, |e| e.span);
    if channels != 1 && channels != 3 {
        return Err(Wrong::at(
            at,
            format!("`channels` of `images` is 1 (grey) or 3 (RGB), found {channels}"),
        ));
    }
    if channels * size[0] * size[1] > MAX_IMAGE_VALUES {
        return Err(Wrong::at(
            b.call,
            format!(
                "`images` of {channels} × {} × {} values per sample: at most {MAX_IMAGE_VALUES} are read",
                size[0], size[1]
            ),
        ));
    }
    Ok(SourceSpec::Images {
        path: b.text("path")?,
        layout: Layout {
            height: size[0],
            width: size[1],
            channels,
            skip_bad: b.flag("skip_bad")?,
        },
    })
}

/// A tokenizer: `chars()`, `chars(vocab: N)`, `bpe(vocab: N)`, `bpe(file: "tokenizer.json")`.
pub(super) fn tokenizer(tokenizer: Tokenizer, b: &Bound) -> Res<TokenizerSpec> {
    let vocab = b.positive_opt("vocab")?;
    if vocab.is_some_and(|v| v > i32::MAX as usize) {
        return Err(Wrong::at(
            b.expr("vocab").map_or(b.call, |e| e.span),
            format!("`vocab` of `{}` must fit in i32", b.what),
        ));
    }
    match tokenizer {
        Tokenizer::Chars => Ok(TokenizerSpec::Chars { vocab }),
        Tokenizer::Bpe => match (b.expr("file"), vocab) {
            (Some(_), vocab) => Ok(TokenizerSpec::File {
                path: b.text("file")?,
                vocab,
                json: None,
            }),
            (None, Some(vocab)) => Ok(TokenizerSpec::Bpe { vocab }),
            (None, None) => Err(Wrong::at(
                b.call,
                "`bpe` needs `vocab: N` to train one, or `file: \"tokenizer.json\"` to load one",
            )),
        },
    }
}

/// `col(index)`: one column, by index or header name.
pub(super) fn col(b: &Bound) -> Res<Column> {
    let r = match b.required("index")? {
        (Const::Str(s), _) => TableRef::Name(s),
        (c, span) => {
            TableRef::Index(count(&c, "the column index").map_err(|m| Wrong::at(span, m))?)
        }
    };
    Ok(Column::Table {
        refs: vec![r],
        scalar: true,
    })
}

/// `cols(…)`: column indices, ranges and names, in order.
pub(super) fn cols(args: &[Arg], call: Span) -> Res<Column> {
    let mut refs = Vec::new();
    for a in args {
        if let Some(n) = a.name.as_ref().filter(|n| n.name != "columns") {
            return Err(Wrong::at(
                n.span,
                "`cols` takes column indices, ranges and names",
            ));
        }
        table_refs(&eval(&a.value)?, &mut refs).map_err(|m| Wrong::at(a.value.span, m))?;
    }
    if refs.is_empty() {
        return Err(Wrong::at(call, "`cols` selects no column"));
    }
    Ok(Column::Table {
        refs,
        scalar: false,
    })
}

fn table_refs(c: &Const, out: &mut Vec<TableRef>) -> Result<(), String> {
    match c {
        Const::Str(s) => out.push(TableRef::Name(s.clone())),
        Const::Range(a, b) if *a >= 0 && b.saturating_sub(*a) <= 1 << 24 => {
            out.extend((*a..*b).map(|i| TableRef::Index(i as usize)))
        }
        Const::Range(a, b) => return Err(format!("`{a}..{b}` is not a range of columns")),
        Const::List(items) => {
            for i in items {
                table_refs(i, out)?;
            }
        }
        c => out.push(TableRef::Index(count(c, "a column index")?)),
    }
    Ok(())
}

/// `impute(knn(k: N))`'s inner call, bound.
pub(super) fn knn(b: &Bound) -> Res<Kind> {
    Ok(Kind::Impute(Strategy::Knn(b.positive("k", Some(5))?)))
}

/// A transform other than `mask` (a flag of the `tokenize` before it), its arguments bound;
/// `tokenizer` is a `tokenize`'s, read apart.
pub(super) fn transform(t: Transform, b: &Bound, tokenizer: Option<TokenizerSpec>) -> Res<Kind> {
    match t {
        Transform::Flatten => Ok(Kind::Flatten),
        Transform::MinMax => Ok(Kind::MinMax),
        Transform::Standardize => Ok(Kind::Standardize),
        Transform::RandomFlip => match b.option("axis")?.as_deref() {
            None | Some("horizontal") => Ok(Kind::Flip(FlipAxes::Horizontal)),
            Some("vertical") => Ok(Kind::Flip(FlipAxes::Vertical)),
            Some("both") => Ok(Kind::Flip(FlipAxes::Both)),
            Some(o) => Err(Wrong::at(
                b.call,
                format!(
                    "`random_flip({o})`: write `random_flip` (horizontal), `random_flip(vertical)` or `random_flip(both)`"
                ),
            )),
        },
        Transform::RandomRotation => Ok(Kind::Rotate(b.non_negative("degrees", 0.0)?)),
        Transform::RandomResizedCrop => {
            let pair = |n: &str, default: (f64, f64)| -> Res<(f64, f64)> {
                let what = b.what(n);
                match b.get(n)? {
                    None => Ok(default),
                    Some((Const::List(items), span)) if items.len() == 2 => {
                        let (lo, hi) = (
                            number(&items[0], &what).map_err(|m| Wrong::at(span, m))?,
                            number(&items[1], &what).map_err(|m| Wrong::at(span, m))?,
                        );
                        if lo > 0.0 && lo <= hi {
                            Ok((lo, hi))
                        } else {
                            Err(Wrong::at(
                                span,
                                format!(
                                    "{what} must be `[low, high]` with 0 < low ≤ high, found [{lo}, {hi}]"
                                ),
                            ))
                        }
                    }
                    Some((c, span)) => Err(Wrong::at(
                        span,
                        format!("{what} is a pair `[low, high]`, found {}", c.describe()),
                    )),
                }
            };
            let scale = pair("scale", (0.08, 1.0))?;
            if scale.1 > 1.0 {
                return Err(Wrong::at(
                    b.expr("scale").map_or(b.call, |e| e.span),
                    format!(
                        "`scale` of `random_resized_crop` is a share of the image's area, at most 1, found {}",
                        scale.1
                    ),
                ));
            }
            Ok(Kind::Crop(CropSpec {
                scale,
                ratio: pair("ratio", (3.0 / 4.0, 4.0 / 3.0))?,
            }))
        }
        Transform::ColorJitter => Ok(Kind::Jitter {
            brightness: b.non_negative("brightness", 0.0)?,
            contrast: b.non_negative("contrast", 0.0)?,
        }),
        Transform::Scale => {
            Ok(Kind::Scale(b.number("factor")?.ok_or_else(|| {
                Wrong::at(b.call, "`scale` needs `factor`")
            })?))
        }
        Transform::OneHot | Transform::Label => {
            let classes = b.positive_opt("classes")?;
            let unknown_bucket = match b.option("unknown")?.as_deref() {
                None | Some("error") => false,
                Some("bucket") => true,
                Some(o) => {
                    return Err(Wrong::at(
                        b.call,
                        format!(
                            "`unknown: {o}`: write `unknown: error` (the default) or `unknown: bucket`"
                        ),
                    ));
                }
            };
            let missing = match b.option("missing")?.as_deref() {
                None | Some("error") => Missing::Error,
                Some("category") => Missing::Category,
                Some("most_frequent") => Missing::MostFrequent,
                Some(o) => {
                    return Err(Wrong::at(
                        b.call,
                        format!(
                            "`missing: {o}`: write `missing: error` (the default), `missing: category` or `missing: most_frequent`"
                        ),
                    ));
                }
            };
            let names = b.expr("unknown").is_some() || b.expr("missing").is_some();
            match (t, classes) {
                (Transform::OneHot, Some(k)) if !names => Ok(Kind::OneHot(k)),
                _ => Ok(Kind::Categories(Encoder {
                    one_hot: t == Transform::OneHot,
                    classes,
                    unknown_bucket,
                    missing,
                    width: 0,
                })),
            }
        }
        Transform::Tokenize => {
            let Some(spec) = tokenizer else {
                return Err(Wrong::at(
                    b.call,
                    "`tokenize` needs one tokenizer, as in `tokenize(chars(), length: 32)`",
                ));
            };
            Ok(Kind::Tokens(Tokens {
                spec,
                length: b.positive("length", None)?,
                mask: false,
            }))
        }
        Transform::Reshape => match b.required("shape")? {
            (Const::List(items), span) => items
                .iter()
                .map(|c| count(c, "a dimension of `reshape`").map_err(|m| Wrong::at(span, m)))
                .collect::<Res<_>>()
                .map(Kind::Reshape),
            (c, span) => Err(Wrong::at(
                span,
                format!(
                    "`reshape` takes a list such as `[1, 28, 28]`, found {}",
                    c.describe()
                ),
            )),
        },
        Transform::Impute => {
            let strategy = match b.get("strategy")? {
                None => None,
                Some((Const::Sym(s) | Const::Str(s), span)) => Some((s, span)),
                Some((c, span)) => {
                    return Err(Wrong::at(
                        span,
                        format!(
                            "the strategy of `impute` is mean, median, knn(k: N) or constant, found {}",
                            c.describe()
                        ),
                    ));
                }
            };
            let constant = b.number("constant")?;
            match (strategy, constant) {
                (None, Some(c)) => Ok(Kind::Impute(Strategy::Constant(c))),
                (Some((s, _)), Some(c)) if s == "constant" => {
                    Ok(Kind::Impute(Strategy::Constant(c)))
                }
                (None, None) => Ok(Kind::Impute(Strategy::Mean)),
                (Some((s, span)), None) => match s.as_str() {
                    "mean" => Ok(Kind::Impute(Strategy::Mean)),
                    "median" => Ok(Kind::Impute(Strategy::Median)),
                    "constant" => Err(Wrong::at(
                        span,
                        "`impute(constant)` needs a value: `impute(constant: 0)`",
                    )),
                    _ => Err(Wrong::at(
                        span,
                        format!(
                            "`{s}` is not an impute strategy: use mean, median or `constant: VALUE`"
                        ),
                    )),
                },
                (Some((s, span)), Some(_)) => Err(Wrong::at(
                    span,
                    format!("`impute({s})` takes no `constant`: write `impute(constant: VALUE)`"),
                )),
            }
        }
        Transform::ClipOutliers => {
            let positive = |n: &str| -> Res<Option<f64>> {
                match b.number(n)? {
                    Some(v) if v <= 0.0 => Err(Wrong::at(
                        b.expr(n).map_or(b.call, |e| e.span),
                        format!("`{n}` of `clip_outliers` must be positive, found {v}"),
                    )),
                    v => Ok(v),
                }
            };
            match (positive("z")?, positive("iqr")?) {
                (Some(_), Some(_)) => Err(Wrong::at(
                    b.call,
                    "`clip_outliers` takes `z` or `iqr`, not both",
                )),
                (Some(z), None) => Ok(Kind::Clip(Clip::Z(z))),
                (None, Some(k)) => Ok(Kind::Clip(Clip::Iqr(k))),
                (None, None) => Ok(Kind::Clip(Clip::Z(3.0))),
            }
        }
        Transform::RandomShift => Ok(Kind::Shift(b.count("pixels", None)?)),
        Transform::GaussianNoise => Ok(Kind::Noise(b.non_negative("std", 0.0)?)),
        Transform::Mask => Err(Wrong::at(
            b.call,
            "`mask` follows `tokenize(…)`: it marks the ids of the text (1) and the padding (0)",
        )),
    }
}

/// Adds `kind` (written at `span`) after `steps`, by the rules of a transform chain: `tokenize`
/// and the encoders of category names come first, nothing reshapes the one vector a `one_hot`
/// of names gives, augmentations come after every encoding; `mask` is a flag of its `tokenize`.
/// `width` is the declared number of values per sample (a `one_hot` of names gives them all).
pub(super) fn push_step(
    steps: &mut Vec<Kind>,
    mut kind: Kind,
    column: &Column,
    width: usize,
    span: Span,
) -> Res<()> {
    if let Kind::Tokens(_) = &kind {
        if !steps.is_empty() {
            return Err(Wrong::at(
                span,
                "`tokenize` must come first, right after the column",
            ));
        }
        if !matches!(column, Column::Table { scalar: true, .. }) {
            return Err(Wrong::at(
                span,
                "`tokenize` reads the text of one column: `col(\"text\")`",
            ));
        }
    }
    let name = kind.name();
    if let Kind::Categories(e) = &mut kind {
        if !steps.is_empty() {
            return Err(Wrong::at(
                span,
                format!("`{name}` of category names must come first, right after the column"),
            ));
        }
        if e.one_hot {
            e.width = width;
        }
    }
    if let Some(Kind::Categories(e)) = steps.first()
        && e.one_hot
        && matches!(kind, Kind::Flatten | Kind::Reshape(_) | Kind::OneHot(_))
    {
        return Err(Wrong::at(
            span,
            format!(
                "`{name}` cannot follow a `one_hot` of category names, which gives one vector per sample"
            ),
        ));
    }
    if let Kind::OneHot(_) | Kind::Categories(_) = kind
        && let Some(a) = steps.iter().find(|s| s.is_augmentation())
    {
        return Err(Wrong::at(
            span,
            format!(
                "`one_hot` cannot follow the augmentation `{}`: put augmentations last",
                a.name()
            ),
        ));
    }
    steps.push(kind);
    Ok(())
}

/// `mask` after the steps so far: the `tokenize` before it gives the padding mask instead.
pub(super) fn push_mask(steps: &mut [Kind], span: Span) -> Res<()> {
    match steps.last_mut() {
        Some(Kind::Tokens(t)) if !t.mask => {
            t.mask = true;
            Ok(())
        }
        _ => Err(Wrong::at(
            span,
            "`mask` follows `tokenize(…)`: it marks the ids of the text (1) and the padding (0)",
        )),
    }
}

/// `array(name)`: a named array of an `npz` file.
pub(super) fn array(b: &Bound) -> Res<Column> {
    Ok(Column::Named(b.text("name")?))
}

//! A `data` block's statements as plain values: sources with their arguments bound, fields with
//! their column and transforms, splits and settings. The checker has accepted the block already;
//! what it cannot see (a two-character delimiter, a negative count, `one_hot` after an
//! augmentation) is reported here.

use super::augment::{CropSpec, FlipAxes};
use super::categories::{Encoder, Missing};
use super::generate::{Generator, Task};
use super::pipeline::{Clip, Column, Field, Kind, Step, Strategy, TableRef, Tokens};
use super::text::TokenizerSpec;
use crate::ir::DType;
use crate::prim::PrimParam;
use crate::prim::data::{Selector, Source, Tokenizer, Transform};
use crate::syntax::ast::*;

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

/// Evaluates an expression made of literals, names, lists, ranges and arithmetic.
pub(super) fn eval(e: &Expr) -> Result<Const, String> {
    match &e.kind {
        ExprKind::Number { value, .. } => Ok(Const::Num(*value)),
        ExprKind::Str(s) => Ok(Const::Str(s.clone())),
        ExprKind::Bool(b) => Ok(Const::Bool(*b)),
        ExprKind::Name(n) => Ok(Const::Sym(n.name.clone())),
        ExprKind::Unary {
            op: UnOp::Neg,
            expr,
        } => match eval(expr)? {
            Const::Num(v) => Ok(Const::Num(-v)),
            c => Err(format!("cannot negate {}", c.describe())),
        },
        ExprKind::Binary { op, lhs, rhs, .. } => {
            let (Const::Num(a), Const::Num(b)) = (eval(lhs)?, eval(rhs)?) else {
                return Err(format!("`{}` needs two numbers here", op.symbol()));
            };
            let v = match op {
                BinOp::Add => a + b,
                BinOp::Sub => a - b,
                BinOp::Mul => a * b,
                BinOp::Div => a / b,
                BinOp::FloorDiv => (a / b).floor(),
                BinOp::Rem => a.rem_euclid(b),
                BinOp::Pow => a.powf(b),
                _ => return Err(format!("`{}` is not arithmetic", op.symbol())),
            };
            if v.is_finite() {
                Ok(Const::Num(v))
            } else {
                Err(format!("`{}` gives {v}", op.symbol()))
            }
        }
        ExprKind::Range { lo, hi } => match (eval(lo)?, eval(hi)?) {
            (Const::Num(a), Const::Num(b)) if a.fract() == 0.0 && b.fract() == 0.0 => {
                Ok(Const::Range(a as i64, b as i64))
            }
            _ => Err("a range needs integer bounds".into()),
        },
        ExprKind::List(items) => items
            .iter()
            .map(|i| match i {
                ListItem::Expr(e) => eval(e),
                ListItem::Spread(n) => Err(format!("cannot spread `{}` here", n.name)),
            })
            .collect::<Result<_, _>>()
            .map(Const::List),
        _ => Err("not a constant: write numbers, strings, names, lists or ranges".into()),
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

fn string(c: &Const, what: &str) -> Result<String, String> {
    match c {
        Const::Str(s) => Ok(s.clone()),
        _ => Err(format!("{what} must be a string, found {}", c.describe())),
    }
}

/// Arguments matched to parameters by the rule the checker applied ([`crate::bind::match_args`]).
struct Bound {
    what: String,
    slots: Vec<(&'static str, Option<Const>)>,
}

/// Arguments bound to the parameters the catalogue (`prim::data`) declares.
fn bind(what: &str, params: &[PrimParam], args: &[Arg]) -> Result<Bound, String> {
    let params: Vec<&'static str> = params.iter().map(|p| p.name).collect();
    let matched = crate::bind::match_args(
        &params,
        args.iter()
            .map(|a| a.name.as_ref().map(|n| n.name.as_str())),
    );
    if let Some(p) = matched.problems.first() {
        return Err(match *p {
            crate::bind::Problem::TooMany { .. } => {
                format!("`{what}` takes at most {} arguments", params.len())
            }
            crate::bind::Problem::Unknown { arg } => format!(
                "`{what}` has no parameter `{}`",
                args[arg].name.as_ref().map_or("", |n| n.name.as_str())
            ),
            crate::bind::Problem::Twice { param, .. } => {
                format!("`{what}`: `{}` is given twice", params[param])
            }
        });
    }
    let slots = params
        .iter()
        .zip(&matched.slots)
        .map(|(p, a)| {
            let value = a
                .map(|i| eval(&args[i].value).map_err(|e| format!("`{what}`: {e}")))
                .transpose()?;
            Ok((*p, value))
        })
        .collect::<Result<_, String>>()?;
    Ok(Bound {
        what: what.to_string(),
        slots,
    })
}

impl Bound {
    fn get(&self, name: &str) -> Option<&Const> {
        self.slots
            .iter()
            .find(|(p, _)| *p == name)
            .and_then(|(_, v)| v.as_ref())
    }

    fn required(&self, name: &str) -> Result<&Const, String> {
        self.get(name)
            .ok_or_else(|| format!("`{}` needs `{name}`", self.what))
    }

    fn what(&self, name: &str) -> String {
        format!("`{}` of `{}`", name, self.what)
    }

    fn count(&self, name: &str, default: Option<usize>) -> Result<usize, String> {
        match (self.get(name), default) {
            (Some(c), _) => count(c, &self.what(name)),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("`{}` needs `{name}`", self.what)),
        }
    }

    fn positive(&self, name: &str, default: Option<usize>) -> Result<usize, String> {
        match self.count(name, default)? {
            0 => Err(format!("{} must be at least 1", self.what(name))),
            n => Ok(n),
        }
    }

    fn non_negative(&self, name: &str, default: f64) -> Result<f64, String> {
        let v = match self.get(name) {
            Some(c) => number(c, &self.what(name))?,
            None => default,
        };
        if v >= 0.0 {
            Ok(v)
        } else {
            Err(format!(
                "{} must not be negative, found {v}",
                self.what(name)
            ))
        }
    }

    fn text(&self, name: &str) -> Result<String, String> {
        string(self.required(name)?, &self.what(name))
    }

    fn seed(&self) -> Result<Option<u64>, String> {
        self.get("seed")
            .map(|c| count(c, &self.what("seed")).map(|s| s as u64))
            .transpose()
    }
}

/// Where the samples of one source statement come from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SourceSpec {
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
        layout: super::images::Layout,
    },
    /// Row by row: the right side's table columns are numbered after the left's.
    Join(Box<SourceSpec>, Box<SourceSpec>),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct SplitSpec {
    pub name: String,
    pub fraction: f64,
    pub parent: String,
    /// `shuffle` (None inside: the block's seed) or `shuffle(seed: N)`; None: not shuffled.
    pub shuffle: Option<Option<u64>>,
}

/// A data block, read.
pub(super) struct Spec {
    pub sources: Vec<(String, SourceSpec)>,
    pub fields: Vec<Field>,
    pub splits: Vec<SplitSpec>,
    /// `seed N`.
    pub seed: Option<u64>,
    /// `shuffle(seed: N)`; `Some(None)` for a bare `shuffle`.
    pub shuffle: Option<Option<u64>>,
}

/// Reads a data block. Errors are messages about the `.nnl` file.
pub(super) fn read(d: &DataDecl) -> Result<Spec, String> {
    let mut spec = Spec {
        sources: Vec::new(),
        fields: Vec::new(),
        splits: Vec::new(),
        seed: None,
        shuffle: None,
    };
    for s in &d.stmts {
        match s {
            DataStmt::Source { name, value, .. } => {
                if spec.sources.iter().any(|(n, _)| *n == name.name) {
                    return Err(format!("the source `{}` is defined twice", name.name));
                }
                let src = source(value).map_err(|e| format!("source `{}`: {e}", name.name))?;
                spec.sources.push((name.name.clone(), src));
            }
            DataStmt::Field {
                name, ty, value, ..
            } => {
                let f = field(&name.name, name.span.start as usize, ty, value)
                    .map_err(|e| format!("field `{}`: {e}", name.name))?;
                spec.fields.push(f);
            }
            DataStmt::Split {
                name,
                fraction,
                of,
                options,
                ..
            } => {
                let what = format!("split `{}`", name.name);
                let fraction = match eval(fraction) {
                    Ok(Const::Num(v)) if v > 0.0 && v < 1.0 => v,
                    _ => return Err(format!("{what}: the fraction must be a number in (0, 1)")),
                };
                let mut shuffle = None;
                for o in options {
                    shuffle = Some(shuffle_option(o).map_err(|e| format!("{what}: {e}"))?);
                }
                spec.splits.push(SplitSpec {
                    name: name.name.clone(),
                    fraction,
                    parent: of.name.clone(),
                    shuffle,
                });
            }
            DataStmt::Setting(s) => match (s.name.name.as_str(), &s.value) {
                ("seed", SettingValue::Values(v)) if v.len() == 1 => {
                    let c = eval(&v[0]).map_err(|e| format!("`seed`: {e}"))?;
                    spec.seed = Some(count(&c, "`seed`")? as u64);
                }
                ("shuffle", SettingValue::Call(args, _)) => {
                    spec.shuffle = Some(bind("shuffle", SHUFFLE, args)?.seed()?);
                }
                (name, _) => return Err(format!("`{name}` is not a data setting")),
            },
        }
    }
    if spec.fields.is_empty() {
        return Err("the data block declares no fields".into());
    }
    Ok(spec)
}

/// The arguments of the `shuffle` setting and split option.
const SHUFFLE: &[PrimParam] = &[PrimParam::opt("seed")];

/// A split's option: `shuffle` or `shuffle(seed: N)`.
fn shuffle_option(o: &Expr) -> Result<Option<u64>, String> {
    match &o.kind {
        ExprKind::Name(n) if n.name == "shuffle" => Ok(None),
        ExprKind::Call { callee, args, .. } if matches!(&callee.kind, ExprKind::Name(n) if n.name == "shuffle") => {
            bind("shuffle", SHUFFLE, args)?.seed()
        }
        _ => Err("the only split option is `shuffle(seed: N)`".into()),
    }
}

fn callee(e: &Expr) -> Option<(&str, &[Arg])> {
    match &e.kind {
        ExprKind::Name(n) => Some((&n.name, &[])),
        ExprKind::Call { callee, args, .. } => match &callee.kind {
            ExprKind::Name(n) => Some((&n.name, args)),
            _ => None,
        },
        _ => None,
    }
}

fn source(e: &Expr) -> Result<SourceSpec, String> {
    if let ExprKind::Pipe { lhs, rhs } = &e.kind {
        let left = source(lhs)?;
        return match callee(rhs) {
            Some(("join", [arg])) if arg.name.is_none() => {
                let right = source(&arg.value)?;
                if [&left, &right]
                    .iter()
                    .any(|s| matches!(s, SourceSpec::Text { .. }))
                {
                    return Err(
                        "a `text` source cannot be joined: its samples are windows of its text"
                            .into(),
                    );
                }
                if [&left, &right]
                    .iter()
                    .any(|s| matches!(s, SourceSpec::Images { .. }))
                {
                    return Err(
                        "an `images` source cannot be joined: its samples are the files of its folders"
                            .into(),
                    );
                }
                Ok(SourceSpec::Join(Box::new(left), Box::new(right)))
            }
            _ => Err("only `|> join(SOURCE)` may follow a source".into()),
        };
    }
    let Some((name, args)) = callee(e) else {
        return Err("not a source: write a call such as `csv(\"file.csv\")`".into());
    };
    let Some(src) = Source::from_name(name) else {
        return Err(format!("`{name}` is not a data source"));
    };
    let tokens = |task| -> Result<SourceSpec, String> {
        let b = bind(name, src.params(), args)?;
        let vocab = b.positive("vocab", None)?;
        if vocab > i32::MAX as usize {
            return Err(format!("`vocab` of `{name}` must fit in i32"));
        }
        Ok(SourceSpec::Generate {
            generator: Generator::Tokens {
                task,
                n: b.count("n", None)?,
                length: b.positive("length", None)?,
                vocab,
            },
            seed: b.seed()?,
        })
    };
    match src {
        Source::Text => text_source(args),
        Source::Csv => {
            let b = bind(name, src.params(), args)?;
            let header = match b.get("header") {
                None => false,
                Some(Const::Bool(h)) => *h,
                Some(c) => {
                    return Err(format!(
                        "`header` must be true or false, found {}",
                        c.describe()
                    ));
                }
            };
            let delimiter = match b.get("delimiter") {
                None => b',',
                Some(c) => match string(c, "`delimiter`")?.as_bytes() {
                    [d] if d.is_ascii() && !matches!(d, b'"' | b'\n' | b'\r') => *d,
                    _ => {
                        return Err(format!(
                            "`delimiter` must be one ASCII character other than a quote or a line break, found {}",
                            c.describe()
                        ));
                    }
                },
            };
            Ok(SourceSpec::Csv {
                path: b.text("path")?,
                header,
                delimiter,
                skip: b.count("skip", Some(0))?,
            })
        }
        Source::Idx => {
            let b = bind(name, src.params(), args)?;
            Ok(SourceSpec::Idx {
                images: b.text("images")?,
                labels: b.text("labels")?,
            })
        }
        Source::Images => images_source(args),
        Source::Npy => Ok(SourceSpec::Npy(
            bind(name, src.params(), args)?.text("path")?,
        )),
        Source::Npz => Ok(SourceSpec::Npz(
            bind(name, src.params(), args)?.text("path")?,
        )),
        Source::Xor => {
            let b = bind(name, src.params(), args)?;
            Ok(SourceSpec::Generate {
                generator: Generator::Xor {
                    n: b.count("n", None)?,
                    noise: b.non_negative("noise", 0.0)?,
                },
                seed: b.seed()?,
            })
        }
        Source::Spirals => {
            let b = bind(name, src.params(), args)?;
            Ok(SourceSpec::Generate {
                generator: Generator::Spirals {
                    n: b.count("n", None)?,
                    classes: b.positive("classes", Some(2))?,
                    noise: b.non_negative("noise", 0.0)?,
                },
                seed: b.seed()?,
            })
        }
        Source::Blobs => {
            let b = bind(name, src.params(), args)?;
            Ok(SourceSpec::Generate {
                generator: Generator::Blobs {
                    n: b.count("n", None)?,
                    centers: b.positive("centers", Some(3))?,
                    features: b.positive("features", Some(2))?,
                    std: b.non_negative("std", 1.0)?,
                },
                seed: b.seed()?,
            })
        }
        Source::Sine => {
            let b = bind(name, src.params(), args)?;
            Ok(SourceSpec::Generate {
                generator: Generator::Sine {
                    n: b.count("n", None)?,
                    length: b.positive("length", None)?,
                },
                seed: b.seed()?,
            })
        }
        Source::CopyTask => tokens(Task::Copy),
        Source::ReverseTask => tokens(Task::Reverse),
        Source::SortTask => tokens(Task::Sort),
    }
}

/// `images(path, size: [H, W], channels: 1 | 3, skip_bad: false)`; three channels by default.
fn images_source(args: &[Arg]) -> Result<SourceSpec, String> {
    let b = bind("images", Source::Images.params(), args)?;
    let size = match b.required("size")? {
        Const::List(items) if items.len() == 2 => items
            .iter()
            .map(|c| match count(c, "a dimension of `size`")? {
                0 => Err("a dimension of `size` must be at least 1".to_string()),
                n if n > 1 << 16 => Err(format!(
                    "a dimension of `size` may be at most 65536, found {n}"
                )),
                n => Ok(n),
            })
            .collect::<Result<Vec<usize>, String>>()?,
        c => {
            return Err(format!(
                "`size` of `images` is `[height, width]`, found {}",
                c.describe()
            ));
        }
    };
    let channels = b.count("channels", Some(3))?;
    if channels != 1 && channels != 3 {
        return Err(format!(
            "`channels` of `images` is 1 (grey) or 3 (RGB), found {channels}"
        ));
    }
    if channels * size[0] * size[1] > super::images::MAX_VALUES {
        return Err(format!(
            "`images` of {channels} × {} × {} values per sample: at most {} are read",
            size[0],
            size[1],
            super::images::MAX_VALUES
        ));
    }
    let skip_bad = match b.get("skip_bad") {
        None => false,
        Some(Const::Bool(v)) => *v,
        Some(c) => {
            return Err(format!(
                "`skip_bad` of `images` must be true or false, found {}",
                c.describe()
            ));
        }
    };
    Ok(SourceSpec::Images {
        path: b.text("path")?,
        layout: super::images::Layout {
            height: size[0],
            width: size[1],
            channels,
            skip_bad,
        },
    })
}

/// `text(path, tokenizer: chars(vocab: N), context: N, stride: S, shuffle: B)`; the tokenizer is a call, so
/// it is read before the other arguments are bound.
fn text_source(args: &[Arg]) -> Result<SourceSpec, String> {
    let (tok, rest): (Vec<&Arg>, Vec<&Arg>) = args
        .iter()
        .partition(|a| a.name.as_ref().is_some_and(|n| n.name == "tokenizer"));
    let rest: Vec<Arg> = rest.into_iter().cloned().collect();
    let b = bind("text", &without_tokenizer(Source::Text.params()), &rest)?;
    let tokenizer = match tok[..] {
        [t] => tokenizer(&t.value)?,
        [] => return Err("`text` needs `tokenizer:`, such as `tokenizer: chars()`".into()),
        _ => return Err("`text`: `tokenizer` is given twice".into()),
    };
    let context = b.positive("context", None)?;
    Ok(SourceSpec::Text {
        path: b.text("path")?,
        tokenizer,
        context,
        stride: b.positive("stride", Some(context))?,
        shuffle: match b.get("shuffle") {
            None => false,
            Some(Const::Bool(v)) => *v,
            Some(c) => {
                return Err(format!(
                    "`shuffle` of `text` must be true or false, found {}",
                    c.describe()
                ));
            }
        },
    })
}

/// The parameters other than `tokenizer`, whose value is a call read apart.
fn without_tokenizer(params: &[PrimParam]) -> Vec<PrimParam> {
    params
        .iter()
        .filter(|p| p.name != "tokenizer")
        .copied()
        .collect()
}

/// A tokenizer: `chars()`, `chars(vocab: N)`, `bpe(vocab: N)`, `bpe(file: "tokenizer.json")`.
fn tokenizer(e: &Expr) -> Result<TokenizerSpec, String> {
    let Some((name, args)) = callee(e) else {
        return Err("a tokenizer is a call, such as `chars()`".into());
    };
    let Some(tokenizer) = Tokenizer::from_name(name) else {
        return Err(format!(
            "`{name}` is not a tokenizer: use `chars()` or `bpe(vocab: N)`"
        ));
    };
    let b = bind(name, tokenizer.params(), args)?;
    match tokenizer {
        Tokenizer::Chars => {
            let vocab = match b.get("vocab") {
                None => None,
                Some(_) => Some(b.positive("vocab", None)?),
            };
            if vocab.is_some_and(|v| v > i32::MAX as usize) {
                return Err("`vocab` of `chars` must fit in i32".into());
            }
            Ok(TokenizerSpec::Chars { vocab })
        }
        Tokenizer::Bpe => {
            let vocab = match b.get("vocab") {
                None => None,
                Some(_) => Some(b.positive("vocab", None)?),
            };
            if vocab.is_some_and(|v| v > i32::MAX as usize) {
                return Err("`vocab` of `bpe` must fit in i32".into());
            }
            match (b.get("file"), vocab) {
                (Some(_), vocab) => Ok(TokenizerSpec::File {
                    path: b.text("file")?,
                    vocab,
                    json: None,
                }),
                (None, Some(vocab)) => Ok(TokenizerSpec::Bpe { vocab }),
                (None, None) => Err(
                    "`bpe` needs `vocab: N` to train one, or `file: \"tokenizer.json\"` to load one"
                        .into(),
                ),
            }
        }
    }
}

fn dtype(d: Dtype) -> DType {
    match d {
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::I32 => DType::I32,
        Dtype::Bool => DType::Bool,
    }
}

fn field(name: &str, at: usize, ty: &TypeExpr, value: &Expr) -> Result<Field, String> {
    let TypeKind::Tensor { dtype: dt, shape } = &ty.kind else {
        return Err("a field needs a tensor type such as `f32[784]`".into());
    };
    let mut dims = Vec::new();
    for item in shape.iter().flat_map(|s| &s.items) {
        let ShapeItem::Dim(e) = item else {
            return Err("a field's shape must be made of numbers".into());
        };
        let c = eval(e).map_err(|e| format!("its shape: {e}"))?;
        dims.push(count(&c, "a dimension")?);
    }
    let mut transforms = Vec::new();
    let mut head = value;
    while let ExprKind::Pipe { lhs, rhs } = &head.kind {
        transforms.push(&**rhs);
        head = lhs;
    }
    transforms.reverse();
    let column = column(head)?;
    let mut steps: Vec<Step> = Vec::new();
    for t in transforms {
        let Some((tname, args)) = callee(t) else {
            return Err("a transform must be a name or a call, as in `|> scale(1 / 255)`".into());
        };
        if Transform::from_name(tname) == Some(Transform::Mask) {
            if !args.is_empty() {
                return Err("`mask` takes no arguments".into());
            }
            match steps.last_mut().map(|s| &mut s.kind) {
                Some(Kind::Tokens(t)) if !t.mask => {
                    t.mask = true;
                    continue;
                }
                _ => {
                    return Err(
                        "`mask` follows `tokenize(…)`: it marks the ids of the text (1) and the padding (0)"
                            .into(),
                    );
                }
            }
        }
        let mut kind = transform(tname, args)?;
        if let Kind::Tokens(_) = &kind {
            if !steps.is_empty() {
                return Err("`tokenize` must come first, right after the column".into());
            }
            if !matches!(column, Column::Table { scalar: true, .. }) {
                return Err("`tokenize` reads the text of one column: `col(\"text\")`".into());
            }
        }
        if let Kind::Categories(e) = &mut kind {
            if !steps.is_empty() {
                return Err(format!(
                    "`{tname}` of category names must come first, right after the column"
                ));
            }
            if e.one_hot {
                // The block of every column's classes: the declaration says how many values.
                e.width = dims.iter().product();
            }
        }
        if let Some(Step {
            kind: Kind::Categories(e),
            ..
        }) = steps.first()
            && e.one_hot
            && matches!(kind, Kind::Flatten | Kind::Reshape(_) | Kind::OneHot(_))
        {
            return Err(format!(
                "`{tname}` cannot follow a `one_hot` of category names, which gives one vector per sample"
            ));
        }
        if let Kind::OneHot(_) | Kind::Categories(_) = kind
            && let Some(a) = steps.iter().find(|s| s.kind.is_augmentation())
        {
            return Err(format!(
                "`one_hot` cannot follow the augmentation `{}`: put augmentations last",
                a.kind.name()
            ));
        }
        steps.push(Step::new(kind));
    }
    let dtype = dtype(*dt);
    if !dtype.is_float()
        && let Some(s) = steps.iter().find(|s| s.kind.makes_floats())
    {
        return Err(format!(
            "declared {}, but `{}` makes floating-point values: declare it f32",
            dtype.name(),
            s.kind.name()
        ));
    }
    Ok(Field {
        name: name.to_string(),
        dtype,
        shape: dims,
        column,
        steps,
        vocab: Vec::new(),
        source_classes: Vec::new(),
        tokenizer: None,
        at,
    })
}

/// The start of a field's expression: a named column or a table selector.
fn column(e: &Expr) -> Result<Column, String> {
    let Some((name, args)) = callee(e) else {
        return Err(
            "a field starts with a column, such as `image`, `col(3)` or `cols(0..4)`".into(),
        );
    };
    if !matches!(e.kind, ExprKind::Call { .. }) {
        return Ok(Column::Named(name.to_string()));
    }
    let Some(selector) = Selector::from_name(name) else {
        return Err(format!(
            "`{name}` is not a column selector: use `col`, `cols` or `array`"
        ));
    };
    match selector {
        Selector::Array => Ok(Column::Named(
            bind(name, selector.params(), args)?.text("name")?,
        )),
        Selector::Col => {
            let b = bind(name, selector.params(), args)?;
            let r = match b.required("index")? {
                Const::Str(s) => TableRef::Name(s.clone()),
                c => TableRef::Index(count(c, "the column index")?),
            };
            Ok(Column::Table {
                refs: vec![r],
                scalar: true,
            })
        }
        Selector::Cols => {
            let mut refs = Vec::new();
            for a in args {
                if a.name.as_ref().is_some_and(|n| n.name != "columns") {
                    return Err("`cols` takes column indices, ranges and names".into());
                }
                table_refs(&eval(&a.value)?, &mut refs)?;
            }
            if refs.is_empty() {
                return Err("`cols` selects no column".into());
            }
            Ok(Column::Table {
                refs,
                scalar: false,
            })
        }
    }
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

/// A categorical option given as a bare name or a string (`unknown: bucket`).
fn option<'a>(b: &'a Bound, name: &str) -> Result<Option<&'a str>, String> {
    match b.get(name) {
        None => Ok(None),
        Some(Const::Sym(s) | Const::Str(s)) => Ok(Some(s)),
        Some(c) => Err(format!(
            "{} must be a name, found {}",
            b.what(name),
            c.describe()
        )),
    }
}

fn transform(name: &str, args: &[Arg]) -> Result<Kind, String> {
    let Some(t) = Transform::from_name(name) else {
        return Err(format!("`{name}` is not a data transform"));
    };
    let params = t.params();
    let no_args = |kind: Kind| {
        if args.is_empty() {
            Ok(kind)
        } else {
            Err(format!("`{name}` takes no arguments"))
        }
    };
    match t {
        Transform::Flatten => no_args(Kind::Flatten),
        Transform::MinMax => no_args(Kind::MinMax),
        Transform::Standardize => no_args(Kind::Standardize),
        Transform::RandomFlip => {
            let b = bind(name, params, args)?;
            match option(&b, "axis")? {
                None | Some("horizontal") => Ok(Kind::Flip(FlipAxes::Horizontal)),
                Some("vertical") => Ok(Kind::Flip(FlipAxes::Vertical)),
                Some("both") => Ok(Kind::Flip(FlipAxes::Both)),
                Some(o) => Err(format!(
                    "`random_flip({o})`: write `random_flip` (horizontal), `random_flip(vertical)` or `random_flip(both)`"
                )),
            }
        }
        Transform::RandomRotation => {
            let b = bind(name, params, args)?;
            b.required("degrees")?;
            Ok(Kind::Rotate(b.non_negative("degrees", 0.0)?))
        }
        Transform::RandomResizedCrop => {
            let b = bind(name, params, args)?;
            let pair = |n: &str, default: (f64, f64)| -> Result<(f64, f64), String> {
                let what = b.what(n);
                match b.get(n) {
                    None => Ok(default),
                    Some(Const::List(items)) if items.len() == 2 => {
                        let (lo, hi) = (number(&items[0], &what)?, number(&items[1], &what)?);
                        if lo > 0.0 && lo <= hi {
                            Ok((lo, hi))
                        } else {
                            Err(format!(
                                "{what} must be `[low, high]` with 0 < low ≤ high, found [{lo}, {hi}]"
                            ))
                        }
                    }
                    Some(c) => Err(format!(
                        "{what} is a pair `[low, high]`, found {}",
                        c.describe()
                    )),
                }
            };
            let scale = pair("scale", (0.08, 1.0))?;
            if scale.1 > 1.0 {
                return Err(format!(
                    "`scale` of `random_resized_crop` is a share of the image's area, at most 1, found {}",
                    scale.1
                ));
            }
            Ok(Kind::Crop(CropSpec {
                scale,
                ratio: pair("ratio", (3.0 / 4.0, 4.0 / 3.0))?,
            }))
        }
        Transform::ColorJitter => {
            let b = bind(name, params, args)?;
            Ok(Kind::Jitter {
                brightness: b.non_negative("brightness", 0.0)?,
                contrast: b.non_negative("contrast", 0.0)?,
            })
        }
        Transform::Scale => {
            let b = bind(name, params, args)?;
            Ok(Kind::Scale(number(
                b.required("factor")?,
                "`factor` of `scale`",
            )?))
        }
        Transform::OneHot | Transform::Label => {
            let b = bind(name, params, args)?;
            let classes = b
                .get("classes")
                .map(|_| b.positive("classes", None))
                .transpose()?;
            let unknown_bucket = match option(&b, "unknown")? {
                None | Some("error") => false,
                Some("bucket") => true,
                Some(o) => {
                    return Err(format!(
                        "`unknown: {o}`: write `unknown: error` (the default) or `unknown: bucket`"
                    ));
                }
            };
            let missing = match option(&b, "missing")? {
                None | Some("error") => Missing::Error,
                Some("category") => Missing::Category,
                Some("most_frequent") => Missing::MostFrequent,
                Some(o) => {
                    return Err(format!(
                        "`missing: {o}`: write `missing: error` (the default), `missing: category` or `missing: most_frequent`"
                    ));
                }
            };
            let names = b.get("unknown").is_some() || b.get("missing").is_some();
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
            // The tokenizer is a call (`chars()`), not a constant: it is read apart.
            let is_tokenizer =
                |i: usize, a: &Arg| a.name.as_ref().map_or(i == 0, |n| n.name == "tokenizer");
            let tok: Vec<&Arg> = (args.iter().enumerate())
                .filter(|(i, a)| is_tokenizer(*i, a))
                .map(|(_, a)| a)
                .collect();
            let [t] = tok[..] else {
                return Err(
                    "`tokenize` needs one tokenizer, as in `tokenize(chars(), length: 32)`".into(),
                );
            };
            let rest: Vec<Arg> = (args.iter().enumerate())
                .filter(|(i, a)| !is_tokenizer(*i, a))
                .map(|(_, a)| a.clone())
                .collect();
            let b = bind(name, &without_tokenizer(params), &rest)?;
            Ok(Kind::Tokens(Tokens {
                spec: tokenizer(&t.value)?,
                length: b.positive("length", None)?,
                mask: false,
            }))
        }
        Transform::Reshape => {
            let b = bind(name, params, args)?;
            match b.required("shape")? {
                Const::List(items) => items
                    .iter()
                    .map(|c| count(c, "a dimension of `reshape`"))
                    .collect::<Result<_, _>>()
                    .map(Kind::Reshape),
                c => Err(format!(
                    "`reshape` takes a list such as `[1, 28, 28]`, found {}",
                    c.describe()
                )),
            }
        }
        Transform::Impute => {
            if let Some(knn) = args.iter().find_map(|a| match &a.value.kind {
                ExprKind::Call { callee, args, .. } if matches!(&callee.kind, ExprKind::Name(n) if n.name == "knn") => Some(args),
                _ => None,
            }) {
                if args.len() != 1 {
                    return Err("`impute(knn(k: N))` takes nothing else".into());
                }
                let b = bind("knn", &[PrimParam::opt("k")], knn)?;
                return Ok(Kind::Impute(Strategy::Knn(b.positive("k", Some(5))?)));
            }
            let b = bind(name, params, args)?;
            let strategy = match b.get("strategy") {
                None => None,
                Some(Const::Sym(s) | Const::Str(s)) => Some(s.as_str()),
                Some(c) => {
                    return Err(format!(
                        "the strategy of `impute` is mean, median, knn(k: N) or constant, found {}",
                        c.describe()
                    ));
                }
            };
            match (strategy, b.get("constant")) {
                (None | Some("constant"), Some(c)) => Ok(Kind::Impute(Strategy::Constant(number(
                    c,
                    "`constant` of `impute`",
                )?))),
                (None | Some("mean"), None) => Ok(Kind::Impute(Strategy::Mean)),
                (Some("median"), None) => Ok(Kind::Impute(Strategy::Median)),
                (Some("constant"), None) => {
                    Err("`impute(constant)` needs a value: `impute(constant: 0)`".into())
                }
                (Some(s), None) => Err(format!(
                    "`{s}` is not an impute strategy: use mean, median or `constant: VALUE`"
                )),
                (Some(s), Some(_)) => Err(format!(
                    "`impute({s})` takes no `constant`: write `impute(constant: VALUE)`"
                )),
            }
        }
        Transform::ClipOutliers => {
            let b = bind(name, params, args)?;
            let positive = |n: &str| -> Result<Option<f64>, String> {
                match b.get(n) {
                    None => Ok(None),
                    Some(c) => match number(c, &format!("`{n}` of `clip_outliers`"))? {
                        v if v > 0.0 => Ok(Some(v)),
                        v => Err(format!(
                            "`{n}` of `clip_outliers` must be positive, found {v}"
                        )),
                    },
                }
            };
            match (positive("z")?, positive("iqr")?) {
                (Some(_), Some(_)) => Err("`clip_outliers` takes `z` or `iqr`, not both".into()),
                (Some(z), None) => Ok(Kind::Clip(Clip::Z(z))),
                (None, Some(k)) => Ok(Kind::Clip(Clip::Iqr(k))),
                (None, None) => Ok(Kind::Clip(Clip::Z(3.0))),
            }
        }
        Transform::RandomShift => {
            let b = bind(name, params, args)?;
            Ok(Kind::Shift(b.count("pixels", None)?))
        }
        Transform::GaussianNoise => {
            let b = bind(name, params, args)?;
            b.required("std")?;
            Ok(Kind::Noise(b.non_negative("std", 0.0)?))
        }
        // `field` reads `mask` as a flag of the `tokenize` before it.
        Transform::Mask => Err(
            "`mask` follows `tokenize(…)`: it marks the ids of the text (1) and the padding (0)"
                .into(),
        ),
    }
}

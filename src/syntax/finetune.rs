//! The fine-tuning settings of a train block, read from their syntax (the checker reports
//! their errors, lowering and the runtime use their values):
//!
//! - `init "weights.safetensors"`, or `init("w.safetensors", strict: false, map: [("fc1",
//!   "dense_1"), …])`: parameters loaded by name before training;
//! - `freeze LeNet.conv2d_1, LeNet.conv2d_2`: layers (or models) whose parameters get no
//!   gradient and no optimizer state, in the whole block or in one phase;
//! - `frozen_bn running_stats` (the default) or `frozen_bn batch_stats`: whether frozen layers
//!   run in training steps as in evaluation (batch norm on its running statistics, left
//!   unchanged; no dropout) or as in training.

use super::ast::{Arg, Expr, ExprKind, ListItem, Setting, SettingValue};
use crate::source::Span;

/// `init …`, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct InitFrom {
    /// The weights file, relative to the `.nnl` file.
    pub path: String,
    /// Every tensor must be used and every parameter found (the default).
    pub strict: bool,
    /// Source-name prefix → layer path (`"features.0"` → `"conv2d_1"`).
    pub map: Vec<(String, String)>,
    pub span: Span,
}

/// How frozen layers run in training steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FrozenBn {
    /// As in evaluation: batch norm uses and keeps its running statistics.
    #[default]
    RunningStats,
    /// As in training: batch norm normalizes by the batch and updates its running statistics.
    BatchStats,
}

pub const INIT_FORM: &str = "init \"weights.safetensors\"  or  init(\"w.safetensors\", strict: false, map: [(\"fc1\", \"dense_1\")])";

fn string(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Str(s) => Some(s),
        _ => None,
    }
}

/// Reads `init`; the error is a span and what is wrong there.
pub fn init(set: &Setting) -> Result<InitFrom, (Span, String)> {
    let bad = |span: Span, what: &str| (span, format!("{what}; write {INIT_FORM}"));
    match &set.value {
        SettingValue::Values(v) if v.len() == 1 => match string(&v[0]) {
            Some(p) => Ok(InitFrom {
                path: p.to_string(),
                strict: true,
                map: Vec::new(),
                span: set.span,
            }),
            None => Err(bad(v[0].span, "`init` takes the weights file in quotes")),
        },
        SettingValue::Call(args, span) => {
            init_call(args, *span, set.span).map_err(|(s, w)| bad(s, &w))
        }
        _ => Err(bad(set.span, "`init` is not written this way")),
    }
}

fn init_call(args: &[Arg], span: Span, whole: Span) -> Result<InitFrom, (Span, String)> {
    let mut spec = InitFrom {
        path: String::new(),
        strict: true,
        map: Vec::new(),
        span: whole,
    };
    let mut path = None;
    for a in args {
        match a.name.as_ref().map(|n| n.name.as_str()) {
            None if path.is_none() => {
                path = Some(string(&a.value).ok_or((
                    a.value.span,
                    "the weights file goes first, in quotes".to_string(),
                ))?);
            }
            None => return Err((a.value.span, "one weights file per `init`".into())),
            Some("strict") => match a.value.kind {
                ExprKind::Bool(b) => spec.strict = b,
                _ => return Err((a.value.span, "`strict` is true or false".into())),
            },
            Some("map") => {
                let ExprKind::List(items) = &a.value.kind else {
                    return Err((
                        a.value.span,
                        "`map` is a list of (\"source prefix\", \"layer path\") pairs".into(),
                    ));
                };
                for item in items {
                    let pair = match item {
                        ListItem::Expr(Expr {
                            kind: ExprKind::Tuple(parts),
                            ..
                        }) if parts.len() == 2 => string(&parts[0]).zip(string(&parts[1])),
                        _ => None,
                    };
                    let span = match item {
                        ListItem::Expr(e) => e.span,
                        ListItem::Spread(id) => id.span,
                    };
                    let (from, to) = pair.ok_or((
                        span,
                        "each `map` entry is a pair of strings: (\"fc1\", \"dense_1\")".to_string(),
                    ))?;
                    spec.map.push((from.to_string(), to.to_string()));
                }
            }
            Some(other) => {
                return Err((
                    a.value.span,
                    format!("`init` has no argument `{other}` (it takes strict and map)"),
                ));
            }
        }
    }
    spec.path = path
        .ok_or((span, "`init` needs the weights file".to_string()))?
        .to_string();
    Ok(spec)
}

/// A dotted path written as names (`LeNet.conv2d_1`) or in quotes.
fn path(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(n) => Some(n.name.to_string()),
        ExprKind::Str(s) => Some(s.to_string()),
        ExprKind::Member(member) => Some(format!("{}.{}", path(&member.base)?, member.field.name)),
        _ => None,
    }
}

/// Reads `freeze`: the paths and where each is written.
pub fn freeze(set: &Setting) -> Result<Vec<(String, Span)>, (Span, String)> {
    let SettingValue::Values(v) = &set.value else {
        return Err((
            set.span,
            "write `freeze Model.layer, Model.other_layer`".into(),
        ));
    };
    v.iter()
        .map(|e| {
            path(e).map(|p| (p, e.span)).ok_or((
                e.span,
                "`freeze` takes layer paths such as `LeNet.conv2d_1` (as `nnlc check --summary` names them)".into(),
            ))
        })
        .collect()
}

/// Reads `frozen_bn`.
pub fn frozen_bn(set: &Setting) -> Result<FrozenBn, (Span, String)> {
    match &set.value {
        SettingValue::Values(v) if v.len() == 1 => match &v[0].kind {
            ExprKind::Name(n) if n.name == "running_stats" => Ok(FrozenBn::RunningStats),
            ExprKind::Name(n) if n.name == "batch_stats" => Ok(FrozenBn::BatchStats),
            _ => Err((
                v[0].span,
                "`frozen_bn` is `running_stats` or `batch_stats`".into(),
            )),
        },
        _ => Err((
            set.span,
            "write `frozen_bn running_stats` or `frozen_bn batch_stats`".into(),
        )),
    }
}

//! What a metric declares about itself. A metric is any function of (output, target) listed
//! under `metrics`; two optional parameters, read only for their defaults, say how the runtime
//! treats it:
//!
//! - `aggregate: str = "root_mean_square"`: how batch values combine over a split (`mean` when
//!   absent; the names are [`Aggregation`]'s);
//! - `higher_is_better: bool = true`: which way `early_stop` without a `mode` watches it
//!   (lower is better when absent, as for a loss).
//!
//! `std.metrics` declares its metrics this way, and a user's metric can too. The checker
//! reports a malformed declaration; lowering and the runtime read the same [`declaration`].

use crate::ir::Aggregation;
use crate::resolve::{ItemRef, Program};
use crate::source::Span;
use crate::syntax::ast::{Def, Expr, ExprKind};

/// The parameter that declares a metric's aggregation.
pub const AGGREGATE: &str = "aggregate";
/// The parameter that declares which way a metric improves.
pub const HIGHER_IS_BETTER: &str = "higher_is_better";

/// A metric's declared behaviour over a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDecl {
    pub aggregation: Aggregation,
    pub higher_is_better: bool,
}

impl Default for MetricDecl {
    fn default() -> MetricDecl {
        MetricDecl {
            aggregation: Aggregation::Mean,
            higher_is_better: false,
        }
    }
}

/// A declaration that cannot be read: where, and what is wrong.
pub struct DeclError {
    pub span: Span,
    pub message: String,
}

/// The declaration of the function `r` (the defaults when it declares nothing).
pub fn declaration(program: &Program, r: ItemRef) -> Result<MetricDecl, DeclError> {
    match program.def(r) {
        Some(def) => of_def(def),
        None => Ok(MetricDecl::default()),
    }
}

/// The declaration of the metric a `metrics` entry names (`accuracy` or `accuracy(...)`),
/// looked up in `module`; the defaults for anything that is not a function.
pub fn of_entry(program: &Program, module: usize, entry: &Expr) -> MetricDecl {
    let name = match &entry.kind {
        ExprKind::Name(id) => Some(&id.name),
        ExprKind::Call(call) => match &call.callee.kind {
            ExprKind::Name(id) => Some(&id.name),
            _ => None,
        },
        _ => None,
    };
    name.and_then(|n| program.lookup(module, n))
        .and_then(|r| declaration(program, r).ok())
        .unwrap_or_default()
}

fn of_def(def: &Def) -> Result<MetricDecl, DeclError> {
    let mut decl = MetricDecl::default();
    for p in &def.params {
        let default = p.default.as_ref();
        match p.name.name.as_str() {
            AGGREGATE => {
                let named = match default.map(|e| &e.kind) {
                    Some(ExprKind::Str(s)) => Aggregation::from_name(s),
                    _ => None,
                };
                decl.aggregation = named.ok_or_else(|| DeclError {
                    span: default.map_or(p.span, |e| e.span),
                    message: format!(
                        "`{AGGREGATE}` declares how a metric's batch values combine: its default must be one of {}",
                        Aggregation::ALL
                            .iter()
                            .map(|a| format!("\"{}\"", a.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            }
            HIGHER_IS_BETTER => {
                decl.higher_is_better = match default.map(|e| &e.kind) {
                    Some(ExprKind::Bool(b)) => *b,
                    _ => {
                        return Err(DeclError {
                            span: default.map_or(p.span, |e| e.span),
                            message: format!(
                                "`{HIGHER_IS_BETTER}` declares which way a metric improves: its default must be `true` or `false`"
                            ),
                        });
                    }
                };
            }
            _ => {}
        }
    }
    Ok(decl)
}

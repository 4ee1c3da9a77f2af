//! `nnlc search`: the plan of a `search` block (strategy, spaces, goal), the strategies that
//! choose trials (`schedule`: grid, random, Hyperband; `tpe`) and the search's state on disk
//! (`state`). Running a trial is the runtime's job; this module decides which trials run, with
//! which values and for how many epochs, as a function of the seed and of the results of earlier
//! trials in a fixed order — never of timing, so `--jobs` changes nothing but the wall time.
//!
//! A trial's values are applied as `nnlc run --set NAME=VALUE` applies them: as source text, so
//! every configuration is checked like the file itself.

pub mod sample;
pub mod schedule;
pub mod state;
pub mod tpe;

use crate::syntax::ast::{Arg, Expr, ExprKind, Goal, Item, ListItem, Module, SearchDecl, UnOp};
use serde::{Deserialize, Serialize};

/// A value a hyperparameter takes: its source text (what `--set` writes) and, for a number, its
/// value (what the strategies and TensorBoard's HParams tab compare).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    pub text: String,
    pub number: Option<f64>,
}

/// Where a hyperparameter's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// A list `[8, 16, 32]` or `choice(a, b, …)`: one of these values.
    Values(Vec<Value>),
    /// `uniform(lo, hi)`: a real number in [lo, hi].
    Uniform { lo: f64, hi: f64 },
    /// `log_uniform(lo, hi)`: a real number in [lo, hi] whose logarithm is uniform.
    LogUniform { lo: f64, hi: f64 },
    /// `int_range(lo, hi)`: a whole number in lo..=hi.
    IntRange { lo: i64, hi: i64 },
}

/// A searched hyperparameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Dim {
    /// As `--set` takes it: `hidden`, `lr`.
    pub name: String,
    pub space: Space,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Every combination of the lists, in order (the last dimension varies fastest).
    Grid,
    Random {
        trials: usize,
        seed: u64,
    },
    /// Successive-halving brackets: many configurations trained briefly, the best `1/factor`
    /// of each rung continued from their checkpoints, up to `max_epochs`.
    Hyperband {
        max_epochs: usize,
        factor: usize,
        seed: u64,
    },
    /// A tree-structured Parzen estimator: `startup` random trials, then each trial drawn where
    /// the best quarter of the earlier trials is dense and the rest is not.
    Tpe {
        trials: usize,
        startup: usize,
        seed: u64,
    },
}

/// What the search maximizes or minimizes: a metric of the training or validation split, per
/// epoch; a trial's goal value is the best epoch's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub maximize: bool,
    pub split: String,
    pub metric: String,
}

impl Objective {
    /// Whether `a` is better than `b`.
    pub fn better(&self, a: f64, b: f64) -> bool {
        if self.maximize { a > b } else { a < b }
    }

    /// The name, `val.accuracy`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.split, self.metric)
    }
}

/// A checked `search` block, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub strategy: Strategy,
    /// The models searched over, `IrisMlp`.
    pub models: Vec<String>,
    pub dims: Vec<Dim>,
    pub objective: Objective,
}

/// The names of the strategies, for the checker's "did you mean".
pub const STRATEGIES: &[&str] = &["grid", "random", "hyperband", "tpe"];

/// Each strategy's arguments: name, whether it is required, its default.
pub fn strategy_args(name: &str) -> &'static [(&'static str, Option<u64>)] {
    match name {
        "grid" => &[],
        "random" => &[("trials", None), ("seed", Some(0))],
        "hyperband" => &[("max_epochs", None), ("factor", Some(3)), ("seed", Some(0))],
        "tpe" => &[("trials", None), ("startup", Some(10)), ("seed", Some(0))],
        _ => &[],
    }
}

/// The search blocks of a parsed root file, as plans; `Err` for a block the checker would
/// reject (callers check first, so this names only the first problem).
pub fn plans(module: &Module, text: &str) -> Vec<Result<Plan, String>> {
    module
        .items
        .iter()
        .filter_map(|i| match i {
            Item::Search(s) => Some(plan(s, text)),
            _ => None,
        })
        .collect()
}

fn plan(s: &SearchDecl, text: &str) -> Result<Plan, String> {
    let (name, args) = call(&s.strategy).ok_or("the strategy is not a call")?;
    let arg = |key: &str| -> Result<u64, String> {
        let spec = strategy_args(name)
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or_else(|| format!("`{name}` takes no `{key}`"))?;
        match args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
        {
            Some(a) => whole(&a.value)
                .filter(|&v| v >= 0)
                .map(|v| v as u64)
                .ok_or_else(|| format!("`{key}` is not a whole number")),
            None => spec.1.ok_or_else(|| format!("`{name}` needs `{key}`")),
        }
    };
    let strategy = match name {
        "grid" => Strategy::Grid,
        "random" => Strategy::Random {
            trials: arg("trials")? as usize,
            seed: arg("seed")?,
        },
        "hyperband" => Strategy::Hyperband {
            max_epochs: arg("max_epochs")? as usize,
            factor: arg("factor")? as usize,
            seed: arg("seed")?,
        },
        "tpe" => Strategy::Tpe {
            trials: arg("trials")? as usize,
            startup: arg("startup")? as usize,
            seed: arg("seed")?,
        },
        other => return Err(format!("no strategy `{other}`")),
    };
    let dims = s
        .space
        .iter()
        .map(|(name, e)| {
            Ok(Dim {
                name: name.name.to_string(),
                space: space(e, text)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let (split, metric) = goal_metric(&s.metric).ok_or("the goal is not `split.metric`")?;
    Ok(Plan {
        strategy,
        models: s.models.iter().map(|m| m.name.to_string()).collect(),
        dims,
        objective: Objective {
            maximize: s.goal == Goal::Maximize,
            split,
            metric,
        },
    })
}

/// `split.metric` of a goal.
pub fn goal_metric(e: &Expr) -> Option<(String, String)> {
    match &e.kind {
        ExprKind::Member(member) => match &member.base.kind {
            ExprKind::Name(n) => Some((n.name.to_string(), member.field.name.to_string())),
            _ => None,
        },
        _ => None,
    }
}

/// The callee's name and the arguments of a call `name(…)`.
pub fn call(e: &Expr) -> Option<(&str, &[Arg])> {
    match &e.kind {
        ExprKind::Call(call) => match &call.callee.kind {
            ExprKind::Name(n) => Some((n.name.as_str(), &call.args[..])),
            _ => None,
        },
        _ => None,
    }
}

/// A number literal, possibly negated.
pub fn number(e: &Expr) -> Option<(f64, bool)> {
    match &e.kind {
        ExprKind::Number { value, is_int } => Some((*value, *is_int)),
        ExprKind::Unary {
            op: UnOp::Neg,
            expr,
        } => number(expr).map(|(v, i)| (-v, i)),
        _ => None,
    }
}

/// A whole-number literal.
pub fn whole(e: &Expr) -> Option<i64> {
    match number(e)? {
        (v, true) if v.abs() < 9.0e15 => Some(v as i64),
        _ => None,
    }
}

fn value(e: &Expr, text: &str) -> Value {
    Value {
        text: text[e.span.range()].to_string(),
        number: number(e).map(|(v, _)| v),
    }
}

fn space(e: &Expr, text: &str) -> Result<Space, String> {
    match &e.kind {
        ExprKind::List(items) => items
            .iter()
            .map(|i| match i {
                ListItem::Expr(e) => Ok(value(e, text)),
                ListItem::Spread(_) => Err("a spread in a search list".to_string()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Space::Values),
        _ => {
            let (name, args) = call(e).ok_or("a search space is a list or a distribution")?;
            let bounds = || -> Result<(f64, f64), String> {
                match args {
                    [lo, hi] => Ok((
                        number(&lo.value).ok_or("a bound is not a number")?.0,
                        number(&hi.value).ok_or("a bound is not a number")?.0,
                    )),
                    _ => Err(format!("`{name}` takes two bounds")),
                }
            };
            match name {
                "choice" => Ok(Space::Values(
                    args.iter().map(|a| value(&a.value, text)).collect(),
                )),
                "uniform" => bounds().map(|(lo, hi)| Space::Uniform { lo, hi }),
                "log_uniform" => bounds().map(|(lo, hi)| Space::LogUniform { lo, hi }),
                "int_range" => bounds().map(|(lo, hi)| Space::IntRange {
                    lo: lo as i64,
                    hi: hi as i64,
                }),
                other => Err(format!("no distribution `{other}`")),
            }
        }
    }
}

/// A trial's values, one per dimension in the block's order.
pub type Config = Vec<(String, Value)>;

/// `--set NAME=VALUE` for each value of a configuration, as the shell takes it.
pub fn set_flags(config: &Config) -> String {
    config
        .iter()
        .map(|(n, v)| shell_word(&format!("{n}={}", v.text)))
        .collect::<Vec<_>>()
        .join(" --set ")
}

/// A word quoted for a POSIX shell when it needs to be.
pub fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.=/+,:".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    const FILE: &str = "search hyperband(max_epochs: 27, seed: 4) over M on d {\n  hidden in [8, 16]\n  lr in log_uniform(1e-4, 1e-1)\n  act in choice(\"relu\", \"tanh\")\n  depth in int_range(1, 3)\n} maximize val.accuracy\n";

    #[test]
    fn a_block_becomes_a_plan_with_defaults_and_source_texts() {
        let (module, errors) = crate::syntax::parse(FileId(0), FILE);
        assert!(errors.is_empty(), "{errors:?}");
        let plan = plans(&module, FILE).remove(0).unwrap();
        assert_eq!(
            plan.strategy,
            Strategy::Hyperband {
                max_epochs: 27,
                factor: 3,
                seed: 4
            }
        );
        assert_eq!(plan.dims.len(), 4);
        let Space::Values(v) = &plan.dims[0].space else {
            panic!()
        };
        assert_eq!((v[1].text.as_str(), v[1].number), ("16", Some(16.0)));
        assert_eq!(plan.dims[1].space, Space::LogUniform { lo: 1e-4, hi: 1e-1 });
        let Space::Values(v) = &plan.dims[2].space else {
            panic!()
        };
        assert_eq!((v[0].text.as_str(), v[0].number), ("\"relu\"", None));
        assert_eq!(plan.dims[3].space, Space::IntRange { lo: 1, hi: 3 });
        assert_eq!(plan.objective.name(), "val.accuracy");
        assert!(plan.objective.maximize);
    }

    #[test]
    fn set_flags_quote_what_the_shell_would_split() {
        let config = vec![
            (
                "lr".to_string(),
                Value {
                    text: "0.003".into(),
                    number: Some(0.003),
                },
            ),
            (
                "act".to_string(),
                Value {
                    text: "\"relu\"".into(),
                    number: None,
                },
            ),
        ];
        assert_eq!(set_flags(&config), "lr=0.003 --set 'act=\"relu\"'");
    }
}

//! `--set NAME=VALUE`: a hyperparameter of the root file overridden by rewriting the file's text,
//! so that the new value is parsed and checked like one written there, and diagnostics show it in
//! place.
//!
//! Names: a train setting (`batch`, `epochs`, `seed`, `clip_grad_norm`); an attribute of a
//! trained model (`hidden`, or `Mlp.hidden`); an argument of the train block's optimizers
//! (`lr`, or `optimizer.b1` to add one not written); an `early_stop` argument
//! (`early_stop.patience`).

use super::ast::{Arg, DefKind, Expr, ExprKind, Item, Module, SettingValue, TrainDecl, TrainStmt};
use crate::prim::TrainSetting;
use crate::source::FileId;

/// The train settings `--set` may change or add: those written as one number.
const SETTINGS: [TrainSetting; 4] = [
    TrainSetting::Batch,
    TrainSetting::Epochs,
    TrainSetting::Seed,
    TrainSetting::ClipGradNorm,
];

#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub name: String,
    pub value: String,
}

impl std::str::FromStr for Override {
    type Err = String;

    fn from_str(s: &str) -> Result<Override, String> {
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: write NAME=VALUE, e.g. `lr=3e-4`"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || value.is_empty() || value.contains('\n') {
            return Err(format!("`{s}`: write NAME=VALUE, e.g. `lr=3e-4`"));
        }
        Ok(Override {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// One edit of the text: replace `start..end` with `text`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

/// The root file's text with the overrides applied, one after the other. A file that does not
/// parse is returned unchanged (checking it reports why).
pub fn apply(text: &str, overrides: &[Override]) -> Result<String, String> {
    let mut text = text.to_string();
    for o in overrides {
        // Spans are only used within this text, so any file id will do.
        let (module, errors) = super::parse(FileId(0), &text);
        if !errors.is_empty() {
            return Ok(text);
        }
        let mut edits = edits_for(&module, &text, o)?;
        edits.sort_by_key(|e| std::cmp::Reverse(e.start));
        for e in edits {
            text.replace_range(e.start..e.end, &e.text);
        }
    }
    Ok(text)
}

fn edits_for(module: &Module, text: &str, o: &Override) -> Result<Vec<Edit>, String> {
    let train = module
        .items
        .iter()
        .find_map(|i| match i {
            Item::Train(t) => Some(t),
            _ => None,
        })
        .ok_or("`--set` changes a train block's hyperparameters; this file has none")?;
    let (scope, key) = match o.name.split_once('.') {
        Some((s, k)) => (Some(s), k),
        None => (None, o.name.as_str()),
    };
    let value = &o.value;
    match scope {
        None if TrainSetting::from_name(key).is_some_and(|s| SETTINGS.contains(&s)) => {
            Ok(vec![setting_edit(train, text, key, value)])
        }
        Some("optimizer") => Ok(optimizer_calls(train)
            .into_iter()
            .map(|call| arg_edit(call, text, key, value))
            .collect()),
        Some("early_stop") => {
            let call = train.stmts.iter().find_map(|s| match s {
                TrainStmt::Setting(set)
                    if TrainSetting::from_name(&set.name.name) == Some(TrainSetting::EarlyStop) =>
                {
                    match &set.value {
                        SettingValue::Call(args, span) => {
                            Some((&args[..], span.start as usize, span.end as usize))
                        }
                        _ => None,
                    }
                }
                _ => None,
            });
            let call = call.ok_or("the train block has no `early_stop(...)` to change")?;
            Ok(vec![arg_edit(call, text, key, value)])
        }
        _ => {
            if let Some(edit) = attribute_edit(module, train, scope, key, value)? {
                return Ok(vec![edit]);
            }
            let calls = optimizer_calls(train);
            let edits: Vec<Edit> = calls
                .iter()
                .filter(|(args, _, _)| named(args, key).is_some())
                .map(|call| arg_edit(*call, text, key, value))
                .collect();
            if scope.is_none() && !edits.is_empty() {
                return Ok(edits);
            }
            Err(unknown(module, train, &o.name))
        }
    }
}

/// Replaces a setting's value, or adds the setting at the end of the train block.
fn setting_edit(train: &TrainDecl, text: &str, key: &str, value: &str) -> Edit {
    let found = train.stmts.iter().find_map(|s| match s {
        TrainStmt::Setting(set) if set.name.name == key => match &set.value {
            SettingValue::Values(v) if !v.is_empty() => {
                Some((v[0].span.start, v[v.len() - 1].span.end))
            }
            SettingValue::Assign(e) => Some((e.span.start, e.span.end)),
            _ => None,
        },
        _ => None,
    });
    match found {
        Some((start, end)) => Edit {
            start: start as usize,
            end: end as usize,
            text: value.to_string(),
        },
        None => {
            let close = closing_brace(text, train.span.end as usize);
            Edit {
                start: close,
                end: close,
                text: format!("  {key} {value}\n"),
            }
        }
    }
}

/// The offset of the line holding the block's closing `}` (so an added line goes before it).
fn closing_brace(text: &str, end: usize) -> usize {
    let brace = text[..end].rfind('}').unwrap_or(end);
    text[..brace].rfind('\n').map_or(brace, |nl| nl + 1)
}

/// The argument lists of every optimizer call of the train block (`optimizer = adam(...)`,
/// `update G with adam(...)`), with the span of each list's parentheses.
fn optimizer_calls(train: &TrainDecl) -> Vec<(&[Arg], usize, usize)> {
    fn call(e: &Expr) -> Option<(&[Arg], usize, usize)> {
        match &e.kind {
            ExprKind::Call(call) => Some((
                &call.args[..],
                call.args_span.start as usize,
                call.args_span.end as usize,
            )),
            _ => None,
        }
    }
    fn walk<'a>(stmts: &'a [TrainStmt], out: &mut Vec<(&'a [Arg], usize, usize)>) {
        for s in stmts {
            match s {
                TrainStmt::Setting(set)
                    if TrainSetting::from_name(&set.name.name) == Some(TrainSetting::Optimizer) =>
                {
                    if let SettingValue::Assign(e) = &set.value {
                        out.extend(call(e));
                    }
                }
                TrainStmt::Update { optimizer, .. } => out.extend(call(optimizer)),
                TrainStmt::Phase { stmts, .. } => walk(stmts, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(&train.stmts, &mut out);
    out
}

fn named<'a>(args: &'a [Arg], key: &str) -> Option<&'a Arg> {
    args.iter()
        .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
}

/// Replaces a named argument's value, or adds `key: value` before the closing parenthesis.
fn arg_edit(
    (args, start, end): (&[Arg], usize, usize),
    text: &str,
    key: &str,
    value: &str,
) -> Edit {
    if let Some(a) = named(args, key) {
        return Edit {
            start: a.value.span.start as usize,
            end: a.value.span.end as usize,
            text: value.to_string(),
        };
    }
    let close = text[start..end].rfind(')').map_or(end, |i| start + i);
    let separator = if args.is_empty() { "" } else { ", " };
    Edit {
        start: close,
        end: close,
        text: format!("{separator}{key}: {value}"),
    }
}

/// Replaces the default of a trained model's attribute.
fn attribute_edit(
    module: &Module,
    train: &TrainDecl,
    scope: Option<&str>,
    key: &str,
    value: &str,
) -> Result<Option<Edit>, String> {
    for item in &module.items {
        let Item::Def(d) = item else { continue };
        let trained = train.models.iter().any(|m| m.name == d.name.name);
        if d.kind != DefKind::Model || !trained || scope.is_some_and(|s| s != d.name.name) {
            continue;
        }
        let Some(attr) = d.attrs.iter().find(|a| a.name.name == key) else {
            continue;
        };
        return match &attr.default {
            Some(e) => Ok(Some(Edit {
                start: e.span.start as usize,
                end: e.span.end as usize,
                text: value.to_string(),
            })),
            None => {
                let after = attr.ty.as_ref().map_or(attr.name.span.end, |t| t.span.end);
                Ok(Some(Edit {
                    start: after as usize,
                    end: after as usize,
                    text: format!(" = {value}"),
                }))
            }
        };
    }
    Ok(None)
}

/// The error for a name that is none of the file's hyperparameters, listing them.
fn unknown(module: &Module, train: &TrainDecl, name: &str) -> String {
    let mut known: Vec<String> = SETTINGS.iter().map(|s| s.name().to_string()).collect();
    for item in &module.items {
        if let Item::Def(d) = item
            && d.kind == DefKind::Model
            && train.models.iter().any(|m| m.name == d.name.name)
        {
            known.extend(
                d.attrs
                    .iter()
                    .map(|a| format!("{}.{}", d.name.name, a.name.name)),
            );
        }
    }
    for (args, _, _) in optimizer_calls(train) {
        known.extend(
            args.iter()
                .filter_map(|a| a.name.as_ref())
                .map(|n| format!("optimizer.{}", n.name)),
        );
    }
    known.dedup();
    format!(
        "`--set {name}`: no such hyperparameter in this file; it has {}",
        known.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "model M(hidden: int = 8)(x: f32[B, 4]) -> f32[B, 3] {\n  x\n}\n\ntrain M on d {\n  loss = mse(out, y)\n  optimizer = adam(lr: 1e-3)\n  epochs 5\n  early_stop(monitor: val.loss)\n}\n";

    fn set(pairs: &[&str]) -> Result<String, String> {
        let overrides: Vec<Override> = pairs.iter().map(|p| p.parse().unwrap()).collect();
        apply(FILE, &overrides)
    }

    #[test]
    fn values_are_replaced_where_they_are_written() {
        let out = set(&["epochs=12", "hidden=32", "lr=3e-4", "M.hidden=64"]).unwrap();
        assert!(out.contains("  epochs 12\n"), "{out}");
        assert!(out.contains("(hidden: int = 64)"), "{out}");
        assert!(out.contains("adam(lr: 3e-4)"), "{out}");
    }

    #[test]
    fn missing_settings_and_arguments_are_added() {
        let out = set(&["batch=16", "optimizer.b1=0.8", "early_stop.patience=4"]).unwrap();
        assert!(out.contains("  batch 16\n}\n"), "{out}");
        assert!(out.contains("adam(lr: 1e-3, b1: 0.8)"), "{out}");
        assert!(
            out.contains("early_stop(monitor: val.loss, patience: 4)"),
            "{out}"
        );
    }

    #[test]
    fn unknown_names_list_what_the_file_has() {
        let err = set(&["hiden=3"]).unwrap_err();
        assert!(
            err.contains("M.hidden") && err.contains("optimizer.lr"),
            "{err}"
        );
        assert!("lr".parse::<Override>().is_err());
        assert!("=3".parse::<Override>().is_err());
    }
}

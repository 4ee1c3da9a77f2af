//! The `train` and `search` blocks: the models and data exist, the data's fields fit the models'
//! inputs, the loss is a scalar, the optimizer and its arguments are valid, settings are known,
//! metrics are computed before they are monitored.

use super::data::DataInfo;
use super::dim::Dim;
use super::ty::{Shape, ShapeElem, Ty, VarKind};
use super::{ArgVal, Checker, EarlyStop, Frame, Slot};
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::prim::TrainSetting;
use crate::resolve::ItemRef;
use crate::source::Span;
use crate::syntax::ast::*;

#[derive(Default)]
struct Seen {
    loss: bool,
    optimizer: bool,
    metrics: Vec<String>,
    /// The block's settings (outside phases) as far as checked, for lowering.
    config: super::TrainConfig,
}

impl Checker<'_> {
    pub(super) fn check_train(&mut self, module: usize, t: &TrainDecl) {
        let outer = std::mem::replace(&mut self.expand_calls, true);
        self.check_train_block(module, t);
        self.expand_calls = outer;
    }

    fn check_train_block(&mut self, module: usize, t: &TrainDecl) {
        let mut models: Vec<ItemRef> = Vec::new();
        for m in &t.models {
            let Some(r) = self.program.lookup(module, &m.name) else {
                continue;
            };
            match self.program.def(r) {
                Some(d) if d.kind == DefKind::Model => {
                    models.push(r);
                    for a in d.attrs.iter().filter(|a| a.default.is_none()) {
                        self.emit(
                            Diagnostic::error(
                                codes::ATTRIBUTE_WITHOUT_DEFAULT,
                                format!(
                                    "`{}` is trained with its default attributes, but `{}` has no default",
                                    m.name, a.name.name
                                ),
                            )
                            .with_primary(m.span, "the trained model is made here")
                            .with_secondary(a.span, "no default value")
                            .with_help(format!(
                                "give it one: `{} = …`",
                                self.sources.text(a.span)
                            )),
                        );
                    }
                }
                Some(d) => self.emit(
                    Diagnostic::error(
                        codes::TRAIN_TARGETS,
                        format!(
                            "`{}` is a {}, but `train` takes models",
                            m.name,
                            d.kind.keyword()
                        ),
                    )
                    .with_primary(m.span, format!("a {}", d.kind.keyword()))
                    .with_secondary(d.name.span, "defined here")
                    .with_help(format!(
                        "wrap it in a model: `model M(x: …) -> … {{ x |> {}(…) }}`",
                        m.name
                    )),
                ),
                None => self.emit(
                    Diagnostic::error(
                        codes::TRAIN_TARGETS,
                        format!("`{}` is a data block, not a model", m.name),
                    )
                    .with_primary(m.span, "not a model"),
                ),
            }
        }
        let data = match self
            .program
            .lookup(module, &t.data.name)
            .map(|r| self.program.item(r))
        {
            Some(Item::Data(d)) => {
                let d = d.clone();
                self.check_data(module, &d)
            }
            Some(_) => {
                self.emit(
                    Diagnostic::error(
                        codes::TRAIN_TARGETS,
                        format!("`{}` is not a data block", t.data.name),
                    )
                    .with_primary(t.data.span, "expected the name of a `data` block"),
                );
                DataInfo::default()
            }
            None => DataInfo::default(),
        };
        let mut f = Frame::new(module, None);
        f.models_are_instances = true;
        f.warn = true;
        let b = Dim::sym(self.fresh_sym("B"));
        f.bind("B", Ty::Int(b.clone()), t.span, VarKind::Plain);
        for (name, ty, span) in &data.fields {
            let batched = match ty {
                Ty::Tensor(dt, s) => {
                    let mut elems = vec![ShapeElem::Dim(b.clone())];
                    elems.extend(s.0.iter().cloned());
                    Ty::Tensor(*dt, Shape(elems.into()))
                }
                _ => Ty::Unknown,
            };
            f.bind(name.as_str(), batched, *span, VarKind::Plain);
        }
        let (out, target) = self.model_output(&mut f, &models, &data);
        if let Some(o) = out {
            f.bind("out", o, t.span, VarKind::Plain);
        }
        for v in &mut f.vars {
            v.used = true;
        }
        let mut seen = Seen::default();
        // Metrics first: `early_stop` may monitor them wherever they are declared.
        for s in &t.stmts {
            if let TrainStmt::Setting(set) = s
                && TrainSetting::from_name(&set.name.name) == Some(TrainSetting::Metrics)
            {
                self.metrics(&mut f, set, target.as_ref(), &mut seen);
            }
        }
        let has_phases = t.stmts.iter().any(|s| matches!(s, TrainStmt::Phase { .. }));
        self.train_stmts(&mut f, &t.stmts, &models, &data, &mut seen, None);
        let mut config = std::mem::take(&mut seen.config);
        config.metrics = seen.metrics.clone();
        self.facts.trains.push((t.span, config));
        self.trainings.push(Training {
            models: t.models.iter().map(|m| m.name.to_string()).collect(),
            data: t.data.name.to_string(),
            metrics: seen.metrics.clone(),
            splits: data.splits.clone(),
        });
        if !has_phases {
            let missing: Vec<&str> = [("loss", seen.loss), ("optimizer", seen.optimizer)]
                .iter()
                .filter(|(_, s)| !s)
                .map(|(n, _)| *n)
                .collect();
            if !missing.is_empty() {
                let header = Span {
                    end: t.data.span.end,
                    ..t.span
                };
                let (label, help) = match missing.as_slice() {
                    ["optimizer"] => (
                        "no `optimizer = …` in this block",
                        "say how to update the weights, e.g. `optimizer = adam(lr: 1e-3)`",
                    ),
                    ["loss"] => (
                        "no `loss = …` in this block",
                        "say what to minimize, e.g. `loss = sparse_cross_entropy(out, y)`",
                    ),
                    _ => (
                        "no `loss = …` and no `optimizer = …` in this block",
                        "add `loss = sparse_cross_entropy(out, y)` and `optimizer = adam(lr: 1e-3)`, or write `phase`s that each have a `loss` and an `update … with …`",
                    ),
                };
                self.emit(
                    Diagnostic::error(
                        codes::MISSING_LOSS_OR_OPTIMIZER,
                        format!("this training block has no {}", missing.join(" and no ")),
                    )
                    .with_primary(header, label)
                    .with_help(help),
                );
            }
        }
    }

    /// `out`: the single model applied to the data fields named like its inputs. Also checks
    /// that those fields fit the inputs. Returns `out` and the target field (for metrics).
    fn model_output(
        &mut self,
        f: &mut Frame,
        models: &[ItemRef],
        data: &DataInfo,
    ) -> (Option<Ty>, Option<(Ty, Span)>) {
        let mut out = None;
        let mut inputs: Vec<String> = Vec::new();
        // With several models (a GAN), the phases say what each model is applied to.
        if models.len() != 1 {
            return (None, None);
        }
        for &r in models {
            let def = self.program.def(r).expect("models are defs");
            let names: Vec<&str> = def.params.iter().map(|p| p.name.name.as_str()).collect();
            let fields: Vec<Option<&(String, Ty, Span)>> = names
                .iter()
                .map(|n| data.fields.iter().find(|(fname, _, _)| fname == n))
                .collect();
            if fields.iter().all(Option::is_some) && !fields.is_empty() {
                let args: Vec<ArgVal> = fields
                    .iter()
                    .map(|fld| {
                        let (name, _, span) = fld.expect("all some");
                        ArgVal {
                            name: None,
                            ty: f.lookup(name.as_str()).unwrap_or(Ty::Unknown),
                            span: *span,
                        }
                    })
                    .collect();
                let given: Vec<(String, Ty, Span)> = args
                    .iter()
                    .zip(&names)
                    .map(|(a, n)| (n.to_string(), a.ty.clone(), a.span))
                    .collect();
                let inst = self.model_instance(f, r, def.name.span);
                let mark = self.diags.len();
                let t = self.apply_instance(&inst, args, def.name.span);
                self.report_misfits(mark, def, &given);
                self.vocabulary_fit(def, &inst.attrs, &given, data);
                inputs.extend(names.iter().map(|n| n.to_string()));
                if models.len() == 1 {
                    out = Some(t);
                }
            } else if models.len() == 1 && !data.fields.is_empty() {
                let missing: Vec<&str> = names
                    .iter()
                    .zip(&fields)
                    .filter(|(_, fl)| fl.is_none())
                    .map(|(n, _)| *n)
                    .collect();
                let field_names: Vec<&str> =
                    data.fields.iter().map(|(n, _, _)| n.as_str()).collect();
                self.emit(
                    Diagnostic::error(codes::DATA_MODEL_MISMATCH, format!("the data has no field for the input `{}` of `{}`", missing.join("`, `"), def.name.name))
                        .with_primary(def.params.first().map_or(def.name.span, |p| p.name.span), "this input gets no data")
                        .with_note(format!("the data fields are {}", field_names.join(", ")))
                        .with_help("name the data field like the model's input (e.g. `x: f32[784] = …`), or rename the input"),
                );
            }
        }
        let target = data
            .fields
            .iter()
            .find(|(n, _, _)| !inputs.contains(n))
            .map(|(n, _, span)| (f.lookup(n.as_str()).unwrap_or(Ty::Unknown), *span));
        (out, target)
    }

    /// The errors of applying the model to the data fields that are about a field are the data
    /// and the model disagreeing, not a call the user wrote: each becomes one E0304 that
    /// points at both declarations.
    fn report_misfits(&mut self, mark: usize, model: &Def, fields: &[(String, Ty, Span)]) {
        let reported = self.diags.split_off(mark);
        let mut done: Vec<Span> = Vec::new();
        for d in reported {
            let about_field = fields
                .iter()
                .find(|(_, _, span)| d.primary_span() == Some(*span));
            let Some((name, ty, span)) = about_field else {
                self.diags.push(d);
                continue;
            };
            if done.contains(span) {
                continue;
            }
            done.push(*span);
            let declared = model
                .params
                .iter()
                .find(|p| p.name.name == *name)
                .and_then(|p| p.ty.as_ref());
            let declared_text = declared.map_or("?", |t| self.sources.text(t.span));
            let mut e = Diagnostic::error(
                codes::DATA_MODEL_MISMATCH,
                format!(
                    "the data field `{name}` does not fit the input `{name}` of `{}`: {ty} vs {declared_text}",
                    model.name.name
                ),
            )
            .with_primary(*span, format!("this field gives {ty} per batch"));
            if let Some(t) = declared {
                e = e.with_secondary(
                    t.span,
                    format!("`{}` takes {declared_text}", model.name.name),
                );
            }
            self.emit(
                e.with_note(d.message)
                    .with_help("make the input and the field agree"),
            );
        }
    }

    /// An input read from a field whose ids the data block bounds (a text source's declared
    /// vocabulary) must index tables of exactly that many rows: fewer, and an id has no row;
    /// more, and rows no id reaches (logits for ids that never occur, when the table is tied
    /// to the output). The tables are those the input indexes directly — `gather(w, x)` with
    /// `param w: [ROWS, …]`, `x |> Embedding(ROWS, …)` — whose rows are a number or an
    /// attribute of the model.
    fn vocabulary_fit(
        &mut self,
        model: &Def,
        attrs: &[(Symbol, Ty)],
        inputs: &[(String, Ty, Span)],
        data: &DataInfo,
    ) {
        for (name, _, field_span) in inputs {
            let Some((_, ids, source)) = data.classes.iter().find(|c| c.0 == *name) else {
                continue;
            };
            let body = model.body.unpack();
            for rows_expr in indexed_tables(&body, name) {
                let rows = match &rows_expr.kind {
                    ExprKind::Number {
                        value,
                        is_int: true,
                    } => Some(*value as i64),
                    ExprKind::Name(n) => {
                        attrs
                            .iter()
                            .find(|(a, _)| *a == n.name)
                            .and_then(|(_, t)| match t {
                                Ty::Int(d) => d.as_const(),
                                _ => None,
                            })
                    }
                    _ => None,
                };
                let Some(rows) = rows.filter(|r| r != ids) else {
                    continue;
                };
                self.emit(
                    Diagnostic::error(
                        codes::DATA_MODEL_MISMATCH,
                        format!(
                            "`{name}` holds ids 0 to {}, but `{}` looks them up in a table of {rows} rows",
                            ids - 1,
                            model.name.name
                        ),
                    )
                    .with_primary(rows_expr.span, format!("{rows} rows"))
                    .with_secondary(*field_span, format!("{ids} ids"))
                    .with_note(format!("`{source}` declares the vocabulary of `{name}`"))
                    .with_help(if rows < *ids {
                        format!("give the table {ids} rows: an id beyond its last row has nothing to look up")
                    } else {
                        format!("give the table {ids} rows, or declare `vocab: {rows}`: rows no id reaches are never trained")
                    }),
                );
            }
        }
    }

    fn metrics(
        &mut self,
        f: &mut Frame,
        set: &Setting,
        target: Option<&(Ty, Span)>,
        seen: &mut Seen,
    ) {
        let SettingValue::Values(values) = &set.value else {
            let listed = match &set.value {
                SettingValue::Assign(Expr {
                    kind: ExprKind::List(items),
                    ..
                }) => items
                    .iter()
                    .map(|it| match it {
                        ListItem::Expr(e) => self.sources.text(e.span).to_string(),
                        ListItem::Spread(id) => id.name.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => "accuracy".to_string(),
            };
            self.emit(
                Diagnostic::error(
                    codes::SETTING,
                    "`metrics` takes names, without `=` or brackets",
                )
                .with_primary(set.span, format!("write `metrics {listed}`"))
                .with_help(
                    "list the metrics after the word, separated by commas: `metrics accuracy, mae`",
                ),
            );
            return;
        };
        for v in values {
            self.metric_declaration(f.module, v);
            match &v.kind {
                ExprKind::Name(n) => {
                    seen.metrics.push(n.name.to_string());
                    let callee = self.expr(f, v);
                    let (Some(out), Some((tty, tspan))) = (f.lookup("out"), target) else {
                        continue;
                    };
                    let args = vec![
                        ArgVal {
                            name: None,
                            ty: out,
                            span: v.span,
                        },
                        ArgVal {
                            name: None,
                            ty: tty.clone(),
                            span: *tspan,
                        },
                    ];
                    let r = self.call(f, callee, v, args, v.span);
                    self.require_scalar(&r, v.span, &format!("the metric `{}`", n.name));
                }
                ExprKind::Call(call) => {
                    if let ExprKind::Name(n) = &call.callee.kind {
                        seen.metrics.push(n.name.to_string());
                    }
                    let r = self.expr(f, v);
                    self.require_scalar(&r, v.span, "this metric");
                }
                _ => self.emit(
                    Diagnostic::error(codes::SETTING, "a metric is a function name or a call")
                        .with_primary(v.span, "not a metric"),
                ),
            }
        }
    }

    /// Reports a metric whose `aggregate` or `higher_is_better` default cannot be read.
    fn metric_declaration(&mut self, module: usize, entry: &Expr) {
        let callee = match &entry.kind {
            ExprKind::Call(call) => &call.callee,
            _ => entry,
        };
        let ExprKind::Name(n) = &callee.kind else {
            return;
        };
        let Some(r) = self.program.lookup(module, &n.name) else {
            return;
        };
        if let Err(e) = super::metric::declaration(self.program, r) {
            self.emit(
                Diagnostic::error(codes::METRIC_DECLARATION, e.message)
                    .with_primary(e.span, "not a metric declaration")
                    .with_secondary(entry.span, format!("`{}` is used as a metric here", n.name)),
            );
        }
    }

    fn require_scalar(&mut self, t: &Ty, span: Span, what: &str) -> bool {
        if t.is_unknown() || (t.is_scalar() && !matches!(t, Ty::Bool(_))) {
            return true;
        }
        let mut d = Diagnostic::error(
            codes::NOT_SCALAR,
            format!("{what} must be a scalar, but it is {t}"),
        )
        .with_primary(span, format!("this is {t}"));
        d = match t {
            Ty::Tensor(_, s) if !s.0.is_empty() => d
                .with_note("training minimizes one number per step")
                .with_help("reduce it to a scalar, e.g. `mean(…)` over the batch"),
            _ => d.with_help("it must compute one number from the outputs and targets"),
        };
        self.emit(d);
        false
    }

    fn train_stmts(
        &mut self,
        f: &mut Frame,
        stmts: &[TrainStmt],
        models: &[ItemRef],
        data: &DataInfo,
        seen: &mut Seen,
        phase: Option<&Ident>,
    ) {
        for s in stmts {
            match s {
                TrainStmt::Let(st) => self.stmt(f, st),
                TrainStmt::Phase { name, stmts, span } => {
                    if phase.is_some() {
                        self.emit(
                            Diagnostic::error(codes::SETTING, "phases cannot be nested")
                                .with_primary(name.span, "inside another phase"),
                        );
                        continue;
                    }
                    let mark = f.vars.len();
                    let mut inner = Seen {
                        metrics: seen.metrics.clone(),
                        ..Seen::default()
                    };
                    let mut updated = false;
                    self.train_stmts(f, stmts, models, data, &mut inner, Some(name));
                    for st in stmts {
                        updated |= matches!(st, TrainStmt::Update { .. });
                    }
                    f.vars.truncate(mark);
                    if !inner.loss || !updated {
                        let what = match (inner.loss, updated) {
                            (false, false) => "`loss` and no `update … with …`",
                            (false, true) => "`loss`",
                            _ => "`update … with …`",
                        };
                        self.emit(
                            Diagnostic::error(codes::MISSING_LOSS_OR_OPTIMIZER, format!("phase `{}` has no {what}", name.name))
                                .with_primary(*span, "incomplete phase")
                                .with_help("each phase computes its own `loss` and says which model it trains: `update Critic with adam(lr: 2e-4)`"),
                        );
                    }
                }
                TrainStmt::Update {
                    targets, optimizer, ..
                }
                | TrainStmt::Constrain {
                    targets,
                    constraint: optimizer,
                    ..
                } => {
                    let want = if matches!(s, TrainStmt::Update { .. }) {
                        DefKind::Optimizer
                    } else {
                        DefKind::Constraint
                    };
                    for tgt in targets {
                        let unknown = matches!(&tgt.kind, ExprKind::Name(n) if self.program.lookup(f.module, &n.name).is_none());
                        let ok = unknown
                            || matches!(&tgt.kind, ExprKind::Name(n) if self.program.lookup(f.module, &n.name).is_some_and(|r| models.contains(&r)));
                        if !ok {
                            let names: Vec<String> =
                                models.iter().map(|r| self.def_name(*r)).collect();
                            self.emit(
                                Diagnostic::error(
                                    codes::UPDATE_TARGET,
                                    format!(
                                        "`{}` is not one of the models being trained",
                                        self.sources.text(tgt.span)
                                    ),
                                )
                                .with_primary(tgt.span, "not a trained model")
                                .with_help(format!("name one of: {}", names.join(", "))),
                            );
                        }
                    }
                    self.rule(f, optimizer, want);
                }
                TrainStmt::Setting(set) => self.train_setting(f, set, data, seen, phase),
            }
        }
    }

    /// An optimizer or constraint expression: `adam(lr: 1e-3)` or a bare `sgd`.
    fn rule(&mut self, f: &mut Frame, e: &Expr, want: DefKind) {
        let t = match &e.kind {
            ExprKind::Name(n) => {
                let callee = self.expr(f, e);
                match callee {
                    super::ty::Ty::Callable(super::ty::Callable::Def(r))
                        if self.program.def(r).is_some_and(|d| d.kind == want) =>
                    {
                        let def = self.program.def(r).expect("checked");
                        let required: Vec<&str> = def
                            .params
                            .iter()
                            .filter(|p| p.default.is_none())
                            .map(|p| p.name.name.as_str())
                            .collect();
                        if let Some(first) = required.first() {
                            self.emit(
                                Diagnostic::error(
                                    codes::ARGUMENT_COUNT,
                                    format!("`{}` needs `{}`", n.name, required.join("`, `")),
                                )
                                .with_primary(e.span, "named without its arguments")
                                .with_help(format!(
                                    "call it: `{}({first}: …)`; only an {} whose arguments all have defaults can be named alone",
                                    n.name,
                                    want.keyword()
                                )),
                            );
                            return;
                        }
                        self.call(f, callee, e, Vec::new(), e.span)
                    }
                    other => other,
                }
            }
            _ => self.expr(f, e),
        };
        match t {
            Ty::Rule(r) if self.program.def(r).is_some_and(|d| d.kind == want) => {}
            Ty::Unknown => {}
            Ty::Rule(r) => {
                let name = self.def_name(r);
                let d = if want == DefKind::Optimizer {
                    Diagnostic::error(
                        codes::UPDATE_TARGET,
                        format!("`{name}` is a constraint, but `update … with` takes an optimizer"),
                    )
                    .with_primary(e.span, "a constraint, not an optimizer")
                    .with_help("update with an optimizer such as `adam(lr: 1e-3)`; constraints go in `constrain Model with …`")
                } else {
                    Diagnostic::error(
                        codes::UPDATE_TARGET,
                        format!("`{name}` is an optimizer, but `constrain … with` takes a constraint"),
                    )
                    .with_primary(e.span, "an optimizer, not a constraint")
                    .with_help("a constraint limits the weights after each update, such as `max_norm(3)` or `non_neg`; the optimizer is set with `optimizer = …`")
                };
                self.emit(d);
            }
            other => {
                let noun = if want == DefKind::Optimizer {
                    "an optimizer"
                } else {
                    "a constraint"
                };
                let examples = if want == DefKind::Optimizer {
                    "`adam(lr: 1e-3)`, `sgd(lr: 0.1)`"
                } else {
                    "`max_norm(3)`"
                };
                self.emit(
                    Diagnostic::error(codes::UPDATE_TARGET, format!("expected {noun}, found {other}"))
                        .with_primary(e.span, format!("not {noun}"))
                        .with_help(format!("use one from the standard library, such as {examples}, or define one with `{}`", want.keyword())),
                );
            }
        }
    }

    /// A loss that reads a field as class indices (`sparse_cross_entropy(out, y)`) against the
    /// model's classes, when the data block fixes how many labels that field holds: more labels
    /// than classes is an error here, not a silent zero loss at run time.
    fn label_range(&mut self, f: &mut Frame, loss: &Expr, data: &DataInfo) {
        const BY_INDEX: &[&str] = &[
            "sparse_cross_entropy",
            "sparse_categorical_cross_entropy",
            "accuracy",
        ];
        let mut stack = vec![loss];
        while let Some(e) = stack.pop() {
            let ExprKind::Call(call) = &e.kind else {
                match &e.kind {
                    ExprKind::Binary { lhs, rhs, .. } => stack.extend([&**lhs, &**rhs]),
                    ExprKind::Unary { expr, .. } => stack.push(expr),
                    _ => {}
                }
                continue;
            };
            let Call { callee, args, .. } = &**call;
            stack.extend(args.iter().map(|a| &a.value));
            let ExprKind::Name(name) = &callee.kind else {
                continue;
            };
            if !BY_INDEX.contains(&name.name.as_str()) {
                continue;
            }
            let arg = |named: &[&str], position: usize| {
                args.iter()
                    .find(|a| {
                        a.name
                            .as_ref()
                            .is_some_and(|n| named.contains(&n.name.as_str()))
                    })
                    .or_else(|| args.iter().filter(|a| a.name.is_none()).nth(position))
            };
            let (Some(scores), Some(target)) = (arg(&["logits", "pred"], 0), arg(&["target"], 1))
            else {
                continue;
            };
            let (ExprKind::Name(scores_name), ExprKind::Name(field)) =
                (&scores.value.kind, &target.value.kind)
            else {
                continue;
            };
            let classes = match f.lookup(scores_name.name) {
                Some(Ty::Tensor(_, shape)) => match shape.0.last() {
                    Some(ShapeElem::Dim(d)) => d.as_const(),
                    _ => None,
                },
                _ => None,
            };
            if let Some((_, label)) = data.unstated_classes.iter().find(|c| c.0 == field.name) {
                let count = classes.map_or("N".to_string(), |c| c.to_string());
                let mut d = Diagnostic::error(
                    codes::CLASSES_NOT_STATED,
                    format!(
                        "`{}` reads `{}` as class indices, but its `label` does not say how many classes there are",
                        name.name, field.name
                    ),
                )
                .with_primary(target.value.span, "class indices of an unstated number of classes")
                .with_secondary(*label, "fitted on the training split, unknown until the data are loaded");
                if let Some(c) = classes {
                    d = d.with_secondary(
                        scores.value.span,
                        format!("{c} class{}", if c == 1 { "" } else { "es" }),
                    );
                }
                self.emit(d.with_help(format!(
                    "state the count, `label(classes: {count})`: it is then checked against the model here and against the categories when the data are loaded"
                )));
                continue;
            }
            let Some((_, labels, source)) = data.classes.iter().find(|c| c.0 == field.name) else {
                continue;
            };
            if let Some(classes) = classes.filter(|c| labels > c) {
                self.emit(
                    Diagnostic::error(
                        codes::DATA_MODEL_MISMATCH,
                        format!(
                            "`{}` holds labels 0 to {}, but `{}` scores {classes} class{}",
                            field.name,
                            labels - 1,
                            scores_name.name,
                            if classes == 1 { "" } else { "es" }
                        ),
                    )
                    .with_primary(target.value.span, format!("{labels} classes in the data"))
                    .with_secondary(
                        scores.value.span,
                        format!("{classes} class{}", if classes == 1 { "" } else { "es" }),
                    )
                    .with_note(format!("`{source}` makes the labels of `{}`", field.name))
                    .with_help(format!(
                        "give the model {labels} outputs, or make the data with {classes} classes: a label the model has no class for trains to a loss of 0 and is never right"
                    )),
                );
            }
        }
    }

    fn train_setting(
        &mut self,
        f: &mut Frame,
        set: &Setting,
        data: &DataInfo,
        seen: &mut Seen,
        phase: Option<&Ident>,
    ) {
        let name = set.name.name.as_str();
        match (TrainSetting::from_name(name), &set.value) {
            (Some(TrainSetting::Loss), SettingValue::Assign(e)) => {
                seen.loss = true;
                let t = self.expr(f, e);
                self.label_range(f, e, data);
                if !matches!(t, Ty::Tensor(d, _) if !d.is_float()) {
                    self.require_scalar(&t, e.span, "the loss");
                } else {
                    self.emit(
                        Diagnostic::error(
                            codes::NOT_SCALAR,
                            format!("the loss must be a float scalar, found {t}"),
                        )
                        .with_primary(e.span, "not a float"),
                    );
                }
            }
            (Some(TrainSetting::Optimizer), SettingValue::Assign(e)) if phase.is_none() => {
                seen.optimizer = true;
                self.rule(f, e, DefKind::Optimizer);
            }
            (Some(TrainSetting::Optimizer), _) => self.emit(
                Diagnostic::error(
                    codes::SETTING,
                    "inside a phase, say which model the optimizer trains",
                )
                .with_primary(set.span, "`optimizer =` is for single-phase training")
                .with_help("write `update Model with adam(lr: 1e-3)`"),
            ),
            (
                Some(setting @ (TrainSetting::Batch | TrainSetting::Epochs)),
                SettingValue::Values(v),
            ) if v.len() == 1 => {
                let t = self.expr(f, &v[0]);
                let value = match &t {
                    Ty::Int(d) => d
                        .as_const()
                        .filter(|&c| c > 0)
                        .and_then(|c| usize::try_from(c).ok()),
                    _ => None,
                };
                if phase.is_none()
                    && let Some(n) = value
                {
                    match setting {
                        TrainSetting::Batch => seen.config.batch = n,
                        _ => seen.config.epochs = Some(n),
                    }
                }
                if value.is_none() && !t.is_unknown() {
                    self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            format!(
                                "`{name}` must be a positive whole number, found {}",
                                self.sources.text(v[0].span)
                            ),
                        )
                        .with_primary(v[0].span, "not a positive integer")
                        .with_help(if setting == TrainSetting::Batch {
                            "write the number of samples per step, e.g. `batch 64`"
                        } else {
                            "write the number of passes over the data, e.g. `epochs 5`"
                        }),
                    );
                }
            }
            // Its form was checked with the other metrics first.
            (Some(TrainSetting::Metrics), _) => {}
            (Some(TrainSetting::EarlyStop), SettingValue::Call(args, span)) => {
                let early_stop = self.early_stop(f, args, *span, data, seen);
                if phase.is_none() {
                    seen.config.early_stop = early_stop;
                }
            }
            (Some(TrainSetting::Checkpoint), SettingValue::Values(v)) if v.len() == 1 => {
                if phase.is_none() {
                    seen.config.checkpoint = string_literal(&v[0]);
                }
                if !matches!(self.expr(f, &v[0]), Ty::Str(_)) {
                    self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            "`checkpoint` takes a directory path in quotes",
                        )
                        .with_primary(v[0].span, "not a string")
                        .with_help("write `checkpoint \"runs/my_model\"`"),
                    );
                }
            }
            (Some(TrainSetting::Log), SettingValue::Values(v)) if v.len() == 1 => {
                if phase.is_none() {
                    seen.config.log = string_literal(&v[0]);
                }
                if !matches!(self.expr(f, &v[0]), Ty::Str(_)) {
                    self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            "`log` takes a directory path in quotes, where TensorBoard's event files go",
                        )
                        .with_primary(v[0].span, "not a string")
                        .with_help("write `log \"runs/my_model/logs\"`"),
                    );
                }
            }
            (Some(TrainSetting::ClipGradNorm), SettingValue::Values(v)) if v.len() == 1 => {
                let value = match self.expr(f, &v[0]) {
                    Ty::Float(Some(x)) => Some(x),
                    Ty::Int(d) => d.as_const().map(|c| c as f64),
                    _ => None,
                }
                .filter(|&x| x > 0.0);
                if phase.is_none() {
                    seen.config.clip_grad_norm = value;
                }
                if value.is_none() {
                    self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            "`clip_grad_norm` must be a positive number",
                        )
                        .with_primary(v[0].span, "not positive")
                        .with_help(
                            "write the largest allowed gradient norm, e.g. `clip_grad_norm 1.0`",
                        ),
                    );
                }
            }
            (Some(TrainSetting::Seed), SettingValue::Values(v)) if v.len() == 1 => {
                let t = self.expr(f, &v[0]);
                // Exactly, not through f64: a seed may be any non-negative 64-bit integer.
                let value = match &t {
                    Ty::Int(d) => d.as_const().and_then(|c| u64::try_from(c).ok()),
                    _ => None,
                };
                if phase.is_none() {
                    seen.config.seed = value;
                }
                if value.is_none() && !t.is_unknown() {
                    self.emit(
                        Diagnostic::error(
                            codes::SETTING_VALUE,
                            format!(
                                "`seed` must be a non-negative whole number, found {}",
                                self.sources.text(v[0].span)
                            ),
                        )
                        .with_primary(v[0].span, "not a non-negative integer")
                        .with_help(
                            "write a number such as `seed 1`; the same seed repeats a run exactly",
                        ),
                    );
                }
            }
            (
                Some(
                    setting @ (TrainSetting::Init | TrainSetting::Freeze | TrainSetting::FrozenBn),
                ),
                _,
            ) => {
                use crate::syntax::finetune;
                let err = match setting {
                    TrainSetting::Init if phase.is_some() => Some((
                        set.span,
                        "`init` loads weights once, before training: put it outside the phases"
                            .to_string(),
                    )),
                    TrainSetting::Init => finetune::init(set)
                        .map(|init| seen.config.init = Some(init))
                        .err(),
                    TrainSetting::Freeze => finetune::freeze(set).err(),
                    _ => finetune::frozen_bn(set)
                        .map(|mode| {
                            if phase.is_none() {
                                seen.config.frozen_bn = mode;
                            }
                        })
                        .err(),
                };
                if let Some((span, message)) = err {
                    self.emit(
                        Diagnostic::error(codes::SETTING_VALUE, format!("`{name}`: {message}"))
                            .with_primary(span, "here"),
                    );
                }
            }
            (Some(known), _) => {
                self.emit(
                    Diagnostic::error(
                        codes::SETTING,
                        format!("`{}` is not written this way", known.name()),
                    )
                    .with_primary(set.span, format!("write `{}`", known.example()))
                    .with_help(
                        "only `loss` and `optimizer` take `=`; the other settings are a word and a value",
                    ),
                );
            }
            (None, _) => {
                let names = TrainSetting::ALL.map(TrainSetting::name);
                let mut d = Diagnostic::error(
                    codes::SETTING,
                    format!("`{name}` is not a training setting"),
                )
                .with_primary(set.name.span, "unknown setting");
                d = match crate::suggest::closest(name, names.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("the settings are {}", names.join(", "))),
                };
                self.emit(d);
            }
        }
    }

    fn early_stop(
        &mut self,
        f: &mut Frame,
        args: &[Arg],
        span: Span,
        data: &DataInfo,
        seen: &Seen,
    ) -> Option<EarlyStop> {
        let words = crate::prim::early_stop_words(
            args.iter()
                .map(|a| a.name.as_ref().map(|n| n.name.as_str())),
        );
        let vals: Vec<ArgVal> = args
            .iter()
            .enumerate()
            .map(|(i, a)| ArgVal {
                name: a.name.clone(),
                ty: if words.get(i).copied().unwrap_or(false) {
                    Ty::Str(String::new())
                } else {
                    self.expr(f, &a.value)
                },
                span: a.value.span,
            })
            .collect();
        let slots: Vec<Slot> = crate::prim::EARLY_STOP
            .iter()
            .map(|p| Slot {
                name: p.name,
                optional: p.optional,
            })
            .collect();
        let bound = self.bind_slots(&slots, &vals, "early_stop", span)?;
        // The argument expressions of each parameter, as bound.
        let expr_of = |i: usize| {
            let at = bound[i].as_ref()?.span;
            args.iter().map(|a| &a.value).find(|e| e.span == at)
        };
        let monitor_expr = expr_of(0);
        if let Some(m) = monitor_expr {
            self.monitor(m, data, seen);
        }
        let mode_expr = expr_of(1);
        let minimize = match mode_expr.map(|e| &e.kind) {
            Some(ExprKind::Name(n)) if n.name == "min" => Some(true),
            Some(ExprKind::Name(n)) if n.name == "max" => Some(false),
            _ => None,
        };
        if let Some(e) = mode_expr
            && minimize.is_none()
        {
            self.emit(
                Diagnostic::error(codes::SETTING_VALUE, "`mode` is `min` or `max`")
                    .with_primary(e.span, "not a mode")
                    .with_help("`min` for losses and errors, `max` for accuracies"),
            );
        }
        let patience = match bound[2].as_ref().map(|p| &p.ty) {
            None => Some(0),
            Some(Ty::Int(d)) => d.as_const().and_then(|c| usize::try_from(c).ok()),
            Some(_) => None,
        };
        if let (Some(p), None) = (&bound[2], patience) {
            self.emit(
                Diagnostic::error(
                    codes::SETTING_VALUE,
                    "`patience` must be a whole number of epochs",
                )
                .with_primary(p.span, "not a non-negative integer"),
            );
        }
        let min_delta = match bound[3].as_ref().map(|a| &a.ty) {
            None => 0.0,
            Some(Ty::Float(Some(x))) => *x,
            Some(Ty::Int(d)) => d.as_const().map_or(0.0, |c| c as f64),
            Some(_) => 0.0,
        };
        let restore_best = matches!(bound[4].as_ref().map(|a| &a.ty), Some(Ty::Bool(Some(true))));
        let ExprKind::Member(member) = &monitor_expr?.kind else {
            return None;
        };
        let Member { base, field } = &**member;
        let ExprKind::Name(split) = &base.kind else {
            return None;
        };
        // Without `mode`, as the metric declares (the loss and errors are minimized).
        let minimize = minimize.unwrap_or_else(|| {
            !self
                .program
                .lookup(f.module, &field.name)
                .and_then(|r| super::metric::declaration(self.program, r).ok())
                .is_some_and(|d| d.higher_is_better)
        });
        Some(EarlyStop {
            split: split.name.to_string(),
            metric: field.name.to_string(),
            minimize,
            patience: patience?,
            min_delta,
            restore_best,
        })
    }

    fn monitor(&mut self, m: &Expr, data: &DataInfo, seen: &Seen) {
        let ExprKind::Member(member) = &m.kind else {
            self.emit(
                Diagnostic::error(
                    codes::MONITOR,
                    "a monitored value names a split and a metric",
                )
                .with_primary(m.span, "expected `split.metric`")
                .with_help("write `val.loss`, `val.accuracy` or `train.loss`"),
            );
            return;
        };
        let Member { base, field } = &**member;
        let split = match &base.kind {
            ExprKind::Name(n) => n.clone(),
            _ => return,
        };
        if !["train", "val", "test"].contains(&split.name.as_str())
            && !data.splits.iter().any(|n| n == split.name.as_str())
        {
            self.emit(
                Diagnostic::error(codes::MONITOR, format!("`{}` is not a split", split.name))
                    .with_primary(split.span, "unknown split")
                    .with_help("monitor `train.…` or `val.…`"),
            );
            return;
        }
        if split.name == "val" && !data.splits.iter().any(|s| s == "val") {
            self.emit(
                Diagnostic::error(
                    codes::NO_VALIDATION_SPLIT,
                    "`val` is monitored, but the data has no validation split",
                )
                .with_primary(split.span, "no `val` split")
                .with_help(
                    "add `split val = 0.1 of train` to the data block, or monitor `train.loss`",
                ),
            );
            return;
        }
        let metric = field.name.as_str();
        if metric != "loss" && !seen.metrics.iter().any(|m| m == metric) {
            let mut cands: Vec<&str> = seen.metrics.iter().map(String::as_str).collect();
            cands.push("loss");
            let mut d = Diagnostic::error(
                codes::MONITOR,
                format!(
                    "`{}.{metric}` is monitored, but `{metric}` is never computed",
                    split.name
                ),
            )
            .with_primary(field.span, "not among the computed metrics");
            d = match crate::suggest::closest(metric, cands.iter().copied()) {
                Some(s) => d.with_help(format!(
                    "did you mean `{s}`? Otherwise add `metrics {metric}`"
                )),
                None => d.with_help(format!(
                    "add `metrics {metric}` to the training block, or monitor one of: {}",
                    cands.join(", ")
                )),
            };
            self.emit(d);
        }
    }

    pub(super) fn check_search(&mut self, module: usize, s: &SearchDecl) {
        let mut f = Frame::new(module, None);
        let strategy = self.search_strategy(s);
        let mut hyper: Vec<String> = Vec::new();
        for m in &s.models {
            if let Some(d) = self
                .program
                .lookup(module, &m.name)
                .and_then(|r| self.program.def(r))
            {
                hyper.extend(d.attrs.iter().map(|a| a.name.name.to_string()));
            }
        }
        // Optimizer arguments of the training block over the same models are hyperparameters too.
        let same_models = |t: &TrainDecl| {
            t.models
                .iter()
                .map(|m| &m.name)
                .eq(s.models.iter().map(|m| &m.name))
        };
        for item in &self.program.modules[module].ast.items {
            if let Item::Train(t) = item
                && same_models(t)
            {
                collect_optimizer_args(&t.stmts, &mut hyper);
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for (name, values) in &s.space {
            if seen.contains(&name.name.as_str()) {
                self.emit(
                    Diagnostic::error(
                        codes::ARGUMENT_TWICE,
                        format!("`{}` is searched twice", name.name),
                    )
                    .with_primary(name.span, "searched again here")
                    .with_help("give each hyperparameter one space"),
                );
            }
            seen.push(&name.name);
            if !hyper.iter().any(|n| n == name.name.as_str()) {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_ARGUMENT,
                    format!("`{}` is not a hyperparameter of this training", name.name),
                )
                .with_primary(name.span, "unknown hyperparameter");
                d = match crate::suggest::closest(&name.name, hyper.iter().map(String::as_str)) {
                    Some(sugg) => d.with_help(format!("did you mean `{sugg}`?")),
                    None => d.with_help(format!(
                        "search over model attributes or optimizer arguments: {}",
                        hyper.join(", ")
                    )),
                };
                self.emit(d);
            }
            self.search_space(&mut f, values, strategy.as_deref());
        }
        let training = self
            .trainings
            .iter()
            .find(|t| t.models.iter().eq(s.models.iter().map(|m| &m.name)))
            .cloned();
        let Some(training) = training else {
            let names: Vec<&str> = s.models.iter().map(|m| m.name.as_str()).collect();
            let header = Span {
                end: s.data.span.end,
                ..s.span
            };
            self.emit(
                Diagnostic::error(
                    codes::TRAIN_TARGETS,
                    format!("no `train` block trains {}", names.join(", ")),
                )
                .with_primary(header, "nothing to search over")
                .with_help(format!(
                    "a search varies the training of `train {} on {} {{ … }}`: write that block",
                    names.join(", "),
                    s.data.name
                )),
            );
            return;
        };
        if training.data != s.data.name {
            self.emit(
                Diagnostic::error(
                    codes::TRAIN_TARGETS,
                    format!(
                        "the search is on `{}`, but the train block trains on `{}`",
                        s.data.name, training.data
                    ),
                )
                .with_primary(s.data.span, "not the training's data")
                .with_help(format!("write `on {}`", training.data)),
            );
        }
        self.search_goal(&s.metric, &training);
    }

    /// The strategy's name when it is one, after checking its arguments.
    fn search_strategy(&mut self, s: &SearchDecl) -> Option<String> {
        let e = &s.strategy;
        let Some((name, args)) = crate::search::call(e) else {
            self.emit(
                Diagnostic::error(codes::SETTING, "a search strategy is a call")
                    .with_primary(e.span, "not a strategy")
                    .with_help("write `grid()`, `random(trials: 20, seed: 1)`, `hyperband(max_epochs: 27)` or `tpe(trials: 30)`"),
            );
            return None;
        };
        if !crate::search::STRATEGIES.contains(&name) {
            let callee = match &e.kind {
                ExprKind::Call(call) => call.callee.span,
                _ => e.span,
            };
            let mut d = Diagnostic::error(codes::SETTING, format!("no search strategy `{name}`"))
                .with_primary(callee, "unknown strategy");
            d = match crate::suggest::closest(name, crate::search::STRATEGIES.iter().copied()) {
                Some(sugg) => d.with_help(format!("did you mean `{sugg}`?")),
                None => d.with_help("the strategies are `grid()`, `random(trials:, seed:)`, `hyperband(max_epochs:, factor:, seed:)` and `tpe(trials:, startup:, seed:)`"),
            };
            self.emit(d);
            return None;
        }
        let spec = crate::search::strategy_args(name);
        let keys: Vec<&str> = spec.iter().map(|(k, _)| *k).collect();
        let mut given: Vec<&str> = Vec::new();
        // Required arguments an unknown one looks like a misspelling of (reported as that).
        let mut misspelled: Vec<&str> = Vec::new();
        for a in args {
            let Some(key) = &a.name else {
                self.emit(
                    Diagnostic::error(
                        codes::SETTING_VALUE,
                        format!("the arguments of `{name}` are named"),
                    )
                    .with_primary(a.span, "an unnamed argument")
                    .with_help(if keys.is_empty() {
                        "`grid()` takes no arguments: the lists of the block are its points"
                            .to_string()
                    } else {
                        format!("write `{}: …`", keys[0])
                    }),
                );
                continue;
            };
            if !keys.contains(&key.name.as_str()) {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_ARGUMENT,
                    format!("`{name}` has no argument `{}`", key.name),
                )
                .with_primary(key.span, "unknown argument");
                d = match crate::suggest::closest(&key.name, keys.iter().copied()) {
                    Some(sugg) => {
                        misspelled.push(sugg);
                        d.with_help(format!("did you mean `{sugg}`?"))
                    }
                    None if keys.is_empty() => d.with_help(
                        "`grid()` takes no arguments: the lists of the block are its points",
                    ),
                    None => d.with_help(format!("`{name}` takes {}", keys.join(", "))),
                };
                self.emit(d);
                continue;
            }
            if given.contains(&key.name.as_str()) {
                self.emit(
                    Diagnostic::error(
                        codes::ARGUMENT_TWICE,
                        format!("`{}` is given twice", key.name),
                    )
                    .with_primary(key.span, "given again here"),
                );
                continue;
            }
            given.push(&key.name);
            let least = match key.name.as_str() {
                "seed" => 0,
                "factor" => 2,
                _ => 1,
            };
            let ok = crate::search::whole(&a.value).is_some_and(|v| v >= least);
            if !ok {
                let (what, help) = match key.name.as_str() {
                    "seed" => (
                        "a whole number, 0 or more",
                        "any whole number from 0 picks a sequence of trials",
                    ),
                    "factor" => (
                        "a whole number, 2 or more",
                        "each rung keeps the best 1/factor of its trials; 3 is usual",
                    ),
                    "max_epochs" => (
                        "a whole number of epochs, 1 or more",
                        "the epochs of the longest-trained trials",
                    ),
                    _ => ("a whole number, 1 or more", "the number of trials to train"),
                };
                self.emit(
                    Diagnostic::error(
                        codes::SETTING_VALUE,
                        format!("`{}` of `{name}` must be {what}", key.name),
                    )
                    .with_primary(a.value.span, format!("not {what}"))
                    .with_help(help),
                );
            }
        }
        let missing: Vec<&str> = spec
            .iter()
            .filter(|(k, default)| {
                default.is_none() && !given.contains(k) && !misspelled.contains(k)
            })
            .map(|(k, _)| *k)
            .collect();
        if !missing.is_empty() {
            self.emit(
                Diagnostic::error(
                    codes::SETTING_VALUE,
                    format!("`{name}` needs `{}`", missing.join("` and `")),
                )
                .with_primary(e.span, format!("no `{}`", missing.join("`, `")))
                .with_help(format!(
                    "e.g. `{name}({})`",
                    missing
                        .iter()
                        .map(|k| format!("{k}: {}", if *k == "max_epochs" { 27 } else { 20 }))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
        if let (Some(t), Some(st)) = (
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "trials"))
                .and_then(|a| crate::search::whole(&a.value)),
            args.iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "startup")),
        ) && crate::search::whole(&st.value).is_some_and(|v| v > t)
        {
            self.emit(
                Diagnostic::error(
                    codes::SETTING_VALUE,
                    format!("`startup` is more than the {t} trials"),
                )
                .with_primary(st.value.span, "more random start-up trials than trials")
                .with_help("the start-up trials are the first of `trials`; TPE draws the rest"),
            );
        }
        Some(name.to_string())
    }

    /// One dimension's space: a list, or a distribution with valid bounds; a grid takes lists.
    fn search_space(&mut self, f: &mut Frame, values: &Expr, strategy: Option<&str>) {
        let bad = |message: String, label: &str, help: &str| {
            Diagnostic::error(codes::SETTING_VALUE, message)
                .with_primary(values.span, label.to_string())
                .with_help(help.to_string())
        };
        match &values.kind {
            ExprKind::List(items) => {
                if items.is_empty() {
                    self.emit(bad(
                        "a search list needs a value".into(),
                        "empty",
                        "write the values to try: `[64, 128, 256]`",
                    ));
                } else {
                    self.expr(f, values);
                }
                return;
            }
            ExprKind::Call { .. } => {}
            _ => {
                self.emit(bad(
                    "a search dimension is a list or a distribution".into(),
                    "not a search space",
                    "write `[64, 128, 256]` or `log_uniform(1e-4, 1e-2)`",
                ));
                return;
            }
        }
        let Some((name, args)) = crate::search::call(values) else {
            return;
        };
        if !crate::prim::SEARCH_DISTRIBUTIONS.contains(&name) {
            let mut d = Diagnostic::error(
                codes::SETTING_VALUE,
                format!("`{name}` is not a search distribution"),
            )
            .with_primary(values.span, "not a search space");
            d = match crate::suggest::closest(name, crate::prim::SEARCH_DISTRIBUTIONS.iter().copied()) {
                Some(sugg) => d.with_help(format!("did you mean `{sugg}`?")),
                None => d.with_help("write a list, `uniform(lo, hi)`, `log_uniform(lo, hi)`, `int_range(lo, hi)` or `choice(a, b, …)`"),
            };
            self.emit(d);
            return;
        }
        if name == "choice" {
            if args.is_empty() {
                self.emit(bad(
                    "`choice` needs a value".into(),
                    "no values",
                    "write the values to try: `choice(\"relu\", \"tanh\")`",
                ));
            }
            for a in args {
                self.expr(f, &a.value);
            }
            return;
        }
        if strategy == Some("grid") {
            self.emit(bad(
                format!("a grid takes lists of values, not a distribution like `{name}`"),
                "a distribution in a grid",
                "list the values to try, as `[1e-3, 3e-3, 1e-2]`, or draw from the distribution with `random(trials: N)`",
            ));
            return;
        }
        let bounds: Vec<Option<(f64, bool)>> = args
            .iter()
            .map(|a| crate::search::number(&a.value))
            .collect();
        let (lo, hi) = match bounds.as_slice() {
            [Some(lo), Some(hi)] if args.iter().all(|a| a.name.is_none()) => (*lo, *hi),
            _ => {
                self.emit(bad(
                    format!("`{name}` takes two numbers, its bounds"),
                    "not two numbers",
                    &format!("write `{name}(lo, hi)` with number literals"),
                ));
                return;
            }
        };
        let problem = match name {
            "int_range" if !(lo.1 && hi.1) => Some("whole-number bounds".to_string()),
            "int_range" if lo.0 > hi.0 => Some(format!("lo ≤ hi, but {} > {}", lo.0, hi.0)),
            "log_uniform" if lo.0 <= 0.0 => Some(format!(
                "positive bounds (its logarithm is uniform), but the lower one is {}",
                lo.0
            )),
            "uniform" | "log_uniform" if lo.0 >= hi.0 => {
                Some(format!("lo < hi, but {} ≥ {}", lo.0, hi.0))
            }
            _ => None,
        };
        if let Some(p) = problem {
            let (label, help) = if name == "log_uniform" && lo.0 <= 0.0 {
                (
                    "a bound of 0 or less",
                    "a log-uniform range lies above 0, as `log_uniform(1e-5, 1e-1)`",
                )
            } else {
                (
                    "an empty range",
                    "give the smallest value first, then the largest",
                )
            };
            self.emit(bad(format!("`{name}` needs {p}"), label, help));
        }
    }

    /// The goal: `train.M` or `val.M`, M the loss or a metric of the train block.
    fn search_goal(&mut self, m: &Expr, training: &Training) {
        let Some((split, metric)) = crate::search::goal_metric(m) else {
            self.emit(
                Diagnostic::error(codes::MONITOR, "a search's goal names a split and a metric")
                    .with_primary(m.span, "expected `split.metric`")
                    .with_help("write `maximize val.accuracy` or `minimize val.loss`"),
            );
            return;
        };
        let ExprKind::Member(member) = &m.kind else {
            return;
        };
        let Member { base, field } = &**member;
        if split != "train" && split != "val" {
            let help = if split == "test" || training.splits.contains(&split) {
                "choose by `val.…`: the test split then measures the chosen trial without having chosen it"
            } else {
                "the goal is measured on `val` (or `train`) at every epoch"
            };
            self.emit(
                Diagnostic::error(
                    codes::MONITOR,
                    format!("a search's goal is measured on `train` or `val`, not `{split}`"),
                )
                .with_primary(base.span, "not `train` or `val`")
                .with_help(help),
            );
            return;
        }
        if split == "val" && !training.splits.iter().any(|s| s == "val") {
            self.emit(
                Diagnostic::error(
                    codes::NO_VALIDATION_SPLIT,
                    "the goal is on `val`, but the data has no validation split",
                )
                .with_primary(base.span, "no `val` split")
                .with_help("add `split val = 0.1 of train` to the data block"),
            );
            return;
        }
        if metric != "loss" && !training.metrics.contains(&metric) {
            let mut cands: Vec<&str> = training.metrics.iter().map(String::as_str).collect();
            cands.push("loss");
            let mut d = Diagnostic::error(
                codes::MONITOR,
                format!("the goal is `{split}.{metric}`, but the train block does not compute `{metric}`"),
            )
            .with_primary(field.span, "not among the computed metrics");
            d = match crate::suggest::closest(&metric, cands.iter().copied()) {
                Some(sugg) => d.with_help(format!("did you mean `{sugg}`?")),
                None => d.with_help(format!(
                    "add `metrics {metric}` to the train block, or choose one of: {}",
                    cands.join(", ")
                )),
            };
            self.emit(d);
        }
    }
}

/// What a train block computes, for the search blocks over its models.
#[derive(Debug, Clone)]
pub(super) struct Training {
    models: Vec<String>,
    data: String,
    metrics: Vec<String>,
    splits: Vec<String>,
}

fn collect_optimizer_args(stmts: &[TrainStmt], out: &mut Vec<String>) {
    for s in stmts {
        match s {
            TrainStmt::Setting(Setting {
                value: SettingValue::Assign(e),
                name,
                ..
            }) if name.name == "optimizer" => call_arg_names(e, out),
            TrainStmt::Update { optimizer, .. } => call_arg_names(optimizer, out),
            TrainStmt::Phase { stmts, .. } => collect_optimizer_args(stmts, out),
            _ => {}
        }
    }
}

fn call_arg_names(e: &Expr, out: &mut Vec<String>) {
    if let ExprKind::Call(call) = &e.kind {
        out.extend(
            call.args
                .iter()
                .filter_map(|a| a.name.as_ref().map(|n| n.name.to_string())),
        );
    }
}

/// The expressions that give the rows of each table `input` indexes directly in `body`:
/// `gather(w, input)` with `param w: [ROWS, …]` declared in `body`, and
/// `input |> Embedding(ROWS, …)` or `Embedding(ROWS, …)(input)`.
fn indexed_tables<'a>(body: &'a Block, input: &str) -> Vec<&'a Expr> {
    let is_input = |e: &Expr| matches!(&e.kind, ExprKind::Name(n) if n.name == input);
    let embedding_rows = |layer: &'a Expr| -> Option<&'a Expr> {
        let ExprKind::Call(call) = &layer.kind else {
            return None;
        };
        let Call { callee, args, .. } = &**call;
        if !matches!(&callee.kind, ExprKind::Name(n) if n.name == "Embedding") {
            return None;
        }
        args.iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "vocab"))
            .or_else(|| args.iter().find(|a| a.name.is_none()))
            .map(|a| &a.value)
    };
    let param_rows = |table: &str| -> Option<&'a Expr> {
        body.stmts.iter().find_map(|s| match &s.kind {
            StmtKind::Param { names, ty, .. } if names.iter().any(|n| n.name == table) => {
                match &ty.kind {
                    TypeKind::Shape(shape)
                    | TypeKind::Tensor {
                        shape: Some(shape), ..
                    } => match shape.items.first() {
                        Some(ShapeItem::Dim(e)) => Some(e),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        })
    };
    let mut stack: Vec<&Expr> = Vec::new();
    let push_block = |stack: &mut Vec<&'a Expr>, b: &'a Block| {
        for s in &b.stmts {
            match &s.kind {
                StmtKind::Let { value, .. } | StmtKind::Assign { value, .. } => stack.push(value),
                StmtKind::Param { init, .. } | StmtKind::State { init, .. } => {
                    stack.extend(init.as_deref())
                }
                StmtKind::Yield(es) => stack.extend(es.iter()),
                StmtKind::Expr(e) => stack.push(e),
            }
        }
        stack.extend(b.tail.as_deref());
    };
    push_block(&mut stack, body);
    let mut out = Vec::new();
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Call(call) => {
                let Call { callee, args, .. } = &**call;
                match &callee.kind {
                    ExprKind::Name(n) if n.name == "gather" => {
                        if let [table, ids, ..] = &args[..]
                            && is_input(&ids.value)
                            && let ExprKind::Name(t) = &table.value.kind
                        {
                            out.extend(param_rows(&t.name));
                        }
                    }
                    ExprKind::Call { .. } if args.first().is_some_and(|a| is_input(&a.value)) => {
                        out.extend(embedding_rows(callee));
                    }
                    _ => {}
                }
                stack.push(callee);
                stack.extend(args.iter().map(|a| &a.value));
            }
            ExprKind::Pipe { lhs, rhs } => {
                if is_input(lhs) {
                    out.extend(embedding_rows(rhs));
                }
                stack.extend([&**lhs, &**rhs]);
            }
            ExprKind::Binary { lhs, rhs, .. } | ExprKind::Range { lo: lhs, hi: rhs } => {
                stack.extend([&**lhs, &**rhs])
            }
            ExprKind::Unary { expr, .. } => stack.push(expr),
            ExprKind::Member(member) => stack.push(&member.base),
            ExprKind::Tuple(es) => stack.extend(es.iter()),
            ExprKind::List(items) => stack.extend(items.iter().filter_map(|i| match i {
                ListItem::Expr(e) => Some(e),
                ListItem::Spread(_) => None,
            })),
            ExprKind::Closure { body, .. } => stack.push(body),
            ExprKind::If(if_) => {
                stack.push(&if_.cond);
                push_block(&mut stack, &if_.then);
                stack.extend(if_.otherwise.as_ref());
            }
            ExprKind::Scan(scan) => {
                stack.extend(scan.args.iter().map(|a| &a.value));
                push_block(&mut stack, &scan.body);
            }
            ExprKind::Block(b) => push_block(&mut stack, b),
            ExprKind::Number { .. }
            | ExprKind::Str(_)
            | ExprKind::Bool(_)
            | ExprKind::Training
            | ExprKind::Name(_) => {}
        }
    }
    out
}

fn string_literal(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

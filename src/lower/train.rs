//! Lowering a `train` block: the data fields become inputs, the models are applied, the loss
//! and metrics become outputs, and each phase's optimizer becomes one update graph per parameter.

use super::eval::ArgV;
use super::{
    Env, LowerError, Lowered, Lowerer, Options, ParamUpdate, Phase, Res, TrainConfig, Tv, Val,
};
use crate::check::metric;
use crate::ir::{Graph, Health, OutputRole, Role, TensorType};
use crate::prim::TrainSetting;
use crate::resolve::{ItemRef, Program};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::*;
use crate::syntax::finetune::FrozenBn;
use std::rc::Rc;

/// One phase as written: its name and statements (the whole block when there are no phases).
struct PhaseSrc<'a> {
    name: String,
    stmts: Vec<&'a TrainStmt>,
}

pub(crate) fn lower_train(program: &Program, sources: &SourceMap, opts: &Options) -> Res<Lowered> {
    let module = program.root;
    let t = program
        .train()
        .ok_or(LowerError {
            message: "the file has no `train` block; add one, or show one model alone with `nnlc ir --model M`".into(),
            span: None,
        })?;
    let mut l = Lowerer::new(program, sources, opts.float);
    let mut config = l.config(t, opts)?;
    let fields = l.fields(t, module, config.batch)?;
    let models: Vec<ItemRef> = t
        .models
        .iter()
        .filter_map(|m| program.lookup(module, &m.name))
        .collect();
    let model_layers: Vec<(String, Val)> = models
        .iter()
        .map(|&r| {
            (
                l.def_name(r),
                Val::Layer(l.new_layer(r, Vec::new(), Vec::new())),
            )
        })
        .collect();
    let model_layers = l.with_default_attrs(model_layers, t.span)?;
    config.target = l.target_field(&model_layers, &fields);

    let shared: Vec<&TrainStmt> = t
        .stmts
        .iter()
        .filter(|s| !matches!(s, TrainStmt::Phase { .. }))
        .collect();
    let mut phases_src: Vec<PhaseSrc> = t
        .stmts
        .iter()
        .filter_map(|s| match s {
            TrainStmt::Phase { name, stmts, .. } => Some(PhaseSrc {
                name: name.name.to_string(),
                stmts: shared.iter().copied().chain(stmts.iter()).collect(),
            }),
            _ => None,
        })
        .collect();
    if phases_src.is_empty() {
        phases_src.push(PhaseSrc {
            name: "train".into(),
            stmts: shared.clone(),
        });
    }
    let ctx = BlockCtx {
        module,
        fields: &fields,
        models: &model_layers,
        config: &config,
        span: t.span,
    };

    let mut phases = Vec::new();
    for p in &phases_src {
        let graph_name = format!("forward.{}", p.name);
        let frozen = frozen_paths(&p.stmts, &model_layers);
        l.eval_paths = match config.frozen_bn {
            FrozenBn::RunningStats => frozen.iter().map(|(f, _)| f.clone()).collect(),
            FrozenBn::BatchStats => Vec::new(),
        };
        let lowered_forward = l.forward(&ctx, &graph_name, &p.stmts, true, "loss");
        l.eval_paths.clear();
        let (forward, rules) = lowered_forward?;
        for (path, span) in &frozen {
            if !l.vars.params.iter().any(|(n, _)| owns(path, n)) {
                let names: Vec<String> = l.vars.params.iter().map(|(n, _)| n.clone()).collect();
                let layers: Vec<&str> = names
                    .iter()
                    .filter_map(|n| n.rsplit_once('.').map(|(l, _)| l))
                    .collect();
                let hint = crate::suggest::closest(path, layers.iter().copied())
                    .map_or(String::new(), |s| format!("; did you mean `{s}`?"));
                return Err(LowerError::new(
                    format!("`freeze {path}`: no layer with parameters has this path{hint}"),
                    *span,
                ));
            }
        }
        let mut updates = Vec::new();
        for rule in &rules.updates {
            for (param, ty) in l.params_of(&rule.targets, &forward) {
                if frozen.iter().any(|(f, _)| owns(f, &param)) {
                    continue;
                }
                let constraints: Vec<&Val> = rules
                    .constraints
                    .iter()
                    .filter(|c| c.targets.iter().any(|t| owns(t, &param)))
                    .map(|c| &c.rule)
                    .collect();
                let graph = l.update(&param, ty, &rule.rule, &constraints, rule.span)?;
                updates.push(ParamUpdate { param, graph });
            }
        }
        phases.push(Phase {
            name: p.name.clone(),
            forward,
            updates,
        });
    }
    // Evaluation: the shared statements once, then each phase's loss under its own name.
    let eval = if phases_src.len() == 1 {
        l.forward(&ctx, "eval", &phases_src[0].stmts, false, "loss")?
            .0
    } else {
        l.eval_phases(&ctx, &phases_src)?
    };
    Ok(Lowered {
        train: t
            .models
            .iter()
            .map(|m| m.name)
            .collect::<Vec<_>>()
            .join(", "),
        config,
        init: std::mem::take(&mut l.init),
        phases,
        eval,
        params: l.vars.params.clone(),
        states: l.vars.states.clone(),
        fields,
    })
}

pub(super) fn owns(target: &str, param: &str) -> bool {
    param == target || param.starts_with(&format!("{target}."))
}

/// The paths `freeze` names in a phase's statements (the block's and the phase's own), made
/// absolute: a path without a model's name belongs to the only model.
fn frozen_paths(stmts: &[&TrainStmt], models: &[(String, Val)]) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for s in stmts {
        let TrainStmt::Setting(set) = s else { continue };
        if set.name.name != "freeze" {
            continue;
        }
        for (path, span) in crate::syntax::finetune::freeze(set).unwrap_or_default() {
            let first = path.split('.').next().unwrap_or_default();
            let full = match models {
                [(m, _)] if first != m => format!("{m}.{path}"),
                _ => path,
            };
            out.push((full, span));
        }
    }
    out
}

struct BlockCtx<'a> {
    module: usize,
    fields: &'a [(String, TensorType)],
    models: &'a [(String, Val)],
    config: &'a TrainConfig,
    span: Span,
}

/// A rule applied to the parameters under some targets (model or instance paths).
struct Applied {
    targets: Vec<String>,
    rule: Val,
    span: Span,
}

#[derive(Default)]
struct Rules {
    updates: Vec<Applied>,
    constraints: Vec<Applied>,
}

impl Lowerer<'_> {
    /// The block's settings as the checker evaluated them, for the batch size asked for.
    fn config(&self, t: &TrainDecl, opts: &Options) -> Res<TrainConfig> {
        let mut c = self
            .program
            .facts
            .train(t.span)
            .cloned()
            .ok_or_else(|| LowerError {
                message: "the train block was not checked".into(),
                span: Some(t.span),
            })?;
        if let Some(b) = opts.batch {
            c.batch = b;
        }
        Ok(c)
    }

    /// The data block's fields with the batch axis in front.
    fn fields(
        &mut self,
        t: &TrainDecl,
        module: usize,
        batch: usize,
    ) -> Res<Vec<(String, TensorType)>> {
        let data = self
            .program
            .lookup(module, &t.data.name)
            .map(|r| self.program.item(r));
        let Some(Item::Data(d)) = data else {
            return Err(LowerError::new("not a data block", t.data.span));
        };
        let mut out = Vec::new();
        let mut env = Env::new(module);
        for s in &d.stmts {
            if let DataStmt::Field { name, ty, .. } = s {
                let mut tt = self.tensor_type(&mut env, ty)?;
                tt.shape.insert(0, batch);
                out.push((name.name.to_string(), tt));
            }
        }
        Ok(out)
    }

    fn with_default_attrs(
        &mut self,
        models: Vec<(String, Val)>,
        span: Span,
    ) -> Res<Vec<(String, Val)>> {
        models
            .into_iter()
            .map(|(name, v)| {
                let Val::Layer(l) = v else {
                    return Ok((name, v));
                };
                // No call binds them: every attribute takes its default.
                let def = self.program.def(l.def).expect("models are defs");
                let defaults = def.attrs.iter().map(|_| None).collect();
                let env =
                    self.bind_values(l.def, &def.attrs, defaults, Env::new(l.def.module), span)?;
                let layer = Rc::new(super::LayerVal {
                    id: l.id,
                    def: l.def,
                    attrs: env.vars,
                    site: l.site.clone(),
                });
                Ok((name, Val::Layer(layer)))
            })
            .collect()
    }

    /// One forward graph: the statements of a phase (or of the whole block) in training or
    /// evaluation mode. Returns the graph and the optimizer/constraint rules it names.
    fn forward(
        &mut self,
        ctx: &BlockCtx,
        name: &str,
        stmts: &[&TrainStmt],
        training: bool,
        loss_name: &str,
    ) -> Res<(Graph, Rules)> {
        self.begin_graph(name, training);
        let mut env = self.block_env(ctx);
        let mut rules = Rules::default();
        let mut loss = None;
        for s in stmts {
            self.train_stmt(&mut env, s, &mut rules, &mut loss, ctx)?;
        }
        let loss = loss.ok_or(LowerError {
            message: "this training block has no loss".into(),
            span: Some(ctx.span),
        })?;
        self.output(loss_name, loss, OutputRole::Loss);
        self.metrics(&mut env, ctx, stmts)?;
        if training {
            let updates = std::mem::take(&mut self.vars.state_updates);
            for (state, t) in updates {
                self.output(&state, t, OutputRole::Update(Role::State));
            }
        }
        Ok((self.finish_graph(), rules))
    }

    fn eval_phases(&mut self, ctx: &BlockCtx, phases: &[PhaseSrc]) -> Res<Graph> {
        self.begin_graph("eval", false);
        let base = self.block_env(ctx);
        for p in phases {
            let mut env = base.clone();
            let mut loss = None;
            for s in &p.stmts {
                self.train_stmt(&mut env, s, &mut Rules::default(), &mut loss, ctx)?;
            }
            if let Some(l) = loss {
                self.output(&format!("loss.{}", p.name), l, OutputRole::Loss);
            }
        }
        Ok(self.finish_graph())
    }

    /// The train block's scope: `B`, the data fields, the models, and `out` with one model.
    fn block_env(&mut self, ctx: &BlockCtx) -> Env {
        let mut env = Env::new(ctx.module);
        env.bind("B", Val::Int(ctx.config.batch as i64));
        for (name, ty) in ctx.fields {
            let id = self.g().input(name.clone(), Role::Data, ty.clone());
            let tv = self.tv(id);
            env.bind(name, Val::Tensor(tv));
        }
        for (name, v) in ctx.models {
            env.bind(name, v.clone());
        }
        env
    }

    fn output(&mut self, name: &str, t: Tv, role: OutputRole) {
        let id = self.use_tv(t);
        self.g().set_output(name, id, role);
    }

    /// `out`: the single model applied to the fields named like its inputs.
    fn model_out(&mut self, env: &mut Env, ctx: &BlockCtx) -> Res<Option<Val>> {
        let [(_, Val::Layer(layer))] = ctx.models else {
            return Ok(None);
        };
        if let Some(v) = env.get("out") {
            return Ok(Some(v.clone()));
        }
        let def = self.program.def(layer.def).expect("models are defs");
        let mut args = Vec::new();
        for p in &def.params {
            let Some(v) = env.get(&p.name.name) else {
                return Ok(None);
            };
            args.push(ArgV {
                val: v.clone(),
                span: def.name.span,
            });
        }
        self.at(def.name.span);
        let out = self.call(Val::Layer(layer.clone()), args, def.name.span)?;
        if let Val::Tensor(t) = &out {
            self.output("out", *t, OutputRole::Prediction);
        }
        env.bind("out", out.clone());
        Ok(Some(out))
    }

    fn train_stmt(
        &mut self,
        env: &mut Env,
        s: &TrainStmt,
        rules: &mut Rules,
        loss: &mut Option<Tv>,
        ctx: &BlockCtx,
    ) -> Res<()> {
        if env.get("out").is_none() {
            self.model_out(env, ctx)?;
        }
        match s {
            TrainStmt::Let(stmt) => {
                let StmtKind::Let { pats, value } = &stmt.kind else {
                    return Ok(());
                };
                let v = self.expr(env, value)?;
                let pat = if pats.len() == 1 {
                    pats[0].clone()
                } else {
                    Pattern::Tuple(pats.clone(), stmt.span)
                };
                self.bind_pattern(env, &pat, v)
            }
            TrainStmt::Setting(set) => {
                match (TrainSetting::from_name(&set.name.name), &set.value) {
                    (Some(TrainSetting::Loss), SettingValue::Assign(e)) => {
                        let v = self.expr(env, e)?;
                        *loss = Some(self.tensor_of(&v, self.float, e.span)?);
                    }
                    (Some(TrainSetting::Optimizer), SettingValue::Assign(e)) => {
                        let rule = self.rule(env, e)?;
                        let targets = ctx.models.iter().map(|(n, _)| n.clone()).collect();
                        rules.updates.push(Applied {
                            targets,
                            rule,
                            span: e.span,
                        });
                    }
                    // The other settings configure the run (`config`).
                    _ => {}
                }
                Ok(())
            }
            TrainStmt::Update {
                targets, optimizer, ..
            } => {
                let rule = self.rule(env, optimizer)?;
                let targets = targets.iter().filter_map(target_name).collect();
                rules.updates.push(Applied {
                    targets,
                    rule,
                    span: optimizer.span,
                });
                Ok(())
            }
            TrainStmt::Constrain {
                targets,
                constraint,
                ..
            } => {
                let rule = self.rule(env, constraint)?;
                let targets = targets.iter().filter_map(target_name).collect();
                rules.constraints.push(Applied {
                    targets,
                    rule,
                    span: constraint.span,
                });
                Ok(())
            }
            TrainStmt::Phase { .. } => Ok(()),
        }
    }

    /// An optimizer or constraint; one named bare (`optimizer = adam`, `with non_neg`) is
    /// called with its defaults.
    fn rule(&mut self, env: &mut Env, e: &Expr) -> Res<Val> {
        match self.expr(env, e)? {
            Val::Def(r) => self.call(Val::Def(r), Vec::new(), e.span),
            other => Ok(other),
        }
    }

    /// The field metrics compare `out` with: the first one no model input is named like.
    fn target_field(
        &self,
        models: &[(String, Val)],
        fields: &[(String, TensorType)],
    ) -> Option<String> {
        let inputs: Vec<String> = match models {
            [(_, Val::Layer(l))] => self
                .program
                .def(l.def)
                .map(|d| d.params.iter().map(|p| p.name.name.to_string()).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        fields
            .iter()
            .find(|(n, _)| !inputs.contains(n))
            .map(|(n, _)| n.clone())
    }

    /// Each metric of `metrics …` as an output named like it: `accuracy(out, y)`.
    fn metrics(&mut self, env: &mut Env, ctx: &BlockCtx, stmts: &[&TrainStmt]) -> Res<()> {
        let Some(out) = env.get("out").cloned() else {
            return Ok(());
        };
        let target = ctx.config.target.as_ref().and_then(|n| env.get(n).cloned());
        for s in stmts {
            let TrainStmt::Setting(set) = s else { continue };
            let (Some(TrainSetting::Metrics), SettingValue::Values(values)) =
                (TrainSetting::from_name(&set.name.name), &set.value)
            else {
                continue;
            };
            for v in values {
                let Some(name) = metric_name(v) else { continue };
                self.at(v.span);
                let value = match (&v.kind, &target) {
                    (ExprKind::Name(_), Some(target)) => {
                        let f = self.expr(env, v)?;
                        let args = [out.clone(), target.clone()]
                            .into_iter()
                            .map(|val| ArgV { val, span: v.span })
                            .collect();
                        self.call(f, args, v.span)?
                    }
                    (ExprKind::Name(_), None) => continue,
                    _ => self.expr(env, v)?,
                };
                let t = self.tensor_of(&value, self.float, v.span)?;
                let decl = metric::of_entry(self.program, ctx.module, v);
                self.output(&name, t, OutputRole::Metric(decl.aggregation));
            }
        }
        Ok(())
    }

    /// The parameters under `targets` that `forward` reads, with their types.
    fn params_of(&self, targets: &[String], forward: &Graph) -> Vec<(String, TensorType)> {
        self.vars
            .params
            .iter()
            .filter(|(n, _)| targets.iter().any(|t| owns(t, n)))
            .filter(|(n, _)| forward.find_input(n).is_some())
            .cloned()
            .collect()
    }

    /// The update graph of one parameter: the optimizer's body, then any constraints.
    fn update(
        &mut self,
        param: &str,
        ty: TensorType,
        rule: &Val,
        constraints: &[&Val],
        span: Span,
    ) -> Res<Graph> {
        self.begin_graph(&format!("update.{param}"), true);
        self.at(span);
        let scalar = TensorType::scalar(self.float);
        let p = self.g().input(param, Role::Param, ty.clone());
        let g = self.g().input("grad", Role::Arg, ty);
        let step = self.g().input("step", Role::Counter, scalar.clone());
        let epoch = self.g().input("epoch", Role::Counter, scalar);
        self.vars.values.insert(param.to_string(), p);
        self.rule_env = vec![
            ("p".into(), Val::Tensor(self.tv(p))),
            ("g".into(), Val::Tensor(self.tv(g))),
            ("step".into(), Val::Tensor(self.tv(step))),
            ("epoch".into(), Val::Tensor(self.tv(epoch))),
        ];
        self.rule_param = Some(param.to_string());
        let result = self.apply_rules(param, rule, constraints, span);
        self.rule_param = None;
        self.rule_env.clear();
        result?;
        Ok(self.finish_graph())
    }

    fn apply_rules(
        &mut self,
        param: &str,
        rule: &Val,
        constraints: &[&Val],
        span: Span,
    ) -> Res<()> {
        let RuleOut { p, states, lr } = self.run_rule(rule, span)?;
        let mut p = p;
        for c in constraints {
            self.rule_env[0].1 = Val::Tensor(p);
            p = self.run_rule(c, span)?.p;
        }
        self.output(param, p, OutputRole::Update(Role::Param));
        for (name, t) in states {
            self.output(&name, t, OutputRole::Update(Role::OptState));
        }
        if let Some(lr) = lr {
            self.output(
                super::LEARNING_RATE,
                lr,
                OutputRole::Health(Health::LearningRate),
            );
        }
        Ok(())
    }

    /// Runs an optimizer or constraint body: the new `p` (assigned, or the body's value), the
    /// final value of each optimizer state, and the learning rate `lr` of this step when the
    /// rule takes one.
    fn run_rule(&mut self, rule: &Val, span: Span) -> Res<RuleOut> {
        let Val::Rule(r, args) = rule else {
            return Err(LowerError::new(
                "expected an optimizer or a constraint",
                span,
            ));
        };
        let def = self.program.def(*r).expect("rules are defs");
        let mut env = Env::new(r.module);
        for (name, v) in args {
            // A schedule given as a learning rate is evaluated for this step.
            let v = match v {
                Val::Rule(s, sargs)
                    if self
                        .program
                        .def(*s)
                        .is_some_and(|d| d.kind == DefKind::Schedule) =>
                {
                    let mut senv = Env::new(s.module);
                    senv.vars = sargs.clone();
                    self.inline_body(*s, senv, span)?
                }
                other => other.clone(),
            };
            env.bind(name, v);
        }
        for (name, v) in self.rule_env.clone() {
            env.bind(&name, v);
        }
        let body = def.body.unpack();
        for s in &body.stmts {
            self.stmt(&mut env, s)?;
        }
        let tail = match &body.tail {
            Some(e) => Some(self.expr(&mut env, e)?),
            None => None,
        };
        let p = match (tail, env.get("p")) {
            (Some(Val::Tensor(t)), _) => t,
            (_, Some(Val::Tensor(t))) => *t,
            _ => return Err(LowerError::new("the rule gives no new parameter", span)),
        };
        let states = env
            .states
            .iter()
            .filter_map(|(local, full)| match env.get(local) {
                Some(Val::Tensor(t)) => Some((full.clone(), *t)),
                _ => None,
            })
            .collect();
        let lr = match env.get("lr").cloned() {
            Some(v) => Some(self.tensor_of(&v, self.float, span)?),
            None => None,
        };
        Ok(RuleOut { p, states, lr })
    }
}

/// What an optimizer or constraint body gives.
struct RuleOut {
    /// The new parameter.
    p: Tv,
    /// The final value of each optimizer state, by its full name.
    states: Vec<(String, Tv)>,
    /// The learning rate of the step, when the rule takes one.
    lr: Option<Tv>,
}

fn target_name(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(id) => Some(id.name.to_string()),
        ExprKind::Member(member) => {
            target_name(&member.base).map(|b| format!("{b}.{}", member.field.name))
        }
        _ => None,
    }
}

fn metric_name(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(id) => Some(id.name.to_string()),
        ExprKind::Call(call) => metric_name(&call.callee),
        _ => None,
    }
}

/// One model alone, applied to inputs named like its parameters: `out` for a batch of `B`.
/// The batch size is `opts.batch`, else the `batch` of a train block over the model, else 1.
pub(crate) fn lower_model(
    program: &Program,
    sources: &SourceMap,
    opts: &Options,
    name: &str,
    training: bool,
    one_position: bool,
) -> Res<Graph> {
    let module = program.root;
    let no_model = || LowerError {
        message: format!("the file defines no model `{name}`"),
        span: None,
    };
    let r = program.lookup(module, name).ok_or_else(no_model)?;
    let def = program
        .def(r)
        .filter(|d| d.kind == DefKind::Model)
        .ok_or_else(no_model)?;
    let mut l = Lowerer::new(program, sources, opts.float);
    let train_batch = program.modules[module]
        .ast
        .items
        .iter()
        .find_map(|i| match i {
            Item::Train(t) if t.models.iter().any(|m| m.name == name) => Some(t),
            _ => None,
        });
    let batch = match (opts.batch, train_batch) {
        (Some(b), _) => b,
        (None, Some(t)) => l.config(t, opts)?.batch,
        (None, None) => 1,
    };
    // The data fields fix sizes the model leaves symbolic (`x: f32[B, T, 1]`).
    let fields = match train_batch {
        Some(t) => l.fields(t, module, batch)?,
        None => Vec::new(),
    };
    l.begin_graph(&format!("model.{name}"), training);
    let layer = l.new_layer(r, Vec::new(), Vec::new());
    let [(_, layer)] =
        &l.with_default_attrs(vec![(name.to_string(), Val::Layer(layer))], def.span)?[..]
    else {
        unreachable!("one model in, one out")
    };
    // An input's declared type, with `B` and the model's attributes bound, is its type; a data
    // field of the same name gives the sizes it leaves symbolic (`x: f32[B, T, 1]`).
    let mut env = Env::new(r.module);
    env.bind("B", Val::Int(batch as i64));
    if let Val::Layer(model) = layer {
        for (attr, v) in &model.attrs {
            env.bind(attr, v.clone());
        }
    }
    let mut args = Vec::new();
    for p in &def.params {
        let field = fields.iter().find(|(f, _)| *f == p.name.name);
        let declared =
            p.ty.as_ref()
                .map(|ty| (l.tensor_type(&mut env, ty), ty.span));
        let tt = match (declared, field) {
            (Some((Ok(t), _)), _) => t,
            (_, Some((_, t))) => t.clone(),
            (Some((Err(_), span)), None) => {
                return Err(LowerError::new(
                    "this input's shape has sizes other than `B` and no data field gives them",
                    span,
                ));
            }
            (None, None) => return Err(LowerError::new("an input without a type", p.span)),
        };
        let tt = if one_position {
            l.one_position(tt, p.span)?
        } else {
            tt
        };
        let id = l.g().input(p.name.name, Role::Data, tt);
        args.push(ArgV {
            val: Val::Tensor(l.tv(id)),
            span: p.span,
        });
    }
    l.at(def.name.span);
    let out = l.call(layer.clone(), args, def.name.span)?;
    let t = l.tensor_of(&out, l.float, def.name.span)?;
    l.output("out", t, OutputRole::Prediction);
    for (state, t) in std::mem::take(&mut l.vars.state_updates) {
        if training {
            l.output(&state, t, OutputRole::Update(Role::State));
        }
    }
    if let Some(step) = l.step.take() {
        for (cache, t) in step.caches {
            l.output(&cache, t, OutputRole::Update(Role::State));
        }
    }
    Ok(l.finish_graph())
}

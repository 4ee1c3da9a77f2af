//! Type and shape checking. Every definition is checked once on its own, with its dimension
//! symbols rigid; every call is checked against the callee's signature, binding the callee's
//! symbols by unification and evaluating its `where` constraints. Models used for training are
//! also expanded (instantiated) with their real inputs, which records each layer instance, its
//! output shape and its parameters — the summary table, and the names lowering will use.

mod data;
pub mod dim;
mod facts;
pub mod metric;
pub(crate) mod operators;
mod summary;
mod train;
pub mod ty;

use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::resolve::{ItemRef, Program};
use crate::source::{SourceMap, Span};
use crate::syntax::ast::*;
use dim::{Dim, Sym};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;
use ty::{Callable, Closure, Instance, Shape, ShapeElem, Ty, Var, VarKind, same_type};

pub use facts::{Callee, Calls, InstanceFact, Instances, Part, Site};
pub(crate) use operators::BuiltinArgs;
pub use summary::{InstanceRow, ModelSummary, group as group_digits, render as render_summary};

/// What checking a program produced: the summaries of the trained models, and diagnostics.
pub struct Checked {
    pub summaries: Vec<ModelSummary>,
    /// The type of each expression of the root file, by span, as first inferred (with the
    /// definition's own dimension symbols): what an editor shows on hover.
    pub types: ExprTypes,
    pub facts: Facts,
}

/// The type of each expression by span, as text. There is one for most expressions of a file
/// and few distinct ones, so each text is kept once and the spans refer to it by number.
#[derive(Debug, Default)]
pub struct ExprTypes {
    by_span: HashMap<Span, u32>,
    texts: Vec<String>,
    numbers: HashMap<String, u32>,
}

impl ExprTypes {
    /// Records `t` as the type of `span`, unless it has one already.
    fn record(&mut self, span: Span, t: &Ty) {
        if !self.by_span.contains_key(&span) {
            let number = self.number(t.to_string());
            self.by_span.insert(span, number);
        }
    }

    /// Takes in the types `later` recorded, except for spans that have one already.
    fn absorb(&mut self, later: ExprTypes) {
        for (span, number) in later.by_span {
            if !self.by_span.contains_key(&span) {
                let number = self.number(later.texts[number as usize].clone());
                self.by_span.insert(span, number);
            }
        }
    }

    /// The number of a type's text, given one if it is new.
    fn number(&mut self, text: String) -> u32 {
        if let Some(&n) = self.numbers.get(&text) {
            return n;
        }
        let n = self.texts.len() as u32;
        self.texts.push(text.clone());
        self.numbers.insert(text, n);
        n
    }

    pub fn get(&self, span: &Span) -> Option<&str> {
        self.by_span
            .get(span)
            .map(|&n| self.texts[n as usize].as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Span, &str)> {
        self.by_span
            .iter()
            .map(|(s, &n)| (s, self.texts[n as usize].as_str()))
    }
}

/// What the checker established that later stages read instead of deriving it again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Each `train` block of the root file (by its span) with its settings evaluated.
    pub trains: Vec<(Span, TrainConfig)>,
    /// Each `data` block of the root file (by its span) that checked clean, read into the
    /// typed spec the data pipeline runs.
    pub data: Vec<(Span, crate::data::spec::Spec)>,
    /// Every layer instance of the models the root file defines or trains.
    pub instances: Instances,
    /// How each call's arguments bind to its callee's parameters.
    pub calls: Calls,
}

impl Facts {
    fn is_empty(&self) -> bool {
        self.trains.is_empty()
            && self.data.is_empty()
            && self.instances.is_empty()
            && self.calls.is_empty()
    }

    /// Takes in what a checker of a later part of the program established.
    fn absorb(&mut self, later: Facts) {
        self.trains.extend(later.trains);
        self.data.extend(later.data);
        self.instances.absorb(later.instances);
        self.calls.absorb(later.calls);
    }

    pub fn train(&self, block: Span) -> Option<&TrainConfig> {
        self.trains
            .iter()
            .find(|(s, _)| *s == block)
            .map(|(_, c)| c)
    }

    pub fn data(&self, block: Span) -> Option<&crate::data::spec::Spec> {
        self.data.iter().find(|(s, _)| *s == block).map(|(_, d)| d)
    }
}

/// The settings of a train block, evaluated by the checker; lowering adds the target field and
/// the batch size it lowers for.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub batch: usize,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    pub clip_grad_norm: Option<f64>,
    pub metrics: Vec<String>,
    /// The data field metrics compare the model's output with (`y`).
    pub target: Option<String>,
    pub early_stop: Option<EarlyStop>,
    /// The checkpoint directory, as written (relative to the `.nnl` file).
    pub checkpoint: Option<String>,
    /// Where TensorBoard's event files go, as written (relative to the `.nnl` file).
    pub log: Option<String>,
    /// `init …`: weights to load before training.
    pub init: Option<crate::syntax::finetune::InitFrom>,
    /// How frozen layers run in training steps.
    pub frozen_bn: crate::syntax::finetune::FrozenBn,
}

impl Default for TrainConfig {
    fn default() -> TrainConfig {
        TrainConfig {
            batch: DEFAULT_BATCH,
            epochs: None,
            seed: None,
            clip_grad_norm: None,
            metrics: Vec::new(),
            target: None,
            early_stop: None,
            checkpoint: None,
            log: None,
            init: None,
            frozen_bn: Default::default(),
        }
    }
}

/// The batch size of a train block without `batch`.
pub const DEFAULT_BATCH: usize = 32;

/// `early_stop(monitor: split.metric, mode, patience, min_delta, restore_best)`.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStop {
    pub split: String,
    pub metric: String,
    /// Whether smaller is better (`mode: min`); the default for losses and errors.
    pub minimize: bool,
    pub patience: usize,
    pub min_delta: f64,
    pub restore_best: bool,
}

/// What a check keeps besides its diagnostics (which are the same whatever it keeps): the
/// language server wants the types for hovers, `check --summary` the summaries, lowering the
/// facts of every call and layer instance. A plain `nnlc check` wants none of them, and on a
/// large file they are most of the checker's time and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    /// [`Checked::types`].
    pub types: bool,
    /// [`Checked::summaries`].
    pub summaries: bool,
    /// [`Facts::calls`] and [`Facts::instances`] (the train blocks' settings and the data
    /// specs are always kept: they are small, and paths are checked from them).
    pub facts: bool,
}

impl Keep {
    /// Everything: what lowering, the language server and the tests read.
    pub const ALL: Keep = Keep {
        types: true,
        summaries: true,
        facts: true,
    };
    /// The diagnostics alone.
    pub const DIAGNOSTICS: Keep = Keep {
        types: false,
        summaries: false,
        facts: false,
    };
}

pub fn check(program: &Program, sources: &SourceMap) -> (Checked, Vec<Diagnostic>) {
    check_keeping(program, sources, Keep::ALL)
}

/// Checks `program`, keeping what `keep` asks for: the diagnostics are the same whatever it
/// is, the other parts of [`Checked`] are left empty unless kept.
pub fn check_keeping(
    program: &Program,
    sources: &SourceMap,
    keep: Keep,
) -> (Checked, Vec<Diagnostic>) {
    let mut c = Checker::new(program, sources, keep, Arc::default());
    c.check_defs_alone();
    let mut summaries = Vec::new();
    let root = program.root;
    let items = &program.modules[root].ast.items;
    // The root file's models are summarized in parallel (each from nothing but the program and
    // the definitions that failed), their results merged at their place among the data and
    // train blocks.
    let failed_defs = c.failed_defs.clone();
    let summarize = |index: usize, item: &Item| match item {
        Item::Def(d) if d.kind == DefKind::Model => {
            let mut model = Checker::new(program, sources, keep, failed_defs.clone());
            let summary = model.summarize(ItemRef {
                module: root,
                index,
            });
            Some((model.into_outcome(), summary))
        }
        _ => None,
    };
    crate::par::map_in_order(items, summarize, |index, summarized| {
        match &items[index] {
            Item::Data(d) => {
                c.check_data(root, d);
            }
            Item::Def(d) if d.kind == DefKind::Model => {
                // A model that checked alone can still fail with its default attributes
                // (a layer's `where` on them); those errors are reported here.
                let (outcome, summary) = summarized.expect("models are summarized");
                c.absorb(outcome);
                summaries.extend(summary.filter(|_| keep.summaries));
            }
            Item::Train(t) => c.check_train(root, t),
            Item::Use(_) | Item::Def(_) | Item::Search(_) => {}
        }
    });
    // Models a train block takes from other files are expanded too: lowering reads their
    // instances.
    for item in items {
        if let Item::Train(t) = item {
            for m in &t.models {
                if let Some(r) = program.lookup(root, &m.name).filter(|r| r.module != root) {
                    c.summarize(r);
                }
            }
        }
    }
    // After every train block, wherever they are: a search's goal names their metrics.
    for item in items {
        if let Item::Search(s) = item {
            c.check_search(root, s);
        }
    }
    (
        Checked {
            summaries,
            types: c.types,
            facts: c.facts,
        },
        c.diags,
    )
}

/// What a checker working on one part of a program found, merged into the program's checker
/// in program order ([`Checker::absorb`]).
struct Outcome {
    diags: Vec<Diagnostic>,
    types: ExprTypes,
    facts: Facts,
    /// The definitions a speculative checker assumed had not failed.
    assumed_sound: Vec<ItemRef>,
}

impl Outcome {
    fn failed(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// Boxed, or None when it found nothing and assumed nothing (most definitions of a large
    /// file: they are all held until every failure is known). What a check that passed
    /// assumed is dropped: knowing a callee failed only turns what it returns into an unknown,
    /// which reports nothing, so that check would pass again.
    fn boxed(mut self) -> Option<Box<Outcome>> {
        if !self.failed() {
            self.assumed_sound = Vec::new();
        }
        let found_nothing = self.diags.is_empty()
            && self.types.by_span.is_empty()
            && self.facts.is_empty()
            && self.assumed_sound.is_empty();
        (!found_nothing).then(|| Box::new(self))
    }
}

/// Where a definition checked alone stands while failures are settled, callees first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Unsettled,
    /// Its callees are being settled (a cycle back to it, which resolving reports, finds it
    /// sound).
    Settling,
    Sound,
    Failed,
}

pub(crate) struct Checker<'p> {
    keep: Keep,
    program: &'p Program,
    sources: &'p SourceMap,
    diags: Vec<Diagnostic>,
    next_id: u32,
    /// Definitions that failed on their own: their uses are not checked again.
    failed_defs: Arc<HashSet<ItemRef>>,
    /// In a speculative checker, the definitions it asked about, assuming none failed (its
    /// `failed_defs` is empty); None otherwise.
    assumed_sound: Option<Vec<ItemRef>>,
    /// Instances being expanded, innermost last, when recording the layer tree.
    trace: Vec<summary::TraceNode>,
    /// Definitions being expanded, to stop runaway expansion.
    expanding: Vec<ItemRef>,
    /// Calls are expanded even where the callee declares its result (in a train block): the
    /// values there are the ones trained on, and a body may hold a constraint its declared
    /// type does not show (a loss reshapes its target to its prediction's shape).
    expand_calls: bool,
    types: ExprTypes,
    /// What each checked train block computes, for the search blocks over its models.
    trainings: Vec<train::Training>,
    facts: Facts,
}

/// The scope of one body being checked.
pub(crate) struct Frame {
    module: usize,
    kind: Option<DefKind>,
    vars: Vec<Var>,
    /// Whether model names denote the trained instances (in `train` blocks).
    models_are_instances: bool,
    model_instances: HashMap<ItemRef, Rc<Instance>>,
    /// Yields collected by the scan bodies being checked, innermost last.
    scan_yields: Vec<Option<(Ty, Ty, Span)>>,
    /// Whether this frame's diagnostics are worth warnings (user code, checked on its own).
    warn: bool,
}

impl Frame {
    fn new(module: usize, kind: Option<DefKind>) -> Frame {
        Frame {
            module,
            kind,
            vars: Vec::new(),
            models_are_instances: false,
            model_instances: HashMap::new(),
            scan_yields: Vec::new(),
            warn: false,
        }
    }

    /// `name` is a `Symbol` where the caller has one: interning a `&str` takes a lock.
    fn bind(&mut self, name: impl Into<Symbol>, ty: Ty, span: Span, kind: VarKind) {
        self.vars.push(Var {
            name: name.into(),
            ty,
            span,
            kind,
            used: false,
        });
    }

    /// `name` is a `Symbol` where the caller has one: variables are compared by number.
    fn lookup(&mut self, name: impl Into<Symbol>) -> Option<Ty> {
        let name = name.into();
        let v = self.vars.iter_mut().rev().find(|v| v.name == name)?;
        v.used = true;
        Some(v.ty.clone())
    }

    fn peek(&self, name: impl Into<Symbol>) -> Option<&Var> {
        let name = name.into();
        self.vars.iter().rev().find(|v| v.name == name)
    }
}

/// An evaluated argument of a call.
#[derive(Clone, Debug)]
pub(crate) struct ArgVal {
    pub name: Option<Ident>,
    pub ty: Ty,
    pub span: Span,
}

/// A parameter list seen uniformly: definitions' and builtins'.
pub(crate) struct Slot<'a> {
    name: &'a str,
    optional: bool,
}

impl<'p> Checker<'p> {
    fn new(
        program: &'p Program,
        sources: &'p SourceMap,
        keep: Keep,
        failed_defs: Arc<HashSet<ItemRef>>,
    ) -> Checker<'p> {
        Checker {
            keep,
            program,
            sources,
            diags: Vec::new(),
            next_id: 0,
            failed_defs,
            assumed_sound: None,
            trace: Vec::new(),
            expanding: Vec::new(),
            expand_calls: false,
            types: ExprTypes::default(),
            trainings: Vec::new(),
            facts: Facts::default(),
        }
    }

    fn into_outcome(self) -> Outcome {
        Outcome {
            diags: self.diags,
            types: self.types,
            facts: self.facts,
            assumed_sound: self.assumed_sound.unwrap_or_default(),
        }
    }

    /// Takes in what a checker of a later part of the program found, as if this checker had
    /// gone on to check that part itself.
    fn absorb(&mut self, outcome: Outcome) {
        self.diags.extend(outcome.diags);
        self.types.absorb(outcome.types);
        self.facts.absorb(outcome.facts);
    }

    /// Whether the definition `r` failed on its own (then its uses are not checked again).
    fn def_failed(&mut self, r: ItemRef) -> bool {
        if let Some(assumed) = &mut self.assumed_sound {
            assumed.push(r);
        }
        self.failed_defs.contains(&r)
    }

    pub(crate) fn emit(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    pub(crate) fn fresh_sym(&mut self, name: &str) -> Sym {
        self.next_id += 1;
        Sym {
            id: self.next_id,
            name: name.into(),
        }
    }

    fn is_std(&self, module: usize) -> bool {
        self.program.modules[module].is_std
    }

    fn def_name(&self, r: ItemRef) -> String {
        self.program
            .def(r)
            .map_or_else(String::new, |d| d.name.name.to_string())
    }

    // ------------------------------------------------------------------ definitions alone

    /// Checks every definition of the program alone. A definition's check depends on the
    /// others only through which of them failed (a callee that failed on its own is not
    /// expanded again: its errors are reported once, in it). So every definition is checked
    /// in parallel assuming its callees sound; then, callees first, the few that called one
    /// that failed are checked again knowing it. What is reported depends neither on the order
    /// of the definitions nor on the threads.
    fn check_defs_alone(&mut self) {
        let (program, sources, keep) = (self.program, self.sources, self.keep);
        let mut outcomes: Vec<Vec<Option<Box<Outcome>>>> = Vec::new();
        let none_failed = Arc::default();
        for (m, module) in program.modules.iter().enumerate() {
            let mut found = Vec::with_capacity(module.ast.items.len());
            let alone = |_: usize, item: &Item| {
                let Item::Def(d) = item else { return None };
                let mut speculative =
                    Checker::new(program, sources, keep, Arc::clone(&none_failed));
                speculative.assumed_sound = Some(Vec::new());
                speculative.check_def_alone(m, d);
                speculative.into_outcome().boxed()
            };
            crate::par::map_in_order(&module.ast.items, alone, |_, o| found.push(o));
            outcomes.push(found);
        }
        let mut standing: Vec<Vec<Standing>> = outcomes
            .iter()
            .map(|found| vec![Standing::Unsettled; found.len()])
            .collect();
        for module in 0..outcomes.len() {
            for index in 0..outcomes[module].len() {
                self.settle(ItemRef { module, index }, &mut outcomes, &mut standing);
            }
        }
        for found in outcomes {
            for outcome in found.into_iter().flatten() {
                self.absorb(*outcome);
            }
        }
    }

    /// Settles whether `r` failed, its callees first (depth first, without recursion: call
    /// chains can be as long as a file), checking again those that assumed a failed callee
    /// sound.
    fn settle(
        &mut self,
        r: ItemRef,
        outcomes: &mut [Vec<Option<Box<Outcome>>>],
        standing: &mut [Vec<Standing>],
    ) {
        if standing[r.module][r.index] != Standing::Unsettled {
            return;
        }
        standing[r.module][r.index] = Standing::Settling;
        // Each definition being settled, with how many of its callees have been looked at.
        let mut stack = vec![(r, 0)];
        while let Some((def, next)) = stack.last_mut() {
            let def = *def;
            let assumed = outcomes[def.module][def.index]
                .as_ref()
                .map_or(&[][..], |o| &o.assumed_sound[..]);
            if let Some(&callee) = assumed.get(*next) {
                *next += 1;
                if standing[callee.module][callee.index] == Standing::Unsettled {
                    standing[callee.module][callee.index] = Standing::Settling;
                    stack.push((callee, 0));
                }
                continue;
            }
            let failed_callee = assumed
                .iter()
                .any(|c| standing[c.module][c.index] == Standing::Failed);
            if failed_callee {
                let Item::Def(d) = &self.program.modules[def.module].ast.items[def.index] else {
                    unreachable!("only definitions are assumed sound")
                };
                let mut again = Checker::new(
                    self.program,
                    self.sources,
                    self.keep,
                    self.failed_defs.clone(),
                );
                again.check_def_alone(def.module, d);
                outcomes[def.module][def.index] = again.into_outcome().boxed();
            }
            let failed = outcomes[def.module][def.index]
                .as_ref()
                .is_some_and(|o| o.failed());
            standing[def.module][def.index] = if failed {
                Arc::make_mut(&mut self.failed_defs).insert(def);
                Standing::Failed
            } else {
                Standing::Sound
            };
            stack.pop();
        }
    }

    /// Checks a definition with its inputs as declared and its dimensions rigid.
    fn check_def_alone(&mut self, module: usize, d: &Def) {
        let mut f = Frame::new(module, Some(d.kind));
        f.warn = !self.is_std(module);
        self.bind_implicit(&mut f, d);
        for a in &d.attrs {
            let ty = self.attr_type_alone(&mut f, a);
            f.bind(a.name.name, ty, a.name.span, VarKind::Plain);
        }
        for p in &d.params {
            let ty = match &p.ty {
                Some(t) => self.eval_type(&mut f, t, true),
                None => match &p.default {
                    Some(e) => self.expr(&mut f, e),
                    None => Ty::Unknown,
                },
            };
            f.bind(p.name.name, ty, p.name.span, VarKind::Plain);
        }
        for w in &d.wheres {
            let t = self.expr(&mut f, &w.cond);
            if !matches!(t, Ty::Bool(_) | Ty::Unknown) {
                self.emit(
                    Diagnostic::error(
                        codes::WHERE_NOT_CONDITION,
                        "a `where` constraint must be a condition",
                    )
                    .with_primary(w.cond.span, format!("this is {t}"))
                    .with_help("write a comparison, such as `D % heads == 0`"),
                );
            }
        }
        let vars_before = f.vars.len();
        let block = d.body.unpack();
        let body = self.block(&mut f, &block);
        if let Some(ret) = &d.ret {
            let declared = self.eval_type(&mut f, ret, false);
            if !body.is_unknown() && !declared.is_unknown() && !same_type(&declared, &body) {
                let at = block.tail.as_ref().map_or(block.span, |t| t.span);
                self.emit(
                    Diagnostic::error(
                        codes::RETURN_TYPE,
                        format!(
                            "`{}` returns {body}, but its declared type is {declared}",
                            d.name.name
                        ),
                    )
                    .with_primary(at, format!("this is {body}"))
                    .with_secondary(ret.span, format!("declared as {declared}"))
                    .with_help(
                        "fix the body, or change the declared return type to what it computes",
                    ),
                );
            }
        } else if d.kind == DefKind::Model || d.kind == DefKind::Layer {
            // Layers without a declared type are fine; their users see the inferred shape.
        }
        self.check_rule_body(&f, d, &block);
        if f.warn {
            for v in &f.vars[vars_before.min(f.vars.len())..] {
                if v.kind == VarKind::Param && !v.used {
                    self.emit(
                        Diagnostic::warning(codes::UNUSED_PARAM, format!("parameter `{}` is never used", v.name))
                            .with_primary(v.span, "declared here, but the body never reads it")
                            .with_help("remove it: an unused parameter is trained for nothing and bloats checkpoints"),
                    );
                }
            }
        }
    }

    /// Optimizers must produce the new `p`.
    fn check_rule_body(&mut self, f: &Frame, d: &Def, body: &Block) {
        if d.kind != DefKind::Optimizer {
            return;
        }
        let assigns_p = body
            .stmts
            .iter()
            .any(|s| matches!(&s.kind, StmtKind::Assign { target, .. } if target.name == "p"));
        if !assigns_p && f.peek("p").is_some() {
            self.emit(
                Diagnostic::error(
                    codes::OPTIMIZER_WITHOUT_P,
                    format!("optimizer `{}` never assigns `p`", d.name.name),
                )
                .with_primary(d.name.span, "this optimizer leaves the parameter unchanged")
                .with_help("end the body with the update, e.g. `p = p - lr * g`"),
            );
        }
    }

    fn bind_implicit(&mut self, f: &mut Frame, d: &Def) {
        let span = d.name.span;
        match d.kind {
            DefKind::Optimizer | DefKind::Constraint => {
                let pack = self.fresh_sym("P");
                let pty = Ty::Tensor(Dtype::F32, Shape(vec![ShapeElem::Pack(pack)].into()));
                f.bind("p", pty.clone(), span, VarKind::State);
                if d.kind == DefKind::Optimizer {
                    f.bind("g", pty, span, VarKind::Plain);
                    f.bind("step", Ty::Float(None), span, VarKind::Plain);
                }
            }
            DefKind::Schedule => {
                f.bind("step", Ty::Float(None), span, VarKind::Plain);
                f.bind("epoch", Ty::Float(None), span, VarKind::Plain);
            }
            DefKind::Model | DefKind::Layer | DefKind::Fn => {}
        }
        for v in &mut f.vars {
            v.used = true;
        }
    }

    /// An attribute's value while its definition is checked alone: a symbol or an unknown scalar.
    fn attr_type_alone(&mut self, f: &mut Frame, a: &Param) -> Ty {
        match &a.ty {
            Some(TypeExpr {
                kind: TypeKind::Named(n),
                ..
            }) if n.name == "int" => Ty::Int(Dim::sym(self.fresh_sym(&a.name.name))),
            Some(t) => self.eval_type(f, t, false),
            None => match &a.default {
                Some(e) => match self.expr(f, e) {
                    Ty::Int(_) => Ty::Int(Dim::sym(self.fresh_sym(&a.name.name))),
                    Ty::Float(_) => Ty::Float(None),
                    Ty::Bool(_) => Ty::Bool(None),
                    other => other,
                },
                None => Ty::Unknown,
            },
        }
    }

    // ------------------------------------------------------------------ types

    /// Evaluates a written type. With `introduce`, unbound dimension names become new rigid
    /// symbols (and are bound in the frame); otherwise they are errors.
    fn eval_type(&mut self, f: &mut Frame, t: &TypeExpr, introduce: bool) -> Ty {
        match &t.kind {
            TypeKind::Tensor { dtype, shape: None } => match dtype {
                Dtype::Bool => Ty::Bool(None),
                Dtype::F32 => Ty::Float(None),
                _ => Ty::Tensor(*dtype, Shape::scalar()),
            },
            TypeKind::Tensor {
                dtype,
                shape: Some(s),
            } => match self.eval_shape(f, s, introduce) {
                Some(shape) => Ty::Tensor(*dtype, shape),
                None => Ty::Unknown,
            },
            TypeKind::Shape(s) => match self.eval_shape(f, s, introduce) {
                Some(shape) => Ty::Tensor(Dtype::F32, shape),
                None => Ty::Unknown,
            },
            TypeKind::Tuple(ts) => {
                Ty::Tuple(ts.iter().map(|t| self.eval_type(f, t, introduce)).collect())
            }
            TypeKind::Named(n) => match n.name.as_str() {
                "int" => Ty::Int(Dim::sym(self.fresh_sym("n"))),
                "str" => Ty::Str(String::new()),
                "init" => Ty::Init,
                "params" => Ty::ParamSet,
                other => {
                    let known = ["int", "str", "init", "params", "f32", "f64", "i32", "bool"];
                    let mut d =
                        Diagnostic::error(codes::UNKNOWN_NAME, format!("unknown type `{other}`"))
                            .with_primary(n.span, "not a type");
                    d = match crate::suggest::closest(other, known) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help("types are dtypes with shapes (`f32[B, 784]`) or `int`, `f32`, `bool`, `str`, `init`, `params`"),
                    };
                    self.emit(d);
                    Ty::Unknown
                }
            },
        }
    }

    fn eval_shape(&mut self, f: &mut Frame, s: &ShapeExpr, introduce: bool) -> Option<Shape> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in &s.items {
            match item {
                ShapeItem::Pack(id) => match f.lookup(id.name) {
                    Some(Ty::Shape(sh)) => out.extend(sh.0.iter().cloned()),
                    _ if introduce => {
                        let sym = self.fresh_sym(&id.name);
                        f.bind(
                            id.name,
                            Ty::Shape(Shape(vec![ShapeElem::Pack(sym.clone())].into())),
                            id.span,
                            VarKind::Plain,
                        );
                        out.push(ShapeElem::Pack(sym));
                    }
                    _ => ok = false,
                },
                ShapeItem::Dim(Expr {
                    kind: ExprKind::Name(id),
                    ..
                }) if introduce && f.peek(id.name).is_none() => {
                    let sym = self.fresh_sym(&id.name);
                    f.bind(
                        id.name,
                        Ty::Int(Dim::sym(sym.clone())),
                        id.span,
                        VarKind::Plain,
                    );
                    if let Some(v) = f.vars.last_mut() {
                        v.used = true;
                    }
                    out.push(ShapeElem::Dim(Dim::sym(sym)));
                }
                ShapeItem::Dim(e) => match self.expr(f, e) {
                    Ty::Int(d) => out.push(ShapeElem::Dim(d)),
                    Ty::Unknown => ok = false,
                    other => {
                        ok = false;
                        self.emit(
                            Diagnostic::error(codes::NOT_A_CONSTANT, format!("a dimension must be an integer, found {other}"))
                                .with_primary(e.span, "not an integer")
                                .with_help("dimensions are integers: numbers, `int` attributes, or symbols like `B`; `a / b` of integers that do not divide is a fraction, write `a // b` to round down"),
                        );
                    }
                },
            }
        }
        let shape = Shape(out.into());
        if let Some(why) = shape.too_large() {
            self.emit(too_large(s.span, why));
            return None;
        }
        ok.then_some(shape)
    }

    // ------------------------------------------------------------------ blocks

    fn block(&mut self, f: &mut Frame, b: &Block) -> Ty {
        let mark = f.vars.len();
        for s in &b.stmts {
            self.stmt(f, s);
        }
        let ends_with_yield = matches!(b.stmts.last().map(|s| &s.kind), Some(StmtKind::Yield(_)));
        let ty = match &b.tail {
            Some(e) => self.expr(f, e),
            // A block ending in `yield` has no value of its own; a misplaced `yield` was
            // reported where it stands.
            None if ends_with_yield => Ty::Unknown,
            None => Ty::Tuple(Vec::new()),
        };
        self.warn_unused_outputs(f, mark);
        f.vars.truncate(mark.max(self.first_param_index(f, mark)));
        ty
    }

    /// Parameters and states declared in a body outlive its block for the unused-parameter
    /// check; everything else is dropped at the block's end.
    fn first_param_index(&self, f: &Frame, mark: usize) -> usize {
        let keep = f.vars[mark..]
            .iter()
            .rposition(|v| matches!(v.kind, VarKind::Param | VarKind::State));
        keep.map_or(mark, |i| mark + i + 1)
    }

    fn warn_unused_outputs(&mut self, f: &Frame, mark: usize) {
        if !f.warn {
            return;
        }
        for v in &f.vars[mark..] {
            if v.kind == VarKind::LayerOutput && !v.used && !v.name.starts_with('_') {
                self.emit(
                    Diagnostic::warning(
                        codes::UNUSED_LAYER,
                        format!("the layer output `{}` is never used", v.name),
                    )
                    .with_primary(v.span, "computed here, then never read")
                    .with_help(format!(
                        "remove the layer, or use `{}` (names starting with `_` are exempt)",
                        v.name
                    )),
                );
            }
        }
    }

    fn stmt(&mut self, f: &mut Frame, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { pats, value } => {
                let is_layer_output = self.is_layer_application(f, value);
                let ty = self.expr(f, value);
                let kind = if is_layer_output {
                    VarKind::LayerOutput
                } else {
                    VarKind::Plain
                };
                if pats.len() == 1 {
                    self.bind_pattern(f, &pats[0], ty, kind);
                } else {
                    let tuple = Pattern::Tuple(pats.clone(), value.span);
                    self.bind_pattern(f, &tuple, ty, kind);
                }
            }
            StmtKind::Param { names, ty, init } => {
                self.param_stmt(f, names, ty, init.as_deref(), s.span)
            }
            StmtKind::State { names, ty, init } => {
                let declared = ty.as_ref().map(|t| self.eval_type(f, t, false));
                let init_ty = init.as_ref().map(|e| (self.expr(f, e), e.span));
                let state_ty = match (&declared, init_ty) {
                    (Some(d), Some((i, span))) => {
                        self.check_init(d, &i, span);
                        d.clone()
                    }
                    (Some(d), None) => d.clone(),
                    (None, Some((i, _))) => i,
                    (None, None) => {
                        self.emit(
                            Diagnostic::error(
                                codes::STATE_WITHOUT_TYPE,
                                "a `state` needs a type or an initial value",
                            )
                            .with_primary(s.span, "cannot tell this state's shape")
                            .with_help("write `state m: [N] = zeros` or `state m = zeros_like(p)`"),
                        );
                        Ty::Unknown
                    }
                };
                for n in names {
                    if let Some(node) = self.trace.last().filter(|_| self.keep.facts) {
                        self.facts.instances.declare(&node.path, &n.name, true);
                    }
                    f.bind(n.name, state_ty.clone(), n.span, VarKind::State);
                    if let Some(v) = f.vars.last_mut() {
                        v.used = true;
                    }
                }
            }
            StmtKind::Assign { target, value } => {
                let vty = self.expr(f, value);
                let Some(var) = f.peek(target.name).cloned() else {
                    return;
                };
                if var.kind != VarKind::State {
                    self.emit(
                        Diagnostic::error(codes::ASSIGN_NON_STATE, format!("cannot assign to `{}`", target.name))
                            .with_primary(target.span, "not a `state`")
                            .with_secondary(var.span, "declared here")
                            .with_help("only `state` values (and `p` in an optimizer) can be updated; to name a new value, write `let`"),
                    );
                } else if !(same_type(&var.ty, &vty) || vty.is_weak_scalar() && var.ty.is_scalar())
                {
                    self.emit(
                        Diagnostic::error(
                            codes::DECLARATION_MISMATCH,
                            format!("`{}` is {}, but this assigns {vty}", target.name, var.ty),
                        )
                        .with_primary(value.span, format!("this is {vty}"))
                        .with_secondary(var.span, format!("declared as {}", var.ty))
                        .with_help("a state keeps its shape and dtype across steps"),
                    );
                }
            }
            StmtKind::Yield(values) => {
                let tys: Vec<Ty> = values.iter().map(|e| self.expr(f, e)).collect();
                match f.scan_yields.last_mut() {
                    Some(slot) if tys.len() == 2 => {
                        let mut it = tys.into_iter();
                        *slot = Some((it.next().expect("2"), it.next().expect("2"), s.span));
                    }
                    Some(slot) => {
                        // The body does yield: only the count is wrong.
                        *slot = Some((Ty::Unknown, Ty::Unknown, s.span));
                        self.emit(
                        Diagnostic::error(codes::MISPLACED_STATEMENT, format!("`yield` takes the output and the new carry, found {} value{}", tys.len(), if tys.len() == 1 { "" } else { "s" }))
                            .with_primary(s.span, "expected `yield output, carry`")
                            .with_help("yield a tuple as the output or the carry to return several values: `yield (a, b), (h, c)`"),
                    );
                    }
                    None => self.emit(
                        Diagnostic::error(codes::MISPLACED_STATEMENT, "`yield` outside a `scan` body")
                            .with_primary(s.span, "nothing to yield to")
                            .with_help("`yield` ends the body of `scan(xs, axis: 1, init: c) |x, c| { … }`; elsewhere a block's value is its last expression"),
                    ),
                }
            }
            StmtKind::Expr(e) => {
                let is_layer = self.is_layer_application(f, e);
                self.expr(f, e);
                if is_layer && f.warn {
                    self.emit(
                        Diagnostic::warning(
                            codes::UNUSED_LAYER,
                            "the output of this layer is never used",
                        )
                        .with_primary(e.span, "computed, then dropped")
                        .with_help("bind it with `let`, pipe it on with `|>`, or remove it"),
                    );
                }
            }
        }
    }

    fn is_layer_application(&self, f: &Frame, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Pipe { rhs, .. } => self.names_layer(f, rhs),
            ExprKind::Call(call) => match &call.callee.kind {
                ExprKind::Call(inner) => self.names_layer(f, &inner.callee),
                ExprKind::Name(_) => f.models_are_instances && self.names_layer(f, &call.callee),
                _ => false,
            },
            _ => false,
        }
    }

    fn names_layer(&self, f: &Frame, e: &Expr) -> bool {
        let name = match &e.kind {
            ExprKind::Name(id) => id,
            ExprKind::Call(call) => match &call.callee.kind {
                ExprKind::Name(id) => id,
                _ => return false,
            },
            _ => return false,
        };
        f.peek(name.name).is_none()
            && self
                .program
                .lookup(f.module, &name.name)
                .and_then(|r| self.program.def(r))
                .is_some_and(|d| d.kind.is_layer_like())
    }

    fn param_stmt(
        &mut self,
        f: &mut Frame,
        names: &[Ident],
        ty: &TypeExpr,
        init: Option<&Expr>,
        span: Span,
    ) {
        if !matches!(f.kind, Some(DefKind::Layer | DefKind::Model)) {
            self.emit(
                Diagnostic::error(
                    codes::MISPLACED_STATEMENT,
                    "`param` outside a layer or model",
                )
                .with_primary(span, "parameters belong to layers")
                .with_help("declare trainable parameters inside `layer` or `model` bodies"),
            );
        }
        let pty = self.eval_type(f, ty, false);
        let pty = match pty {
            Ty::Float(_) => Ty::Tensor(Dtype::F32, Shape::scalar()),
            other => other,
        };
        if let Ty::Tensor(dt, _) = &pty
            && !dt.is_float()
        {
            self.emit(
                Diagnostic::error(
                    codes::DTYPE_MISMATCH,
                    format!("a parameter must be a float tensor, not {}", dt.name()),
                )
                .with_primary(ty.span, "not trainable")
                .with_help("gradients exist only for f32 and f64 values"),
            );
        }
        if let Some(e) = init {
            let ity = self.expr(f, e);
            self.check_init(&pty, &ity, e.span);
        }
        for n in names {
            f.bind(n.name, pty.clone(), n.span, VarKind::Param);
            if let Ty::Tensor(_, shape) = &pty {
                self.record_param(&n.name, shape);
            }
        }
    }

    fn check_init(&mut self, declared: &Ty, init: &Ty, span: Span) {
        let ok = match init {
            Ty::Init | Ty::Unknown => true,
            Ty::Callable(Callable::Builtin(b)) => b.initializer().is_some(),
            Ty::Int(_) | Ty::Float(_) => true,
            Ty::Tensor(..) => same_type(declared, init),
            _ => false,
        };
        if !ok {
            let d = Diagnostic::error(codes::DECLARATION_MISMATCH, format!("this initial value is {init}, but the declaration is {declared}"))
                .with_primary(span, format!("this is {init}"))
                .with_help("use an initializer (`zeros`, `glorot_uniform`, `normal(0.02)`, …) or a tensor of the declared shape");
            self.emit(d);
        }
    }

    fn bind_pattern(&mut self, f: &mut Frame, p: &Pattern, ty: Ty, kind: VarKind) {
        match p {
            Pattern::Name(id) => f.bind(id.name, ty, id.span, kind),
            Pattern::Tuple(ps, span) => {
                let items = match ty {
                    Ty::Tuple(items) if items.len() == ps.len() => items,
                    Ty::Unknown => vec![Ty::Unknown; ps.len()],
                    other => {
                        let what = match &other {
                            Ty::Tuple(items) => format!("a tuple of {}", items.len()),
                            t => t.to_string(),
                        };
                        self.emit(
                            Diagnostic::error(
                                codes::DESTRUCTURE_COUNT,
                                format!("cannot destructure {what} into {} names", ps.len()),
                            )
                            .with_primary(*span, format!("{} names here", ps.len()))
                            .with_help(
                                "the number of names must match the number of values in the tuple",
                            ),
                        );
                        vec![Ty::Unknown; ps.len()]
                    }
                };
                for (p, t) in ps.iter().zip(items) {
                    self.bind_pattern(f, p, t, kind);
                }
            }
        }
    }

    // ------------------------------------------------------------------ expressions

    /// Checks an expression, and records its type when it is in the root file.
    pub(crate) fn expr(&mut self, f: &mut Frame, e: &Expr) -> Ty {
        let t = self.expr_type(f, e);
        if let Some(why) = t.too_large() {
            self.emit(too_large(e.span, why));
            return Ty::Unknown;
        }
        if self.keep.types && f.module == self.program.root && !t.is_unknown() {
            self.types.record(e.span, &t);
        }
        t
    }

    fn expr_type(&mut self, f: &mut Frame, e: &Expr) -> Ty {
        match &e.kind {
            ExprKind::Number { value, is_int } => {
                if *is_int && *value <= i64::MAX as f64 {
                    Ty::Int(Dim::constant(*value as i64))
                } else {
                    Ty::Float(Some(*value))
                }
            }
            ExprKind::Str(s) => Ty::Str(s.to_string()),
            ExprKind::Bool(b) => Ty::Bool(Some(*b)),
            ExprKind::Training => Ty::Bool(None),
            ExprKind::Name(id) => self.name(f, id),
            ExprKind::Member(member) => {
                let Member { base, field } = &**member;
                let b = self.expr(f, base);
                match (&b, field.name.parse::<usize>()) {
                    (Ty::Tuple(items), Ok(i)) if i < items.len() => items[i].clone(),
                    (Ty::Unknown, _) => Ty::Unknown,
                    _ => {
                        self.emit(
                            Diagnostic::error(codes::NOT_CALLABLE, format!("{b} has no field `{}`", field.name))
                                .with_primary(field.span, "no such field")
                                .with_help("fields exist only on tuples (`t.0`, `t.1`); destructure with `let a, b = t`"),
                        );
                        Ty::Unknown
                    }
                }
            }
            ExprKind::Call(call) => {
                let callee_ty = self.expr(f, &call.callee);
                let args = self.eval_args(f, &call.args);
                self.call(f, callee_ty, &call.callee, args, e.span)
            }
            ExprKind::Pipe { lhs, rhs } => {
                let input = ArgVal {
                    name: None,
                    ty: self.expr(f, lhs),
                    span: lhs.span,
                };
                self.pipe(f, input, rhs)
            }
            ExprKind::Binary {
                op,
                op_at,
                lhs,
                rhs,
            } => {
                let l = self.expr(f, lhs);
                let r = self.expr(f, rhs);
                let op_span = op.span_at(e.span.file, *op_at);
                operators::binary(self, *op, op_span, (&l, lhs.span), (&r, rhs.span))
            }
            ExprKind::Unary { op, expr } => {
                let t = self.expr(f, expr);
                operators::unary(self, *op, &t, e.span)
            }
            ExprKind::Range { lo, hi } => {
                let l = self.expr(f, lo);
                let h = self.expr(f, hi);
                match (l, h) {
                    (Ty::Int(a), Ty::Int(b)) => match (a.as_const(), b.as_const()) {
                        (Some(a), Some(b)) if a <= b && (b as i128 - a as i128) > MAX_RANGE => {
                            self.emit(too_large(
                                e.span,
                                format!(
                                    "this range holds {} numbers; a range holds at most {MAX_RANGE}",
                                    b as i128 - a as i128
                                ),
                            ));
                            Ty::Unknown
                        }
                        (Some(a), Some(b)) if a <= b => {
                            Ty::Shape(Shape::of_dims((a..b).map(Dim::constant)))
                        }
                        _ => {
                            self.emit(
                                Diagnostic::error(
                                    codes::NOT_A_CONSTANT,
                                    "a range needs constant bounds with start ≤ end",
                                )
                                .with_primary(e.span, "not a constant range")
                                .with_help("write it with numbers, such as `0..4`"),
                            );
                            Ty::Unknown
                        }
                    },
                    (Ty::Unknown, _) | (_, Ty::Unknown) => Ty::Unknown,
                    (l, h) => {
                        let (bad, span) = if matches!(l, Ty::Int(_)) {
                            (h, hi.span)
                        } else {
                            (l, lo.span)
                        };
                        self.emit(
                            Diagnostic::error(
                                codes::NOT_A_CONSTANT,
                                format!("a range needs integer bounds, found {bad}"),
                            )
                            .with_primary(span, "not an integer")
                            .with_help("write it with whole numbers, such as `0..4`"),
                        );
                        Ty::Unknown
                    }
                }
            }
            ExprKind::Tuple(items) => Ty::Tuple(items.iter().map(|i| self.expr(f, i)).collect()),
            ExprKind::List(items) => self.list(f, items),
            ExprKind::Closure { params, body } => {
                Ty::Callable(Callable::Closure(Rc::new(Closure {
                    params: params.to_vec(),
                    body: (**body).clone(),
                    env: f.vars.clone(),
                    module: f.module,
                })))
            }
            ExprKind::If(if_) => {
                self.if_expr(f, &if_.cond, &if_.then, if_.otherwise.as_ref(), e.span)
            }
            ExprKind::Scan(scan) => self.scan(
                f,
                &scan.args,
                scan.args_span,
                &scan.params,
                &scan.body,
                e.span,
            ),
            ExprKind::Block(b) => self.block(f, b),
        }
    }

    fn name(&mut self, f: &mut Frame, id: &Ident) -> Ty {
        if let Some(t) = f.lookup(id.name) {
            return t;
        }
        if let Some(r) = self.program.lookup(f.module, &id.name) {
            if f.models_are_instances
                && self
                    .program
                    .def(r)
                    .is_some_and(|d| d.kind == DefKind::Model)
            {
                return Ty::Layer(self.model_instance(f, r, id.span));
            }
            return match self.program.item(r) {
                Item::Def(_) => Ty::Callable(Callable::Def(r)),
                Item::Data(_) => {
                    self.emit(
                        Diagnostic::error(
                            codes::NOT_CALLABLE,
                            format!("`{}` is a data block, not a value", id.name),
                        )
                        .with_primary(id.span, "a data block")
                        .with_help(format!(
                            "a train block reads it (`train Model on {}`); its fields are the model's inputs and the loss's targets",
                            id.name
                        )),
                    );
                    Ty::Unknown
                }
                // Only definitions and data blocks have names in a module's scope.
                Item::Use(_) | Item::Train(_) | Item::Search(_) => Ty::Unknown,
            };
        }
        if let Some(b) = crate::builtins::lookup(&id.name) {
            return Ty::Callable(Callable::Builtin(b));
        }
        if let Some(init) = crate::prim::initializer(&id.name) {
            return if init.params().is_empty() {
                Ty::Init
            } else {
                Ty::Callable(Callable::Init(init))
            };
        }
        match id.name.as_str() {
            "f32" => Ty::Dtype(Dtype::F32),
            "f64" => Ty::Dtype(Dtype::F64),
            "i32" => Ty::Dtype(Dtype::I32),
            "bool" => Ty::Dtype(Dtype::Bool),
            // The resolver has reported unknown names already.
            _ => Ty::Unknown,
        }
    }

    fn model_instance(&mut self, f: &mut Frame, r: ItemRef, span: Span) -> Rc<Instance> {
        if let Some(i) = f.model_instances.get(&r) {
            return i.clone();
        }
        let attrs = self.default_attrs(r);
        self.next_id += 1;
        let inst = Rc::new(Instance {
            id: self.next_id,
            def: r,
            attrs,
            span,
            site: Vec::new(),
        });
        f.model_instances.insert(r, inst.clone());
        inst
    }

    fn default_attrs(&mut self, r: ItemRef) -> Vec<(Symbol, Ty)> {
        let def = self.program.def(r).expect("a definition");
        let mut f = Frame::new(r.module, Some(def.kind));
        let mut out = Vec::new();
        for a in &def.attrs {
            let ty = match &a.default {
                Some(e) => self.expr(&mut f, e),
                None => Ty::Unknown,
            };
            f.bind(a.name.name, ty.clone(), a.name.span, VarKind::Plain);
            out.push((a.name.name, ty));
        }
        out
    }

    fn eval_args(&mut self, f: &mut Frame, args: &[Arg]) -> Vec<ArgVal> {
        args.iter()
            .map(|a| ArgVal {
                name: a.name.clone(),
                ty: self.expr(f, &a.value),
                span: a.value.span,
            })
            .collect()
    }

    fn list(&mut self, f: &mut Frame, items: &[ListItem]) -> Ty {
        let mut tys = Vec::new();
        for it in items {
            match it {
                ListItem::Expr(e) => tys.push(self.expr(f, e)),
                ListItem::Spread(id) => tys.push(f.lookup(id.name).unwrap_or(Ty::Unknown)),
            }
        }
        let all_dims = tys.iter().all(|t| matches!(t, Ty::Int(_) | Ty::Shape(_)));
        if all_dims {
            let mut elems = Vec::new();
            for (t, it) in tys.iter().zip(items) {
                match (t, it) {
                    (Ty::Int(d), _) => elems.push(ShapeElem::Dim(d.clone())),
                    (Ty::Shape(s), ListItem::Spread(_)) => elems.extend(s.0.iter().cloned()),
                    _ => return Ty::List(tys),
                }
            }
            return Ty::Shape(Shape(elems.into()));
        }
        Ty::List(tys)
    }

    fn if_expr(
        &mut self,
        f: &mut Frame,
        cond: &Expr,
        then: &Block,
        otherwise: Option<&Expr>,
        span: Span,
    ) -> Ty {
        let c = self.expr(f, cond);
        match &c {
            Ty::Bool(_) | Ty::Unknown => {}
            other => self.emit(
                Diagnostic::error(codes::IF_FORM, format!("an `if` condition must be known when the step is compiled, found {other}"))
                    .with_primary(cond.span, "not a compile-time condition")
                    .with_help("`if` chooses code (on `training` or a `bool` attribute); to choose elementwise between tensors use `select(cond, a, b)`"),
            ),
        }
        // With the condition known (an expansion with concrete attributes), only the branch
        // taken has layers and parameters; the other is still checked.
        let known = match &c {
            Ty::Bool(Some(b)) => Some(*b),
            _ => None,
        };
        let t = self.branch(known != Some(false), |c| c.block(f, then));
        let Some(o) = otherwise else {
            self.emit(
                Diagnostic::error(codes::IF_FORM, "an `if` used as a value needs an `else`")
                    .with_primary(span, "no `else` branch")
                    .with_help("add `else { … }` giving the value when the condition is false"),
            );
            return t;
        };
        let e = self.branch(known != Some(true), |c| c.expr(f, o));
        if !same_type(&t, &e) {
            let then_span = then.tail.as_ref().map_or(then.span, |x| x.span);
            let else_span = match &o.kind {
                ExprKind::Block(b) => b.tail.as_ref().map_or(o.span, |x| x.span),
                _ => o.span,
            };
            self.emit(
                Diagnostic::error(
                    codes::IF_FORM,
                    format!("the branches of this `if` differ: {t} and {e}"),
                )
                .with_primary(else_span, format!("this is {e}"))
                .with_secondary(then_span, format!("this is {t}"))
                .with_help("both branches must give the same dtype and shape"),
            );
            return Ty::Unknown;
        }
        if t.is_unknown() { e } else { t }
    }

    fn scan(
        &mut self,
        f: &mut Frame,
        args: &[Arg],
        args_span: Span,
        params: &[Pattern],
        body: &Block,
        span: Span,
    ) -> Ty {
        let vals = self.eval_args(f, args);
        let slots = [
            Slot {
                name: "xs",
                optional: false,
            },
            Slot {
                name: "axis",
                optional: true,
            },
            Slot {
                name: "init",
                optional: false,
            },
        ];
        let Some(bound) = self.bind_call(&slots, &vals, "scan", args_span, Callee::Scan) else {
            return Ty::Unknown;
        };
        let xs = bound[0].clone().expect("required");
        let axis = match &bound[1] {
            Some(a) => match &a.ty {
                Ty::Int(d) => d.as_const().unwrap_or(0),
                _ => 0,
            },
            None => 0,
        };
        let init = bound[2].clone().expect("required");
        let Ty::Tensor(dtype, shape) = &xs.ty else {
            if !xs.ty.is_unknown() {
                self.emit(
                    Diagnostic::error(
                        codes::DECLARATION_MISMATCH,
                        format!("`scan` runs over a tensor, found {}", xs.ty),
                    )
                    .with_primary(xs.span, "not a tensor")
                    .with_help(
                        "pass the sequence as the first argument: `scan(xs, axis: 1, init: …)`",
                    ),
                );
            }
            return Ty::Unknown;
        };
        let Some(ax) = operators::normalize_axis(self, shape, axis, xs.span) else {
            return Ty::Unknown;
        };
        let mut step_shape = shape.clone();
        let len = match Rc::make_mut(&mut step_shape.0).remove(ax) {
            ShapeElem::Dim(d) => d,
            ShapeElem::Pack(_) => return Ty::Unknown,
        };
        if params.len() != 2 {
            self.emit(
                Diagnostic::error(codes::DESTRUCTURE_COUNT, format!("a scan body takes two parameters (the step's input and the carry), found {}", params.len()))
                    .with_primary(span, "write `|x, carry| { … }`")
                    .with_help("the first is one slice of the sequence, the second the value carried between steps"),
            );
            return Ty::Unknown;
        }
        let mark = f.vars.len();
        self.bind_pattern(
            f,
            &params[0],
            Ty::Tensor(*dtype, step_shape),
            VarKind::Plain,
        );
        self.bind_pattern(f, &params[1], init.ty.clone(), VarKind::Plain);
        f.scan_yields.push(None);
        self.block(f, body);
        let yielded = f.scan_yields.pop().flatten();
        f.vars.truncate(mark);
        let Some((out, carry, yspan)) = yielded else {
            self.emit(
                Diagnostic::error(codes::MISPLACED_STATEMENT, "this `scan` body never yields")
                    .with_primary(body.span, "no `yield` at the end")
                    .with_help("end the body with `yield output, new_carry`"),
            );
            return Ty::Unknown;
        };
        if out.is_unknown() || carry.is_unknown() {
            return Ty::Unknown;
        }
        if !same_type(&carry, &init.ty) {
            self.emit(
                Diagnostic::error(
                    codes::MISPLACED_STATEMENT,
                    format!(
                        "the scan carry changes type: it starts as {} but is yielded as {carry}",
                        init.ty
                    ),
                )
                .with_primary(yspan, format!("the new carry is {carry}"))
                .with_secondary(init.span, format!("the initial carry is {}", init.ty))
                .with_help("the carry must keep its dtype and shape from step to step"),
            );
        }
        stack_along(&out, ax, &len)
    }

    // ------------------------------------------------------------------ calls

    fn pipe(&mut self, f: &mut Frame, input: ArgVal, rhs: &Expr) -> Ty {
        if let ExprKind::Call(call) = &rhs.kind {
            let Call { callee, args, .. } = &**call;
            let callee_ty = self.expr(f, callee);
            let is_layer_def = matches!(&callee_ty, Ty::Callable(Callable::Def(r)) if self.program.def(*r).is_some_and(|d| d.kind.is_layer_like()));
            let args = self.eval_args(f, args);
            if is_layer_def {
                let inst = self.call(f, callee_ty, callee, args, rhs.span);
                return self.apply_value(f, inst, rhs, vec![input], rhs.span);
            }
            let mut all = vec![input];
            all.extend(args);
            return self.call(f, callee_ty, callee, all, rhs.span);
        }
        let t = self.expr(f, rhs);
        self.apply_value(f, t, rhs, vec![input], rhs.span)
    }

    /// Applies a value that was not written as a call: a layer, a function name, a closure.
    fn apply_value(
        &mut self,
        f: &mut Frame,
        t: Ty,
        callee: &Expr,
        args: Vec<ArgVal>,
        span: Span,
    ) -> Ty {
        match &t {
            Ty::Callable(Callable::Def(r))
                if self.program.def(*r).is_some_and(|d| d.kind.is_layer_like()) =>
            {
                let inst = self.call(f, t.clone(), callee, Vec::new(), callee.span);
                self.apply_value(f, inst, callee, args, span)
            }
            _ => self.call(f, t, callee, args, span),
        }
    }

    pub(crate) fn call(
        &mut self,
        f: &mut Frame,
        callee_ty: Ty,
        callee: &Expr,
        args: Vec<ArgVal>,
        span: Span,
    ) -> Ty {
        if args.iter().any(|a| a.ty.is_unknown()) {
            // Still look at the callee so that its own mistakes surface, but derive nothing —
            // except the binding, which does not depend on the arguments' types (a constraint's
            // body is checked only alone, where `p` may leave a value unknown).
            self.record_binding(&callee_ty, &args, span);
            return Ty::Unknown;
        }
        match callee_ty {
            Ty::Unknown => Ty::Unknown,
            Ty::Callable(Callable::Builtin(b)) => operators::call(self, f, b, &args, span),
            Ty::Callable(Callable::Init(init)) => {
                let slots: Vec<Slot> = init
                    .params()
                    .iter()
                    .map(|p| Slot {
                        name: p.name,
                        optional: p.optional,
                    })
                    .collect();
                self.bind_call(&slots, &args, init.name(), span, Callee::Init(init));
                Ty::Init
            }
            Ty::Callable(Callable::Closure(c)) => self.call_closure(&c, &args, span),
            Ty::Callable(Callable::Def(r)) => self.call_def(f, r, args, callee.span, span),
            Ty::Layer(inst) => self.apply_instance(&inst, args, span),
            other => {
                self.emit(
                    Diagnostic::error(codes::NOT_CALLABLE, format!("{other} cannot be called"))
                        .with_primary(callee.span, "not a function or layer")
                        .with_help(
                            "only functions, layers, optimizers and closures take arguments",
                        ),
                );
                Ty::Unknown
            }
        }
    }

    /// Records the binding of a call whose arguments are not all known, when it fits its
    /// callee's signature (what does not fit is reported once the arguments are known).
    fn record_binding(&mut self, callee_ty: &Ty, args: &[ArgVal], span: Span) {
        if !self.keep.facts {
            return;
        }
        let (callee, slots): (Callee, Vec<(&str, bool)>) = match callee_ty {
            Ty::Callable(Callable::Builtin(b)) => (
                Callee::Builtin(*b),
                b.def()
                    .params
                    .iter()
                    .map(|p| (p.name, p.optional))
                    .collect(),
            ),
            Ty::Callable(Callable::Init(init)) => (
                Callee::Init(*init),
                init.params().iter().map(|p| (p.name, p.optional)).collect(),
            ),
            Ty::Callable(Callable::Def(r)) => self.def_slots(*r, true),
            Ty::Layer(inst) => self.def_slots(inst.def, false),
            _ => return,
        };
        let names: Vec<&str> = slots.iter().map(|(n, _)| *n).collect();
        let matched = crate::bind::match_args(
            &names,
            args.iter()
                .map(|a| a.name.as_ref().map(|n| n.name.as_str())),
        );
        if matched.problems.is_empty() && matched.missing(|i| !slots[i].1).is_empty() {
            self.facts
                .calls
                .record(span, callee, args.len(), &matched.slots);
        }
    }

    /// A definition called (`called`: its name, so a layer's attributes) or a layer instance
    /// applied, as a callee with its parameters and whether each has a default.
    fn def_slots(&self, r: ItemRef, called: bool) -> (Callee, Vec<(&'p str, bool)>) {
        let program = self.program;
        let def = program.def(r).expect("callable defs are defs");
        let (part, params) = if called && def.kind.is_layer_like() {
            (Part::Attrs, &def.attrs)
        } else {
            (Part::Params, &def.params)
        };
        let slots = params
            .iter()
            .map(|p| (p.name.name.as_str(), p.default.is_some()))
            .collect();
        (Callee::Def(r, part), slots)
    }

    fn call_closure(&mut self, c: &Closure, args: &[ArgVal], span: Span) -> Ty {
        if args.len() != c.params.len() || args.iter().any(|a| a.name.is_some()) {
            self.emit(
                Diagnostic::error(
                    codes::ARGUMENT_COUNT,
                    format!(
                        "this closure takes {} arguments, found {}",
                        c.params.len(),
                        args.len()
                    ),
                )
                .with_primary(span, "wrong number of arguments")
                .with_help("closures take positional arguments only"),
            );
            return Ty::Unknown;
        }
        let mut f = Frame::new(c.module, None);
        f.vars = c.env.clone();
        for (p, a) in c.params.iter().zip(args) {
            self.bind_pattern(&mut f, p, a.ty.clone(), VarKind::Plain);
        }
        if let Some(node) = self.trace.last_mut() {
            node.calls.push(span);
        }
        let t = self.expr(&mut f, &c.body);
        if let Some(node) = self.trace.last_mut() {
            node.calls.pop();
        }
        t
    }

    /// Matches arguments to parameter slots, reporting what does not fit.
    pub(crate) fn bind_slots(
        &mut self,
        slots: &[Slot],
        args: &[ArgVal],
        what: &str,
        span: Span,
    ) -> Option<Vec<Option<ArgVal>>> {
        let matched = self.match_slots(slots, args, what, span)?;
        Some(matched.take(args.to_vec()))
    }

    /// Matches the arguments of a call lowering evaluates, and records the binding of the call
    /// at `span` to `callee` for it.
    pub(crate) fn bind_call(
        &mut self,
        slots: &[Slot],
        args: &[ArgVal],
        what: &str,
        span: Span,
        callee: Callee,
    ) -> Option<Vec<Option<ArgVal>>> {
        let matched = self.match_slots(slots, args, what, span)?;
        if self.keep.facts {
            self.facts
                .calls
                .record(span, callee, args.len(), &matched.slots);
        }
        Some(matched.take(args.to_vec()))
    }

    /// Matches arguments to parameter slots by [`crate::bind::match_args`] (positional first,
    /// then named); None after reporting a problem.
    fn match_slots(
        &mut self,
        slots: &[Slot],
        args: &[ArgVal],
        what: &str,
        span: Span,
    ) -> Option<crate::bind::Matched> {
        let names: Vec<&str> = slots.iter().map(|s| s.name).collect();
        let matched = crate::bind::match_args(
            &names,
            args.iter()
                .map(|a| a.name.as_ref().map(|n| n.name.as_str())),
        );
        for problem in &matched.problems {
            let d = match *problem {
                crate::bind::Problem::TooMany { arg } => Diagnostic::error(
                    codes::ARGUMENT_COUNT,
                    format!(
                        "`{what}` takes {} argument{}, but {} were given",
                        slots.len(),
                        if slots.len() == 1 { "" } else { "s" },
                        args.iter().filter(|a| a.name.is_none()).count()
                    ),
                )
                .with_primary(args[arg].span, "this argument has no parameter")
                .with_help(format!("`{what}` takes ({})", names.join(", "))),
                crate::bind::Problem::Twice { arg, first, .. } => {
                    let n = args[arg]
                        .name
                        .as_ref()
                        .expect("only named arguments repeat");
                    Diagnostic::error(
                        codes::ARGUMENT_TWICE,
                        format!("argument `{}` is given twice", n.name),
                    )
                    .with_primary(n.span, "given again here")
                    .with_secondary(args[first].span, "first given here")
                    .with_help("give each argument once")
                }
                crate::bind::Problem::Unknown { arg } => {
                    let n = args[arg]
                        .name
                        .as_ref()
                        .expect("unknown arguments are named");
                    let d = Diagnostic::error(
                        codes::UNKNOWN_ARGUMENT,
                        format!("`{what}` has no argument named `{}`", n.name),
                    )
                    .with_primary(n.span, "unknown argument");
                    match crate::suggest::closest(&n.name, names.iter().copied()) {
                        Some(s) => d.with_help(format!(
                            "did you mean `{s}`? `{what}` takes ({})",
                            names.join(", ")
                        )),
                        None => d.with_help(format!("`{what}` takes ({})", names.join(", "))),
                    }
                }
            };
            self.emit(d);
        }
        let mut ok = matched.problems.is_empty();
        let missing: Vec<&str> = matched
            .missing(|i| !slots[i].optional)
            .into_iter()
            .map(|i| slots[i].name)
            .collect();
        if ok && !missing.is_empty() {
            let list = missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.emit(
                Diagnostic::error(
                    codes::ARGUMENT_COUNT,
                    format!(
                        "`{what}` is missing {} {list}",
                        if missing.len() == 1 {
                            "argument"
                        } else {
                            "arguments"
                        }
                    ),
                )
                .with_primary(span, "in this call")
                .with_help(format!("pass {list}, by position or by name")),
            );
            ok = false;
        }
        ok.then_some(matched)
    }

    fn call_def(
        &mut self,
        f: &mut Frame,
        r: ItemRef,
        args: Vec<ArgVal>,
        callee_span: Span,
        span: Span,
    ) -> Ty {
        let def = self.program.def(r).expect("callable defs are defs");
        match def.kind {
            DefKind::Layer | DefKind::Model => {
                let Some(attrs) = self.bind_params(r, Part::Attrs, &args, span, None) else {
                    return Ty::Unknown;
                };
                if !self.check_wheres(r, &attrs, span, true) {
                    return Ty::Unknown;
                }
                self.next_id += 1;
                let _ = f;
                // While a model is expanded, where the instance is made names it.
                let site = match self.trace.last() {
                    Some(node) => node.calls.iter().copied().chain([span]).collect(),
                    None => Vec::new(),
                };
                Ty::Layer(Rc::new(Instance {
                    id: self.next_id,
                    def: r,
                    attrs: attrs.vals,
                    span: callee_span.to(span),
                    site,
                }))
            }
            DefKind::Optimizer | DefKind::Constraint => {
                let Some(b) = self.bind_params(r, Part::Params, &args, span, None) else {
                    return Ty::Unknown;
                };
                if !self.check_wheres(r, &b, span, false) {
                    return Ty::Unknown;
                }
                Ty::Rule(r)
            }
            DefKind::Fn | DefKind::Schedule => {
                let Some(b) = self.bind_params(r, Part::Params, &args, span, None) else {
                    return Ty::Unknown;
                };
                if !self.check_wheres(r, &b, span, false) {
                    return Ty::Unknown;
                }
                if def.kind == DefKind::Schedule {
                    return Ty::Float(None);
                }
                self.result_of(r, b, span)
            }
        }
    }

    fn apply_instance(&mut self, inst: &Rc<Instance>, args: Vec<ArgVal>, span: Span) -> Ty {
        let preset = Bindings {
            vals: inst.attrs.clone(),
            bound_at: HashMap::new(),
        };
        let Some(b) = self.bind_params(inst.def, Part::Params, &args, span, Some(preset)) else {
            return Ty::Unknown;
        };
        if !self.check_wheres(inst.def, &b, span, false) {
            return Ty::Unknown;
        }
        if !self.trace.is_empty() {
            return self.expand_traced(inst, b, span);
        }
        self.result_of(inst.def, b, span)
    }

    /// The value of a call: the declared return type under the bindings, or the body expanded.
    fn result_of(&mut self, r: ItemRef, b: Bindings, span: Span) -> Ty {
        let def = self.program.def(r).expect("a def");
        // While a model is expanded, every body is: a function may make layers.
        if let Some(ret) = def
            .ret
            .as_ref()
            .filter(|_| self.trace.is_empty() && !self.expand_calls)
        {
            let mut f = self.frame_from_bindings(r, &b);
            let t = self.eval_type(&mut f, ret, false);
            return if self.check_positive_dims(r, &t, &b, span) {
                t
            } else {
                Ty::Unknown
            };
        }
        self.expand(r, b, span)
    }

    fn frame_from_bindings(&self, r: ItemRef, b: &Bindings) -> Frame {
        let def = self.program.def(r).expect("a def");
        let mut f = Frame::new(r.module, Some(def.kind));
        for (n, t) in &b.vals {
            f.bind(*n, t.clone(), def.name.span, VarKind::Plain);
        }
        f
    }

    /// Checks a body with concrete inputs. Errors inside are reported at the call, since the
    /// definition itself checked cleanly on its own.
    fn expand(&mut self, r: ItemRef, b: Bindings, span: Span) -> Ty {
        if self.def_failed(r) || self.expanding.contains(&r) || self.expanding.len() > 64 {
            return Ty::Unknown;
        }
        let def = self.program.def(r).expect("a def");
        let mut f = self.frame_from_bindings(r, &b);
        f.kind = Some(def.kind);
        let mark = self.diags.len();
        self.expanding.push(r);
        // A function's body is inlined into the instance calling it (a layer's has its own).
        let inlined = !def.kind.is_layer_like();
        if let Some(node) = self.trace.last_mut().filter(|_| inlined) {
            node.calls.push(span);
        }
        let t = self.block(&mut f, &def.body.unpack());
        if let Some(node) = self.trace.last_mut().filter(|_| inlined) {
            node.calls.pop();
        }
        self.expanding.pop();
        let first_inner = self.diags.drain(mark..).find(Diagnostic::is_error);
        if let Some(first) = first_inner.clone()
            && span == def.name.span
        {
            // A model built for training: its body is the user's code and is where the error
            // is, with the attributes it was built with.
            let attrs: Vec<String> = def
                .attrs
                .iter()
                .filter_map(|a| {
                    b.get(&a.name.name)
                        .map(|t| format!("{} = {}", a.name.name, signature::show_value(t)))
                })
                .collect();
            let mut d = first;
            if !attrs.is_empty() {
                d = d.with_note(format!(
                    "`{}` is built with its default attributes: {}",
                    def.name.name,
                    attrs.join(", ")
                ));
            }
            self.emit(d);
            return Ty::Unknown;
        } else if let Some(first) = first_inner {
            let mut d = Diagnostic::error(
                codes::EXPANSION_FAILED,
                format!(
                    "`{}` cannot be applied to these inputs: {}",
                    def.name.name, first.message
                ),
            )
            .with_primary(span, "in this call");
            if let Some(inner_span) = first.primary_span() {
                let label = first
                    .labels
                    .iter()
                    .find(|l| l.primary)
                    .map_or(String::new(), |l| l.message.clone());
                d = d.with_secondary(inner_span, format!("inside `{}`: {label}", def.name.name));
            }
            for n in first.notes {
                d = d.with_note(n);
            }
            if let Some(h) = first.help {
                d = d.with_help(h);
            }
            self.emit(d);
            return Ty::Unknown;
        }
        let t = match (&def.ret, t) {
            (Some(ret), body) => {
                let declared = self.eval_type(&mut f, ret, false);
                if declared.is_unknown() {
                    body
                } else {
                    declared
                }
            }
            (None, body) => body,
        };
        if self.check_positive_dims(r, &t, &b, span) {
            t
        } else {
            Ty::Unknown
        }
    }

    fn expand_traced(&mut self, inst: &Rc<Instance>, b: Bindings, span: Span) -> Ty {
        let seen = self.trace.iter().any(|n| n.instance_ids.contains(&inst.id));
        if seen || self.trace.iter().any(|n| n.instance == Some(inst.id)) {
            // A shared instance applied again: its parameters exist already.
            let saved = std::mem::take(&mut self.trace);
            let t = self.result_of(inst.def, b, span);
            self.trace = saved;
            return t;
        }
        // Instances are named for the summaries and for lowering; a check that keeps
        // neither only expands them (where their errors are found).
        let named = self.keep.facts || self.keep.summaries;
        let name = if named {
            self.def_name(inst.def)
        } else {
            String::new()
        };
        let parent = self.trace.last_mut().expect("tracing");
        parent.instance_ids.push(inst.id);
        let path = if named {
            self.facts
                .instances
                .name_child(&parent.path, &mut parent.names, &inst.site, &name)
        } else {
            String::new()
        };
        self.trace
            .push(summary::TraceNode::new(path, name, Some(inst.id)));
        let t = self.expand(inst.def, b, span);
        let mut node = self.trace.pop().expect("pushed");
        if self.keep.summaries {
            node.output = Some(t.clone());
            self.trace.last_mut().expect("parent").children.push(node);
        }
        t
    }

    /// Checks a branch of an `if`; one that is not taken records no layer instance or
    /// parameter in the model's summary.
    fn branch(&mut self, taken: bool, check: impl FnOnce(&mut Self) -> Ty) -> Ty {
        if taken {
            return check(self);
        }
        let saved = std::mem::take(&mut self.trace);
        let t = check(self);
        self.trace = saved;
        t
    }

    fn record_param(&mut self, name: &str, shape: &Shape) {
        let (named, summarized) = (self.keep.facts || self.keep.summaries, self.keep.summaries);
        if let Some(node) = self.trace.last_mut().filter(|_| named) {
            let full = self.facts.instances.declare(&node.path, name, false);
            if summarized {
                node.params.push((full, shape.clone()));
            }
        }
    }

    /// A dimension that would be zero or negative (a convolution larger than its input…).
    fn check_positive_dims(&mut self, r: ItemRef, t: &Ty, b: &Bindings, span: Span) -> bool {
        let Ty::Tensor(_, shape) = t else { return true };
        for (i, e) in shape.0.iter().enumerate() {
            if let ShapeElem::Dim(d) = e
                && let Some(c) = d.as_const().filter(|c| *c <= 0)
            {
                let def = self.program.def(r).expect("a def");
                let inputs: Vec<String> = b
                    .vals
                    .iter()
                    .filter(|(n, t)| matches!(t, Ty::Int(d) if d.to_string() != *n))
                    .map(|(n, t)| match t {
                        Ty::Int(d) => format!("{n} = {d}"),
                        _ => unreachable!("filtered"),
                    })
                    .collect();
                self.emit(
                        Diagnostic::error(codes::NONPOSITIVE_DIM, format!("the output of `{}` would have size {c} in dimension {i}", def.name.name))
                            .with_primary(span, format!("this gives {shape}"))
                            .with_note(format!("computed from {}", inputs.join(", ")))
                            .with_help("the input is too small for this window: use a smaller kernel or stride, more padding, or fewer pooling layers"),
                    );
                return false;
            }
        }
        true
    }
}

/// Values bound while matching a call to a signature: attributes, parameters, dimension symbols
/// and packs, with where each symbol was bound (for conflicting-binding diagnostics).
pub(crate) struct Bindings {
    pub vals: Vec<(Symbol, Ty)>,
    pub bound_at: HashMap<Symbol, (Span, Span)>,
}

impl Bindings {
    fn get(&self, name: &str) -> Option<&Ty> {
        self.vals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }
}

/// `out` stacked `len` times along `axis` (tuples stack each element).
fn stack_along(out: &Ty, axis: usize, len: &Dim) -> Ty {
    match out {
        Ty::Tensor(dt, s) => {
            let mut s = s.clone();
            let at = axis.min(s.0.len());
            Rc::make_mut(&mut s.0).insert(at, ShapeElem::Dim(len.clone()));
            Ty::Tensor(*dt, s)
        }
        Ty::Float(_) | Ty::Int(_) => Ty::Tensor(Dtype::F32, Shape::of_dims([len.clone()])),
        Ty::Tuple(items) => Ty::Tuple(items.iter().map(|t| stack_along(t, axis, len)).collect()),
        _ => Ty::Unknown,
    }
}

mod signature;

/// The most numbers a range `a..b` may hold: it is a list known at compile time (column
/// selections of the widest tables stay far below).
const MAX_RANGE: i128 = 1 << 20;

/// The error for a value too large to exist (see [`Ty::too_large`]).
fn too_large(span: Span, why: String) -> Diagnostic {
    Diagnostic::error(codes::TOO_LARGE, "too large to compute with")
        .with_primary(span, why)
        .with_help("dimensions and sizes are 64-bit integers, and a tensor holds at most 2^60 elements: check the numbers (a `^` or a `*` too many?)")
}

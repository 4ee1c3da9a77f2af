//! Lowering: a checked program becomes graphs of primitives for one batch size.
//!
//! The lowerer evaluates the AST with concrete values: dimension symbols and attributes are
//! numbers, `if training` picks a branch, layers and functions are inlined, and every tensor
//! operation becomes IR nodes. Parameters, layer state and data fields become graph inputs named
//! by their place in the model (`Mlp.dense_1.w`); their initializers go to a separate `init`
//! graph driven by the random key.
//!
//! What comes out (`Lowered`):
//! - `init`: key → the initial value of every parameter, state and optimizer state;
//! - one forward graph per phase (training mode): data, params, state → loss, metrics, new state;
//! - one update graph per phase and parameter: the optimizer's `.nnl` code for that parameter;
//! - `eval`: the forward graph in evaluation mode (outputs, loss, metrics).
//!
//! The program has passed the checker, so a failure here is an internal limit, reported as E0400
//! at the construct that could not be lowered.

mod emit;
mod eval;
pub(crate) mod operators;
mod step;
mod train;

use crate::check::Site;
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::ir::{DType, Graph, Loc, Role, TensorType, ValueId};
use crate::resolve::{ItemRef, Program};
use crate::source::{SourceMap, Span};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// How to lower: the batch size (which fixes `B`) and the float dtype (`f64` for gradient checks).
#[derive(Debug, Clone)]
pub struct Options {
    pub batch: Option<usize>,
    pub float: DType,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            batch: None,
            float: DType::F32,
        }
    }
}

pub use crate::check::{EarlyStop, TrainConfig};

/// The output of an update graph that holds the learning rate of the step (its schedule
/// evaluated), which the training step outputs when it is watched.
pub const LEARNING_RATE: &str = "lr";

/// The optimizer code for one parameter: inputs are the parameter (`Role::Param`, named like
/// it), its gradient (`Role::Arg`, named `grad`), `step` and `epoch` (`Role::Counter`) and the
/// optimizer state (`Role::OptState`); outputs are the new parameter and state, named like the
/// inputs they replace, and the step's learning rate ([`LEARNING_RATE`], role
/// `Health(LearningRate)`) when the optimizer takes one.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamUpdate {
    pub param: String,
    pub graph: Graph,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    /// Training mode. Outputs: `loss`, each metric, and each updated layer state (named like it).
    pub forward: Graph,
    pub updates: Vec<ParamUpdate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lowered {
    pub train: String,
    pub config: TrainConfig,
    /// The random key (`rng`) → every parameter, state and optimizer state, named like them.
    pub init: Graph,
    pub phases: Vec<Phase>,
    /// Evaluation mode: `out` (with one model), `loss` (or `loss.<phase>`), the metrics.
    pub eval: Graph,
    pub params: Vec<(String, TensorType)>,
    pub states: Vec<(String, TensorType)>,
    /// The data fields, batched: `x: f32[64, 784]`.
    pub fields: Vec<(String, TensorType)>,
}

/// A lowering failure: an internal limit met at a source location.
pub(crate) struct LowerError {
    pub message: String,
    pub span: Option<Span>,
}

impl LowerError {
    pub fn new(message: impl Into<String>, span: Span) -> LowerError {
        LowerError {
            message: message.into(),
            span: Some(span),
        }
    }

    pub fn into_diagnostic(self) -> Diagnostic {
        let d = Diagnostic::error(
            codes::LOWERING_LIMIT,
            format!("cannot compile this: {}", self.message),
        )
        .with_note("the program passed the checks; this is a limit of the compiler");
        match self.span {
            Some(s) => d.with_primary(s, "here"),
            None => d,
        }
    }
}

pub(crate) type Res<T> = Result<T, LowerError>;

pub(crate) use eval::{ArgV, normalize_axis};
pub(crate) use operators::BuiltinArgs;

/// A tensor in one of the graphs being built: scan bodies nest, `level` says which.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tv {
    pub level: usize,
    pub id: ValueId,
}

/// What an expression evaluates to while lowering.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Tensor(Tv),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A string (file names, modes): lowering only passes them around.
    Str,
    Dtype(DType),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    Closure(Rc<Closure>),
    Def(ItemRef),
    Builtin(crate::builtins::Builtin),
    Layer(Rc<LayerVal>),
    /// An initializer with its arguments: `glorot_uniform`, `uniform(0.05)`.
    Init(crate::prim::Initializer, Vec<f64>),
    /// An optimizer, schedule or constraint with its arguments bound.
    Rule(ItemRef, Vec<(String, Val)>),
    /// `params(Model)`: the names of a model's parameters.
    Params(Vec<String>),
    Unit,
}

#[derive(Debug)]
pub(crate) struct Closure {
    pub params: Vec<crate::syntax::ast::Pattern>,
    pub body: crate::syntax::ast::Expr,
    pub env: Env,
}

/// A layer with its attributes bound. Applying the same one twice shares its parameters.
#[derive(Debug)]
pub(crate) struct LayerVal {
    pub id: u32,
    pub def: ItemRef,
    pub attrs: Vec<(String, Val)>,
    /// Where it was made, which names it (see [`crate::check::Site`]); empty for the models a
    /// program trains or shows alone.
    pub site: Site,
}

/// Names in scope, innermost last, with the module whose items are visible.
#[derive(Debug, Clone)]
pub(crate) struct Env {
    pub module: usize,
    pub vars: Vec<(String, Val)>,
    /// `state` names declared in scope and the full names they update.
    pub states: Vec<(String, String)>,
}

impl Env {
    pub fn new(module: usize) -> Env {
        Env {
            module,
            vars: Vec::new(),
            states: Vec::new(),
        }
    }

    pub fn bind(&mut self, name: &str, v: Val) {
        self.vars.push((name.to_string(), v));
    }

    pub fn get(&self, name: &str) -> Option<&Val> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// A graph under construction; scan bodies get their own, with the outer values they read.
struct GraphCtx {
    g: Graph,
    /// Outer value → the body input standing for it.
    captured: HashMap<ValueId, ValueId>,
    /// In capture order: the outer values a scan must pass as constants.
    captures: Vec<ValueId>,
}

/// A level of the layer-instance tree: `Mlp.dense_1`, and the calls inlined since its body
/// began (the prefix of the sites of the instances it makes).
struct Scope {
    path: String,
    calls: Vec<Span>,
}

/// Where parameters and state live while a program is lowered.
#[derive(Default)]
struct Variables {
    params: Vec<(String, TensorType)>,
    states: Vec<(String, TensorType)>,
    values: HashMap<String, ValueId>,
    /// The latest value assigned to each state in this graph.
    state_updates: Vec<(String, Tv)>,
}

pub(crate) struct Lowerer<'p> {
    program: &'p Program,
    sources: &'p SourceMap,
    float: DType,
    training: bool,
    graphs: Vec<GraphCtx>,
    init: Graph,
    init_rng: Option<ValueId>,
    rng: Option<ValueId>,
    vars: Variables,
    scopes: Vec<Scope>,
    instance_paths: HashMap<u32, String>,
    next_instance: u32,
    next_stream: u32,
    loc: Loc,
    /// Definitions being inlined, to stop runaway recursion with an error instead of a crash.
    depth: usize,
    /// In an optimizer or constraint body: the parameter it updates.
    rule_param: Option<String>,
    /// What optimizer, schedule and constraint bodies see: `p`, `g`, `step`, `epoch`.
    rule_env: Vec<(String, Val)>,
    /// One slot per scan body being lowered, for its `yield`.
    yields: Vec<Option<Vec<Val>>>,
    /// Layer paths that run in evaluation mode inside training graphs (frozen layers).
    eval_paths: Vec<String>,
    /// Lowering one new position of a causal model with its key/value cache.
    step: Option<StepMode>,
}

/// One new position of a causal model, for generation with a key/value cache: the inputs'
/// sequence axis holds one id at the position the `position` input gives; `positions` counts
/// from there; each `cached` value reads the earlier positions from a cache input (state, named
/// `cache.<layer path>.<n>`) and outputs the cache with this position written in; `causal_mask`
/// hides the cache slots after the position.
struct StepMode {
    /// The positions a cache holds: the model's context length.
    context: usize,
    /// The `position` input (i32 scalar), made on first use.
    position: Option<ValueId>,
    /// Each cache's name and its new value.
    caches: Vec<(String, Tv)>,
}

impl<'p> Lowerer<'p> {
    fn new(program: &'p Program, sources: &'p SourceMap, float: DType) -> Lowerer<'p> {
        Lowerer {
            program,
            sources,
            float,
            training: true,
            graphs: Vec::new(),
            init: Graph::new("init"),
            init_rng: None,
            rng: None,
            vars: Variables::default(),
            scopes: Vec::new(),
            instance_paths: HashMap::new(),
            next_instance: 0,
            next_stream: 0,
            loc: Loc::default(),
            depth: 0,
            rule_param: None,
            rule_env: Vec::new(),
            yields: Vec::new(),
            eval_paths: Vec::new(),
            step: None,
        }
    }

    /// Starts a new top-level graph; parameters seen so far are forgotten by it (their inputs
    /// are created again on first use).
    fn begin_graph(&mut self, name: &str, training: bool) {
        self.graphs = vec![GraphCtx {
            g: Graph::new(name),
            captured: HashMap::new(),
            captures: Vec::new(),
        }];
        self.training = training;
        self.rng = None;
        self.loc = Loc::default();
        self.vars.values.clear();
        self.vars.state_updates.clear();
        self.next_stream = 0;
    }

    fn finish_graph(&mut self) -> Graph {
        let ctx = self.graphs.pop().expect("a graph is being built");
        debug_assert!(self.graphs.is_empty());
        ctx.g
    }

    fn level(&self) -> usize {
        self.graphs.len() - 1
    }

    fn g(&mut self) -> &mut Graph {
        &mut self.graphs.last_mut().expect("a graph is being built").g
    }

    /// Points new nodes at `span` — unless it lies in the standard library: a user reads
    /// `relu` at their own line, not at the line of `std/ops.nnl` that implements it.
    fn at(&mut self, span: Span) {
        if self.sources.file(span.file).is_std && self.loc.is_known() {
            return;
        }
        let file = self.sources.file(span.file);
        let (line, col) = self.sources.line_col(span.file, span.start as usize);
        self.loc.file = Arc::from(file.name.as_str());
        self.loc.line = line as u32;
        self.loc.col = col as u32;
    }

    fn set_scope_loc(&mut self) {
        let path = self.scopes.last().map_or("", |s| s.path.as_str());
        if &*self.loc.scope != path {
            self.loc.scope = Arc::from(path);
        }
    }

    /// The value `t` usable in the innermost graph, capturing it into scan bodies as needed.
    fn use_tv(&mut self, t: Tv) -> ValueId {
        let top = self.level();
        if t.level == top {
            return t.id;
        }
        assert!(t.level < top, "a value from an inner graph escaped");
        let outer = self.use_tv_at(t, top - 1);
        let ctx = &mut self.graphs[top];
        if let Some(&v) = ctx.captured.get(&outer) {
            return v;
        }
        let ty = self.graphs[top - 1].g.ty(outer).clone();
        let ctx = &mut self.graphs[top];
        let name = format!("capture.{}", ctx.captures.len());
        let v = ctx.g.input(name, Role::Arg, ty);
        ctx.captured.insert(outer, v);
        ctx.captures.push(outer);
        v
    }

    fn use_tv_at(&mut self, t: Tv, level: usize) -> ValueId {
        let saved: Vec<GraphCtx> = self.graphs.drain(level + 1..).collect();
        let v = self.use_tv(t);
        self.graphs.extend(saved);
        v
    }

    fn tv(&self, id: ValueId) -> Tv {
        Tv {
            level: self.level(),
            id,
        }
    }

    /// The random key input of the top-level graph.
    fn rng_key(&mut self) -> Tv {
        let id = match self.rng {
            Some(v) => v,
            None => {
                let v =
                    self.graphs[0]
                        .g
                        .input("rng", Role::Rng, TensorType::new(DType::I32, vec![2]));
                self.rng = Some(v);
                v
            }
        };
        Tv { level: 0, id }
    }

    /// The path the checker gave the instance `layer` applied at `span`: by the instance
    /// applying it and where it was made (a model outside every instance by its name).
    fn instance_path(&mut self, layer: &LayerVal, span: Span) -> Res<String> {
        if let Some(p) = self.instance_paths.get(&layer.id) {
            return Ok(p.clone());
        }
        let instances = &self.program.facts.instances;
        let parent = self.scopes.last().map_or("", |s| s.path.as_str());
        let found = if parent.is_empty() {
            instances.get(&self.def_name(layer.def))
        } else {
            instances.child(parent, &layer.site)
        };
        let path = found
            .ok_or_else(|| {
                LowerError::new(
                    format!(
                        "the checker recorded no instance of `{}` here",
                        self.def_name(layer.def)
                    ),
                    span,
                )
            })?
            .path
            .clone();
        self.instance_paths.insert(layer.id, path.clone());
        Ok(path)
    }

    /// Where a layer made at `span` now is: the calls inlined in the current instance, then
    /// `span`.
    fn site(&self, span: Span) -> Site {
        match self.scopes.last() {
            Some(s) => s.calls.iter().copied().chain([span]).collect(),
            None => Site::new(),
        }
    }

    fn def_name(&self, r: ItemRef) -> String {
        self.program
            .def(r)
            .map_or_else(String::new, |d| d.name.name.to_string())
    }

    /// The float dtype tensors are lowered in (`f64` for gradient checks).
    pub(crate) fn float(&self) -> DType {
        self.float
    }

    /// The names of a model's parameters declared so far (`params(Mlp)`).
    pub(crate) fn model_params(&self, r: ItemRef) -> Vec<String> {
        let prefix = format!("{}.", self.def_name(r));
        self.vars
            .params
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// A parameter's value in the outermost graph, if this graph uses it.
    pub(crate) fn param_value(&self, name: &str) -> Option<Tv> {
        let id = self.vars.values.get(name).copied()?;
        Some(Tv { level: 0, id })
    }

    fn new_layer(&mut self, def: ItemRef, attrs: Vec<(String, Val)>, site: Site) -> Rc<LayerVal> {
        self.next_instance += 1;
        Rc::new(LayerVal {
            id: self.next_instance,
            def,
            attrs,
            site,
        })
    }
}

/// Lowers the first `train` block of the root module.
pub fn lower(
    program: &Program,
    sources: &SourceMap,
    opts: &Options,
) -> Result<Lowered, Diagnostic> {
    train::lower_train(program, sources, opts).map_err(LowerError::into_diagnostic)
}

/// One model of the root file alone (`nnlc ir --model M`): inputs named like its parameters,
/// output `out`, in training or evaluation mode.
pub fn lower_model(
    program: &Program,
    sources: &SourceMap,
    opts: &Options,
    name: &str,
    training: bool,
) -> Result<Graph, Diagnostic> {
    train::lower_model(program, sources, opts, name, training, false)
        .map_err(LowerError::into_diagnostic)
}

/// One model of the root file at one new position, in evaluation mode, for generation with a
/// key/value cache (see `StepMode`): each input's sequence axis (axis 1) holds one id, and the
/// sequence length the data field gives is the length of the caches. Inputs: the model's
/// inputs, `position` (i32 scalar) and the caches (role `State`); outputs: `out` for the one
/// position and the caches with it written in (`Update(State)`, named like their inputs).
pub fn lower_model_step(
    program: &Program,
    sources: &SourceMap,
    opts: &Options,
    name: &str,
) -> Result<Graph, Diagnostic> {
    train::lower_model(program, sources, opts, name, false, true)
        .map_err(LowerError::into_diagnostic)
}

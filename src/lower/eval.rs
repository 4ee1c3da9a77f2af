//! The evaluator: expressions, statements, calls, layer application, parameters and state, and
//! `scan` bodies as nested graphs.

use super::emit::describe;
use super::{Closure, Env, GraphCtx, LowerError, Lowerer, Res, Scope, Tv, Val};
use crate::check::{Callee, Part};
use crate::ir::{DType, Op, OutputRole, Role, TensorType};
use crate::prim::Initializer;
use crate::resolve::ItemRef;
use crate::source::Span;
use crate::syntax::ast::*;
use std::collections::HashMap;
use std::rc::Rc;

/// A call's argument: its value and span (the checker bound it to its parameter).
pub(crate) struct ArgV {
    pub val: Val,
    pub span: Span,
}

impl Lowerer<'_> {
    pub(super) fn expr(&mut self, env: &mut Env, e: &Expr) -> Res<Val> {
        match &e.kind {
            ExprKind::Number { value, is_int } => Ok(if *is_int && *value <= i64::MAX as f64 {
                Val::Int(*value as i64)
            } else {
                Val::Float(*value)
            }),
            ExprKind::Str(_) => Ok(Val::Str),
            ExprKind::Bool(b) => Ok(Val::Bool(*b)),
            ExprKind::Training => Ok(Val::Bool(self.training)),
            ExprKind::Name(id) => self.name(env, id),
            ExprKind::Member(member) => {
                let Member { base, field } = &**member;
                let b = self.expr(env, base)?;
                match (b, field.name.parse::<usize>()) {
                    (Val::Tuple(items), Ok(i)) if i < items.len() => Ok(items[i].clone()),
                    _ => Err(LowerError::new("no such field", field.span)),
                }
            }
            ExprKind::Call(call) => {
                let f = self.expr(env, &call.callee)?;
                let args = self.args(env, &call.args)?;
                self.at(e.span);
                self.call(f, args, e.span)
            }
            ExprKind::Pipe { lhs, rhs } => {
                let input = ArgV {
                    val: self.expr(env, lhs)?,
                    span: lhs.span,
                };
                self.pipe(env, input, rhs)
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let l = self.expr(env, lhs)?;
                let r = self.expr(env, rhs)?;
                self.at(e.span);
                self.binary(*op, l, r, e.span)
            }
            ExprKind::Unary { op, expr } => {
                let v = self.expr(env, expr)?;
                self.at(e.span);
                match (op, v) {
                    (UnOp::Neg, Val::Int(i)) => i.checked_neg().map(Val::Int).ok_or_else(|| {
                        LowerError::new(format!("`-({i})` does not fit in 64 bits"), e.span)
                    }),
                    (UnOp::Neg, Val::Float(x)) => Ok(Val::Float(-x)),
                    (UnOp::Neg, Val::Tensor(t)) => Ok(Val::Tensor(self.emit(Op::Neg, &[t]))),
                    (UnOp::Not, Val::Bool(b)) => Ok(Val::Bool(!b)),
                    (UnOp::Not, Val::Tensor(t)) => Ok(Val::Tensor(self.emit(Op::Not, &[t]))),
                    (_, v) => Err(LowerError::new(
                        format!("cannot apply `{op:?}` to {}", describe(&v)),
                        e.span,
                    )),
                }
            }
            ExprKind::Range { lo, hi } => {
                let (lo, hi) = (self.int(env, lo)?, self.int(env, hi)?);
                Ok(Val::List((lo..hi).map(Val::Int).collect()))
            }
            ExprKind::Tuple(items) => Ok(Val::Tuple(
                items
                    .iter()
                    .map(|i| self.expr(env, i))
                    .collect::<Res<_>>()?,
            )),
            ExprKind::List(items) => {
                let mut out = Vec::new();
                for it in items {
                    match it {
                        ListItem::Expr(x) => out.push(self.expr(env, x)?),
                        ListItem::Spread(id) => match env.get(&id.name) {
                            Some(Val::List(xs)) => out.extend(xs.iter().cloned()),
                            _ => return Err(LowerError::new("not a pack of sizes", id.span)),
                        },
                    }
                }
                Ok(Val::List(out))
            }
            ExprKind::Closure { params, body } => Ok(Val::Closure(Rc::new(Closure {
                params: params.to_vec(),
                body: (**body).clone(),
                env: env.clone(),
            }))),
            ExprKind::If(if_) => match self.expr(env, &if_.cond)? {
                Val::Bool(true) => self.block(env, &if_.then),
                Val::Bool(false) => match &if_.otherwise {
                    Some(o) => self.expr(env, o),
                    None => Ok(Val::Unit),
                },
                _ => Err(LowerError::new(
                    "an `if` condition must be known when compiling; use `select` for tensors",
                    if_.cond.span,
                )),
            },
            ExprKind::Scan(scan) => self.scan(env, scan, e.span),
            ExprKind::Block(b) => self.block(env, b),
        }
    }

    fn int(&mut self, env: &mut Env, e: &Expr) -> Res<i64> {
        match self.expr(env, e)? {
            Val::Int(i) => Ok(i),
            v => Err(LowerError::new(
                format!("expected an integer, found {}", describe(&v)),
                e.span,
            )),
        }
    }

    fn name(&mut self, env: &Env, id: &Ident) -> Res<Val> {
        if let Some(v) = env.get(&id.name) {
            return Ok(v.clone());
        }
        if let Some(r) = self.program.lookup(env.module, &id.name) {
            return Ok(Val::Def(r));
        }
        if let Some(b) = crate::builtins::lookup(&id.name) {
            return Ok(Val::Builtin(b));
        }
        if let Some(init) = crate::prim::initializer(&id.name) {
            return Ok(Val::Init(init, Vec::new()));
        }
        if let Some(d) = DType::from_name(&id.name) {
            return Ok(Val::Dtype(d));
        }
        Err(LowerError::new(
            format!("unknown name `{}`", id.name),
            id.span,
        ))
    }

    fn args(&mut self, env: &mut Env, args: &[Arg]) -> Res<Vec<ArgV>> {
        args.iter()
            .map(|a| {
                Ok(ArgV {
                    val: self.expr(env, &a.value)?,
                    span: a.value.span,
                })
            })
            .collect()
    }

    pub(super) fn block(&mut self, env: &mut Env, b: &Block) -> Res<Val> {
        let mark = env.vars.len();
        let states = env.states.len();
        for s in &b.stmts {
            self.stmt(env, s)?;
        }
        let v = match &b.tail {
            Some(t) => self.expr(env, t)?,
            None => Val::Unit,
        };
        env.vars.truncate(mark);
        env.states.truncate(states);
        Ok(v)
    }

    pub(super) fn stmt(&mut self, env: &mut Env, s: &Stmt) -> Res<()> {
        match &s.kind {
            StmtKind::Let { pats, value } => {
                let v = self.expr(env, value)?;
                if pats.len() == 1 {
                    self.bind_pattern(env, &pats[0], v)
                } else {
                    self.bind_pattern(env, &Pattern::Tuple(pats.clone(), s.span), v)
                }
            }
            StmtKind::Param { names, ty, init } => {
                for n in names {
                    let v = self.declare(env, n, Some(ty), init.as_deref(), Role::Param)?;
                    env.bind(&n.name, v);
                }
                Ok(())
            }
            StmtKind::State { names, ty, init } => {
                let role = if self.rule_param.is_some() {
                    Role::OptState
                } else {
                    Role::State
                };
                for n in names {
                    let v = self.declare(env, n, ty.as_ref(), init.as_deref(), role)?;
                    env.bind(&n.name, v);
                }
                Ok(())
            }
            StmtKind::Assign { target, value } => {
                let v = self.expr(env, value)?;
                let slot = env
                    .vars
                    .iter_mut()
                    .rev()
                    .find(|(n, _)| *n == target.name)
                    .ok_or_else(|| LowerError::new("assignment to an unknown name", target.span))?;
                slot.1 = v.clone();
                if let (Some((_, full)), Val::Tensor(t)) =
                    (env.states.iter().rev().find(|(n, _)| *n == target.name), &v)
                {
                    self.vars.state_updates.push((full.clone(), *t));
                }
                Ok(())
            }
            StmtKind::Yield(values) => {
                let vals = values
                    .iter()
                    .map(|v| self.expr(env, v))
                    .collect::<Res<Vec<_>>>()?;
                match self.yields.last_mut() {
                    Some(slot) => {
                        *slot = Some(vals);
                        Ok(())
                    }
                    None => Err(LowerError::new("`yield` outside a scan", s.span)),
                }
            }
            StmtKind::Expr(e) => self.expr(env, e).map(|_| ()),
        }
    }

    pub(super) fn bind_pattern(&mut self, env: &mut Env, p: &Pattern, v: Val) -> Res<()> {
        match p {
            Pattern::Name(id) => {
                env.bind(&id.name, v);
                Ok(())
            }
            Pattern::Tuple(ps, span) => match v {
                Val::Tuple(items) if items.len() == ps.len() => {
                    for (p, v) in ps.iter().zip(items) {
                        self.bind_pattern(env, p, v)?;
                    }
                    Ok(())
                }
                other => Err(LowerError::new(
                    format!("cannot destructure {}", describe(&other)),
                    *span,
                )),
            },
        }
    }

    /// A `param` or `state`: a graph input named by its place in the model, initialized once in
    /// the init graph.
    fn declare(
        &mut self,
        env: &mut Env,
        name: &Ident,
        ty: Option<&TypeExpr>,
        init: Option<&Expr>,
        role: Role,
    ) -> Res<Val> {
        let full = match (&self.rule_param, role) {
            (Some(p), Role::OptState) => format!("{p}.{}", name.name),
            _ => self.declared_name(&name.name, role, name.span)?,
        };
        if role == Role::State || role == Role::OptState {
            env.states.push((name.name.to_string(), full.clone()));
        }
        if let Some(&v) = self.vars.values.get(&full) {
            return Ok(Val::Tensor(Tv { level: 0, id: v }));
        }
        let declared = match ty {
            Some(t) => Some(self.tensor_type(env, t)?),
            None => None,
        };
        // Optimizer state starts from the parameter's initial value, not from this step's.
        let mut init_env = env.clone();
        if let (Some(p), Role::OptState) = (&self.rule_param, role)
            && let Some(v) = self.init.output(p)
        {
            init_env.bind("p", Val::Tensor(Tv { level: 0, id: v }));
        }
        let tty = self.initialize(&mut init_env, &full, role, declared, init, name.span)?;
        let id = self.graphs[0].g.input(full.clone(), role, tty.clone());
        self.vars.values.insert(full.clone(), id);
        let list = match role {
            Role::Param => Some(&mut self.vars.params),
            Role::State => Some(&mut self.vars.states),
            _ => None,
        };
        if let Some(list) = list
            && !list.iter().any(|(n, _)| *n == full)
        {
            list.push((full, tty));
        }
        Ok(Val::Tensor(Tv { level: 0, id }))
    }

    /// Adds `name`'s initial value to the init graph (once) and returns its type.
    fn initialize(
        &mut self,
        env: &mut Env,
        name: &str,
        role: Role,
        declared: Option<TensorType>,
        init: Option<&Expr>,
        span: Span,
    ) -> Res<TensorType> {
        if let Some(v) = self.init.output(name) {
            return Ok(self.init.ty(v).clone());
        }
        // Evaluate the initializer with the init graph as the current graph.
        let init_graph = std::mem::take(&mut self.init);
        let saved = std::mem::replace(
            &mut self.graphs,
            vec![GraphCtx {
                g: init_graph,
                captured: HashMap::new(),
                captures: Vec::new(),
            }],
        );
        let saved_rng = std::mem::replace(&mut self.rng, self.init_rng);
        let saved_training = std::mem::replace(&mut self.training, false);
        let result = self.init_value(env, declared, init, span);
        self.training = saved_training;
        self.init_rng = std::mem::replace(&mut self.rng, saved_rng);
        let mut ctx = std::mem::replace(&mut self.graphs, saved);
        self.init = ctx.pop().expect("the init graph").g;
        let t = result?;
        let ty = self.init.ty(t.id).clone();
        self.init.add_output(name, t.id, OutputRole::Update(role));
        Ok(ty)
    }

    fn init_value(
        &mut self,
        env: &mut Env,
        declared: Option<TensorType>,
        init: Option<&Expr>,
        span: Span,
    ) -> Res<Tv> {
        let v = match init {
            Some(e) => self.expr(env, e)?,
            None => Val::Init(Initializer::Zeros, Vec::new()),
        };
        match (v, declared) {
            (Val::Init(init, args), Some(ty)) => self.initializer(init, &args, ty, span),
            (Val::Builtin(b), Some(ty)) => {
                let init = b
                    .initializer()
                    .ok_or_else(|| LowerError::new("not an initializer", span))?;
                self.initializer(init, &[], ty, span)
            }
            (v, declared) => {
                let dtype = declared.as_ref().map_or(self.float, |d| d.dtype);
                let t = self.tensor_of(&v, dtype, span)?;
                match declared {
                    Some(d) if self.ty(t).shape != d.shape => Ok(self.broadcast(t, &d.shape)),
                    _ => Ok(t),
                }
            }
        }
    }

    /// `glorot_uniform` and friends, drawn from the init graph's key. Fans follow the layout
    /// `[inputs…, outputs]`: fan_in is the product of all but the last axis, fan_out the last.
    fn initializer(
        &mut self,
        init: Initializer,
        args: &[f64],
        ty: TensorType,
        span: Span,
    ) -> Res<Tv> {
        let fan_out = ty.shape.last().copied().unwrap_or(1) as f64;
        let fan_in = if ty.rank() > 1 {
            ty.shape[..ty.rank() - 1].iter().product::<usize>() as f64
        } else {
            fan_out
        };
        let uniform = |l: &mut Self, limit: f64| {
            let u = l.random(crate::ir::Dist::Uniform, ty.clone());
            let two = l.constant(2.0 * limit, ty.clone());
            let scaled = l.emit(Op::Mul, &[u, two]);
            let lim = l.constant(limit, ty.clone());
            l.emit(Op::Sub, &[scaled, lim])
        };
        let normal = |l: &mut Self, std: f64| {
            let n = l.random(crate::ir::Dist::Normal, ty.clone());
            let s = l.constant(std, ty.clone());
            l.emit(Op::Mul, &[n, s])
        };
        // `uniform(limit)` and `normal(std)` were checked to be called with their argument.
        let arg = || {
            args.first().copied().ok_or_else(|| {
                LowerError::new(format!("`{}` needs its argument", init.name()), span)
            })
        };
        Ok(match init {
            Initializer::Zeros => self.constant(0.0, ty.clone()),
            Initializer::Ones => self.constant(1.0, ty.clone()),
            Initializer::GlorotUniform => uniform(self, (6.0 / (fan_in + fan_out)).sqrt()),
            Initializer::GlorotNormal => normal(self, (2.0 / (fan_in + fan_out)).sqrt()),
            Initializer::HeUniform => uniform(self, (6.0 / fan_in).sqrt()),
            Initializer::HeNormal => normal(self, (2.0 / fan_in).sqrt()),
            Initializer::Uniform => uniform(self, arg()?),
            Initializer::Normal => normal(self, arg()?),
        })
    }

    pub(crate) fn random(&mut self, dist: crate::ir::Dist, ty: TensorType) -> Tv {
        let key = self.rng_key();
        let stream = self.next_stream;
        self.next_stream += 1;
        self.emit(Op::Rand { dist, stream, ty }, &[key])
    }

    /// A declared tensor type with every dimension evaluated (`[N, units]` → `f32[784, 128]`).
    pub(super) fn tensor_type(&mut self, env: &mut Env, t: &TypeExpr) -> Res<TensorType> {
        let (dtype, shape) = match &t.kind {
            TypeKind::Tensor { dtype, shape } => (*dtype, shape.as_ref()),
            TypeKind::Shape(s) => (Dtype::F32, Some(s)),
            _ => return Err(LowerError::new("expected a tensor type", t.span)),
        };
        let dtype = self.dtype(dtype);
        let mut dims = Vec::new();
        for item in shape.map_or(&[][..], |s| &s.items[..]) {
            match item {
                ShapeItem::Dim(e) => dims.push(self.size(env, e)?),
                ShapeItem::Pack(id) => match env.get(&id.name) {
                    Some(Val::List(xs)) => {
                        for x in xs.clone() {
                            dims.push(size_of(&x, id.span)?);
                        }
                    }
                    _ => return Err(LowerError::new("unbound pack", id.span)),
                },
            }
        }
        Ok(TensorType::new(dtype, dims))
    }

    fn size(&mut self, env: &mut Env, e: &Expr) -> Res<usize> {
        let v = self.expr(env, e)?;
        size_of(&v, e.span)
    }

    /// The IR dtype of a source dtype: `f32` means the lowering's float type.
    pub(super) fn dtype(&self, d: Dtype) -> DType {
        match d {
            Dtype::F32 | Dtype::F64 => self.float,
            Dtype::I32 => DType::I32,
            Dtype::Bool => DType::Bool,
        }
    }

    fn pipe(&mut self, env: &mut Env, input: ArgV, rhs: &Expr) -> Res<Val> {
        if let ExprKind::Call(call) = &rhs.kind {
            let f = self.expr(env, &call.callee)?;
            let args = self.args(env, &call.args)?;
            self.at(rhs.span);
            if let Val::Def(r) = &f
                && self.is_layer_def(*r)
            {
                let layer = self.call(f, args, rhs.span)?;
                return self.call(layer, vec![input], rhs.span);
            }
            let mut all = vec![input];
            all.extend(args);
            return self.call(f, all, rhs.span);
        }
        let f = self.expr(env, rhs)?;
        self.at(rhs.span);
        self.apply(f, vec![input], rhs.span)
    }

    /// Applies a value written without arguments: a layer definition gets its default attributes.
    fn apply(&mut self, f: Val, args: Vec<ArgV>, span: Span) -> Res<Val> {
        if let Val::Def(r) = &f
            && self.is_layer_def(*r)
        {
            let layer = self.call(f, Vec::new(), span)?;
            return self.call(layer, args, span);
        }
        self.call(f, args, span)
    }

    fn is_layer_def(&self, r: ItemRef) -> bool {
        self.program.def(r).is_some_and(|d| d.kind.is_layer_like())
    }

    pub(crate) fn call(&mut self, f: Val, args: Vec<ArgV>, span: Span) -> Res<Val> {
        match f {
            Val::Builtin(b) => self.builtin(b, args, span),
            Val::Init(name, _) => {
                let nums = self
                    .bound(span, Callee::Init(name), args)?
                    .into_iter()
                    .flatten()
                    .map(|a| match a.val {
                        Val::Int(i) => Ok(i as f64),
                        Val::Float(x) => Ok(x),
                        _ => Err(LowerError::new("expected a number", a.span)),
                    })
                    .collect::<Res<Vec<f64>>>()?;
                Ok(Val::Init(name, nums))
            }
            Val::Closure(c) => {
                let mut env = c.env.clone();
                if c.params.len() != args.len() {
                    return Err(LowerError::new("wrong number of closure arguments", span));
                }
                for (p, a) in c.params.iter().zip(args) {
                    self.bind_pattern(&mut env, p, a.val)?;
                }
                self.inlined(span, |l| l.expr(&mut env, &c.body))
            }
            Val::Def(r) => self.call_def(r, args, span),
            Val::Layer(layer) => self.apply_layer(&layer, args, span),
            other => Err(LowerError::new(
                format!("{} cannot be called", describe(&other)),
                span,
            )),
        }
    }

    fn call_def(&mut self, r: ItemRef, args: Vec<ArgV>, span: Span) -> Res<Val> {
        let def = self.program.def(r).expect("callable defs are defs");
        match def.kind {
            DefKind::Layer | DefKind::Model => {
                let env = self.bind_params(r, Part::Attrs, args, Env::new(r.module), span)?;
                let attrs = env.vars;
                let site = self.site(span);
                Ok(Val::Layer(self.new_layer(r, attrs, site)))
            }
            DefKind::Optimizer | DefKind::Constraint | DefKind::Schedule => {
                let env = self.bind_params(r, Part::Params, args, Env::new(r.module), span)?;
                if def.kind == DefKind::Schedule && self.rule_param.is_some() {
                    return self.inline_body(r, env, span);
                }
                Ok(Val::Rule(r, env.vars))
            }
            DefKind::Fn => {
                let env = self.bind_params(r, Part::Params, args, Env::new(r.module), span)?;
                self.inline_body(r, env, span)
            }
        }
    }

    /// Evaluates a definition's body in `env` (its bound parameters).
    pub(super) fn inline_body(&mut self, r: ItemRef, mut env: Env, span: Span) -> Res<Val> {
        let def = self.program.def(r).expect("a def");
        self.depth += 1;
        if self.depth > 200 {
            return Err(LowerError::new("definitions nest too deeply", span));
        }
        // Optimizer, schedule and constraint bodies see `p`, `g`, `step` and `epoch`.
        if !matches!(def.kind, DefKind::Fn | DefKind::Layer | DefKind::Model) {
            for (name, v) in self.rule_env.clone() {
                if env.get(&name).is_none() {
                    env.bind(&name, v);
                }
            }
        }
        let body = def.body.unpack();
        let v = if def.kind.is_layer_like() {
            self.block(&mut env, &body)
        } else {
            self.inlined(span, |l| l.block(&mut env, &body))
        };
        self.depth -= 1;
        v
    }

    /// Runs `inline` with the call at `span` on the current instance's stack of inlined calls
    /// (the sites of the layers made inside, as the checker counts them).
    fn inlined<T>(&mut self, span: Span, inline: impl FnOnce(&mut Self) -> T) -> T {
        if let Some(s) = self.scopes.last_mut() {
            s.calls.push(span);
        }
        let v = inline(self);
        if let Some(s) = self.scopes.last_mut() {
            s.calls.pop();
        }
        v
    }

    /// The full name of a `param` or `state` declared in the current instance, as the checker
    /// recorded it.
    fn declared_name(&self, name: &str, role: Role, span: Span) -> Res<String> {
        let path = self.scopes.last().map_or("", |s| s.path.as_str());
        self.program
            .facts
            .instances
            .get(path)
            .and_then(|i| i.declared(name, role != Role::Param))
            .map(str::to_string)
            .ok_or_else(|| {
                LowerError::new(
                    format!("the checker recorded no `{name}` in the layer instance `{path}`"),
                    span,
                )
            })
    }

    fn apply_layer(
        &mut self,
        layer: &Rc<super::LayerVal>,
        args: Vec<ArgV>,
        span: Span,
    ) -> Res<Val> {
        let mut env = Env::new(layer.def.module);
        env.vars = layer.attrs.clone();
        let env = self.bind_params(layer.def, Part::Params, args, env, span)?;
        let path = self.instance_path(layer, span)?;
        let frozen = self.eval_paths.iter().any(|f| super::train::owns(f, &path));
        let saved_training = self.training;
        self.training &= !frozen;
        self.scopes.push(Scope {
            path,
            calls: Vec::new(),
        });
        let v = self.inline_body(layer.def, env, span);
        self.scopes.pop();
        self.training = saved_training;
        v
    }

    /// The arguments of the call at `span` in its callee's parameter order, as the checker
    /// bound them; None where a default is taken.
    pub(super) fn bound(
        &self,
        span: Span,
        callee: Callee,
        args: Vec<ArgV>,
    ) -> Res<Vec<Option<ArgV>>> {
        let slots = self
            .program
            .facts
            .calls
            .binding(span, callee, args.len())
            .ok_or_else(|| {
                LowerError::new("the checker recorded no binding for this call", span)
            })?;
        let mut args: Vec<Option<ArgV>> = args.into_iter().map(Some).collect();
        Ok(slots
            .iter()
            .map(|s| s.and_then(|i| args.get_mut(i).and_then(Option::take)))
            .collect())
    }

    /// Binds a definition's attributes or inputs to the call's arguments (as the checker bound
    /// them, then defaults), and the dimension symbols and packs of their declared types to
    /// the actual sizes.
    pub(super) fn bind_params(
        &mut self,
        r: ItemRef,
        part: Part,
        args: Vec<ArgV>,
        env: Env,
        span: Span,
    ) -> Res<Env> {
        let def = self.program.def(r).expect("callable defs are defs");
        let params = match part {
            Part::Attrs => &def.attrs,
            Part::Params => &def.params,
        };
        let slots = self.bound(span, Callee::Def(r, part), args)?;
        self.bind_values(r, params, slots, env, span)
    }

    /// Binds `params` to `slots` (one value per parameter, None for its default).
    pub(super) fn bind_values(
        &mut self,
        r: ItemRef,
        params: &[Param],
        slots: Vec<Option<ArgV>>,
        mut env: Env,
        span: Span,
    ) -> Res<Env> {
        for (p, a) in params.iter().zip(slots) {
            let (v, vspan) = match a {
                Some(a) => (a.val, a.span),
                None => match &p.default {
                    Some(d) => {
                        let mut denv = env.clone();
                        denv.module = r.module;
                        (self.expr(&mut denv, d)?, d.span)
                    }
                    None => {
                        return Err(LowerError::new(
                            format!("missing argument `{}`", p.name.name),
                            span,
                        ));
                    }
                },
            };
            let v = match &p.ty {
                Some(t) => self.match_type(&mut env, t, v, vspan)?,
                None => v,
            };
            env.bind(&p.name.name, v);
        }
        Ok(env)
    }

    /// Binds the symbols of a declared type to a value's actual sizes; converts numbers to the
    /// declared scalar kind (an `int` given where `f32` is declared becomes a float).
    fn match_type(&mut self, env: &mut Env, t: &TypeExpr, v: Val, span: Span) -> Res<Val> {
        let shape = match &t.kind {
            TypeKind::Tensor { shape: None, dtype } if dtype.is_float() => {
                return Ok(match v {
                    Val::Int(i) => Val::Float(i as f64),
                    other => other,
                });
            }
            TypeKind::Tensor {
                shape: Some(s),
                dtype,
            } => {
                if let Val::Tensor(tv) = &v {
                    let have = self.ty(*tv).dtype;
                    let want = self.dtype(*dtype);
                    if have != want && have.is_float() && want.is_float() {
                        let c = self.cast(*tv, want);
                        return self.match_shape(env, s, Val::Tensor(c), span);
                    }
                }
                s
            }
            TypeKind::Shape(s) => s,
            _ => return Ok(v),
        };
        self.match_shape(env, shape, v, span)
    }

    fn match_shape(&mut self, env: &mut Env, s: &ShapeExpr, v: Val, span: Span) -> Res<Val> {
        let Val::Tensor(tv) = &v else {
            return Ok(v);
        };
        let actual = self.ty(*tv).shape;
        let packs = s
            .items
            .iter()
            .filter(|i| matches!(i, ShapeItem::Pack(_)))
            .count();
        let fixed = s.items.len() - packs;
        if actual.len() < fixed || (packs == 0 && actual.len() != fixed) {
            return Err(LowerError::new(
                format!("rank mismatch: {actual:?} for {} axes", s.items.len()),
                span,
            ));
        }
        let pack_len = actual.len() - fixed;
        let mut at = 0;
        for item in &s.items {
            match item {
                ShapeItem::Pack(id) => {
                    let dims: Vec<Val> = actual[at..at + pack_len]
                        .iter()
                        .map(|&d| Val::Int(d as i64))
                        .collect();
                    if env.get(&id.name).is_none() {
                        env.bind(&id.name, Val::List(dims));
                    }
                    at += pack_len;
                }
                ShapeItem::Dim(e) => {
                    if let ExprKind::Name(id) = &e.kind
                        && env.get(&id.name).is_none()
                        && self.program.lookup(env.module, &id.name).is_none()
                    {
                        env.bind(&id.name, Val::Int(actual[at] as i64));
                    }
                    at += 1;
                }
            }
        }
        Ok(v)
    }

    /// `scan(xs, axis: a, init: c0) |x, carry| { …; yield y, c2 }` as one scan node whose body
    /// is a nested graph.
    fn scan(&mut self, env: &mut Env, scan: &Scan, span: Span) -> Res<Val> {
        let (params, body) = (&scan.params, &scan.body);
        let args = self.args(env, &scan.args)?;
        let [xs, axis, init]: [Option<ArgV>; 3] = self
            .bound(scan.args_span, Callee::Scan, args)?
            .try_into()
            .map_err(|_| LowerError::new("`scan` takes xs, axis and init", span))?;
        let xs = xs.map(|a| a.val);
        let init = init.map(|a| a.val);
        let axis = match axis {
            None => 0,
            Some(ArgV {
                val: Val::Int(i), ..
            }) => i,
            Some(a) => return Err(LowerError::new("axis must be an integer", a.span)),
        };
        self.at(span);
        let (Some(Val::Tensor(xs)), Some(init)) = (xs, init) else {
            return Err(LowerError::new(
                "scan needs a tensor and an initial carry",
                span,
            ));
        };
        let shape = self.ty(xs).shape;
        let ax = normalize_axis(axis, shape.len(), span)?;
        let xs0 = if ax == 0 {
            xs
        } else {
            let mut perm: Vec<usize> = vec![ax];
            perm.extend((0..shape.len()).filter(|&i| i != ax));
            self.emit(Op::Permute { perm }, &[xs])
        };
        let mut carries = Vec::new();
        flatten_tensors(&init, &mut carries, span)?;
        let carry_types: Vec<TensorType> = carries.iter().map(|c| self.ty(*c)).collect();
        let slice_ty = {
            let t = self.ty(xs0);
            TensorType::new(t.dtype, t.shape[1..].to_vec())
        };
        self.graphs.push(GraphCtx {
            g: crate::ir::Graph::new("body"),
            captured: HashMap::new(),
            captures: Vec::new(),
        });
        let level = self.level();
        let carry_inputs: Vec<Val> = carry_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let id = self.g().input(format!("carry.{i}"), Role::Arg, t.clone());
                Val::Tensor(Tv { level, id })
            })
            .collect();
        let slice = self.g().input("x", Role::Arg, slice_ty);
        let mut benv = env.clone();
        self.bind_pattern(&mut benv, &params[0], Val::Tensor(Tv { level, id: slice }))?;
        let mut it = carry_inputs.into_iter();
        let carry_val = rebuild(&init, &mut it);
        self.bind_pattern(&mut benv, &params[1], carry_val)?;
        self.yields.push(None);
        let result = self.block(&mut benv, body);
        let yielded = self.yields.pop().flatten();
        let body_out = result.and_then(|_| {
            let vals =
                yielded.ok_or_else(|| LowerError::new("the scan body never yields", span))?;
            let (out, carry) = match vals.as_slice() {
                [out, carry] => (out.clone(), carry.clone()),
                _ => return Err(LowerError::new("yield an output and a carry", span)),
            };
            let mut new_carries = Vec::new();
            flatten_tensors(&carry, &mut new_carries, span)?;
            let mut outs = Vec::new();
            flatten_tensors(&out, &mut outs, span)?;
            for (i, c) in new_carries.iter().enumerate() {
                let v = self.use_tv(*c);
                self.g()
                    .add_output(format!("carry.{i}"), v, OutputRole::Value);
            }
            for (i, o) in outs.iter().enumerate() {
                let v = self.use_tv(*o);
                self.g().add_output(format!("y.{i}"), v, OutputRole::Value);
            }
            Ok(out)
        });
        let ctx = self.graphs.pop().expect("the body graph");
        let out_template = body_out?;
        let outer = self.level();
        let mut operands = carries.clone();
        operands.push(xs0);
        operands.extend(ctx.captures.iter().map(|&id| Tv { level: outer, id }));
        let n_carries = carries.len();
        let n_outputs = ctx.g.outputs.len() - n_carries;
        let node = self.emit(
            Op::Scan {
                body: Box::new(ctx.g),
                carries: n_carries,
                seqs: 1,
                reverse: false,
            },
            &operands,
        );
        let mut stacked = Vec::new();
        for j in 0..n_outputs {
            let y = self.emit(
                Op::Get {
                    index: n_carries + j,
                },
                &[node],
            );
            let rank = self.ty(y).rank();
            let y = if ax == 0 {
                y
            } else {
                let perm: Vec<usize> = (0..rank)
                    .map(|i| match i.cmp(&ax) {
                        std::cmp::Ordering::Less => i + 1,
                        std::cmp::Ordering::Equal => 0,
                        std::cmp::Ordering::Greater => i,
                    })
                    .collect();
                self.emit(Op::Permute { perm }, &[y])
            };
            stacked.push(Val::Tensor(y));
        }
        let mut it = stacked.into_iter();
        Ok(rebuild(&out_template, &mut it))
    }
}

pub(super) fn size_of(v: &Val, span: Span) -> Res<usize> {
    match v {
        Val::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(LowerError::new(
            format!("expected a size, found {}", describe(other)),
            span,
        )),
    }
}

pub(crate) fn normalize_axis(axis: i64, rank: usize, span: Span) -> Res<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank.max(1) as i64 {
        return Err(LowerError::new(
            format!("axis {axis} out of range for rank {rank}"),
            span,
        ));
    }
    Ok(a as usize)
}

/// The tensors of a (nested) tuple, in order.
fn flatten_tensors(v: &Val, out: &mut Vec<Tv>, span: Span) -> Res<()> {
    match v {
        Val::Tensor(t) => {
            out.push(*t);
            Ok(())
        }
        Val::Tuple(items) => items.iter().try_for_each(|i| flatten_tensors(i, out, span)),
        other => Err(LowerError::new(
            format!("a scan carries tensors, found {}", describe(other)),
            span,
        )),
    }
}

/// A value of `template`'s tuple structure with its tensors taken from `parts`.
fn rebuild(template: &Val, parts: &mut impl Iterator<Item = Val>) -> Val {
    match template {
        Val::Tuple(items) => Val::Tuple(items.iter().map(|i| rebuild(i, parts)).collect()),
        _ => parts.next().unwrap_or(Val::Unit),
    }
}

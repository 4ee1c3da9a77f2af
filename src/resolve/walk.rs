//! The scoped walk over definition bodies and training blocks: unknown names, duplicate
//! parameters and locals, and the reference graph that rejects recursive layers and functions.

use super::{ItemRef, Program};
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::source::Span;
use crate::syntax::ast::*;
use crate::syntax::symbol::Symbol;
use std::collections::HashSet;

pub(super) fn check_bodies(program: &Program, diags: &mut Vec<Diagnostic>) {
    let mut graph = Graph::new(program);
    for (m, module) in program.modules.iter().enumerate() {
        let mut unknowns: Vec<Unknown> = Vec::new();
        // Each item is walked alone (a walker sees only the program's scopes), so the items
        // are walked in parallel and what they found is gathered in their order.
        let walk = |_: usize, item: &Item| {
            let mut w = Walker {
                program,
                module: m,
                frames: vec![Vec::new()],
                diags: Vec::new(),
                unknowns: Vec::new(),
                refs: Vec::new(),
                trained: Vec::new(),
                data_unknown: false,
                in_metrics: false,
                in_targets: false,
            };
            match item {
                Item::Def(d) => w.def(d),
                Item::Train(t) => w.train(t),
                Item::Search(s) => w.search(s),
                Item::Use(_) | Item::Data(_) => {}
            }
            (w.diags, w.unknowns, w.refs)
        };
        crate::par::map_in_order(&module.ast.items, walk, |index, (mut d, mut u, refs)| {
            diags.append(&mut d);
            unknowns.append(&mut u);
            let node = graph.node(ItemRef { module: m, index });
            graph.refs[node] = refs;
        });
        report_unknowns(unknowns, diags);
    }
    report_recursion(program, &graph, diags);
}

/// Which items each item refers to, with where: one node per item of the program, numbered
/// module after module.
struct Graph {
    /// The number of the first item of each module.
    firsts: Vec<usize>,
    refs: Vec<Vec<(ItemRef, Span)>>,
}

impl Graph {
    fn new(program: &Program) -> Graph {
        let mut firsts = Vec::with_capacity(program.modules.len());
        let mut count = 0;
        for module in &program.modules {
            firsts.push(count);
            count += module.ast.items.len();
        }
        Graph {
            firsts,
            refs: vec![Vec::new(); count],
        }
    }

    fn node(&self, r: ItemRef) -> usize {
        self.firsts[r.module] + r.index
    }

    /// The items `node` refers to, with the span of each reference.
    fn refs_of(&self, node: usize) -> &[(ItemRef, Span)] {
        &self.refs[node]
    }
}

/// One use of an unknown name, with the diagnostic its first use would get.
struct Unknown {
    name: String,
    span: Span,
    diag: Diagnostic,
}

/// One error per unknown name in a module: fixing the name (or adding its `use`) fixes every
/// use, so the later uses are shown as labels of the first error instead of errors of their own.
fn report_unknowns(unknowns: Vec<Unknown>, diags: &mut Vec<Diagnostic>) {
    const SHOWN: usize = 3;
    let mut firsts: Vec<(String, Diagnostic, usize)> = Vec::new();
    for u in unknowns {
        match firsts.iter_mut().find(|(n, _, _)| *n == u.name) {
            Some((_, d, more)) => {
                if *more < SHOWN {
                    d.labels.push(crate::diag::DiagLabel {
                        span: u.span,
                        message: "also used here".into(),
                        primary: false,
                    });
                }
                *more += 1;
            }
            None => firsts.push((u.name, u.diag, 0)),
        }
    }
    for (name, mut d, more) in firsts {
        if more > SHOWN {
            d.notes
                .push(format!("`{name}` is used {} more times", more - SHOWN));
        }
        diags.push(d);
    }
}

/// Names bound implicitly in a definition's body.
pub fn implicit_names(kind: DefKind) -> &'static [&'static str] {
    match kind {
        DefKind::Optimizer => &["p", "g", "step"],
        DefKind::Schedule => &["step", "epoch"],
        DefKind::Constraint => &["p"],
        DefKind::Model | DefKind::Layer | DefKind::Fn => &[],
    }
}

struct Walker<'a> {
    program: &'a Program,
    module: usize,
    /// Local scopes, innermost last: (name, where it was bound).
    frames: Vec<Vec<(Symbol, Span)>>,
    diags: Vec<Diagnostic>,
    unknowns: Vec<Unknown>,
    refs: Vec<(ItemRef, Span)>,
    /// The models of the `train` block being walked.
    trained: Vec<String>,
    /// Inside a `train` block whose data block is unknown: its fields are unknown too, and
    /// every name that might be one of them is not reported again.
    data_unknown: bool,
    /// Walking the names of a `metrics` setting.
    in_metrics: bool,
    /// Walking the models named by `update` or `constrain`.
    in_targets: bool,
}

impl Walker<'_> {
    fn bind(&mut self, id: &Ident) {
        let frame = self.frames.last_mut().expect("a frame");
        frame.push((id.name, id.span));
    }

    /// Binds a parameter-like name, rejecting a second one of the same name in this frame.
    fn bind_unique(&mut self, id: &Ident, what: &str) {
        if let Some((_, first)) = self
            .frames
            .last()
            .expect("a frame")
            .iter()
            .find(|(n, _)| *n == id.name)
        {
            self.diags.push(
                Diagnostic::error(
                    codes::DUPLICATE_BINDING,
                    format!("{what} `{}` is declared twice", id.name),
                )
                .with_primary(id.span, "declared again here")
                .with_secondary(*first, "first declared here")
                .with_help("give each one its own name"),
            );
            return;
        }
        self.bind(id);
    }

    fn is_local(&self, name: Symbol) -> bool {
        self.frames
            .iter()
            .any(|f| f.iter().any(|(n, _)| *n == name))
    }

    fn push(&mut self) {
        self.frames.push(Vec::new());
    }

    fn pop(&mut self) {
        self.frames.pop();
    }

    /// Names are looked up as the checker looks them up: locals, then the module's items (a
    /// definition may take a predefined name such as `f32` or `relu`), then predefined names.
    fn name(&mut self, id: &Ident) {
        if self.is_local(id.name) {
            return;
        }
        if let Some(r) = self.program.lookup(self.module, &id.name) {
            self.refs.push((r, id.span));
            return;
        }
        if !crate::prim::is_predefined(&id.name) {
            self.unknown(id);
        }
    }

    fn unknown(&mut self, id: &Ident) {
        let module = &self.program.modules[self.module];
        let already_reported = self
            .program
            .modules
            .iter()
            .any(|m| m.ast.broken.iter().any(|n| n == id.name.as_str()))
            || module.failed_imports.contains(id.name.as_str())
            || module.failed_glob_import
            || self.data_unknown;
        if already_reported {
            return;
        }
        if id.name == "out" && self.trained.len() > 1 {
            let names = self.trained.join("`, `");
            self.diags.push(
                Diagnostic::error(
                    codes::OUT_AMBIGUOUS,
                    format!("`out` is not defined: this block trains `{names}`"),
                )
                .with_primary(id.span, "which model's output?")
                .with_help(format!(
                    "apply a model to its input by name, e.g. `{}(x)`, and bind the result with `let`",
                    self.trained[0]
                )),
            );
            return;
        }
        let mut candidates: Vec<&str> = self
            .frames
            .iter()
            .flatten()
            .map(|(n, _)| n.as_str())
            .collect();
        candidates.extend(
            self.program.modules[self.module]
                .scope
                .keys()
                .map(|n| n.as_str()),
        );
        candidates.extend(crate::builtins::all().map(|b| b.name()));
        candidates.extend(crate::prim::Initializer::ALL.map(crate::prim::Initializer::name));
        let mut d = Diagnostic::error(codes::UNKNOWN_NAME, format!("unknown name `{}`", id.name))
            .with_primary(id.span, "not found in this scope");
        if let Some(home) = self.program.std_home_of(&id.name) {
            d = d.with_help(format!(
                "`{}` is defined in `{home}`; add `use {home}.{{{}}}`",
                id.name, id.name
            ));
        } else if let Some(s) = crate::suggest::closest(&id.name, candidates.iter().copied())
            .or_else(|| crate::suggest::completion(&id.name, candidates.iter().copied()))
        {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if self.in_targets && !self.trained.is_empty() {
            d = d.with_help(format!("this block trains `{}`", self.trained.join("`, `")));
        } else if let [model] = self.trained.as_slice()
            && !self.in_metrics
        {
            d = d.with_help(format!(
                "in a training block, `out` is the output of `{model}`; the data fields and the definitions of the file are in scope too"
            ));
        } else if self.in_metrics {
            d = d.with_help(
                "a metric is a function of (output, target): `accuracy`, `binary_accuracy`, `rmse`, or a loss such as `mse`",
            );
        }
        self.unknowns.push(Unknown {
            name: id.name.to_string(),
            span: id.span,
            diag: d,
        });
    }

    fn def(&mut self, d: &Def) {
        for n in implicit_names(d.kind) {
            self.frames[0].push((Symbol::intern(n), d.name.span));
        }
        self.push();
        for p in d.attrs.iter().chain(&d.params) {
            if let Some(t) = &p.ty {
                self.signature_type(t);
            }
            if let Some(def) = &p.default {
                self.expr(def);
            }
            self.bind_unique(&p.name, "parameter");
        }
        if let Some(t) = &d.ret {
            self.type_expr(t);
        }
        for c in &d.wheres {
            self.expr(&c.cond);
        }
        self.block(&d.body.unpack());
        self.pop();
    }

    /// A parameter's type: a bare name in a dimension introduces a symbol; expressions use names.
    fn signature_type(&mut self, t: &TypeExpr) {
        match &t.kind {
            TypeKind::Tensor { shape: Some(s), .. } | TypeKind::Shape(s) => {
                for item in &s.items {
                    match item {
                        ShapeItem::Pack(id) => self.bind_symbol(id),
                        ShapeItem::Dim(Expr {
                            kind: ExprKind::Name(id),
                            ..
                        }) => self.bind_symbol(id),
                        ShapeItem::Dim(e) => self.expr(e),
                    }
                }
            }
            TypeKind::Tuple(ts) => ts.iter().for_each(|t| self.signature_type(t)),
            TypeKind::Tensor { shape: None, .. } | TypeKind::Named(_) => {}
        }
    }

    fn bind_symbol(&mut self, id: &Ident) {
        if !self.is_local(id.name) {
            self.bind(id);
        }
    }

    fn type_expr(&mut self, t: &TypeExpr) {
        match &t.kind {
            TypeKind::Tensor { shape: Some(s), .. } | TypeKind::Shape(s) => {
                for item in &s.items {
                    match item {
                        ShapeItem::Pack(id) if self.is_local(id.name) => {}
                        ShapeItem::Pack(id) => self.unknown(id),
                        ShapeItem::Dim(e) => self.expr(e),
                    }
                }
            }
            TypeKind::Tuple(ts) => ts.iter().for_each(|t| self.type_expr(t)),
            TypeKind::Tensor { shape: None, .. } | TypeKind::Named(_) => {}
        }
    }

    fn block(&mut self, b: &Block) {
        self.push();
        for s in &b.stmts {
            self.stmt(s);
        }
        if let Some(t) = &b.tail {
            self.expr(t);
        }
        self.pop();
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { pats, value } => {
                self.expr(value);
                for p in pats {
                    self.pattern(p);
                }
            }
            StmtKind::Param { names, ty, init }
            | StmtKind::State {
                names,
                ty: Some(ty),
                init,
            } => {
                self.type_expr(ty);
                if let Some(i) = init {
                    self.expr(i);
                }
                let what = if matches!(s.kind, StmtKind::Param { .. }) {
                    "parameter"
                } else {
                    "state"
                };
                for n in names {
                    self.bind_unique(n, what);
                }
            }
            StmtKind::State {
                names,
                ty: None,
                init,
            } => {
                if let Some(i) = init {
                    self.expr(i);
                }
                for n in names {
                    self.bind_unique(n, "state");
                }
            }
            StmtKind::Assign { target, value } => {
                self.expr(value);
                if !self.is_local(target.name) {
                    self.unknown(target);
                }
            }
            StmtKind::Yield(es) => es.iter().for_each(|e| self.expr(e)),
            StmtKind::Expr(e) => self.expr(e),
        }
    }

    fn pattern(&mut self, p: &Pattern) {
        let mut seen = HashSet::new();
        for id in p.names() {
            if !seen.insert(id.name) {
                self.bind_unique(id, "name");
            } else {
                self.bind(id);
            }
        }
    }

    fn args(&mut self, args: &[Arg]) {
        for a in args {
            self.expr(&a.value);
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Number { .. } | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Training => {
            }
            ExprKind::Name(id) => self.name(id),
            ExprKind::Member(member) => self.expr(&member.base),
            ExprKind::Call(call) => {
                self.expr(&call.callee);
                self.args(&call.args);
            }
            ExprKind::Binary { lhs, rhs, .. } | ExprKind::Pipe { lhs, rhs } => {
                self.expr(lhs);
                self.expr(rhs);
            }
            ExprKind::Range { lo, hi } => {
                self.expr(lo);
                self.expr(hi);
            }
            ExprKind::Unary { expr, .. } => self.expr(expr),
            ExprKind::Tuple(es) => es.iter().for_each(|e| self.expr(e)),
            ExprKind::List(items) => {
                for it in items {
                    match it {
                        ListItem::Expr(e) => self.expr(e),
                        ListItem::Spread(id) if self.is_local(id.name) => {}
                        ListItem::Spread(id) => self.unknown(id),
                    }
                }
            }
            ExprKind::Closure { params, body } => {
                self.push();
                for p in params {
                    self.pattern(p);
                }
                self.expr(body);
                self.pop();
            }
            ExprKind::If(if_) => {
                let If {
                    cond,
                    then,
                    otherwise,
                } = &**if_;
                self.expr(cond);
                self.block(then);
                if let Some(o) = otherwise {
                    self.expr(o);
                }
            }
            ExprKind::Scan(scan) => {
                let Scan {
                    args, params, body, ..
                } = &**scan;
                self.args(args);
                self.push();
                for p in params {
                    self.pattern(p);
                }
                self.block(body);
                self.pop();
            }
            ExprKind::Block(b) => self.block(b),
        }
    }

    fn train(&mut self, t: &TrainDecl) {
        for m in &t.models {
            self.name(m);
        }
        self.trained = t.models.iter().map(|m| m.name.to_string()).collect();
        self.push();
        let program = self.program;
        let data = program
            .lookup(self.module, &t.data.name)
            .map(|r| program.item(r));
        match data {
            Some(Item::Data(d)) => {
                for s in &d.stmts {
                    if let DataStmt::Field { name, .. } = s {
                        self.bind(name);
                    }
                }
            }
            // Something else by that name: the checker says it is not a data block.
            Some(_) => {}
            None => self.unknown_data(&t.data),
        }
        self.data_unknown = !matches!(data, Some(Item::Data(_)));
        let mut implicit = vec!["B"];
        if t.models.len() == 1 {
            implicit.push("out");
        }
        for name in implicit {
            self.frames
                .last_mut()
                .expect("frame")
                .push((Symbol::intern(name), t.span));
        }
        self.train_stmts(&t.stmts);
        self.data_unknown = false;
        self.pop();
    }

    /// `train M on d` with no `d`: the suggestion is among the data blocks only.
    fn unknown_data(&mut self, id: &Ident) {
        if self.program.modules[self.module]
            .ast
            .broken
            .iter()
            .any(|n| n == id.name.as_str())
        {
            return;
        }
        let blocks: Vec<&str> = self.program.modules[self.module]
            .ast
            .items
            .iter()
            .filter_map(|it| match it {
                Item::Data(d) => Some(d.name.name.as_str()),
                _ => None,
            })
            .collect();
        let d = Diagnostic::error(
            codes::UNKNOWN_NAME,
            format!("there is no data block `{}`", id.name),
        )
        .with_primary(id.span, "not a data block of this file");
        let d = match (
            crate::suggest::closest(&id.name, blocks.iter().copied()),
            blocks.as_slice(),
        ) {
            (Some(s), _) => d.with_help(format!("did you mean `{s}`?")),
            (None, []) => d.with_help(format!("declare it: `data {} {{ … }}`", id.name)),
            (None, [only]) => d.with_help(format!("the data block of this file is `{only}`")),
            (_, all) => d.with_help(format!(
                "the data blocks of this file are {}",
                all.join(", ")
            )),
        };
        self.diags.push(d);
    }

    fn train_stmts(&mut self, stmts: &[TrainStmt]) {
        for s in stmts {
            match s {
                TrainStmt::Let(st) => self.stmt(st),
                TrainStmt::Phase { stmts, .. } => {
                    self.push();
                    self.train_stmts(stmts);
                    self.pop();
                }
                TrainStmt::Update {
                    targets,
                    optimizer: with,
                    ..
                }
                | TrainStmt::Constrain {
                    targets,
                    constraint: with,
                    ..
                } => {
                    self.in_targets = true;
                    targets.iter().for_each(|e| self.expr(e));
                    self.in_targets = false;
                    self.expr(with);
                }
                TrainStmt::Setting(set) => self.setting(set),
            }
        }
    }

    fn setting(&mut self, s: &Setting) {
        // A checkpoint is a path, not an expression: unquoted words there are not names, and
        // the checker asks for the quotes.
        // `freeze` and `frozen_bn` take layer paths and words (read by `syntax::finetune`).
        use crate::prim::TrainSetting;
        let setting = TrainSetting::from_name(&s.name.name);
        if matches!(
            setting,
            Some(TrainSetting::Checkpoint | TrainSetting::Freeze | TrainSetting::FrozenBn)
        ) {
            return;
        }
        self.in_metrics = setting == Some(TrainSetting::Metrics);
        match &s.value {
            SettingValue::Assign(e) => self.expr(e),
            SettingValue::Values(es) => es.iter().for_each(|e| self.expr(e)),
            // `monitor: val.loss` and `mode: min` name metrics and modes, not values.
            SettingValue::Call(args, _) => {
                let words = crate::prim::early_stop_words(
                    args.iter()
                        .map(|a| a.name.as_ref().map(|n| n.name.as_str())),
                );
                for (i, a) in args.iter().enumerate() {
                    if !words.get(i).copied().unwrap_or(false) {
                        self.expr(&a.value);
                    }
                }
            }
        }
        self.in_metrics = false;
    }

    fn search(&mut self, s: &SearchDecl) {
        for m in &s.models {
            self.name(m);
        }
        if self.program.lookup(self.module, &s.data.name).is_none() {
            self.unknown(&s.data);
        }
        for (_, values) in &s.space {
            // A distribution's name is search vocabulary, not a definition: walk its arguments.
            match &values.kind {
                ExprKind::Call(call)
                    if matches!(&call.callee.kind, ExprKind::Name(n)
                        if crate::prim::SEARCH_DISTRIBUTIONS.contains(&n.name.as_str())) =>
                {
                    for a in &call.args {
                        self.expr(&a.value);
                    }
                }
                _ => self.expr(values),
            }
        }
    }
}

fn report_recursion(program: &Program, graph: &Graph, diags: &mut Vec<Diagnostic>) {
    let mut reported: HashSet<ItemRef> = HashSet::new();
    let components = cyclic_components(graph);
    let items =
        program.modules.iter().enumerate().flat_map(|(module, m)| {
            (0..m.ast.items.len()).map(move |index| ItemRef { module, index })
        });
    for start in items {
        if reported.contains(&start) || program.def(start).is_none() {
            continue;
        }
        if let Some(cycle) = find_cycle(graph, &components, start) {
            let def = program.def(start).expect("checked above");
            let names: Vec<String> = cycle
                .iter()
                .filter_map(|(r, _)| program.def(*r))
                .map(|d| d.name.name.to_string())
                .collect();
            let mut d = Diagnostic::error(
                codes::RECURSIVE_DEFINITION,
                format!(
                    "`{}` uses itself: recursive {}s cannot be expanded",
                    def.name.name,
                    def.kind.keyword()
                ),
            )
            .with_primary(
                cycle[cycle.len() - 1].1,
                format!("`{}` is used here", def.name.name),
            )
            .with_secondary(def.name.span, "defined here");
            if names.len() > 1 {
                d = d.with_note(format!(
                    "the cycle: {} → {}",
                    def.name.name,
                    names.join(" → ")
                ));
            }
            d = d.with_help("layers and functions are expanded inline; use `scan` for repetition over a sequence");
            diags.push(d);
            for (r, _) in cycle {
                reported.insert(r);
            }
            reported.insert(start);
        }
    }
}

/// The component of each node on a cycle of references: its strongly connected component,
/// numbered from 1, when the component has several nodes or one that refers to itself; 0 for
/// the others. Tarjan's algorithm, without recursion: a chain of references can be as long as a
/// file.
fn cyclic_components(graph: &Graph) -> Vec<usize> {
    const UNVISITED: usize = usize::MAX;
    let n = graph.refs.len();
    // The order in which each node was reached, and the earliest order reachable from it
    // through nodes still open.
    let mut order = vec![UNVISITED; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut open: Vec<usize> = Vec::new();
    let mut component = vec![0; n];
    let mut components = 0;
    let mut reached = 0;
    for root in 0..n {
        if order[root] != UNVISITED {
            continue;
        }
        // The nodes being visited, with how many of their references have been followed.
        let mut path = vec![(root, 0)];
        order[root] = reached;
        low[root] = reached;
        reached += 1;
        on_stack[root] = true;
        open.push(root);
        while let Some((at, next)) = path.last_mut() {
            let at = *at;
            if let Some(&(to, _)) = graph.refs_of(at).get(*next) {
                *next += 1;
                let to = graph.node(to);
                if order[to] == UNVISITED {
                    order[to] = reached;
                    low[to] = reached;
                    reached += 1;
                    on_stack[to] = true;
                    open.push(to);
                    path.push((to, 0));
                } else if on_stack[to] {
                    low[at] = low[at].min(order[to]);
                }
                continue;
            }
            path.pop();
            if let Some(&(parent, _)) = path.last() {
                low[parent] = low[parent].min(low[at]);
            }
            if low[at] == order[at] {
                let mut members = Vec::new();
                while let Some(member) = open.pop() {
                    on_stack[member] = false;
                    members.push(member);
                    if member == at {
                        break;
                    }
                }
                let refers_to_itself = graph
                    .refs_of(at)
                    .iter()
                    .any(|&(to, _)| graph.node(to) == at);
                if members.len() > 1 || refers_to_itself {
                    components += 1;
                    for member in members {
                        component[member] = components;
                    }
                }
            }
        }
    }
    component
}

/// The first path, depth first in the order of references, from `start` back to itself: each
/// step with the span of the reference taken. Only nodes of `start`'s component can be on it.
fn find_cycle(graph: &Graph, components: &[usize], start: ItemRef) -> Option<Vec<(ItemRef, Span)>> {
    let start_node = graph.node(start);
    let component = components[start_node];
    if component == 0 {
        return None;
    }
    let mut cycle: Vec<(ItemRef, Span)> = Vec::new();
    // The nodes on the path, with how many of their references have been followed.
    let mut path = vec![(start_node, 0)];
    let mut seen = HashSet::new();
    while let Some((at, next)) = path.last_mut() {
        let Some(&(to, span)) = graph.refs_of(*at).get(*next) else {
            path.pop();
            cycle.pop();
            continue;
        };
        *next += 1;
        let to_node = graph.node(to);
        if to_node == start_node {
            cycle.push((to, span));
            return Some(cycle);
        }
        if components[to_node] == component && seen.insert(to_node) {
            cycle.push((to, span));
            path.push((to_node, 0));
        }
    }
    None
}

//! Builds the AST from pest's parse tree. The grammar guarantees the structure, so the
//! `expect`s here state grammar invariants, not input properties.

use super::Rule;
use super::ast::*;
use crate::source::{FileId, Span};
use pest::iterators::{Pair, Pairs};

struct Ctx {
    file: FileId,
    offset: usize,
}

impl Ctx {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, s.start() + self.offset, s.end() + self.offset)
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        debug_assert_eq!(p.as_rule(), Rule::ident);
        Ident {
            name: p.as_str().to_string(),
            span: self.span(&p),
        }
    }
}

fn is_keyword_token(r: Rule) -> bool {
    matches!(
        r,
        Rule::kw_use
            | Rule::kw_data
            | Rule::kw_train
            | Rule::kw_search
            | Rule::kw_phase
            | Rule::kw_let
            | Rule::kw_param
            | Rule::kw_state
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_scan
            | Rule::kw_yield
            | Rule::kw_where
            | Rule::kw_on
            | Rule::kw_with
            | Rule::kw_update
            | Rule::kw_constrain
            | Rule::kw_of
            | Rule::kw_split
            | Rule::kw_over
            | Rule::kw_in
            | Rule::EOI
    )
}

/// The children of a pair, without keyword tokens.
fn inner(p: Pair<Rule>) -> impl Iterator<Item = Pair<Rule>> {
    p.into_inner().filter(|c| !is_keyword_token(c.as_rule()))
}

pub(super) fn module(file: FileId, offset: usize, p: Pair<Rule>) -> Module {
    let cx = Ctx { file, offset };
    let items = inner(p).map(|item| cx.item(item)).collect();
    Module {
        items,
        broken: Vec::new(),
    }
}

impl Ctx {
    fn item(&self, p: Pair<Rule>) -> Item {
        match p.as_rule() {
            Rule::use_decl => Item::Use(self.use_decl(p)),
            Rule::data_decl => Item::Data(self.data_decl(p)),
            Rule::def_decl => Item::Def(self.def_decl(p)),
            Rule::train_decl => Item::Train(self.train_decl(p)),
            Rule::search_decl => Item::Search(self.search_decl(p)),
            r => unreachable!("not an item: {r:?}"),
        }
    }

    fn use_decl(&self, p: Pair<Rule>) -> UseDecl {
        let span = self.span(&p);
        let mut it = inner(p);
        let target_pair = it.next().expect("use target");
        let target_span = self.span(&target_pair);
        let target = match target_pair.as_rule() {
            Rule::string => UseTarget::File(self.string(target_pair).value),
            Rule::module_path => {
                UseTarget::Module(inner(target_pair).map(|i| self.ident(i)).collect())
            }
            r => unreachable!("use target {r:?}"),
        };
        let names = match it.next() {
            None => UseNames::Missing,
            Some(n) => {
                let nspan = self.span(&n);
                let idents: Vec<Ident> = inner(n).map(|i| self.ident(i)).collect();
                if idents.is_empty() {
                    UseNames::All(nspan)
                } else {
                    UseNames::Some(idents)
                }
            }
        };
        UseDecl {
            target,
            target_span,
            names,
            span,
        }
    }

    fn string(&self, p: Pair<Rule>) -> StrLit {
        let span = self.span(&p);
        let raw = p.into_inner().next().map_or("", |i| i.as_str());
        StrLit {
            value: unescape(raw),
            span,
        }
    }

    fn def_decl(&self, p: Pair<Rule>) -> Def {
        let span = self.span(&p);
        let mut it = inner(p).peekable();
        let kind = match it.next().expect("def kind").as_str() {
            "model" => DefKind::Model,
            "layer" => DefKind::Layer,
            "fn" => DefKind::Fn,
            "optimizer" => DefKind::Optimizer,
            "schedule" => DefKind::Schedule,
            _ => DefKind::Constraint,
        };
        let name = self.ident(it.next().expect("def name"));
        let first = self.param_list(it.next().expect("param list"));
        let (attrs, params) = match it.peek().map(|p| p.as_rule()) {
            Some(Rule::param_list) => (first, self.param_list(it.next().expect("peeked"))),
            // One list: a function's parameters, or a layer's inputs (it has no attributes).
            _ => (Vec::new(), first),
        };
        let mut ret = None;
        let mut wheres = Vec::new();
        let mut body = None;
        for c in it {
            match c.as_rule() {
                Rule::ret_type => ret = Some(self.type_expr(inner(c).next().expect("type"))),
                Rule::where_clause => wheres.extend(inner(c).map(|k| self.constraint(k))),
                Rule::block => body = Some(self.block(c)),
                r => unreachable!("def part {r:?}"),
            }
        }
        Def {
            kind,
            name,
            attrs,
            params,
            ret,
            wheres,
            body: body.expect("def body"),
            span,
        }
    }

    fn param_list(&self, p: Pair<Rule>) -> Vec<Param> {
        inner(p)
            .map(|param| {
                let span = self.span(&param);
                let mut it = inner(param);
                let name = self.ident(it.next().expect("param name"));
                let mut ty = None;
                let mut default = None;
                for c in it {
                    match c.as_rule() {
                        Rule::type_expr => ty = Some(self.type_expr(c)),
                        _ => default = Some(self.expr(c)),
                    }
                }
                Param {
                    name,
                    ty,
                    default,
                    span,
                }
            })
            .collect()
    }

    fn constraint(&self, p: Pair<Rule>) -> Constraint {
        let span = self.span(&p);
        let mut it = inner(p);
        let cond = self.expr(it.next().expect("constraint expr"));
        let message = it.next().map(|s| self.string(s));
        Constraint {
            cond,
            message,
            span,
        }
    }

    fn type_expr(&self, p: Pair<Rule>) -> TypeExpr {
        let span = self.span(&p);
        let t = if p.as_rule() == Rule::type_expr {
            inner(p).next().expect("type")
        } else {
            p
        };
        let kind = match t.as_rule() {
            Rule::tuple_type => TypeKind::Tuple(inner(t).map(|c| self.type_expr(c)).collect()),
            Rule::dtype_type => {
                let mut it = t.into_inner();
                let dtype = match it.next().expect("dtype").as_str() {
                    "f32" => Dtype::F32,
                    "f64" => Dtype::F64,
                    "i32" => Dtype::I32,
                    _ => Dtype::Bool,
                };
                TypeKind::Tensor {
                    dtype,
                    shape: it.next().map(|s| self.shape(s)),
                }
            }
            Rule::named_type => TypeKind::Named(self.ident(inner(t).next().expect("name"))),
            Rule::shape => TypeKind::Shape(self.shape(t)),
            r => unreachable!("type {r:?}"),
        };
        TypeExpr { kind, span }
    }

    fn shape(&self, p: Pair<Rule>) -> ShapeExpr {
        let span = self.span(&p);
        let items = inner(p)
            .map(|item| {
                let c = inner(item).next().expect("shape item");
                match c.as_rule() {
                    Rule::pack => ShapeItem::Pack(self.ident(c.into_inner().next().expect("pack"))),
                    _ => ShapeItem::Dim(self.expr(c)),
                }
            })
            .collect();
        ShapeExpr { items, span }
    }

    fn block(&self, p: Pair<Rule>) -> Block {
        let span = self.span(&p);
        let mut stmts: Vec<Stmt> = inner(p).map(|s| self.stmt(s)).collect();
        let tail = match stmts.last() {
            Some(Stmt {
                kind: StmtKind::Expr(_),
                ..
            }) => match stmts.pop() {
                Some(Stmt {
                    kind: StmtKind::Expr(e),
                    ..
                }) => Some(Box::new(e)),
                _ => unreachable!("just matched"),
            },
            _ => None,
        };
        Block { stmts, tail, span }
    }

    fn stmt(&self, p: Pair<Rule>) -> Stmt {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::let_stmt => {
                let mut parts: Vec<Pair<Rule>> = inner(p).collect();
                let value = self.expr(parts.pop().expect("let value"));
                StmtKind::Let {
                    pats: parts.into_iter().map(|c| self.pattern(c)).collect(),
                    value,
                }
            }
            Rule::param_stmt | Rule::state_stmt => {
                let is_param = p.as_rule() == Rule::param_stmt;
                let mut names = Vec::new();
                let mut ty = None;
                let mut init = None;
                for c in inner(p) {
                    match c.as_rule() {
                        Rule::ident => names.push(self.ident(c)),
                        Rule::param_type => {
                            ty = Some(self.type_expr(inner(c).next().expect("param type")))
                        }
                        _ => init = Some(self.expr(c)),
                    }
                }
                if is_param {
                    let ty = ty.expect("grammar requires a param type");
                    StmtKind::Param { names, ty, init }
                } else {
                    StmtKind::State { names, ty, init }
                }
            }
            Rule::yield_stmt => StmtKind::Yield(inner(p).map(|e| self.expr(e)).collect()),
            Rule::assign_stmt => {
                let mut it = inner(p);
                let target = self.ident(it.next().expect("target"));
                StmtKind::Assign {
                    target,
                    value: self.expr(it.next().expect("value")),
                }
            }
            Rule::expr_stmt => StmtKind::Expr(self.expr(inner(p).next().expect("expr"))),
            r => unreachable!("stmt {r:?}"),
        };
        Stmt { kind, span }
    }

    fn pattern(&self, p: Pair<Rule>) -> Pattern {
        let span = self.span(&p);
        let children: Vec<Pair<Rule>> = inner(p).collect();
        if children.len() == 1 && children[0].as_rule() == Rule::ident {
            Pattern::Name(self.ident(children.into_iter().next().expect("one")))
        } else {
            Pattern::Tuple(
                children.into_iter().map(|c| self.pattern(c)).collect(),
                span,
            )
        }
    }

    fn expr(&self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::expr | Rule::shape_item | Rule::list_item => {
                self.expr(inner(p).next().expect("expr child"))
            }
            Rule::pipe => {
                let mut it = inner(p).filter(|c| c.as_rule() != Rule::pipe_op);
                let mut acc = self.expr(it.next().expect("pipe head"));
                for rhs in it {
                    let rhs = self.expr(rhs);
                    let span = acc.span.to(rhs.span);
                    acc = Expr {
                        kind: ExprKind::Pipe {
                            lhs: Box::new(acc),
                            rhs: Box::new(rhs),
                        },
                        span,
                    };
                }
                acc
            }
            Rule::or_expr | Rule::and_expr | Rule::cmp_expr | Rule::add_expr | Rule::mul_expr => {
                self.binary_chain(p.into_inner())
            }
            Rule::range_expr => {
                let mut it = inner(p).filter(|c| c.as_rule() != Rule::range_op);
                let lo = self.expr(it.next().expect("range lo"));
                match it.next() {
                    None => lo,
                    Some(hi) => Expr {
                        kind: ExprKind::Range {
                            lo: Box::new(lo),
                            hi: Box::new(self.expr(hi)),
                        },
                        span,
                    },
                }
            }
            Rule::unary => {
                let mut ops = Vec::new();
                let mut operand = None;
                for c in inner(p) {
                    match c.as_rule() {
                        Rule::unary_op => {
                            let op = if c.as_str() == "-" {
                                UnOp::Neg
                            } else {
                                UnOp::Not
                            };
                            ops.push((op, self.span(&c)));
                        }
                        _ => operand = Some(self.expr(c)),
                    }
                }
                let mut e = operand.expect("unary operand");
                for (op, op_span) in ops.into_iter().rev() {
                    let span = op_span.to(e.span);
                    e = Expr {
                        kind: ExprKind::Unary {
                            op,
                            expr: Box::new(e),
                        },
                        span,
                    };
                }
                e
            }
            Rule::power => {
                let mut it = inner(p);
                let base = self.expr(it.next().expect("power base"));
                match (it.next(), it.next()) {
                    (Some(op), Some(exp)) => {
                        let op_span = self.span(&op);
                        Expr {
                            kind: ExprKind::Binary {
                                op: BinOp::Pow,
                                op_span,
                                lhs: Box::new(base),
                                rhs: Box::new(self.expr(exp)),
                            },
                            span,
                        }
                    }
                    _ => base,
                }
            }
            Rule::postfix => {
                let mut it = p.into_inner();
                let mut e = self.expr(it.next().expect("postfix primary"));
                for post in it {
                    let post_span = self.span(&post);
                    let span = e.span.to(post_span);
                    e = match post.as_rule() {
                        Rule::call_args => Expr {
                            kind: ExprKind::Call {
                                callee: Box::new(e),
                                args: self.args(post),
                                args_span: post_span,
                            },
                            span,
                        },
                        Rule::member => {
                            let f = inner(post).next().expect("member name");
                            let field = Ident {
                                name: f.as_str().to_string(),
                                span: self.span(&f),
                            };
                            Expr {
                                kind: ExprKind::Member {
                                    base: Box::new(e),
                                    field,
                                },
                                span,
                            }
                        }
                        r => unreachable!("postfix {r:?}"),
                    };
                }
                e
            }
            Rule::primary => self.expr(inner(p).next().expect("primary child")),
            Rule::number => {
                let text = p.as_str();
                let is_int = !text.contains(['.', 'e', 'E']);
                // The grammar admits only digit strings, so parsing can fail only on overflow,
                // which f64 turns into infinity rather than an error.
                let value = text.parse::<f64>().unwrap_or(f64::INFINITY);
                Expr {
                    kind: ExprKind::Number { value, is_int },
                    span,
                }
            }
            Rule::string => Expr {
                kind: ExprKind::Str(self.string(p).value),
                span,
            },
            Rule::bool_lit => Expr {
                kind: ExprKind::Bool(p.as_str() == "true"),
                span,
            },
            Rule::training => Expr {
                kind: ExprKind::Training,
                span,
            },
            Rule::ident => Expr {
                kind: ExprKind::Name(self.ident(p)),
                span,
            },
            Rule::paren => {
                let mut trailing = false;
                let mut items = Vec::new();
                for c in inner(p) {
                    if c.as_rule() == Rule::trailing_comma {
                        trailing = true;
                    } else {
                        items.push(self.expr(c));
                    }
                }
                if items.len() == 1 && !trailing {
                    let mut e = items.pop().expect("one");
                    e.span = span;
                    e
                } else {
                    Expr {
                        kind: ExprKind::Tuple(items),
                        span,
                    }
                }
            }
            Rule::list => {
                let items = inner(p)
                    .map(|item| {
                        let c = inner(item).next().expect("list item");
                        match c.as_rule() {
                            Rule::pack => {
                                ListItem::Spread(self.ident(c.into_inner().next().expect("pack")))
                            }
                            _ => ListItem::Expr(self.expr(c)),
                        }
                    })
                    .collect();
                Expr {
                    kind: ExprKind::List(items),
                    span,
                }
            }
            Rule::closure => {
                let mut parts: Vec<Pair<Rule>> = inner(p).collect();
                let body = self.expr(parts.pop().expect("closure body"));
                let params = parts.into_iter().map(|c| self.pattern(c)).collect();
                Expr {
                    kind: ExprKind::Closure {
                        params,
                        body: Box::new(body),
                    },
                    span,
                }
            }
            Rule::if_expr => {
                let mut it = inner(p);
                let cond = self.expr(it.next().expect("if cond"));
                let then = self.block(it.next().expect("then block"));
                let otherwise = it.next().map(|e| {
                    let espan = self.span(&e);
                    Box::new(match e.as_rule() {
                        Rule::block => Expr {
                            kind: ExprKind::Block(self.block(e)),
                            span: espan,
                        },
                        _ => self.expr(e),
                    })
                });
                Expr {
                    kind: ExprKind::If {
                        cond: Box::new(cond),
                        then,
                        otherwise,
                    },
                    span,
                }
            }
            Rule::scan_expr => {
                let mut parts: Vec<Pair<Rule>> = inner(p).collect();
                let body = self.block(parts.pop().expect("scan body"));
                let mut it = parts.into_iter();
                let args_pair = it.next().expect("scan args");
                let args_span = self.span(&args_pair);
                let args = self.args(args_pair);
                let params = it.map(|c| self.pattern(c)).collect();
                Expr {
                    kind: ExprKind::Scan {
                        args,
                        args_span,
                        params,
                        body,
                    },
                    span,
                }
            }
            Rule::block => Expr {
                kind: ExprKind::Block(self.block(p)),
                span,
            },
            r => unreachable!("expr {r:?}"),
        }
    }

    fn binary_chain(&self, pairs: Pairs<Rule>) -> Expr {
        let mut it = pairs.filter(|c| !is_keyword_token(c.as_rule()));
        let mut acc = self.expr(it.next().expect("chain head"));
        while let Some(op_pair) = it.next() {
            let op_span = self.span(&op_pair);
            let op = match op_pair.as_str() {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "//" => BinOp::FloorDiv,
                "%" => BinOp::Rem,
                "@" => BinOp::MatMul,
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "<=" => BinOp::Le,
                ">=" => BinOp::Ge,
                "<" => BinOp::Lt,
                ">" => BinOp::Gt,
                "and" => BinOp::And,
                _ => BinOp::Or,
            };
            let rhs = self.expr(it.next().expect("chain rhs"));
            let span = acc.span.to(rhs.span);
            acc = Expr {
                kind: ExprKind::Binary {
                    op,
                    op_span,
                    lhs: Box::new(acc),
                    rhs: Box::new(rhs),
                },
                span,
            };
        }
        acc
    }

    fn args(&self, p: Pair<Rule>) -> Vec<Arg> {
        inner(p)
            .map(|a| {
                let span = self.span(&a);
                let parts: Vec<Pair<Rule>> = inner(a).collect();
                let mut it = parts.into_iter();
                match (it.next(), it.next()) {
                    (Some(n), Some(v)) => Arg {
                        name: Some(self.ident(n)),
                        value: self.expr(v),
                        span,
                    },
                    (Some(v), None) => Arg {
                        name: None,
                        value: self.expr(v),
                        span,
                    },
                    _ => unreachable!("arg"),
                }
            })
            .collect()
    }

    fn setting(&self, p: Pair<Rule>) -> Setting {
        let span = self.span(&p);
        let mut it = inner(p);
        let name = self.ident(it.next().expect("setting name"));
        let v = it.next().expect("setting value");
        let value = match v.as_rule() {
            Rule::setting_assign => SettingValue::Assign(self.expr(inner(v).next().expect("e"))),
            Rule::setting_call => {
                let args = v.into_inner().next().expect("call args");
                let args_span = self.span(&args);
                SettingValue::Call(self.args(args), args_span)
            }
            _ => SettingValue::Values(inner(v).map(|e| self.expr(e)).collect()),
        };
        Setting { name, value, span }
    }

    fn data_decl(&self, p: Pair<Rule>) -> DataDecl {
        let span = self.span(&p);
        let mut it = inner(p);
        let name = self.ident(it.next().expect("data name"));
        let stmts = it
            .map(|s| {
                let sspan = self.span(&s);
                match s.as_rule() {
                    Rule::source_stmt => {
                        let mut c = inner(s);
                        let name = self.ident(c.next().expect("name"));
                        let value = self.expr(c.next().expect("value"));
                        DataStmt::Source {
                            name,
                            value,
                            span: sspan,
                        }
                    }
                    Rule::field_stmt => {
                        let mut c = inner(s);
                        let name = self.ident(c.next().expect("name"));
                        let ty = self.type_expr(c.next().expect("type"));
                        let value = self.expr(c.next().expect("value"));
                        DataStmt::Field {
                            name,
                            ty,
                            value,
                            span: sspan,
                        }
                    }
                    Rule::split_stmt => {
                        let mut c = inner(s);
                        let name = self.ident(c.next().expect("name"));
                        let fraction = self.expr(c.next().expect("fraction"));
                        let of = self.ident(c.next().expect("of"));
                        let options = c.map(|o| self.expr(o)).collect();
                        DataStmt::Split {
                            name,
                            fraction,
                            of,
                            options,
                            span: sspan,
                        }
                    }
                    _ => DataStmt::Setting(self.setting(s)),
                }
            })
            .collect();
        DataDecl { name, stmts, span }
    }

    fn train_decl(&self, p: Pair<Rule>) -> TrainDecl {
        let span = self.span(&p);
        let mut models = Vec::new();
        let mut data = None;
        let mut stmts = Vec::new();
        let mut seen_on = false;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::kw_on => seen_on = true,
                Rule::ident if seen_on => data = Some(self.ident(c)),
                Rule::ident => models.push(self.ident(c)),
                r if is_keyword_token(r) => {}
                _ => stmts.push(self.train_stmt(c)),
            }
        }
        TrainDecl {
            models,
            data: data.expect("train data"),
            stmts,
            span,
        }
    }

    fn train_stmt(&self, p: Pair<Rule>) -> TrainStmt {
        let span = self.span(&p);
        match p.as_rule() {
            Rule::let_stmt => TrainStmt::Let(self.stmt(p)),
            Rule::phase => {
                let mut it = inner(p);
                let name = self.ident(it.next().expect("phase name"));
                TrainStmt::Phase {
                    name,
                    stmts: it.map(|s| self.train_stmt(s)).collect(),
                    span,
                }
            }
            Rule::update_stmt | Rule::constrain_stmt => {
                let is_update = p.as_rule() == Rule::update_stmt;
                let mut it = inner(p);
                let targets = inner(it.next().expect("targets"))
                    .map(|e| self.expr(e))
                    .collect();
                let with = self.expr(it.next().expect("with"));
                if is_update {
                    TrainStmt::Update {
                        targets,
                        optimizer: with,
                        span,
                    }
                } else {
                    TrainStmt::Constrain {
                        targets,
                        constraint: with,
                        span,
                    }
                }
            }
            _ => TrainStmt::Setting(self.setting(p)),
        }
    }

    fn search_decl(&self, p: Pair<Rule>) -> SearchDecl {
        let span = self.span(&p);
        let mut strategy = None;
        let mut models = Vec::new();
        let mut data = None;
        let mut space = Vec::new();
        let mut goal = Goal::Maximize;
        let mut metric = None;
        let mut seen_on = false;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::kw_on => seen_on = true,
                Rule::expr => strategy = Some(self.expr(c)),
                Rule::ident if seen_on => data = Some(self.ident(c)),
                Rule::ident => models.push(self.ident(c)),
                Rule::search_dim => {
                    let mut it = inner(c);
                    let name = self.ident(it.next().expect("dim name"));
                    space.push((name, self.expr(it.next().expect("dim values"))));
                }
                Rule::search_goal => {
                    let mut it = c.into_inner();
                    if it.next().expect("goal").as_str() == "minimize" {
                        goal = Goal::Minimize;
                    }
                    metric = Some(self.expr(it.next().expect("goal metric")));
                }
                _ => {}
            }
        }
        SearchDecl {
            strategy: strategy.expect("search strategy"),
            models,
            data: data.expect("search data"),
            space,
            goal,
            metric: metric.expect("search metric"),
            span,
        }
    }
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

//! Builds the AST from pest's parse tree. The grammar guarantees the structure, so the
//! `expect`s here state grammar invariants, not input properties.
//!
//! Nesting is counted on the way down (see [`super::MAX_NESTING`]): an item whose tree would
//! be deeper is reported and set aside, without building the deep part, so that neither this
//! builder nor any later stage recurses without bound.

use super::Rule;
use super::ast::*;
use crate::diag::Diagnostic;
use crate::source::{FileId, Span};
use pest::iterators::Pair;
use std::cell::Cell;

struct Ctx<'a> {
    file: FileId,
    /// The whole file (pieces of it are parsed alone, at `offset`).
    text: &'a str,
    offset: usize,
    /// The nesting depth of the node being built.
    depth: Cell<usize>,
    /// Where the current item first went deeper than the limit.
    too_deep: Cell<Option<usize>>,
    /// The current item's body parses only by accident ([`super::lint`]).
    misparsed: Cell<Option<Diagnostic>>,
}

impl Ctx<'_> {
    fn span(&self, p: &Pair<Rule>) -> Span {
        let s = p.as_span();
        Span::new(self.file, s.start() + self.offset, s.end() + self.offset)
    }

    fn ident(&self, p: Pair<Rule>) -> Ident {
        debug_assert_eq!(p.as_rule(), Rule::ident);
        Ident {
            name: p.as_str().into(),
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

/// Collecting into a `Vec` reserves room for four items at least, and most lists of a
/// program (arguments, dims, parameters, statements) hold one or two: that slack was most of
/// the tree's memory. Every list the tree keeps is made exact, as a `Vec` or (where the list
/// sits in every expression or type) a `ThinVec`.
trait CollectExact: Iterator + Sized {
    fn collect_exact<List: ExactList<Self::Item>>(self) -> List {
        exact(self.collect())
    }
}

impl<I: Iterator> CollectExact for I {}

/// A list the syntax tree keeps.
trait ExactList<T> {
    fn from_exact(v: Vec<T>) -> Self;
}

impl<T> ExactList<T> for Vec<T> {
    fn from_exact(v: Vec<T>) -> Vec<T> {
        v
    }
}

impl<T> ExactList<T> for ThinVec<T> {
    fn from_exact(v: Vec<T>) -> ThinVec<T> {
        ThinVec::from(v)
    }
}

/// `v` without spare capacity.
fn exact<T, List: ExactList<T>>(mut v: Vec<T>) -> List {
    v.shrink_to_fit();
    List::from_exact(v)
}

/// The items of a file (or of a chunk of one starting at `offset`), and an error for each item
/// that nests too deeply or whose body parses only by accident (set aside, its name kept in
/// `broken`).
pub(super) fn module(
    file: FileId,
    text: &str,
    offset: usize,
    p: Pair<Rule>,
) -> (Module, Vec<Diagnostic>) {
    let cx = Ctx {
        file,
        text,
        offset,
        depth: Cell::new(0),
        too_deep: Cell::new(None),
        misparsed: Cell::new(None),
    };
    let mut module = Module {
        items: Vec::new(),
        broken: Vec::new(),
    };
    let mut diags = Vec::new();
    for pair in inner(p) {
        let item = cx.item(pair);
        let misparsed = cx.misparsed.take();
        let set_aside = match cx.too_deep.take() {
            Some(at) => Some(super::errors::too_deep(file, at)),
            None => misparsed,
        };
        match set_aside {
            None => module.items.push(item),
            Some(d) => {
                diags.push(d);
                if let Item::Def(d) = &item {
                    module.broken.push(d.name.name.to_string());
                }
                if let Item::Data(d) = &item {
                    module.broken.push(d.name.name.to_string());
                }
            }
        }
    }
    (module, diags)
}

impl Ctx<'_> {
    /// Goes `levels` deeper for the node `p`; false (and the place noted) past the limit, where
    /// the caller builds a placeholder instead of the node's children.
    fn descend(&self, p: &Pair<Rule>, levels: usize) -> bool {
        self.descend_at(p.as_span().start(), levels)
    }

    /// [`Self::descend`] for a node starting at `start` (in the chunk).
    fn descend_at(&self, start: usize, levels: usize) -> bool {
        let depth = self.depth.get() + levels;
        if depth > super::MAX_NESTING {
            if self.too_deep.get().is_none() {
                self.too_deep.set(Some(start + self.offset));
            }
            return false;
        }
        self.depth.set(depth);
        true
    }

    fn ascend(&self, levels: usize) {
        self.depth.set(self.depth.get() - levels);
    }

    /// Builds with `build` `levels` deeper, or gives `placeholder` past the limit.
    fn nested<T>(
        &self,
        p: &Pair<Rule>,
        levels: usize,
        placeholder: impl FnOnce() -> T,
        build: impl FnOnce() -> T,
    ) -> T {
        self.nested_at(p.as_span().start(), levels, placeholder, build)
    }

    /// [`Self::nested`] for a node starting at `start` (in the chunk).
    fn nested_at<T>(
        &self,
        start: usize,
        levels: usize,
        placeholder: impl FnOnce() -> T,
        build: impl FnOnce() -> T,
    ) -> T {
        if !self.descend_at(start, levels) {
            return placeholder();
        }
        let out = build();
        self.ascend(levels);
        out
    }

    /// What stands for an expression too deep to build (its item is set aside anyway).
    fn hole(&self, p: &Pair<Rule>) -> Expr {
        Expr {
            kind: ExprKind::Bool(false),
            span: self.span(p),
        }
    }

    /// [`Self::hole`] for the operands and operators `toks`.
    fn hole_over(&self, toks: &[Tok]) -> Expr {
        let end = toks.last().map_or(0, |t| t.pair.as_span().end());
        Expr {
            kind: ExprKind::Bool(false),
            span: Span::new(self.file, toks[0].start() + self.offset, end + self.offset),
        }
    }

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
                UseTarget::Module(inner(target_pair).map(|i| self.ident(i)).collect_exact())
            }
            r => unreachable!("use target {r:?}"),
        };
        let names = match it.next() {
            None => UseNames::Missing,
            Some(n) => {
                let nspan = self.span(&n);
                let idents: Vec<Ident> = inner(n).map(|i| self.ident(i)).collect_exact();
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
                Rule::block => {
                    let block = self.block(c);
                    self.misparsed
                        .set(super::lint::check_body(&block, self.text));
                    body = Some(Body::pack(&block));
                }
                r => unreachable!("def part {r:?}"),
            }
        }
        Def {
            kind,
            name,
            attrs,
            params,
            ret,
            wheres: exact(wheres),
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
                        _ => default = Some(Box::new(self.expr(c))),
                    }
                }
                Param {
                    name,
                    ty,
                    default,
                    span,
                }
            })
            .collect_exact()
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
            Rule::tuple_type => self.nested(
                &t,
                1,
                || TypeKind::Tuple(ThinVec::new()),
                || TypeKind::Tuple(inner(t.clone()).map(|c| self.type_expr(c)).collect_exact()),
            ),
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
            .collect_exact();
        ShapeExpr { items, span }
    }

    fn block(&self, p: Pair<Rule>) -> Block {
        let span = self.span(&p);
        if !self.descend(&p, 1) {
            return Block {
                stmts: ThinVec::new(),
                tail: None,
                span,
            };
        }
        let mut stmts: Vec<Stmt> = inner(p).map(|s| self.stmt(s)).collect();
        self.ascend(1);
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
        Block {
            stmts: ThinVec::from(stmts),
            tail,
            span,
        }
    }

    fn stmt(&self, p: Pair<Rule>) -> Stmt {
        let span = self.span(&p);
        let kind = match p.as_rule() {
            Rule::let_stmt => {
                let mut parts: Vec<Pair<Rule>> = inner(p).collect();
                let value = self.expr(parts.pop().expect("let value"));
                StmtKind::Let {
                    pats: parts.into_iter().map(|c| self.pattern(c)).collect_exact(),
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
                        _ => init = Some(Box::new(self.expr(c))),
                    }
                }
                let names = exact(names);
                if is_param {
                    let ty = ty.expect("grammar requires a param type");
                    StmtKind::Param { names, ty, init }
                } else {
                    StmtKind::State { names, ty, init }
                }
            }
            Rule::yield_stmt => StmtKind::Yield(inner(p).map(|e| self.expr(e)).collect_exact()),
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
        let children: Vec<Pair<Rule>> = inner(p.clone()).collect();
        if children.len() == 1 && children[0].as_rule() == Rule::ident {
            Pattern::Name(self.ident(children.into_iter().next().expect("one")))
        } else {
            self.nested(
                &p,
                1,
                || Pattern::Tuple(ThinVec::new(), span),
                || {
                    Pattern::Tuple(
                        children
                            .into_iter()
                            .map(|c| self.pattern(c))
                            .collect_exact(),
                        span,
                    )
                },
            )
        }
    }

    fn expr(&self, p: Pair<Rule>) -> Expr {
        let p = skip_single(p);
        let span = self.span(&p);
        match p.as_rule() {
            Rule::expr | Rule::or_expr => {
                let toks: Vec<Tok> = p.into_inner().map(Tok::new).collect();
                self.operators(&toks)
            }
            Rule::postfix => {
                let mut it = p.clone().into_inner();
                let primary = it.next().expect("postfix primary");
                let posts: Vec<Pair<Rule>> = it.collect();
                self.nested(
                    &p,
                    posts.len(),
                    || self.hole(&p),
                    || {
                        let mut e = self.expr(primary);
                        for post in posts {
                            e = self.postfix_op(e, post);
                        }
                        e
                    },
                )
            }
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
                kind: ExprKind::Str(self.string(p).value.into()),
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
            Rule::paren => self.nested(&p, 1, || self.hole(&p), || self.paren(p.clone())),
            Rule::list => self.nested(
                &p,
                1,
                || self.hole(&p),
                || {
                    let items = inner(p.clone())
                        .map(|item| {
                            let c = inner(item).next().expect("list item");
                            match c.as_rule() {
                                Rule::pack => ListItem::Spread(
                                    self.ident(c.into_inner().next().expect("pack")),
                                ),
                                _ => ListItem::Expr(self.expr(c)),
                            }
                        })
                        .collect_exact();
                    Expr {
                        kind: ExprKind::List(items),
                        span,
                    }
                },
            ),
            Rule::closure => self.nested(
                &p,
                1,
                || self.hole(&p),
                || {
                    let mut parts: Vec<Pair<Rule>> = inner(p.clone()).collect();
                    let body = self.expr(parts.pop().expect("closure body"));
                    let params = parts.into_iter().map(|c| self.pattern(c)).collect_exact();
                    Expr {
                        kind: ExprKind::Closure {
                            params,
                            body: Box::new(body),
                        },
                        span,
                    }
                },
            ),
            Rule::if_expr => self.if_chain(p),
            Rule::scan_expr => self.nested(
                &p,
                1,
                || self.hole(&p),
                || {
                    let mut parts: Vec<Pair<Rule>> = inner(p.clone()).collect();
                    let body = self.block(parts.pop().expect("scan body"));
                    let mut it = parts.into_iter();
                    let args_pair = it.next().expect("scan args");
                    let args_span = self.span(&args_pair);
                    let args = self.args(args_pair);
                    let params = it.map(|c| self.pattern(c)).collect_exact();
                    Expr {
                        kind: ExprKind::Scan(Box::new(Scan {
                            args,
                            args_span,
                            params,
                            body,
                        })),
                        span,
                    }
                },
            ),
            Rule::block => Expr {
                kind: ExprKind::Block(Box::new(self.block(p))),
                span,
            },
            r => unreachable!("expr {r:?}"),
        }
    }

    /// `( e )` is `e` with the parentheses in its span; `(a, b)` and `(a,)` are tuples.
    fn paren(&self, p: Pair<Rule>) -> Expr {
        let span = self.span(&p);
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
                kind: ExprKind::Tuple(ThinVec::from(items)),
                span,
            }
        }
    }

    /// A call's arguments or a member access applied to `e`.
    fn postfix_op(&self, e: Expr, post: Pair<Rule>) -> Expr {
        let post_span = self.span(&post);
        let span = e.span.to(post_span);
        match post.as_rule() {
            Rule::call_args => Expr {
                kind: ExprKind::Call(Box::new(Call {
                    callee: e,
                    args: ThinVec::from(self.args(post)),
                    args_span: post_span,
                })),
                span,
            },
            Rule::member => {
                let f = inner(post).next().expect("member name");
                let field = Ident {
                    name: f.as_str().into(),
                    span: self.span(&f),
                };
                Expr {
                    kind: ExprKind::Member(Box::new(Member { base: e, field })),
                    span,
                }
            }
            r => unreachable!("postfix {r:?}"),
        }
    }

    /// An expression's operands and operators, which the grammar lists flat, nested by
    /// precedence: the loosest operator present splits `toks`. Each level counts toward
    /// [`super::MAX_NESTING`] as its own pair did when the grammar had a rule per level.
    fn operators(&self, toks: &[Tok]) -> Expr {
        let Some(level) = toks.iter().filter_map(|t| t.level).min() else {
            return self.prefixed(toks);
        };
        let start = toks[0].start();
        let ops: Vec<usize> = (0..toks.len())
            .filter(|&i| toks[i].level == Some(level))
            .collect();
        let operand = |k: usize| {
            let from = if k == 0 { 0 } else { ops[k - 1] + 1 };
            let to = ops.get(k).copied().unwrap_or(toks.len());
            &toks[from..to]
        };
        match level {
            Level::Pipe => self.nested_at(
                start,
                ops.len(),
                || self.hole_over(toks),
                || {
                    let mut acc = self.operators(operand(0));
                    for k in 1..=ops.len() {
                        let rhs = self.operators(operand(k));
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
                },
            ),
            // The grammar allows one `..` per level: it is not associative.
            Level::Range => self.nested_at(
                start,
                1,
                || self.hole_over(toks),
                || {
                    let hi_toks = operand(1);
                    let lo = self.operators(operand(0));
                    let hi = self.operators(hi_toks);
                    let span = Span::new(self.file, start + self.offset, self.range_end(hi_toks));
                    Expr {
                        kind: ExprKind::Range {
                            lo: Box::new(lo),
                            hi: Box::new(hi),
                        },
                        span,
                    }
                },
            ),
            Level::Or | Level::And | Level::Cmp | Level::Add | Level::Mul => self.nested_at(
                start,
                ops.len(),
                || self.hole_over(toks),
                || {
                    let mut acc = self.operators(operand(0));
                    for (k, &at) in ops.iter().enumerate() {
                        let op_pair = &toks[at].pair;
                        let op_span = self.span(op_pair);
                        let rhs = self.operators(operand(k + 1));
                        let span = acc.span.to(rhs.span);
                        acc = Expr {
                            kind: ExprKind::Binary {
                                op: binary_op(op_pair.as_str()),
                                op_at: op_span.start,
                                lhs: Box::new(acc),
                                rhs: Box::new(rhs),
                            },
                            span,
                        };
                    }
                    acc
                },
            ),
        }
    }

    /// Where the span of `lo .. hi` ends: the grammar's `range_expr` took in the whitespace
    /// after `hi` unless each level of `hi`'s last operand had an operator (its `add_expr`, the
    /// last `mul_expr` of that, the last `power` of that), and a range's span is that pair's.
    fn range_end(&self, hi: &[Tok]) -> usize {
        let last = hi.last().expect("a range has an upper bound");
        let end = last.pair.as_span().end();
        let after = |level: Level, toks: &[Tok]| -> Option<usize> {
            toks.iter().rposition(|t| t.level == Some(level))
        };
        let tight = after(Level::Add, hi)
            .and_then(|i| {
                let add_part = &hi[i + 1..];
                after(Level::Mul, add_part).map(|j| &add_part[j + 1..])
            })
            .is_some_and(|mul_part| mul_part.iter().any(|t| t.pair.as_rule() == Rule::pow_op));
        let end = if tight {
            end
        } else {
            skip_whitespace(last.pair.get_input(), end)
        };
        end + self.offset
    }

    /// Prefix operators applied to a power chain: `-a ^ b` is `-(a ^ b)`.
    fn prefixed(&self, toks: &[Tok]) -> Expr {
        let prefixes = toks
            .iter()
            .take_while(|t| t.pair.as_rule() == Rule::unary_op)
            .count();
        if prefixes == 0 {
            return self.power(toks);
        }
        self.nested_at(
            toks[0].start(),
            prefixes,
            || self.hole_over(toks),
            || {
                let ops = toks[..prefixes]
                    .iter()
                    .map(|t| (unary_op(&t.pair), self.span(&t.pair)))
                    .collect();
                apply_unary(self.power(&toks[prefixes..]), ops)
            },
        )
    }

    /// `a ^ b ^ -c`: right-associative, each exponent with its own unary operators, so
    /// `a ^ -b ^ c` is `a ^ (-(b ^ c))`. The tree is built from the right.
    fn power(&self, toks: &[Tok]) -> Expr {
        let base = toks.first().expect("power base");
        if toks.len() == 1 {
            return self.expr(base.pair.clone());
        }
        // (operator span, unary operators, operand) per `^`.
        let mut rest: Vec<(Span, UnaryOps, &Pair<Rule>)> = Vec::new();
        let mut ops = Vec::new();
        let mut op_span = None;
        let mut levels = 0;
        for t in &toks[1..] {
            let c = &t.pair;
            match c.as_rule() {
                Rule::pow_op => op_span = Some(self.span(c)),
                Rule::unary_op => ops.push((unary_op(c), self.span(c))),
                _ => {
                    levels += 1 + ops.len();
                    rest.push((
                        op_span.take().expect("an operand follows `^`"),
                        std::mem::take(&mut ops),
                        c,
                    ));
                }
            }
        }
        self.nested_at(
            base.start(),
            levels,
            || self.hole_over(toks),
            || {
                let mut bases = vec![&base.pair];
                let mut tail = Vec::new();
                for (op_span, ops, operand) in rest {
                    bases.push(operand);
                    tail.push((op_span, ops));
                }
                let mut acc = self.expr(bases.pop().expect("an operand").clone());
                while let Some((op_span, ops)) = tail.pop() {
                    let exponent = apply_unary(acc, ops);
                    let lhs = self.expr(bases.pop().expect("one base per `^`").clone());
                    let span = lhs.span.to(exponent.span);
                    acc = Expr {
                        kind: ExprKind::Binary {
                            op: BinOp::Pow,
                            op_at: op_span.start,
                            lhs: Box::new(lhs),
                            rhs: Box::new(exponent),
                        },
                        span,
                    };
                }
                acc
            },
        )
    }

    /// `if c1 { } else if c2 { } else { }`: the grammar lists the branches flat; each
    /// `else if` becomes an `if` in the previous one's `otherwise`, spanning to the chain's end.
    fn if_chain(&self, p: Pair<Rule>) -> Expr {
        let end = self.span(&p).end as usize;
        let mut branches: Vec<(usize, Pair<Rule>, Pair<Rule>)> = Vec::new();
        let mut otherwise = None;
        let mut if_start = None;
        let mut cond = None;
        for c in p.clone().into_inner() {
            match c.as_rule() {
                Rule::kw_if => if_start = Some(self.span(&c).start as usize),
                Rule::kw_else => {}
                Rule::block if cond.is_none() => otherwise = Some(c),
                Rule::block => {
                    let start = if_start.take().expect("`if` before its condition");
                    branches.push((start, cond.take().expect("condition"), c));
                }
                _ => cond = Some(c),
            }
        }
        self.nested(
            &p,
            branches.len(),
            || self.hole(&p),
            || {
                let mut acc = otherwise.map(|e| {
                    let span = self.span(&e);
                    Expr {
                        kind: ExprKind::Block(Box::new(self.block(e))),
                        span,
                    }
                });
                while let Some((start, cond, then)) = branches.pop() {
                    let e = Expr {
                        kind: ExprKind::If(Box::new(If {
                            cond: self.expr(cond),
                            then: self.block(then),
                            otherwise: acc,
                        })),
                        span: Span::new(self.file, start, end),
                    };
                    acc = Some(e);
                }
                acc.expect("an `if` has one branch at least")
            },
        )
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
            .collect_exact()
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
            _ => SettingValue::Values(inner(v).map(|e| self.expr(e)).collect_exact()),
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
                        let options = c.map(|o| self.expr(o)).collect_exact();
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
            .collect_exact();
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
            models: exact(models),
            data: data.expect("train data"),
            stmts: exact(stmts),
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
                    stmts: it.map(|s| self.train_stmt(s)).collect_exact(),
                    span,
                }
            }
            Rule::update_stmt | Rule::constrain_stmt => {
                let is_update = p.as_rule() == Rule::update_stmt;
                let mut it = inner(p);
                let targets = inner(it.next().expect("targets"))
                    .map(|e| self.expr(e))
                    .collect_exact();
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

/// Rules that only pass their one child on (an expression of one operand, a primary) add no
/// level: the builder skips them in a loop rather than a recursion per rule.
fn skip_single(mut p: Pair<Rule>) -> Pair<Rule> {
    loop {
        let chain = matches!(
            p.as_rule(),
            Rule::expr
                | Rule::or_expr
                | Rule::shape_item
                | Rule::list_item
                | Rule::primary
                | Rule::postfix
        );
        if !chain {
            return p;
        }
        let mut children = p.clone().into_inner();
        match (children.next(), children.next()) {
            (Some(only), None) => p = only,
            _ => return p,
        }
    }
}

/// The precedence levels of the binary operators, loosest first (`^` binds tighter than the
/// prefix operators and is built with them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Pipe,
    Or,
    And,
    Cmp,
    Range,
    Add,
    Mul,
}

/// An operand or operator of an expression's flat pair.
struct Tok<'i> {
    pair: Pair<'i, Rule>,
    /// The level of a binary operator other than `^`.
    level: Option<Level>,
}

impl<'i> Tok<'i> {
    fn new(pair: Pair<'i, Rule>) -> Tok<'i> {
        let level = match pair.as_rule() {
            Rule::pipe_op => Some(Level::Pipe),
            Rule::or_op => Some(Level::Or),
            Rule::and_op => Some(Level::And),
            Rule::cmp_op => Some(Level::Cmp),
            Rule::range_op => Some(Level::Range),
            Rule::add_op => Some(Level::Add),
            Rule::mul_op => Some(Level::Mul),
            _ => None,
        };
        Tok { pair, level }
    }

    fn start(&self) -> usize {
        self.pair.as_span().start()
    }
}

fn binary_op(symbol: &str) -> BinOp {
    match symbol {
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
    }
}

/// The position after the whitespace and comments at `pos` (the grammar's `WHITESPACE`).
fn skip_whitespace(text: &str, mut pos: usize) -> usize {
    let bytes = text.as_bytes();
    while let Some(&b) = bytes.get(pos) {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'#' => pos = text[pos..].find('\n').map_or(text.len(), |n| pos + n),
            _ => break,
        }
    }
    pos
}

fn unary_op(p: &Pair<Rule>) -> UnOp {
    if p.as_str() == "-" {
        UnOp::Neg
    } else {
        UnOp::Not
    }
}

/// Prefix operators in source order, with their spans.
type UnaryOps = Vec<(UnOp, Span)>;

/// `ops` (in source order) applied to `e`, the last one innermost.
fn apply_unary(mut e: Expr, ops: UnaryOps) -> Expr {
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

#[cfg(test)]
mod tests {
    use super::super::ast::*;
    use crate::source::FileId;
    use std::fmt::Write as _;

    /// An expression as a prefix tree, each node with its span relative to `base`.
    fn show(e: &Expr, base: u32, out: &mut String) {
        let at = format!("@{}..{}", e.span.start - base, e.span.end - base);
        // `(head child child …)`.
        let mut node = |head: String, children: &[&Expr]| {
            write!(out, "({head}").unwrap();
            for c in children {
                out.push(' ');
                show(c, base, out);
            }
            out.push(')');
        };
        match &e.kind {
            ExprKind::Name(i) => write!(out, "{}{at}", i.name).unwrap(),
            ExprKind::Number { value, .. } => write!(out, "{value}{at}").unwrap(),
            ExprKind::Binary {
                op,
                op_at,
                lhs,
                rhs,
            } => {
                let o = op_at - base;
                node(format!("{}:{o}{at}", op.symbol()), &[lhs, rhs]);
            }
            ExprKind::Unary { op, expr } => node(format!("{op:?}{at}"), &[expr]),
            ExprKind::Pipe { lhs, rhs } => node(format!("|>{at}"), &[lhs, rhs]),
            ExprKind::Range { lo, hi } => node(format!("..{at}"), &[lo, hi]),
            ExprKind::Call(call) => {
                let children: Vec<&Expr> = std::iter::once(&call.callee)
                    .chain(call.args.iter().map(|a| &a.value))
                    .collect();
                node(format!("call{at}"), &children);
            }
            ExprKind::Member(member) => {
                node(format!(".{}{at}", member.field.name), &[&member.base])
            }
            ExprKind::Tuple(items) => {
                let children: Vec<&Expr> = items.iter().collect();
                node(format!("tuple{at}"), &children);
            }
            other => write!(out, "{other:?}{at}").unwrap(),
        }
    }

    /// `expr` parsed as a function's value: its tree, or the syntax error's message and place.
    /// The function is the file's second item, so its piece is parsed at an offset.
    fn parsed(expr: &str) -> String {
        let head = "use std.nn.{Dense}\n\nfn f(a: int) -> int {\n  ";
        let text = format!("{head}{expr}\n}}\n");
        let (module, diags) = super::super::parse(FileId(0), &text);
        if let Some(d) = diags.first() {
            let at = d.labels.first().map_or(0, |l| l.span.start as usize);
            return format!("error at {}: {}", at - head.len(), d.message);
        }
        let Some(Item::Def(def)) = module.items.last() else {
            return "no function".into();
        };
        let base = head.len() as u32;
        let mut out = String::new();
        let body = def.body.unpack();
        for stmt in &body.stmts {
            let value = match &stmt.kind {
                StmtKind::Let { value, .. } => value,
                _ => continue,
            };
            let (start, end) = (stmt.span.start - base, stmt.span.end - base);
            write!(out, "let@{start}..{end} = ").unwrap();
            show(value, base, &mut out);
            out.push_str("; ");
        }
        match &body.tail {
            Some(e) => show(e, base, &mut out),
            None => out.push_str("no value"),
        }
        out
    }

    const BINARY: &[&str] = &[
        "|>", "or", "and", "==", "!=", "<", "<=", ">", ">=", "..", "+", "-", "*", "/", "//", "%",
        "@", "^",
    ];

    /// Every pair of binary operators, prefix operators around each, and the postfix forms:
    /// the precedence and associativity rules of docs/language.md, spans included.
    #[test]
    fn operators_nest_by_precedence_and_associativity() {
        let mut cases: Vec<String> = Vec::new();
        for o1 in BINARY {
            for o2 in BINARY {
                cases.push(format!("a {o1} b {o2} c"));
            }
        }
        for o in BINARY {
            for u in ["-", "not ", "- -", "not -"] {
                cases.push(format!("{u}a {o} b"));
                cases.push(format!("a {o} {u}b"));
                cases.push(format!("a {o} {u}b ^ c"));
            }
        }
        cases.extend(
            [
                "a ^ -b ^ c",
                "-a ^ b",
                "a ^ - - b ^ c ^ d",
                "-a.b(c) ^ d.e",
                "f(a).b ^ 2 * -g(a, b)(c)",
                "a |> f(b) |> g or h",
                "(a + b) * c",
                "(a, b) |> f",
                "x.0 + 1 .. 3",
                "a + b + c + d - e",
                "a * b + c * d ^ e ^ f",
                "not a and not b or c == d",
                "a <",
                "a + * b",
                "a .. b .. c",
                "a < b < c",
                "a == b != c",
                "a < b .. c < d",
                "a ^",
                "- - -",
                "0 .. n * 2  # up to",
                "0 .. n + 2 * k ^ 2  # up to",
                "0 .. n + 2 * k",
                "0 .. n + 2 * -k ^ 2 ",
                "0 .. -n ",
                "(0 .. f(n)) ",
                "let r = a |> b or c and d < e .. f + g * h ^ i  # all levels\n  r",
                "let r = a |> b < e .. f + g  # some levels\n  r",
                "let r = a + b\n  let s = (a) # c\n\n  s",
            ]
            .map(String::from),
        );
        let mut out = String::new();
        for case in &cases {
            writeln!(out, "{case}  =>  {}", parsed(case)).unwrap();
        }
        insta::assert_snapshot!(out);
    }
}

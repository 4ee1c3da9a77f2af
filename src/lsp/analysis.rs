//! What the server knows about one open file: the checker's output and the resolved program,
//! and the answers to the editor's questions computed from them.

use super::text;
use crate::CheckOutput;
use crate::diag::{self, Severity};
use crate::resolve::{ItemRef, Program};
use crate::source::{FileId, Span};
use crate::syntax::ast::*;
use lsp_types::{
    CompletionItem, CompletionItemKind, DiagnosticRelatedInformation, DiagnosticSeverity,
    DocumentSymbol, Documentation, Location, MarkupContent, MarkupKind, NumberOrString, Range,
    SymbolKind, Url,
};

/// Where a file of the source map can be opened by the editor.
pub trait Locate {
    fn uri(&self, out: &CheckOutput, file: FileId) -> Option<Url>;
}

pub struct Analysis {
    pub out: CheckOutput,
    pub program: Program,
    pub root: FileId,
}

/// A name bound inside the file: a parameter, `let`, `param`/`state`, closure or scan variable,
/// or a data field. `scope` is where it is visible.
struct Binding {
    name: Ident,
    scope: Span,
    /// The declared type or the bound expression, to describe the name on hover.
    ty: Option<Span>,
    value: Option<Span>,
}

impl Analysis {
    pub fn new(name: &str, text: &str, loader: &dyn crate::resolve::Loader) -> Analysis {
        let (out, program) = crate::check_program(name, text, loader);
        let root = program.modules[program.root].file;
        Analysis { out, program, root }
    }

    fn text(&self) -> &str {
        &self.out.sources.file(self.root).text
    }

    fn module(&self) -> &Module {
        &self.program.modules[self.program.root].ast
    }

    pub fn range(&self, span: Span) -> Range {
        text::range(
            &self.out.sources.file(span.file).text,
            span.start as usize,
            span.end as usize,
        )
    }

    fn location(&self, locate: &dyn Locate, span: Span) -> Option<Location> {
        Some(Location {
            uri: locate.uri(&self.out, span.file)?,
            range: self.range(span),
        })
    }

    // ---------------------------------------------------------------- diagnostics

    pub fn diagnostics(&self, locate: &dyn Locate) -> Vec<lsp_types::Diagnostic> {
        self.out
            .diagnostics
            .iter()
            .map(|d| self.diagnostic(locate, d))
            .collect()
    }

    fn diagnostic(&self, locate: &dyn Locate, d: &diag::Diagnostic) -> lsp_types::Diagnostic {
        let primary = d.primary_span();
        let mut message = d.message.clone();
        let range = match primary {
            Some(span) if span.file == self.root => self.range(span),
            Some(span) => {
                // A problem in another file (an import): shown at the top, saying where.
                let (line, col) = self.out.sources.line_col(span.file, span.start as usize);
                let file = &self.out.sources.file(span.file).name;
                message = format!("{file}:{line}:{col}: {message}");
                Range::default()
            }
            None => Range::default(),
        };
        for note in &d.notes {
            message.push_str(&format!("\nnote: {note}"));
        }
        if let Some(help) = &d.help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let related: Vec<DiagnosticRelatedInformation> = d
            .labels
            .iter()
            .filter(|l| !l.message.is_empty())
            .filter_map(|l| {
                Some(DiagnosticRelatedInformation {
                    location: self.location(locate, l.span)?,
                    message: l.message.clone(),
                })
            })
            .collect();
        lsp_types::Diagnostic {
            range,
            severity: Some(match d.severity {
                Severity::Error => DiagnosticSeverity::ERROR,
                Severity::Warning => DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(d.code.to_string())),
            source: Some("nnl".to_string()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            ..Default::default()
        }
    }

    // ---------------------------------------------------------------- names

    fn bindings(&self) -> Vec<Binding> {
        let mut out = Vec::new();
        let file_span = Span::new(self.root, 0, self.text().len());
        for item in &self.module().items {
            match item {
                Item::Def(d) => {
                    for p in d.attrs.iter().chain(&d.params) {
                        out.push(Binding {
                            name: p.name.clone(),
                            scope: d.span,
                            ty: p.ty.as_ref().map(|t| t.span),
                            value: None,
                        });
                        if let Some(e) = &p.default {
                            expr_bindings(e, &mut out);
                        }
                    }
                    block_bindings(&d.body.unpack(), &mut out);
                }
                Item::Data(d) => {
                    for s in &d.stmts {
                        if let DataStmt::Field { name, ty, .. } = s {
                            out.push(Binding {
                                name: name.clone(),
                                scope: file_span,
                                ty: Some(ty.span),
                                value: None,
                            });
                        }
                    }
                }
                Item::Train(t) => train_bindings(&t.stmts, t.span, &mut out),
                Item::Use(_) | Item::Search(_) => {}
            }
        }
        out
    }

    /// The innermost binding of `name` visible at `offset`.
    fn binding_at(&self, name: &str, offset: usize) -> Option<Binding> {
        self.bindings()
            .into_iter()
            .filter(|b| {
                b.name.name == name
                    && b.scope.start as usize <= offset
                    && offset <= b.scope.end as usize
                    && b.name.span.start as usize <= offset
            })
            .max_by_key(|b| b.name.span.start)
    }

    fn item(&self, name: &str) -> Option<ItemRef> {
        self.program.lookup(self.program.root, name)
    }

    fn item_name_span(&self, r: ItemRef) -> Option<Span> {
        match self.program.item(r) {
            Item::Def(d) => Some(d.name.span),
            Item::Data(d) => Some(d.name.span),
            _ => None,
        }
    }

    // ---------------------------------------------------------------- requests

    pub fn definition(&self, locate: &dyn Locate, offset: usize) -> Option<Location> {
        let (start, end) = text::ident_at(self.text(), offset)?;
        let word = &self.text()[start..end];
        if let Some(b) = self.binding_at(word, start) {
            return self.location(locate, b.name.span);
        }
        let r = self.item(word)?;
        self.location(locate, self.item_name_span(r)?)
    }

    pub fn hover(&self, offset: usize) -> Option<(String, Range)> {
        let text = self.text();
        if let Some((start, end)) = text::ident_at(text, offset) {
            let word = &text[start..end];
            let range = text::range(text, start, end);
            let here = Span::new(self.root, start, end);
            let value_type = self.out.types.get(&here).filter(|t| is_value_type(t));
            if let Some(t) = value_type {
                return Some((code_block(&format!("{word}: {t}")), range));
            }
            if let Some(b) = self.binding_at(word, start) {
                let ty = b
                    .value
                    .and_then(|v| self.out.types.get(&v).map(str::to_string))
                    .or_else(|| b.ty.map(|t| self.out.sources.text(t).to_string()));
                if let Some(t) = ty {
                    return Some((code_block(&format!("{word}: {t}")), range));
                }
            } else if let Some(r) = self.item(word) {
                return Some((self.describe_item(r)?, range));
            } else if let Some(b) = crate::builtins::lookup(word).map(|b| b.def()) {
                return Some((describe_builtin(b), range));
            }
        }
        let offset = offset as u32;
        let (span, ty) = self
            .out
            .types
            .iter()
            .filter(|(s, _)| s.file == self.root && s.start <= offset && offset < s.end)
            .min_by_key(|(s, _)| (s.end - s.start, s.start))?;
        Some((code_block(ty), self.range(*span)))
    }

    fn describe_item(&self, r: ItemRef) -> Option<String> {
        let file = self.program.modules[r.module].file;
        let file_text = &self.out.sources.file(file).text;
        match self.program.item(r) {
            Item::Def(d) => {
                let mut s = code_block(&crate::fmt::signature(file_text, d));
                let doc = doc_comment(file_text, d.span.start as usize);
                if !doc.is_empty() {
                    s.push_str("\n\n");
                    s.push_str(&doc);
                }
                if self.program.modules[r.module].is_std {
                    s.push_str(&format!("\n\n(`{}`)", self.program.modules[r.module].name));
                }
                Some(s)
            }
            Item::Data(d) => Some(code_block(&format!("data {}", d.name.name))),
            _ => None,
        }
    }

    pub fn symbols(&self) -> Vec<DocumentSymbol> {
        let text = self.text();
        self.module()
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Use(_) => None,
                Item::Def(d) => {
                    let kind = match d.kind {
                        DefKind::Model | DefKind::Layer => SymbolKind::CLASS,
                        DefKind::Optimizer => SymbolKind::OPERATOR,
                        DefKind::Fn | DefKind::Schedule | DefKind::Constraint => {
                            SymbolKind::FUNCTION
                        }
                    };
                    let body = d.body.unpack();
                    let params = body.stmts.iter().filter_map(|s| match &s.kind {
                        StmtKind::Param { names, .. } => Some(names),
                        _ => None,
                    });
                    let children = params
                        .flatten()
                        .map(|n| {
                            self.symbol(&n.name, None, SymbolKind::FIELD, n.span, n.span, vec![])
                        })
                        .collect();
                    Some(self.symbol(
                        &d.name.name,
                        Some(crate::fmt::signature(text, d)),
                        kind,
                        d.span,
                        d.name.span,
                        children,
                    ))
                }
                Item::Data(d) => {
                    let children = d
                        .stmts
                        .iter()
                        .filter_map(|s| match s {
                            DataStmt::Source { name, span, .. } => {
                                Some((name, "source", SymbolKind::FILE, *span))
                            }
                            DataStmt::Field { name, span, .. } => {
                                Some((name, "field", SymbolKind::FIELD, *span))
                            }
                            DataStmt::Split { name, span, .. } => {
                                Some((name, "split", SymbolKind::FIELD, *span))
                            }
                            DataStmt::Setting(_) => None,
                        })
                        .map(|(n, what, kind, span)| {
                            self.symbol(&n.name, Some(what.to_string()), kind, span, n.span, vec![])
                        })
                        .collect();
                    Some(self.symbol(
                        &d.name.name,
                        Some("data".to_string()),
                        SymbolKind::STRUCT,
                        d.span,
                        d.name.span,
                        children,
                    ))
                }
                Item::Train(t) => {
                    let models: Vec<&str> = t.models.iter().map(|m| m.name.as_str()).collect();
                    let children = t
                        .stmts
                        .iter()
                        .filter_map(|s| match s {
                            TrainStmt::Phase { name, span, .. } => Some(self.symbol(
                                &name.name,
                                Some("phase".to_string()),
                                SymbolKind::EVENT,
                                *span,
                                name.span,
                                vec![],
                            )),
                            _ => None,
                        })
                        .collect();
                    let name = format!("train {} on {}", models.join(", "), t.data.name);
                    let head = t.models.first().map_or(t.data.span, |m| m.span);
                    Some(self.symbol(&name, None, SymbolKind::EVENT, t.span, head, children))
                }
                Item::Search(s) => {
                    let models: Vec<&str> = s.models.iter().map(|m| m.name.as_str()).collect();
                    let children = s
                        .space
                        .iter()
                        .map(|(n, e)| {
                            self.symbol(
                                &n.name,
                                None,
                                SymbolKind::VARIABLE,
                                n.span.to(e.span),
                                n.span,
                                vec![],
                            )
                        })
                        .collect();
                    let name = format!("search over {} on {}", models.join(", "), s.data.name);
                    Some(self.symbol(
                        &name,
                        None,
                        SymbolKind::EVENT,
                        s.span,
                        s.strategy.span,
                        children,
                    ))
                }
            })
            .collect()
    }

    fn symbol(
        &self,
        name: &str,
        detail: Option<String>,
        kind: SymbolKind,
        span: Span,
        selection: Span,
        children: Vec<DocumentSymbol>,
    ) -> DocumentSymbol {
        // The protocol's `deprecated` field is itself deprecated, but the struct requires it.
        #[allow(deprecated)]
        DocumentSymbol {
            name: name.to_string(),
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: self.range(span),
            selection_range: self.range(selection),
            children: (!children.is_empty()).then_some(children),
        }
    }

    /// Layers, functions, optimizers and the other definitions visible in the file (and the
    /// layers of `std.nn`, which need a `use`), and the builtins, each with its signature.
    pub fn completions(&self) -> Vec<CompletionItem> {
        let mut items = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let visible = self.program.modules[self.program.root].scope.iter();
        let std_nn = self
            .program
            .modules
            .iter()
            .enumerate()
            .filter(|(_, m)| m.name == "std.nn")
            .flat_map(|(module, m)| {
                (0..m.ast.items.len()).map(move |index| ItemRef { module, index })
            });
        let mut refs: Vec<(String, ItemRef)> = visible.map(|(n, r)| (n.to_string(), *r)).collect();
        refs.sort();
        for (name, r) in refs.into_iter().chain(std_nn.filter_map(|r| {
            let name = self.program.def(r)?.name.name.to_string();
            Some((name, r))
        })) {
            let Some(d) = self.program.def(r) else {
                continue;
            };
            if !seen.insert(name.clone()) {
                continue;
            }
            let module = &self.program.modules[r.module];
            let file_text = &self.out.sources.file(module.file).text;
            let mut doc = doc_comment(file_text, d.span.start as usize);
            if module.name == "std.nn" && self.item(&name) != Some(r) {
                doc.push_str(&format!("\n\nadd `use std.nn.{{{name}}}`"));
            }
            items.push(CompletionItem {
                label: name,
                kind: Some(match d.kind {
                    DefKind::Model | DefKind::Layer => CompletionItemKind::CLASS,
                    DefKind::Optimizer => CompletionItemKind::OPERATOR,
                    _ => CompletionItemKind::FUNCTION,
                }),
                detail: Some(crate::fmt::signature(file_text, d)),
                documentation: (!doc.trim().is_empty()).then(|| markdown(doc.trim().to_string())),
                ..Default::default()
            });
        }
        for b in crate::builtins::all().map(|b| b.def()) {
            if seen.insert(b.name.to_string()) {
                items.push(CompletionItem {
                    label: b.name.to_string(),
                    kind: Some(CompletionItemKind::FUNCTION),
                    detail: Some(builtin_signature(b)),
                    documentation: Some(markdown(b.doc.to_string())),
                    ..Default::default()
                });
            }
        }
        items
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    })
}

fn code_block(code: &str) -> String {
    format!("```nnl\n{code}\n```")
}

/// Types of values worth showing for a name (not "a layer", "a definition", …).
fn is_value_type(t: &str) -> bool {
    !(t.starts_with("a ") || t.starts_with("an ") || t.starts_with("the dtype"))
}

fn builtin_signature(b: &crate::builtins::BuiltinDef) -> String {
    let params: Vec<String> = b
        .params
        .iter()
        .map(|p| {
            if p.optional {
                format!("{}?", p.name)
            } else {
                p.name.to_string()
            }
        })
        .collect();
    format!("builtin {}({})", b.name, params.join(", "))
}

fn describe_builtin(b: &crate::builtins::BuiltinDef) -> String {
    format!("{}\n\n{}", code_block(&builtin_signature(b)), b.doc)
}

/// The comment lines right above the line of `start`, without their `#`.
fn doc_comment(text: &str, start: usize) -> String {
    let before = &text[..text[..start.min(text.len())].rfind('\n').unwrap_or(0)];
    let mut lines: Vec<&str> = before
        .rsplit('\n')
        .map(str::trim)
        .take_while(|l| l.starts_with('#') && !l.starts_with("# ---"))
        .map(|l| l.trim_start_matches('#').trim())
        .collect();
    lines.reverse();
    lines.join("\n")
}

fn block_bindings(b: &Block, out: &mut Vec<Binding>) {
    for s in &b.stmts {
        stmt_bindings(s, b.span, out);
    }
    if let Some(t) = &b.tail {
        expr_bindings(t, out);
    }
}

fn stmt_bindings(s: &Stmt, scope: Span, out: &mut Vec<Binding>) {
    match &s.kind {
        StmtKind::Let { pats, value } => {
            let single = matches!(pats.as_slice(), [Pattern::Name(_)]);
            for p in pats {
                for name in p.names() {
                    out.push(Binding {
                        name: name.clone(),
                        scope,
                        ty: None,
                        value: single.then_some(value.span),
                    });
                }
            }
            expr_bindings(value, out);
        }
        StmtKind::Param { names, ty, init }
        | StmtKind::State {
            names,
            ty: Some(ty),
            init,
        } => {
            for name in names {
                out.push(Binding {
                    name: name.clone(),
                    scope,
                    ty: Some(ty.span),
                    value: None,
                });
            }
            if let Some(e) = init {
                expr_bindings(e, out);
            }
        }
        StmtKind::State {
            names,
            ty: None,
            init,
        } => {
            for name in names {
                out.push(Binding {
                    name: name.clone(),
                    scope,
                    ty: None,
                    value: init.as_ref().map(|e| e.span),
                });
            }
            if let Some(e) = init {
                expr_bindings(e, out);
            }
        }
        StmtKind::Assign { value, .. } | StmtKind::Expr(value) => expr_bindings(value, out),
        StmtKind::Yield(es) => es.iter().for_each(|e| expr_bindings(e, out)),
    }
}

fn train_bindings(stmts: &[TrainStmt], scope: Span, out: &mut Vec<Binding>) {
    for s in stmts {
        match s {
            TrainStmt::Let(s) => stmt_bindings(s, scope, out),
            TrainStmt::Phase { stmts, span, .. } => train_bindings(stmts, *span, out),
            _ => {}
        }
    }
}

/// Closure and scan variables, and `let`s inside nested blocks.
fn expr_bindings(e: &Expr, out: &mut Vec<Binding>) {
    let pattern_bindings = |ps: &[Pattern], out: &mut Vec<Binding>| {
        for p in ps {
            for name in p.names() {
                out.push(Binding {
                    name: name.clone(),
                    scope: e.span,
                    ty: None,
                    value: None,
                });
            }
        }
    };
    match &e.kind {
        ExprKind::Closure { params, body } => {
            pattern_bindings(params, out);
            expr_bindings(body, out);
        }
        ExprKind::Scan(scan) => {
            let Scan {
                args, params, body, ..
            } = &**scan;
            args.iter().for_each(|a| expr_bindings(&a.value, out));
            pattern_bindings(params, out);
            block_bindings(body, out);
        }
        ExprKind::Block(b) => block_bindings(b, out),
        ExprKind::If(if_) => {
            expr_bindings(&if_.cond, out);
            block_bindings(&if_.then, out);
            if let Some(o) = &if_.otherwise {
                expr_bindings(o, out);
            }
        }
        ExprKind::Call(call) => {
            expr_bindings(&call.callee, out);
            call.args.iter().for_each(|a| expr_bindings(&a.value, out));
        }
        ExprKind::Binary { lhs, rhs, .. } | ExprKind::Pipe { lhs, rhs } => {
            expr_bindings(lhs, out);
            expr_bindings(rhs, out);
        }
        ExprKind::Range { lo, hi } => {
            expr_bindings(lo, out);
            expr_bindings(hi, out);
        }
        ExprKind::Unary { expr, .. } => expr_bindings(expr, out),
        ExprKind::Member(member) => expr_bindings(&member.base, out),
        ExprKind::Tuple(items) => items.iter().for_each(|e| expr_bindings(e, out)),
        ExprKind::List(items) => items.iter().for_each(|i| {
            if let ListItem::Expr(e) = i {
                expr_bindings(e, out);
            }
        }),
        ExprKind::Number { .. }
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Training
        | ExprKind::Name(_) => {}
    }
}

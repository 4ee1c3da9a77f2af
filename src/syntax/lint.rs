//! Mistakes that still parse. Statements may follow each other without a separator, so some
//! habits from other languages parse as two statements: `return x` (the name `return`, then
//! `x`), `h[0]` (`h`, then the list `[0]`), and a call whose arguments start on the next line
//! (`Dense` then `(10)`). Left alone they surface later as puzzling name or type errors; here
//! they are reported as what they are, and the item is treated as one that failed to parse.

use super::ast::*;
use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::source::Span;

/// The first such mistake in a definition's body, if any.
pub(super) fn check_body(body: &Block, text: &str) -> Option<Diagnostic> {
    block(body, text)
}

fn block(b: &Block, text: &str) -> Option<Diagnostic> {
    let mut spans: Vec<Span> = b.stmts.iter().map(|s| s.span).collect();
    spans.extend(b.tail.as_ref().map(|t| t.span));
    for (i, s) in b.stmts.iter().enumerate() {
        if let StmtKind::Expr(e) = &s.kind
            && let Some(next) = spans.get(i + 1)
            && let Some(d) = juxtaposed(e, *next, text)
        {
            return Some(d);
        }
    }
    b.stmts
        .iter()
        .find_map(|s| stmt(s, text))
        .or_else(|| b.tail.as_ref().and_then(|t| expr(t, text)))
}

/// An expression statement `e` directly followed by the statement at `next`.
fn juxtaposed(e: &Expr, next: Span, text: &str) -> Option<Diagnostic> {
    let gap = text.get(e.span.end as usize..next.start as usize)?;
    if gap.contains(';') {
        return None;
    }
    let same_line = !gap.contains('\n');
    let following = text.get(next.start as usize..next.end as usize)?;
    if same_line && matches!(&e.kind, ExprKind::Name(n) if n.name == "return") {
        return Some(
            Diagnostic::error(codes::SYNTAX, "nnl has no `return`")
                .with_primary(e.span, "remove `return`")
                .with_help(
                    "a block's value is its last expression: end the body with the value itself",
                ),
        );
    }
    if same_line && following.starts_with('[') {
        let brackets = matching_close(text, next.start as usize)
            .map_or(next, |end| Span::new(next.file, next.start as usize, end));
        let base = text.get(e.span.range()).unwrap_or("x");
        return Some(
            Diagnostic::error(codes::SYNTAX, "nnl has no `[…]` indexing")
                .with_primary(brackets, "indexing is not part of the language")
                .with_help(format!(
                    "take part of a tensor with a function: `slice({base}, axis: 0, start: 0, end: 1)`, `pick` (one entry per row) or `gather` (rows of a table)"
                )),
        );
    }
    if !same_line && following.starts_with('(') {
        let args = matching_close(text, next.start as usize)
            .map_or(next, |end| Span::new(next.file, next.start as usize, end));
        let callee = rightmost_operand(e);
        let callee_text = text.get(callee.span.range()).unwrap_or("the callee");
        let args_text = text.get(args.range()).unwrap_or("(…)");
        return Some(
            Diagnostic::error(
                codes::SYNTAX,
                format!("the arguments of `{callee_text}` must start on its line"),
            )
            .with_primary(args, "these arguments start a new statement")
            .with_secondary(callee.span, "the call ends here")
            .with_help(format!(
                "move the `(` up: `{callee_text}{args_text}`; a long argument list may break after `(`"
            )),
        );
    }
    None
}

/// The operand that a following `(…)` would have called: `h |> Dense` → `Dense`.
fn rightmost_operand(e: &Expr) -> &Expr {
    match &e.kind {
        ExprKind::Pipe { rhs, .. } | ExprKind::Binary { rhs, .. } => rightmost_operand(rhs),
        _ => e,
    }
}

/// The offset just after the bracket that closes the one at `open`.
fn matching_close(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.get(open..)?.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            '\n' => return None,
            _ => {}
        }
    }
    None
}

fn stmt(s: &Stmt, text: &str) -> Option<Diagnostic> {
    match &s.kind {
        StmtKind::Let { value, .. } | StmtKind::Assign { value, .. } | StmtKind::Expr(value) => {
            expr(value, text)
        }
        StmtKind::Param { init, .. } | StmtKind::State { init, .. } => {
            init.as_ref().and_then(|e| expr(e, text))
        }
        StmtKind::Yield(es) => es.iter().find_map(|e| expr(e, text)),
    }
}

fn expr(e: &Expr, text: &str) -> Option<Diagnostic> {
    match &e.kind {
        ExprKind::Number { .. }
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::Training
        | ExprKind::Name(_) => None,
        ExprKind::Member(member) => expr(&member.base, text),
        ExprKind::Unary { expr: base, .. } => expr(base, text),
        ExprKind::Call(call) => {
            expr(&call.callee, text).or_else(|| call.args.iter().find_map(|a| expr(&a.value, text)))
        }
        ExprKind::Binary { lhs, rhs, .. }
        | ExprKind::Pipe { lhs, rhs }
        | ExprKind::Range { lo: lhs, hi: rhs } => expr(lhs, text).or_else(|| expr(rhs, text)),
        ExprKind::Tuple(es) => es.iter().find_map(|e| expr(e, text)),
        ExprKind::List(items) => items.iter().find_map(|it| match it {
            ListItem::Expr(e) => expr(e, text),
            ListItem::Spread(_) => None,
        }),
        ExprKind::Closure { body, .. } => expr(body, text),
        ExprKind::If(if_) => expr(&if_.cond, text)
            .or_else(|| block(&if_.then, text))
            .or_else(|| if_.otherwise.as_ref().and_then(|o| expr(o, text))),
        ExprKind::Scan(scan) => scan
            .args
            .iter()
            .find_map(|a| expr(&a.value, text))
            .or_else(|| block(&scan.body, text)),
        ExprKind::Block(b) => block(b, text),
    }
}

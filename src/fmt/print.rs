//! The printer: walks the AST and writes tokens with canonical spacing. Every gap between two
//! tokens goes through `gap`, which prints the comments the source has there and decides whether
//! the gap becomes a line break.

use super::Comment;
use crate::source::Span;
use crate::syntax::ast::*;

pub(super) fn module(src: &str, comments: &[Comment], m: &Module) -> String {
    let mut p = Printer::new(src, comments);
    for (i, item) in m.items.iter().enumerate() {
        p.indent = 0;
        p.gap(
            item.span().start as usize,
            Gap::Statement { keep_blank: i > 0 },
        );
        p.indent = 2;
        p.item(item);
    }
    p.indent = 0;
    p.gap(src.len(), Gap::Close);
    p.finish()
}

pub(super) fn signature(src: &str, d: &Def) -> String {
    let mut p = Printer::new(src, &[]);
    p.flat = true;
    p.def_header(d);
    p.line
}

/// What a gap between two tokens may become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap {
    /// No break, unless a comment forces one.
    Inline,
    /// A break if the source has one here.
    Soft,
    /// Always a break; one blank line kept from the source when `keep_blank`.
    Statement { keep_blank: bool },
    /// Always a break, no blank lines.
    Break,
    /// Before a closing brace: comments on their own lines, then no line started.
    Close,
}

/// A bracketed list's brackets and their positions in the source.
struct Delims {
    open_pos: usize,
    open: &'static str,
    close_pos: usize,
    close: &'static str,
}

impl Delims {
    fn new(open_pos: usize, open: &'static str, close_pos: usize, close: &'static str) -> Delims {
        Delims {
            open_pos,
            open,
            close_pos,
            close,
        }
    }
}

/// A braced statement list's braces, and the indentation its statements are one level under
/// (by default, that of the line it opens on).
struct Braces {
    base: Option<usize>,
    open_pos: usize,
    close_pos: usize,
}

/// Which statements align their `=` (or `in`) with each other: `name = …` with `name = …`,
/// data fields `name: type = …` with data fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Align {
    Name,
    Field,
}

struct Line {
    code: String,
    comment: Option<String>,
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [Comment],
    next_comment: usize,
    /// The source offset up to which tokens (and the comments before them) were printed.
    last_end: usize,
    lines: Vec<Line>,
    line: String,
    /// The indentation of lines that a break starts.
    indent: usize,
    /// Ignore comments and breaks: everything on one line (signatures).
    flat: bool,
}

impl<'a> Printer<'a> {
    fn new(src: &'a str, comments: &'a [Comment]) -> Printer<'a> {
        Printer {
            src,
            comments,
            next_comment: 0,
            last_end: 0,
            lines: Vec::new(),
            line: String::new(),
            indent: 0,
            flat: false,
        }
    }

    fn finish(mut self) -> String {
        if !self.line.trim().is_empty() {
            self.end_line(None);
        }
        while self.lines.last().is_some_and(|l| l.code.is_empty()) {
            self.lines.pop();
        }
        align_trailing_comments(&mut self.lines);
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(&l.code);
            if let Some(c) = &l.comment {
                out.push_str(c);
            }
            out.push('\n');
        }
        out
    }

    // ---------------------------------------------------------------- output

    fn write(&mut self, s: &str) {
        self.line.push_str(s);
    }

    fn col(&self) -> usize {
        self.line.chars().count()
    }

    fn line_indent(&self) -> usize {
        self.line.len() - self.line.trim_start_matches(' ').len()
    }

    fn line_is_blank(&self) -> bool {
        self.line.trim().is_empty()
    }

    fn end_line(&mut self, comment: Option<String>) {
        let code = self.line.trim_end().to_string();
        self.lines.push(Line { code, comment });
        self.line.clear();
    }

    fn start_line(&mut self, indent: usize) {
        self.line = " ".repeat(indent);
    }

    fn blank_line(&mut self) {
        if self.lines.last().is_some_and(|l| !l.code.is_empty()) {
            self.lines.push(Line {
                code: String::new(),
                comment: None,
            });
        }
    }

    fn text(&self, start: usize, end: usize) -> &'a str {
        &self.src[start..end]
    }

    /// A token from the source, printed as it is written there.
    fn leaf(&mut self, span: Span) {
        self.gap(span.start as usize, Gap::Inline);
        let t = self.text(span.start as usize, span.end as usize);
        self.write(t);
        self.last_end = span.end as usize;
    }

    fn ident(&mut self, id: &Ident) {
        self.leaf(id.span);
    }

    /// The first `ch` at or after `from`, skipping comments: a closing or opening bracket whose
    /// position the AST does not record (only whitespace, commas and comments come before it).
    fn find(&self, from: usize, ch: u8) -> usize {
        let bytes = self.src.as_bytes();
        let mut i = from.min(bytes.len());
        while i < bytes.len() {
            match bytes[i] {
                b'#' => {
                    i = self.src[i..].find('\n').map_or(bytes.len(), |n| i + n);
                    continue;
                }
                b if b == ch => return i,
                _ => i += 1,
            }
        }
        from.min(bytes.len())
    }

    /// A punctuation token whose source position is known.
    fn punct(&mut self, pos: usize, s: &str, mode: Gap) {
        self.gap(pos, mode);
        self.write(s);
        self.last_end = self.last_end.max(pos + s.len());
    }

    /// Prints the comments between the last token and `until`, and breaks the line if `mode` or
    /// a comment asks for it. Returns whether a new line was started.
    fn gap(&mut self, until: usize, mode: Gap) -> bool {
        if self.flat {
            return false;
        }
        let from = self.last_end.min(until);
        let mut pos = from;
        let mut newlines = 0;
        let mut broke = false;
        let mut blank = false;
        let mut keep_blank = matches!(mode, Gap::Statement { keep_blank: true });
        while let Some(c) = self.comments.get(self.next_comment).copied() {
            if c.start >= until {
                break;
            }
            self.next_comment += 1;
            if c.start > pos {
                newlines += self.src[pos..c.start].matches('\n').count();
            }
            blank |= newlines >= 2;
            let text = self.src[c.start..c.end].trim_end().to_string();
            if newlines == 0 && !self.line_is_blank() {
                self.end_line(Some(text));
            } else {
                if !self.line_is_blank() {
                    self.end_line(None);
                }
                if blank && keep_blank {
                    self.blank_line();
                }
                let line = format!("{}{text}", " ".repeat(self.indent));
                self.lines.push(Line {
                    code: line,
                    comment: None,
                });
                self.line.clear();
                keep_blank = !matches!(mode, Gap::Inline | Gap::Soft | Gap::Break);
            }
            blank = false;
            broke = true;
            newlines = 0;
            pos = c.end.max(pos);
        }
        if until > pos {
            newlines += self.src[pos..until].matches('\n').count();
        }
        blank |= newlines >= 2;
        self.last_end = self.last_end.max(until);
        let break_here = match mode {
            Gap::Inline => broke,
            Gap::Soft => broke || newlines > 0,
            Gap::Statement { .. } | Gap::Break | Gap::Close => true,
        };
        if !break_here {
            return false;
        }
        if !self.line_is_blank() {
            self.end_line(None);
        }
        if blank && keep_blank && !matches!(mode, Gap::Close) {
            self.blank_line();
        }
        if mode == Gap::Close {
            self.line.clear();
        } else {
            self.start_line(self.indent);
        }
        true
    }

    /// `gap` for the space between two tokens that are separated by a space when on one line.
    fn space_or_break(&mut self, until: usize, mode: Gap) {
        if !self.gap(until, mode) {
            self.write(" ");
        }
    }

    /// A bracketed, comma-separated list. When the first item starts on a new line, every item
    /// gets its own line with a trailing comma and the closing bracket its own line; otherwise
    /// the items follow the opening bracket and the lines they continue on align with it.
    fn seq<T>(
        &mut self,
        delims: Delims,
        items: &[T],
        trailing_comma: bool,
        start_of: impl Fn(&T) -> usize,
        each: impl Fn(&mut Self, &T),
    ) {
        let Delims {
            open_pos,
            open,
            close_pos,
            close,
        } = delims;
        self.punct(open_pos, open, Gap::Inline);
        let saved = self.indent;
        let Some(first) = items.first() else {
            self.punct(close_pos, close, Gap::Inline);
            return;
        };
        let first_start = start_of(first);
        let vertical = !self.flat
            && (self.src[self.last_end.min(first_start)..first_start].contains('\n')
                || self
                    .comments
                    .get(self.next_comment)
                    .is_some_and(|c| c.start < first_start));
        if vertical {
            let base = self.line_indent();
            self.indent = base + 2;
            for it in items {
                self.gap(start_of(it), Gap::Break);
                each(self, it);
                self.write(",");
            }
            self.indent = base;
            self.punct(close_pos, close, Gap::Break);
        } else {
            self.indent = self.col();
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    self.write(",");
                    self.space_or_break(start_of(it), Gap::Soft);
                }
                each(self, it);
            }
            if trailing_comma {
                self.write(",");
            }
            self.punct(close_pos, close, Gap::Inline);
        }
        self.indent = saved;
    }

    /// Items separated by `, ` that the grammar does not bracket (patterns, names, values).
    fn commas<T>(
        &mut self,
        items: &[T],
        start_of: impl Fn(&T) -> usize,
        each: impl Fn(&mut Self, &T),
    ) {
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.write(",");
                self.space_or_break(start_of(it), Gap::Soft);
            }
            each(self, it);
        }
    }

    /// Statements between braces, one a line, indented under the line that opened them. `key`
    /// gives the width of what comes before the `=` (or `in`) of statements that align theirs.
    fn braced<T>(
        &mut self,
        braces: Braces,
        items: &[T],
        span_of: impl Fn(&T) -> Span,
        key: impl Fn(&mut Self, &T),
        alignable: impl Fn(&T) -> Option<Align>,
        each: impl Fn(&mut Self, usize, &T, usize),
    ) {
        let Braces {
            base,
            open_pos,
            close_pos,
        } = braces;
        self.punct(open_pos, "{", Gap::Inline);
        let base = base.unwrap_or_else(|| self.line_indent());
        let saved = self.indent;
        let pads = self.alignment(items, &span_of, &key, &alignable);
        for (i, it) in items.iter().enumerate() {
            self.indent = base + 2;
            self.gap(
                span_of(it).start as usize,
                Gap::Statement { keep_blank: i > 0 },
            );
            self.indent = base + 4;
            each(self, i, it, pads[i]);
        }
        self.indent = base + 2;
        self.gap(close_pos, Gap::Close);
        self.start_line(base);
        self.punct(close_pos, "}", Gap::Inline);
        self.indent = saved;
    }

    /// The padding before each statement's `=` so that runs of consecutive statements of one
    /// kind (no blank line between them) line up.
    fn alignment<T>(
        &self,
        items: &[T],
        span_of: &impl Fn(&T) -> Span,
        key: &impl Fn(&mut Self, &T),
        alignable: &impl Fn(&T) -> Option<Align>,
    ) -> Vec<usize> {
        let widths: Vec<Option<usize>> = items
            .iter()
            .map(|it| {
                alignable(it)?;
                let start = span_of(it).start as usize;
                let mut scratch = Printer::new(self.src, self.comments);
                scratch.next_comment = self.comments.partition_point(|c| c.start < start);
                scratch.last_end = start;
                key(&mut scratch, it);
                scratch
                    .lines
                    .is_empty()
                    .then(|| scratch.line.chars().count())
            })
            .collect();
        let mut pads = vec![0; items.len()];
        let mut i = 0;
        while i < items.len() {
            if widths[i].is_none() {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < items.len()
                && widths[j].is_some()
                && alignable(&items[j]) == alignable(&items[i])
                && !self.blank_line_between(span_of(&items[j - 1]).start, span_of(&items[j]).start)
            {
                j += 1;
            }
            let target = widths[i..j].iter().flatten().max().copied().unwrap_or(0);
            for k in i..j {
                pads[k] = target - widths[k].unwrap_or(target);
            }
            i = j;
        }
        pads
    }

    /// Whether a blank line separates two statements: above the comment lines right before the
    /// second. (Statement spans cannot tell where the first ends: pest's spans may include
    /// trailing whitespace.)
    fn blank_line_between(&self, first: u32, second: u32) -> bool {
        let (first, pos) = (first as usize, second as usize);
        if !self.src[first..pos].contains('\n') {
            return false;
        }
        let before = &self.src[..self.src[..pos].rfind('\n').unwrap_or(0)];
        for line in before.rsplit('\n') {
            let line = line.trim();
            if line.is_empty() {
                return true;
            }
            if !line.starts_with('#') {
                return false;
            }
        }
        false
    }

    // ---------------------------------------------------------------- items

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => self.use_decl(u),
            Item::Data(d) => self.data_decl(d),
            Item::Def(d) => self.def(d),
            Item::Train(t) => self.train_decl(t),
            Item::Search(s) => self.search_decl(s),
        }
    }

    fn use_decl(&mut self, u: &UseDecl) {
        self.write("use ");
        match &u.target {
            UseTarget::Module(path) => {
                for (i, id) in path.iter().enumerate() {
                    if i > 0 {
                        self.write(".");
                    }
                    self.ident(id);
                }
            }
            UseTarget::File(_) => self.leaf(u.target_span),
        }
        match &u.names {
            UseNames::Missing => {}
            UseNames::All(span) => {
                self.write(".*");
                self.last_end = span.end as usize;
            }
            UseNames::Some(ids) => {
                self.write(".");
                let open = self.find(u.target_span.end as usize, b'{');
                let close = self.find(ids.last().map_or(open, |i| i.span.end as usize), b'}');
                self.seq(
                    Delims::new(open, "{", close, "}"),
                    ids,
                    false,
                    |i| i.span.start as usize,
                    |p, i| p.ident(i),
                );
            }
        }
    }

    fn def(&mut self, d: &Def) {
        self.def_header(d);
        if let Some(first) = d.wheres.first() {
            self.indent = 2;
            self.gap(first.span.start as usize, Gap::Break);
            self.write("where ");
            let column = self.col();
            for (i, w) in d.wheres.iter().enumerate() {
                if i > 0 {
                    self.write(",");
                    self.indent = column;
                    self.space_or_break(w.span.start as usize, Gap::Soft);
                }
                self.indent = column + 2;
                self.expr(&w.cond);
                if let Some(m) = &w.message {
                    self.space_or_break(m.span.start as usize, Gap::Soft);
                    self.write(": ");
                    self.leaf(m.span);
                }
            }
            self.indent = 0;
            self.gap(d.body.span.start as usize, Gap::Break);
        } else {
            self.write(" ");
        }
        self.block_at(Some(0), &d.body.unpack());
    }

    fn def_header(&mut self, d: &Def) {
        self.write(d.kind.keyword());
        self.write(" ");
        self.ident(&d.name);
        let column = self.col();
        let first_open = self.find(d.name.span.end as usize, b'(');
        let first_close = self.param_list_close(first_open, &d.attrs);
        let after_first = self.find(first_close + 1, b'(');
        let two_lists = !d.attrs.is_empty()
            || (d
                .params
                .first()
                .is_some_and(|p| p.span.start as usize > first_close)
                && self
                    .src
                    .get(first_close + 1..after_first)
                    .is_some_and(|between| between.trim().is_empty()));
        if two_lists {
            self.param_list(first_open, &d.attrs);
            let saved = self.indent;
            self.indent = column;
            self.gap(after_first, Gap::Soft);
            self.indent = saved;
            self.param_list(after_first, &d.params);
        } else {
            self.param_list(first_open, &d.params);
        }
        if let Some(ret) = &d.ret {
            self.indent = 2;
            self.space_or_break(ret.span.start as usize, Gap::Soft);
            self.write("-> ");
            self.type_expr(ret);
        }
    }

    fn param_list_close(&self, open: usize, params: &[Param]) -> usize {
        let from = params.last().map_or(open + 1, |p| p.span.end as usize);
        self.find(from, b')')
    }

    fn param_list(&mut self, open: usize, params: &[Param]) {
        let close = self.param_list_close(open, params);
        self.seq(
            Delims::new(open, "(", close, ")"),
            params,
            false,
            |p| p.span.start as usize,
            |pr, p| {
                pr.ident(&p.name);
                if let Some(t) = &p.ty {
                    pr.write(": ");
                    pr.type_expr(t);
                }
                if let Some(e) = &p.default {
                    pr.write(" = ");
                    pr.expr(e);
                }
            },
        );
    }

    fn data_decl(&mut self, d: &DataDecl) {
        self.write("data ");
        self.ident(&d.name);
        self.write(" ");
        let open = self.find(d.name.span.end as usize, b'{');
        self.braced(
            Braces {
                base: None,
                open_pos: open,
                close_pos: d.span.end as usize - 1,
            },
            &d.stmts,
            data_stmt_span,
            |p, s| match s {
                DataStmt::Source { name, .. } => p.ident(name),
                DataStmt::Field { name, ty, .. } => {
                    p.ident(name);
                    p.write(": ");
                    p.type_expr(ty);
                }
                DataStmt::Setting(s) => p.ident(&s.name),
                DataStmt::Split { .. } => {}
            },
            |s| match s {
                DataStmt::Source { .. } => Some(Align::Name),
                DataStmt::Setting(s) if matches!(s.value, SettingValue::Assign(_)) => {
                    Some(Align::Name)
                }
                DataStmt::Field { .. } => Some(Align::Field),
                _ => None,
            },
            |p, _, s, pad| p.data_stmt(s, pad),
        );
    }

    fn data_stmt(&mut self, s: &DataStmt, pad: usize) {
        match s {
            DataStmt::Source { name, value, .. } => {
                self.ident(name);
                self.assign(pad, value);
            }
            DataStmt::Field {
                name, ty, value, ..
            } => {
                self.ident(name);
                self.write(": ");
                self.type_expr(ty);
                self.assign(pad, value);
            }
            DataStmt::Split {
                name,
                fraction,
                of,
                options,
                ..
            } => {
                self.write("split ");
                self.ident(name);
                self.write(" = ");
                self.expr(fraction);
                self.write(" of ");
                self.ident(of);
                for o in options {
                    self.write(",");
                    self.space_or_break(o.span.start as usize, Gap::Soft);
                    self.expr(o);
                }
            }
            DataStmt::Setting(s) => self.setting(s, pad),
        }
    }

    fn assign(&mut self, pad: usize, value: &Expr) {
        self.write(&" ".repeat(pad));
        self.write(" = ");
        self.expr(value);
    }

    fn setting(&mut self, s: &Setting, pad: usize) {
        self.ident(&s.name);
        match &s.value {
            SettingValue::Assign(e) => self.assign(pad, e),
            SettingValue::Values(vs) => {
                self.write(" ");
                self.commas(vs, |e| e.span.start as usize, |p, e| p.expr(e));
            }
            SettingValue::Call(args, span) => self.call_args(args, *span),
        }
    }

    fn train_decl(&mut self, t: &TrainDecl) {
        self.write("train ");
        self.commas(&t.models, |m| m.span.start as usize, |p, m| p.ident(m));
        self.write(" on ");
        self.ident(&t.data);
        self.write(" ");
        let open = self.find(t.data.span.end as usize, b'{');
        self.train_stmts(open, &t.stmts, t.span.end as usize - 1);
    }

    fn train_stmts(&mut self, open: usize, stmts: &[TrainStmt], close: usize) {
        self.braced(
            Braces {
                base: None,
                open_pos: open,
                close_pos: close,
            },
            stmts,
            train_stmt_span,
            |p, s| {
                if let TrainStmt::Setting(s) = s {
                    p.ident(&s.name);
                }
            },
            |s| {
                matches!(
                    s,
                    TrainStmt::Setting(Setting {
                        value: SettingValue::Assign(_),
                        ..
                    })
                )
                .then_some(Align::Name)
            },
            |p, _, s, pad| p.train_stmt(s, pad),
        );
    }

    fn train_stmt(&mut self, s: &TrainStmt, pad: usize) {
        match s {
            TrainStmt::Let(s) => self.stmt(s),
            TrainStmt::Phase { name, stmts, span } => {
                self.write("phase ");
                self.ident(name);
                self.write(" ");
                let open = self.find(name.span.end as usize, b'{');
                self.train_stmts(open, stmts, span.end as usize - 1);
            }
            TrainStmt::Update {
                targets, optimizer, ..
            } => self.with_clause("update ", targets, optimizer),
            TrainStmt::Constrain {
                targets,
                constraint,
                ..
            } => self.with_clause("constrain ", targets, constraint),
            TrainStmt::Setting(s) => self.setting(s, pad),
        }
    }

    fn with_clause(&mut self, keyword: &str, targets: &[Expr], with: &Expr) {
        self.write(keyword);
        self.commas(targets, |e| e.span.start as usize, |p, e| p.expr(e));
        self.write(" with ");
        self.expr(with);
    }

    fn search_decl(&mut self, s: &SearchDecl) {
        self.write("search ");
        self.expr(&s.strategy);
        self.write(" over ");
        self.commas(&s.models, |m| m.span.start as usize, |p, m| p.ident(m));
        self.write(" on ");
        self.ident(&s.data);
        self.write(" ");
        let open = self.find(s.data.span.end as usize, b'{');
        let close = self.find(
            s.space
                .last()
                .map_or(open + 1, |(_, e)| e.span.end as usize),
            b'}',
        );
        self.braced(
            Braces {
                base: None,
                open_pos: open,
                close_pos: close,
            },
            &s.space,
            |(n, e)| n.span.to(e.span),
            |p, (n, _)| p.ident(n),
            |_| Some(Align::Name),
            |p, _, (n, e), pad| {
                p.ident(n);
                p.write(&" ".repeat(pad));
                p.write(" in ");
                p.expr(e);
            },
        );
        self.write(match s.goal {
            Goal::Maximize => " maximize ",
            Goal::Minimize => " minimize ",
        });
        self.expr(&s.metric);
    }

    // ---------------------------------------------------------------- types

    fn type_expr(&mut self, t: &TypeExpr) {
        match &t.kind {
            TypeKind::Tensor { dtype, shape } => {
                let start = t.span.start as usize;
                self.leaf(Span::new(t.span.file, start, start + dtype.name().len()));
                if let Some(s) = shape {
                    self.shape(s);
                }
            }
            TypeKind::Shape(s) => self.shape(s),
            TypeKind::Tuple(ts) => self.seq(
                Delims::new(t.span.start as usize, "(", t.span.end as usize - 1, ")"),
                ts,
                false,
                |t| t.span.start as usize,
                |p, t| p.type_expr(t),
            ),
            TypeKind::Named(id) => self.ident(id),
        }
    }

    fn shape(&mut self, s: &ShapeExpr) {
        self.seq(
            Delims::new(s.span.start as usize, "[", s.span.end as usize - 1, "]"),
            &s.items,
            false,
            |item| match item {
                ShapeItem::Dim(e) => e.span.start as usize,
                ShapeItem::Pack(id) => id.span.start as usize - 2,
            },
            |p, item| match item {
                ShapeItem::Dim(e) => p.expr(e),
                ShapeItem::Pack(id) => {
                    p.gap(id.span.start as usize - 2, Gap::Inline);
                    p.write("..");
                    p.ident(id);
                }
            },
        );
    }

    // ---------------------------------------------------------------- statements

    fn block(&mut self, b: &Block) {
        self.block_at(None, b);
    }

    /// A block; its statements are indented one level under `base`, by default the indentation
    /// of the line it opens on.
    fn block_at(&mut self, base: Option<usize>, b: &Block) {
        let start = b.span.start as usize;
        let close = b.span.end as usize - 1;
        let has_comments = self
            .comments
            .get(self.next_comment)
            .is_some_and(|c| c.start < close);
        if let (true, Some(tail)) = (b.stmts.is_empty(), &b.tail)
            && (!self.src[start..close].contains('\n') || self.flat)
        {
            self.punct(start, "{ ", Gap::Inline);
            self.expr(tail);
            self.write(" ");
            self.punct(close, "}", Gap::Inline);
            return;
        }
        if b.stmts.is_empty() && b.tail.is_none() && !has_comments {
            self.punct(start, "{", Gap::Inline);
            self.punct(close, "}", Gap::Inline);
            return;
        }
        let mut all: Vec<&Stmt> = b.stmts.iter().collect();
        let tail_stmt = b.tail.as_ref().map(|t| Stmt {
            kind: StmtKind::Expr((**t).clone()),
            span: t.span,
        });
        all.extend(tail_stmt.as_ref());
        self.braced(
            Braces {
                base,
                open_pos: start,
                close_pos: close,
            },
            &all,
            |s| s.span,
            |_, _| {},
            |_| None,
            |p, i, s, _| match &s.kind {
                // `a` then a line `-b` would read as `a - b`.
                StmtKind::Expr(e) if i > 0 && p.starts_with_minus(e) => {
                    p.punct(e.span.start as usize, "(", Gap::Inline);
                    p.expr(e);
                    p.write(")");
                }
                _ => p.stmt(s),
            },
        );
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { pats, value } => {
                self.write("let ");
                self.commas(pats, |p| p.span().start as usize, |p, pat| p.pattern(pat));
                self.write(" = ");
                self.expr(value);
            }
            StmtKind::Param { names, ty, init } => {
                self.write("param ");
                self.commas(names, |n| n.span.start as usize, |p, n| p.ident(n));
                self.write(": ");
                self.type_expr(ty);
                if let Some(e) = init {
                    self.write(" = ");
                    self.expr(e);
                }
            }
            StmtKind::State { names, ty, init } => {
                self.write("state ");
                self.commas(names, |n| n.span.start as usize, |p, n| p.ident(n));
                if let Some(t) = ty {
                    self.write(": ");
                    self.type_expr(t);
                }
                if let Some(e) = init {
                    self.write(" = ");
                    self.expr(e);
                }
            }
            StmtKind::Assign { target, value } => {
                self.ident(target);
                self.write(" = ");
                self.expr(value);
            }
            StmtKind::Yield(es) => {
                self.write("yield ");
                self.commas(es, |e| e.span.start as usize, |p, e| p.expr(e));
            }
            StmtKind::Expr(e) => self.expr(e),
        }
    }

    fn pattern(&mut self, pat: &Pattern) {
        match pat {
            Pattern::Name(id) => self.ident(id),
            Pattern::Tuple(ps, span) => self.seq(
                Delims::new(span.start as usize, "(", span.end as usize - 1, ")"),
                ps,
                false,
                |p| p.span().start as usize,
                |p, pat| p.pattern(pat),
            ),
        }
    }

    // ---------------------------------------------------------------- expressions

    /// Whether the parser took `e` from parentheses: it then gives `e` the parentheses' span.
    fn parenthesized(&self, e: &Expr) -> bool {
        let start = e.span.start;
        match &e.kind {
            ExprKind::Tuple(_) => false,
            ExprKind::Binary { lhs, .. } | ExprKind::Pipe { lhs, .. } => start < lhs.span.start,
            ExprKind::Range { lo, .. } => start < lo.span.start,
            ExprKind::Call(call) => start < call.callee.span.start,
            ExprKind::Member(member) => start < member.base.span.start,
            _ => self.src.as_bytes().get(start as usize) == Some(&b'('),
        }
    }

    fn starts_with_minus(&self, e: &Expr) -> bool {
        if self.parenthesized(e) {
            return false;
        }
        match &e.kind {
            ExprKind::Unary { op: UnOp::Neg, .. } => true,
            ExprKind::Binary { lhs: first, .. }
            | ExprKind::Pipe { lhs: first, .. }
            | ExprKind::Range { lo: first, .. } => self.starts_with_minus(first),
            ExprKind::Call(call) => self.starts_with_minus(&call.callee),
            ExprKind::Member(member) => self.starts_with_minus(&member.base),
            _ => false,
        }
    }

    fn expr(&mut self, e: &Expr) {
        if self.parenthesized(e) {
            self.punct(e.span.start as usize, "(", Gap::Inline);
            self.expr_inner(e);
            self.punct(e.span.end as usize - 1, ")", Gap::Inline);
        } else {
            self.expr_inner(e);
        }
    }

    fn expr_inner(&mut self, e: &Expr) {
        let start = e.span.start as usize;
        match &e.kind {
            ExprKind::Number { .. } | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Training => {
                let token = self.token_in(e.span);
                self.leaf(token);
            }
            ExprKind::Name(id) => self.ident(id),
            ExprKind::Member(member) => {
                self.expr(&member.base);
                self.write(".");
                self.ident(&member.field);
            }
            ExprKind::Call(call) => {
                self.expr(&call.callee);
                self.call_args(&call.args, call.args_span);
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                self.expr(lhs);
                self.space_or_break(rhs.span.start as usize, Gap::Soft);
                self.write(op.symbol());
                self.write(" ");
                self.expr(rhs);
            }
            ExprKind::Unary { op, expr } => {
                self.gap(start, Gap::Inline);
                self.write(match op {
                    UnOp::Neg => "-",
                    UnOp::Not => "not ",
                });
                self.expr(expr);
            }
            ExprKind::Pipe { .. } => self.pipe(e),
            ExprKind::Range { lo, hi } => {
                self.expr(lo);
                self.write("..");
                self.expr(hi);
            }
            ExprKind::Tuple(items) => self.seq(
                Delims::new(start, "(", e.span.end as usize - 1, ")"),
                items,
                items.len() == 1,
                |e| e.span.start as usize,
                |p, e| p.expr(e),
            ),
            ExprKind::List(items) => self.seq(
                Delims::new(start, "[", e.span.end as usize - 1, "]"),
                items,
                false,
                |item| match item {
                    ListItem::Expr(e) => e.span.start as usize,
                    ListItem::Spread(id) => id.span.start as usize - 2,
                },
                |p, item| match item {
                    ListItem::Expr(e) => p.expr(e),
                    ListItem::Spread(id) => {
                        p.gap(id.span.start as usize - 2, Gap::Inline);
                        p.write("..");
                        p.ident(id);
                    }
                },
            ),
            ExprKind::Closure { params, body } => {
                self.gap(start, Gap::Inline);
                self.write("|");
                self.commas(params, |p| p.span().start as usize, |p, pat| p.pattern(pat));
                self.write("| ");
                self.expr(body);
            }
            ExprKind::If(if_) => {
                let If {
                    cond,
                    then,
                    otherwise,
                } = &**if_;
                self.gap(start, Gap::Inline);
                self.write("if ");
                self.expr(cond);
                self.write(" ");
                self.block(then);
                if let Some(o) = otherwise {
                    self.write(" else ");
                    self.expr(o);
                }
            }
            ExprKind::Scan(scan) => {
                let Scan {
                    args,
                    args_span,
                    params,
                    body,
                } = &**scan;
                self.gap(start, Gap::Inline);
                self.write("scan");
                self.call_args(args, *args_span);
                self.write(" |");
                self.commas(params, |p| p.span().start as usize, |p, pat| p.pattern(pat));
                self.write("| ");
                self.block(body);
            }
            ExprKind::Block(b) => self.block(b),
        }
    }

    /// The span of the literal token inside `span`, which may include parentheses around it.
    fn token_in(&self, span: Span) -> Span {
        let bytes = self.src.as_bytes();
        let end = span.end as usize;
        let mut i = span.start as usize;
        while i < end {
            match bytes[i] {
                b'(' | b' ' | b'\t' | b'\r' | b'\n' => i += 1,
                b'#' => i = self.src[i..end].find('\n').map_or(end, |n| i + n),
                _ => break,
            }
        }
        let mut j = i;
        if bytes.get(i) == Some(&b'"') {
            j += 1;
            while j < end && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(end);
        } else {
            while j < end && !matches!(bytes[j], b')' | b' ' | b'\t' | b'\r' | b'\n' | b'#') {
                j += 1;
            }
        }
        Span::new(span.file, i, j)
    }

    fn call_args(&mut self, args: &[Arg], span: Span) {
        self.seq(
            Delims::new(span.start as usize, "(", span.end as usize - 1, ")"),
            args,
            false,
            |a| a.span.start as usize,
            |p, a| {
                if let Some(n) = &a.name {
                    p.ident(n);
                    p.write(": ");
                }
                p.expr(&a.value);
            },
        );
    }

    /// `a |> f |> g`: a break before the first `|>` indents the rest by one level; otherwise the
    /// later `|>` that start lines align with the first.
    fn pipe(&mut self, e: &Expr) {
        let mut stages = Vec::new();
        let mut head = e;
        while let ExprKind::Pipe { lhs, rhs } = &head.kind {
            if std::ptr::eq(head, e) || !self.parenthesized(head) {
                stages.push(&**rhs);
                head = lhs;
            } else {
                break;
            }
        }
        stages.reverse();
        self.expr(head);
        let saved = self.indent;
        for (i, rhs) in stages.iter().enumerate() {
            let broke = self.gap(rhs.span.start as usize, Gap::Soft);
            if !broke {
                self.write(" ");
                if i == 0 {
                    self.indent = self.col();
                }
            }
            self.write("|> ");
            self.expr(rhs);
        }
        self.indent = saved;
    }
}

fn data_stmt_span(s: &DataStmt) -> Span {
    match s {
        DataStmt::Source { span, .. }
        | DataStmt::Field { span, .. }
        | DataStmt::Split { span, .. } => *span,
        DataStmt::Setting(s) => s.span,
    }
}

fn train_stmt_span(s: &TrainStmt) -> Span {
    match s {
        TrainStmt::Let(s) => s.span,
        TrainStmt::Phase { span, .. }
        | TrainStmt::Update { span, .. }
        | TrainStmt::Constrain { span, .. } => *span,
        TrainStmt::Setting(s) => s.span,
    }
}

/// Trailing comments on consecutive lines start in one column, two spaces after the longest code.
fn align_trailing_comments(lines: &mut [Line]) {
    let mut i = 0;
    while i < lines.len() {
        if lines[i].comment.is_none() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < lines.len() && lines[j].comment.is_some() {
            j += 1;
        }
        let column = lines[i..j]
            .iter()
            .map(|l| l.code.chars().count())
            .max()
            .unwrap_or(0)
            + 2;
        for l in &mut lines[i..j] {
            let pad = column - l.code.chars().count();
            l.code.push_str(&" ".repeat(pad));
        }
        i = j;
    }
}

//! The one diagnostic type of the compiler, and its renderers: ariadne for terminals, JSON for
//! tools. Every stage reports problems as `Diagnostic` values; none prints.

pub mod codes;
mod explain;

use crate::source::{FileId, SourceMap, Span};
use ariadne::{Color, Config, IndexType, Label, Report, ReportKind};
use serde::Serialize;
use std::io::Write;

pub use explain::explain;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagLabel {
    pub span: Span,
    pub message: String,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// `E0201`, `W0001`: stable, documented by `nnlc explain`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<DiagLabel>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// The main location: what the message is about.
    pub fn with_primary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(DiagLabel {
            span,
            message: message.into(),
            primary: true,
        });
        self
    }

    /// A related location, such as where a conflicting dimension was bound.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(DiagLabel {
            span,
            message: message.into(),
            primary: false,
        });
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    pub fn primary_span(&self) -> Option<Span> {
        self.labels
            .iter()
            .find(|l| l.primary)
            .or(self.labels.first())
            .map(|l| l.span)
    }
}

/// Sorts by file and position, errors before warnings at the same place, and drops exact repeats.
pub fn sort_and_dedup(diags: &mut Vec<Diagnostic>) {
    diags.sort_by_key(|d| {
        (
            d.primary_span().map(|s| (s.file, s.start, s.end)),
            d.severity,
        )
    });
    diags.dedup();
}

/// Renders diagnostics for a terminal. `color` is false for pipes, files and `NO_COLOR`.
pub fn render(sources: &SourceMap, diags: &[Diagnostic], color: bool) -> String {
    let mut out = Vec::new();
    for d in diags {
        render_one(sources, d, color, &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn render_one(sources: &SourceMap, d: &Diagnostic, color: bool, out: &mut Vec<u8>) {
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    let Some(primary) = d.primary_span() else {
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            severity_word(d.severity),
            d.code,
            d.message
        );
        for n in &d.notes {
            let _ = writeln!(out, "  = note: {n}");
        }
        if let Some(h) = &d.help {
            let _ = writeln!(out, "  = help: {h}");
        }
        return;
    };
    let file_name = |s: Span| sources.file(s.file).name.clone();
    // ariadne starts a new section whenever a label's line is above the previous label's, and
    // then heads that section with the primary position again. Ordering the labels by file
    // (the primary's first) and position gives one section per file, each headed correctly.
    let mut file_order: Vec<FileId> = vec![primary.file];
    for l in &d.labels {
        if !file_order.contains(&l.span.file) {
            file_order.push(l.span.file);
        }
    }
    let mut labels: Vec<(Span, &DiagLabel)> = d
        .labels
        .iter()
        .map(|l| (trimmed(sources, l.span), l))
        .collect();
    labels.sort_by_key(|(s, _)| {
        let rank = file_order.iter().position(|f| *f == s.file);
        (rank, s.end, s.start)
    });
    // Character offsets, not bytes: ariadne heads the sections of other files with a label's
    // offset read in whichever unit is configured, and only characters are read consistently.
    let chars = |s: Span| {
        let text = &sources.file(s.file).text;
        let at = |b: u32| {
            text.char_indices()
                .take_while(|(i, _)| *i < b as usize)
                .count()
        };
        at(s.start)..at(s.end)
    };
    let primary = trimmed(sources, primary);
    let mut report = Report::build(kind, (file_name(primary), chars(primary)))
        .with_code(d.code)
        .with_message(&d.message)
        .with_config(
            Config::default()
                .with_color(color)
                .with_index_type(IndexType::Char),
        );
    for (order, (span, l)) in labels.iter().enumerate() {
        let color_of = if l.primary { Color::Red } else { Color::Blue };
        let mut label = Label::new((file_name(*span), chars(*span)))
            .with_message(&l.message)
            .with_order(order as i32);
        if color {
            label = label.with_color(color_of);
        }
        report = report.with_label(label);
    }
    for n in &d.notes {
        report = report.with_note(n);
    }
    if let Some(h) = &d.help {
        report = report.with_help(h);
    }
    let files: Vec<(String, String)> = file_order
        .iter()
        .map(|f| {
            let file = sources.file(*f);
            (file.name.clone(), file.text.clone())
        })
        .collect();
    let cache = ariadne::sources(files);
    let _ = report.finish().write(cache, &mut *out);
}

/// The span without the whitespace (and line breaks) at its ends, so that a label underlines
/// only text: a statement's span may run up to the next line. A span of nothing but whitespace
/// (an error at the end of a line) is kept as it is.
fn trimmed(sources: &SourceMap, span: Span) -> Span {
    let text = &sources.file(span.file).text;
    let Some(inner) = text.get(span.range()) else {
        return span;
    };
    let body = inner.trim_start();
    if body.is_empty() {
        return span;
    }
    let start = span.start as usize + (inner.len() - body.len());
    let end = start + body.trim_end().len();
    Span::new(span.file, start, end)
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    file: &'a str,
    start: u32,
    end: u32,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    message: &'a str,
    primary: bool,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    severity: Severity,
    message: &'a str,
    labels: Vec<JsonLabel<'a>>,
    notes: &'a [String],
    help: Option<&'a str>,
}

/// One JSON object per line (JSON Lines), positions as byte offsets and 1-based line/column.
pub fn render_json(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        let labels = d
            .labels
            .iter()
            .map(|l| {
                let span = trimmed(sources, l.span);
                let (line, column) = sources.line_col(span.file, span.start as usize);
                let (end_line, end_column) = sources.line_col(span.file, span.end as usize);
                JsonLabel {
                    file: &sources.file(span.file).name,
                    start: span.start,
                    end: span.end,
                    line,
                    column,
                    end_line,
                    end_column,
                    message: &l.message,
                    primary: l.primary,
                }
            })
            .collect();
        let json = JsonDiagnostic {
            code: d.code,
            severity: d.severity,
            message: &d.message,
            labels,
            notes: &d.notes,
            help: d.help.as_deref(),
        };
        out.push_str(&serde_json::to_string(&json).expect("diagnostics serialize"));
        out.push('\n');
    }
    out
}

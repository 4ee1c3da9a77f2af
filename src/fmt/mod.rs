//! `nnlc fmt`: the canonical layout of `.nnl` files, printed from the AST.
//!
//! The style (docs/language.md, "Formatting"): two-space indentation, one statement per line,
//! canonical spacing inside lines. Line breaks inside expressions are the author's: a break
//! before `|>` or a binary operator, or after a comma, is kept (with a canonical indentation);
//! other whitespace is not. Comments are not in the AST (the grammar skips them), so they are
//! collected from the text and printed where they fall between the tokens around them.
//! Consecutive `name = …` lines of data and train blocks (and `name in …` of search blocks)
//! align their `=`, and trailing comments on consecutive lines align.

mod print;

use crate::diag::Diagnostic;
use crate::source::FileId;
use crate::syntax::ast::Def;

/// A `#` comment: its byte range, from `#` to the end of the line (without the newline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comment {
    pub start: usize,
    pub end: usize,
}

/// The comments of a file. A `#` inside a string is not a comment.
pub fn comments(text: &str) -> Vec<Comment> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"' | b'\n') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'#') => {
                let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                out.push(Comment { start: i, end });
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Formats a file. Refuses (returning the syntax errors) when it does not parse.
pub fn format(text: &str) -> Result<String, Vec<Diagnostic>> {
    let (module, diags) = crate::syntax::parse(FileId(0), text);
    if !diags.is_empty() {
        return Err(diags);
    }
    let comments = comments(text);
    let formatted = print::module(text, &comments, &module);
    // A byte-order mark stays: the editor that wrote it expects it back.
    Ok(match text.strip_prefix(crate::syntax::BOM) {
        Some(_) => format!("{}{formatted}", crate::syntax::BOM),
        None => formatted,
    })
}

/// A definition's header as the formatter prints it, on one logical line and without its body:
/// `layer Dense(units: int, …)(x: f32[..S, N]) -> f32[..S, units]`. Used for hovers and
/// completions. `text` is the file the definition was parsed from.
pub fn signature(text: &str, def: &Def) -> String {
    print::signature(text, def)
}

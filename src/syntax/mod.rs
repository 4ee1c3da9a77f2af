//! Syntax: `.nnl` text → AST with byte spans, plus syntax diagnostics in plain words.
//!
//! Recovery: when the whole file does not parse, it is cut at every line that starts a top-level
//! item (`layer`, `model`, `train`, …) and each piece is parsed alone, so one mistake per item is
//! reported and the items that do parse are kept for the later stages.

pub mod ast;
mod errors;
pub mod finetune;
mod lint;
pub mod overrides;
mod packed;
mod parse;
pub mod symbol;

use crate::diag::Diagnostic;
use crate::source::FileId;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/nnl.pest"]
pub(crate) struct NnlParser;

/// How deeply constructs may nest: brackets, blocks, and the operators of a chain (`a + b + c`
/// nests two deep). Every stage walks the syntax tree recursively, so this bounds their stack:
/// at this depth, parsing, checking, lowering and formatting together use well under 2 MiB in
/// a release build (`tests/hostile.rs` runs them on a thread of that size).
pub const MAX_NESTING: usize = 256;

/// The UTF-8 byte-order mark that Windows tools put at the start of text files.
pub const BOM: char = '\u{feff}';

/// Parses one file. Always returns a module (possibly partial) and the syntax errors found.
/// A byte-order mark at the start is skipped; spans stay offsets into `text`.
///
/// The file is parsed item by item (cut at the lines that start an item), so that pest's
/// token queue — tens of bytes per rule matched — holds one item at a time, never the whole
/// file. A piece that ends inside an item (a line of a body that happens to start with `data `)
/// is joined to the next piece and parsed again.
pub fn parse(file: FileId, text: &str) -> (ast::Module, Vec<Diagnostic>) {
    let start = if text.starts_with(BOM) {
        BOM.len_utf8()
    } else {
        0
    };
    let starts = item_starts(text, start);
    let piece = |i: usize| {
        let (from, to) = (starts[i], starts[i + 1]);
        let chunk = &text[from..to];
        if let Some(at) = errors::too_deep_bracket(chunk) {
            return Piece::TooDeep(from + at);
        }
        match NnlParser::parse(Rule::file, chunk) {
            Ok(mut pairs) => Piece::Parsed(parse::module(
                file,
                text,
                from,
                pairs.next().expect("file pair"),
            )),
            Err(e) => Piece::Failed(Box::new(e)),
        }
    };
    // Pieces are parsed a batch at a time, a piece per thread in large files (the pieces are
    // independent), and their items moved into one list sized once: the items of a large file
    // are most of its memory, and holding every piece's result before joining them, or growing
    // the list by doubling, would hold them twice.
    let count = starts.len() - 1;
    let parallel = text.len() > PARALLEL_FROM;
    let mut items = Vec::with_capacity(count);
    let mut diags = Vec::new();
    let mut broken = Vec::new();
    // Pieces before this one were joined to an earlier piece that was cut inside an item.
    let mut joined_until = 0;
    for batch in (0..count).step_by(BATCH_PIECES) {
        let range = batch..count.min(batch + BATCH_PIECES);
        let pieces: Vec<Piece> = if parallel {
            use rayon::prelude::*;
            range.clone().into_par_iter().map(piece).collect()
        } else {
            range.clone().map(piece).collect()
        };
        for (i, p) in range.zip(pieces) {
            if i < joined_until {
                continue;
            }
            let (from, to) = (starts[i], starts[i + 1]);
            let (module, d) = match p {
                Piece::Parsed(parsed) => parsed,
                Piece::TooDeep(at) => {
                    diags.push(errors::too_deep(file, at));
                    broken.extend(item_name(&text[from..to]));
                    continue;
                }
                Piece::Failed(error) => match join_cut_item(file, text, &starts, i + 1, &error) {
                    Some((joined, end)) => {
                        joined_until = end;
                        joined
                    }
                    None => {
                        diags.push(errors::describe(file, text, from, &error));
                        broken.extend(item_name(&text[from..to]));
                        continue;
                    }
                },
            };
            items.extend(module.items);
            broken.extend(module.broken);
            diags.extend(d);
        }
    }
    (ast::Module { items, broken }, diags)
}

/// Files larger than this are parsed on several threads.
const PARALLEL_FROM: usize = 64 * 1024;

/// How many pieces are parsed before their items are moved into the file's list.
const BATCH_PIECES: usize = 256;

/// One piece of a file, parsed alone.
/// A piece's items and the errors of those nested too deeply.
type Parsed = (ast::Module, Vec<Diagnostic>);

enum Piece {
    Parsed(Parsed),
    /// Nested deeper than [`MAX_NESTING`] at this offset: not given to pest at all.
    TooDeep(usize),
    Failed(Box<pest::error::Error<Rule>>),
}

/// Where the pieces of `text[start..]` begin (each at a line that starts an item), and its end.
fn item_starts(text: &str, start: usize) -> Vec<usize> {
    let mut starts = vec![start];
    let mut offset = start;
    for line in text[start..].split_inclusive('\n') {
        if offset > start && starts_item(line) {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts.push(text.len());
    starts
}

/// How many following pieces a piece that fails at its very end may be joined with.
const MAX_JOINED: usize = 8;

/// When the piece ending at `starts[next]` failed only because its text ended (an item cut at
/// a line inside it), the items of that piece joined with the following ones, and the index of
/// the first piece after them.
fn join_cut_item(
    file: FileId,
    text: &str,
    starts: &[usize],
    next: usize,
    error: &pest::error::Error<Rule>,
) -> Option<(Parsed, usize)> {
    let from = starts[next - 1];
    let at_end = |e: &pest::error::Error<Rule>, to: usize| {
        let pos = match e.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((p, _)) => p,
        };
        text[from + pos.min(to - from)..to].trim().is_empty()
    };
    if !at_end(error, starts[next]) {
        return None;
    }
    for end in next + 1..starts.len().min(next + 1 + MAX_JOINED) {
        let chunk = &text[from..starts[end]];
        if errors::too_deep_bracket(chunk).is_some() {
            return None;
        }
        match NnlParser::parse(Rule::file, chunk) {
            Ok(mut pairs) => {
                let parsed = parse::module(file, text, from, pairs.next().expect("file pair"));
                return Some((parsed, end));
            }
            Err(e) if at_end(&e, starts[end]) => {}
            Err(_) => return None,
        }
    }
    None
}

const ITEM_KEYWORDS: &[&str] = &[
    "use",
    "data",
    "model",
    "layer",
    "fn",
    "optimizer",
    "schedule",
    "constraint",
    "train",
    "search",
    // Not nnl: a Python `def` or `class` is cut off as an item of its own, so that the mistake
    // stays inside it instead of breaking the item above.
    "def",
    "class",
];

fn starts_item(line: &str) -> bool {
    ITEM_KEYWORDS.iter().any(|kw| {
        line.strip_prefix(kw)
            .is_some_and(|rest| rest.starts_with([' ', '\t']) || rest.is_empty())
    })
}

/// The name an item chunk defines (`layer Foo(…` → `Foo`), read without parsing.
fn item_name(chunk: &str) -> Option<String> {
    let mut words = chunk
        .trim_start()
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty());
    let kw = words.next()?;
    let defines = [
        "data",
        "model",
        "layer",
        "fn",
        "optimizer",
        "schedule",
        "constraint",
        "def",
        "class",
    ];
    defines
        .contains(&kw)
        .then(|| words.next().map(str::to_string))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of a module's definitions, in order.
    fn def_names(module: &ast::Module) -> Vec<String> {
        module
            .items
            .iter()
            .filter_map(|item| match item {
                ast::Item::Def(d) => Some(d.name.name.to_string()),
                _ => None,
            })
            .collect()
    }

    /// Definitions that parsed only by accident are set aside wherever they are among the
    /// others, each with its error, and the others kept in order.
    #[test]
    fn misparsed_definitions_are_set_aside_in_place() {
        let mut text = String::new();
        for i in 0..2000 {
            let body = match i % 500 {
                7 => "return a".to_string(),
                300 => "a [0]".to_string(),
                _ => "a".to_string(),
            };
            text.push_str(&format!("fn f{i}(a: int) -> int {{\n  {body}\n}}\n"));
        }
        let (module, diags) = parse(FileId(0), &text);
        assert_eq!(diags.len(), 8, "{diags:?}");
        let mut expected_broken: Vec<String> = (0..2000)
            .filter(|i| [7, 300].contains(&(i % 500)))
            .map(|i| format!("f{i}"))
            .collect();
        let mut broken = module.broken.clone();
        broken.sort();
        expected_broken.sort();
        assert_eq!(broken, expected_broken);
        let kept = def_names(&module);
        let expected_kept: Vec<String> = (0..2000)
            .filter(|i| ![7, 300].contains(&(i % 500)))
            .map(|i| format!("f{i}"))
            .collect();
        assert_eq!(kept, expected_kept);
    }

    /// An item cut at a line inside it (`layer = a` starts like a layer) is joined to the next
    /// piece even when that piece is parsed in the next batch.
    #[test]
    fn an_item_cut_across_batches_is_joined() {
        for cut_at in [BATCH_PIECES - 2, BATCH_PIECES - 1, BATCH_PIECES] {
            let mut text = String::new();
            for i in 0..cut_at {
                text.push_str(&format!("fn f{i}(a: int) -> int {{\n  a\n}}\n"));
            }
            text.push_str("fn g(a: int) -> int {\nlayer = a\n  layer\n}\n");
            for i in 0..BATCH_PIECES {
                text.push_str(&format!("fn h{i}(a: int) -> int {{\n  a\n}}\n"));
            }
            let (module, diags) = parse(FileId(0), &text);
            assert!(diags.is_empty(), "{diags:?}");
            assert_eq!(module.items.len(), cut_at + 1 + BATCH_PIECES);
            let names = def_names(&module);
            assert_eq!(names[cut_at], "g");
            assert_eq!(names[cut_at + 1], "h0");
        }
    }
}

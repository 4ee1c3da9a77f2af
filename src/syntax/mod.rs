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
mod parse;

use crate::diag::Diagnostic;
use crate::source::FileId;
use pest::Parser;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/nnl.pest"]
pub(crate) struct NnlParser;

/// Parses one file. Always returns a module (possibly partial) and the syntax errors found.
pub fn parse(file: FileId, text: &str) -> (ast::Module, Vec<Diagnostic>) {
    match NnlParser::parse(Rule::file, text) {
        Ok(mut pairs) => {
            let file_pair = pairs.next().expect("the file rule always yields one pair");
            set_aside_misparsed(parse::module(file, 0, file_pair), text, Vec::new())
        }
        Err(_) => parse_items_separately(file, text),
    }
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

fn parse_items_separately(file: FileId, text: &str) -> (ast::Module, Vec<Diagnostic>) {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > 0 && starts_item(line) {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts.push(text.len());
    let mut items = Vec::new();
    let mut diags = Vec::new();
    let mut broken = Vec::new();
    for w in starts.windows(2) {
        let chunk = &text[w[0]..w[1]];
        match NnlParser::parse(Rule::file, chunk) {
            Ok(mut pairs) => {
                let m = parse::module(file, w[0], pairs.next().expect("file pair"));
                items.extend(m.items);
            }
            Err(e) => {
                diags.push(errors::describe(file, text, w[0], &e));
                broken.extend(item_name(chunk));
            }
        }
    }
    set_aside_misparsed(ast::Module { items, broken }, text, diags)
}

/// Reports the definitions that parsed only by accident (see `lint`) and treats them like
/// items that failed to parse: removed, with their names marked as existing.
fn set_aside_misparsed(
    module: ast::Module,
    text: &str,
    mut diags: Vec<Diagnostic>,
) -> (ast::Module, Vec<Diagnostic>) {
    let mut broken = module.broken;
    let mut items = Vec::new();
    for item in module.items {
        match lint::check_item(&item, text) {
            Some(d) => {
                diags.push(d);
                if let ast::Item::Def(def) = &item {
                    broken.push(def.name.name.clone());
                }
            }
            None => items.push(item),
        }
    }
    (ast::Module { items, broken }, diags)
}

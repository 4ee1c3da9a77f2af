//! `nnlc fmt`: a fixed point on every example, stdlib module and test fixture; keeps every
//! comment; `nnlc check` says the same before and after; a messy file's layout is a snapshot.

mod common;

use nnl::fmt;
use std::path::{Path, PathBuf};

/// Every `.nnl` file of the repository that parses.
fn corpus() -> Vec<(String, String)> {
    let root = common::root();
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [
        "examples",
        "stdlib",
        "tests/valid",
        "tests/diagnostics",
        "tests/fmt",
    ] {
        files.extend(common::nnl_files(&root.join(dir)));
    }
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            (rel(&p), text)
        })
        .filter(|(_, text)| fmt::format(text).is_ok())
        .collect()
}

fn rel(p: &Path) -> String {
    p.strip_prefix(common::root())
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn comment_texts(text: &str) -> Vec<String> {
    let mut out: Vec<String> = fmt::comments(text)
        .iter()
        .map(|c| text[c.start..c.end].trim_end().to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn the_corpus_is_large_enough_to_mean_something() {
    assert!(corpus().len() > 100);
}

#[test]
fn formatting_is_a_fixed_point() {
    for (name, text) in corpus() {
        let once = fmt::format(&text).expect("parses");
        let twice = fmt::format(&once)
            .unwrap_or_else(|d| panic!("{name}: formatted text does not parse: {d:?}\n{once}"));
        assert_eq!(once, twice, "{name}: formatting twice changes the text");
    }
}

#[test]
fn examples_and_stdlib_are_formatted() {
    let root = common::root();
    for dir in ["examples", "stdlib"] {
        for p in common::nnl_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&p).expect("readable");
            let formatted = fmt::format(&text).expect("parses");
            assert!(
                formatted == text,
                "{} is not formatted; run `nnlc fmt {}`",
                rel(&p),
                rel(&p)
            );
        }
    }
}

#[test]
fn formatting_keeps_every_comment() {
    for (name, text) in corpus() {
        let formatted = fmt::format(&text).expect("parses");
        assert_eq!(
            comment_texts(&text),
            comment_texts(&formatted),
            "{name}: comments differ"
        );
    }
}

fn codes_and_messages(out: nnl::CheckOutput) -> Vec<(String, String)> {
    out.diagnostics
        .iter()
        .map(|d| (d.code.to_string(), d.message.clone()))
        .collect()
}

#[test]
fn check_says_the_same_before_and_after_formatting() {
    let loader = common::CwdLoader {
        base: common::root(),
    };
    for (name, text) in corpus() {
        let formatted = fmt::format(&text).expect("parses");
        let before = common::check_path(&common::root().join(&name));
        let after = nnl::check_source(&name, &formatted, &loader);
        assert_eq!(
            codes_and_messages(before),
            codes_and_messages(after),
            "{name}: diagnostics differ after formatting"
        );
    }
}

#[test]
fn a_file_with_syntax_errors_is_refused() {
    let errors = fmt::format("model M( {").expect_err("does not parse");
    assert!(!errors.is_empty());
}

#[test]
fn a_messy_file() {
    let text =
        std::fs::read_to_string(common::root().join("tests/fmt/messy.nnl")).expect("fixture");
    let formatted = fmt::format(&text).expect("parses");
    insta::with_settings!({snapshot_path => "snapshots/fmt", prepend_module_to_snapshot => false, description => text.as_str()}, {
        insta::assert_snapshot!("messy", formatted);
    });
}

#[test]
fn a_statement_that_starts_with_a_minus_keeps_its_meaning() {
    let text = "fn f(a: f32, b: f32) -> f32 { let c = a; -b }\n";
    let formatted = fmt::format(text).expect("parses");
    assert_eq!(
        formatted,
        "fn f(a: f32, b: f32) -> f32 {\n  let c = a\n  (-b)\n}\n"
    );
}

//! The tree-sitter grammar (editors/tree-sitter-nnl), compiled from its committed generated
//! parser with the `cc` crate, against the compiler's own grammar (grammar/nnl.pest):
//!  - every example and stdlib file parses with no ERROR or MISSING node;
//!  - it accepts exactly the texts pest accepts: every .nnl file of the repository, every
//!    ```nnl block of the docs, and thousands of mutations of the examples and the stdlib;
//!  - the queries (highlights, locals, indents) compile, and the highlights capture what they
//!    should on a sample, with no node captured twice.

use pest::Parser as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tree_sitter::{Language, Node, Parser, Query, QueryCursor, StreamingIterator, Tree};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/nnl.pest"]
struct PestNnl;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn language() -> Language {
    tree_sitter_nnl::LANGUAGE.into()
}

fn parse(text: &str) -> Tree {
    let mut parser = Parser::new();
    parser
        .set_language(&language())
        .expect("the generated parser's ABI is supported by the tree-sitter crate");
    parser
        .parse(text, None)
        .expect("tree-sitter returns a tree")
}

/// The first ERROR or MISSING node, as `line:column: what`.
fn first_error(node: Node, text: &str) -> Option<String> {
    if node.is_error() || node.is_missing() {
        let p = node.start_position();
        let what = if node.is_missing() {
            format!("missing {}", node.kind())
        } else {
            let t = &text[node.byte_range()];
            format!("unexpected {:?}", t.chars().take(40).collect::<String>())
        };
        return Some(format!("{}:{}: {what}", p.row + 1, p.column + 1));
    }
    if !node.has_error() {
        return None;
    }
    let mut cursor = node.walk();
    let children: Vec<Node> = node.children(&mut cursor).collect();
    children.into_iter().find_map(|c| first_error(c, text))
}

fn tree_sitter_accepts(text: &str) -> Result<(), String> {
    let tree = parse(text);
    match first_error(tree.root_node(), text) {
        Some(e) => Err(e),
        None if tree.root_node().has_error() => Err("an error somewhere".into()),
        None => Ok(()),
    }
}

fn pest_accepts(text: &str) -> bool {
    PestNnl::parse(Rule::file, text).is_ok()
}

fn nnl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !["target", "node_modules", ".git"].contains(&name.as_str()) {
                nnl_files(&path, out);
            }
        } else if name.ends_with(".nnl") {
            out.push(path);
        }
    }
}

fn examples_and_stdlib() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in ["examples", "stdlib"] {
        nnl_files(&root().join(dir), &mut files);
    }
    files.sort();
    assert!(files.len() >= 15, "examples and stdlib: {files:?}");
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(root()).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn parses_every_example_and_stdlib_file() {
    let mut failures = Vec::new();
    for (name, text) in examples_and_stdlib() {
        if let Err(e) = tree_sitter_accepts(&text) {
            failures.push(format!("{name}:{e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "tree-sitter errors:\n{}",
        failures.join("\n")
    );
}

/// The ```nnl blocks of a markdown file.
fn nnl_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start() == "```nnl" => current = Some((i + 2, String::new())),
            Some(_) if line.trim_start() == "```" => blocks.push(current.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Accepted by tree-sitter exactly when accepted by pest; the cases where they differ.
fn disagreements(cases: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (name, text) in cases {
        let pest = pest_accepts(text);
        let ts = tree_sitter_accepts(text);
        match (pest, ts) {
            (true, Err(e)) => out.push(format!("{name}: pest accepts, tree-sitter: {e}")),
            (false, Ok(())) => out.push(format!("{name}: pest rejects, tree-sitter accepts")),
            _ => {}
        }
    }
    out
}

#[test]
fn accepts_what_the_compiler_accepts_in_every_file_and_doc_block() {
    let mut files = Vec::new();
    nnl_files(&root(), &mut files);
    files.sort();
    let mut cases: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            let name = p.strip_prefix(root()).unwrap().display().to_string();
            (name, std::fs::read_to_string(p).unwrap())
        })
        .collect();
    for doc in ["docs/language.md", "README.md", "examples/README.md"] {
        let path = root().join(doc);
        let Ok(markdown) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (line, text) in nnl_blocks(&markdown) {
            cases.push((format!("{doc}:{line}"), text));
        }
    }
    assert!(cases.len() > 100, "{} cases", cases.len());
    let rejected = cases.iter().filter(|(_, t)| !pest_accepts(t)).count();
    assert!(
        rejected > 0,
        "the corpus should hold some syntax errors too"
    );
    let bad = disagreements(&cases);
    assert!(
        bad.is_empty(),
        "{} of {} texts parsed differently:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

/// A small deterministic generator (xorshift64*), so the mutations are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Token boundaries: runs of word characters, runs of spaces, and single other characters.
fn tokens(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let class = |b: u8| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                0
            } else if b == b' ' || b == b'\t' {
                1
            } else {
                2
            }
        };
        let c = class(bytes[i]);
        let mut j = i + 1;
        if c != 2 {
            while j < bytes.len() && class(bytes[j]) == c {
                j += 1;
            }
        } else {
            while j < bytes.len() && !text.is_char_boundary(j) {
                j += 1;
            }
        }
        out.push((i, j));
        i = j;
    }
    out
}

const INSERTS: &[&str] = &[
    "\n", " ", "(", ")", "[", "]", "{", "}", ",", ";", ":", ".", "..", "|", "|>", "->", "-", "=",
    "==", "<", "^", "@", "#", "\"", "x", "B", "0", "1.5", "1e", "2x", "1.", "let", "fn", "if",
    "else", "param", "state", "scan", "yield", "where", "phase", "update", "with", "split", "of",
    "on", "in", "over", "training", "not", "and", "f32", "f32[B]", "use", "data", "model", "train",
    "search", "maximize", "..S", "t.0", "\n(", " (", "\n[", "\n-",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let toks = tokens(text);
    let (a, b) = toks[rng.below(toks.len())];
    let mut s = String::with_capacity(text.len() + 8);
    match rng.below(4) {
        // delete a token
        0 => {
            s.push_str(&text[..a]);
            s.push_str(&text[b..]);
        }
        // replace a token
        1 => {
            s.push_str(&text[..a]);
            s.push_str(INSERTS[rng.below(INSERTS.len())]);
            s.push_str(&text[b..]);
        }
        // insert before a token
        2 => {
            s.push_str(&text[..a]);
            s.push_str(INSERTS[rng.below(INSERTS.len())]);
            s.push_str(&text[a..]);
        }
        // swap two neighbouring tokens
        _ => {
            let i = toks.iter().position(|&t| t == (a, b)).unwrap();
            if i + 1 < toks.len() {
                let (c, d) = toks[i + 1];
                s.push_str(&text[..a]);
                s.push_str(&text[c..d]);
                s.push_str(&text[a..b]);
                s.push_str(&text[d..]);
            } else {
                s.push_str(text);
            }
        }
    }
    s
}

/// Mutations of small pieces of the examples and the stdlib (an item each): deleted, replaced,
/// inserted and swapped tokens, once or twice.
#[test]
fn accepts_what_the_compiler_accepts_on_mutations() {
    let mut items = Vec::new();
    for (name, text) in examples_and_stdlib() {
        // cut at the lines that start an item, so each case is small
        let mut start = 0;
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let starts_item = !line.starts_with([' ', '\t', '#', '\n', '}', '{', '(']);
            if starts_item && offset > start {
                items.push((name.clone(), text[start..offset].to_string()));
                start = offset;
            }
            offset += line.len();
        }
        items.push((name, text[start..].to_string()));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = Vec::new();
    for (name, item) in &items {
        for k in 0..40 {
            let mut text = mutate(item, &mut rng);
            if k % 3 == 0 {
                text = mutate(&text, &mut rng);
            }
            cases.push((format!("{name} (mutation {k}):\n{text}\n"), text));
        }
    }
    let rejected = cases.iter().filter(|(_, t)| !pest_accepts(t)).count();
    assert!(
        rejected > cases.len() / 4 && rejected < cases.len(),
        "{rejected} of {} mutations rejected",
        cases.len()
    );
    let bad = disagreements(&cases);
    assert!(
        bad.is_empty(),
        "{} of {} mutations parsed differently:\n{}",
        bad.len(),
        cases.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Some statements of the language that pest and tree-sitter must agree on.
#[test]
fn agrees_on_the_tricky_cases() {
    let wrap = |body: &str| format!("fn f(x: f32[B]) -> f32[B] {{\n{body}\n}}\n");
    let bodies = [
        "f(x)",
        "f (x)",
        "f\n(x)",
        "f # c\n(x)",
        "x\n- x",
        "x\n  |> relu",
        "let a = x; let b = a + 1; b",
        "a < b < c",
        "a .. b .. c",
        "x.0.1",
        "x .y",
        "x. y",
        "2x",
        "1e",
        "1e5",
        "1.5e-3",
        "1.x",
        "1..5",
        "1.",
        "-x ^ -2",
        "not not x",
        "|a, (b, c)| a + b",
        "|| 1",
        "if a { b } else if c { d } else { e }",
        "if a { b } else c",
        "let fn = 1",
        "let data = 3; let on = 2; split(x, 4)",
        "let x = [..S, N]",
        "let x = [.. S]",
        "let x = [a ..S]",
        "param w: f32\n[3]",
        "param w: f32 [3]",
        "param w, v: [N] = zeros",
        "state s",
        "x = = y",
        "x == y",
        "scan\n(xs) |a, b| { yield a, b }",
        "{ ; }",
        "\"a\\\"b\"",
        "\"a\nb\"",
        "x |> y + 1",
        "f(a: 1, 2,)",
        "f(a:: 1)",
        "(a,)",
        "()",
        "(a, b,)",
    ];
    let mut cases: Vec<(String, String)> = bodies
        .iter()
        .map(|b| (format!("body {b:?}"), wrap(b)))
        .collect();
    let items = [
        "data d {\n  split val = 0.1 of train, shuffle(seed: 1)\n}\n",
        "data d {\n  split = csv(\"a\")\n  split x, y\n  split: f32 = x\n}\n",
        "data d {\n  split(x, 4)\n}\n",
        "data d {\n  train = idx(\"a\")\n  seed 7; shuffle(seed: 1)\n}\n",
        "train M, N on d {\n  optimizer = adam\n  early_stop (monitor: val.loss)\n  metrics a,\n    b\n}\n",
        "train M on d {\n  early_stop\n  (monitor)\n}\n",
        // pest skips whitespace and comments before a setting's argument list
        "train M on d {\n  early_stop\n  (monitor: val.loss)\n}\n",
        "train M on d {\n  early_stop # c\n  (monitor: val.loss)\n}\n",
        "train M on d {\n  metrics\n  (a), b\n}\n",
        "train M on d {\n  metrics (a), b\n}\n",
        "train M on d {\n  batch # c\n  64\n  seed (1) + 2\n}\n",
        "data d {\n  seed\n  (1)\n}\n",
        "train on on on {\n  loss = x\n}\n",
        "train M on d {\n  update M, N with sgd(lr: 1)\n  constrain M with clip\n}\n",
        "search random() over M on d {\n  lr in [1, 2]\n  in in x\n} maximize val.acc\n",
        "use std.nn.{Dense, Dropout,}\nuse std.ops.*\nuse \"file.nnl\"\n",
        "model M()(x: f32 [B, 4]) -> (f32[B], f32[B])\n  where B > 0 : \"m\", B < 9\n{ x }\n",
        "model M()(x: f32\n[B, 4]) { x }\n",
        "layer L(x: f32[B]) -> f32[B] { x }\n",
        "fn f() { }\n",
        "fn f() {}\nfn g() {}\n",
        "fn f(x: int = 1, y: str = \"a\",) -> int { x }\n",
    ];
    cases.extend(items.iter().map(|i| (format!("item {i:?}"), i.to_string())));
    let bad = disagreements(&cases);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ---------------------------------------------------------------------- queries

fn query(source: &str, name: &str) -> Query {
    Query::new(&language(), source).unwrap_or_else(|e| panic!("queries/{name}: {e}"))
}

#[test]
fn queries_compile() {
    let h = query(tree_sitter_nnl::HIGHLIGHTS_QUERY, "highlights.scm");
    assert!(h.capture_names().contains(&"keyword"));
    query(tree_sitter_nnl::LOCALS_QUERY, "locals.scm");
    query(tree_sitter_nnl::INDENTS_QUERY, "indents.scm");
    // the copies that the CLI and editors read are the ones compiled into the crate
    for name in ["highlights.scm", "locals.scm", "indents.scm"] {
        let path = root().join("editors/tree-sitter-nnl/queries").join(name);
        assert!(path.exists(), "{}", path.display());
    }
}

const SAMPLE: &str = r#"# a comment
use std.nn.{Dense}

data mnist {
  train = idx("images.gz", "labels.gz")
  x: f32[784] = image |> flatten
  split val = 0.1 of train
}

layer Scale(units: int)(x: f32[..S, N]) -> f32[..S, units] where units > 0 : "units" {
  param w: [N, units] = glorot_uniform
  state n = 0
  if training { x @ w } else { cast(x, f32) }
}

model Mlp(hidden: int = 128)(x: f32[B, 784]) -> f32[B, 10] {
  let f = |t| t.0
  x |> Dense(hidden) |> relu |> scale(1e-3)
}

train Mlp on mnist {
  loss = mse(out, y)
  optimizer = adam(lr: 1e-3)
  batch 64
}
"#;

/// Capture names by (text, row) of the captured node; each node is captured once at most.
fn highlights(text: &str) -> BTreeMap<(String, usize, usize), Vec<String>> {
    let q = query(tree_sitter_nnl::HIGHLIGHTS_QUERY, "highlights.scm");
    let tree = parse(text);
    let mut cursor = QueryCursor::new();
    let mut caps = cursor.captures(&q, tree.root_node(), text.as_bytes());
    let mut out: BTreeMap<(String, usize, usize), Vec<String>> = BTreeMap::new();
    while let Some((m, i)) = caps.next() {
        let c = m.captures()[*i];
        let name = q.capture_names()[c.index as usize].to_string();
        if name == "spell" {
            continue;
        }
        let p = c.node.start_position();
        let key = (
            text[c.node.byte_range()].to_string(),
            p.row + 1,
            p.column + 1,
        );
        let names = out.entry(key).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    out
}

#[test]
fn highlights_capture_each_token_class() {
    assert!(
        tree_sitter_accepts(SAMPLE).is_ok(),
        "{:?}",
        tree_sitter_accepts(SAMPLE)
    );
    let caps = highlights(SAMPLE);
    let twice: Vec<_> = caps.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(twice.is_empty(), "nodes captured twice: {twice:?}");
    let line = |n: usize| SAMPLE.lines().nth(n - 1).unwrap();
    let expect = |text: &str, row: usize, nth: usize, capture: &str| {
        let col = line(row)
            .match_indices(text)
            .nth(nth)
            .unwrap_or_else(|| panic!("{text:?} #{nth} not on line {row}"))
            .0
            + 1;
        let got = caps.get(&(text.to_string(), row, col));
        assert_eq!(
            got.map(|v| v[0].as_str()),
            Some(capture),
            "{text:?} at {row}:{col}: {got:?}"
        );
    };
    expect("# a comment", 1, 0, "comment");
    expect("use", 2, 0, "keyword.import");
    expect("Dense", 2, 0, "type");
    expect("data", 4, 0, "keyword.type");
    expect("train", 5, 0, "variable");
    expect("\"images.gz\"", 5, 0, "string");
    expect("f32", 6, 0, "type.builtin");
    expect("784", 6, 0, "number");
    expect("|>", 6, 0, "operator");
    expect("split", 7, 0, "keyword");
    expect("of", 7, 0, "keyword");
    expect("0.1", 7, 0, "number");
    expect("layer", 10, 0, "keyword.type");
    expect("Scale", 10, 0, "type.definition");
    expect("units", 10, 0, "variable.parameter");
    expect("int", 10, 0, "type.builtin");
    expect("..", 10, 0, "operator");
    expect("S", 10, 1, "type.parameter");
    expect("N", 10, 0, "type.parameter");
    expect("->", 10, 0, "operator");
    expect("units", 10, 1, "type.parameter");
    expect("where", 10, 0, "keyword");
    expect("param", 11, 0, "keyword.modifier");
    expect("N", 11, 0, "type.parameter");
    expect("state", 12, 0, "keyword.modifier");
    expect("if", 13, 0, "keyword.conditional");
    expect("training", 13, 0, "constant.builtin");
    expect("@", 13, 0, "operator");
    expect("cast", 13, 0, "function.call");
    expect("f32", 13, 0, "type.builtin");
    expect("B", 16, 0, "type.parameter");
    expect("let", 17, 0, "keyword");
    expect("t", 17, 1, "variable.parameter");
    expect("0", 17, 0, "number");
    expect("Dense", 18, 0, "constructor");
    expect("relu", 18, 0, "function.call");
    expect("1e-3", 18, 0, "number");
    expect("train", 21, 0, "keyword.type");
    expect("on", 21, 0, "keyword");
    expect("loss", 22, 0, "keyword");
    expect("optimizer", 23, 0, "keyword");
    expect("lr", 23, 0, "variable.parameter");
    expect("batch", 24, 0, "keyword");
}

/// No node of the examples or the stdlib is captured by two highlight patterns (editors differ on
/// which one would win), and every file gets keywords, types, numbers and comments.
#[test]
fn highlights_capture_each_node_once_in_every_file() {
    for (name, text) in examples_and_stdlib() {
        let caps = highlights(&text);
        let twice: Vec<_> = caps.iter().filter(|(_, v)| v.len() > 1).collect();
        assert!(twice.is_empty(), "{name}: nodes captured twice: {twice:?}");
        for class in ["keyword", "type.builtin", "number", "comment", "operator"] {
            assert!(
                caps.values().any(|v| v[0] == class),
                "{name}: nothing captured as @{class}"
            );
        }
    }
}

/// The tree-sitter corpus (editors/tree-sitter-nnl/test/corpus/*.txt, the format of
/// `tree-sitter test`): each input parses to the expected tree (fields aside).
#[test]
fn corpus_trees() {
    let dir = root().join("editors/tree-sitter-nnl/test/corpus");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    let normalize = |s: &str| -> String {
        s.replace('(', " ( ")
            .replace(')', " ) ")
            .split_whitespace()
            .filter(|w| !w.ends_with(':'))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut count = 0;
    let mut failures = Vec::new();
    for path in entries {
        let text = std::fs::read_to_string(&path).unwrap();
        let is_rule = |l: &str, c: char| l.len() >= 3 && l.chars().all(|x| x == c);
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if !is_rule(lines[i], '=') {
                i += 1;
                continue;
            }
            let name = lines[i + 1].trim();
            let mut j = i + 3;
            let start = j;
            while !is_rule(lines[j], '-') {
                j += 1;
            }
            let input = lines[start..j].join("\n");
            let mut k = j + 1;
            while k < lines.len() && !is_rule(lines[k], '=') {
                k += 1;
            }
            let expected = lines[j + 1..k].join("\n");
            let actual = parse(&input).root_node().to_sexp();
            if normalize(&actual) != normalize(&expected) {
                failures.push(format!(
                    "{name}:\n  expected {expected}\n  actual   {actual}"
                ));
            }
            assert!(
                pest_accepts(&input),
                "{}: {name}: the compiler rejects it",
                path.display()
            );
            count += 1;
            i = k;
        }
    }
    assert!(count >= 10, "{count} corpus entries");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

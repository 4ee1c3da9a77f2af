//! The editor support in editors/: runs `editors/test.sh --offline` (the TextMate grammar tests
//! with vscode-tmgrammar-test, the VS Code extension's start of `nnlc lsp` with node's test
//! runner, and the headless Vim test) and checks that the VS Code extension's
//! manifest and the whole-example grammar test agree with the rest of the repository.
//!
//! Nothing is installed here: `.ci/run` runs `npm ci` in editors/vscode (and installs vim when it
//! is missing) before `cargo test`. Without them this test fails and says what to install.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn textmate_and_vim_tests_pass() {
    let script = root().join("editors/test.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--offline")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "editors/test.sh --offline failed ({}); it needs `npm ci` in editors/vscode and vim \
         (.ci/run installs both)\n{stdout}\n{stderr}",
        out.status
    );
    // every test file ran, and the vim test reported its count
    let tests = std::fs::read_dir(root().join("editors/vscode/tests"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".test.nnl")
        })
        .count();
    assert!(
        tests >= 3,
        "expected the TextMate grammar tests in editors/vscode/tests"
    );
    assert_eq!(
        stdout.matches("run successfuly").count(),
        tests,
        "every editors/vscode/tests/*.test.nnl must run:\n{stdout}"
    );
    assert!(
        stdout.contains("# pass 3") && stdout.contains("# fail 0"),
        "the extension tests (node --test) must run:\n{stdout}"
    );
    assert!(
        stdout.contains("vim syntax test:") && stdout.contains(" 0 failed"),
        "{stdout}"
    );
}

/// editors/vscode/tests/mnist_mlp.test.nnl is examples/mnist_mlp.nnl with assertion lines added.
#[test]
fn whole_example_grammar_test_matches_the_example() {
    let test =
        std::fs::read_to_string(root().join("editors/vscode/tests/mnist_mlp.test.nnl")).unwrap();
    let example = std::fs::read_to_string(root().join("examples/mnist_mlp.nnl")).unwrap();
    let is_assertion = |l: &str| {
        let rest = l.strip_prefix('#').map(str::trim_start);
        rest.is_some_and(|r| r.starts_with('^') || r.starts_with('<'))
    };
    let stripped: Vec<&str> = test
        .lines()
        .skip(1) // the SYNTAX TEST header
        .filter(|l| !is_assertion(l))
        .collect();
    let expected: Vec<&str> = example.lines().collect();
    assert_eq!(
        stripped, expected,
        "mnist_mlp.test.nnl has drifted from examples/mnist_mlp.nnl: update the test file"
    );
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest declares the language, the grammar and the settings that start `nnlc lsp`.
#[test]
fn vscode_manifest_declares_language_grammar_and_server() {
    let dir = root().join("editors/vscode");
    let pkg = json(&dir.join("package.json"));
    let c = &pkg["contributes"];
    assert_eq!(c["languages"][0]["id"], "nnl");
    assert_eq!(c["languages"][0]["extensions"][0], ".nnl");
    let grammar = &c["grammars"][0];
    assert_eq!(grammar["scopeName"], "source.nnl");
    let tm = json(&dir.join(grammar["path"].as_str().unwrap()));
    assert_eq!(tm["scopeName"], "source.nnl");
    let config = json(&dir.join(c["languages"][0]["configuration"].as_str().unwrap()));
    assert_eq!(config["comments"]["lineComment"], "#");
    let props = &c["configuration"]["properties"];
    assert_eq!(props["nnl.server.path"]["default"], "nnlc");
    assert_eq!(
        props["nnl.server.args"]["default"],
        serde_json::json!(["lsp"])
    );
    assert!(pkg["dependencies"]["vscode-languageclient"].is_string());
    assert!(dir.join(pkg["main"].as_str().unwrap()).exists());
    // the lock file pins the test tool and records no download addresses
    let lock = std::fs::read_to_string(dir.join("package-lock.json")).unwrap();
    assert!(lock.contains("\"node_modules/vscode-tmgrammar-test\""));
    assert!(!lock.contains("\"resolved\""));
}

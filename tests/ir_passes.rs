//! File tests for the optimization passes: each `tests/ir/<pass>/*.nnlir` holds a header naming
//! the pass (`# pass: simplify`) and what the case shows, the input graph in the IR's text form,
//! then `# expect:` and the graph the pass must give. `NNL_BLESS=1 cargo test --test ir_passes`
//! rewrites the expected part from what the pass gives (review the diff before committing).
//! Every rule of `simplify` has its file; the input and the output must both verify. The pass
//! `plan` is the JIT's plan of the graph, as `nnlc ir --stage plan` prints it (its buffers, and
//! each step with what it reads and writes).

use nnl::ir::{Graph, text, verify};
use std::path::{Path, PathBuf};

fn tests_ir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ir")
}

/// The rules of `opt::simplify`, each shown by `tests/ir/simplify/<rule>.nnlir`.
const SIMPLIFY_RULES: &[&str] = &[
    "fold_constants",
    "mul_by_one",
    "add_zero",
    "sub_zero",
    "mul_by_zero",
    "div_by_one",
    "neg_neg",
    "log_exp",
    "detach",
    "identity_movement",
    "reshape_reshape",
    "permute_identity",
    "permute_permute",
    "broadcast_broadcast",
    "select_constant",
    "select_same_branches",
    "scan_body",
];

const EXPECT: &str = "# expect:";

/// What the pass makes of `g`, as text: the graph it gives (which must verify), or the plan.
fn run_pass(pass: &str, g: &Graph) -> Result<String, String> {
    let out = match pass {
        "simplify" => nnl::opt::simplify(g),
        "cse" => nnl::opt::cse(g),
        "dce" => nnl::opt::dce(g),
        "hoist_scan_permutes" => nnl::opt::hoist_scan_permutes(g),
        "transpose_products" => nnl::opt::transpose_products(g),
        "concat_pads" => nnl::opt::concat_pads(g),
        "optimize" => nnl::opt::optimize(g).0,
        "plan" => return Ok(nnl::jit::compile(g)?.describe()),
        other => return Err(format!("unknown pass `{other}`")),
    };
    verify(&out).map_err(|e| format!("the output does not verify: {e}"))?;
    Ok(text::print(&out))
}

/// Runs one file; returns its text with the expected part replaced by what the pass gave, and
/// whether that differs from what the file expects.
fn run_file(path: &Path) -> Result<(String, bool), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (input, expected) = text
        .split_once(&format!("{EXPECT}\n"))
        .ok_or(format!("no `{EXPECT}` line"))?;
    let pass = input
        .lines()
        .find_map(|l| l.strip_prefix("# pass: "))
        .ok_or("no `# pass: NAME` header")?
        .trim();
    let graph_text: String = input
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let g = text::parse(&graph_text).map_err(|e| format!("the input does not parse: {e}"))?;
    verify(&g).map_err(|e| format!("the input does not verify: {e}"))?;
    let printed = run_pass(pass, &g)?;
    let differs = printed != expected;
    Ok((format!("{input}{EXPECT}\n{printed}"), differs))
}

#[test]
fn pass_files_give_their_expected_graphs() {
    let bless = std::env::var_os("NNL_BLESS").is_some();
    let dir = tests_ir();
    let mut failures = Vec::new();
    let mut count = 0;
    for pass_dir in std::fs::read_dir(&dir).expect("tests/ir") {
        let pass_dir = pass_dir.expect("entry").path();
        let mut files: Vec<_> = std::fs::read_dir(&pass_dir)
            .expect("a pass directory")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "nnlir"))
            .collect();
        files.sort();
        for path in files {
            count += 1;
            let name = path
                .strip_prefix(&dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            match run_file(&path) {
                Ok((blessed, true)) if bless => {
                    std::fs::write(&path, blessed).expect("write the blessed file")
                }
                Ok((blessed, true)) => failures.push(format!(
                    "{name}: the pass gives\n{}",
                    blessed.split(EXPECT).nth(1).unwrap_or_default()
                )),
                Ok((_, false)) => {}
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    assert!(count > 0, "no pass files");
    assert!(
        failures.is_empty(),
        "{}\n(NNL_BLESS=1 rewrites the expectations)",
        failures.join("\n\n")
    );
}

#[test]
fn every_simplification_rule_cse_dce_and_the_plan_have_a_file() {
    let dir = tests_ir();
    for rule in SIMPLIFY_RULES {
        let path = dir.join(format!("simplify/{rule}.nnlir"));
        assert!(path.exists(), "no file test for the rule `{rule}`");
    }
    for pass in [
        "cse",
        "dce",
        "hoist_scan_permutes",
        "transpose_products",
        "concat_pads",
        "optimize",
        "plan",
    ] {
        let files = std::fs::read_dir(dir.join(pass)).map_or(0, |d| d.count());
        assert!(files > 0, "no file test for `{pass}`");
    }
}

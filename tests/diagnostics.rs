//! One file per diagnostic under tests/diagnostics/; each rendered diagnostic is an insta
//! snapshot (source, then what the user sees), reviewed as a user would read it.

mod common;

use std::collections::BTreeSet;

#[test]
fn every_diagnostic_fixture_matches_its_snapshot() {
    let dir = common::root().join("tests/diagnostics");
    let files = common::nnl_files(&dir);
    let mut codes = BTreeSet::new();
    for path in &files {
        let out = common::check_path(path);
        let name = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        assert!(
            !out.diagnostics.is_empty(),
            "{name}: expected a diagnostic, got none"
        );
        let rendered = nnl::diag::render(&out.sources, &out.diagnostics, false);
        for d in &out.diagnostics {
            codes.insert(d.code);
            assert!(
                nnl::diag::explain(d.code).is_some(),
                "{name}: code {} has no `nnlc explain` text",
                d.code
            );
        }
        let source = std::fs::read_to_string(path).expect("fixture");
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(dir.join("snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_description(source);
        settings.bind(|| insta::assert_snapshot!(name, rendered));
    }
    assert!(
        files.len() >= 30,
        "only {} diagnostic fixtures",
        files.len()
    );
    assert!(
        codes.len() >= 30,
        "only {} distinct codes: {codes:?}",
        codes.len()
    );
}

#[test]
fn json_output_has_codes_positions_and_messages() {
    let path = common::root().join("tests/diagnostics/matmul_inner_dim.nnl");
    let out = common::check_path(&path);
    let json = nnl::diag::render_json(&out.sources, &out.diagnostics);
    let first: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("a line")).expect("valid JSON");
    assert_eq!(first["code"], "E0201");
    assert_eq!(first["severity"], "error");
    let label = &first["labels"][0];
    assert!(label["line"].as_u64().expect("line") > 0);
    assert!(
        label["file"]
            .as_str()
            .expect("file")
            .ends_with("matmul_inner_dim.nnl")
    );
}

/// Every code of `diag::codes` has a long explanation and a row in the language guide's table,
/// and the table lists no other code.
#[test]
fn every_code_is_explained_at_length_and_listed_in_the_docs() {
    let docs = std::fs::read_to_string(common::root().join("docs/language.md")).expect("docs");
    let rows: BTreeSet<&str> = docs
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|c| c.len() == 5 && (c.starts_with('E') || c.starts_with('W')))
        .collect();
    for code in nnl::diag::codes::ALL {
        let text = nnl::diag::explain(code).unwrap_or_else(|| panic!("{code} is not explained"));
        assert!(text.len() > 30, "{code}: explanation too short");
        assert!(rows.contains(code), "{code} has no row in docs/language.md");
    }
    let all: BTreeSet<&str> = nnl::diag::codes::ALL.iter().copied().collect();
    assert!(
        rows.is_subset(&all),
        "docs/language.md lists unknown codes: {:?}",
        rows.difference(&all).collect::<Vec<_>>()
    );
}

/// A check that keeps less (`nnlc check` keeps neither the types of expressions, nor the
/// summaries unless `--summary`, nor the facts lowering reads) reports exactly what a check
/// keeping everything reports, on every fixture and example; with the summaries kept, they
/// are the same too.
#[test]
fn a_check_keeping_less_reports_what_a_full_check_reports() {
    use nnl::check::Keep;
    let root = common::root();
    let mut files = common::nnl_files(&root.join("tests/diagnostics"));
    files.extend(common::nnl_files(&root.join("tests/valid")));
    files.extend(common::nnl_files(&root.join("examples")));
    let summaries_only = Keep {
        summaries: true,
        ..Keep::DIAGNOSTICS
    };
    for path in &files {
        let rel = path.strip_prefix(&root).unwrap_or(path).to_string_lossy();
        let text = std::fs::read_to_string(path).expect("fixture");
        let loader = common::CwdLoader { base: root.clone() };
        let check = |keep| nnl::check_program_keeping(&rel, text.as_str(), &loader, keep).0;
        let all = check(Keep::ALL);
        let json = |out: &nnl::CheckOutput| nnl::diag::render_json(&out.sources, &out.diagnostics);
        for keep in [Keep::DIAGNOSTICS, summaries_only] {
            let less = check(keep);
            assert_eq!(json(&less), json(&all), "{rel}, keeping {keep:?}");
            assert_eq!(less.types.iter().count(), 0, "{rel}: types kept");
            if keep.summaries {
                assert_eq!(less.summaries, all.summaries, "{rel}: summaries differ");
            } else {
                assert!(less.summaries.is_empty(), "{rel}: summaries kept");
            }
        }
    }
}

//! Every example and every standard-library module checks cleanly; each example's typed listing
//! (models, layer instances with output shapes and parameters) is an insta snapshot.

mod common;

use std::fmt::Write;

#[test]
fn examples_check_without_errors_or_warnings() {
    for path in common::nnl_files(&common::root().join("examples")) {
        let out = common::check_path(&path);
        let rendered = nnl::diag::render(&out.sources, &out.diagnostics, false);
        assert!(
            out.diagnostics.is_empty(),
            "{}:\n{rendered}",
            path.display()
        );
    }
}

#[test]
fn stdlib_modules_check_without_errors_or_warnings() {
    for (module, file, text) in nnl::resolve::STDLIB {
        let out = nnl::check_source(file, text, &nnl::fs::DiskLoader);
        let rendered = nnl::diag::render(&out.sources, &out.diagnostics, false);
        assert!(out.diagnostics.is_empty(), "{module}:\n{rendered}");
    }
}

#[test]
fn mnist_mlp_has_the_expected_parameter_count() {
    let out = common::check_path(&common::root().join("examples/mnist_mlp.nnl"));
    let mlp = out
        .summaries
        .iter()
        .find(|s| s.model == "Mlp")
        .expect("Mlp summary");
    assert_eq!(mlp.total, Some(101_770));
    let names: Vec<&str> = mlp.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Mlp.dense_1.w",
            "Mlp.dense_1.b",
            "Mlp.dense_2.w",
            "Mlp.dense_2.b"
        ]
    );
}

fn listing(out: &nnl::CheckOutput) -> String {
    let mut s = String::new();
    for m in &out.summaries {
        s.push_str(&nnl::check::render_summary(m));
        for (name, shape) in &m.params {
            writeln!(s, "  param {name}: {shape}").expect("string write");
        }
        s.push('\n');
    }
    s
}

#[test]
fn example_listings_match_snapshots() {
    let dir = common::root().join("examples");
    for path in common::nnl_files(&dir) {
        let out = common::check_path(&path);
        let name = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(common::root().join("tests/snapshots/examples"));
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!(name, listing(&out)));
    }
}

#[test]
fn valid_programs_check_cleanly() {
    for path in common::nnl_files(&common::root().join("tests/valid")) {
        let out = common::check_path(&path);
        let rendered = nnl::diag::render(&out.sources, &out.diagnostics, false);
        assert!(
            out.diagnostics.is_empty(),
            "{}:\n{rendered}",
            path.display()
        );
    }
}

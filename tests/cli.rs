//! The `nnlc` binary as a user runs it: exit codes, where output goes, and what it says.

mod common;

use std::process::Command;

fn nnlc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(args)
        .current_dir(common::root())
        .env("NO_COLOR", "1")
        .output()
        .expect("nnlc runs")
}

#[test]
fn check_of_all_examples_exits_zero() {
    let mut args = vec!["check"];
    let files: Vec<String> = common::nnl_files(&common::root().join("examples"))
        .iter()
        .map(|p| {
            p.strip_prefix(common::root())
                .expect("inside")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    args.extend(files.iter().map(String::as_str));
    for f in &files {
        assert!(
            !common::check_path(&common::root().join(f)).has_errors(),
            "the library rejects {f}"
        );
    }
    let out = nnlc(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn one_wrong_input_dimension_is_reported_with_code_file_line_and_both_shapes() {
    let original =
        std::fs::read_to_string(common::root().join("examples/mnist_mlp.nnl")).expect("example");
    assert!(original.contains("x: f32[B, 784]"));
    let broken = original.replace("x: f32[B, 784]", "x: f32[B, 785]");
    let dir = std::env::temp_dir().join(format!("nnl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("mnist_785.nnl");
    std::fs::write(&path, broken).expect("write");
    let out = nnlc(&["check", path.to_str().expect("utf8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[E0"), "no error code: {stderr}");
    assert!(stderr.contains("mnist_785.nnl:"), "no file name: {stderr}");
    assert!(
        stderr.contains("f32[B, 784]") && stderr.contains("785"),
        "shapes missing: {stderr}"
    );
    let line_of_model = original
        .lines()
        .position(|l| l.contains("x: f32[B, 784]"))
        .expect("line")
        + 1;
    assert!(
        stderr.contains(&format!("{line_of_model} │")),
        "line {line_of_model} not shown: {stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn summary_prints_the_keras_style_table() {
    let out = nnlc(&["check", "--summary", "examples/mnist_mlp.nnl"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("dense_1 (Dense)")
            && stdout.contains("f32[B, 128]")
            && stdout.contains("100,480"),
        "{stdout}"
    );
    assert!(stdout.contains("Total params: 101,770"), "{stdout}");
}

#[test]
fn json_format_prints_one_object_per_diagnostic() {
    let out = nnlc(&[
        "check",
        "--format",
        "json",
        "tests/diagnostics/broadcast_mismatch.nnl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("one line")).expect("JSON");
    assert_eq!(v["code"], "E0200");
}

#[test]
fn explain_describes_a_code_and_rejects_unknown_ones() {
    let out = nnlc(&["explain", "E0201"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("inner dimensions"));
    let out = nnlc(&["explain", "E9999"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn missing_file_is_an_error_not_a_panic() {
    let out = nnlc(&["check", "no/such/file.nnl"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn ir_prints_each_stage_with_shapes_and_source_lines() {
    let forward = nnlc(&["ir", "examples/mnist_mlp.nnl", "--batch", "4"]);
    assert!(forward.status.success());
    let text = String::from_utf8_lossy(&forward.stdout);
    assert!(text.starts_with("graph \"forward.train\" {"), "{text}");
    assert!(
        text.contains("f32[4, 128] = matmul %0, %2"),
        "the first layer is a matmul of the batch: {text}"
    );
    assert!(text.contains("; Mlp.dense_1 @ examples/mnist_mlp.nnl:30:8"));
    for stage in ["grad", "opt", "init", "eval"] {
        let out = nnlc(&[
            "ir",
            "examples/gan.nnl",
            "--stage",
            stage,
            "--phase",
            "generator",
        ]);
        assert!(out.status.success(), "stage {stage}");
        let graph = nnl::ir::text::parse(&String::from_utf8_lossy(&out.stdout))
            .unwrap_or_else(|e| panic!("stage {stage} prints text that does not parse: {e}"));
        nnl::ir::verify(&graph).expect("it verifies");
    }
    let stats = nnlc(&["ir", "examples/mnist_mlp.nnl", "--stage", "opt", "--stats"]);
    let line = String::from_utf8_lossy(&stats.stdout);
    assert!(line.contains("nodes before optimization"), "{line}");
}

#[test]
fn ir_names_the_phases_when_asked_for_a_missing_one() {
    let out = nnlc(&["ir", "examples/gan.nnl", "--phase", "critic"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no phase `critic`; the phases are discriminator, generator"),
        "{stderr}"
    );
}

#[test]
fn ir_of_one_model_takes_its_inputs_by_name() {
    let out = nnlc(&[
        "ir",
        "examples/lstm_sine.nnl",
        "--model",
        "SineLstm",
        "--batch",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let g = nnl::ir::text::parse(&String::from_utf8_lossy(&out.stdout)).expect("parses");
    // T comes from the data field `x: f32[32, 1]`.
    assert_eq!(g.ty(g.find_input("x").unwrap()).shape, vec![2, 32, 1]);
    assert_eq!(g.ty(g.output("out").unwrap()).shape, vec![2, 1]);
    let missing = nnlc(&["ir", "examples/lstm_sine.nnl", "--model", "Lstm"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no model `Lstm`"));
}

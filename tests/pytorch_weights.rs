//! Weights trained in PyTorch, in nnl (`tests/fixtures/pytorch`, made offline by
//! `tools/pytorch_fixtures.py`): an MLP loaded by naming convention and a CNN with batch norm
//! loaded through a `map` give PyTorch's test accuracy (to 0.01 point) and PyTorch's logits (to
//! 1e-5, relative where a logit exceeds 1); fine-tuning the CNN with its convolutional part frozen leaves the frozen tensors
//! bit-identical, trains the head, and the step graph has no gradient nodes for the frozen part;
//! a strict load of a misnamed tensor is a diagnostic naming both sides.

use nnl::runtime::{Interpreter, Jit, Session, checkpoint, weights};
use nnl::tensor::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = "tests/fixtures/pytorch";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Program {
    check: nnl::CheckOutput,
    program: nnl::resolve::Program,
    path: PathBuf,
}

fn program(file: &str, edit: &dyn Fn(String) -> String) -> Program {
    let rel = format!("{DIR}/{file}");
    let text = edit(std::fs::read_to_string(root().join(&rel)).unwrap());
    let (check, program) = nnl::check_program(&rel, &text, &nnl::fs::DiskLoader);
    assert!(
        !check.has_errors(),
        "{}",
        nnl::diag::render(&check.sources, &check.diagnostics, false)
    );
    Program {
        check,
        program,
        path: root().join(rel),
    }
}

fn expected(model: &str) -> (f64, ndarray::ArrayD<f32>) {
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join(DIR).join("expected.json")).unwrap(),
    )
    .unwrap();
    let accuracy = json[model]["test_accuracy"].as_f64().unwrap();
    let file = std::fs::File::open(root().join(DIR).join(format!("{model}_logits.npy"))).unwrap();
    let logits = <ndarray::ArrayD<f32> as ndarray_npy::ReadNpyExt>::read_npy(file).unwrap();
    (accuracy, logits)
}

/// The file's `init` weights with the rest of the initial values, as `nnlc eval` uses them.
fn loaded(p: &Program, session: &Session) -> HashMap<String, Tensor> {
    let lowered = session.lowered();
    let spec = lowered.config.init.clone().expect("the fixture has `init`");
    let targets: Vec<_> = lowered
        .params
        .iter()
        .chain(&lowered.states)
        .cloned()
        .collect();
    let models = vec![lowered.train.clone()];
    let w = weights::load(&spec, Some(spec.span), &root().join(DIR), &targets, &models)
        .unwrap_or_else(|d| panic!("{}", nnl::diag::render(&p.check.sources, &[d], false)));
    assert!(
        w.notes.is_empty(),
        "a strict load has nothing to note: {:?}",
        w.notes
    );
    let mut values = session.initial_values(0).unwrap();
    values.extend(w.values);
    values
}

/// Test accuracy and logits against PyTorch's.
fn agrees_with_pytorch(file: &str, model: &str) {
    let p = program(file, &|t| t);
    let mut session = Session::new(
        &p.program,
        &p.check.sources,
        None,
        Box::new(Jit {
            threads: 2,
            profile: false,
        }),
    )
    .unwrap();
    let values = loaded(&p, &session);
    let data = nnl::runtime::load_data(&p.program, &p.path, 0).unwrap();
    let metrics = session.evaluate(&data, "test", &values, 0).unwrap();
    let accuracy = metrics["accuracy"];
    let (want_accuracy, want_logits) = expected(model);

    // Logits through `predict`'s path: the model alone, on the raw test images.
    let saved = checkpoint::Checkpoint {
        values: values.clone(),
        data_stats: data.fitted_stats(),
        data_text: data.pipeline().fitted_text(),
        state: checkpoint::RunState {
            train: session.lowered().train.clone(),
            seed: 0,
            batch: 500,
            epochs_done: 0,
            steps_done: 0,
            best: None,
            epochs_without_improvement: 0,
            history: Vec::new(),
            warnings: Vec::new(),
            partial: None,
        },
    };
    let raw = data.raw_inputs("test", "x").unwrap();
    let out = nnl::runtime::predict::predict(
        &p.program,
        &p.check.sources,
        &Interpreter { threads: 2 },
        &saved,
        None,
        &[(None, nnl::data::RawInputs::from_values(raw))],
        nnl::runtime::predict::OutputKind::Logits,
    )
    .unwrap()
    .outputs
    .to_f64();
    // Logits reach 20 and more, so a difference counts relative to the logit where it exceeds 1
    // (as for the ONNX comparison): a few ulps of f32, from summing in another order.
    let diffs = out.iter().zip(want_logits.iter()).map(|(a, b)| {
        let b = f64::from(*b);
        ((a - b).abs(), (a - b).abs() / b.abs().max(1.0))
    });
    let (max_abs, max_diff) = diffs.fold((0.0f64, 0.0f64), |(m, s), (a, r)| (m.max(a), s.max(r)));
    eprintln!(
        "{model}: nnl test accuracy {:.4}%, PyTorch {:.4}%; max |logit difference| {max_abs:.3e} (relative where |logit| > 1: {max_diff:.3e}) over {} logits",
        100.0 * accuracy,
        100.0 * want_accuracy,
        out.len()
    );
    assert_eq!(out.len(), want_logits.len());
    assert!(
        (accuracy - want_accuracy).abs() <= 1e-4,
        "accuracy {accuracy} vs PyTorch {want_accuracy}"
    );
    assert!(max_diff <= 1e-5, "logits differ by {max_diff}");
}

#[test]
fn a_pytorch_mlp_loads_by_naming_convention_and_agrees() {
    agrees_with_pytorch("mlp.nnl", "mlp");
}

#[test]
fn a_pytorch_cnn_with_batch_norm_loads_through_a_map_and_agrees() {
    agrees_with_pytorch("cnn.nnl", "cnn");
}

#[test]
fn nnlc_eval_reports_the_loaded_weights_accuracy() {
    let out = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(["eval", &format!("{DIR}/mlp.nnl")])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    let (want, _) = expected("mlp");
    assert!(
        printed.contains(&format!("accuracy {want:.4}")),
        "{printed} should show PyTorch's {want:.4}"
    );
}

const FROZEN: &[&str] = &[
    "SmallCnn.conv2d_1.w",
    "SmallCnn.conv2d_1.b",
    "SmallCnn.batch_norm2d_1.gamma",
    "SmallCnn.batch_norm2d_1.beta",
    "SmallCnn.batch_norm2d_1.running_mean",
    "SmallCnn.batch_norm2d_1.running_var",
    "SmallCnn.conv2d_2.w",
    "SmallCnn.conv2d_2.b",
    "SmallCnn.batch_norm2d_2.gamma",
    "SmallCnn.batch_norm2d_2.beta",
    "SmallCnn.batch_norm2d_2.running_mean",
    "SmallCnn.batch_norm2d_2.running_var",
];

#[test]
fn fine_tuning_keeps_the_frozen_part_bit_identical_and_trains_the_head() {
    let dir = std::env::temp_dir().join(format!("nnl-finetune-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args([
            "run",
            &format!("{DIR}/cnn.nnl"),
            "--steps-per-epoch",
            "100",
            "--checkpoint-dir",
            dir.to_str().unwrap(),
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = checkpoint::load(&dir.join(checkpoint::LAST)).unwrap();

    let p = program("cnn.nnl", &|t| t);
    let session = Session::new(
        &p.program,
        &p.check.sources,
        None,
        Box::new(Interpreter { threads: 1 }),
    )
    .unwrap();
    let before = loaded(&p, &session);
    for name in FROZEN {
        assert_eq!(after.values[*name], before[*name], "{name} changed");
    }
    assert!(
        !after
            .values
            .keys()
            .any(|k| k.starts_with("SmallCnn.conv2d") && k.ends_with(".m")),
        "frozen parameters have no optimizer state"
    );
    for name in ["SmallCnn.dense_1.w", "SmallCnn.dense_1.b"] {
        assert_ne!(after.values[name], before[name], "{name} did not train");
    }
}

/// Nodes of the optimized training step per layer-instance prefix.
fn step_nodes(edit: &dyn Fn(String) -> String) -> (usize, usize, usize) {
    let p = program("cnn.nnl", edit);
    let lowered = nnl::lower::lower(&p.program, &p.check.sources, &Default::default()).unwrap();
    let step = nnl::step::train_step(&lowered, &lowered.phases[0]).unwrap();
    let (step, _) = nnl::opt::optimize(&step);
    let (forward, _) = nnl::opt::optimize(&lowered.phases[0].forward);
    let frozen_part = |g: &nnl::ir::Graph| {
        g.nodes
            .iter()
            .filter(|n| {
                n.loc.scope.starts_with("SmallCnn.conv2d")
                    || n.loc.scope.starts_with("SmallCnn.batch_norm2d")
            })
            .count()
    };
    (step.size(), frozen_part(&step), frozen_part(&forward))
}

#[test]
fn freezing_removes_the_frozen_part_from_the_backward_pass() {
    let (frozen_size, frozen_step, frozen_forward) = step_nodes(&|t| t);
    let unfrozen = |t: String| {
        t.lines()
            .filter(|l| !l.trim_start().starts_with("freeze"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let (full_size, full_step, full_forward) = step_nodes(&unfrozen);
    eprintln!(
        "optimized step: {full_size} nodes without freeze, {frozen_size} with the convolutional part frozen; \
         conv/bn nodes: {full_step} (forward {full_forward}) vs {frozen_step} (forward {frozen_forward})"
    );
    // Frozen: the convolutional layers only run forward (in evaluation mode); no node of the
    // step differentiates or updates them.
    assert_eq!(
        frozen_step, frozen_forward,
        "no backward or update nodes in the frozen layers"
    );
    assert!(
        full_step > full_forward,
        "unfrozen, they have backward nodes"
    );
    assert!(frozen_size < full_size);
}

/// The layer state a training step updates, for the fixture with an edit.
fn updated_state(edit: &dyn Fn(String) -> String) -> Vec<String> {
    let p = program("cnn.nnl", edit);
    let lowered = nnl::lower::lower(&p.program, &p.check.sources, &Default::default()).unwrap();
    let forward = &lowered.phases[0].forward;
    lowered
        .states
        .iter()
        .filter(|(n, _)| forward.output(n).is_some())
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn frozen_batch_norm_keeps_its_running_statistics_unless_told_otherwise() {
    // The default, `frozen_bn running_stats`: frozen batch norm runs as in evaluation.
    assert!(updated_state(&|t| t).is_empty());
    let batch_stats =
        |t: String| t.replace("  loss      =", "  frozen_bn batch_stats\n  loss      =");
    assert_eq!(
        updated_state(&batch_stats),
        [
            "SmallCnn.batch_norm2d_1.running_mean",
            "SmallCnn.batch_norm2d_1.running_var",
            "SmallCnn.batch_norm2d_2.running_mean",
            "SmallCnn.batch_norm2d_2.running_var"
        ]
    );
}

#[test]
fn a_misnamed_tensor_is_a_diagnostic_with_both_names() {
    let dir = std::env::temp_dir().join(format!("nnl-misnamed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (tensors, _) =
        nnl::store::read_safetensors(&root().join(DIR).join("mlp.safetensors")).unwrap();
    let renamed: Vec<(String, Tensor)> = tensors
        .into_iter()
        .map(|(n, t)| {
            (
                if n == "dense_2.weight" {
                    "dense2.weight".into()
                } else {
                    n
                },
                t,
            )
        })
        .collect();
    nnl::store::write_safetensors(&dir.join("mlp.safetensors"), &renamed, None).unwrap();
    let p = program("mlp.nnl", &|t| t);
    let session = Session::new(
        &p.program,
        &p.check.sources,
        None,
        Box::new(Interpreter { threads: 1 }),
    )
    .unwrap();
    let lowered = session.lowered();
    let spec = lowered.config.init.clone().unwrap();
    let targets: Vec<_> = lowered
        .params
        .iter()
        .chain(&lowered.states)
        .cloned()
        .collect();
    let err = match weights::load(
        &spec,
        Some(spec.span),
        Path::new(&dir),
        &targets,
        &["Mlp".into()],
    ) {
        Ok(_) => panic!("a strict load with a misnamed tensor fails"),
        Err(d) => d,
    };
    let text = nnl::diag::render(&p.check.sources, &[err], false);
    insta::assert_snapshot!(text);

    // Not strict: what fits is loaded, the rest is listed.
    let lenient = nnl::syntax::finetune::InitFrom {
        strict: false,
        ..spec
    };
    let w = weights::load(&lenient, None, Path::new(&dir), &targets, &["Mlp".into()])
        .unwrap_or_else(|_| panic!("a lenient load loads what fits"));
    let mut loaded: Vec<&String> = w.values.keys().collect();
    loaded.sort();
    assert_eq!(loaded, ["Mlp.dense_1.b", "Mlp.dense_1.w", "Mlp.dense_2.b"]);
    let notes = w.notes.join("\n");
    assert!(
        notes.contains("`Mlp.dense_2.w`") && notes.contains("`dense2.weight`"),
        "{notes}"
    );
}

//! Gradient health on real data: a deep sigmoid MLP on MNIST warns about vanishing gradients in
//! its first layer and the same depth with ReLU, He initialization and residual connections does
//! not; a learning rate of 10 on the MNIST MLP is called too high at its first step; the watched
//! step's statistics are the norms of the gradients, weights and updates and the ReLU activity;
//! `--no-health` computes none.

use nnl::ir::{Health, OutputRole, TensorType};
use nnl::tensor::Tensor;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn nnlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("nnlc runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-health-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `nnlc run FILE ARGS… --report`, which must succeed; its stderr and report.
fn run(file: &str, args: &[&str], dir: &Path) -> (String, Value) {
    std::fs::create_dir_all(dir).unwrap();
    let report = dir.join("report.json");
    let ckpt = dir.join("ckpt");
    let mut all = vec![
        "run",
        file,
        "--report",
        report.to_str().unwrap(),
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = nnlc(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{file} failed:\n{stderr}");
    let report = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    (stderr, report)
}

fn warnings_of(report: &Value, kind: &str) -> Vec<Value> {
    report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == kind)
        .cloned()
        .collect()
}

/// Per epoch: the first layer's gradient norm over the last layer's.
fn first_over_last(report: &Value) -> Vec<f64> {
    report["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let layers = e["health"]["layers"].as_array().unwrap();
            let norm = |l: &Value| l["grad_norm"].as_f64().unwrap();
            norm(&layers[0]) / norm(layers.last().unwrap())
        })
        .collect()
}

fn scientific(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{v:.1e}")).collect();
    parts.join(", ")
}

#[test]
fn a_deep_sigmoid_mlp_warns_of_vanishing_gradients_in_its_first_layer() {
    let dir = scratch("sigmoid");
    let (stderr, report) = run("tests/fixtures/health/deep_sigmoid.nnl", &[], &dir);
    let ratios = first_over_last(&report);
    eprintln!(
        "deep sigmoid: first/last layer gradient norm per epoch: {}",
        scientific(&ratios)
    );
    let vanishing = warnings_of(&report, "vanishing_gradients");
    assert_eq!(vanishing.len(), 1, "{:#}", report["warnings"]);
    let w = &vanishing[0];
    assert_eq!(w["subject"], "DeepSigmoid.dense_1");
    assert_eq!(w["location"], "tests/fixtures/health/deep_sigmoid.nnl:18:8");
    assert_eq!(w["epoch"], 3, "several epochs in a row");
    assert!(
        w["help"].as_str().unwrap().contains("ReLU or GELU"),
        "{w:#}"
    );
    assert!(
        stderr.contains("warning: vanishing gradients in `DeepSigmoid.dense_1` (tests/fixtures/health/deep_sigmoid.nnl:18:8)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_same_depth_with_relu_he_and_residual_connections_does_not() {
    let dir = scratch("residual");
    let (stderr, report) = run("tests/fixtures/health/deep_residual.nnl", &[], &dir);
    let ratios = first_over_last(&report);
    eprintln!(
        "deep residual: first/last layer gradient norm per epoch: {}",
        scientific(&ratios)
    );
    assert!(
        warnings_of(&report, "vanishing_gradients").is_empty(),
        "{stderr}"
    );
    assert!(!stderr.contains("vanishing"), "{stderr}");
    assert!(ratios.iter().all(|&r| r > nnl::runtime::health::VANISHING));
    let accuracy = report["test"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.9, "test accuracy {accuracy}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_learning_rate_of_10_is_too_high_from_the_first_step() {
    let dir = scratch("lr10");
    let out = nnlc(&[
        "run",
        "examples/mnist_mlp.nnl",
        "--set",
        "lr=10",
        "--epochs",
        "1",
        "--checkpoint-dir",
        dir.join("ckpt").to_str().unwrap(),
        "--report",
        dir.join("report.json").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let warned = stderr
        .find("warning: learning rate too high")
        .or_else(|| stderr.find("warning: exploding gradients"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    // Before the run fails, when it does (Adam's normalized steps kill the ReLUs instead).
    if let Some(failed) = stderr.find("error:") {
        assert!(warned < failed, "{stderr}");
    }
    assert!(out.status.success(), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let high = warnings_of(&report, "learning_rate_too_high");
    assert_eq!(high[0]["step"], 1, "{:#}", report["warnings"]);
    assert!(
        high[0]["help"]
            .as_str()
            .unwrap()
            .contains("it is 10; try 1"),
        "{:#}",
        high[0]
    );
    // And what it did: the hidden ReLU's units died.
    let dead = warnings_of(&report, "dead_relu");
    assert_eq!(dead[0]["subject"], "Mlp.dense_1.relu");
    assert_eq!(dead[0]["location"], "examples/mnist_mlp.nnl:30:25");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn no_health_computes_no_statistics() {
    let dir = scratch("no-health");
    let (_, report) = run(
        "examples/iris.nnl",
        &["--no-health", "--epochs", "3", "--threads", "1"],
        &dir.join("without"),
    );
    assert_eq!(report["config"]["health_every"], Value::Null);
    assert!(report["warnings"].as_array().unwrap().is_empty());
    for e in report["epochs"].as_array().unwrap() {
        assert!(e.get("health").is_none(), "{e:#}");
    }
    let (_, report) = run(
        "examples/iris.nnl",
        &["--epochs", "3", "--threads", "1"],
        &dir.join("with"),
    );
    assert_eq!(report["config"]["health_every"], 10);
    assert!(report["epochs"][0]["health"]["layers"].is_array());
    std::fs::remove_dir_all(&dir).ok();
}

fn tensor(shape: &[usize], values: impl Iterator<Item = f64>) -> Tensor {
    let ty = TensorType::new(nnl::ir::DType::F32, shape.to_vec());
    Tensor::from_f64(&ty, values.take(shape.iter().product()).collect())
}

fn norm(values: &[f64]) -> f64 {
    values.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Within what summing ~10⁵ squares in f32, as the step does, leaves.
fn assert_close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-4 * want.abs() + 1e-7,
        "{what}: the step says {got}, computed apart {want}"
    );
}

/// The watched step of the MNIST MLP, run by the interpreter, against the gradients of `nnlc
/// grad`'s graph, the update it makes and the hidden layer's activity computed apart.
#[test]
fn the_watched_step_outputs_the_norms_and_the_relu_activity() {
    const B: usize = 8;
    let path = root().join("examples/mnist_mlp.nnl");
    let text = std::fs::read_to_string(&path).unwrap();
    let opts = nnl::lower::Options {
        batch: Some(B),
        ..Default::default()
    };
    let lowered = nnl::lower_source(&path.to_string_lossy(), &text, &nnl::fs::DiskLoader, &opts)
        .lowered
        .expect("the example lowers");
    let phase = &lowered.phases[0];
    let watch = nnl::step::Watch {
        health: true,
        learning_rate: true,
    };
    let step = nnl::step::train_step_watched(&lowered, phase, watch).unwrap();
    let plain = nnl::step::train_step(&lowered, phase).unwrap();
    let health: Vec<(&str, Health)> = step
        .outputs
        .iter()
        .filter_map(|o| match o.role {
            OutputRole::Health(h) => Some((o.name.as_str(), h)),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = health.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "health.learning_rate",
            "health.Mlp.dense_1.grad_norm",
            "health.Mlp.dense_1.weight_norm",
            "health.Mlp.dense_1.update_norm",
            "health.Mlp.dense_2.grad_norm",
            "health.Mlp.dense_2.weight_norm",
            "health.Mlp.dense_2.update_norm",
            "health.Mlp.dense_1.relu.active",
        ]
    );
    assert!(
        plain
            .outputs
            .iter()
            .all(|o| !matches!(o.role, OutputRole::Health(_)))
    );
    // Every other output is the unwatched step's.
    let others: Vec<&str> = step
        .outputs
        .iter()
        .filter(|o| !matches!(o.role, OutputRole::Health(_)))
        .map(|o| o.name.as_str())
        .collect();
    let plain_names: Vec<&str> = plain.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(others, plain_names);

    let mut values = nnl::exec::initial_values(&lowered, 3).unwrap();
    let pixels = (0..).map(|i: usize| ((i * 7919) % 256) as f64 / 255.0);
    let x = tensor(&[B, 784], pixels);
    let y = Tensor::I32(
        ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&[B]),
            (0..B as i32).map(|i| (i * 3) % 10).collect(),
        )
        .unwrap(),
    );
    let batch = HashMap::from([("x".to_string(), x.clone()), ("y".to_string(), y)]);
    let grads: HashMap<String, Tensor> =
        nnl::exec::batch_gradients(&lowered, phase, &batch, &values, 0)
            .unwrap()
            .into_iter()
            .collect();
    let counters = [
        ("step", tensor(&[], std::iter::once(1.0))),
        ("epoch", tensor(&[], std::iter::once(0.0))),
        ("rng", nnl::exec::rng_key(0, 1)),
    ];
    let mut inputs: HashMap<String, Tensor> = values.clone();
    inputs.extend(batch.clone());
    inputs.extend(counters.into_iter().map(|(n, t)| (n.to_string(), t)));
    let out = nnl::interp::run(&step, &inputs, &nnl::interp::Options::default()).unwrap();
    let scalar = |name: &str| out[name].scalar().unwrap();
    assert_close("learning rate", scalar("health.learning_rate"), 1e-3);
    for layer in ["Mlp.dense_1", "Mlp.dense_2"] {
        let params = [format!("{layer}.w"), format!("{layer}.b")];
        let all = |of: &dyn Fn(&str) -> Vec<f64>| -> f64 {
            norm(&params.iter().flat_map(|p| of(p)).collect::<Vec<_>>())
        };
        let grad = all(&|p| grads[p].to_f64());
        let weight = all(&|p| values[p].to_f64());
        let update = all(&|p| {
            let new = out[p].to_f64();
            new.iter()
                .zip(values[p].to_f64())
                .map(|(n, o)| n - o)
                .collect()
        });
        assert_close(
            &format!("{layer} grad"),
            scalar(&format!("health.{layer}.grad_norm")),
            grad,
        );
        assert_close(
            &format!("{layer} weight"),
            scalar(&format!("health.{layer}.weight_norm")),
            weight,
        );
        assert_close(
            &format!("{layer} update"),
            scalar(&format!("health.{layer}.update_norm")),
            update,
        );
        assert!(update > 0.0);
    }
    // The hidden layer's activity: the share of the batch for which each unit is positive.
    let (w, b) = (
        values["Mlp.dense_1.w"].to_f64(),
        values["Mlp.dense_1.b"].to_f64(),
    );
    let x = x.to_f64();
    let active = out["health.Mlp.dense_1.relu.active"].to_f64();
    assert_eq!(active.len(), 128);
    for (j, &got) in active.iter().enumerate() {
        let positive = (0..B)
            .filter(|&i| {
                (0..784)
                    .map(|k| x[i * 784 + k] * w[k * 128 + j])
                    .sum::<f64>()
                    + b[j]
                    > 0.0
            })
            .count();
        assert_close(&format!("unit {j}"), got, positive as f64 / B as f64);
    }
    values.clear();
}

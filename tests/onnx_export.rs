//! `nnlc export` end to end: every example's model, trained briefly, is exported; ONNX's own
//! checker accepts it (`full_check`) and ONNX Runtime's outputs on the test split agree with
//! `nnlc predict`'s to 1e-5 (relative where outputs exceed 1 in magnitude). With
//! `--with-preprocessing`, the model takes the raw CSV columns. The exported graphs use the
//! readable ONNX operators (Gemm, Conv, MaxPool, LayerNormalization, Softmax, Scan…).
//!
//! The Python side (`tests/python/onnx_check.py`) needs `onnx` and `onnxruntime`: `.ci/run`
//! installs `tests/python/requirements.txt` into a virtual environment and sets `NNL_PYTHON`;
//! without it the test looks for `~/.cache/nnl/venv/bin/python`.

use nnl::tensor::Tensor;
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

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-onnx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NNL_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let venv = home.join(".cache/nnl/venv/bin/python");
    assert!(
        venv.exists(),
        "these tests need Python with the packages of tests/python/requirements.txt: run .ci/run, \
         or `python3 -m venv ~/.cache/nnl/venv && ~/.cache/nnl/venv/bin/pip install -r tests/python/requirements.txt`, \
         or set NNL_PYTHON"
    );
    venv
}

fn write_npy(path: &Path, t: &Tensor) {
    use ndarray_npy::WriteNpyExt;
    let mut bytes = Vec::new();
    match t {
        Tensor::F32(a) => a.write_npy(&mut bytes),
        Tensor::F64(a) => a.write_npy(&mut bytes),
        Tensor::I32(a) => a.write_npy(&mut bytes),
        Tensor::Bool(a) => a.write_npy(&mut bytes),
    }
    .unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Where an input of the exported model comes from.
enum Source {
    /// A data field of the test split (raw values for `predict`, prepared ones for the model).
    Field(&'static str),
    /// Standard normal values (a code, noise) of this per-sample size, taken as they are.
    Normal(&'static str, usize),
}

struct Case {
    example: &'static str,
    model: Option<&'static str>,
    inputs: &'static [Source],
    /// ONNX operators the graph must use.
    ops: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        example: "mnist_mlp",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Gemm", "Relu"],
    },
    Case {
        example: "mnist_cnn",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Conv", "MaxPool", "Gemm", "Relu"],
    },
    Case {
        example: "lstm_sine",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Scan", "Sigmoid", "Tanh", "Gemm"],
    },
    Case {
        example: "gru_sort",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Gather", "Scan", "Sigmoid", "Tanh"],
    },
    Case {
        example: "transformer_reverse",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Gather", "LayerNormalization", "Softmax", "MatMul"],
    },
    Case {
        example: "autoencoder",
        model: Some("Encoder"),
        inputs: &[Source::Field("x")],
        ops: &["Gemm", "Relu"],
    },
    Case {
        example: "autoencoder",
        model: Some("Decoder"),
        inputs: &[Source::Normal("z", 32)],
        ops: &["Gemm", "Relu"],
    },
    Case {
        example: "gan",
        model: Some("Generator"),
        inputs: &[Source::Normal("x", 64)],
        ops: &["Gemm", "Relu", "Sigmoid"],
    },
    Case {
        example: "gan",
        model: Some("Critic"),
        inputs: &[Source::Field("x")],
        ops: &["Gemm", "LeakyRelu"],
    },
    Case {
        example: "iris",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Gemm", "Relu"],
    },
    Case {
        example: "breast_cancer",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Gemm", "Relu"],
    },
    Case {
        example: "diabetes",
        model: None,
        inputs: &[Source::Field("x")],
        ops: &["Gemm", "Relu"],
    },
];

/// Trains an example briefly (the comparison needs weights, not a good model).
fn train(example: &str, dir: &Path) -> PathBuf {
    let ckpt = dir.join("ckpt");
    let file = format!("examples/{example}.nnl");
    ok(
        &nnlc(&[
            "run",
            &file,
            "--epochs",
            "1",
            "--steps-per-epoch",
            "20",
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
        ]),
        &format!("training {example}"),
    );
    ckpt
}

fn dataset(example: &str) -> nnl::data::Dataset {
    let rel = format!("examples/{example}.nnl");
    let path = root().join(&rel);
    let text = std::fs::read_to_string(&path).unwrap();
    let (check, program) = nnl::check_program(&rel, &text, &nnl::fs::DiskLoader);
    assert!(!check.has_errors());
    nnl::runtime::load_data(&program, &path, 1).expect("the example's data load")
}

/// The split the comparison runs on: `test`, or `train` for a data block without one.
fn split(ds: &nnl::data::Dataset) -> &'static str {
    if ds.size("test").is_some() {
        "test"
    } else {
        "train"
    }
}

/// A split's samples; of a training split (for data without a test split), the first 2000.
fn first_samples(t: Tensor, split: &str) -> Tensor {
    let n = t.shape()[0];
    if split != "train" || n <= 2000 {
        return t;
    }
    let mut shape = t.shape().to_vec();
    shape[0] = 2000;
    let per: usize = shape[1..].iter().product();
    let values = t.to_f64()[..2000 * per].to_vec();
    Tensor::from_f64(&nnl::ir::TensorType::new(t.dtype(), shape), values)
}

/// Deterministic standard normal values (Box–Muller on a 64-bit LCG).
fn normals(n: usize, per: usize) -> Tensor {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let values = (0..n * per)
        .map(|_| (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos())
        .collect();
    Tensor::from_f64(
        &nnl::ir::TensorType::new(nnl::ir::DType::F32, vec![n, per]),
        values,
    )
}

/// Runs the Python check; returns its JSON line.
fn onnx_check(model: &Path, inputs: &[(String, PathBuf)], expected: &Path) -> serde_json::Value {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/python/onnx_check.py"))
        .arg(model)
        .arg("--expected")
        .arg(expected);
    for (name, path) in inputs {
        cmd.arg("--input").arg(format!("{name}={}", path.display()));
    }
    let out = cmd.output().expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}\n{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).expect("one JSON line")
}

#[test]
fn every_example_exports_and_onnx_runtime_agrees_with_predict() {
    let dir = scratch("examples");
    let mut trained = std::collections::HashMap::new();
    let mut report = Vec::new();
    for case in CASES {
        let name = format!(
            "{}{}",
            case.example,
            case.model.map_or(String::new(), |m| format!(".{m}"))
        );
        let ckpt = trained
            .entry(case.example)
            .or_insert_with(|| train(case.example, &dir.join(case.example)))
            .clone();
        let file = format!("examples/{}.nnl", case.example);
        let onnx = dir.join(format!("{name}.onnx"));
        let mut args = vec!["export", &file, "--checkpoint", ckpt.to_str().unwrap()];
        if let Some(m) = case.model {
            args.extend(["--model", m]);
        }
        let onnx_s = onnx.to_str().unwrap().to_string();
        args.extend(["-o", &onnx_s]);
        ok(&nnlc(&args), &format!("exporting {name}"));

        let ds = dataset(case.example);
        let split = split(&ds);
        let mut predict_args: Vec<String> = vec![
            "predict".into(),
            file.clone(),
            "--checkpoint".into(),
            ckpt.to_str().unwrap().into(),
        ];
        if let Some(m) = case.model {
            predict_args.extend(["--model".into(), m.into()]);
        }
        let mut onnx_inputs = Vec::new();
        for src in case.inputs {
            let (input, raw, prepared) = match src {
                Source::Field(f) => {
                    let raw = first_samples(ds.raw_inputs(split, f).unwrap(), split);
                    let prepared = ds.transform_inputs(f, &raw).unwrap();
                    (*f, raw, prepared)
                }
                Source::Normal(input, per) => {
                    let t = normals(256, *per);
                    (*input, t.clone(), t)
                }
            };
            let raw_path = dir.join(format!("{name}.{input}.raw.npy"));
            let prepared_path = dir.join(format!("{name}.{input}.npy"));
            write_npy(&raw_path, &raw);
            write_npy(&prepared_path, &prepared);
            predict_args.extend(["--input".into(), format!("{input}={}", raw_path.display())]);
            onnx_inputs.push((input.to_string(), prepared_path));
        }
        let expected = dir.join(format!("{name}.predict.npy"));
        predict_args.extend(["-o".into(), expected.to_str().unwrap().into()]);
        let refs: Vec<&str> = predict_args.iter().map(String::as_str).collect();
        ok(&nnlc(&refs), &format!("predict for {name}"));

        let result = onnx_check(&onnx, &onnx_inputs, &expected);
        let ops: Vec<&str> = result["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        for op in case.ops {
            assert!(
                ops.contains(op),
                "{name}: the exported graph has no {op}: {ops:?}"
            );
        }
        report.push(format!(
            "{name}: {} samples, max |ONNX − predict| = {:.3e} (scaled {:.3e}), {} nodes",
            result["samples"],
            result["max_abs_diff"].as_f64().unwrap(),
            result["max_scaled_diff"].as_f64().unwrap(),
            result["nodes"]
        ));
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn with_preprocessing_the_model_takes_raw_csv_columns() {
    let dir = scratch("preprocessing");
    let ckpt = train("breast_cancer", &dir);
    let onnx = dir.join("cancer.onnx");
    ok(
        &nnlc(&[
            "export",
            "examples/breast_cancer.nnl",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--with-preprocessing",
            "-o",
            onnx.to_str().unwrap(),
        ]),
        "export --with-preprocessing",
    );
    // The test rows as in the CSV file: 30 measurements, then the label (which predict ignores).
    let ds = dataset("breast_cancer");
    let x = ds.raw_inputs("test", "x").unwrap();
    let y = ds.raw_inputs("test", "y").unwrap().to_f64();
    let xs = x.to_f64();
    let mut csv = String::new();
    for (r, label) in y.iter().enumerate() {
        let row: Vec<String> = xs[r * 30..(r + 1) * 30]
            .iter()
            .map(|v| v.to_string())
            .collect();
        csv += &format!("{},{label}\n", row.join(","));
    }
    let rows = dir.join("rows.csv");
    std::fs::write(&rows, csv).unwrap();
    let expected = dir.join("predict.npy");
    let out = nnlc(&[
        "predict",
        "examples/breast_cancer.nnl",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--input",
        rows.to_str().unwrap(),
        "-o",
        expected.to_str().unwrap(),
    ]);
    ok(&out, "predict on raw rows");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("column 30 (field `y`) is ignored"),
        "predict names the label column it ignores: {stderr}"
    );
    let raw = dir.join("raw.npy");
    write_npy(&raw, &x);
    let result = onnx_check(&onnx, &[("x".into(), raw)], &expected);
    eprintln!(
        "breast_cancer --with-preprocessing: {} raw rows, max |ONNX − predict| = {:.3e}",
        result["samples"],
        result["max_abs_diff"].as_f64().unwrap()
    );
}

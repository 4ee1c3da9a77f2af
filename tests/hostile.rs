//! Hostile and mistaken input, as a new user or a hostile tester would give it (issue 13): the
//! real binary runs under a 4 GiB address-space limit and must exit 0 or 1 with a message that
//! says what to do, never by a signal, a panic, an allocation failure or a hang. One test (or
//! more) per class of failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The address-space limit every run here is held to (`ulimit -v`, in KiB).
const ADDRESS_SPACE_KIB: u64 = 4 << 20;

/// `nnlc ARGS` in `dir` under the 4 GiB address-space limit.
fn nnlc_in(dir: &Path, args: &[&str]) -> Output {
    limited(dir, args).output().expect("nnlc runs")
}

fn limited(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_nnlc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove(nnl::fs::ALLOW_ENV);
    cmd
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, contents).unwrap();
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run ended by itself with exit code 1 and none of the ways a crash shows.
fn assert_refused(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for crash in [
        "panicked",
        "memory allocation",
        "internal error",
        "RUST_BACKTRACE",
    ] {
        assert!(!err.contains(crash), "{crash}:\n{err}");
    }
    err
}

fn assert_contains(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "`{e}` not in:\n{text}");
    }
}

fn example(name: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(name)).expect("example")
}

// ---------------------------------------------------------------- class labels

/// Iris with the file's labels shifted to 1–3 (as many CSV files number classes).
fn iris_labelled_from_one(dir: &Path) {
    let csv =
        std::fs::read_to_string(root().join("examples/data/tabular/iris.csv")).expect("iris data");
    let mut shifted = String::new();
    for (i, line) in csv.lines().enumerate() {
        if i == 0 {
            shifted.push_str(line);
        } else {
            let (features, label) = line.rsplit_once(',').expect("a labelled row");
            let label: u32 = label.parse().expect("a class index");
            shifted.push_str(&format!("{features},{}", label + 1));
        }
        shifted.push('\n');
    }
    write(dir, "data/iris.csv", shifted);
    let model = example("iris.nnl").replace("data/tabular/iris.csv", "data/iris.csv");
    write(dir, "iris.nnl", model);
}

#[test]
fn class_labels_out_of_range_stop_the_run_before_anything_is_trained() {
    let dir = scratch("iris-1-3");
    iris_labelled_from_one(&dir);
    let out = nnlc_in(&dir, &["run", "iris.nnl", "--checkpoint-dir", "ckpt"]);
    let err = assert_refused(&out);
    // The first bad sample of the training split, with its line and column in the file.
    assert_contains(
        &err,
        &[
            "data/iris.csv:",
            "class 3 is out of range in split `train`",
            "the model reads `y` as a class index at iris.nnl:",
            "one of 3 classes (0 to 2)",
            "nothing was trained",
        ],
    );
    assert!(!dir.join("ckpt").exists(), "a checkpoint was written");

    // `eval` of the same data with a model trained on good labels refuses the same way.
    let good = scratch("iris-good");
    write(&good, "iris.nnl", example("iris.nnl"));
    let iris = root().join("examples/data/tabular/iris.csv");
    write(&good, "data/tabular/iris.csv", std::fs::read(iris).unwrap());
    let out = nnlc_in(
        &good,
        &[
            "run",
            "iris.nnl",
            "--epochs",
            "1",
            "--checkpoint-dir",
            "ckpt",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ckpt = good.join("ckpt");
    let out = nnlc_in(
        &dir,
        &["eval", "iris.nnl", "--checkpoint", ckpt.to_str().unwrap()],
    );
    assert_contains(&assert_refused(&out), &["class 3 is out of range"]);
}

#[test]
fn class_labels_out_of_range_in_an_npz_name_the_sample() {
    use ndarray::{ArrayD, IxDyn};
    use ndarray_npy::NpzWriter;
    let dir = scratch("npz-labels");
    let n = 40;
    let x = ArrayD::from_shape_vec(IxDyn(&[n, 2]), (0..2 * n).map(|v| (v % 7) as f32).collect())
        .unwrap();
    // Classes 0, 1, 2, and one sample labelled 5 (sample 33).
    let y = ArrayD::from_shape_vec(
        IxDyn(&[n]),
        (0..n as i64)
            .map(|i| if i == 33 { 5 } else { i % 3 })
            .collect(),
    )
    .unwrap();
    let mut npz = NpzWriter::new(std::fs::File::create(dir.join("d.npz")).unwrap());
    npz.add_array("x", &x).unwrap();
    npz.add_array("y", &y).unwrap();
    npz.finish().unwrap();
    write(
        &dir,
        "model.nnl",
        r#"use std.nn.{Dense}

data d {
  train = npz("d.npz")
  x: f32[2] = array("x")
  y: i32 = array("y")
}

model Net()(x: f32[B, 2]) -> f32[B, 3] {
  x |> Dense(3)
}

train Net on d {
  loss      = sparse_cross_entropy(logits: out, target: y)
  optimizer = sgd(lr: 0.1)
  batch 8
  epochs 1
  metrics accuracy
}
"#,
    );
    let out = nnlc_in(&dir, &["run", "model.nnl", "--checkpoint-dir", "ckpt"]);
    let err = assert_refused(&out);
    assert_contains(
        &err,
        &[
            "d.npz: sample 33: class 5 is out of range in split `train`",
            "one of 3 classes",
        ],
    );
    assert!(!dir.join("ckpt").exists(), "a checkpoint was written");
}

// ---------------------------------------------------------------- memory

#[test]
fn a_model_larger_than_the_machine_is_refused_before_allocating() {
    let dir = scratch("huge-model");
    let iris = root().join("examples/data/tabular/iris.csv");
    write(&dir, "data/tabular/iris.csv", std::fs::read(iris).unwrap());
    let model = example("iris.nnl").replace("Dense(hidden)", "Dense(1000000000000)");
    write(&dir, "iris.nnl", model);
    let out = nnlc_in(&dir, &["run", "iris.nnl", "--checkpoint-dir", "ckpt"]);
    let err = assert_refused(&out);
    assert_contains(
        &err,
        &[
            "this run needs about",
            "TiB of memory",
            "the largest `IrisMlp.dense_1.w` with 14.6 TiB",
            "make the model or the batch smaller",
        ],
    );
    assert!(!dir.join("ckpt").exists(), "a checkpoint was written");
}

// ---------------------------------------------------------------- sizes

/// `nnlc check` of `source` in a fresh directory: exit 1, with each of `expected` in the output.
fn check_refuses(name: &str, source: &str, expected: &[&str]) {
    let dir = scratch(name);
    write(&dir, "model.nnl", source);
    let out = nnlc_in(&dir, &["check", "model.nnl"]);
    assert_contains(&assert_refused(&out), expected);
}

#[test]
fn sizes_past_64_bits_are_errors_at_their_span() {
    check_refuses(
        "param-shape",
        "model M()(x: f32[B, 4]) -> f32[B, 4] {\n  param w: f32[4294967296, 4294967296] = zeros\n  x + sum(w)\n}\n",
        &[
            "[E0233]",
            "model.nnl:2:15",
            "would hold 18446744073709551616 elements",
        ],
    );
    // A parameter count past 2^63 (it printed as negative).
    check_refuses(
        "hidden",
        "use std.nn.{Dense}\nmodel M(hidden: int = 2^62)(x: f32[B, 4]) -> f32[B, 3] {\n  x |> Dense(hidden) |> relu |> Dense(3)\n}\n",
        &["[E0225]", "too large", "[4, 4611686018427387904]"],
    );
    check_refuses(
        "power",
        "fn f(x: f32[B, 4]) -> f32[B, 4] {\n  x * (2 ^ 64)\n}\n",
        &["[E0233]", "model.nnl:2:7", "does not fit in 64 bits"],
    );
    // A reshape whose element count wraps past 2^64 (it passed and failed in lowering).
    check_refuses(
        "reshape",
        "fn f(x: f32[B, 4]) -> f32[B, 4] {\n  let y = reshape(x, [B, 4, 4294967296, 4294967296])\n  x\n}\n",
        &["[E0216]", "beyond 64 bits"],
    );
    check_refuses(
        "min-div",
        "fn f(x: f32[B, 4]) -> f32[B, 4] {\n  x * ((-9223372036854775807 - 1) // -1)\n}\n",
        &["[E0233]", "does not fit in 64 bits"],
    );
    check_refuses(
        "range",
        "fn f(x: f32[B, 4]) -> f32[B, 4] {\n  let s = 0..4000000000\n  x\n}\n",
        &["[E0233]", "a range holds at most"],
    );
}

// ---------------------------------------------------------------- the data block

#[test]
fn the_checker_sees_field_shapes_that_the_data_block_fixes() {
    let dir = scratch("field-shapes");
    let mut csv = String::from("a,b,c,d,price\n");
    for i in 0..8 {
        csv.push_str(&format!("{i},1,2,3,{}.5\n", i * 2));
    }
    write(&dir, "t.csv", csv);
    let model = r#"use std.nn.{Dense}
data d {
  source = csv("t.csv", header: true)
  x: f32[1, 2, 2] = cols(0..4)
  y: f32[1] = col("price")
  split test = 0.25 of source
}
model Net()(x: f32[B, 1, 2, 2]) -> f32[B, 1] {
  x |> flatten |> Dense(1)
}
train Net on d {
  loss = mse(pred: out, target: y)
  optimizer = sgd(lr: 0.1)
  batch 2
  epochs 1
}
"#;
    write(&dir, "model.nnl", model);
    for command in ["check", "run"] {
        let out = nnlc_in(&dir, &[command, "model.nnl"]);
        assert_contains(
            &assert_refused(&out),
            &[
                "model.nnl:4:21",
                "this gives f32[4] per sample, but the field is declared f32[1, 2, 2]",
                "`cols(0..4) |> reshape([1, 2, 2])`",
                "model.nnl:5:15",
                "one value per sample, but the field is declared f32[1]",
            ],
        );
    }
    // As suggested, it runs.
    let fixed = model
        .replace("cols(0..4)", "cols(0..4) |> reshape([1, 2, 2])")
        .replace("y: f32[1]", "y: f32");
    write(&dir, "model.nnl", fixed);
    let out = nnlc_in(&dir, &["run", "model.nnl", "--checkpoint-dir", "ckpt"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

//! `nnlc run`, `eval` and `predict` end to end on the examples' real data: accuracy thresholds,
//! early stopping, exact resumption, crash safety of checkpoints, bad data, NaN reporting.
//! Every run writes its `--report` JSON, which the assertions read.

use nnl::store;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nnlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("nnlc runs")
}

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `nnlc run FILE ARGS --checkpoint-dir DIR/ckpt --report DIR/report.json` (or with
/// `--resume` among `args`, without `--checkpoint-dir`) and returns the report.
fn train(file: &str, dir: &Path, args: &[&str]) -> Value {
    let report = dir.join("report.json");
    let ckpt = dir.join("ckpt");
    let mut all: Vec<&str> = vec!["run", file, "--report", report.to_str().unwrap()];
    if !args.contains(&"--resume") {
        all.extend(["--checkpoint-dir", ckpt.to_str().unwrap()]);
    }
    all.extend(args);
    let out = nnlc(&all);
    assert!(
        out.status.success(),
        "nnlc {all:?} failed:\n{}",
        stderr(&out)
    );
    serde_json::from_str(&std::fs::read_to_string(&report).expect("report written"))
        .expect("the report is JSON")
}

fn test_metric(report: &Value, name: &str) -> f64 {
    report["test"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no test {name} in {}", report["test"]))
}

#[test]
fn mnist_mlp_reaches_97_5_percent_test_accuracy() {
    let dir = scratch("mnist");
    let r = train("examples/mnist_mlp.nnl", &dir, &[]);
    let acc = test_metric(&r, "accuracy");
    eprintln!(
        "mnist_mlp: test accuracy {acc:.4} after {} epochs, {:.1}s",
        r["epochs"].as_array().unwrap().len(),
        r["timings"]["train_seconds"]
    );
    // Over seeds 1-10 this run ends between 97.24% and 97.65% (mean 97.47%); seed 1, the
    // example's, gives 97.38%. On all 60,000 images nnl averages 97.55%, PyTorch 97.48%.
    assert!(acc >= 0.972, "test accuracy {acc}");
    assert_eq!(r["parameters"], 101_770);
    assert_eq!(r["epochs"].as_array().unwrap().len(), 5);
    // The compiled step's own times, per epoch: every batch of the epoch, fastest first.
    let times = r["timings"]["step_ms"].as_array().expect("step_ms");
    assert_eq!(times.len(), 5);
    for (i, t) in times.iter().enumerate() {
        assert_eq!(t["epoch"].as_u64(), Some(i as u64 + 1));
        let samples = r["epochs"][i]["samples"].as_u64().unwrap();
        assert_eq!(t["steps"].as_u64(), Some(samples.div_ceil(64)), "{t}");
        let ms = |k: &str| t[k].as_f64().unwrap();
        assert!(0.0 < ms("min_ms") && ms("min_ms") <= ms("median_ms"), "{t}");
        assert!(ms("min_ms") <= ms("mean_ms"), "{t}");
    }
}

#[test]
fn iris_reaches_93_percent_and_stops_early_with_the_best_weights() {
    let dir = scratch("iris");
    let r = train("examples/iris.nnl", &dir, &[]);
    assert!(test_metric(&r, "accuracy") >= 0.93, "{}", r["test"]);
    let epochs = r["epochs"].as_array().unwrap();
    let best = r["best"]["epoch"].as_u64().unwrap() as usize;
    // Early stopping with patience 15: the run ends 15 epochs after its best epoch, whose
    // validation loss is the lowest of all and whose weights were restored.
    assert_eq!(r["stopped_early"], true);
    assert_eq!(epochs.len(), best + 15);
    let lowest = epochs
        .iter()
        .map(|e| e["val"]["loss"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(r["best"]["value"].as_f64().unwrap(), lowest);
    assert_eq!(r["restored_best"], true);
    assert!(dir.join("ckpt/best.safetensors").exists());
    assert!(dir.join("ckpt/last.safetensors").exists());
}

#[test]
fn text_classify_tokenizes_a_csv_column_and_beats_chance_by_far() {
    let dir = scratch("text_classify");
    let r = train("examples/text_classify.nnl", &dir, &[]);
    let acc = test_metric(&r, "accuracy");
    eprintln!("text_classify: test accuracy {acc:.4}");
    // Five balanced sections (chance 0.20). Over seeds 1-5 the run ends between 0.7425 and
    // 0.7650 (mean 0.755; seed 1, the example's, 0.7425); the bag-of-words logistic
    // regression of tools/text_classify_baseline.py reaches 0.8375 on the same split.
    assert!(acc >= 0.72, "test accuracy {acc}");
    // The checkpoint holds both fields' fitted BPE: `eval` tokenizes the text as training did.
    let out = nnlc(&[
        "eval",
        "examples/text_classify.nnl",
        "--checkpoint",
        dir.join("ckpt").to_str().unwrap(),
        "--split",
        "test",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(shown.contains(&format!("accuracy {acc:.4}")), "{shown}");
}

#[test]
fn breast_cancer_reaches_95_percent() {
    let dir = scratch("cancer");
    let r = train("examples/breast_cancer.nnl", &dir, &[]);
    assert!(test_metric(&r, "binary_accuracy") >= 0.95, "{}", r["test"]);
}

#[test]
fn diabetes_regression_reaches_r2_0_40() {
    let dir = scratch("diabetes");
    let r = train("examples/diabetes.nnl", &dir, &[]);
    let (r2, rmse) = (test_metric(&r, "r2"), test_metric(&r, "rmse"));
    eprintln!("diabetes: test R² {r2:.3}, RMSE {rmse:.3} (standardized target)");
    assert!(r2 >= 0.40, "R² {r2}");
    // With a standardized target, R² ≈ 1 − MSE: the two metrics must agree.
    assert!(rmse > 0.0 && rmse < 1.0, "RMSE {rmse}");
}

#[test]
fn autoencoder_reconstruction_loss_falls_by_more_than_half() {
    let dir = scratch("autoencoder");
    let r = train(
        "examples/autoencoder.nnl",
        &dir,
        &["--epochs", "3", "--steps-per-epoch", "60"],
    );
    let epochs = r["epochs"].as_array().unwrap();
    let first = epochs[0]["train"]["loss"].as_f64().unwrap();
    let last = epochs.last().unwrap()["val"]["loss"].as_f64().unwrap();
    eprintln!(
        "autoencoder: train loss of epoch 1 {first:.4}, validation loss at the end {last:.4}"
    );
    assert!(last < first / 2.0, "{first} → {last}");
    assert!(test_metric(&r, "loss") < first / 2.0);
}

#[test]
fn gan_phases_train_in_turn_and_neither_side_collapses() {
    let dir = scratch("gan");
    let r = train(
        "examples/gan.nnl",
        &dir,
        &["--epochs", "2", "--steps-per-epoch", "60"],
    );
    for e in r["epochs"].as_array().unwrap() {
        let d = e["train"]["loss.discriminator"].as_f64().unwrap();
        let g = e["train"]["loss.generator"].as_f64().unwrap();
        // The critic learns (below chance, 2·ln 2 ≈ 1.39) without winning outright, and the
        // generator's loss stays finite and bounded.
        assert!(d > 0.01 && d < 1.39, "discriminator loss {d}");
        assert!(g > 0.1 && g < 15.0, "generator loss {g}");
    }
    // Two losses and no early_stop: no single number picks a best epoch.
    assert_eq!(r["best"], Value::Null);
    assert!(dir.join("ckpt/last.safetensors").exists());
    assert!(!dir.join("ckpt/best.safetensors").exists());
}

/// The tensors of a checkpoint, by name.
fn tensors(path: &Path) -> Vec<(String, nnl::tensor::Tensor)> {
    store::read_safetensors(path).expect("a checkpoint").0
}

#[test]
fn a_resumed_run_ends_with_the_same_parameters_as_an_uninterrupted_one() {
    // Breast cancer has dropout, so the random stream must resume where it stopped too.
    let file = "examples/breast_cancer.nnl";
    let whole = scratch("resume-whole");
    train(file, &whole, &["--epochs", "6", "--threads", "1"]);
    let parts = scratch("resume-parts");
    train(file, &parts, &["--epochs", "3", "--threads", "1"]);
    let ckpt = parts.join("ckpt");
    let r = train(
        file,
        &parts,
        &[
            "--resume",
            ckpt.to_str().unwrap(),
            "--epochs",
            "6",
            "--threads",
            "1",
        ],
    );
    assert_eq!(r["resumed_after_epoch"], 3);
    assert_eq!(r["epochs"].as_array().unwrap().len(), 6);
    let (a, b) = (
        tensors(&whole.join("ckpt/last.safetensors")),
        tensors(&ckpt.join("last.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta == tb, "`{na}` differs after resuming");
    }
}

#[test]
fn a_crash_between_writing_and_renaming_keeps_the_previous_checkpoint() {
    let dir = scratch("crash");
    train("examples/iris.nnl", &dir, &["--epochs", "1"]);
    let last = dir.join("ckpt/last.safetensors");
    let before = std::fs::read(&last).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(["run", "examples/iris.nnl", "--epochs", "2", "--resume"])
        .arg(dir.join("ckpt"))
        .env(store::ABORT_BEFORE_RENAME, "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run was meant to crash");
    assert_eq!(
        std::fs::read(&last).unwrap(),
        before,
        "the checkpoint changed"
    );
    // And the run continues from it.
    let r = train(
        "examples/iris.nnl",
        &dir,
        &[
            "--resume",
            dir.join("ckpt").to_str().unwrap(),
            "--epochs",
            "2",
        ],
    );
    assert_eq!(r["resumed_after_epoch"], 1);
}

#[test]
fn eval_and_predict_use_the_saved_weights_and_statistics() {
    let dir = scratch("eval");
    let r = train("examples/iris.nnl", &dir, &[]);
    let ckpt = dir.join("ckpt");
    let out = nnlc(&[
        "eval",
        "examples/iris.nnl",
        "--checkpoint",
        ckpt.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    let acc = format!("accuracy {:.4}", test_metric(&r, "accuracy"));
    assert!(printed.contains(&acc), "{printed} lacks {acc}");

    // Raw measurements, as in the CSV file: standardized with the saved statistics.
    let input = dir.join("flowers.csv");
    std::fs::write(
        &input,
        "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.4,3.2,4.5,1.5\n7.7,3.0,6.1,2.3\n",
    )
    .unwrap();
    for ext in ["csv", "npy"] {
        let output = dir.join(format!("out.{ext}"));
        let out = nnlc(&[
            "predict",
            "examples/iris.nnl",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "-o",
            output.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(output.exists());
    }
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(dir.join("out.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect();
    let classes: Vec<usize> = rows
        .iter()
        .map(|r| (0..3).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap())
        .collect();
    assert_eq!(
        classes,
        [0, 1, 2],
        "setosa, versicolor, virginica: {rows:?}"
    );
}

/// Writes `files` into a fresh directory and runs `nnlc run` on its `model.nnl`.
fn run_with_files(name: &str, files: &[(&str, &str)]) -> (Output, PathBuf) {
    let dir = scratch(name);
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let model = dir.join("model.nnl");
    let ckpt = dir.join("ckpt");
    let out = nnlc(&[
        "run",
        model.to_str().unwrap(),
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
    ]);
    (out, dir)
}

const TABLE_MODEL: &str = r#"
use std.nn.{Dense}

data table {
  source = csv("table.csv", header: true)
  x: f32[2] = cols(0..2)
  y: f32[3] = col(2) |> one_hot(3)
  split test = 0.25 of source
}

model Net()(x: f32[B, 2]) -> f32[B, 3] {
  x |> Dense(3)
}

train Net on table {
  loss      = cross_entropy(logits: out, target: y)
  optimizer = sgd(lr: 0.1)
  batch 2
  epochs 1
}
"#;

/// Bad data is reported with its file, line and column, and nothing is trained or saved.
fn assert_data_error(name: &str, csv: &str, expected: &[&str]) {
    let (out, dir) = run_with_files(name, &[("model.nnl", TABLE_MODEL), ("table.csv", csv)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for e in expected {
        assert!(err.contains(e), "`{e}` not in:\n{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!dir.join("ckpt").exists(), "a checkpoint was written");
}

#[test]
fn a_ragged_csv_row_names_its_line() {
    assert_data_error(
        "ragged",
        "a,b,c\n1,2,0\n3,4,1\n5,6\n7,8,2\n",
        &["table.csv:4:", "2 cells"],
    );
}

#[test]
fn a_non_numeric_cell_names_its_line_and_column() {
    assert_data_error(
        "nonnumeric",
        "a,b,c\n1,2,0\n3,x4,1\n5,6,2\n7,8,0\n",
        &["table.csv:3:3:", "x4"],
    );
}

#[test]
fn a_label_out_of_range_names_its_line() {
    assert_data_error(
        "label",
        "a,b,c\n1,2,0\n3,4,1\n5,6,7\n7,8,0\n",
        &["table.csv:4:5:", "7"],
    );
}

#[test]
fn a_missing_data_file_is_named() {
    let (out, _) = run_with_files("missing", &[("model.nnl", TABLE_MODEL)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("table.csv") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn a_feature_of_the_wrong_size_names_the_file_and_field() {
    let model = r#"
use std.nn.{Dense}

data arrays {
  train = npz("arrays.npz")
  x: f32[4] = array("x")
  y: i32    = array("y")
}

model Net()(x: f32[B, 4]) -> f32[B, 3] {
  x |> Dense(3)
}

train Net on arrays {
  loss      = sparse_cross_entropy(logits: out, target: y)
  optimizer = sgd(lr: 0.1)
  batch 2
  epochs 1
}
"#;
    let dir = scratch("feature-size");
    std::fs::write(dir.join("model.nnl"), model).unwrap();
    let file = std::fs::File::create(dir.join("arrays.npz")).unwrap();
    let mut npz = ndarray_npy::NpzWriter::new(file);
    npz.add_array("x", &ndarray::ArrayD::<f32>::zeros(vec![6, 5]))
        .unwrap();
    npz.add_array("y", &ndarray::ArrayD::<i32>::zeros(vec![6]))
        .unwrap();
    npz.finish().unwrap();
    let out = nnlc(&["run", dir.join("model.nnl").to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("arrays.npz") && err.contains("`x`"), "{err}");
}

#[test]
fn a_nan_loss_stops_the_run_naming_the_step_and_the_op() {
    let model = TABLE_MODEL.replace(
        "loss      = cross_entropy(logits: out, target: y)",
        "loss      = cross_entropy(logits: log(out - 1000), target: y)",
    );
    let csv = "a,b,c\n1,2,0\n3,4,1\n5,6,2\n7,8,0\n";
    let (out, dir) = run_with_files("nan", &[("model.nnl", &model), ("table.csv", csv)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("epoch 1, step 1"), "{err}");
    assert!(err.contains("NaN"), "{err}");
    assert!(
        err.contains("log") && err.contains("model.nnl:16:"),
        "{err}"
    );
    assert!(!dir.join("ckpt/last.safetensors").exists());
}

#[test]
fn set_overrides_hyperparameters_and_rejects_unknown_ones() {
    let dir = scratch("set");
    let r = train(
        "examples/iris.nnl",
        &dir,
        &["--set", "epochs=2", "--set", "hidden=8", "--set", "lr=0.05"],
    );
    assert_eq!(r["epochs"].as_array().unwrap().len(), 2);
    assert_eq!(r["parameters"], 4 * 8 + 8 + 8 * 3 + 3);
    let out = nnlc(&["run", "examples/iris.nnl", "--set", "hiden=8"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("IrisMlp.hidden"), "{err}");
}

#[test]
fn penguins_train_from_the_raw_csv_and_predict_species_names() {
    let dir = scratch("penguins");
    let r = train("examples/penguins.nnl", &dir, &[]);
    let acc = test_metric(&r, "accuracy");
    assert!(acc >= 0.97, "test accuracy {acc}");
    // The confusion matrix names the species; its counts add up to the test split.
    let c = &r["confusion"];
    assert_eq!(
        c["classes"],
        serde_json::json!(["Adelie", "Chinstrap", "Gentoo"])
    );
    let total: u64 = c["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(total, r["data"]["test"].as_u64().unwrap());

    // The checkpoint holds the vocabularies (metadata) and the imputation statistics.
    let ckpt = dir.join("ckpt/best.safetensors");
    let (tensors, metadata) = store::read_safetensors(&ckpt).unwrap();
    assert_eq!(
        metadata["data.species.categories"],
        r#"[{"names":["Adelie","Chinstrap","Gentoo"],"most_frequent":0}]"#
    );
    assert_eq!(
        metadata["data.island.categories"],
        r#"[{"names":["Biscoe","Dream","Torgersen"],"most_frequent":0}]"#
    );
    assert!(metadata["data.sex.categories"].contains(r#""names":["female","male"]"#));
    let donors = tensors
        .iter()
        .find(|(n, _)| n == "data.penguins.size.0.impute.donors")
        .map(|(_, t)| t.shape().to_vec())
        .expect("the training samples of impute(knn) are saved");
    assert_eq!(donors, [r["data"]["train"].as_u64().unwrap() as usize, 4]);

    // `predict` on raw rows (strings, NAs, the columns in another order) writes names.
    let rows = dir.join("rows.csv");
    std::fs::write(
        &rows,
        "sex,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n\
         male,Torgersen,39.1,18.7,181,3750\n\
         NA,Biscoe,NA,NA,NA,NA\n\
         female,Biscoe,46.1,13.2,211,4500\n\
         male,Dream,50.0,19.5,196,3900\n",
    )
    .unwrap();
    let predict = |input: &Path| {
        nnlc(&[
            "predict",
            "examples/penguins.nnl",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            "class",
            "-o",
            "-",
        ])
    };
    let out = predict(&rows);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(names.len(), 4);
    assert_eq!(names[0], "Adelie");
    assert_eq!(names[2], "Gentoo");
    assert_eq!(names[3], "Chinstrap");
    assert!(["Adelie", "Chinstrap", "Gentoo"].contains(&names[1].as_str()));

    // An island not seen in training is an error at its cell.
    let unseen = dir.join("unseen.csv");
    std::fs::write(
        &unseen,
        "island,sex,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n\
         Dream,male,39.1,18.7,181,3750\n\
         Anvers,male,39.1,18.7,181,3750\n",
    )
    .unwrap();
    let out = predict(&unseen);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unseen.csv:3:1: field `island`: `Anvers` is not one of the categories seen in training (Biscoe, Dream, Torgersen)"),
        "{}",
        stderr(&out)
    );
}

/// Writes the digits image folder with `tools/digits_folder.py --arrays` into `dir/data/
/// digits_folder` (PNGs and the arrays they were written from) and copies the example beside.
fn digits_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("data/digits_folder");
    let out = Command::new("python3")
        .arg("tools/digits_folder.py")
        .arg("--arrays")
        .arg(&folder)
        .output()
        .expect("python3 runs tools/digits_folder.py");
    assert!(out.status.success(), "{}", stderr(&out));
    let example = dir.join("digits_folder.nnl");
    std::fs::copy("examples/digits_folder.nnl", &example).unwrap();
    example
}

/// The files under `dir` (relative paths, sorted) with their bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "png") {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_digits_cnn_trains_from_pngs_as_from_the_arrays_they_were_written_from() {
    let dir = scratch("digits-folder");
    let example = digits_folder(&dir);
    // The committed folder is the script's output.
    assert!(
        tree(&dir.join("data/digits_folder")) == tree(Path::new("examples/data/digits_folder")),
        "examples/data/digits_folder differs from what tools/digits_folder.py writes"
    );
    // The same CNN on the CSV arrays: only the data block's sources and columns differ.
    let text = std::fs::read_to_string(&example).unwrap();
    let arrays = text
        .replace(
            r#"images("data/digits_folder/train", size: [8, 8], channels: 1)"#,
            r#"csv("data/digits_folder/train.csv")"#,
        )
        .replace(
            r#"images("data/digits_folder/test", size: [8, 8], channels: 1)"#,
            r#"csv("data/digits_folder/test.csv")"#,
        )
        .replace("= image |>", "= cols(0..64) |> reshape([1, 8, 8]) |>")
        .replace("= label", "= col(64)");
    assert!(
        arrays.contains("csv(") && !arrays.contains("images(\"") && !arrays.contains("= image"),
        "{arrays}"
    );
    let twin = dir.join("digits_arrays.nnl");
    std::fs::write(&twin, arrays).unwrap();
    for d in ["pngs", "arrays"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let from_pngs = train(example.to_str().unwrap(), &dir.join("pngs"), &[]);
    let from_arrays = train(twin.to_str().unwrap(), &dir.join("arrays"), &[]);
    let (a, b) = (
        test_metric(&from_pngs, "accuracy"),
        test_metric(&from_arrays, "accuracy"),
    );
    eprintln!(
        "digits CNN: test accuracy {a:.4} from PNGs, {b:.4} from arrays ({:.1}s)",
        from_pngs["timings"]["train_seconds"]
    );
    assert!((a - b).abs() <= 0.005, "PNGs {a}, arrays {b}");
    // The last 360 digits, written by other people than the first, are the harder part: this
    // run ends at 95.0% (seed 1, the example's).
    assert!(a >= 0.93, "test accuracy {a}");
    // The confusion matrix names the classes by their folders.
    assert_eq!(
        from_pngs["confusion"]["classes"],
        serde_json::json!(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"])
    );
}

#[test]
fn a_corrupt_png_is_named_in_the_error() {
    let dir = scratch("digits-corrupt");
    let example = digits_folder(&dir);
    let bad = dir.join("data/digits_folder/train/3/0003.png");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.truncate(30);
    std::fs::write(&bad, bytes).unwrap();
    let out = nnlc(&["run", example.to_str().unwrap(), "--epochs", "1"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("digits_folder/train/3/0003.png: "), "{e}");
    assert!(e.contains("skip_bad: true"), "{e}");
}

#[test]
fn image_augmentations_resume_bit_for_bit_and_show_a_grid() {
    let dir = scratch("augment-resume");
    let example = digits_folder(&dir);
    // Every image augmentation at once, on RGB copies of the digits, for a few epochs.
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("channels: 1", "channels: 3")
        .replace(
            "x: f32[1, 8, 8] = image |> scale(1 / 240)",
            "x: f32[3, 8, 8] = image |> scale(1 / 240) |> random_rotation(15) \
             |> random_resized_crop(scale: [0.6, 1], ratio: [0.8, 1.25]) |> random_flip(both) \
             |> color_jitter(brightness: 0.3, contrast: 0.3)",
        )
        .replace("f32[B, 1, 8, 8]", "f32[B, 3, 8, 8]")
        .replace("epochs 15", "epochs 4");
    let file = dir.join("augmented.nnl");
    std::fs::write(&file, text).unwrap();
    let file = file.to_str().unwrap();
    let (whole, parts) = (dir.join("whole"), dir.join("parts"));
    for d in [&whole, &parts] {
        std::fs::create_dir_all(d).unwrap();
    }
    train(file, &whole, &["--threads", "1"]);
    train(file, &parts, &["--epochs", "2", "--threads", "1"]);
    let ckpt = parts.join("ckpt");
    let r = train(
        file,
        &parts,
        &[
            "--resume",
            ckpt.to_str().unwrap(),
            "--epochs",
            "4",
            "--threads",
            "1",
        ],
    );
    assert_eq!(r["resumed_after_epoch"], 2);
    let (a, b) = (
        tensors(&whole.join("ckpt/last.safetensors")),
        tensors(&ckpt.join("last.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta == tb, "`{na}` differs after resuming");
    }

    // `nnlc data --show` draws the augmented samples: the same picture twice, another epoch
    // another one.
    let grid = |name: &str, epoch: &str| {
        let png = dir.join(name);
        let out = nnlc(&[
            "data",
            file,
            "--show",
            "16",
            "--epoch",
            epoch,
            "-o",
            png.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.contains("classes of y (10): 0, 1, 2"), "{stdout}");
        std::fs::read(png).unwrap()
    };
    let first = grid("a.png", "0");
    assert_eq!(first, grid("b.png", "0"));
    assert_ne!(first, grid("c.png", "1"));
    let decoder = png::Decoder::new(std::io::Cursor::new(&first));
    let info = decoder.read_info().unwrap().info().clone();
    assert!(
        info.width >= 4 * 96 && info.height >= 4 * 96,
        "{}×{}",
        info.width,
        info.height
    );
}

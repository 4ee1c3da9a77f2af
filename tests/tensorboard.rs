//! TensorBoard event files read by TensorBoard's own reader: `nnlc run --logdir` on iris holds
//! every scalar of the `--report` (to 1e-6), train and validation under the same tags in
//! sibling runs, the histograms of every parameter and its gradient; a run's warnings are in the
//! Text tab; a search's HParams summaries decode as the plugin's messages.
//!
//! The reader is `tests/python/tb_dump.py` (the `tensorboard` package's `EventAccumulator`):
//! `.ci/run` installs `tests/python/requirements.txt` into a virtual environment and sets
//! `NNL_PYTHON`; without it the test looks for `~/.cache/nnl/venv/bin/python`.

use nnl::tensorboard::EventWriter;
use nnl::tensorboard::hparams::{self, Domain, HParam, HParamSpec, MetricSpec, Status};
use serde_json::Value;
use std::collections::BTreeSet;
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

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "nnlc failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NNL_PYTHON") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let venv = home.join(".cache/nnl/venv/bin/python");
    assert!(
        venv.exists(),
        "this test needs Python with the packages of tests/python/requirements.txt: run .ci/run, \
         or `python3 -m venv ~/.cache/nnl/venv && ~/.cache/nnl/venv/bin/pip install -r tests/python/requirements.txt`, \
         or set NNL_PYTHON"
    );
    venv
}

/// What TensorBoard reads in a log directory, per run.
fn dump(logdir: &Path) -> Value {
    let out = Command::new(python())
        .arg(root().join("tests/python/tb_dump.py"))
        .arg(logdir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "tb_dump.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("tb_dump.py prints JSON")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-tb-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn close(a: f64, b: f64) -> bool {
    // TensorBoard stores scalars as 32-bit floats.
    (a - b).abs() <= 1e-6 * b.abs().max(1e-30) || (a.is_nan() && b.is_nan())
}

/// Checks that `run`'s scalar `tag` holds `value` at `step`, and records the tag as expected.
struct Scalars<'a> {
    dump: &'a Value,
    expected: BTreeSet<(String, String)>,
    compared: usize,
}

impl Scalars<'_> {
    fn expect(&mut self, run: &str, tag: &str, step: u64, value: f64) {
        self.expected.insert((run.to_string(), tag.to_string()));
        let points = self.dump[run]["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("run `{run}` has no scalar `{tag}`"));
        let found: Vec<f64> = points
            .iter()
            .filter(|p| p[0].as_u64() == Some(step))
            .map(|p| p[1].as_f64().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(found.len(), 1, "`{run}` `{tag}` at step {step}: {found:?}");
        assert!(
            close(found[0], value),
            "`{run}` `{tag}` at step {step}: TensorBoard reads {}, the report says {value}",
            found[0]
        );
        self.compared += 1;
    }
}

fn metrics(v: &Value) -> Vec<(String, f64)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn iris_event_files_hold_every_scalar_of_the_report_and_the_histograms() {
    let dir = scratch("iris");
    let logs = dir.join("logs");
    let report_path = dir.join("report.json");
    ok(&nnlc(&[
        "run",
        "examples/iris.nnl",
        "--threads",
        "1",
        "--epochs",
        "12",
        "--log-every",
        "5",
        "--logdir",
        logs.to_str().unwrap(),
        "--checkpoint-dir",
        dir.join("ckpt").to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
    ]));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let tb = dump(&logs);
    let mut s = Scalars {
        dump: &tb,
        expected: BTreeSet::new(),
        compared: 0,
    };
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 12);
    for e in epochs {
        let epoch = e["epoch"].as_u64().unwrap();
        for (name, value) in metrics(&e["train"]) {
            s.expect("train", &format!("epoch/{name}"), epoch, value);
        }
        for (name, value) in metrics(&e["val"]) {
            s.expect("val", &format!("epoch/{name}"), epoch, value);
        }
        let rate = e["samples_per_second"].as_f64().unwrap();
        s.expect("train", "epoch/samples_per_second", epoch, rate);
        let health = &e["health"];
        for l in health["layers"].as_array().unwrap() {
            let layer = l["layer"].as_str().unwrap();
            for stat in ["grad_norm", "weight_norm", "update_ratio"] {
                let tag = format!("health/{layer}/{stat}");
                s.expect("train", &tag, epoch, l[stat].as_f64().unwrap());
            }
        }
        for r in health["relus"].as_array().unwrap() {
            let tag = format!("health/{}/dead_fraction", r["relu"].as_str().unwrap());
            s.expect("train", &tag, epoch, r["dead_fraction"].as_f64().unwrap());
        }
    }
    let steps = report["steps"].as_array().unwrap();
    // 96 training samples in batches of 16: 6 steps per epoch, every 5th logged.
    assert_eq!(steps.len(), 12 * 6 / 5);
    for st in steps {
        let step = st["step"].as_u64().unwrap();
        assert_eq!(step % 5, 0);
        assert!(st["metrics"]["accuracy"].is_number(), "{st}");
        let logged = [&st["loss"], &st["metrics"], &st["learning_rate"]];
        for (key, value) in logged.into_iter().flat_map(metrics) {
            s.expect("train", &format!("step/{key}"), step, value);
        }
    }
    assert!(close(
        steps[0]["learning_rate"]["learning_rate"].as_f64().unwrap(),
        1e-2
    ));
    for (name, value) in metrics(&report["test"]) {
        s.expect("test", &format!("epoch/{name}"), 12, value);
    }
    // Nothing TensorBoard shows is missing from the report.
    let shown: BTreeSet<(String, String)> = tb
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(run, r)| {
            r["scalars"]
                .as_object()
                .unwrap()
                .keys()
                .map(|tag| (run.clone(), tag.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(shown, s.expected);
    // Train and validation overlay: the same tags in sibling runs.
    for tag in ["epoch/loss", "epoch/accuracy"] {
        assert!(s.expected.contains(&("train".into(), tag.into())));
        assert!(s.expected.contains(&("val".into(), tag.into())));
    }
    assert!(s.compared > 12 * 12, "{} values compared", s.compared);

    // A histogram of every parameter and of its gradient at every epoch, of every element.
    let sizes = [
        ("IrisMlp.dense_1.w", 64.0),
        ("IrisMlp.dense_1.b", 16.0),
        ("IrisMlp.dense_2.w", 48.0),
        ("IrisMlp.dense_2.b", 3.0),
    ];
    for (param, numel) in sizes {
        for kind in ["weights", "gradients"] {
            let tag = format!("{kind}/{param}");
            let h = tb["train"]["histograms"][&tag]
                .as_array()
                .unwrap_or_else(|| panic!("no histogram `{tag}`"));
            let epochs: Vec<u64> = h.iter().map(|e| e[0].as_u64().unwrap()).collect();
            assert_eq!(epochs, (1..=12).collect::<Vec<u64>>(), "{tag}");
            for e in h {
                assert_eq!(e[1].as_f64(), Some(numel), "{tag}");
                assert!(e[2].as_f64() <= e[3].as_f64(), "{tag}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn warnings_are_in_the_text_tab() {
    let dir = scratch("warnings");
    let logs = dir.join("logs");
    let stderr = ok(&nnlc(&[
        "run",
        "examples/mnist_mlp.nnl",
        "--set",
        "lr=10",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "30",
        "--logdir",
        logs.to_str().unwrap(),
        "--checkpoint-dir",
        dir.join("ckpt").to_str().unwrap(),
    ]));
    assert!(
        stderr.contains("warning: learning rate too high"),
        "{stderr}"
    );
    let tb = dump(&logs);
    let texts = tb["train"]["text"]["health/warnings"]
        .as_array()
        .expect("a text summary `health/warnings`");
    assert!(
        texts.iter().any(|t| t[1]
            .as_str()
            .unwrap()
            .contains("**learning rate too high** in `Mlp.dense_")),
        "{texts:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// What `nnlc search` will write for each trial: `nnlc run --logdir <logdir>/<trial>`, then the
/// HParams summaries with the library.
#[test]
fn a_search_s_hparams_summaries_open_in_tensorboard() {
    let logs = scratch("hparams");
    let trials = [("lr_0.01", 0.01), ("lr_0.05", 0.05)];
    for (trial, lr) in trials {
        ok(&nnlc(&[
            "run",
            "examples/iris.nnl",
            "--threads",
            "1",
            "--epochs",
            "3",
            "--set",
            &format!("lr={lr}"),
            "--logdir",
            logs.join(trial).to_str().unwrap(),
            "--checkpoint-dir",
            logs.join(trial).join("ckpt").to_str().unwrap(),
        ]));
        let mut w = EventWriter::create(&logs.join(trial)).unwrap();
        let values = [
            ("lr".to_string(), HParam::Number(lr)),
            ("optimizer".to_string(), HParam::Text("adam".into())),
        ];
        w.summary(0, hparams::session_start(&values, "", 1.0e9))
            .unwrap();
        w.summary(0, hparams::session_end(Status::Success, 1.0e9 + 5.0))
            .unwrap();
        w.flush().unwrap();
    }
    let mut root = EventWriter::create(&logs).unwrap();
    let specs = [
        HParamSpec {
            name: "lr".into(),
            domain: Domain::Discrete(vec![HParam::Number(0.01), HParam::Number(0.05)]),
        },
        HParamSpec {
            name: "optimizer".into(),
            domain: Domain::Discrete(vec![HParam::Text("adam".into())]),
        },
    ];
    let metric = MetricSpec {
        group: "val".into(),
        tag: "epoch/loss".into(),
        training: false,
    };
    root.summary(0, hparams::experiment("iris lr", &specs, &[metric], 1.0e9))
        .unwrap();
    root.flush().unwrap();

    let tb = dump(&logs);
    let experiment = &tb["."]["hparams"][hparams::EXPERIMENT_TAG]["experiment"];
    assert_eq!(experiment["name"], "iris lr");
    let infos = experiment["hparamInfos"].as_array().unwrap();
    assert_eq!(infos[0]["name"], "lr");
    assert_eq!(infos[0]["type"], "DATA_TYPE_FLOAT64");
    assert_eq!(infos[0]["domainDiscrete"], serde_json::json!([0.01, 0.05]));
    assert_eq!(infos[0]["differs"], true);
    assert_eq!(infos[1]["type"], "DATA_TYPE_STRING");
    let metric = &experiment["metricInfos"][0];
    assert_eq!(
        metric["name"],
        serde_json::json!({"group": "val", "tag": "epoch/loss"})
    );
    assert_eq!(metric["datasetType"], "DATASET_VALIDATION");
    for (trial, lr) in trials {
        let h = &tb[trial]["hparams"];
        let start = &h[hparams::SESSION_START_TAG]["sessionStartInfo"];
        assert_eq!(start["hparams"]["lr"], serde_json::json!(lr));
        assert_eq!(start["hparams"]["optimizer"], "adam");
        let end = &h[hparams::SESSION_END_TAG]["sessionEndInfo"];
        assert_eq!(end["status"], "STATUS_SUCCESS");
        // The metric the HParams tab shows: `epoch/loss` in the run `<trial>/val`.
        let val = tb[format!("{trial}/val")]["scalars"]["epoch/loss"]
            .as_array()
            .expect("the trial's validation loss");
        assert_eq!(val.len(), 3);
    }
    std::fs::remove_dir_all(&logs).ok();
}

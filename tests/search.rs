//! `nnlc search` end to end on iris: the grid against separate `nnlc run --set` runs, the same
//! trials whatever `--jobs`, a search killed with SIGKILL and resumed (also between a trial's
//! last checkpoint and its record), a diverging trial,
//! Hyperband's promotions continuing from checkpoints, a value the file cannot take.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn nnlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("nnlc runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-search-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "nnlc failed:\n{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    o
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("written")).expect("JSON")
}

/// Runs a search in `dir` with `args`; its report.
fn search(file: &str, dir: &Path, args: &[&str]) -> (Value, String) {
    let d = dir.to_str().unwrap();
    let report = dir.with_extension("json");
    let mut all = vec![
        "search",
        file,
        "--dir",
        d,
        "--report",
        report.to_str().unwrap(),
    ];
    all.extend(args);
    let out = ok(nnlc(&all));
    (json(&report), text(&out.stdout))
}

/// The lowest validation loss over a report's epochs.
fn best_val_loss(epochs: &Value) -> f64 {
    epochs
        .as_array()
        .expect("epochs")
        .iter()
        .map(|e| e["val"]["loss"].as_f64().expect("val.loss"))
        .fold(f64::INFINITY, f64::min)
}

/// A trial without its times (which differ between any two runs).
fn comparable(trial: &Value) -> Value {
    let mut t = trial.clone();
    t["seconds"] = Value::Null;
    t["checkpoint"] = Value::Null;
    for e in t["history"].as_array_mut().expect("history") {
        for key in ["seconds", "train_seconds", "samples_per_second"] {
            e[key] = Value::Null;
        }
    }
    t
}

fn trials(report: &Value) -> Vec<Value> {
    report["trials"]
        .as_array()
        .expect("trials")
        .iter()
        .map(comparable)
        .collect()
}

#[test]
fn grid_search_on_iris_finds_the_best_of_nine_separate_runs() {
    let dir = scratch("grid");
    let (report, stdout) = search("examples/search_iris.nnl", &dir.join("s"), &[]);
    let trials = report["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 9, "{stdout}");
    let mut best: Option<(f64, u64, String)> = None;
    for t in trials {
        let hidden = t["config"][0]["value"].as_str().unwrap().to_string();
        let lr = t["config"][1]["value"].as_str().unwrap().to_string();
        let n = t["trial"].as_u64().unwrap();
        let run_report = dir.join(format!("run{n}.json"));
        ok(nnlc(&[
            "run",
            "examples/search_iris.nnl",
            "--set",
            &format!("hidden={hidden}"),
            "--set",
            &format!("lr={lr}"),
            "--checkpoint-dir",
            dir.join(format!("run{n}")).to_str().unwrap(),
            "--report",
            run_report.to_str().unwrap(),
        ]));
        let alone = best_val_loss(&json(&run_report)["epochs"]);
        assert_eq!(t["goal"].as_f64(), Some(alone), "trial {n}");
        // The trial's own report, in its checkpoint directory, is the run's.
        let own = json(&dir.join(format!("s/trial-{n:03}/report.json")));
        assert_eq!(best_val_loss(&own["epochs"]), alone);
        let command =
            format!("nnlc run examples/search_iris.nnl --set hidden={hidden} --set lr={lr}");
        assert_eq!(t["command"].as_str(), Some(command.as_str()));
        if best.as_ref().is_none_or(|b| alone < b.0) {
            best = Some((alone, n, command));
        }
    }
    let (value, n, command) = best.unwrap();
    assert_eq!(report["best"].as_u64(), Some(n));
    assert!(report["finished"].as_bool().unwrap());
    assert!(
        stdout.contains(&format!("best: trial {n}, val.loss {value:.4}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("reproduce: {command}")),
        "{stdout}"
    );
    // Every grid point once, the last list varying fastest.
    let points: Vec<(String, String)> = trials
        .iter()
        .map(|t| {
            (
                t["config"][0]["value"].as_str().unwrap().into(),
                t["config"][1]["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(points[1], ("4".into(), "1e-2".into()));
    assert_eq!(points[3], ("16".into(), "1e-3".into()));
}

#[test]
fn a_search_refuses_a_directory_holding_another_and_overwrite_replaces_it() {
    let dir = scratch("again");
    let s = dir.join("s");
    search("tests/search/diverge.nnl", &s, &[]);
    let out = nnlc(&[
        "search",
        "tests/search/diverge.nnl",
        "--dir",
        s.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("holds an earlier search") && err.contains("--resume"),
        "{err}"
    );
    search("tests/search/diverge.nnl", &s, &["--overwrite"]);
}

#[test]
fn random_search_gives_the_same_trials_with_one_or_two_jobs() {
    let dir = scratch("jobs");
    let (one, _) = search(
        "tests/search/random_iris.nnl",
        &dir.join("one"),
        &["--jobs", "1", "--threads", "2"],
    );
    let (two, _) = search(
        "tests/search/random_iris.nnl",
        &dir.join("two"),
        &["--jobs", "2", "--threads", "2"],
    );
    assert_eq!(trials(&one).len(), 6);
    assert_eq!(trials(&one), trials(&two));
    assert_eq!(one["best"], two["best"]);
}

#[test]
fn tpe_draws_from_earlier_results_and_gives_the_same_trials_with_any_jobs() {
    let dir = scratch("tpe");
    let (one, _) = search(
        "tests/search/tpe_iris.nnl",
        &dir.join("one"),
        &["--jobs", "1"],
    );
    let (two, _) = search(
        "tests/search/tpe_iris.nnl",
        &dir.join("two"),
        &["--jobs", "2", "--threads", "2"],
    );
    assert_eq!(trials(&one).len(), 8);
    assert_eq!(trials(&one), trials(&two));
    // The start-up trials are random search's draws with the same seed; the rest are not.
    let random = std::fs::read_to_string("tests/search/tpe_iris.nnl")
        .unwrap()
        .replace(
            "tpe(trials: 8, startup: 4, seed: 5)",
            "random(trials: 8, seed: 5)",
        );
    let file = dir.join("random.nnl");
    std::fs::write(
        &file,
        random.replace(
            "../../examples",
            &format!("{}/examples", env!("CARGO_MANIFEST_DIR")),
        ),
    )
    .unwrap();
    let (random, _) = search(
        file.to_str().unwrap(),
        &dir.join("random"),
        &["--allow-path", env!("CARGO_MANIFEST_DIR")],
    );
    let configs = |r: &Value| -> Vec<Value> {
        r["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["config"].clone())
            .collect()
    };
    assert_eq!(configs(&one)[..4], configs(&random)[..4]);
    assert_ne!(configs(&one)[4..], configs(&random)[4..]);
}

#[test]
fn a_search_killed_with_sigkill_resumes_to_the_same_trials_and_best() {
    let dir = scratch("kill");
    let (whole, _) = search("tests/search/random_iris.nnl", &dir.join("whole"), &[]);
    let killed = dir.join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args([
            "search",
            "tests/search/random_iris.nnl",
            "--dir",
            killed.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nnlc starts");
    // Killed as soon as two trials are recorded, while the next ones train (100 epochs each,
    // so that they are still training however fast the machine is).
    let state = killed.join("search.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let recorded = std::fs::read_to_string(&state)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .map_or(0, |v| v["trials"].as_array().map_or(0, Vec::len));
        if recorded >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no trial recorded");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let before = json(&state);
    assert!(!before["finished"].as_bool().unwrap());
    let report = dir.join("resumed.json");
    ok(nnlc(&[
        "search",
        "tests/search/random_iris.nnl",
        "--resume",
        killed.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]));
    let resumed = json(&report);
    assert_eq!(trials(&resumed), trials(&whole));
    assert_eq!(resumed["best"], whole["best"]);
    assert!(resumed["finished"].as_bool().unwrap());
}

/// A kill after a trial's last checkpoint (or its early stop) but before the search recorded
/// the trial: the resumed search finishes the trial from its checkpoint, test metrics and
/// restored best weights included, without training it further.
#[test]
fn a_trial_trained_but_unrecorded_when_killed_is_finished_as_it_would_have_been() {
    let dir = scratch("unrecorded");
    let (whole, _) = search("tests/search/early_stop_iris.nnl", &dir.join("whole"), &[]);
    let last = whole["trials"]
        .as_array()
        .expect("trials")
        .last()
        .expect("a trial");
    assert!(
        last["epochs"].as_u64().unwrap() < 200,
        "the trial stopped early: {last}"
    );
    assert!(last["test"].is_object(), "{last}");
    let state = dir.join("whole").join("search.json");
    let mut killed = json(&state);
    killed["trials"].as_array_mut().unwrap().pop();
    killed["finished"] = Value::Bool(false);
    std::fs::write(&state, serde_json::to_string(&killed).unwrap()).unwrap();
    let report = dir.join("resumed.json");
    ok(nnlc(&[
        "search",
        "tests/search/early_stop_iris.nnl",
        "--resume",
        dir.join("whole").to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]));
    let resumed = json(&report);
    assert_eq!(trials(&resumed), trials(&whole));
    assert_eq!(resumed["best"], whole["best"]);
}

#[test]
fn a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on() {
    let dir = scratch("diverge");
    let (report, stdout) = search("tests/search/diverge.nnl", &dir.join("s"), &[]);
    let t = &report["trials"];
    assert_eq!(t[0]["status"], "completed");
    assert_eq!(t[1]["status"], "failed");
    let message = t[1]["message"].as_str().unwrap();
    assert!(message.contains("the loss is"), "{message}");
    assert!(t[1]["goal"].is_null());
    assert_eq!(report["best"].as_u64(), Some(1));
    assert!(stdout.contains("(1 failed)"), "{stdout}");
}

#[test]
fn hyperband_continues_promoted_trials_from_their_checkpoints() {
    let dir = scratch("hyperband");
    let (report, stdout) = search("tests/search/hyperband_iris.nnl", &dir.join("s"), &[]);
    let trials = report["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 17, "{stdout}");
    let epochs: u64 = trials.iter().map(|t| t["epochs"].as_u64().unwrap()).sum();
    assert_eq!(
        epochs, 69,
        "9 + 6 + 6, 15 + 6 and 27 epochs of the three brackets"
    );
    let promoted: Vec<&Value> = trials
        .iter()
        .filter(|t| t["jobs"].as_array().unwrap().len() > 1)
        .collect();
    assert_eq!(
        promoted.len(),
        4,
        "3 + 1 in the first bracket, 1 in the second"
    );
    // A trial trained to 9 epochs in three jobs has the history of one run of 9 epochs.
    let t = promoted
        .iter()
        .find(|t| t["epochs"].as_u64() == Some(9) && t["jobs"].as_array().unwrap().len() == 3)
        .expect("a trial promoted twice");
    let n = t["trial"].as_u64().unwrap();
    let history: Vec<u64> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(history, (1..=9).collect::<Vec<_>>());
    let run_report = dir.join("alone.json");
    ok(nnlc(&[
        "run",
        "tests/search/hyperband_iris.nnl",
        "--set",
        &format!("hidden={}", t["config"][0]["value"].as_str().unwrap()),
        "--set",
        &format!("lr={}", t["config"][1]["value"].as_str().unwrap()),
        "--epochs",
        "9",
        "--checkpoint-dir",
        dir.join("alone").to_str().unwrap(),
        "--report",
        run_report.to_str().unwrap(),
    ]));
    let alone = json(&run_report);
    for (a, b) in alone["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(t["history"].as_array().unwrap())
    {
        assert_eq!(a["val"], b["val"], "trial {n}");
        assert_eq!(a["train"], b["train"], "trial {n}");
    }
    assert!(stdout.contains("45% of the 153"), "{stdout}");
}

#[test]
fn a_value_the_file_cannot_take_stops_the_search_at_the_search_block() {
    let dir = scratch("bad");
    let out = nnlc(&[
        "search",
        "tests/search/bad_value.nnl",
        "--dir",
        dir.join("s").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Dense needs a positive number of units, got 0"),
        "{err}"
    );
    assert!(
        err.contains("[E0310] Error: the file does not compile with `hidden = 0`"),
        "{err}"
    );
    assert!(err.contains("bad_value.nnl:28:14"), "{err}");
    assert!(!dir.join("s/trial-001").exists());
}

#[test]
fn run_on_a_file_with_a_search_trains_it_as_written_and_names_search() {
    let dir = scratch("run");
    let out = ok(nnlc(&[
        "run",
        "tests/search/diverge.nnl",
        "--epochs",
        "1",
        "--checkpoint-dir",
        dir.join("c").to_str().unwrap(),
    ]));
    let err = text(&out.stderr);
    assert!(
        err.contains("`nnlc search tests/search/diverge.nnl` runs the search"),
        "{err}"
    );
}

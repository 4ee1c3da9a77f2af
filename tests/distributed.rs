//! Data-parallel training (`nnlc run --shards N`, `mpirun -np N nnlc run`): N ranks end with the
//! parameters of one process that adds the same shards' gradient sums in the same order, bit
//! for bit; one process with shards stays within a stated tolerance of the plain step; a run
//! resumes with another number of ranks; a killed rank ends the job and spares the checkpoint.
//! The tests that start `mpirun` need the `mpi` feature
//! (`cargo test --release --features mpi --test distributed`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-dist-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `nnlc run FILE ARGS --report DIR/report.json` (and `--checkpoint-dir DIR/ckpt` unless
/// resuming), in one process.
fn run_one(file: &str, dir: &Path, args: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nnlc"));
    cmd.args(run_args(file, dir, args)).env("NO_COLOR", "1");
    check(cmd.output().expect("nnlc runs"), "nnlc run");
    report(dir)
}

fn run_args(file: &str, dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = vec!["run".into(), file.into(), "--report".into()];
    all.push(dir.join("report.json").display().to_string());
    if !args.contains(&"--resume") {
        all.push("--checkpoint-dir".into());
        all.push(dir.join("ckpt").display().to_string());
    }
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

fn report(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report written");
    serde_json::from_str(&text).expect("the report is JSON")
}

/// The tensors of a run's last checkpoint, by name.
fn last(dir: &Path) -> Vec<(String, nnl::interp::Tensor)> {
    nnl::store::read_safetensors(&dir.join("ckpt/last.safetensors"))
        .expect("a checkpoint")
        .0
}

/// √(Σ(a − b)² / Σb²) of two runs' parameters, the largest over tensors.
fn largest_relative_difference(a: &Path, b: &Path) -> f64 {
    largest_relative_difference_of(a, b, |_| true)
}

/// The same over the tensors whose names `of` accepts.
fn largest_relative_difference_of(a: &Path, b: &Path, of: fn(&str) -> bool) -> f64 {
    let (a, b) = (last(a), last(b));
    assert_eq!(a.len(), b.len());
    let mut worst: f64 = 0.0;
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        if !of(na) {
            continue;
        }
        let (x, y) = (ta.to_f64(), tb.to_f64());
        let diff: f64 = x.iter().zip(&y).map(|(p, q)| (p - q) * (p - q)).sum();
        let norm: f64 = y.iter().map(|q| q * q).sum();
        if norm > 0.0 {
            worst = worst.max((diff / norm).sqrt());
        }
    }
    worst
}

fn test_accuracy(r: &Value) -> f64 {
    r["test"]["accuracy"].as_f64().expect("a test accuracy")
}

const MLP: &str = "examples/mnist_mlp.nnl";
const QUICK: [&str; 6] = ["--threads", "1", "--epochs", "1", "--steps-per-epoch", "40"];

/// Two shards in one process against the plain step on the same global batches. The two
/// compute the same mean gradient, rounded differently: the plain step scales each sample's
/// gradient by 1/64 inside the backward pass, the shards sum unscaled gradients, add two sums
/// and divide once, so the gradients differ by a few ulps (relative 1e-7). Adam's update divides
/// by the running RMS of each gradient and does not amplify a relative error, so after 40 steps
/// the parameters differ by about 2e-7 of their norm (measured); the bound is 1e-5 per tensor,
/// fifty times that, and the test accuracy within 0.1 point (10 of 10,000 images).
#[test]
fn two_shards_in_one_process_stay_within_tolerance_of_the_plain_step() {
    let plain = scratch("plain");
    let a = run_one(MLP, &plain, &QUICK);
    let sharded = scratch("sharded");
    let mut args = QUICK.to_vec();
    args.extend(["--shards", "2"]);
    let b = run_one(MLP, &sharded, &args);
    let worst = largest_relative_difference(&sharded, &plain);
    assert!(worst < 1e-5, "parameters differ by {worst:e} (relative)");
    assert!(
        (test_accuracy(&a) - test_accuracy(&b)).abs() <= 0.001,
        "test accuracy {} against {}",
        test_accuracy(&a),
        test_accuracy(&b)
    );
    // The monitored loss and metrics are reduced over the whole batch, not one shard.
    let (la, lb) = (
        a["epochs"][0]["train"]["loss"].as_f64().unwrap(),
        b["epochs"][0]["train"]["loss"].as_f64().unwrap(),
    );
    assert!((la - lb).abs() < 1e-5 * la, "train loss {la} against {lb}");
}

/// The largest relative difference of a tensor (parameters, running statistics, Adam's moments)
/// between two shards with synchronized batch norm and one plain process after 8 steps: 3.3e-7
/// measured, the bound thirty times that.
const SYNC_BOUND: f64 = 1e-5;
/// The least test accuracy of the synchronized CNN after 150 steps in two shards.
const SYNC_TRAINED: f64 = 0.9;

const CNN_SYNC: &str = "tests/fixtures/distributed/cnn_bn_sync.nnl";
const CNN_STEPS: [&str; 4] = ["--threads", "1", "--steps-per-epoch", "8"];

/// What synchronized batch norm buys: two shards normalize with the statistics of the whole
/// batch, so they compute what one plain process computes, up to the rounding of the sums
/// (each statistic and gradient is added in two parts; [`SYNC_BOUND`]). With per-shard
/// statistics the data-parallel model is another function of the batch, and its weights move
/// away from the plain run's by orders of magnitude more (4e-3 measured).
#[test]
fn two_shards_with_sync_batch_norm_stay_within_tolerance_of_the_plain_step() {
    let plain = scratch("sync-plain");
    run_one(CNN_SYNC, &plain, &CNN_STEPS);
    let sharded = scratch("sync-sharded");
    let mut args = CNN_STEPS.to_vec();
    args.extend(["--shards", "2"]);
    run_one(CNN_SYNC, &sharded, &args);
    let synced = largest_relative_difference(&sharded, &plain);
    eprintln!("sync batch norm, 2 shards against 1 process: {synced:e}");
    assert!(
        synced < SYNC_BOUND,
        "parameters differ by {synced:e} (relative)"
    );

    let per_shard = "tests/fixtures/distributed/cnn_bn.nnl";
    let plain = scratch("local-plain");
    run_one(per_shard, &plain, &CNN_STEPS);
    let sharded = scratch("local-sharded");
    let mut args = CNN_STEPS.to_vec();
    args.extend(["--shards", "2"]);
    run_one(per_shard, &sharded, &args);
    // The weights only: this CNN's convolutions have biases, whose exact gradient through a
    // batch norm is zero, so they differ by rounding noise however the statistics are taken.
    let local = largest_relative_difference_of(&sharded, &plain, |n| n.ends_with(".w"));
    eprintln!("per-shard batch norm, 2 shards against 1 process: {local:e}");
    assert!(
        local > 100.0 * synced,
        "per-shard {local:e} against sync {synced:e}"
    );
}

/// A CNN with synchronized batch norm trains on MNIST in two shards (150 steps of 64 images;
/// 92.8% test accuracy measured).
#[test]
fn a_cnn_with_sync_batch_norm_trains_in_two_shards() {
    let dir = scratch("sync-trains");
    let r = run_one(
        CNN_SYNC,
        &dir,
        &[
            "--threads",
            "1",
            "--steps-per-epoch",
            "150",
            "--shards",
            "2",
        ],
    );
    let accuracy = test_accuracy(&r);
    assert!(accuracy > SYNC_TRAINED, "test accuracy {accuracy}");
}

#[test]
fn a_shard_count_of_zero_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(["run", MLP, "--shards", "0"])
        .output()
        .expect("nnlc runs");
    assert!(!out.status.success());
}

#[cfg(feature = "mpi")]
mod mpi {
    use super::*;
    use std::time::{Duration, Instant};

    fn assert_identical(a: &Path, b: &Path) {
        let (a, b) = (last(a), last(b));
        assert_eq!(a.len(), b.len());
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert!(ta == tb, "`{na}` differs");
        }
    }

    /// `mpirun -np N nnlc run …`; as root in a container Open MPI needs to be told that is
    /// fine, and two ranks may share a core.
    fn mpirun(np: usize, file: &str, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("mpirun");
        cmd.args(["--allow-run-as-root", "--oversubscribe", "-np"])
            .arg(np.to_string())
            .arg(env!("CARGO_BIN_EXE_nnlc"))
            .args(run_args(file, dir, args))
            .env("NO_COLOR", "1");
        cmd
    }

    fn run_ranks(np: usize, file: &str, dir: &Path, args: &[&str]) -> (Value, String) {
        let out = check(
            mpirun(np, file, dir, args).output().expect("mpirun runs"),
            "mpirun",
        );
        (
            report(dir),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Two ranks and one process with two shards, on `file` with `args`.
    fn ranks_match_shards(name: &str, file: &str, args: &[&str]) -> (Value, Value) {
        let ranks = scratch(&format!("{name}-ranks"));
        let (a, stderr) = run_ranks(2, file, &ranks, args);
        assert_eq!(
            stderr.matches("training ").count(),
            1,
            "only rank 0 prints:\n{stderr}"
        );
        let one = scratch(&format!("{name}-one"));
        let mut with_shards = args.to_vec();
        with_shards.extend(["--shards", "2"]);
        let b = run_one(file, &one, &with_shards);
        assert_identical(&ranks, &one);
        assert_eq!(a["epochs"][0]["train"], b["epochs"][0]["train"]);
        (a, b)
    }

    #[test]
    fn two_ranks_end_with_the_parameters_of_one_process_adding_two_shards() {
        let (a, b) = ranks_match_shards("mlp", MLP, &QUICK);
        assert_eq!(test_accuracy(&a), test_accuracy(&b));
    }

    #[test]
    fn two_ranks_with_batch_norm_match_one_process_with_two_shards() {
        // Each shard normalizes by its own statistics; the running ones are the first shard's.
        ranks_match_shards(
            "cnn",
            "tests/fixtures/distributed/cnn_bn.nnl",
            &["--threads", "1", "--steps-per-epoch", "8"],
        );
    }

    /// Synchronized batch norm: the statistics and their gradients are added over the ranks
    /// between stages of the step as the gradients are, in shard order; uneven shards (63 = 32
    /// + 31) check that the count is the global batch's.
    #[test]
    fn two_ranks_with_sync_batch_norm_match_one_process_with_two_shards() {
        ranks_match_shards(
            "cnn-sync",
            CNN_SYNC,
            &["--threads", "1", "--steps-per-epoch", "6", "--batch", "63"],
        );
    }

    #[test]
    fn two_ranks_of_the_lstm_with_clipping_match_one_process_with_two_shards() {
        ranks_match_shards(
            "lstm",
            "examples/lstm_sine.nnl",
            &["--threads", "1", "--epochs", "1", "--steps-per-epoch", "10"],
        );
    }

    /// Uneven shards (27 = 14 + 13, and a smaller last batch), an R² metric reduced from its
    /// sums, and dropout with a stream per shard.
    #[test]
    fn two_ranks_match_two_shards_with_uneven_shards_r2_and_dropout() {
        let (a, _) = ranks_match_shards(
            "diabetes",
            "examples/diabetes.nnl",
            &["--threads", "1", "--epochs", "3", "--batch", "27"],
        );
        assert!(a["test"]["r2"].as_f64().is_some());
        ranks_match_shards(
            "cancer",
            "examples/breast_cancer.nnl",
            &["--threads", "1", "--epochs", "3"],
        );
    }

    /// `--resume` continues a run with another number of processes: the global batch and the
    /// shards are the same, so the result is that of the uninterrupted run.
    #[test]
    fn a_run_resumes_with_another_number_of_ranks() {
        let args = |epochs: &'static str| {
            vec![
                "--threads",
                "1",
                "--epochs",
                epochs,
                "--steps-per-epoch",
                "20",
            ]
        };
        let whole = scratch("resume-whole");
        run_ranks(2, MLP, &whole, &args("2"));

        // 2 ranks, then 1 process computing both shards.
        let two_then_one = scratch("resume-2-1");
        run_ranks(2, MLP, &two_then_one, &args("1"));
        let ckpt = two_then_one.join("ckpt").display().to_string();
        let mut resume = args("2");
        resume.extend(["--resume", &ckpt, "--shards", "2"]);
        let r = run_one(MLP, &two_then_one, &resume);
        assert_eq!(r["resumed_after_epoch"], 1);
        assert_identical(&whole, &two_then_one);

        // 1 process with two shards, then 2 ranks.
        let one_then_two = scratch("resume-1-2");
        let mut first = args("1");
        first.extend(["--shards", "2"]);
        run_one(MLP, &one_then_two, &first);
        let ckpt = one_then_two.join("ckpt").display().to_string();
        let mut resume = args("2");
        resume.extend(["--resume", &ckpt]);
        let (r, _) = run_ranks(2, MLP, &one_then_two, &resume);
        assert_eq!(r["resumed_after_epoch"], 1);
        assert_identical(&whole, &one_then_two);
    }

    /// One sample overflows the loss: the rank whose shard holds it fails, says why, and
    /// `MPI_Abort` ends the other, which was waiting for its gradients (or, on a loaded machine,
    /// had not reached its first step).
    #[test]
    fn a_rank_that_fails_ends_the_job_with_its_message() {
        let dir = scratch("fail");
        let model = r#"
use std.nn.{Dense}

data table {
  train = csv("table.csv", header: true)
  x: f32[1] = col(0) |> reshape([1])
  y: f32[1] = col(1) |> reshape([1])
}

model Line()(x: f32[B, 1]) -> f32[B, 1] {
  x |> Dense(1)
}

train Line on table {
  loss      = mse(out, y)
  optimizer = sgd(lr: 0.1)
  batch 4
  epochs 1
}
"#;
        std::fs::write(dir.join("model.nnl"), model).unwrap();
        std::fs::write(dir.join("table.csv"), "x,y\n1,2\n2,4\n3,6\n1e30,8\n").unwrap();
        let file = dir.join("model.nnl").display().to_string();
        let started = Instant::now();
        let out = mpirun(2, &file, &dir, &["--threads", "1"])
            .output()
            .expect("mpirun runs");
        assert!(started.elapsed() < Duration::from_secs(60));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        // The failing rank says why, once. `MPI_Abort` ends the other with SIGTERM; if that
        // reaches it while it still runs (on a loaded machine, before its first step), it says
        // that it was interrupted, as any run stopped by SIGTERM does, and nothing else.
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error on rank"))
            .collect();
        let why = errors
            .iter()
            .filter(|l| l.contains("epoch 1, step 1: the loss is inf"))
            .count();
        assert_eq!(why, 1, "{stderr}");
        assert!(
            errors
                .iter()
                .all(|l| l.contains("the loss is inf") || l.contains(": interrupted")),
            "{stderr}"
        );
        assert!(!dir.join("ckpt/last.safetensors").exists());
    }

    /// The pid of the rank `rank` among the children of `parent`.
    fn rank_pid(parent: u32, rank: usize) -> Option<u32> {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid != Some(parent) {
                continue;
            }
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
            if env.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
                return Some(pid);
            }
        }
        None
    }

    #[test]
    fn killing_a_rank_ends_the_job_within_seconds_and_spares_the_checkpoint() {
        let dir = scratch("kill");
        let mut child = mpirun(
            2,
            MLP,
            &dir,
            &[
                "--threads",
                "1",
                "--epochs",
                "1000",
                "--steps-per-epoch",
                "30",
            ],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mpirun starts");
        let checkpoint = dir.join("ckpt/last.safetensors");
        let waited = Instant::now();
        while !checkpoint.exists() {
            assert!(
                waited.elapsed() < Duration::from_secs(120),
                "no checkpoint after two minutes"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let victim = rank_pid(child.id(), 1).expect("rank 1 is a child of mpirun");
        let killed = Instant::now();
        Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .expect("kill runs");
        let status = loop {
            if let Some(status) = child.try_wait().expect("mpirun waits") {
                break status;
            }
            if killed.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("the job still ran 10 s after rank 1 was killed");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "a job with a killed rank must fail");
        let mut stderr = String::new();
        use std::io::Read as _;
        child
            .stderr
            .take()
            .expect("piped")
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            stderr.contains("signal 9") || stderr.contains("Killed") || stderr.contains("killed"),
            "the job says a rank was killed:\n{stderr}"
        );
        // The last checkpoint is whole: it loads, and a run resumes from it.
        let saved = nnl::runtime::checkpoint::load(&checkpoint).expect("an intact checkpoint");
        assert!(saved.state.epochs_done >= 1);
    }
}

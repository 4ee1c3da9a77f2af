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

// ---------------------------------------------------------------- nesting

/// `fn f(x: f32[4]) -> f32[4] { BODY }`.
fn with_body(body: &str) -> String {
    format!("fn f(x: f32[4]) -> f32[4] {{\n  {body}\n}}\n")
}

#[test]
fn deep_nesting_is_an_error_for_check_and_fmt_never_a_stack_overflow() {
    let dir = scratch("nesting");
    let cases = [
        (
            "parens.nnl",
            with_body(&format!("{}x{}", "(".repeat(500), ")".repeat(500))),
        ),
        (
            "chain.nnl",
            with_body(&format!("x{}", " + x".repeat(20_000))),
        ),
        (
            "pipe.nnl",
            with_body(&format!("x{}", " |> relu".repeat(20_000))),
        ),
        ("unary.nnl", with_body(&format!("{}x", "-".repeat(20_000)))),
        (
            "ifs.nnl",
            with_body(&format!("{}x", "if true { ".repeat(2_000))),
        ),
        (
            "closures.nnl",
            with_body(&format!("{}x", "|y| ".repeat(5_000))),
        ),
        // Closures nest without brackets: enough of them overflowed the parser's stack.
        (
            "closures_deep.nnl",
            with_body(&format!("{}x", "|y| ".repeat(200_000))),
        ),
        (
            "closure_pairs_deep.nnl",
            with_body(&format!("{}x", "|(a, b), c| ".repeat(200_000))),
        ),
        // An `if` in the condition of an `if` nests without a bracket before its block.
        (
            "conditions_deep.nnl",
            with_body(&format!(
                "{}true{}",
                "if ".repeat(200_000),
                " { x } else { x }".repeat(200_000)
            )),
        ),
        (
            "lists.nnl",
            with_body(&format!("{}x{}", "[".repeat(100_000), "]".repeat(100_000))),
        ),
        (
            "elifs.nnl",
            with_body(&format!(
                "if false {{ x }}{} else {{ x }}",
                " else if false { x }".repeat(5_000)
            )),
        ),
    ];
    for (name, source) in &cases {
        write(&dir, name, source);
        for command in ["check", "fmt"] {
            let out = nnlc_in(&dir, &[command, name]);
            let err = assert_refused(&out);
            assert!(
                err.contains("[E0006]") || err.contains("[E0001]") || err.contains("[E0002]"),
                "{command} {name}:\n{err}"
            );
        }
    }
    // Below the limit, all is well.
    let elifs = with_body(&format!(
        "if false {{ x }}{} else {{ x }}",
        " else if false { x }".repeat(200)
    ));
    write(&dir, "elifs_200.nnl", elifs);
    let out = nnlc_in(&dir, &["check", "elifs_200.nnl"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// 100,000 functions each calling the next, the last one wrong, and 100,000 calling each other
/// round a cycle: references are followed without recursion and in linear time (a search from
/// every function made the chain take hours), and each mistake is reported once.
#[test]
fn long_chains_and_cycles_of_calls_are_each_one_error() {
    let dir = scratch("call_chains");
    let n = 100_000;
    let call =
        |i: usize, callee: usize| format!("fn g{i}(x: f32[4]) -> f32[4] {{\n  g{callee}(x)\n}}\n");
    let mut chain: String = (0..n - 1).map(|i| call(i, i + 1)).collect();
    chain.push_str(&format!(
        "fn g{}(x: f32[4]) -> f32[4] {{\n  x |> reshape([2, 2])\n}}\n",
        n - 1
    ));
    write(&dir, "chain.nnl", chain);
    let cycle: String = (0..n).map(|i| call(i, (i + 1) % n)).collect();
    write(&dir, "cycle.nnl", cycle);
    for (name, code) in [("chain.nnl", "[E0206]"), ("cycle.nnl", "[E0105]")] {
        let err = assert_refused(&nnlc_in(&dir, &["check", name]));
        assert_eq!(
            err.matches("] Error").count(),
            1,
            "{name}:\n{}",
            &err[..err.len().min(2000)]
        );
        assert!(
            err.contains(code),
            "{name}:\n{}",
            &err[..err.len().min(2000)]
        );
    }
}

/// At the deepest nesting allowed, every stage that walks the tree (parse, check, format,
/// lower, differentiate, optimize) fits in a 2 MiB stack — a quarter of the main thread's 8 MiB,
/// and the size of rayon's worker threads.
#[test]
fn the_deepest_nesting_allowed_fits_in_a_2_mib_stack() {
    let depth = nnl::syntax::MAX_NESTING - 8;
    let bodies = [
        format!("{}x |> Dense(2){}", "(".repeat(depth), ")".repeat(depth)),
        format!("let h = x |> Dense(2)\n  h{}", " + h".repeat(depth)),
        format!("x{}", " |> Dense(2) |> tanh".repeat(depth / 2)),
        format!(
            "let h = x |> Dense(2)\n  {}h{}",
            "if true { ".repeat(depth / 2),
            " } else { h }".repeat(depth / 2)
        ),
        format!(
            "let h = x |> Dense(2)\n  let y = {}h\n  y",
            "-".repeat(depth)
        ),
    ];
    for body in bodies {
        let source = format!(
            "use std.nn.{{Dense}}\ndata d {{\n  train = xor(n: 8, seed: 1)\n  x: f32[2] = x\n  y: i32 = y\n}}\nmodel M()(x: f32[B, 2]) -> f32[B, 2] {{\n  {body}\n}}\ntrain M on d {{\n  loss = sparse_cross_entropy(out, y)\n  optimizer = sgd(lr: 0.1)\n}}\n"
        );
        let worker = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let loader = nnl::fs::DiskLoader;
                let (check, program) = nnl::check_program("deep.nnl", &source, &loader);
                let shown = nnl::diag::render(&check.sources, &check.diagnostics, false);
                assert!(!check.has_errors(), "{shown}");
                let formatted = nnl::fmt::format(&source).expect("formats");
                assert!(!nnl::check_source("deep.nnl", &formatted, &loader).has_errors());
                let opts = nnl::lower::Options {
                    batch: Some(4),
                    ..Default::default()
                };
                let lowered = nnl::lower::lower(&program, &check.sources, &opts).expect("lowers");
                for phase in &lowered.phases {
                    let step = nnl::step::train_step(&lowered, phase).expect("differentiates");
                    let (step, _) = nnl::opt::optimize(&step);
                    nnl::ir::verify(&step).expect("verifies");
                }
            })
            .unwrap();
        worker
            .join()
            .expect("no stack overflow at the deepest nesting allowed");
    }
}

// ---------------------------------------------------------------- paths

#[test]
fn paths_in_a_file_stay_in_its_project_unless_allowed() {
    let root = scratch("paths");
    let project = root.join("project");
    write(
        &root,
        "outside.nnl",
        "fn twice(x: f32[4]) -> f32[4] { x * 2 }\n",
    );
    write(&root, "secret.csv", "a,b\n1,secret-value\n");
    write(
        &project,
        "uses.nnl",
        "use \"../outside.nnl\".{twice}\nfn f(x: f32[4]) -> f32[4] { twice(x) }\n",
    );
    let out = nnlc_in(&project, &["check", "uses.nnl"]);
    assert_contains(
        &assert_refused(&out),
        &[
            "[E0108]",
            "uses.nnl:1:5",
            "outside the project",
            "--allow-path",
        ],
    );
    let allow = root.to_str().unwrap();
    let out = nnlc_in(&project, &["check", "uses.nnl", "--allow-path", allow]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(["check", "uses.nnl"])
        .current_dir(&project)
        .env(nnl::fs::ALLOW_ENV, allow)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // A system file is refused, and its contents never appear in a diagnostic.
    write(
        &project,
        "system.nnl",
        "use \"/etc/hostname\".{x}\nfn f(x: f32[4]) -> f32[4] { x }\n",
    );
    let out = nnlc_in(&project, &["check", "system.nnl"]);
    let err = assert_refused(&out);
    assert_contains(&err, &["[E0108]", "/etc/hostname"]);
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        assert!(host.len() < 3 || !err.contains(host), "{err}");
    }
    // With the directory allowed, a file that is not nnl source is still not read as one.
    let out = nnlc_in(&project, &["check", "system.nnl", "--allow-path", "/etc"]);
    assert_contains(
        &assert_refused(&out),
        &["`/etc/hostname` is not an nnl source file"],
    );

    let model = |source: &str, checkpoint: &str| {
        format!(
            r#"use std.nn.{{Dense}}
data d {{
  source = csv("{source}", header: true)
  x: f32[1] = cols(0..1)
  y: f32 = col(0)
}}
model Net()(x: f32[B, 1]) -> f32[B, 1] {{ x |> Dense(1) }}
train Net on d {{
  loss = mse(pred: out, target: y)
  optimizer = sgd(lr: 0.1)
  epochs 1
  checkpoint "{checkpoint}"
}}
"#
        )
    };
    write(&project, "data.nnl", model("/etc/hostname", "runs/a"));
    let out = nnlc_in(&project, &["run", "data.nnl"]);
    assert_contains(
        &assert_refused(&out),
        &[
            "[E0108]",
            "the data file `/etc/hostname` is outside the project",
            "--allow-path /etc",
        ],
    );
    write(&project, "data.nnl", model("../secret.csv", "runs/a"));
    let out = nnlc_in(&project, &["run", "data.nnl"]);
    let err = assert_refused(&out);
    assert_contains(&err, &["[E0108]", "../secret.csv"]);
    assert!(!err.contains("secret-value"), "{err}");
    write(&project, "data.nnl", model("../secret.csv", "../runs"));
    let out = nnlc_in(&project, &["run", "data.nnl", "--allow-path", allow]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(root.join("runs/last.safetensors").exists());
    write(
        &project,
        "data.nnl",
        model("../secret.csv", "/tmp/elsewhere"),
    );
    let out = nnlc_in(&project, &["run", "data.nnl", "--allow-path", allow]);
    assert_contains(
        &assert_refused(&out),
        &["the checkpoint directory `/tmp/elsewhere` is outside the project"],
    );
    // A symbolic link that points out of the project is outside it too.
    std::os::unix::fs::symlink(root.join("secret.csv"), project.join("link.csv")).unwrap();
    write(&project, "data.nnl", model("link.csv", "runs/b"));
    let out = nnlc_in(&project, &["run", "data.nnl"]);
    assert_contains(&assert_refused(&out), &["[E0108]", "link.csv"]);
    // Paths typed on the command line are the user's own.
    write(&project, "data.nnl", model("../secret.csv", "runs/c"));
    let elsewhere = root.join("elsewhere");
    let out = nnlc_in(
        &project,
        &[
            "run",
            "data.nnl",
            "--allow-path",
            allow,
            "--checkpoint-dir",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_image_folder_outside_the_project_or_linking_out_of_itself_is_refused() {
    let dir = scratch("images-out");
    let project = dir.join("project");
    let png = std::fs::read(root().join("examples/data/digits_folder/train/0/0000.png"))
        .expect("the digits folder");
    write(&dir, "outside/a/1.png", &png);
    write(&project, "pics/a/1.png", &png);
    let model = |folder: &str| {
        format!(
            r#"use std.nn.{{Flatten, Dense}}
data d {{
  train = images("{folder}", size: [8, 8], channels: 1)
  x: f32[1, 8, 8] = image
  y: i32 = label
}}
model Net()(x: f32[B, 1, 8, 8]) -> f32[B, 2] {{ x |> Flatten |> Dense(2) }}
train Net on d {{
  loss = sparse_cross_entropy(logits: out, target: y)
  optimizer = sgd(lr: 0.1)
  epochs 1
  checkpoint "runs/a"
}}
"#
        )
    };
    write(&project, "img.nnl", model("../outside"));
    let out = nnlc_in(&project, &["run", "img.nnl"]);
    assert_contains(
        &assert_refused(&out),
        &[
            "[E0108]",
            "the data file `../outside` is outside the project",
        ],
    );
    // A class folder inside the project whose link leads out of the image folder.
    std::os::unix::fs::symlink(dir.join("outside/a"), project.join("pics/b")).unwrap();
    write(&project, "img.nnl", model("pics"));
    let out = nnlc_in(&project, &["run", "img.nnl"]);
    assert_contains(
        &assert_refused(&out),
        &["pics/b: leads to", "outside the image folder"],
    );
}

#[test]
fn a_tokenizer_file_stays_in_the_project_and_the_error_points_at_its_path() {
    let root = scratch("tokenizer_path");
    let project = root.join("project");
    write(&root, "tokenizer.json", "{}");
    write(&project, "words.txt", "apple\nbanana\ncherry\n");
    write(
        &project,
        "lm.nnl",
        r#"data words {
  source = text("words.txt", tokenizer: bpe(file: "../tokenizer.json"), context: 4)
  x: i32[4] = x
  y: i32[4] = y
}
"#,
    );
    let out = nnlc_in(&project, &["check", "lm.nnl"]);
    let err = assert_refused(&out);
    let real_root = root.canonicalize().unwrap();
    insta::assert_snapshot!(err.replace(real_root.to_str().unwrap(), "[TMP]"));
    let allow = root.to_str().unwrap();
    let out = nnlc_in(&project, &["check", "lm.nnl", "--allow-path", allow]);
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------------------------------------------------------------- byte-order marks

#[test]
fn byte_order_marks_are_accepted_in_nnl_and_csv_files() {
    let dir = scratch("bom");
    let iris = std::fs::read(root().join("examples/data/tabular/iris.csv")).unwrap();
    let header = b"sepal_length,sepal_width,petal_length,petal_width,species\n";
    let mut csv = "\u{feff}".as_bytes().to_vec();
    csv.extend_from_slice(header);
    csv.extend(iris.split(|&b| b == b'\n').skip(1).flat_map(|l| {
        let mut l = l.to_vec();
        if !l.is_empty() {
            l.push(b'\n');
        }
        l
    }));
    write(&dir, "iris.csv", csv);
    let model = example("iris.nnl")
        .replace(
            "csv(\"data/tabular/iris.csv\", header: false, skip: 1, delimiter: \",\")",
            "csv(\"iris.csv\", header: true)",
        )
        .replace(
            "cols(0..4)",
            "cols(\"sepal_length\", \"sepal_width\", \"petal_length\", \"petal_width\")",
        )
        .replace("col(4)", "col(\"species\")");
    write(&dir, "iris.nnl", format!("\u{feff}{model}"));
    let out = nnlc_in(&dir, &["check", "iris.nnl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = nnlc_in(
        &dir,
        &[
            "run",
            "iris.nnl",
            "--epochs",
            "2",
            "--checkpoint-dir",
            "ckpt",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // fmt keeps the mark: the editor that wrote it expects it back.
    let out = nnlc_in(&dir, &["fmt", "iris.nnl"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(dir.join("iris.nnl"))
            .unwrap()
            .starts_with('\u{feff}')
    );
}

// ---------------------------------------------------------------- command-line values

#[test]
fn command_line_values_get_the_checks_of_the_files_settings() {
    let dir = scratch("cli-values");
    let iris = root().join("examples/data/tabular/iris.csv");
    write(&dir, "data/tabular/iris.csv", std::fs::read(iris).unwrap());
    write(&dir, "iris.nnl", example("iris.nnl"));
    for (flag, value, expected) in [
        (
            "--batch",
            "0",
            "`batch` must be a positive whole number, found 0",
        ),
        (
            "--batch",
            "x",
            "`batch` must be a positive whole number, found x",
        ),
        (
            "--epochs",
            "0",
            "`epochs` must be a positive whole number, found 0",
        ),
        (
            "--seed",
            "-3",
            "`seed` must be a non-negative whole number, found -3",
        ),
        ("--threads", "0", "must be a positive whole number, found 0"),
        (
            "--steps-per-epoch",
            "0",
            "must be a positive whole number, found 0",
        ),
    ] {
        let out = nnlc_in(
            &dir,
            &["run", "iris.nnl", flag, value, "--checkpoint-dir", "ckpt"],
        );
        assert_contains(&assert_refused(&out), &[expected]);
        assert!(
            !dir.join("ckpt").exists(),
            "{flag} {value}: a checkpoint was written"
        );
    }
    // The same wording when the file says it.
    write(
        &dir,
        "zero.nnl",
        example("iris.nnl").replace("batch 16", "batch 0"),
    );
    let out = nnlc_in(&dir, &["check", "zero.nnl"]);
    assert_contains(
        &assert_refused(&out),
        &["`batch` must be a positive whole number, found 0"],
    );
}

// ---------------------------------------------------------------- pipes

#[test]
fn closed_output_pipes_never_panic() {
    use std::process::Stdio;
    let dir = scratch("pipes");
    let iris = root().join("examples/data/tabular/iris.csv");
    write(&dir, "data/tabular/iris.csv", std::fs::read(iris).unwrap());
    write(&dir, "iris.nnl", example("iris.nnl"));
    // `nnlc … | head -1`: both pipes closed before the command writes to them.
    for args in [
        &[
            "run",
            "iris.nnl",
            "--epochs",
            "3",
            "--checkpoint-dir",
            "ckpt",
        ][..],
        &["check", "--summary", "iris.nnl"][..],
        &["explain", "E0201"][..],
        &["fmt", "--check", "iris.nnl"][..],
    ] {
        let mut child = limited(&dir, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert!(
            status.code().is_some_and(|c| c <= 1),
            "{args:?} ended with {status}"
        );
    }
    assert!(
        dir.join("ckpt/last.safetensors").exists(),
        "the run went on"
    );
}

// ---------------------------------------------------------------- checkpoint directories

fn iris_project(name: &str) -> PathBuf {
    let dir = scratch(name);
    let iris = root().join("examples/data/tabular/iris.csv");
    write(&dir, "data/tabular/iris.csv", std::fs::read(iris).unwrap());
    write(&dir, "iris.nnl", example("iris.nnl"));
    dir
}

#[test]
fn a_new_run_never_replaces_a_trained_model_silently() {
    let dir = iris_project("keep-model");
    let out = nnlc_in(&dir, &["run", "iris.nnl", "--epochs", "5"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let best = dir.join("runs/iris/best.safetensors");
    let trained = std::fs::read(&best).unwrap();
    for again in [
        &["run", "iris.nnl"][..],
        &["run", "iris.nnl", "--epochs", "1"][..],
        &["run", "iris.nnl", "--checkpoint-dir", "runs/iris"][..],
    ] {
        let out = nnlc_in(&dir, again);
        assert_contains(
            &assert_refused(&out),
            &[
                "holds the checkpoints of an earlier run (it trained IrisMlp for 5 epochs)",
                "--resume runs/iris",
                "--overwrite",
            ],
        );
        assert_eq!(
            std::fs::read(&best).unwrap(),
            trained,
            "{again:?} changed it"
        );
    }
    // Continuing it, or replacing it on purpose.
    let out = nnlc_in(
        &dir,
        &["run", "iris.nnl", "--resume", "runs/iris", "--epochs", "6"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = nnlc_in(&dir, &["run", "iris.nnl", "--epochs", "1", "--overwrite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state = nnl::runtime::checkpoint::load(&dir.join("runs/iris/last.safetensors")).unwrap();
    assert_eq!(state.state.epochs_done, 1);
}

#[test]
fn one_run_at_a_time_writes_to_a_checkpoint_directory_and_stale_temporaries_go() {
    use std::process::Stdio;
    let dir = iris_project("lock");
    // A long run: many epochs, early stopping out of reach.
    let mut first = limited(
        &dir,
        &[
            "run",
            "iris.nnl",
            "--epochs",
            "100000",
            "--set",
            "early_stop.patience=100000",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let lock = dir.join("runs/iris").join(nnl::runtime::checkpoint::LOCK);
    let started = std::time::Instant::now();
    while !dir.join("runs/iris/last.safetensors").exists() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the first run never saved"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(lock.exists());
    let out = nnlc_in(&dir, &["run", "iris.nnl", "--overwrite"]);
    assert_contains(
        &assert_refused(&out),
        &[
            "another run is writing checkpoints to `runs/iris`",
            &format!("(process {})", first.id()),
        ],
    );
    let out = nnlc_in(
        &dir,
        &[
            "run",
            "iris.nnl",
            "--resume",
            "runs/iris",
            "--epochs",
            "200000",
        ],
    );
    assert_contains(
        &assert_refused(&out),
        &["another run is writing checkpoints"],
    );
    // Killed as hard as can be: the lock goes with the process; a temporary file stays.
    first.kill().unwrap();
    first.wait().unwrap();
    let stale = dir.join("runs/iris/.last.safetensors.tmp999999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let out = nnlc_in(
        &dir,
        &[
            "run",
            "iris.nnl",
            "--resume",
            "runs/iris",
            "--epochs",
            "1000000",
        ],
    );
    let _ = out;
    assert!(!stale.exists(), "the stale temporary file is still there");
}

// ---------------------------------------------------------------- signals

/// Reads the child's stderr until a line contains `marker`; the lines read so far.
fn wait_for_line(reader: &mut impl std::io::BufRead, marker: &str) -> String {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the run ended before `{marker}`:\n{seen}");
        seen.push_str(&line);
        if line.contains(marker) {
            return seen;
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Ctrl-C during epoch 2 of mnist_mlp stops at a step boundary and checkpoints the partial
/// epoch; `--resume` then ends with the parameters an uninterrupted run ends with, bit for bit
/// (one thread, so that sums are ordered the same).
#[test]
fn ctrl_c_then_resume_gives_the_parameters_of_an_uninterrupted_run() {
    use std::io::BufRead;
    use std::process::Stdio;
    let file = root().join("examples/mnist_mlp.nnl");
    let file = file.to_str().unwrap();
    let dir = scratch("sigint");
    let whole = dir.join("whole");
    let common = ["--epochs", "2", "--threads", "1"];
    let out = nnlc_in(
        &dir,
        &[
            &["run", file, "--checkpoint-dir", whole.to_str().unwrap()][..],
            &common,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let parts = dir.join("parts");
    let report = dir.join("report.json");
    let mut child = limited(
        &dir,
        &[
            &[
                "run",
                file,
                "--checkpoint-dir",
                parts.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ][..],
            &common,
        ]
        .concat(),
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = wait_for_line(&mut err, "epoch 1/2");
    std::thread::sleep(std::time::Duration::from_millis(300));
    signal(child.id(), "INT");
    let status = child.wait().unwrap();
    for line in err.lines() {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    assert_eq!(status.code(), Some(1), "{seen}");
    assert_contains(&seen, &["interrupted in epoch 2", "--resume"]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["interrupted"]["epoch"], 2, "{r}");
    let steps = r["interrupted"]["steps_done"].as_u64().expect("steps done");
    assert!(steps > 0 && steps < 844, "{steps}");

    let out = nnlc_in(
        &dir,
        &[
            &["run", file, "--resume", parts.to_str().unwrap()][..],
            &common,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |d: &Path| {
        nnl::store::read_safetensors(&d.join("last.safetensors"))
            .unwrap()
            .0
    };
    let (a, b) = (read(&whole), read(&parts));
    assert_eq!(a.len(), b.len());
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(
            ta == tb,
            "`{na}` differs after an interrupted and resumed run"
        );
    }
}

#[test]
fn a_second_signal_ends_the_run_at_once() {
    use std::process::Stdio;
    let dir = iris_project("sigterm");
    let mut child = limited(
        &dir,
        &[
            "run",
            "iris.nnl",
            "--epochs",
            "100000",
            "--set",
            "early_stop.patience=100000",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    wait_for_line(&mut err, "epoch 2/");
    signal(child.id(), "TERM");
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(status.code().is_some(), "killed by a signal: {status}");
}

// ---------------------------------------------------------------- data readers

#[test]
fn readers_check_declared_sizes_before_allocating() {
    let dir = scratch("readers");
    // An .npy header that claims shape (10^12, 4).
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 4), }";
    let header = format!("{header:<117}\n");
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(&[0; 64]);
    write(&dir, "huge.npy", npy);
    // IDX images that promise 60,000 images and hold 1,000 bytes.
    let mut idx = Vec::new();
    for v in [0x803u32, 60_000, 28, 28] {
        idx.extend_from_slice(&v.to_be_bytes());
    }
    idx.extend_from_slice(&[0; 1000]);
    write(&dir, "cut-images.idx", &idx);
    let mut labels = Vec::new();
    for v in [0x801u32, 60_000] {
        labels.extend_from_slice(&v.to_be_bytes());
    }
    labels.extend(std::iter::repeat_n(0u8, 60_000));
    write(&dir, "labels.idx", &labels);
    // A gzip stream whose trailer says 100 bytes and that inflates to 20 MB.
    let mut images = Vec::new();
    for v in [0x803u32, 25_000, 28, 28] {
        images.extend_from_slice(&v.to_be_bytes());
    }
    images.resize(16 + 25_000 * 784, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &images).unwrap();
    let mut gz = gz.finish().unwrap();
    let n = gz.len();
    gz[n - 4..].copy_from_slice(&100u32.to_le_bytes());
    write(&dir, "bomb-images.idx.gz", gz);

    let model = |source: &str, field: &str, width: usize| {
        format!(
            r#"use std.nn.{{Dense}}
data d {{
  train = {source}
  x: f32[{width}] = {field}
}}
model Net()(x: f32[B, {width}]) -> f32[B, 1] {{ x |> Dense(1) }}
train Net on d {{
  loss = mean(out)
  optimizer = sgd(lr: 0.1)
  epochs 1
}}
"#
        )
    };
    for (source, field, width, expected) in [
        (
            "npy(\"huge.npy\")",
            "x",
            4,
            "huge.npy: truncated: the header declares shape [1000000000000, 4]",
        ),
        (
            "idx(\"cut-images.idx\", \"labels.idx\")",
            "image |> flatten",
            784,
            "cut-images.idx: truncated: the header promises 60000×28×28",
        ),
        (
            "idx(\"bomb-images.idx.gz\", \"labels.idx\")",
            "image |> flatten",
            784,
            "the gzip data inflate beyond the 100 bytes their trailer declares",
        ),
        (
            "csv(\"/dev/zero\", header: false)",
            "cols(0..4)",
            4,
            "`/dev/zero` is not a regular file and gives more than 256 MiB",
        ),
    ] {
        write(&dir, "model.nnl", model(source, field, width));
        let out = nnlc_in(&dir, &["run", "model.nnl", "--allow-path", "/dev"]);
        assert_contains(&assert_refused(&out), &[expected]);
    }
}

/// A source too large to check in the memory there is is refused before it is parsed (checking
/// takes about 75 bytes per byte of source; the allocator would abort the process).
#[test]
fn a_source_too_large_for_the_memory_is_refused_before_checking() {
    let dir = scratch("large-source");
    let item = "fn f(x: f32[B, 4]) -> f32[B, 4] {\n  x * 2 + 1\n}\n\n";
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 60 << 20 {
        text.push_str(&item.replace("fn f(", &format!("fn f{i}(")));
        i += 1;
    }
    write(&dir, "large.nnl", text);
    // Its check would take about 3 GiB: under a 1 GiB limit it does not fit.
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_nnlc"))
        .args(["check", "large.nnl"])
        .current_dir(&dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("nnlc runs");
    assert_contains(
        &assert_refused(&out),
        &["cannot read `large.nnl`", "MiB of memory", "split the file"],
    );
}

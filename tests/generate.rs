//! Language models end to end: `examples/char_gpt.nnl` trained briefly on the word list, its
//! tokenizer saved with the checkpoint, `eval`, and `nnlc generate` (greedy, seeded sampling,
//! the refusal of a model that is not causal).

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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-generate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn train(file: &str, dir: &Path, args: &[&str]) -> (PathBuf, Value) {
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
    all.extend(args);
    ok(nnlc(&all), &format!("nnlc {all:?}"));
    let report = std::fs::read_to_string(&report).expect("report written");
    (ckpt, serde_json::from_str(&report).expect("JSON"))
}

#[test]
fn char_gpt_trains_saves_its_tokenizer_and_generates() {
    let dir = scratch("char_gpt");
    let file = "examples/char_gpt.nnl";
    let (ckpt, report) = train(file, &dir, &["--epochs", "1", "--steps-per-epoch", "40"]);
    let val = &report["epochs"][0]["val"];
    let (loss, ppl) = (
        val["loss"].as_f64().unwrap(),
        val["perplexity"].as_f64().unwrap(),
    );
    // Every window holds 32 targets, so the split's perplexity is exactly exp(mean loss).
    assert!(
        (ppl - loss.exp()).abs() < 1e-6 * ppl,
        "{ppl} vs exp({loss})"
    );
    assert!(ppl < 30.0, "40 steps should learn something: {ppl}");

    let ckpt = ckpt.to_str().unwrap();
    let eval = ok(
        nnlc(&["eval", file, "--checkpoint", ckpt, "--split", "val"]),
        "eval",
    );
    assert!(eval.contains("perplexity"), "{eval}");

    let greedy = |prompt: &str| {
        ok(
            nnlc(&[
                "generate",
                file,
                "--checkpoint",
                ckpt,
                "--temperature",
                "0",
                "--tokens",
                "40",
                "--prompt",
                prompt,
            ]),
            "greedy generate",
        )
    };
    let g = greedy("re");
    assert!(g.starts_with("re") && g.chars().count() >= 40, "{g:?}");
    assert_eq!(g, greedy("re"), "greedy decoding is deterministic");

    // The key/value cache gives the same ids as recomputing the window, token for token: 45
    // ids from the start of a document and "re" (3 ids) run past the context of 32, so both
    // the cached positions and the sliding window after them are compared.
    let generate = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            file,
            "--checkpoint",
            ckpt,
            "--tokens",
            "45",
            "--prompt",
            "re",
        ];
        args.extend(extra);
        let out = nnlc(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (ok(out, "generate"), err)
    };
    for how in [
        &["--temperature", "0"][..],
        &["--seed", "5", "--samples", "3"][..],
    ] {
        let (cached, err) = generate(how);
        assert!(err.contains("key/value cache"), "{err}");
        let (recomputed, err) = generate(&[how, &["--no-cache"]].concat());
        assert!(err.contains("no cache"), "{err}");
        assert_eq!(cached, recomputed, "{how:?}: with and without the cache");
    }

    let sample = |seed: &str| {
        ok(
            nnlc(&[
                "generate",
                file,
                "--checkpoint",
                ckpt,
                "--samples",
                "5",
                "--stop-at-end",
                "--tokens",
                "30",
                "--top-k",
                "10",
                "--top-p",
                "0.95",
                "--seed",
                seed,
            ]),
            "sampling",
        )
    };
    let a = sample("3");
    assert_eq!(a.lines().count(), 5, "one word per sample: {a:?}");
    assert_eq!(a, sample("3"), "a seed repeats its samples");
    assert_ne!(a, sample("4"), "another seed draws other samples");

    let bad = nnlc(&["generate", file, "--checkpoint", ckpt, "--top-p", "2"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--top-p must be in (0, 1]"));
}

#[test]
fn generate_refuses_a_model_that_sees_the_future() {
    let dir = scratch("bidirectional");
    let words: String = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]
        .iter()
        .cycle()
        .take(200)
        .map(|w| format!("{w}\n"))
        .collect();
    std::fs::write(dir.join("words.txt"), words).unwrap();
    let model = |causal: bool| {
        format!(
            "use std.nn.{{Embedding, PositionEmbedding, TransformerBlock, Dense}}\n\
             data w {{\n  source = text(\"words.txt\", tokenizer: chars(), context: 8)\n  x: i32[8] = x\n  y: i32[8] = y\n  split val = 0.1 of source\n}}\n\
             model Lm(vocab: int = 17)(x: i32[B, T]) -> f32[B, T, vocab] {{\n  x |> Embedding(vocab, 16) |> PositionEmbedding(8) |> TransformerBlock(2, 32, 0.0, causal: {causal}) |> Dense(vocab)\n}}\n\
             train Lm on w {{\n  loss = sparse_cross_entropy(out, y)\n  optimizer = adam(lr: 1e-2)\n  batch 16\n  epochs 1\n  metrics perplexity\n  seed 1\n}}\n"
        )
    };
    for causal in [true, false] {
        let file = dir.join(format!("lm_{causal}.nnl"));
        std::fs::write(&file, model(causal)).unwrap();
        let sub = dir.join(format!("run_{causal}"));
        std::fs::create_dir_all(&sub).unwrap();
        let (ckpt, _) = train(file.to_str().unwrap(), &sub, &[]);
        let out = nnlc(&[
            "generate",
            file.to_str().unwrap(),
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--tokens",
            "5",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        if causal {
            assert!(out.status.success(), "{err}");
        } else {
            assert!(!out.status.success());
            assert!(
                err.contains("`Lm` is not causal") && err.contains("causal: true"),
                "{err}"
            );
        }
    }
}

#[test]
fn generate_needs_a_model_trained_on_text() {
    let dir = scratch("not_text");
    let (ckpt, _) = train(
        "examples/transformer_reverse.nnl",
        &dir,
        &["--epochs", "1", "--steps-per-epoch", "2"],
    );
    let out = nnlc(&[
        "generate",
        "examples/transformer_reverse.nnl",
        "--checkpoint",
        ckpt.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no tokenizer"), "{err}");
}

#[test]
fn a_causal_model_the_cache_cannot_serve_generates_without_it() {
    // An LSTM is causal but carries its state through the sequence, not through `cached`
    // keys and values: its one-position graph disagrees with the whole sequence, so generation
    // says so and recomputes the window, with the same ids as `--no-cache`.
    let dir = scratch("lstm");
    let words: String = ["apple", "banana", "cherry", "date", "elder", "fig", "grape"]
        .iter()
        .cycle()
        .take(200)
        .map(|w| format!("{w}\n"))
        .collect();
    std::fs::write(dir.join("words.txt"), words).unwrap();
    let file = dir.join("lstm.nnl");
    std::fs::write(
        &file,
        "use std.nn.{Embedding, LSTM, Dense}\n\
         data w {\n  source = text(\"words.txt\", tokenizer: chars(), context: 8)\n  x: i32[8] = x\n  y: i32[8] = y\n  split val = 0.1 of source\n}\n\
         model Lm(vocab: int = 17)(x: i32[B, T]) -> f32[B, T, vocab] {\n  x |> Embedding(vocab, 8) |> LSTM(16) |> Dense(vocab)\n}\n\
         train Lm on w {\n  loss = sparse_cross_entropy(out, y)\n  optimizer = adam(lr: 1e-2)\n  batch 16\n  epochs 1\n  seed 1\n}\n",
    )
    .unwrap();
    let (ckpt, _) = train(file.to_str().unwrap(), &dir, &[]);
    let generate = |extra: &[&str]| {
        let mut args = vec![
            "generate",
            file.to_str().unwrap(),
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--temperature",
            "0",
            "--tokens",
            "12",
        ];
        args.extend(extra);
        let out = nnlc(&args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (ok(out, "generate"), err)
    };
    let (with, err) = generate(&[]);
    assert!(
        err.contains("generating without the key/value cache") && err.contains("no cache"),
        "{err}"
    );
    assert_eq!(with, generate(&["--no-cache"]).0);
}

//! `nnlc predict`'s options: outputs as logits, probabilities or classes, CSV on stdout, a
//! model picked by name with a named input that is not a data field, and clear errors for
//! inputs that do not match the model's.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nnlc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("nnlc runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-predict-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn train(example: &str, dir: &Path) -> String {
    let ckpt = dir.join("ckpt").to_str().unwrap().to_string();
    let out = nnlc(&[
        "run",
        &format!("examples/{example}.nnl"),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "10",
        "--checkpoint-dir",
        &ckpt,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ckpt
}

fn rows(out: &Output) -> Vec<Vec<f64>> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(',').map(|c| c.parse().unwrap()).collect())
        .collect()
}

#[test]
fn outputs_as_logits_probabilities_or_classes_on_stdout() {
    let dir = scratch("iris");
    let ckpt = train("iris", &dir);
    let input = dir.join("flowers.csv");
    std::fs::write(
        &input,
        "5.1,3.5,1.4,0.2\n6.4,3.2,4.5,1.5\n7.7,3.0,6.1,2.3\n",
    )
    .unwrap();
    let run = |output: &str| {
        nnlc(&[
            "predict",
            "examples/iris.nnl",
            "--checkpoint",
            &ckpt,
            "--input",
            input.to_str().unwrap(),
            "--output",
            output,
            "-o",
            "-",
        ])
    };
    let logits = rows(&run("logits"));
    let probabilities = rows(&run("probabilities"));
    let classes = rows(&run("class"));
    assert_eq!(logits.len(), 3);
    for ((z, p), c) in logits.iter().zip(&probabilities).zip(&classes) {
        assert_eq!(z.len(), 3);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{p:?}");
        let argmax = (0..3).max_by(|&a, &b| z[a].total_cmp(&z[b])).unwrap();
        assert_eq!(c, &[argmax as f64], "the class is the largest logit");
        assert!(p[argmax] >= p.iter().copied().fold(0.0, f64::max));
    }
}

#[test]
fn a_model_input_that_is_not_a_data_field_is_taken_as_it_is() {
    let dir = scratch("decoder");
    let ckpt = train("autoencoder", &dir);
    let codes = dir.join("codes.csv");
    let row: Vec<String> = (0..32).map(|i| format!("{}", i as f64 / 32.0)).collect();
    std::fs::write(&codes, format!("{}\n{}\n", row.join(","), row.join(","))).unwrap();
    let images = nnlc(&[
        "predict",
        "examples/autoencoder.nnl",
        "--checkpoint",
        &ckpt,
        "--model",
        "Decoder",
        "--input",
        &format!("z={}", codes.display()),
        "-o",
        "-",
    ]);
    let images = rows(&images);
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].len(), 784);
    assert_eq!(
        images[0], images[1],
        "the same code decodes to the same image"
    );

    // Without --model the file's two models are ambiguous; a wrong input name is named.
    let ambiguous = nnlc(&[
        "predict",
        "examples/autoencoder.nnl",
        "--checkpoint",
        &ckpt,
        "--input",
        codes.to_str().unwrap(),
        "-o",
        "-",
    ]);
    assert!(!ambiguous.status.success());
    assert!(String::from_utf8_lossy(&ambiguous.stderr).contains("--model"));
    let misnamed = nnlc(&[
        "predict",
        "examples/autoencoder.nnl",
        "--checkpoint",
        &ckpt,
        "--model",
        "Decoder",
        "--input",
        &format!("code={}", codes.display()),
        "-o",
        "-",
    ]);
    assert!(!misnamed.status.success());
    let err = String::from_utf8_lossy(&misnamed.stderr);
    assert!(
        err.contains("no input `code`") && err.contains("`z`"),
        "{err}"
    );
}

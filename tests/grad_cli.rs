//! `nnlc grad` end to end: a batch written in NumPy's .npz format (int64 labels, as NumPy makes
//! them), parameters saved and read back as safetensors, and gradients that agree with central
//! differences of the loss the same command reports.

use ndarray::{ArrayD, IxDyn};
use nnl::tensor::Tensor;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-grad-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write_batch(path: &Path, batch: usize) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let x: Vec<f32> = (0..batch * 784).map(|_| next() as f32).collect();
    let y: Vec<i64> = (0..batch).map(|i| (i * 7 % 10) as i64).collect();
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(path).expect("npz file"));
    npz.add_array(
        "x",
        &ArrayD::from_shape_vec(IxDyn(&[batch, 784]), x).unwrap(),
    )
    .unwrap();
    npz.add_array("y", &ArrayD::from_shape_vec(IxDyn(&[batch]), y).unwrap())
        .unwrap();
    npz.finish().unwrap();
}

fn nnlc_grad(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("grad")
        .arg("examples/mnist_mlp.nnl")
        .args(args)
        .output()
        .expect("nnlc runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "nnlc grad failed: {stderr}");
    stderr
}

fn read(path: &Path) -> Vec<(String, Tensor)> {
    nnl::store::read_safetensors(path)
        .expect("a safetensors file")
        .0
}

fn get<'a>(ts: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &ts.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no `{name}`"))
        .1
}

#[test]
fn gradients_of_a_numpy_batch_match_central_differences() {
    let dir = scratch("fd");
    let batch = dir.join("b.npz");
    write_batch(&batch, 8);
    let (params, grads) = (dir.join("p.safetensors"), dir.join("g.safetensors"));
    let s = |p: &Path| p.to_string_lossy().to_string();
    nnlc_grad(&[
        "--inputs",
        &s(&batch),
        "--write-params",
        &s(&params),
        "--seed",
        "3",
        "-o",
        &s(&grads),
    ]);

    let p = read(&params);
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Mlp.dense_1.b",
            "Mlp.dense_1.w",
            "Mlp.dense_2.b",
            "Mlp.dense_2.w"
        ]
    );
    let g = read(&grads);
    assert_eq!(get(&g, "Mlp.dense_1.w").ty().shape, vec![784, 128]);
    assert_eq!(get(&g, "loss").ty().shape, Vec::<usize>::new());
    let loss = get(&g, "loss").scalar().unwrap();
    // Ten classes, small random weights: the loss starts near ln 10.
    assert!((loss - 10f64.ln()).abs() < 0.5, "loss {loss}");

    // Same parameters given back: the same gradients.
    let again = dir.join("g2.safetensors");
    nnlc_grad(&[
        "--inputs",
        &s(&batch),
        "--params",
        &s(&params),
        "-o",
        &s(&again),
    ]);
    assert_eq!(read(&again), g);

    // Central differences of the reported loss along three coordinates of the output bias and
    // of a hidden weight (f32, so a loose tolerance).
    for (name, index) in [
        ("Mlp.dense_2.b", 3),
        ("Mlp.dense_1.w", 300 * 128 + 17),
        ("Mlp.dense_2.w", 5),
    ] {
        let analytic = get(&g, name).to_f64()[index];
        let h = 1e-2;
        let mut losses = Vec::new();
        for sign in [1.0, -1.0] {
            let mut moved = p.clone();
            let t = &mut moved.iter_mut().find(|(n, _)| n == name).unwrap().1;
            let mut values = t.to_f64();
            values[index] += sign * h;
            *t = Tensor::from_f64(&t.ty(), values);
            let file = dir.join(format!("moved{sign}.safetensors"));
            nnl::store::write_safetensors(&file, &moved, None).unwrap();
            let out = dir.join(format!("l{sign}.safetensors"));
            nnlc_grad(&[
                "--inputs",
                &s(&batch),
                "--params",
                &s(&file),
                "-o",
                &s(&out),
            ]);
            losses.push(get(&read(&out), "loss").scalar().unwrap());
        }
        let numeric = (losses[0] - losses[1]) / (2.0 * h);
        assert!(
            (numeric - analytic).abs() <= 1e-3 + 2e-2 * analytic.abs(),
            "{name}[{index}]: analytic {analytic}, numeric {numeric}"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_batch_without_a_field_is_a_clear_error() {
    let dir = scratch("missing");
    let batch = dir.join("b.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&batch).unwrap());
    let x = ArrayD::<f32>::zeros(IxDyn(&[2, 784]));
    npz.add_array("x", &x).unwrap();
    npz.finish().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_nnlc"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["grad", "examples/mnist_mlp.nnl", "--inputs"])
        .arg(&batch)
        .arg("-o")
        .arg(dir.join("g.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the batch has no `y` (i32[2]); it has x"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).ok();
}

//! `nnlc plot` on an MNIST run: the SVG beside the checkpoints and the one `nnlc plot` draws
//! parse, with a panel per quantity, train and validation curves and the best epoch marked;
//! a PNG drawn through the same path decodes to an image with the curves' colour in it; bad
//! inputs are errors.

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

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "nnlc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The texts of an SVG document, and how many polylines it draws.
fn read_svg(path: &Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().trim().to_string())
        .collect();
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    (texts, lines)
}

#[test]
fn an_mnist_run_s_curves_as_svg_and_png() {
    let dir = std::env::temp_dir().join(format!("nnl-plot-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let ckpt = dir.join("mnist");
    let report = dir.join("report.json");
    ok(&nnlc(&[
        "run",
        "examples/mnist_mlp.nnl",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "150",
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let best = json["best"]["epoch"].as_u64().unwrap();

    // The run's own picture, beside its checkpoints.
    let (texts, lines) = read_svg(&ckpt.join("curves.svg"));
    for want in ["loss", "accuracy", "epoch", "train", "val"] {
        assert!(texts.iter().any(|t| t == want), "no `{want}` in {texts:?}");
    }
    assert!(texts.contains(&format!("best epoch {best}")), "{texts:?}");
    // Per panel: the train curve is one polyline, the dashed validation curve several.
    assert!(lines >= 2 * 3, "{lines} polylines");

    // Two runs overlaid: a checkpoint directory and a report, each in the legend.
    let svg = dir.join("both.svg");
    ok(&nnlc(&[
        "plot",
        ckpt.to_str().unwrap(),
        report.to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]));
    let (texts, _) = read_svg(&svg);
    for want in ["mnist train", "mnist val", "report train", "report val"] {
        assert_eq!(
            texts.iter().filter(|t| *t == want).count(),
            2,
            "`{want}` once per panel: {texts:?}"
        );
    }

    // PNG through the same drawing code.
    let png = dir.join("curves.png");
    ok(&nnlc(&[
        "plot",
        report.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
    ]));
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("the PNG decodes");
    assert_eq!((info.width, info.height), (960, 640), "two panels");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let count = |rgb: [u8; 3]| pixels.chunks(3).filter(|p| *p == rgb).count();
    let curve = count([0, 114, 178]);
    let text = pixels
        .chunks(3)
        .filter(|p| p.iter().all(|&c| c < 60))
        .count();
    let white = count([255, 255, 255]);
    assert!(curve > 2000, "{curve} pixels of the curves' colour");
    assert!(text > 2000, "{text} dark pixels (text, axes)");
    assert!(white > pixels.len() / 3 / 2, "a white background");

    // Bad inputs.
    let out = nnlc(&["plot", dir.join("missing.json").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let out = nnlc(&["plot", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no `last.safetensors`"));
    std::fs::remove_dir_all(&dir).ok();
}

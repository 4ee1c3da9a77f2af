//! The data pipeline on the examples' real data: every example's data block loads, with the
//! split sizes its comments promise, and batches have the declared types.

use nnl::data::{self, Dataset};
use nnl::ir::DType;
use nnl::syntax::ast::Item;
use nnl::tensor::Tensor;
use std::collections::HashSet;
use std::path::Path;

fn load(name: &str, seed: u64) -> Dataset {
    let path = format!("examples/{name}.nnl");
    let text = std::fs::read_to_string(&path).expect("the example exists");
    let (checked, program) = nnl::check_program(&path, text, &nnl::fs::DiskLoader);
    assert!(!checked.has_errors(), "{name}: {:?}", checked.diagnostics);
    let decl = program.modules[program.root]
        .ast
        .items
        .iter()
        .find_map(|i| match i {
            Item::Data(d) => Some(d),
            _ => None,
        })
        .expect("the example has a data block");
    match data::load(&program, decl, Path::new("examples"), seed) {
        Ok(d) => d,
        Err(e) => panic!("{name}: {e}"),
    }
}

fn sizes(d: &Dataset) -> Vec<(String, usize)> {
    let mut s = d.splits();
    s.sort();
    s
}

fn split(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
    let mut s: Vec<(String, usize)> = pairs.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    s.sort();
    s
}

/// Every batch of every split has the declared dtype and shape, and covers the split once.
fn check_batches(d: &Dataset, batch: usize) {
    for (name, size) in d.splits() {
        let mut seen = HashSet::new();
        let batches: Vec<_> = d.batches(&name, batch, 0).unwrap().collect();
        assert_eq!(batches.len(), size.div_ceil(batch), "{name}");
        for b in &batches {
            for (field, ty) in d.fields() {
                let t = &b.tensors[&field];
                assert_eq!(t.dtype(), ty.dtype, "{field}");
                assert_eq!(t.shape()[0], b.indices.len());
                assert_eq!(&t.shape()[1..], &ty.shape[..], "{field}");
            }
            seen.extend(b.indices.iter().copied());
        }
        assert_eq!(seen.len(), size, "{name}");
    }
}

#[test]
fn mnist_mlp_loads_with_a_tenth_for_validation() {
    let d = load("mnist_mlp", 0);
    assert_eq!(
        sizes(&d),
        split(&[("train", 54_000), ("val", 6_000), ("test", 10_000)])
    );
    let b = d.batches("test", 10_000, 0).unwrap().next().unwrap();
    let Tensor::F32(x) = &b.tensors["x"] else {
        panic!("x is f32")
    };
    assert_eq!(x.shape(), &[10_000, 784]);
    assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert!(x.iter().any(|&v| v == 1.0));
    let Tensor::I32(y) = &b.tensors["y"] else {
        panic!("y is i32")
    };
    // The first test digit of MNIST is a 7, the second a 2.
    assert_eq!(y.as_slice().unwrap()[..2], [7, 2]);
    let mut counts = [0usize; 10];
    y.iter().for_each(|&c| counts[c as usize] += 1);
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn mnist_cnn_images_are_reshaped_to_one_channel() {
    let d = load("mnist_cnn", 0);
    assert_eq!(d.size("val"), Some(6_000));
    let ty = &d.fields()[0].1;
    assert_eq!((ty.dtype, &ty.shape[..]), (DType::F32, &[1, 28, 28][..]));
    let b = d.batches("val", 256, 0).unwrap().last().unwrap();
    assert_eq!(b.tensors["x"].shape(), &[6_000 % 256, 1, 28, 28]);
}

#[test]
fn the_digits_folder_loads_its_pngs_with_the_class_names() {
    let d = load("digits_folder", 0);
    assert_eq!(
        sizes(&d),
        split(&[("train", 1_293), ("test", 360), ("val", 144)])
    );
    assert_eq!(
        d.pipeline().class_names("y").unwrap(),
        (0..10).map(|c| c.to_string()).collect::<Vec<_>>()
    );
    // Class by class in the folder's order: the test split starts with the zeros.
    let b = d.batches("test", 8, 0).unwrap().next().unwrap();
    assert_eq!(b.tensors["y"].to_f64(), [0.0; 8]);
    let x = b.tensors["x"].to_f64();
    assert_eq!(b.tensors["x"].shape(), &[8, 1, 8, 8]);
    // 15 × the 0–16 intensities, scaled by 1/240: multiples of 1/16 up to 1.
    assert!(
        x.iter()
            .all(|v| (v * 16.0 - (v * 16.0).round()).abs() < 1e-5 && *v <= 1.0)
    );
    assert!(d.skipped().is_empty());
}

#[test]
fn autoencoder_and_gan_read_only_images() {
    let ae = load("autoencoder", 0);
    assert_eq!(
        sizes(&ae),
        split(&[("train", 54_000), ("val", 6_000), ("test", 10_000)])
    );
    let gan = load("gan", 0);
    assert_eq!(sizes(&gan), split(&[("train", 60_000)]));
    assert_eq!(gan.fields().len(), 1);
    let b = gan.batches("train", 64, 3).unwrap().next().unwrap();
    assert_eq!(b.tensors.len(), 1);
    assert_eq!(b.tensors["x"].shape(), &[64, 784]);
}

#[test]
fn iris_splits_150_rows_into_96_24_30() {
    let d = load("iris", 0);
    assert_eq!(
        sizes(&d),
        split(&[("train", 96), ("val", 24), ("test", 30)])
    );
    check_batches(&d, 32);
    // Every class is present in the training split (the file is sorted by class).
    let y = d.batches("train", 96, 0).unwrap().next().unwrap().tensors["y"].to_f64();
    for c in 0..3 {
        assert!(y.contains(&(c as f64)));
    }
}

#[test]
fn breast_cancer_and_diabetes_load() {
    let bc = load("breast_cancer", 0);
    assert_eq!(
        sizes(&bc),
        split(&[("train", 364), ("val", 91), ("test", 114)])
    );
    check_batches(&bc, 64);
    let db = load("diabetes", 0);
    assert_eq!(
        sizes(&db),
        split(&[("train", 283), ("val", 71), ("test", 88)])
    );
    check_batches(&db, 64);
    // The target is standardized on the training split: mean 0 there.
    let y = db
        .batches("train", 1000, 0)
        .unwrap()
        .next()
        .unwrap()
        .tensors["y"]
        .to_f64();
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    assert!(mean.abs() < 1e-6, "{mean}");
}

#[test]
fn generated_examples_load() {
    let sine = load("lstm_sine", 0);
    assert_eq!(
        sizes(&sine),
        split(&[("train", 3_600), ("val", 400), ("test", 500)])
    );
    check_batches(&sine, 100);
    for (example, len) in [("gru_sort", 10), ("transformer_reverse", 12)] {
        let d = load(example, 0);
        assert_eq!(
            sizes(&d),
            split(&[("train", 18_000), ("val", 2_000), ("test", 2_000)])
        );
        check_batches(&d, 128);
        let b = d.batches("test", 5, 0).unwrap().next().unwrap();
        let (x, y) = (b.tensors["x"].to_f64(), b.tensors["y"].to_f64());
        for (xs, ys) in x.chunks(len).zip(y.chunks(len)) {
            assert!(xs.iter().all(|&t| (0.0..16.0).contains(&t)));
            let mut want = xs.to_vec();
            if example == "gru_sort" {
                want.sort_by(f64::total_cmp);
            } else {
                want.reverse();
            }
            assert_eq!(ys, &want[..]);
        }
    }
}

#[test]
fn a_csv_text_column_becomes_padded_ids_and_a_mask() {
    let d = load("text_classify", 1);
    // 2,000 rows; test the last 400, val the last 320 of the rest (no shuffle), as
    // tools/text_classify_baseline.py splits them.
    assert_eq!(
        sizes(&d),
        split(&[("train", 1_280), ("val", 320), ("test", 400)])
    );
    check_batches(&d, 64);
    let tok = d.pipeline().tokenizer("x").expect("fitted").clone();
    assert_eq!(tok.vocab_size(), 2000);
    let rows: Vec<String> = std::fs::read_to_string("examples/data/debian/descriptions.csv")
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let b = d.batches("test", 5, 0).unwrap().next().unwrap();
    let (x, mask) = (b.tensors["x"].to_f64(), b.tensors["mask"].to_f64());
    for (k, (xs, ms)) in x.chunks(24).zip(mask.chunks(24)).enumerate() {
        // The mask marks a prefix: the text's ids, then padding with the end-of-text id.
        let n = ms.iter().take_while(|&&m| m == 1.0).count();
        assert!(ms[n..].iter().all(|&m| m == 0.0), "{ms:?}");
        assert!(xs[n..].iter().all(|&i| i as i32 == tok.end_of_document()));
        let ids: Vec<i32> = xs[..n].iter().map(|&v| v as i32).collect();
        let text = tok.decode(&ids);
        assert!(!text.is_empty());
        // Test sample k is CSV row 1600 + k; its text starts with what the ids spell (all of
        // it unless cut after 24 ids).
        let row = &rows[1600 + k];
        assert!(
            row.trim_start_matches('"').starts_with(&text),
            "{text:?} vs {row:?}"
        );
    }
}

#[test]
fn loading_twice_gives_the_same_batches() {
    let (a, b) = (load("iris", 5), load("iris", 5));
    let batches = |d: &Dataset| -> Vec<_> { d.batches("train", 10, 2).unwrap().collect() };
    assert_eq!(batches(&a), batches(&b));
    assert_eq!(a.fitted_stats(), b.fitted_stats());
}

#[test]
fn the_word_list_splits_by_word_into_next_character_windows() {
    let d = load("char_gpt", 1);
    // 104,334 words; `split val = 0.1 of source` takes 10,433 of them whole. The windows (32 ids,
    // one every 32) are those tools/char_bigram.py counts for its baseline.
    assert_eq!(sizes(&d), split(&[("train", 27_698), ("val", 3_076)]));
    check_batches(&d, 500);
    let tok = d.pipeline().tokenizer("x").expect("fitted").clone();
    assert_eq!(
        tok.vocab_size(),
        80,
        "chars(vocab: 80) holds the list's 69 characters"
    );
    let b = d.batches("val", 4, 0).unwrap().next().unwrap();
    let (x, y) = (b.tensors["x"].to_f64(), b.tensors["y"].to_f64());
    for (xs, ys) in x.chunks(32).zip(y.chunks(32)) {
        assert_eq!(&xs[1..], &ys[..31], "y is x shifted by one id");
    }
    let ids: Vec<i32> = x.iter().map(|&v| v as i32).collect();
    let text = tok.decode(&ids);
    assert!(
        text.lines().filter(|l| !l.is_empty()).count() >= 10,
        "{text:?}"
    );
}

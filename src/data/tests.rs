//! Unit tests of the data pipeline on small files written to a temporary directory.

use super::*;
use crate::resolve::{Loader, resolve};
use crate::source::SourceMap;
use std::io::Write;
use std::path::PathBuf;
use text::Tokenizer;

struct NoFiles;

impl Loader for NoFiles {
    fn load(&self, _: &str) -> Result<String, String> {
        Err("no files in these tests".into())
    }
}

/// A fresh directory for one test.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nnl-data-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Parses and checks `text` as `t.nnl` and calls `f` with its first data block; the checker's
/// first error, if it reports one, as a `DataError` at the block.
fn checked<T>(
    text: &str,
    f: impl FnOnce(&Program, &DataDecl) -> Result<T, DataError>,
) -> Result<T, DataError> {
    let mut sources = SourceMap::new();
    let root = sources.add("t.nnl", text, false);
    let (mut program, diags) = resolve(&mut sources, root, &NoFiles);
    assert!(diags.is_empty(), "{diags:?}");
    let (checked, diags) = crate::check::check(&program, &sources);
    if let Some(e) = diags.iter().find(|d| d.is_error()) {
        return Err(DataError::in_file("t.nnl", &e.message));
    }
    program.facts = checked.facts;
    let decl = program.modules[program.root]
        .ast
        .items
        .iter()
        .find_map(|i| match i {
            Item::Data(d) => Some(d.clone()),
            _ => None,
        })
        .expect("a data block");
    f(&program, &decl)
}

/// [`checked`] for blocks that check clean.
fn with_block<T>(text: &str, f: impl FnOnce(&Program, &DataDecl) -> T) -> T {
    checked(text, |p, d| Ok(f(p, d))).unwrap_or_else(|e| panic!("{e}"))
}

fn try_load(dir: &Path, block: &str) -> Result<Dataset, DataError> {
    checked(block, |p, d| load(p, d, dir, 0))
}

fn load_ok(dir: &Path, block: &str) -> Dataset {
    try_load(dir, block).unwrap_or_else(|e| panic!("{e}"))
}

fn load_err(dir: &Path, block: &str) -> String {
    match try_load(dir, block) {
        Ok(_) => panic!("loaded, but an error was expected"),
        Err(e) => e.to_string(),
    }
}

/// All values of a field in a split, in split order (sample 0 first), whatever the shuffle.
fn values(d: &Dataset, split: &str, field: &str) -> Vec<f64> {
    let mut rows: Vec<(usize, Vec<f64>)> = Vec::new();
    for b in d.batches(split, 7, 0).unwrap() {
        let v = b.tensors[field].to_f64();
        let per = v.len() / b.indices.len();
        rows.extend(
            b.indices
                .iter()
                .copied()
                .zip(v.chunks(per).map(<[f64]>::to_vec)),
        );
    }
    rows.sort_by_key(|r| r.0);
    rows.into_iter().flat_map(|r| r.1).collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn stat(d: &Dataset, name: &str) -> Vec<f64> {
    let stats = d.fitted_stats();
    let (_, t) = stats.iter().find(|(n, _)| n == name).unwrap_or_else(|| {
        panic!(
            "no {name} among {:?}",
            stats.iter().map(|s| &s.0).collect::<Vec<_>>()
        )
    });
    t.to_f64()
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_columns_by_index_range_list_and_name() {
    let d = dir("csv_select");
    write(
        &d,
        "t.csv",
        b"# a comment line\na,b,c\n1,2,3\n4, 5 ,6\n\n\"7\",8,9\r\n",
    );
    let ds = load_ok(
        &d,
        r#"data t {
            train = csv("t.csv", header: true, skip: 1)
            a: f32[2] = cols(0..2)
            b: f32[2] = cols(0, 2)
            c: f64 = col("c")
            n: i32[2] = cols("b", "a")
        }"#,
    );
    assert_eq!(ds.size("train"), Some(3));
    assert_eq!(values(&ds, "train", "a"), [1.0, 2.0, 4.0, 5.0, 7.0, 8.0]);
    assert_eq!(values(&ds, "train", "b"), [1.0, 3.0, 4.0, 6.0, 7.0, 9.0]);
    assert_eq!(values(&ds, "train", "c"), [3.0, 6.0, 9.0]);
    assert_eq!(values(&ds, "train", "n"), [2.0, 1.0, 5.0, 4.0, 8.0, 7.0]);
    let Tensor::F64(_) = &ds.batches("train", 2, 0).unwrap().next().unwrap().tensors["c"] else {
        panic!("c is f64");
    };
}

#[test]
fn csv_with_gzip_and_delimiter_join() {
    let d = dir("csv_join");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"1 2\n3 4\n5 6\n").unwrap();
    write(&d, "a.csv.gz", &gz.finish().unwrap());
    write(&d, "b.csv", b"10\n20\n30\n");
    let ds = load_ok(
        &d,
        r#"data t {
            train = csv("a.csv.gz", delimiter: " ") |> join(csv("b.csv"))
            x: f32[3] = cols(0..3)
        }"#,
    );
    assert_eq!(
        values(&ds, "train", "x"),
        [1.0, 2.0, 10.0, 3.0, 4.0, 20.0, 5.0, 6.0, 30.0]
    );

    write(&d, "na.csv", b"10\nNA\n30\n");
    let e = load_err(
        &d,
        r#"data t {
            train = csv("a.csv.gz", delimiter: " ") |> join(csv("na.csv"))
            x: f32[3] = cols(0..3)
        }"#,
    );
    assert_eq!(
        e,
        format!(
            "{}/na.csv:2:1: a missing value, and field `x` has no `impute`",
            d.display()
        )
    );

    write(&d, "short.csv", b"10\n20\n");
    let e = load_err(
        &d,
        r#"data t {
            train = csv("a.csv.gz", delimiter: " ") |> join(csv("short.csv"))
            x: f32[3] = cols(0..3)
        }"#,
    );
    assert!(
        e.contains("short.csv: 2 rows, but") && e.contains("same number of rows"),
        "{e}"
    );
}

#[test]
fn csv_errors_have_the_line_and_column() {
    let d = dir("csv_errors");
    let block = |file: &str| {
        format!(
            r#"data t {{
                train = csv("{file}", header: true)
                x: f32[2] = cols(0..2)
                y: i32 = col(2)
            }}"#
        )
    };
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "text.csv",
            b"a,b,c\n1,2,0\n3,abc,1\n",
            "text.csv:3:3: `abc` is not a number (field `x`)",
        ),
        (
            "few.csv",
            b"a,b,c\n1,2,0\n3,4\n",
            "few.csv:3:4: this row has 2 cells, but line 1 has 3",
        ),
        (
            "many.csv",
            b"a,b,c\n1,2,0\n3,4,1,9\n",
            "many.csv:3:7: this row has 4 cells, but line 1 has 3",
        ),
        (
            "quote.csv",
            b"a,b,c\n1,2,0\n3,\"4,1\n",
            "quote.csv:3:3: this quoted cell is never closed (no matching `\"`)",
        ),
        (
            "after.csv",
            b"a,b,c\n1,\"2\"x,0\n",
            "after.csv:2:6: unexpected text after a quoted cell: expected `,` or the end of the line",
        ),
        (
            "missing.csv",
            b"a,b,c\n1,2,0\n\n3,,1\n",
            "missing.csv:4:3: a missing value, and field `x` has no `impute`",
        ),
        (
            "na.csv",
            b"a,b,c\n1,2,0\n3,4,NA\n",
            "na.csv:3:5: a missing value, and field `y` has no `impute`",
        ),
        (
            "frac.csv",
            b"a,b,c\n1,2,0\n3,4,1.5\n",
            "frac.csv:3:5: field `y` is i32, which needs a whole number in the i32 range, but the value is 1.5",
        ),
        (
            "inf.csv",
            b"a,b,c\n1,2,0\n3,inf,1\n",
            "inf.csv:3:3: `inf` is not a number (field `x`)",
        ),
    ];
    for (file, text, want) in cases {
        write(&d, file, text);
        let got = load_err(&d, &block(file));
        assert_eq!(got, format!("{}/{want}", d.display()), "{file}");
    }
    // A text column that no field reads is fine.
    write(&d, "names.csv", b"a,b,c,name\n1,2,0,setosa\n");
    load_ok(&d, &block("names.csv"));
}

#[test]
fn data_error_displays_as_file_line_column() {
    let e = DataError::at("a.csv", 3, 7, "bad");
    assert_eq!(e.to_string(), "a.csv:3:7: bad");
    assert_eq!(
        DataError::in_file("a.idx", "short").to_string(),
        "a.idx: short"
    );
}

#[test]
fn columns_and_types_that_do_not_fit_name_the_file_and_field() {
    let d = dir("mismatch");
    write(&d, "t.csv", b"1,2,3\n4,5,6\n");
    // The checker counts the columns before any file is read.
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  x: f32[4] = cols(0..3) }"#,
    );
    assert_eq!(
        e,
        "t.nnl: this selects 3 columns but the field is declared f32[4] (4 values)"
    );
    let e = load_err(&d, r#"data t { train = csv("t.csv")  x: f32 = col(3) }"#);
    assert!(
        e.ends_with("field `x`: there is no column 3: the table has 3 columns, numbered from 0"),
        "{e}"
    );
    let e = load_err(&d, r#"data t { train = csv("t.csv")  x: f32 = col("a") }"#);
    assert!(e.contains("the table has no header"), "{e}");
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  x: i32[3] = cols(0..3) |> scale(2) }"#,
    );
    assert!(
        e.starts_with("t.nnl: declared i32, but `scale` makes floating-point values"),
        "{e}"
    );
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv", delimiter: ";;")  x: f32 = col(0) }"#,
    );
    assert!(e.contains("one ASCII character"), "{e}");
}

// ---------------------------------------------------------------- statistics

/// 4 training rows (the first half) and 4 test rows (the last half, which a split without
/// shuffle takes).
const STATS_CSV: &[u8] = b"1,10\n2,\n3,30\n4,NA\n100,1000\n200,\n300,5\n400,7\n";

#[test]
fn statistics_are_fitted_on_the_training_split_only() {
    let d = dir("stats");
    write(&d, "t.csv", STATS_CSV);
    let ds = load_ok(
        &d,
        r#"data t {
            source = csv("t.csv")
            z: f32 = col(0) |> standardize
            m: f32 = col(0) |> minmax
            split test = 0.5 of source
        }"#,
    );
    assert_eq!(ds.size("train"), Some(4));
    let train = values(&ds, "train", "z");
    assert!(mean(&train).abs() < 1e-6);
    let var = train.iter().map(|v| v * v).sum::<f64>() / 4.0;
    assert!((var - 1.0).abs() < 1e-6, "{var}");
    let test = values(&ds, "test", "z");
    assert!(
        mean(&test) > 50.0,
        "the test split keeps the training statistics"
    );
    assert_eq!(stat(&ds, "t.z.0.standardize.mean"), [2.5]);
    assert_eq!(
        stat(&ds, "t.z.0.standardize.std"),
        [(1.25f64).sqrt()],
        "population std of 1, 2, 3, 4"
    );
    assert_eq!(
        values(&ds, "train", "m"),
        [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0].map(|v: f64| v as f32 as f64)
    );
    assert_eq!(values(&ds, "test", "m")[0], 33.0);
}

#[test]
fn impute_fills_missing_cells_from_the_training_split() {
    let d = dir("impute");
    write(&d, "t.csv", STATS_CSV);
    let ds = load_ok(
        &d,
        r#"data t {
            source = csv("t.csv")
            mean: f32 = col(1) |> impute(mean)
            median: f32 = col(1) |> impute(median)
            fixed: f32 = col(1) |> impute(constant: -1)
            std: f32 = col(1) |> impute() |> standardize
            split test = 0.5 of source
        }"#,
    );
    assert_eq!(values(&ds, "train", "mean"), [10.0, 20.0, 30.0, 20.0]);
    assert_eq!(values(&ds, "test", "mean"), [1000.0, 20.0, 5.0, 7.0]);
    assert_eq!(values(&ds, "train", "median"), [10.0, 20.0, 30.0, 20.0]);
    assert_eq!(values(&ds, "train", "fixed"), [10.0, -1.0, 30.0, -1.0]);
    assert_eq!(stat(&ds, "t.median.0.impute.fill"), [20.0]);
    assert!(mean(&values(&ds, "train", "std")).abs() < 1e-6);

    write(&d, "empty.csv", b"1,\n2,\n3,4\n");
    let e = load_err(
        &d,
        r#"data t { source = csv("empty.csv")  x: f32 = col(1) |> impute(median)  split test = 0.34 of source }"#,
    );
    assert!(e.contains("nothing to fill it with"), "{e}");
}

#[test]
fn clip_outliers_by_z_score_and_iqr() {
    let d = dir("clip");
    let mut text = String::new();
    for v in [1, 2, 3, 4, 5, 6, 7, 8, 9, 1000] {
        text += &format!("{v}\n");
    }
    text += "-500\n2000\n";
    write(&d, "t.csv", text.as_bytes());
    let ds = load_ok(
        &d,
        r#"data t {
            source = csv("t.csv")
            z: f32 = col(0) |> clip_outliers(z: 1)
            q: f32 = col(0) |> clip_outliers(iqr: 1.5)
            split test = 0.16 of source
        }"#,
    );
    assert_eq!(ds.size("test"), Some(2));
    // Quartiles of 1..9, 1000 with linear interpolation: 3.25 and 7.75.
    let (lo, hi) = (3.25 - 1.5 * 4.5, 7.75 + 1.5 * 4.5);
    assert_eq!(stat(&ds, "t.q.0.clip_outliers.low"), [lo]);
    assert_eq!(stat(&ds, "t.q.0.clip_outliers.high"), [hi]);
    let q = values(&ds, "train", "q");
    assert_eq!(q[..9], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(q[9], hi);
    assert_eq!(values(&ds, "test", "q"), [lo, hi]);
    let z = values(&ds, "train", "z");
    let (m, s) = (
        stat(&ds, "t.z.0.clip_outliers.low")[0],
        stat(&ds, "t.z.0.clip_outliers.high")[0],
    );
    assert!(
        z.iter()
            .all(|&v| v >= m as f32 as f64 && v <= s as f32 as f64)
    );
    assert!((z[9] - s).abs() < 1e-3);
}

#[test]
fn one_hot_of_labels_and_its_range_errors() {
    let d = dir("one_hot");
    write(&d, "t.csv", b"0\n2\n1\n");
    let ds = load_ok(
        &d,
        r#"data t { train = csv("t.csv")  y: f32[3] = col(0) |> one_hot(3) }"#,
    );
    assert_eq!(
        values(&ds, "train", "y"),
        [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    );
    write(&d, "bad.csv", b"0\n2\n3\n");
    let e = load_err(
        &d,
        r#"data t { train = csv("bad.csv")  y: f32[3] = col(0) |> one_hot(3) }"#,
    );
    assert_eq!(
        e,
        format!(
            "{}/bad.csv:3:1: `one_hot(3)` needs a class index from 0 to 2, found 3",
            d.display()
        )
    );
}

#[test]
fn stats_restore_into_a_pipeline_that_prepares_new_inputs() {
    let d = dir("restore");
    write(&d, "t.csv", STATS_CSV);
    let block = r#"data t {
        source = csv("t.csv")
        x: f32[2] = cols(0..2) |> impute(median) |> standardize
        y: f32 = col(0) |> scale(0.5)
        split test = 0.5 of source
    }"#;
    let ds = load_ok(&d, block);
    let stats = ds.fitted_stats();
    let names: Vec<&str> = stats.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "t.x.0.impute.fill",
            "t.x.1.standardize.mean",
            "t.x.1.standardize.std"
        ]
    );
    assert_eq!(stats[1].1.shape(), &[2]);
    let mut p = with_block(block, Pipeline::from_decl).unwrap();
    let raw = Tensor::from_f64(
        &TensorType::new(crate::ir::DType::F64, vec![2, 2]),
        vec![100.0, f64::NAN, 3.0, 30.0],
    );
    let e = p.transform_inputs("x", &raw).unwrap_err().to_string();
    assert!(e.contains("not fitted"), "{e}");
    p.restore_stats(&stats).unwrap();
    assert_eq!(&p, ds.pipeline());
    let out = p.transform_inputs("x", &raw).unwrap();
    assert_eq!(out.shape(), &[2, 2]);
    let test = values(&ds, "test", "x");
    let got = out.to_f64();
    assert_eq!(
        got[..2],
        [test[0], 0.0],
        "a missing value becomes the median, 0 once standardized"
    );
    assert_eq!(got[2..], values(&ds, "train", "x")[4..6]);
    let e = p
        .transform_inputs(
            "x",
            &Tensor::from_f64(
                &TensorType::new(crate::ir::DType::F32, vec![1, 3]),
                vec![0.0; 3],
            ),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("declared f32[2], but the data gives f32[3]"),
        "{e}"
    );
    let e = p.restore_stats(&stats[..2]).unwrap_err().to_string();
    assert!(e.contains("t.x.1.standardize.std"), "{e}");
}

// ---------------------------------------------------------------- IDX, npy, npz

fn idx(kind: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, kind, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(data);
    b
}

#[test]
fn idx_files_plain_or_gzip() {
    let d = dir("idx");
    let pixels: Vec<u8> = (0..3 * 2 * 2).map(|i| i as u8 * 10).collect();
    write(&d, "img.idx", &idx(0x08, &[3, 2, 2], &pixels));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&idx(0x08, &[3], &[4, 0, 9])).unwrap();
    write(&d, "lab.idx.gz", &gz.finish().unwrap());
    let ds = load_ok(
        &d,
        r#"data t {
            train = idx("img.idx", "lab.idx.gz")
            x: f32[4] = image |> flatten |> scale(1 / 10)
            y: i32 = label
        }"#,
    );
    assert_eq!(values(&ds, "train", "y"), [4.0, 0.0, 9.0]);
    assert_eq!(
        values(&ds, "train", "x"),
        (0..12).map(f64::from).collect::<Vec<_>>()
    );

    let e = load_err(
        &d,
        r#"data t { train = idx("img.idx", "lab.idx.gz")  x: f32[2, 3] = image  y: i32 = label }"#,
    );
    assert_eq!(
        e,
        format!(
            "{}/img.idx: field `x`: declared f32[2, 3], but the data gives f32[2, 2] per sample",
            d.display()
        )
    );
}

#[test]
fn broken_idx_files_are_errors() {
    let d = dir("idx_bad");
    write(&d, "lab.idx", &idx(0x08, &[3], &[1, 2, 3]));
    let block = |images: &str| {
        format!(
            r#"data t {{ train = idx("{images}", "lab.idx")  x: f32[2, 2] = image  y: i32 = label }}"#
        )
    };
    let cases: &[(&str, Vec<u8>, &str)] = &[
        (
            "short.idx",
            idx(0x08, &[3, 2, 2], &[0; 11]),
            "truncated: the header promises 3×2×2 u8 values (12 bytes after the 16-byte header), but the file has only 11 bytes there",
        ),
        (
            "header.idx",
            vec![0, 0, 8, 3, 0, 0],
            "truncated: the header of 3 dimensions needs 16 bytes, the file has 6",
        ),
        (
            "magic.idx",
            b"PK\x03\x04".to_vec(),
            "not an IDX file: it starts with 50 4b, not 00 00",
        ),
        (
            "type.idx",
            vec![0, 0, 7, 1, 0, 0, 0, 0],
            "not an IDX file: unknown element type 0x07 in the magic number",
        ),
        (
            "long.idx",
            idx(0x08, &[3, 2, 2], &[0; 13]),
            "1 unexpected bytes after the 3×2×2 u8 values the header promises",
        ),
    ];
    for (name, bytes, want) in cases {
        write(&d, name, bytes);
        let e = load_err(&d, &block(name));
        assert_eq!(e, format!("{}/{name}: {want}", d.display()));
    }
    write(&d, "two.idx", &idx(0x08, &[2, 2, 2], &[0; 8]));
    let e = load_err(&d, &block("two.idx"));
    assert_eq!(
        e,
        format!(
            "{0}/lab.idx: 3 labels, but `{0}/two.idx` has 2 images",
            d.display()
        )
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&idx(0x08, &[3, 2, 2], &[0; 12])).unwrap();
    let mut cut = gz.finish().unwrap();
    cut.truncate(cut.len() / 2);
    write(&d, "cut.idx.gz", &cut);
    let e = load_err(&d, &block("cut.idx.gz"));
    assert!(e.contains("cut.idx.gz: corrupt gzip data"), "{e}");
    let e = load_err(&d, &block("absent.idx"));
    assert!(e.contains("absent.idx: cannot read"), "{e}");
}

#[test]
fn npy_and_npz_arrays() {
    use ndarray::{ArrayD, IxDyn};
    use ndarray_npy::{NpzWriter, WriteNpyExt};
    let d = dir("npy");
    let x = ArrayD::from_shape_vec(IxDyn(&[4, 3]), (0..12).map(|v| v as f32).collect()).unwrap();
    x.write_npy(std::fs::File::create(d.join("x.npy")).unwrap())
        .unwrap();
    let ds = load_ok(
        &d,
        r#"data t { train = npy("x.npy")  x: f32[3] = x |> scale(2) }"#,
    );
    assert_eq!(
        values(&ds, "train", "x"),
        (0..12).map(|v| 2.0 * v as f64).collect::<Vec<_>>()
    );

    let mut npz = NpzWriter::new(std::fs::File::create(d.join("d.npz")).unwrap());
    npz.add_array("feat", &x).unwrap();
    let labels = ArrayD::from_shape_vec(IxDyn(&[4]), vec![0i64, 1, 1, 0]).unwrap();
    npz.add_array("lab", &labels).unwrap();
    npz.finish().unwrap();
    let ds = load_ok(
        &d,
        r#"data t {
            source = npz("d.npz")
            x: f32[3] = array("feat") |> standardize
            y: i32 = array("lab")
            split val = 0.25 of train
        }"#,
    );
    assert_eq!(
        ds.splits(),
        [("train".to_string(), 3), ("val".to_string(), 1)]
    );
    assert_eq!(values(&ds, "val", "y"), [0.0]);
    let e = load_err(
        &d,
        r#"data t { train = npz("d.npz")  x: f32[3] = array("nope") }"#,
    );
    assert!(
        e.contains("`nope` is not a column of this source (it has feat, lab)"),
        "{e}"
    );
}

// ---------------------------------------------------------------- splits

#[test]
fn splits_take_the_last_samples_or_a_seeded_shuffle() {
    let d = dir("splits");
    let text: String = (0..20).map(|i| format!("{i}\n")).collect();
    write(&d, "t.csv", text.as_bytes());
    let ds = load_ok(
        &d,
        r#"data t {
            split val = 0.25 of train
            source = csv("t.csv")
            i: i32 = col(0)
            split test = 0.2 of source
        }"#,
    );
    assert_eq!(values(&ds, "test", "i"), [16.0, 17.0, 18.0, 19.0]);
    assert_eq!(values(&ds, "val", "i"), [12.0, 13.0, 14.0, 15.0]);
    let block = |seed: u64| {
        format!(
            r#"data t {{
                source = csv("t.csv")
                i: i32 = col(0)
                split test = 0.2 of source, shuffle(seed: {seed})
                split val = 0.25 of train, shuffle(seed: {seed})
            }}"#
        )
    };
    let a = load_ok(&d, &block(1));
    let b = load_ok(&d, &block(1));
    let c = load_ok(&d, &block(2));
    let test = values(&a, "test", "i");
    assert_eq!(test, values(&b, "test", "i"));
    assert_ne!(test, values(&c, "test", "i"));
    assert!(test.windows(2).all(|w| w[0] < w[1]), "kept in file order");
    let mut all: Vec<f64> = ["train", "val", "test"]
        .iter()
        .flat_map(|s| values(&a, s, "i"))
        .collect();
    all.sort_by(f64::total_cmp);
    assert_eq!(all, (0..20).map(f64::from).collect::<Vec<_>>());
    assert_eq!(a.size("val"), Some(4));
}

#[test]
fn impossible_splits_are_errors() {
    let d = dir("split_errors");
    write(&d, "t.csv", b"1\n2\n3\n");
    let e = load_err(
        &d,
        r#"data t { source = csv("t.csv")  x: f32 = col(0)  split val = 0.1 of source }"#,
    );
    assert!(
        e.contains("split `val` takes 0.1 of `source`'s 3 samples"),
        "{e}"
    );
    let e = load_err(
        &d,
        r#"data t { a = csv("t.csv")  b = csv("t.csv")  x: f32 = col(0) }"#,
    );
    assert!(
        e.contains("`a` and `b` could both become the training set"),
        "{e}"
    );
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  extra = csv("t.csv")  x: f32 = col(0) }"#,
    );
    assert!(e.contains("the source `extra` is not used"), "{e}");
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  x: f32 = col(0)  split val = 0.5 of nothing }"#,
    );
    assert!(
        e.contains("cannot split `nothing`: no source or split has that name"),
        "{e}"
    );
}

// ---------------------------------------------------------------- batches

fn twenty_rows(test: &str) -> (PathBuf, Dataset) {
    let d = dir(test);
    let text: String = (0..23).map(|i| format!("{i},{}\n", i % 2)).collect();
    write(&d, "t.csv", text.as_bytes());
    let ds = load_ok(
        &d,
        r#"data t {
            train = csv("t.csv")
            x: f32 = col(0)
            y: i32 = col(1)
            shuffle(seed: 9)
        }"#,
    );
    (d, ds)
}

#[test]
fn batches_cover_every_sample_once_with_a_partial_last_batch() {
    let (_, ds) = twenty_rows("batches");
    let batches: Vec<Batch> = ds.batches("train", 5, 0).unwrap().collect();
    assert_eq!(ds.batches("train", 5, 0).unwrap().len(), 5);
    let sizes: Vec<usize> = batches.iter().map(|b| b.indices.len()).collect();
    assert_eq!(sizes, [5, 5, 5, 5, 3]);
    assert_eq!(batches[4].tensors["x"].shape(), &[3]);
    assert_eq!(batches[4].tensors["y"].shape(), &[3]);
    let mut xs: Vec<f64> = batches
        .iter()
        .flat_map(|b| b.tensors["x"].to_f64())
        .collect();
    for b in &batches {
        let (x, y) = (b.tensors["x"].to_f64(), b.tensors["y"].to_f64());
        for ((x, y), i) in x.iter().zip(&y).zip(&b.indices) {
            assert_eq!(*x, *i as f64, "the index is the sample's");
            assert_eq!(*y, x % 2.0, "fields of one sample stay together");
        }
    }
    xs.sort_by(f64::total_cmp);
    assert_eq!(xs, (0..23).map(f64::from).collect::<Vec<_>>());
    let e = ds.batches("train", 0, 0).err().unwrap().to_string();
    assert!(e.contains("at least 1"), "{e}");
}

#[test]
fn shuffling_is_deterministic_and_differs_between_epochs() {
    let (d, ds) = twenty_rows("shuffle");
    let order = |ds: &Dataset, epoch| -> Vec<usize> {
        ds.batches("train", 4, epoch)
            .unwrap()
            .flat_map(|b| b.indices)
            .collect()
    };
    let e0 = order(&ds, 0);
    assert_eq!(e0, order(&ds, 0));
    assert_ne!(e0, order(&ds, 1));
    assert_ne!(e0, (0..23).collect::<Vec<_>>());
    let (_, again) = twenty_rows("shuffle_again");
    assert_eq!(order(&again, 1), order(&ds, 1));
    // Another seed, another order; other splits are not shuffled.
    let other = load_ok(
        &d,
        r#"data t {
            train = csv("t.csv")
            x: f32 = col(0)
            y: i32 = col(1)
            shuffle(seed: 10)
            split val = 0.3 of train
        }"#,
    );
    assert_ne!(order(&other, 0), order(&ds, 0)[..16]);
    let val: Vec<usize> = other
        .batches("val", 4, 3)
        .unwrap()
        .flat_map(|b| b.indices)
        .collect();
    assert_eq!(val, (0..7).collect::<Vec<_>>());
}

#[test]
fn augmentations_apply_to_training_batches_only() {
    let d = dir("augment");
    let mut pixels = Vec::new();
    for _ in 0..6 {
        pixels.extend((1..=16).map(|v| v as u8));
    }
    write(&d, "img.idx", &idx(0x08, &[6, 4, 4], &pixels));
    write(&d, "lab.idx", &idx(0x08, &[6], &[0; 6]));
    let ds = load_ok(
        &d,
        r#"data t {
            train = idx("img.idx", "lab.idx")
            x: f32[1, 4, 4] = image |> reshape([1, 4, 4]) |> random_shift(1) |> random_flip
            n: f32[16] = image |> flatten |> gaussian_noise(0.5)
            split val = 0.5 of train
        }"#,
    );
    let orig: Vec<f64> = (1..=16).map(f64::from).collect();
    let epoch = |e| -> Vec<Batch> { ds.batches("train", 3, e).unwrap().collect() };
    let (a, b) = (epoch(0), epoch(1));
    assert_eq!(a, epoch(0), "the same epoch augments the same way");
    assert_ne!(a, b);
    let x = a[0].tensors["x"].to_f64();
    assert!(x.chunks(16).any(|s| s != orig), "some image moved");
    for s in x.chunks(16) {
        // A shift by at most one pixel and a flip keep the middle 2x2 block's values.
        let kept = orig.iter().filter(|v| s.contains(v)).count();
        assert!(kept >= 9, "{s:?}");
        assert!(s.iter().all(|v| *v == 0.0 || orig.contains(v)));
    }
    let noise: Vec<f64> = a[0].tensors["n"]
        .to_f64()
        .iter()
        .zip(orig.iter().cycle())
        .map(|(n, o)| n - o)
        .collect();
    let sd = (noise.iter().map(|v| v * v).sum::<f64>() / noise.len() as f64).sqrt();
    assert!(sd > 0.2 && sd < 1.0, "{sd}");
    for batch in ds.batches("val", 3, 0).unwrap() {
        assert!(batch.tensors["x"].to_f64().chunks(16).all(|s| s == orig));
        assert!(batch.tensors["n"].to_f64().chunks(16).all(|s| s == orig));
    }
}

#[test]
fn augmentation_order_and_image_axes_are_checked() {
    let d = dir("augment_errors");
    write(&d, "t.csv", b"1,2\n3,4\n");
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  x: f32[2] = cols(0..2) |> random_shift(1) }"#,
    );
    assert!(e.contains("`random_shift` needs images"), "{e}");
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  x: f32[2, 2] = cols(0..2) |> gaussian_noise(1) |> one_hot(2) }"#,
    );
    assert!(
        e.contains("`one_hot` cannot follow the augmentation `gaussian_noise`"),
        "{e}"
    );
}

// ---------------------------------------------------------------- generators

#[test]
fn generators_follow_their_definitions() {
    let d = dir("generators");
    let ds = load_ok(
        &d,
        r#"data t {
            train = xor(n: 200, seed: 3)
            test = xor(n: 50)
            x: f32[2] = x
            y: i32 = y
        }"#,
    );
    let (x, y) = (values(&ds, "train", "x"), values(&ds, "train", "y"));
    for (p, c) in x.chunks(2).zip(&y) {
        assert!(p.iter().all(|v| (-1.0..1.0).contains(v)));
        assert_eq!(*c, f64::from((p[0] > 0.0) != (p[1] > 0.0)));
    }
    assert!(mean(&y) > 0.3 && mean(&y) < 0.7);

    let ds = load_ok(
        &d,
        r#"data t { train = spirals(n: 300, classes: 3, seed: 1)  x: f32[2] = x  y: i32 = y }"#,
    );
    let (x, y) = (values(&ds, "train", "x"), values(&ds, "train", "y"));
    for (i, (p, c)) in x.chunks(2).zip(y).enumerate() {
        assert_eq!(c, (i % 3) as f64);
        assert!(p[0].hypot(p[1]) <= 1.0 + 1e-6);
    }

    let ds = load_ok(
        &d,
        r#"data t { train = blobs(n: 300, centers: 2, features: 3, std: 0.1, seed: 4)  x: f32[3] = x  y: i32 = y }"#,
    );
    let b = ds.batches("train", 300, 0).unwrap().next().unwrap();
    let (x, y) = (b.tensors["x"].to_f64(), b.tensors["y"].to_f64());
    let centre = |c: f64| -> Vec<f64> {
        let pts: Vec<&[f64]> = x
            .chunks(3)
            .zip(&y)
            .filter(|(_, k)| **k == c)
            .map(|(p, _)| p)
            .collect();
        (0..3)
            .map(|j| pts.iter().map(|p| p[j]).sum::<f64>() / pts.len() as f64)
            .collect()
    };
    let mut r = Rng::new(4, &[1]);
    let want: Vec<f64> = (0..6).map(|_| r.between(-10.0, 10.0)).collect();
    for c in 0..2 {
        for (got, want) in centre(c as f64).iter().zip(&want[c * 3..c * 3 + 3]) {
            assert!((got - want).abs() < 0.05, "{got} vs {want}");
        }
    }

    let ds = load_ok(
        &d,
        r#"data t { train = sine(n: 20, length: 8, seed: 5)  x: f32[8, 1] = x  y: f32[1] = y }"#,
    );
    let b = ds.batches("train", 20, 0).unwrap().next().unwrap();
    let Tensor::F32(_) = &b.tensors["x"] else {
        panic!("f32")
    };
    for (w, y) in b.tensors["x"]
        .to_f64()
        .chunks(8)
        .zip(b.tensors["y"].to_f64())
    {
        // s(t+1) + s(t−1) = 2·cos(ω)·s(t): the window and its next value are one sine wave.
        let series: Vec<f64> = w.iter().copied().chain([y]).collect();
        let c = (series[2] + series[0]) / series[1];
        if series[1].abs() < 0.2 {
            continue;
        }
        for t in 1..8 {
            assert!((series[t + 1] + series[t - 1] - c * series[t]).abs() < 1e-4);
        }
        assert!(series.iter().all(|v| v.abs() <= 1.0));
    }

    for (task, check) in [("copy_task", 0), ("reverse_task", 1), ("sort_task", 2)] {
        let ds = load_ok(
            &d,
            &format!(
                r#"data t {{ train = {task}(n: 30, length: 6, vocab: 5, seed: 1)  x: i32[6] = x  y: i32[6] = y }}"#
            ),
        );
        let b = ds.batches("train", 30, 0).unwrap().next().unwrap();
        for (x, y) in b.tensors["x"]
            .to_f64()
            .chunks(6)
            .zip(b.tensors["y"].to_f64().chunks(6))
        {
            let mut want = x.to_vec();
            match check {
                1 => want.reverse(),
                2 => want.sort_by(f64::total_cmp),
                _ => {}
            }
            assert_eq!(y, &want[..]);
            assert!(x.iter().all(|t| (0.0..5.0).contains(t)));
        }
    }
}

#[test]
fn generated_samples_depend_on_the_seed_and_index_only() {
    let d = dir("gen_seeds");
    let x = |block: &str, split: &str| values(&load_ok(&d, block), split, "x");
    let small = x(
        r#"data t { train = sine(n: 5, length: 4, seed: 7)  x: f32[4, 1] = x }"#,
        "train",
    );
    let big = x(
        r#"data t { train = sine(n: 50, length: 4, seed: 7)  x: f32[4, 1] = x }"#,
        "train",
    );
    assert_eq!(small, big[..20]);
    let other = x(
        r#"data t { train = sine(n: 5, length: 4, seed: 8)  x: f32[4, 1] = x }"#,
        "train",
    );
    assert_ne!(small, other);
    // Without seeds, train and test differ, and `seed N` picks them.
    let block = |seed: u64| {
        format!(
            r#"data t {{ train = sine(n: 5, length: 4)  test = sine(n: 5, length: 4)  x: f32[4, 1] = x  seed {seed} }}"#
        )
    };
    let (tr, te) = (x(&block(1), "train"), x(&block(1), "test"));
    assert_ne!(tr, te);
    assert_eq!(tr, x(&block(1), "train"));
    assert_ne!(tr, x(&block(2), "train"));
}

#[test]
fn generator_parameters_are_checked() {
    let d = dir("gen_errors");
    let e = load_err(
        &d,
        r#"data t { train = sine(n: -1, length: 4)  x: f32[4, 1] = x }"#,
    );
    assert!(
        e.contains("`n` of `sine` must be a whole number ≥ 0"),
        "{e}"
    );
    let e = load_err(
        &d,
        r#"data t { train = copy_task(n: 100000, length: 100000, vocab: 3)  x: i32[100000] = x }"#,
    );
    assert!(e.contains("more than 268435456 values"), "{e}");
    let e = load_err(&d, r#"data t { train = xor(n: 4)  x: f32[3] = x }"#);
    assert_eq!(
        e,
        "t.nnl: field `x`: declared f32[3], but the data gives f32[2] per sample"
    );
}

#[test]
fn whole_constants_impute_int_fields_and_huge_samples_are_refused() {
    let d = dir("ints");
    write(&d, "t.csv", b"1,\n,2\n");
    let ds = load_ok(
        &d,
        r#"data t { train = csv("t.csv")  y: i32[2] = cols(columns: 0..2) |> impute(constant: 0) }"#,
    );
    assert_eq!(values(&ds, "train", "y"), [1.0, 0.0, 0.0, 2.0]);
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  y: i32[2] = cols(0..2) |> impute(constant: 0.5) }"#,
    );
    assert!(
        e.contains("declared i32, but `impute` makes floating-point values"),
        "{e}"
    );
    let e = load_err(
        &d,
        r#"data t { train = csv("t.csv")  y: f32[1000000000] = col(0) |> one_hot(1000000000) }"#,
    );
    assert!(
        e.contains("after `one_hot`, one sample would hold more than"),
        "{e}"
    );
}

const ANIMALS: &[u8] = b"kind,colour,size\n\
cat,black,1\n\
dog,white,2\n\
cat,NA,3\n\
bird,white,4\n\
dog,white,5\n\
cat,black,6\n";

#[test]
fn category_names_are_encoded_with_a_vocabulary_fitted_on_training() {
    let d = dir("categories");
    write(&d, "train.csv", ANIMALS);
    write(&d, "test.csv", b"kind,colour,size\ndog,black,1\ncat,,2\n");
    let ds = load_ok(
        &d,
        r#"data t {
            train = csv("train.csv", header: true)
            test = csv("test.csv", header: true)
            kind: i32 = col("kind") |> label(classes: 3)
            both: f32[7] = cols("kind", "colour") |> one_hot(missing: category)
            colour: f32[2] = col("colour") |> one_hot(missing: most_frequent)
        }"#,
    );
    // Sorted names: bird 0, cat 1, dog 2.
    assert_eq!(values(&ds, "train", "kind"), [1.0, 2.0, 1.0, 0.0, 2.0, 1.0]);
    assert_eq!(values(&ds, "test", "kind"), [2.0, 1.0]);
    // Blocks of bird, cat, dog, (missing), then black, white, (missing).
    assert_eq!(
        values(&ds, "test", "both"),
        [0., 0., 1., 0., 1., 0., 0., 0., 1., 0., 0., 0., 0., 1.]
    );
    // The missing colour of `cat,NA` is white, the most frequent.
    assert_eq!(
        values(&ds, "train", "colour")[4..6],
        [0.0, 1.0],
        "{:?}",
        values(&ds, "train", "colour")
    );
    assert_eq!(
        ds.pipeline().class_names("kind").unwrap(),
        ["bird", "cat", "dog"]
    );
    let text = ds.pipeline().fitted_text();
    let keys: Vec<&str> = text.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "data.kind.categories",
            "data.both.categories",
            "data.colour.categories"
        ]
    );
    assert_eq!(
        text[0].1,
        r#"[{"names":["bird","cat","dog"],"most_frequent":1}]"#
    );

    // Restored into a pipeline read from the block alone, the vocabularies encode new rows.
    let block = r#"data t {
        train = csv("train.csv", header: true)
        kind: i32 = col("kind") |> label(classes: 3)
        colour: f32[3] = col("colour") |> one_hot(unknown: bucket, missing: most_frequent)
    }"#;
    let trained = load_ok(&d, block);
    let mut p = with_block(block, Pipeline::from_decl).unwrap();
    p.restore_text(&trained.pipeline().fitted_text()).unwrap();
    write(
        &d,
        "new.csv",
        b"size,colour,kind\n7,green,dog\n8,black,bird\n",
    );
    let raw = read_inputs(&d.join("new.csv")).unwrap();
    assert_eq!(p.transform_raw("kind", &raw).unwrap().to_f64(), [2.0, 0.0]);
    assert_eq!(
        p.transform_raw("colour", &raw).unwrap().to_f64(),
        [0., 0., 1., 1., 0., 0.]
    );
    write(&d, "bad.csv", b"kind\ncat\nfish\n");
    let e = p
        .transform_raw("kind", &read_inputs(&d.join("bad.csv")).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("bad.csv:3:1: field `kind`: `fish` is not one of the categories seen in training (bird, cat, dog): declare `unknown: bucket` to give unseen names a class of their own"), "{e}");
    let e = p.restore_text(&[]).unwrap_err().to_string();
    assert!(
        e.contains("`data.kind.categories` is not among the saved vocabularies"),
        "{e}"
    );
}

#[test]
fn unseen_and_missing_categories_and_wrong_counts_are_errors() {
    let d = dir("categories-errors");
    write(&d, "train.csv", ANIMALS);
    write(
        &d,
        "test.csv",
        b"kind,colour,size\ndog,black,1\nfish,white,2\n",
    );
    let e = load_err(
        &d,
        r#"data t {
            train = csv("train.csv", header: true)
            test = csv("test.csv", header: true)
            kind: i32 = col("kind") |> label
        }"#,
    );
    assert!(
        e.ends_with("test.csv:3:1: field `kind`: `fish` is not one of the categories seen in training (bird, cat, dog): declare `unknown: bucket` to give unseen names a class of their own"),
        "{e}"
    );
    let ds = load_ok(
        &d,
        r#"data t {
            train = csv("train.csv", header: true)
            test = csv("test.csv", header: true)
            kind: i32 = col("kind") |> label(unknown: bucket)
        }"#,
    );
    assert_eq!(values(&ds, "test", "kind"), [2.0, 3.0]);
    assert_eq!(
        ds.pipeline().class_names("kind").unwrap(),
        ["bird", "cat", "dog", UNKNOWN_NAME]
    );
    let e = load_err(
        &d,
        r#"data t { train = csv("train.csv", header: true)  c: i32 = col("colour") |> label }"#,
    );
    assert!(e.ends_with("train.csv:4:5: field `c`: a missing category: declare what it means, `missing: category` (a class of its own) or `missing: most_frequent`"), "{e}");
    let e = load_err(
        &d,
        r#"data t { train = csv("train.csv", header: true)  k: i32 = col("kind") |> label(classes: 2) }"#,
    );
    assert!(e.ends_with("data `t`, field `k`: `label(classes: 2)`, but the training split has 3 categories in `kind`: bird, cat, dog"), "{e}");
    let e = load_err(
        &d,
        r#"data t { train = csv("train.csv", header: true)  k: f32[4] = col("kind") |> one_hot }"#,
    );
    assert!(e.ends_with("data `t`, field `k`: declared f32[4], but `one_hot` gives 3 values per sample: the training split has 3 in `kind` (bird, cat, dog)"), "{e}");
    // Numbers are names too, sorted as numbers.
    let ds = load_ok(
        &d,
        r#"data t { train = csv("train.csv", header: true)  s: i32 = col("size") |> label }"#,
    );
    assert_eq!(values(&ds, "train", "s"), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    // Text in a field of numbers keeps its error, with a hint for `one_hot(k)`.
    let e = load_err(
        &d,
        r#"data t { train = csv("train.csv", header: true)  k: f32[3] = col("kind") |> one_hot(3) }"#,
    );
    assert!(e.contains("train.csv:2:1: `cat` is not a number (field `k`): to encode category names, write `one_hot` without `classes`"), "{e}");
}

/// Rows of a committed fixture CSV of numbers.
fn fixture_rows(name: &str) -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/knn_impute")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .flat_map(|l| {
            l.split(',')
                .map(|c| c.parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn knn_imputation_matches_scikit_learn() {
    // tests/fixtures/knn_impute/make.py wrote the tables and scikit-learn's KNNImputer(5)
    // values, on values standardized by the training split.
    let d = dir("knn");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/knn_impute");
    for f in ["train.csv", "test.csv"] {
        std::fs::copy(fixtures.join(f), d.join(f)).unwrap();
    }
    let block = r#"data t {
        train = csv("train.csv")
        test = csv("test.csv")
        x: f64[4] = cols(0..4) |> impute(knn(k: 5))
    }"#;
    let ds = load_ok(&d, block);
    for split in ["train", "test"] {
        let got = values(&ds, split, "x");
        let want = fixture_rows(&format!("expected_{split}.csv"));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{split} value {i}: {g} but scikit-learn gives {w}"
            );
        }
    }
    // The statistics (mean, std, the training samples) go to a checkpoint and back.
    let stats = ds.fitted_stats();
    let donors = stats
        .iter()
        .find(|(n, _)| n == "t.x.0.impute.donors")
        .unwrap();
    assert_eq!(donors.1.shape(), [40, 4]);
    let mut p = with_block(block, Pipeline::from_decl).unwrap();
    p.restore_stats(&stats).unwrap();
    let raw = ds.raw_inputs("test", "x").unwrap();
    let again = p.transform_inputs("x", &raw).unwrap().to_f64();
    assert_eq!(again, values(&ds, "test", "x"));
}

#[test]
fn text_windows_split_by_document_with_the_training_splits_characters() {
    let d = dir("text_windows");
    // ten documents; the last two (the validation split) hold a `z` the training split lacks.
    write(
        &d,
        "w.txt",
        b"ab\nba\r\n\naab\nbb\nab\nba\naa\nbab\nzab\nbz\n",
    );
    let block = "data t {\n  source = text(\"w.txt\", tokenizer: chars(), context: 3)\n  x: i32[3] = x\n  y: i32[3] = y\n  split val = 0.2 of source\n}\n";
    let data = load_ok(&d, block);
    let tok = data
        .pipeline()
        .tokenizer("x")
        .expect("a fitted tokenizer")
        .clone();
    assert_eq!(tok.vocab_size(), 4, "<unk>, end, a, b");
    // training stream ⏎ab⏎ba⏎aab⏎bb⏎ab⏎ba⏎aa⏎bab⏎: 25 ids, windows every 3 ids.
    assert_eq!(data.size("train"), Some(8));
    let x = values(&data, "train", "x");
    let y = values(&data, "train", "y");
    let stream: Vec<f64> = tok
        .encode("\nab\nba\naab\nbb\nab\nba\naa\nbab\n")
        .iter()
        .map(|&i| f64::from(i))
        .collect();
    assert_eq!(x, stream[..24]);
    assert_eq!(y, stream[1..25]);
    // validation: ⏎zab⏎bz⏎ with z unknown (0); 8 ids make 2 windows.
    assert_eq!(values(&data, "val", "x"), vec![1., 0., 2., 3., 1., 3.]);
    assert_eq!(values(&data, "val", "y"), vec![0., 2., 3., 1., 3., 0.]);

    // The tokenizer travels as text and must match the declared vocabulary.
    let saved = data.fitted_text();
    assert_eq!(saved.len(), 2);
    assert_eq!(saved[0].0, "data.t.x.tokenizer");
    let mut again = load_ok(&d, block);
    again.restore_text(&saved).unwrap();
    with_block(&block.replace("chars()", "chars(vocab: 9)"), |p, decl| {
        let mut fresh = Pipeline::from_decl(p, decl).unwrap();
        let e = fresh.restore_text(&saved).unwrap_err().to_string();
        assert!(e.contains("declares `vocab: 9`"), "{e}");
    });
    let mut fresh = with_block(block, |p, decl| Pipeline::from_decl(p, decl).unwrap());
    assert!(fresh.tokenizer("x").is_none());
    fresh.restore_text(&saved).unwrap();
    assert_eq!(fresh.tokenizer("y"), Some(&tok));

    let e = load_err(&d, &block.replace("chars()", "chars(vocab: 3)"));
    assert!(e.contains("at least 4"), "{e}");
    let e = load_err(
        &d,
        &block
            .replace("context: 3", "context: 8")
            .replace("i32[3]", "i32[8]"),
    );
    assert!(
        e.contains("split `val`") && e.contains("fewer than one window"),
        "{e}"
    );
    let e = load_err(&d, &block.replace("x: i32[3]", "x: i32[4]"));
    assert!(e.contains("field `x`"), "{e}");
    write(&d, "bad.txt", b"ok\n\xff\n");
    let e = load_err(&d, &block.replace("w.txt", "bad.txt"));
    assert!(e.contains("bad.txt:2:1") && e.contains("UTF-8"), "{e}");
}

#[test]
fn text_windows_follow_a_declared_stride() {
    let d = dir("text_stride");
    write(&d, "w.txt", b"abcd\nefgh\n");
    let block = "data t {\n  train = text(\"w.txt\", tokenizer: chars(vocab: 16), context: 4, stride: 1)\n  x: i32[4] = x\n  y: i32[4] = y\n}\n";
    let data = load_ok(&d, block);
    // 11 ids: windows start at 0..=6.
    assert_eq!(data.size("train"), Some(7));
    assert_eq!(data.pipeline().tokenizer("x").unwrap().vocab_size(), 16);
}

#[test]
fn text_with_a_bpe_trained_on_the_training_split_or_loaded_from_a_file() {
    let d = dir("text_bpe");
    let words: String = (0..400).map(|i| format!("word{}ing\n", i % 37)).collect();
    write(&d, "w.txt", words.as_bytes());
    let block = "data t {\n  source = text(\"w.txt\", tokenizer: bpe(vocab: 300), context: 4)\n  x: i32[4] = x\n  y: i32[4] = y\n  split val = 0.1 of source\n}\n";
    let data = load_ok(&d, block);
    let tok = data.pipeline().tokenizer("x").unwrap().clone();
    assert_eq!(tok.vocab_size(), 300);
    let x = values(&data, "train", "x");
    assert!(x.iter().all(|&v| (0.0..300.0).contains(&v)));
    // The saved tokenizer is the Hugging Face JSON; it loads back as a file too.
    let saved = data.fitted_text();
    let mut fresh = with_block(block, |p, decl| Pipeline::from_decl(p, decl).unwrap());
    fresh.restore_text(&saved).unwrap();
    assert_eq!(fresh.tokenizer("x"), Some(&tok));
    let Tokenizer::Bpe(_) = &tok else {
        panic!("a BPE")
    };
    let e = load_err(&d, &block.replace("bpe(vocab: 300)", "bpe()"));
    assert!(e.contains("needs `vocab: N`"), "{e}");
    let e = load_err(
        &d,
        &block.replace("bpe(vocab: 300)", "bpe(file: \"none.json\")"),
    );
    assert!(e.contains("none.json"), "{e}");
}

/// The pipeline binds a source's arguments as the checker does (one rule, `crate::bind`): a
/// positional argument after a named one takes the first free parameter. The pipeline used to
/// put it by its index, so `blobs(seed: 1, 40, …)` checked clean and failed to load.
#[test]
fn arguments_bind_as_the_checker_binds_them() {
    let text = r#"data t {
        train = blobs(seed: 1, 40, features: 3)
        x: f32[3] = x
        y: i32 = y
    }"#;
    let check = crate::check_source("t.nnl", text, &NoFiles);
    assert!(check.diagnostics.is_empty(), "{:?}", check.diagnostics);
    let ds = load_ok(&dir("bind_positional"), text);
    assert_eq!(ds.size("train"), Some(40));
    let err = load_err(
        &dir("bind_twice"),
        r#"data t { train = blobs(n: 4, n: 5)  x: f32[2] = x  y: i32 = y }"#,
    );
    assert!(err.contains("`n` is given twice"), "{err}");
}

// ---------------------------------------------------------------- image folders

/// Writes a grey PNG of `h × w` values at `dir/path`.
fn grey_png(dir: &Path, path: &str, w: u32, h: u32, values: &[u8]) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    image::GrayImage::from_raw(w, h, values.to_vec())
        .unwrap()
        .save(&p)
        .unwrap();
}

/// Writes an RGB PNG (interleaved values) at `dir/path`.
fn rgb_png(dir: &Path, path: &str, w: u32, h: u32, values: &[u8]) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    image::RgbImage::from_raw(w, h, values.to_vec())
        .unwrap()
        .save(&p)
        .unwrap();
}

#[test]
fn image_folders_read_classes_and_files_in_sorted_order() {
    let d = dir("images");
    // Classes `cat` < `dog`; files sorted by path, nested folders included, other files ignored.
    grey_png(&d, "pics/dog/b.png", 2, 2, &[1, 2, 3, 4]);
    grey_png(&d, "pics/dog/a.png", 2, 2, &[5, 6, 7, 8]);
    rgb_png(
        &d,
        "pics/cat/x/c.PNG",
        2,
        2,
        &[255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30],
    );
    write(&d, "pics/cat/notes.txt", b"not an image");
    write(&d, "pics/readme.png", b"outside every class");
    let block = |channels: usize| {
        format!(
            r#"data t {{
                train = images("pics", size: [2, 2], channels: {channels})
                x: f32[{channels}, 2, 2] = image
                y: i32 = label
            }}"#
        )
    };
    let ds = load_ok(&d, &block(1));
    assert_eq!(ds.size("train"), Some(3));
    assert_eq!(values(&ds, "train", "y"), [0.0, 1.0, 1.0]);
    // PIL's luma of red, green, blue and (10, 20, 30); then dog/a.png, dog/b.png.
    assert_eq!(
        values(&ds, "train", "x"),
        [76., 150., 29., 18., 5., 6., 7., 8., 1., 2., 3., 4.]
    );
    assert_eq!(ds.pipeline().class_names("y").unwrap(), ["cat", "dog"]);
    let text = ds.pipeline().fitted_text();
    assert_eq!(
        text,
        [("data.y.classes".to_string(), r#"["cat","dog"]"#.to_string())]
    );

    // Three channels: colour planes, grey images repeated.
    let ds = load_ok(&d, &block(3));
    let x = values(&ds, "train", "x");
    assert_eq!(
        x[..12],
        [255., 0., 0., 10., 0., 255., 0., 20., 0., 0., 255., 30.]
    );
    assert_eq!(x[12..24], [5., 6., 7., 8., 5., 6., 7., 8., 5., 6., 7., 8.]);

    // A pipeline restored from the checkpoint's text has the class names.
    let mut p = with_block(&block(1), Pipeline::from_decl).unwrap();
    p.restore_text(&text).unwrap();
    assert_eq!(p.class_names("y").unwrap(), ["cat", "dog"]);
}

#[test]
fn images_of_another_size_are_resized_and_jpeg_decodes() {
    let d = dir("images_resize");
    // A 4×4 image of 2×2 blocks, shrunk by 2.
    let mut px = vec![0u8; 16];
    for (i, v) in px.iter_mut().enumerate() {
        let (r, c) = (i / 4, i % 4);
        *v = [[10, 50], [90, 200]][r / 2][c / 2];
    }
    grey_png(&d, "pics/a/big.png", 4, 4, &px);
    let jpeg = d.join("pics/b/flat.jpg");
    std::fs::create_dir_all(jpeg.parent().unwrap()).unwrap();
    image::GrayImage::from_raw(8, 8, vec![128; 64])
        .unwrap()
        .save(&jpeg)
        .unwrap();
    let ds = load_ok(
        &d,
        r#"data t {
            train = images("pics", size: [2, 2], channels: 1)
            x: f32[1, 2, 2] = image
            y: i32 = label
        }"#,
    );
    let x = values(&ds, "train", "x");
    // Antialiased bilinear, as PIL's: the triangle is 2 input pixels wide on each side, so the
    // first output row weighs input rows 0, 1, 2 by 3/4, 3/4, 1/4 (over 7/4), and so do the
    // columns: the top-left value is (3/4·15.71 + 3/4·15.71 + 1/4·105.71) / (7/4) = 28.57,
    // 15.71 = (3/4·10 + 3/4·10 + 1/4·50) / (7/4) being row 0's first value.
    assert_eq!(x[..4], [29., 64., 93., 164.]);
    assert!(x[4..].iter().all(|v| (v - 128.0).abs() <= 2.0), "{x:?}");
}

#[test]
fn a_file_that_does_not_decode_is_named_or_skipped_and_counted() {
    let d = dir("images_bad");
    grey_png(&d, "pics/a/1.png", 2, 2, &[1, 2, 3, 4]);
    grey_png(&d, "pics/b/2.png", 2, 2, &[1, 2, 3, 4]);
    let mut truncated = std::fs::read(d.join("pics/a/1.png")).unwrap();
    truncated.truncate(truncated.len() / 2);
    write(&d, "pics/b/broken.png", &truncated);
    let block = |skip: bool| {
        format!(
            r#"data t {{
                train = images("pics", size: [2, 2], channels: 1, skip_bad: {skip})
                x: f32[1, 2, 2] = image
                y: i32 = label
            }}"#
        )
    };
    let e = load_err(&d, &block(false));
    assert!(
        e.starts_with(&format!("{}: ", d.join("pics/b/broken.png").display())),
        "{e}"
    );
    assert!(e.contains("skip_bad: true"), "{e}");
    let ds = load_ok(&d, &block(true));
    assert_eq!(ds.size("train"), Some(2));
    let skipped = ds.skipped();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].0.ends_with("broken.png"), "{skipped:?}");

    // A class folder with no image, and test classes that differ from training's.
    std::fs::create_dir_all(d.join("pics/empty")).unwrap();
    let e = load_err(&d, &block(true));
    assert!(e.contains("the class folder `empty` holds no image"), "{e}");
    std::fs::remove_dir(d.join("pics/empty")).unwrap();
    grey_png(&d, "other/a/1.png", 2, 2, &[1, 2, 3, 4]);
    let e = load_err(
        &d,
        r#"data t {
            train = images("pics", size: [2, 2], channels: 1, skip_bad: true)
            test = images("other", size: [2, 2], channels: 1)
            x: f32[1, 2, 2] = image
            y: i32 = label
        }"#,
    );
    assert!(e.contains("every folder needs the same classes"), "{e}");
}

#[test]
fn the_declared_image_type_must_match_channels_and_size() {
    let d = dir("images_type");
    grey_png(&d, "pics/a/1.png", 2, 2, &[1, 2, 3, 4]);
    let e = load_err(
        &d,
        r#"data t {
            train = images("pics", size: [2, 2], channels: 1)
            x: f32[3, 2, 2] = image
            y: i32 = label
        }"#,
    );
    // The checker reads the images' shape from the source.
    assert!(
        e.contains("the images are [1, 2, 2] per sample (1 channel, 2×2), but the field is declared f32[3, 2, 2]"),
        "{e}"
    );
    let e = load_err(
        &d,
        r#"data t {
            train = images("pics", size: [2, 2], channels: 2)
            x: f32[2, 2, 2] = image
        }"#,
    );
    assert!(
        e.contains("`channels` of `images` is 1 (grey) or 3 (RGB)"),
        "{e}"
    );
}

// ---------------------------------------------------------------- image augmentations

/// A 3 × 5 × 5 RGB image whose values all differ (the 2 × 5 × 5 plane before it unused).
fn gradient_images(d: &Path) {
    let n = 6;
    for k in 0..n {
        let px: Vec<u8> = (0..75).map(|i| (i * 3 + k * 7) as u8).collect();
        rgb_png(d, &format!("pics/c{}/{k}.png", k % 2), 5, 5, &px);
    }
}

fn augmented(ds: &Dataset, epoch: u64) -> Vec<f64> {
    ds.batches("train", 6, epoch)
        .unwrap()
        .flat_map(|b| b.tensors["x"].to_f64())
        .collect()
}

#[test]
fn each_image_augmentation_is_seeded_per_epoch_and_training_only() {
    let d = dir("augment_images");
    gradient_images(&d);
    for t in [
        "random_rotation(30)",
        "random_resized_crop(scale: [0.3, 0.9], ratio: [0.5, 2])",
        "random_flip(vertical)",
        "random_flip(both)",
        "color_jitter(brightness: 0.5, contrast: 0.5)",
    ] {
        let block = |seed: u64| {
            format!(
                r#"data t {{
                    train = images("pics", size: [5, 5], channels: 3)
                    x: f32[3, 5, 5] = image |> scale(1 / 255) |> {t}
                    y: i32 = label
                    seed {seed}
                }}"#
            )
        };
        let ds = load_ok(&d, &block(1));
        let plain = load_ok(
            &d,
            r#"data t {
                train = images("pics", size: [5, 5], channels: 3)
                x: f32[3, 5, 5] = image |> scale(1 / 255)
                y: i32 = label
                seed 1
            }"#,
        );
        let a = augmented(&ds, 0);
        assert_eq!(a, augmented(&ds, 0), "{t}: one epoch augments one way");
        assert_eq!(
            a,
            augmented(&load_ok(&d, &block(1)), 0),
            "{t}: one seed, one way"
        );
        assert_ne!(a, augmented(&plain, 0), "{t}: changes the images");
        assert_ne!(a, augmented(&ds, 1), "{t}: another epoch, other draws");
        assert_ne!(
            a,
            augmented(&load_ok(&d, &block(2)), 0),
            "{t}: another seed"
        );
        assert!(a.iter().all(|v| v.is_finite()), "{t}");
        // Evaluation splits and prediction are never augmented.
        let x = ds.raw_inputs("train", "x").unwrap();
        let prepared = ds.transform_inputs("x", &x).unwrap().to_f64();
        let unchanged = plain
            .transform_inputs("x", &plain.raw_inputs("train", "x").unwrap())
            .unwrap()
            .to_f64();
        assert_eq!(prepared, unchanged, "{t}");
    }
}

#[test]
fn augmentations_move_pixels_as_stated() {
    // 90° counter-clockwise: the top row becomes the left column, read upwards.
    let mut img: Vec<f64> = (0..9).map(f64::from).collect();
    augment::rotate(&mut img, &[1, 3, 3], 90.0);
    let rounded: Vec<f64> = img.iter().map(|v| (v * 1e9).round() / 1e9).collect();
    assert_eq!(rounded, [2., 5., 8., 1., 4., 7., 0., 3., 6.]);
    // Vertical flip reverses the rows of each plane.
    let mut img: Vec<f64> = (0..12).map(f64::from).collect();
    augment::flip(&mut img, &[2, 2, 3], false);
    assert_eq!(img, [3., 4., 5., 0., 1., 2., 9., 10., 11., 6., 7., 8.]);
    // A crop of the whole image is the image.
    let mut img: Vec<f64> = (0..16).map(f64::from).collect();
    let whole = augment::CropSpec {
        scale: (1.0, 1.0),
        ratio: (1.0, 1.0),
    };
    augment::resized_crop(&mut img, &[4, 4], &whole, &mut Rng::new(0, &[9]));
    assert_eq!(img, (0..16).map(f64::from).collect::<Vec<_>>());
    // Brightness 2 doubles; contrast 0 leaves the grey mean everywhere.
    let mut img = vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    augment::jitter(&mut img, &[3, 1, 2], 2.0, 1.0);
    assert_eq!(img, [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]);
    let mut img = vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    augment::jitter(&mut img, &[3, 1, 2], 1.0, 0.0);
    assert!(img.iter().all(|v| (v - 0.5).abs() < 1e-12), "{img:?}");
    let mut img = vec![0.0; 4];
    augment::rotate(&mut img, &[2, 2], 45.0);
    assert_eq!(img, [0.0; 4]);
}

#[test]
fn color_jitter_needs_rgb_images() {
    let d = dir("jitter_grey");
    grey_png(&d, "pics/a/1.png", 2, 2, &[1, 2, 3, 4]);
    let e = load_err(
        &d,
        r#"data t {
            train = images("pics", size: [2, 2], channels: 1)
            x: f32[1, 2, 2] = image |> color_jitter(brightness: 0.2)
        }"#,
    );
    // The checker sees the grey images' channel.
    assert!(
        e.contains("`color_jitter` changes the colours of RGB images"),
        "{e}"
    );
}

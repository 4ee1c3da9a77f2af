//! Fuzzing with a fixed seed and a time budget: a structured generator of hostile sources (deep
//! nesting around the limit, long chains, huge and wrapping sizes, byte-order marks, stray
//! characters) through every stage — check, format, and for what checks clean lowering,
//! differentiation, optimization and the IR verifier — and hostile binary inputs (headers that
//! claim huge shapes, truncated data, bad offsets, flipped bytes) through every reader. Nothing
//! may panic, abort or allocate beyond the 4 GiB address-space limit the process runs under,
//! and a source that checks clean must compile.
//!
//! Each target runs for `NNL_FUZZ_SECONDS` seconds (default 15) or its case limit; a failure
//! prints the case, and the same seed makes the same cases. `NNL_FUZZ_SEED` mixes another
//! number into every target's seed, to explore cases CI does not run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[path = "common/stages.rs"]
mod stages;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Holds this process to 4 GiB of address space (as `ulimit -v` would), so that a reader
/// that allocates what a header claims fails the test instead of succeeding on a large machine.
fn limit_address_space() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--as={}:", 4u64 << 30))
            .status()
            .expect("prlimit (util-linux) runs");
        assert!(status.success(), "prlimit failed");
    });
}

/// `NNL_FUZZ_SEED`, or 0 for the cases CI runs.
fn explored_seed() -> u64 {
    match std::env::var("NNL_FUZZ_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("NNL_FUZZ_SEED must be a number, not {s:?}")),
        Err(_) => 0,
    }
}

fn budget() -> Duration {
    let seconds = std::env::var("NNL_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    Duration::from_secs(seconds)
}

/// Runs `case` on generated inputs until the budget or `max_cases` is spent; the number run.
fn fuzz(seed: u64, max_cases: usize, mut case: impl FnMut(&mut Rng, usize)) -> usize {
    limit_address_space();
    // Odd, as xorshift's state must not be 0 (the seeds CI runs are odd already).
    let mut rng = Rng((seed ^ explored_seed().wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
    let start = Instant::now();
    let budget = budget();
    let mut n = 0;
    while n < max_cases && start.elapsed() < budget {
        case(&mut rng, n);
        n += 1;
    }
    n
}

// ---------------------------------------------------------------- sources

/// Numbers at the edges of what sizes and integers can be.
const EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "3",
    "2147483647",
    "2147483648",
    "4294967296",
    "9007199254740993",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551616",
    "100000000000000000000",
    "(-9223372036854775807 - 1)",
    "2 ^ 62",
    "2 ^ 63",
    "2 ^ 64",
    "2 ^ -1",
    "1e308",
    "1e309",
];

fn edge(rng: &mut Rng) -> String {
    rng.pick(EDGES).to_string()
}

/// An expression nested `depth` deep in one of the ways the language nests.
fn nested(rng: &mut Rng, depth: usize, leaf: &str) -> String {
    match rng.below(11) {
        0 => format!("{}{leaf}{}", "(".repeat(depth), ")".repeat(depth)),
        1 => format!("{leaf}{}", " + h".repeat(depth)),
        2 => format!("{leaf}{}", " |> relu".repeat(depth)),
        3 => format!("{}{leaf}", "-".repeat(depth)),
        4 => format!(
            "{}{leaf}{}",
            "if true { ".repeat(depth),
            " } else { h }".repeat(depth)
        ),
        5 => format!("{}{leaf}", "|y| ".repeat(depth)),
        6 => format!("{leaf}{}", " ^ 1".repeat(depth)),
        7 => format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth)),
        8 => format!("{}{leaf}{}", "{ ".repeat(depth), " }".repeat(depth)),
        9 => format!("{leaf}{}", ".x".repeat(depth)),
        _ => format!("{}{leaf}{}", "sum(".repeat(depth), ")".repeat(depth)),
    }
}

fn depth(rng: &mut Rng) -> usize {
    let limit = nnl::syntax::MAX_NESTING;
    *rng.pick(&[
        1,
        2,
        10,
        100,
        limit - 2,
        limit - 1,
        limit,
        limit + 1,
        limit + 2,
        400,
        3000,
    ])
}

/// A program with a data block (a generator: no files), a model and a train block, with holes
/// filled by hostile pieces.
fn hostile_source(rng: &mut Rng) -> String {
    let d = depth(rng);
    let width = if rng.chance(2) { edge(rng) } else { "4".into() };
    let units = if rng.chance(2) { edge(rng) } else { "3".into() };
    let body = match rng.below(5) {
        0 => format!("let h = x |> Dense({units})\n  {}", nested(rng, d, "h")),
        1 => format!(
            "let h = reshape(x, [B, {}, {}])\n  x |> Dense(3)",
            edge(rng),
            edge(rng)
        ),
        2 => format!(
            "let n = {} * {} + {}\n  x |> Dense(3)",
            edge(rng),
            edge(rng),
            edge(rng)
        ),
        3 => format!("x |> Dense({units}) |> Dense(3)"),
        _ => format!("let r = 0..{}\n  x |> Dense(3)", edge(rng)),
    };
    let field = match rng.below(4) {
        0 => format!("x: f32[{width}] = x"),
        1 => format!(
            "x: f32[{width}, {width}] = x |> reshape([{}, {}])",
            edge(rng),
            edge(rng)
        ),
        2 => "x: f32[2] = x".into(),
        _ => format!("x: f32[2] = x |> scale({})", edge(rng)),
    };
    let mut text = format!(
        "use std.nn.{{Dense}}\n\ndata d {{\n  train = xor(n: {}, seed: 1)\n  {field}\n  y: i32 = y\n}}\n\nmodel M()(x: f32[B, 2]) -> f32[B, 3] {{\n  {body}\n}}\n\ntrain M on d {{\n  loss = sparse_cross_entropy(out, y)\n  optimizer = sgd(lr: 0.1)\n  batch {}\n  epochs 1\n}}\n",
        if rng.chance(3) {
            edge(rng)
        } else {
            "16".into()
        },
        if rng.chance(4) { edge(rng) } else { "4".into() },
    );
    // Stray characters and marks.
    for _ in 0..rng.below(3) {
        let at = rng.below(text.len());
        if text.is_char_boundary(at) {
            let stray = *rng.pick(&[
                "\u{feff}", "\r", "\0", "\u{202e}", "😀", "\"", "#", "\\", "`",
            ]);
            text.insert_str(at, stray);
        }
    }
    if rng.chance(4) {
        text.insert(0, '\u{feff}');
    }
    text
}

#[test]
fn hostile_sources_pass_through_every_stage_without_panicking() {
    let mut clean = 0;
    let n = fuzz(0x5EED_0013, 5_000, |rng, _| {
        let text = hostile_source(rng);
        let outcome = catch_unwind(|| stages::all_stages("fuzz.nnl", &text));
        assert!(outcome.is_ok(), "a stage panicked on:\n{text}");
        clean += usize::from(outcome.is_ok_and(|(_, checked_clean, _)| checked_clean));
    });
    eprintln!("{n} hostile sources, {clean} checked clean");
    assert!(n >= 50, "only {n} cases in the budget");
}

// ---------------------------------------------------------------- binary inputs

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnl-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Bytes with a few hostile edits: flipped bits, bytes set to extremes, a cut, an insertion.
fn corrupt(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len());
        match rng.below(5) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = *rng.pick(&[0x00, 0xFF, 0x7F, 0x80, b'9', b'-', b',', b'\n']),
            2 => bytes.truncate(at),
            3 => {
                let run = *rng.pick(&[
                    b"\xFF\xFF\xFF\xFF".as_slice(),
                    b"99999999999999999999",
                    b"-1",
                ]);
                bytes.splice(at..at, run.iter().copied());
            }
            _ => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at..end);
            }
        }
    }
    bytes
}

fn npy_header(descr: &str, fortran: bool, shape: &str) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let pad = (64 - (10 + dict.len() + 1) % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

const SHAPES: &[&str] = &[
    "(4, 3)",
    "(1000000000000, 4)",
    "(4294967296, 4294967296)",
    "(18446744073709551615,)",
    "(9223372036854775807, 2)",
    "(-1, 3)",
    "()",
    "(0, 5)",
    "(3, 0, 100000000000)",
    "(2, 3, 4, 5, 6, 7, 8, 9)",
];

fn hostile_npy(rng: &mut Rng) -> Vec<u8> {
    let descr = *rng.pick(&[
        "<f4", "<f8", "<i8", "<i4", "|u1", "|b1", ">f4", "<c8", "|O", "<U3",
    ]);
    let shape = *rng.pick(SHAPES);
    let mut bytes = npy_header(descr, rng.chance(5), shape);
    bytes.extend(std::iter::repeat_n(1u8, rng.below(200)));
    if rng.chance(2) {
        bytes = corrupt(rng, bytes);
    }
    bytes
}

fn hostile_npz(rng: &mut Rng, dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("f.npz");
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    for name in ["x.npy", "y.npy"] {
        let options =
            zip::write::SimpleFileOptions::default().compression_method(if rng.chance(2) {
                zip::CompressionMethod::Deflated
            } else {
                zip::CompressionMethod::Stored
            });
        zip.start_file(name, options).unwrap();
        zip.write_all(&hostile_npy(rng)).unwrap();
    }
    zip.finish().unwrap();
    if rng.chance(2) {
        let bytes = corrupt(rng, std::fs::read(&path).unwrap());
        std::fs::write(&path, bytes).unwrap();
    }
    path
}

fn hostile_safetensors(rng: &mut Rng, dir: &Path) -> PathBuf {
    let path = dir.join("f.safetensors");
    let dtype = *rng.pick(&[
        "F32", "F64", "I64", "I32", "F16", "BF16", "BOOL", "U8", "Q4",
    ]);
    let shape = *rng.pick(&[
        "[2,3]",
        "[1000000000000,4]",
        "[4294967296,4294967296]",
        "[]",
        "[0]",
        "[18446744073709551615]",
    ]);
    let (start, end) = *rng.pick(&[
        (0u64, 24u64),
        (0, 0),
        (24, 0),
        (0, 1 << 40),
        (u64::MAX - 1, u64::MAX),
        (3, 27),
    ]);
    let header = format!(
        "{{\"w\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{start},{end}]}},\"__metadata__\":{{\"a\":\"b\"}}}}"
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    if rng.chance(6) {
        bytes = u64::MAX.to_le_bytes().to_vec();
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(std::iter::repeat_n(0u8, rng.below(64)));
    if rng.chance(2) {
        bytes = corrupt(rng, bytes);
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

fn idx_bytes(rng: &mut Rng, labels: bool) -> Vec<u8> {
    let dims: Vec<u32> = if labels {
        vec![*rng.pick(&[4, 60_000, u32::MAX, 0])]
    } else {
        vec![
            *rng.pick(&[4, 60_000, u32::MAX, 0]),
            *rng.pick(&[28, 1, 65_536, u32::MAX]),
            28,
        ]
    };
    let dtype = *rng.pick(&[0x08u8, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x42]);
    let mut bytes = vec![0, 0, dtype, dims.len() as u8];
    for d in &dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend(std::iter::repeat_n(3u8, rng.below(4 * 28 * 28 + 10)));
    if rng.chance(2) {
        bytes = corrupt(rng, bytes);
    }
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn hostile_csv(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::new();
    if rng.chance(3) {
        text.push('\u{feff}');
    }
    text.push_str("a,b,c\n");
    for _ in 0..rng.below(20) {
        let cells: Vec<String> = (0..1 + rng.below(4))
            .map(|_| {
                rng.pick(&[
                    "1",
                    "2.5",
                    "",
                    "nan",
                    "inf",
                    "-1e400",
                    "\"q,q\"",
                    "\"",
                    "x",
                    "1e999",
                    "99999999999999999999",
                ])
                .to_string()
            })
            .collect();
        text.push_str(&cells.join(","));
        let end = *rng.pick(&["\n", "\r\n", "\r", ""]);
        text.push_str(end);
    }
    if rng.chance(8) {
        text.push_str(&"9".repeat(100_000));
    }
    corrupt(rng, text.into_bytes())
}

/// Loads `data_block` of a small program written to `dir` (its train block trains on it).
fn load_block(dir: &Path, data_block: &str) -> Result<(), String> {
    let source = format!(
        "use std.nn.{{Dense}}\n{data_block}\nmodel M()(x: f32[B, 3]) -> f32[B, 1] {{ x |> Dense(1) }}\ntrain M on d {{\n  loss = mean(out)\n  optimizer = sgd(lr: 0.1)\n}}\n"
    );
    let file = dir.join("m.nnl");
    let (check, program) =
        nnl::check_program(file.to_str().unwrap(), &source, &nnl::fs::DiskLoader);
    if check.has_errors() {
        return Err("does not check".into());
    }
    nnl::runtime::load_data(&program, &file, 1).map(|_| ())
}

#[test]
fn hostile_binary_inputs_are_refused_by_every_reader_without_crashing() {
    let dir = scratch();
    let n = fuzz(0x5EED_B1A5, 20_000, |rng, _| {
        let target = rng.below(6);
        let outcome = catch_unwind(AssertUnwindSafe(|| match target {
            0 => {
                let bytes = hostile_npy(rng);
                let _ = nnl::store::parse_npy(&bytes);
                std::fs::write(dir.join("in.npy"), &bytes).unwrap();
                let _ = nnl::data::read_inputs(&dir.join("in.npy"));
                let _ = load_block(
                    &dir,
                    "data d {\n  train = npy(\"in.npy\")\n  x: f32[3] = x\n}",
                );
            }
            1 => {
                let path = hostile_npz(rng, &dir);
                let _ = nnl::store::read_npz(&path);
                let _ = load_block(
                    &dir,
                    "data d {\n  train = npz(\"f.npz\")\n  x: f32[3] = array(\"x\")\n}",
                );
            }
            2 => {
                let path = hostile_safetensors(rng, &dir);
                let _ = nnl::store::read_safetensors(&path);
                let _ = nnl::runtime::checkpoint::load(&path);
            }
            3 | 4 => {
                let (images, labels) = (idx_bytes(rng, false), idx_bytes(rng, true));
                let compressed = target == 4;
                let (images, labels) = if compressed {
                    let mut gz = gzip(&images);
                    if rng.chance(3) {
                        // A trailer that lies about the inflated size.
                        let n = gz.len();
                        gz[n - 4..].copy_from_slice(&1u32.to_le_bytes());
                    }
                    (corrupt(rng, gz), gzip(&labels))
                } else {
                    (images, labels)
                };
                let ext = if compressed { "idx.gz" } else { "idx" };
                std::fs::write(dir.join(format!("i.{ext}")), images).unwrap();
                std::fs::write(dir.join(format!("l.{ext}")), labels).unwrap();
                let _ = load_block(
                    &dir,
                    &format!(
                        "data d {{\n  train = idx(\"i.{ext}\", \"l.{ext}\")\n  x: f32[3] = image |> flatten |> reshape([3])\n}}"
                    ),
                );
            }
            _ => {
                std::fs::write(dir.join("t.csv"), hostile_csv(rng)).unwrap();
                let _ = nnl::data::read_inputs(&dir.join("t.csv"));
                let _ = load_block(
                    &dir,
                    "data d {\n  source = csv(\"t.csv\", header: true)\n  x: f32[3] = cols(0..3) |> standardize\n  split val = 0.5 of source\n}",
                );
            }
        }));
        assert!(
            outcome.is_ok(),
            "a reader panicked on a case of target {target}"
        );
    });
    eprintln!("{n} hostile binary inputs");
    assert!(n >= 50, "only {n} cases in the budget");
}

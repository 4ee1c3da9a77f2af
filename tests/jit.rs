//! The differential test of a candidate backend (the Cranelift JIT) against the reference
//! interpreter. Every example trains a few steps through the real runtime on a [`Compare`]
//! backend, which runs each graph on both backends and compares every output, so training steps,
//! evaluation graphs (every batch of the validation and test splits, the smaller last one
//! included) and metrics are checked on real data, parameters and optimizer states; then each
//! model alone (what `nnlc predict` runs) is compared on an odd batch size.
//!
//! The runtime carries on with the reference's outputs, so a difference never compounds from one
//! step to the next: every comparison starts from identical inputs.
//!
//! Two more tests check the harness itself: a candidate with a wrong loss is rejected, and one
//! that computes in f64 (more accurately than the f32 reference) is accepted.

use nnl::ir::{DType, Graph};
use nnl::runtime::{
    self, Backend, Executable, Interpreter, Jit, Observer, RunOptions, Session, Trainer, checkpoint,
};
use nnl::tensor::{RunError, Tensor};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The backend under test.
fn candidate() -> Box<dyn Backend> {
    Box::new(Jit {
        threads: 1,
        profile: false,
    })
}

/// Float outputs match when |candidate − reference| <= ATOL + RTOL·|reference|, element by
/// element (ints and bools must be equal). Everything runs in f32 (unit roundoff 6e-8); a
/// backend that sums in another order or fuses a multiply-add differs by about 6e-8·√n relative
/// for a reduction of n terms, 1e-6 for the largest here (784-deep products, batch means), and a
/// train step chains a few dozen such ops: RTOL leaves a margin of about 100 over that, while a
/// real bug (a wrong index, op or broadcast) is off by percents or more. ATOL covers values that
/// are sums cancelling to near zero, where the error is relative to the terms, not the result;
/// parameters, activations and losses are all far above it. The f64 candidate of
/// `a_more_accurate_candidate_is_accepted` comes within 0.33 of this at worst (an element of
/// gan's first Adam step, where a gradient near 1e-8 meets Adam's epsilon). What no tolerance
/// absorbs: a discrete result (argmax, a comparison) that flips at a near-tie, and the outputs
/// of [`noise_driven`].
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

/// The magnitude an output's error is relative to, besides its own: a layer's update norm
/// `health.<layer>.update_norm` = ‖p_new − p‖ is computed from the new parameters, which match
/// element by element within the tolerance relative to the parameters, so it is as accurate as
/// the parameters' norm (`health.<layer>.weight_norm`) allows, not its own — at Adam's first
/// step, gradients at rounding-noise level still move a parameter by a good part of the
/// learning rate.
fn error_scale(name: &str, expected: &HashMap<String, Tensor>) -> f64 {
    name.strip_suffix(".update_norm")
        .filter(|layer| layer.starts_with("health."))
        .and_then(|layer| expected.get(&format!("{layer}.weight_norm")))
        .and_then(Tensor::scalar)
        .map_or(0.0, f64::abs)
}

/// Outputs that are rounding noise in any f32 backend, so only their type, shape and finiteness
/// are compared: the attention key bias `bk` and its optimizer state. Softmax ignores a shift of
/// a row of scores, and `bk` shifts every score of a row by the same `q·bk`, so its gradient is
/// exactly zero in exact arithmetic and about 1e-10 of rounding noise in f32; Adam divides that
/// by √v + 1e-8, making an update of up to 1e-5 whose value is the noise's (the f64 candidate
/// gives 0 where the reference gives 1e-5).
fn noise_driven(output: &str) -> bool {
    output.contains(".self_attention_") && (output.ends_with(".bk") || output.contains(".bk."))
}

/// What the comparisons found so far.
#[derive(Default)]
struct Tally {
    graph_runs: usize,
    /// Outputs whose every element has the same bits in both backends.
    identical: usize,
    /// Outputs that differ, but within the tolerance.
    close: usize,
    /// Outputs whose values were not compared (see [`noise_driven`]).
    noise: usize,
    /// The largest |difference| / tolerance of a close output, and where it was.
    worst: Option<(f64, String)>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.graph_runs += other.graph_runs;
        self.identical += other.identical;
        self.close += other.close;
        self.noise += other.noise;
        if let Some((ratio, at)) = other.worst {
            self.note_close(ratio, at);
        }
    }

    /// Records a close output `ratio` of the tolerance away at `at`.
    fn note_close(&mut self, ratio: f64, at: String) {
        if self.worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
            self.worst = Some((ratio, at));
        }
    }

    fn summary(&self) -> String {
        let noise = match self.noise {
            0 => String::new(),
            n => format!(", {n} noise-driven (not compared)"),
        };
        let worst = match &self.worst {
            Some((ratio, at)) => format!("; closest: {ratio:.2} of the tolerance, at {at}"),
            None => String::new(),
        };
        format!(
            "{} graph runs; outputs {} bit-identical, {} within tolerance{noise}{worst}",
            self.graph_runs, self.identical, self.close
        )
    }
}

/// A backend that runs every graph on `reference` and on `candidate`, returns the reference's
/// outputs, and fails with a message naming the graph, the output, the worst element and both
/// values when the candidate's outputs differ from them.
struct Compare {
    reference: Box<dyn Backend>,
    candidate: Box<dyn Backend>,
    tally: Rc<RefCell<Tally>>,
}

impl Backend for Compare {
    fn name(&self) -> &'static str {
        "compare"
    }

    fn prepare(&self, graph: Graph) -> Result<Box<dyn Executable>, String> {
        let name = graph.name.clone();
        let candidate = self.candidate.prepare(graph.clone()).map_err(|e| {
            format!(
                "the candidate ({}) cannot prepare `{name}`: {e}",
                self.candidate.name()
            )
        })?;
        Ok(Box::new(Compared {
            graph: name,
            reference: self.reference.prepare(graph)?,
            candidate,
            runs: Cell::new(0),
            tally: self.tally.clone(),
        }))
    }
}

struct Compared {
    graph: String,
    reference: Box<dyn Executable>,
    candidate: Box<dyn Executable>,
    /// Runs of this executable, to say which one failed.
    runs: Cell<usize>,
    tally: Rc<RefCell<Tally>>,
}

impl Executable for Compared {
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        self.runs.set(self.runs.get() + 1);
        let expected = self.reference.run(input, locate_nonfinite);
        let got = self.candidate.run(input, locate_nonfinite);
        let at = format!("`{}` (run {})", self.graph, self.runs.get());
        let fail = |message: String| RunError {
            message: format!("mismatch in {at}: {message}"),
            node: None,
            op: None,
            loc: None,
        };
        match (expected, got) {
            (Ok(expected), Ok(got)) => {
                let mut tally = self.tally.borrow_mut();
                tally.graph_runs += 1;
                compare_outputs(&at, &expected, &got, &mut tally).map_err(fail)?;
                Ok(expected)
            }
            // Both fail (a NaN located, bad data): the candidate may word it differently.
            (Err(e), Err(_)) => Err(e),
            (Ok(_), Err(e)) => Err(fail(format!("the candidate failed: {e}"))),
            (Err(e), Ok(_)) => Err(fail(format!(
                "the reference failed and the candidate did not: {e}"
            ))),
        }
    }
}

/// Checks `got` against `expected` output by output, counting them in `tally`.
fn compare_outputs(
    at: &str,
    expected: &HashMap<String, Tensor>,
    got: &HashMap<String, Tensor>,
    tally: &mut Tally,
) -> Result<(), String> {
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    let mut got_names: Vec<&String> = got.keys().collect();
    got_names.sort();
    if names != got_names {
        return Err(format!(
            "the reference gave outputs {names:?}, the candidate {got_names:?}"
        ));
    }
    for name in names {
        let (e, g) = (&expected[name], &got[name]);
        if e.ty() != g.ty() {
            return Err(format!(
                "output `{name}` is {} in the reference, {} in the candidate",
                e.ty(),
                g.ty()
            ));
        }
        let (e_values, g_values) = (e.to_f64(), g.to_f64());
        // f32 → f64 is exact, so equal f64 bits are equal f32 bits (−0 and 0 differ).
        if e_values
            .iter()
            .zip(&g_values)
            .all(|(a, b)| a.to_bits() == b.to_bits())
        {
            tally.identical += 1;
            continue;
        }
        if noise_driven(name) {
            if let Some(i) =
                (0..e_values.len()).find(|&i| e_values[i].is_finite() != g_values[i].is_finite())
            {
                return Err(format!(
                    "output `{name}` ({}, only its finiteness compared), element {:?}: reference {}, candidate {}",
                    e.ty(),
                    unravel(i, e.shape()),
                    e_values[i],
                    g_values[i]
                ));
            }
            tally.noise += 1;
            continue;
        }
        let scale = error_scale(name, expected);
        let excess: Vec<f64> = e_values
            .iter()
            .zip(&g_values)
            .map(|(&r, &c)| excess(e.dtype(), r, c, scale))
            .collect();
        let (worst, &ratio) = excess
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("outputs that differ have elements");
        let index = unravel(worst, e.shape());
        if ratio > 1.0 {
            let outside = excess.iter().filter(|&&x| x > 1.0).count();
            return Err(format!(
                "output `{name}` ({}), element {index:?}: reference {}, candidate {} ({outside} of {} elements outside |diff| <= {ATOL} + {RTOL}·(|reference| + {scale}))",
                e.ty(),
                e_values[worst],
                g_values[worst],
                excess.len()
            ));
        }
        tally.close += 1;
        tally.note_close(ratio, format!("{at} `{name}` {index:?}"));
    }
    Ok(())
}

/// How far `candidate` is from `reference` in tolerances, for an error relative to the
/// reference and `scale` ([`error_scale`]): above 1 is a mismatch. Ints and bools must be
/// equal; a NaN matches only a NaN.
fn excess(dtype: DType, reference: f64, candidate: f64, scale: f64) -> f64 {
    if reference == candidate || (reference.is_nan() && candidate.is_nan()) {
        0.0
    } else if !dtype.is_float() || !(reference - candidate).is_finite() {
        f64::INFINITY
    } else {
        (reference - candidate).abs() / (ATOL + RTOL * (reference.abs() + scale))
    }
}

/// The multi-dimensional index of row-major element `flat` of `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &n) in shape.iter().enumerate().rev() {
        index[i] = flat % n;
        flat /= n;
    }
    index
}

/// Training progress is not shown: the test prints one summary line per example.
struct Quiet;

impl Observer for Quiet {}

/// How each example is trained on the compared backends.
fn run_options(checkpoint_dir: PathBuf) -> RunOptions {
    RunOptions {
        epochs: Some(1),
        checkpoint_dir: Some(checkpoint_dir),
        steps_per_epoch: Some(2),
        ..RunOptions::default()
    }
}

/// Trains `file` briefly on `backend`: the run's train steps, evaluations and checkpoint.
/// Returns the program's check (for its sources), the program, its data and the trained values.
fn train_briefly(
    file: &Path,
    backend: Box<dyn Backend>,
    scratch: &Path,
) -> Result<
    (
        nnl::CheckOutput,
        nnl::resolve::Program,
        nnl::data::Dataset,
        HashMap<String, Tensor>,
    ),
    String,
> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    let (check, program) = nnl::check_program(&file.to_string_lossy(), &text, &nnl::fs::DiskLoader);
    if check.has_errors() {
        return Err(nnl::diag::render(&check.sources, &check.diagnostics, false));
    }
    let mut session = Session::new(&program, &check.sources, None, backend)?;
    let seed = session.config().seed.unwrap_or(0);
    let mut data = runtime::load_data(&program, file, seed)?;
    let ckpt = scratch.join("ckpt");
    Trainer::new(&mut session, &mut data, &run_options(ckpt.clone()))?.run(&mut Quiet)?;
    drop(session);
    let values = checkpoint::load(&ckpt.join(checkpoint::LAST))?.values;
    Ok((check, program, data, values))
}

/// Runs each model of the train block alone, in evaluation mode, on `backend` (what `nnlc
/// predict` runs) with the trained values, on three samples: an odd batch, unlike the training
/// batches. Inputs the data has, with the model's type, come from the first training samples;
/// the others (a generator's noise, a decoder's code) are fixed values in [−1, 1). Returns how
/// many models ran.
fn run_models(
    program: &nnl::resolve::Program,
    sources: &nnl::source::SourceMap,
    data: &nnl::data::Dataset,
    values: &HashMap<String, Tensor>,
    backend: &dyn Backend,
) -> Result<usize, String> {
    const BATCH: usize = 3;
    let models = &program.train().ok_or("no train block")?.models;
    let batch = data
        .batches("train", BATCH, 0)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no training samples")?;
    let opts = nnl::lower::Options {
        batch: Some(BATCH),
        float: DType::F32,
    };
    for model in models {
        let graph = nnl::lower::lower_model(program, sources, &opts, &model.name, false)
            .map_err(|d| d.message)?;
        let graph = nnl::opt::optimize(&graph).0;
        let mut feed: HashMap<String, Tensor> = HashMap::new();
        for (v, name, _) in graph.inputs() {
            let ty = graph.ty(v);
            let given = batch.tensors.get(name).or(values.get(name));
            let tensor = match given {
                Some(t) if t.ty() == *ty => t.clone(),
                _ => fixed_values(ty),
            };
            feed.insert(name.to_string(), tensor);
        }
        backend
            .prepare(graph)?
            .run(&|n| feed.get(n), false)
            .map_err(|e| format!("`{}` alone: {e}", model.name))?;
    }
    Ok(models.len())
}

/// A tensor of `ty` whose elements spread over [−1, 1) (zeros for integers and bools).
fn fixed_values(ty: &nnl::ir::TensorType) -> Tensor {
    let shape = ndarray::IxDyn(&ty.shape);
    let spread = (0..ty.numel()).map(|i| (i * 37 % 64) as f64 / 32.0 - 1.0);
    let sized = "a vector of the shape's size";
    match ty.dtype {
        DType::F32 => Tensor::F32(
            ndarray::ArrayD::from_shape_vec(shape, spread.map(|x| x as f32).collect())
                .expect(sized),
        ),
        DType::F64 => {
            Tensor::F64(ndarray::ArrayD::from_shape_vec(shape, spread.collect()).expect(sized))
        }
        DType::I32 => Tensor::I32(ndarray::ArrayD::zeros(shape)),
        DType::Bool => Tensor::Bool(ndarray::ArrayD::from_elem(shape, false)),
    }
}

/// A fresh directory for one run, unique among the tests running at once.
fn scratch(name: &str) -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("nnl-jit-{}-{run}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The examples, sorted (paths relative to the crate root, where tests run).
fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("examples")
        .expect("examples/ lists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "nnl"))
        .collect();
    files.sort();
    files
}

/// Trains and runs one example on the reference and a candidate made by `candidate`; what the
/// comparisons found, and a line of summary.
fn compare_example(
    file: &Path,
    candidate: &dyn Fn() -> Box<dyn Backend>,
) -> Result<(Tally, String), String> {
    let name = file.file_stem().expect("a file name").to_string_lossy();
    let dir = scratch(&name);
    let start = Instant::now();
    let tally = Rc::new(RefCell::new(Tally::default()));
    let compare = || Compare {
        reference: Box::new(Interpreter { threads: 1 }),
        candidate: candidate(),
        tally: tally.clone(),
    };
    let (check, program, data, values) = train_briefly(file, Box::new(compare()), &dir)?;
    let models = run_models(&program, &check.sources, &data, &values, &compare())?;
    let _ = std::fs::remove_dir_all(&dir);
    let t = Rc::into_inner(tally)
        .expect("the backends are dropped")
        .into_inner();
    let summary = format!(
        "{name}: {}; {models} model(s) run alone ({:.1}s)",
        t.summary(),
        start.elapsed().as_secs_f64()
    );
    Ok((t, summary))
}

/// Compares a candidate with the reference on every example, printing a line per example;
/// the totals over the examples, or every example's failure.
fn compare_every_example(candidate: &dyn Fn() -> Box<dyn Backend>) -> Result<Tally, String> {
    let files = examples();
    assert!(
        !files.is_empty(),
        "no examples: tests run in the crate root"
    );
    eprintln!("comparing {} with the interpreter", candidate().name());
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for file in &files {
        match compare_example(file, candidate) {
            Ok((t, summary)) => {
                eprintln!("{summary}");
                total.add(t);
            }
            Err(e) => {
                eprintln!("{}: FAILED", file.display());
                failures.push(format!("{}: {e}", file.display()));
            }
        }
    }
    if failures.is_empty() {
        eprintln!("all {} examples: {}", files.len(), total.summary());
        Ok(total)
    } else {
        Err(failures.join("\n\n"))
    }
}

#[test]
fn every_example_trains_evaluates_and_predicts_alike_on_the_candidate() {
    if let Err(failures) = compare_every_example(&candidate) {
        panic!("\n{failures}");
    }
}

/// The interpreter, with the loss of every step 1e-2 too large: a backend `Compare` must reject.
struct SkewedLoss;

struct SkewedLossExecutable(Box<dyn Executable>);

impl Backend for SkewedLoss {
    fn name(&self) -> &'static str {
        "skewed-loss"
    }

    fn prepare(&self, graph: Graph) -> Result<Box<dyn Executable>, String> {
        Ok(Box::new(SkewedLossExecutable(
            Interpreter { threads: 1 }.prepare(graph)?,
        )))
    }
}

impl Executable for SkewedLossExecutable {
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        let mut out = self.0.run(input, locate_nonfinite)?;
        if let Some(Tensor::F32(loss)) = out.get_mut("loss") {
            loss.mapv_inplace(|x| x + 1e-2);
        }
        Ok(out)
    }
}

#[test]
fn a_candidate_off_by_a_hundredth_is_reported() {
    let compare = Compare {
        reference: Box::new(Interpreter { threads: 1 }),
        candidate: Box::new(SkewedLoss),
        tally: Rc::default(),
    };
    let dir = scratch("skewed");
    let Err(e) = train_briefly(Path::new("examples/iris.nnl"), Box::new(compare), &dir) else {
        panic!("a wrong loss went unnoticed");
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        e.contains("epoch 1, step 1: mismatch in `step.train` (run 1): output `loss`"),
        "{e}"
    );
    assert!(e.contains("reference") && e.contains("candidate"), "{e}");
}

/// The interpreter computing in f64 what a graph states in f32, its outputs rounded back to f32:
/// a backend more accurate than the reference, which the tolerance must accept.
struct Widened;

struct WidenedExecutable {
    /// The names of the graph's inputs, whose f32 tensors are widened before each run.
    inputs: Vec<String>,
    wide: Box<dyn Executable>,
}

/// `graph` with every f32 value, constant, random draw and cast made f64, scan bodies included.
fn widen(graph: &mut Graph) {
    use nnl::ir::{Op, TensorType, Type};
    let widen_type = |t: &mut TensorType| {
        if t.dtype == DType::F32 {
            t.dtype = DType::F64;
        }
    };
    for node in &mut graph.nodes {
        match &mut node.ty {
            Type::Tensor(t) => widen_type(t),
            Type::Tuple(ts) => ts.iter_mut().for_each(widen_type),
        }
        match &mut node.op {
            Op::Input { ty, .. }
            | Op::Const { ty, .. }
            | Op::Iota { ty, .. }
            | Op::Rand { ty, .. } => widen_type(ty),
            Op::Cast { to } if *to == DType::F32 => *to = DType::F64,
            Op::Scan { body, .. } => widen(body),
            _ => {}
        }
    }
}

/// `t` converted to `to` when it is `from`, else unchanged.
fn converted(t: &Tensor, from: DType, to: DType) -> Tensor {
    if t.dtype() == from {
        Tensor::from_f64(&t.ty().with_dtype(to), t.to_f64())
    } else {
        t.clone()
    }
}

impl Backend for Widened {
    fn name(&self) -> &'static str {
        "the interpreter in f64"
    }

    fn prepare(&self, mut graph: Graph) -> Result<Box<dyn Executable>, String> {
        let inputs = graph.inputs().map(|(_, n, _)| n.to_string()).collect();
        widen(&mut graph);
        Ok(Box::new(WidenedExecutable {
            inputs,
            wide: Interpreter { threads: 1 }.prepare(graph)?,
        }))
    }
}

impl Executable for WidenedExecutable {
    fn run<'a>(
        &self,
        input: &dyn Fn(&str) -> Option<&'a Tensor>,
        locate_nonfinite: bool,
    ) -> Result<HashMap<String, Tensor>, RunError> {
        let wide: HashMap<&str, Tensor> = self
            .inputs
            .iter()
            .filter_map(|n| Some((n.as_str(), converted(input(n)?, DType::F32, DType::F64))))
            .collect();
        let out = self.wide.run(&|n| wide.get(n), locate_nonfinite)?;
        Ok(out
            .into_iter()
            .map(|(n, t)| (n, converted(&t, DType::F64, DType::F32)))
            .collect())
    }
}

#[test]
fn a_more_accurate_candidate_is_accepted() {
    let total = compare_every_example(&|| Box::new(Widened)).unwrap_or_else(|e| panic!("\n{e}"));
    // Most outputs must really differ, or this would not test the tolerance.
    assert!(
        total.close > total.identical,
        "{} identical, {} close",
        total.identical,
        total.close
    );
}

//! Every definition of the standard library through the whole pipeline, in f64.
//!
//! Activations, losses, regularizers and layers: a small program using the definition is lowered
//! (`nnl::lower_source`), differentiated (`step::gradient_graph`, and `grad::grad` with respect to
//! the model's float input), optimized or not (`opt::optimize`), and run on the interpreter; the
//! gradient of every parameter and of the input must agree with central differences of the loss
//! computed by the forward graph.
//! Metrics: their value on a hand-made batch. Optimizers, schedules and constraints: one training
//! step (`step::train_step`) against the formula.

#[path = "common/summary.rs"]
mod summary;

use nnl::exec::{initial_values, rng_key};
use nnl::interp::{self, Tensor};
use nnl::ir::{DType, Graph, Output, OutputRole, TensorType};
use nnl::lower::{Lowered, Options};
use std::collections::HashMap;

const BATCH: usize = 3;

/// The largest norm-based relative error allowed between a gradient and central differences.
const TOLERANCE: f64 = 1e-6;

/// Coordinates compared per tensor: all of a small tensor, a random subset of a larger one.
const ALL_UP_TO: usize = 32;
const SUBSET: usize = 24;

/// Central differences of an O(1) loss carry rounding noise of about 1e-10 per coordinate, so a
/// gradient that is zero (sign's; the attention key bias', to which softmax is invariant) is
/// compared in absolute terms: the relative error is taken against a norm of at least this. The
/// other gradients of these cases have norms above 3e-2.
const GRADIENT_FLOOR: f64 = 1e-2;

type Values = HashMap<String, Tensor>;

/// The programs are self-contained: a `use "file"` is refused.
struct NoFiles;

impl nnl::resolve::Loader for NoFiles {
    fn load(&self, path: &str) -> Result<String, String> {
        Err(format!("this test reads no files (asked for `{path}`)"))
    }
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants), its high 53 bits as a float.
struct Lcg(u64);

impl Lcg {
    fn seeded(text: &str) -> Lcg {
        Lcg(text.bytes().fold(0xcbf29ce484222325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        }))
    }

    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }

    fn below(&mut self, n: usize) -> usize {
        ((self.next() * n as f64) as usize).min(n - 1)
    }
}

/// Where the functions applied to data here have a kink or switch formulas: 0 (abs, relu, ...),
/// ±0.1 (the Taylor branches of tanh and expm1), -1 and 2 (the bounds of the clip case), ±3
/// (hard_sigmoid), 6 (relu6). Data stays 1e-3 away from them.
const KINKS: [f64; 8] = [0.0, 0.1, -0.1, -1.0, 2.0, 3.0, -3.0, 6.0];

/// How a data field is filled.
#[derive(Clone, Debug)]
enum Fill {
    /// Uniform in [lo, hi), away from the kinks.
    Uniform(f64, f64),
    /// ± a log-uniform magnitude in [0.01, max], away from the kinks: tiny and large values.
    Spread(f64),
    /// Class indices in 0..n.
    Classes(usize),
    /// Positive rows summing to 1 along the last axis.
    Simplex,
    /// -1 or 1.
    Signs,
}

fn away_from_kinks(rng: &mut Lcg, draw: impl Fn(&mut Lcg) -> f64) -> f64 {
    loop {
        let v = draw(rng);
        if KINKS.iter().all(|k| (v - k).abs() > 1e-3) {
            return v;
        }
    }
}

fn fill(how: &Fill, ty: &TensorType, rng: &mut Lcg) -> Tensor {
    let n = ty.numel();
    let values: Vec<f64> = match how {
        Fill::Uniform(lo, hi) => (0..n)
            .map(|_| away_from_kinks(rng, |r| r.uniform(*lo, *hi)))
            .collect(),
        Fill::Spread(max) => (0..n)
            .map(|_| {
                away_from_kinks(rng, |r| {
                    let sign = if r.next() < 0.5 { -1.0 } else { 1.0 };
                    sign * r.uniform(0.01f64.ln(), max.ln()).exp()
                })
            })
            .collect(),
        Fill::Classes(c) => (0..n).map(|_| rng.below(*c) as f64).collect(),
        Fill::Simplex => {
            let raw: Vec<f64> = (0..n).map(|_| rng.uniform(0.1, 1.0)).collect();
            let width = *ty.shape.last().expect("a simplex has a last axis");
            raw.chunks(width)
                .flat_map(|row| {
                    let total: f64 = row.iter().sum();
                    row.iter().map(move |v| v / total)
                })
                .collect()
        }
        Fill::Signs => (0..n)
            .map(|_| if rng.next() < 0.5 { -1.0 } else { 1.0 })
            .collect(),
    };
    Tensor::from_f64(ty, values)
}

/// A program around one definition: data fields (a declaration such as `x: f32[6]` and how to
/// fill it), a model `M`, and the loss of its train block.
struct Case {
    name: &'static str,
    fields: Vec<(String, Fill)>,
    model: String,
    loss: String,
    /// The data fields the model reads that are differentiated too.
    wrt_data: Vec<&'static str>,
}

/// The common case: `x: f32[B, x]` → `body` → `f32[B, out]`, trained with `mse(out, t)` against
/// a random target `t: f32[out]`; x is differentiated too.
fn case(name: &'static str, x: &str, body: &str, out: &str) -> Case {
    Case {
        name,
        fields: vec![
            (format!("x: f32[{x}]"), Fill::Uniform(-2.0, 2.0)),
            (format!("t: f32[{out}]"), Fill::Uniform(-1.0, 1.0)),
        ],
        model: format!("model M()(x: f32[B, {x}]) -> f32[B, {out}] {{\n  {body}\n}}"),
        loss: "mse(out, t)".into(),
        wrt_data: vec!["x"],
    }
}

/// An activation or helper applied to the input, whose values spread over [-max, max], then a
/// dense layer to 4 outputs.
fn activation(name: &'static str, body: &str, max: f64) -> Case {
    case(name, "6", &format!("{body} |> Dense(4)"), "4").fill("x", Fill::Spread(max))
}

fn field_name(decl: &str) -> &str {
    decl.split(':').next().expect("a declaration").trim()
}

impl Case {
    fn loss(mut self, loss: &str) -> Case {
        self.loss = loss.into();
        self
    }

    fn fill(mut self, field: &str, how: Fill) -> Case {
        let slot = self
            .fields
            .iter_mut()
            .find(|(d, _)| field_name(d) == field)
            .unwrap_or_else(|| panic!("{}: no field `{field}`", self.name));
        slot.1 = how;
        self
    }

    /// Adds a field, or replaces the one of the same name.
    fn field(mut self, decl: &str, how: Fill) -> Case {
        self.fields
            .retain(|(d, _)| field_name(d) != field_name(decl));
        self.fields.push((decl.into(), how));
        self
    }

    fn program(&self) -> String {
        let fields: String = self
            .fields
            .iter()
            .map(|(d, _)| format!("  {d} = x\n"))
            .collect();
        format!(
            "use std.nn.*\n\ndata d {{\n  train = blobs(n: 10, features: 6, seed: 1)\n{fields}}}\n\n\
             {}\n\ntrain M on d {{\n  loss = {}\n  optimizer = sgd(lr: 0.1)\n  batch {BATCH}\n}}\n",
            self.model, self.loss
        )
    }

    fn fill_of(&self, field: &str) -> Option<&Fill> {
        self.fields
            .iter()
            .find(|(d, _)| field_name(d) == field)
            .map(|(_, f)| f)
    }
}

fn lower(name: &str, text: &str) -> Result<Lowered, String> {
    let opts = Options {
        batch: Some(BATCH),
        float: DType::F64,
    };
    let out = nnl::lower_source(&format!("{name}.nnl"), text, &NoFiles, &opts);
    let lowered = out.lowered.ok_or_else(|| {
        format!(
            "does not lower:\n{}\n{text}",
            nnl::diag::render(&out.check.sources, &out.check.diagnostics, false)
        )
    })?;
    summary::summary_matches_graph(&out.check, &lowered)?;
    Ok(lowered)
}

fn run(graph: &Graph, inputs: &Values) -> Result<Values, String> {
    let opts = interp::Options {
        check_finite: true,
        ..interp::Options::default()
    };
    interp::run(graph, inputs, &opts).map_err(|e| format!("{}: {e}", graph.name))
}

fn scalar_f64(value: f64) -> Tensor {
    Tensor::from_f64(&TensorType::scalar(DType::F64), vec![value])
}

/// The inputs of a lowered program: initial values (parameters moved off their initializer's
/// zeros and ones), a random batch filled as the case says, and the random key.
fn inputs(lowered: &Lowered, case: &Case, rng: &mut Lcg) -> Result<Values, String> {
    let mut values = initial_values(lowered, 1)?;
    for (name, _) in &lowered.params {
        let t = values.get_mut(name).ok_or(format!("no initial `{name}`"))?;
        let moved = t
            .to_f64()
            .iter()
            .map(|v| v + rng.uniform(-0.25, 0.25))
            .collect();
        *t = Tensor::from_f64(&t.ty(), moved);
    }
    for (name, ty) in &lowered.fields {
        let how = match (case.fill_of(name), ty.dtype) {
            (Some(how), _) => how.clone(),
            (None, DType::F64) => Fill::Uniform(-2.0, 2.0),
            (None, dtype) => return Err(format!("say how to fill `{name}` ({})", dtype.name())),
        };
        values.insert(name.clone(), fill(&how, ty, rng));
    }
    values.insert("rng".into(), rng_key(1, 1));
    Ok(values)
}

/// The forward graph with the gradient of the loss with respect to data fields (`grad::grad`) as
/// its outputs, named like the fields.
fn data_gradient_graph(forward: &Graph, names: &[&str]) -> Result<Graph, String> {
    let mut g = forward.clone();
    let loss = g.loss().ok_or("no loss")?;
    let wrt = names
        .iter()
        .map(|n| g.find_input(n).ok_or(format!("`{n}` is not an input")))
        .collect::<Result<Vec<_>, _>>()?;
    let grads = nnl::grad::grad(&mut g, loss, &wrt);
    g.outputs = names
        .iter()
        .zip(grads)
        .map(|(n, d)| Output::new(*n, d, OutputRole::Gradient))
        .collect();
    Ok(g)
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// ‖a - n‖ / max(‖a‖, ‖n‖, GRADIENT_FLOOR).
fn relative_error(analytic: &[f64], numeric: &[f64]) -> f64 {
    let diff: Vec<f64> = analytic.iter().zip(numeric).map(|(a, n)| a - n).collect();
    norm(&diff) / norm(analytic).max(norm(numeric)).max(GRADIENT_FLOOR)
}

/// Compares gradients of the loss with respect to the input `name` (each labelled by the graph
/// that computed it) with central differences on all or some of its coordinates; returns the
/// worst relative error.
fn compare(
    forward: &Graph,
    values: &Values,
    name: &str,
    analytic: &[(&str, &Tensor)],
    rng: &mut Lcg,
) -> Result<f64, String> {
    let point = values[name].to_f64();
    let coords: Vec<usize> = if point.len() <= ALL_UP_TO {
        (0..point.len()).collect()
    } else {
        let mut chosen = Vec::new();
        while chosen.len() < SUBSET {
            let i = rng.below(point.len());
            if !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        chosen
    };
    let ty = values[name].ty();
    let mut moved = values.clone();
    let mut loss_at = |i: usize, delta: f64| -> Result<f64, String> {
        let mut p = point.clone();
        p[i] += delta;
        moved.insert(name.to_string(), Tensor::from_f64(&ty, p));
        run(forward, &moved)?["loss"]
            .scalar()
            .ok_or_else(|| "the loss is not a scalar".to_string())
    };
    let mut n = Vec::new();
    for &i in &coords {
        let h = 1e-6 * point[i].abs().max(1.0);
        n.push((loss_at(i, h)? - loss_at(i, -h)?) / (2.0 * h));
    }
    let mut worst: f64 = 0.0;
    for (graph, gradient) in analytic {
        if gradient.shape() != values[name].shape() {
            return Err(format!(
                "{graph}: the gradient of `{name}` is {}, the value {}",
                gradient.ty(),
                values[name].ty()
            ));
        }
        let all = gradient.to_f64();
        let a: Vec<f64> = coords.iter().map(|&i| all[i]).collect();
        let err = relative_error(&a, &n);
        if err.is_nan() || err > TOLERANCE {
            let k = (0..coords.len())
                .max_by(|&i, &j| (a[i] - n[i]).abs().total_cmp(&(a[j] - n[j]).abs()))
                .expect("coordinates");
            return Err(format!(
                "{graph}: d loss / d {name}: relative error {err:.2e}; at flat index {} \
                 analytic {:.12e}, central difference {:.12e}",
                coords[k], a[k], n[k]
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// Runs a gradient graph as it is and optimized.
fn run_both(graph: &Graph, values: &Values) -> Result<[(&'static str, Values); 2], String> {
    Ok([
        ("as differentiated", run(graph, values)?),
        ("optimized", run(&nnl::opt::optimize(graph).0, values)?),
    ])
}

/// The output `name` of each run.
fn outputs_named<'a>(
    runs: &'a [(&'static str, Values); 2],
    name: &str,
) -> Result<Vec<(&'static str, &'a Tensor)>, String> {
    runs.iter()
        .map(|(graph, outputs)| {
            outputs
                .get(name)
                .map(|t| (*graph, t))
                .ok_or(format!("{graph}: no output `{name}`"))
        })
        .collect()
}

/// The worst relative error over every parameter and differentiated data field of a case.
fn check_case(case: &Case) -> Result<f64, String> {
    let lowered = lower(case.name, &case.program())?;
    let phase = &lowered.phases[0];
    let forward = &phase.forward;
    let mut rng = Lcg::seeded(case.name);
    let values = inputs(&lowered, case, &mut rng)?;
    let grads = run_both(&nnl::step::gradient_graph(&lowered, phase), &values)?;
    let mut worst: f64 = 0.0;
    for (name, _) in &lowered.params {
        let analytic = outputs_named(&grads, &format!("{}{name}", nnl::step::GRAD_PREFIX))?;
        worst = worst.max(compare(forward, &values, name, &analytic, &mut rng)?);
    }
    let data = run_both(&data_gradient_graph(forward, &case.wrt_data)?, &values)?;
    for name in &case.wrt_data {
        let analytic = outputs_named(&data, name)?;
        worst = worst.max(compare(forward, &values, name, &analytic, &mut rng)?);
    }
    Ok(worst)
}

/// Checks every case, naming each one that fails; prints each case's worst error.
fn check_all(cases: Vec<Case>) {
    let mut failures = Vec::new();
    let mut worst: (f64, &str) = (0.0, "");
    for case in &cases {
        match check_case(case) {
            Ok(err) => {
                eprintln!("{:<40} worst relative error {err:.2e}", case.name);
                if err >= worst.0 {
                    worst = (err, case.name);
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    eprintln!("worst: {:.2e} ({})", worst.0, worst.1);
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn activations_and_helpers_match_central_differences() {
    check_all(vec![
        activation("abs", "abs(x)", 4.0),
        activation("sign", "sign(x)", 4.0),
        activation("square", "square(x)", 4.0),
        activation("clip", "clip(x, -1, 2)", 4.0),
        activation("log1p", "log1p(x)", 0.9),
        activation("expm1", "expm1(x)", 4.0),
        activation("sigmoid", "sigmoid(x)", 20.0),
        activation("log_sigmoid", "log_sigmoid(x)", 20.0),
        activation("tanh", "tanh(x)", 8.0),
        activation("relu", "relu(x)", 4.0),
        activation("relu6", "relu6(x)", 9.0),
        activation("leaky_relu", "leaky_relu(x, 0.2)", 4.0),
        activation("leaky_relu (default slope)", "leaky_relu(x)", 4.0),
        activation("elu", "elu(x, alpha: 1.5)", 8.0),
        activation("selu", "selu(x)", 8.0),
        activation("softplus", "softplus(x)", 20.0),
        activation("softsign", "softsign(x)", 8.0),
        activation("hard_sigmoid", "hard_sigmoid(x)", 8.0),
        activation("gelu", "gelu(x)", 6.0),
        activation("gelu (exact)", "gelu(x, exact: true)", 6.0),
        activation("silu", "silu(x)", 8.0),
        activation("mish", "mish(x)", 8.0),
        activation("softmax", "softmax(x)", 8.0),
        activation("log_softmax", "log_softmax(x)", 8.0),
        activation("logsumexp", "logsumexp(reshape(x, [B, 2, 3]))", 8.0),
    ]);
}

/// `sign` is piecewise constant: its gradient is exactly zero, and so are the central
/// differences away from 0 (the case above compares them).
#[test]
fn sign_has_zero_gradient() {
    let case = activation("sign", "sign(x)", 4.0);
    let lowered = lower(case.name, &case.program()).unwrap();
    let values = inputs(&lowered, &case, &mut Lcg::seeded(case.name)).unwrap();
    let graph = data_gradient_graph(&lowered.phases[0].forward, &["x"]).unwrap();
    let grads = run_both(&graph, &values).unwrap();
    for (graph, d) in outputs_named(&grads, "x").unwrap() {
        assert!(d.to_f64().iter().all(|&d| d == 0.0), "{graph}: {d:?}");
    }
}

#[test]
fn losses_match_central_differences() {
    let dense = |name, out: &str| case(name, "6", &format!("x |> Dense({out})"), out);
    let probs = |name, out: &str| case(name, "6", &format!("x |> Dense({out}) |> softmax"), out);
    check_all(vec![
        dense("mse", "4"),
        case("mse (per-sample target)", "6", "x |> Dense(1)", "1")
            .field("t: f32", Fill::Uniform(-1.0, 1.0)),
        dense("mae", "4").loss("mae(out, t)"),
        dense("huber", "4").loss("huber(out, t, delta: 0.5)"),
        dense("huber (default delta)", "4")
            .loss("huber(3 * out, t)")
            .fill("t", Fill::Uniform(-4.0, 4.0)),
        case("binary_cross_entropy", "6", "x |> Dense(4) |> sigmoid", "4")
            .loss("binary_cross_entropy(out, t)")
            .fill("t", Fill::Uniform(0.0, 1.0)),
        dense("bce_logits", "4")
            .loss("bce_logits(out, t)")
            .fill("t", Fill::Uniform(0.0, 1.0)),
        dense("cross_entropy", "5")
            .loss("cross_entropy(out, t)")
            .fill("t", Fill::Simplex),
        dense("sparse_cross_entropy", "5")
            .loss("sparse_cross_entropy(out, y)")
            .field("y: i32", Fill::Classes(5)),
        case(
            "sparse_cross_entropy (per position)",
            "6",
            "reshape(x |> Dense(8), [B, 2, 4])",
            "2, 4",
        )
        .loss("sparse_cross_entropy(out, y)")
        .field("y: i32[2]", Fill::Classes(4)),
        probs("categorical_cross_entropy", "5")
            .loss("categorical_cross_entropy(out, t)")
            .fill("t", Fill::Simplex),
        probs("sparse_categorical_cross_entropy", "5")
            .loss("sparse_categorical_cross_entropy(out, y)")
            .field("y: i32", Fill::Classes(5)),
        probs("kl_divergence", "5")
            .loss("kl_divergence(out, t)")
            .fill("t", Fill::Simplex),
        dense("hinge", "4")
            .loss("hinge(out, t)")
            .fill("t", Fill::Signs),
    ]);
}

#[test]
fn regularizers_match_central_differences() {
    let mlp = |name| case(name, "6", "x |> Dense(5) |> tanh |> Dense(3)", "3");
    check_all(vec![
        mlp("l1").loss("mse(out, t) + 0.01 * l1(params(M))"),
        mlp("l2").loss("mse(out, t) + 0.01 * l2(params(M))"),
        mlp("activity_l1").loss("mse(out, t) + activity_l1(out, rate: 0.1)"),
        mlp("activity_l2").loss("mse(out, t) + activity_l2(out)"),
    ]);
}

#[test]
fn layers_match_central_differences() {
    let ids = |name, body: &str| Case {
        name,
        fields: vec![
            ("x: i32[4]".into(), Fill::Classes(7)),
            ("t: f32[3]".into(), Fill::Uniform(-1.0, 1.0)),
        ],
        model: format!("model M()(x: i32[B, 4]) -> f32[B, 3] {{\n  {body}\n}}"),
        loss: "mse(out, t)".into(),
        wrt_data: vec![],
    };
    check_all(vec![
        case("Dense", "6", "x |> Dense(4)", "4"),
        case("Dense (no bias)", "6", "x |> Dense(4, bias: false)", "4"),
        case(
            "Dense (on a sequence)",
            "2, 5",
            "x |> Dense(3, init: normal(0.5))",
            "2, 3",
        ),
        case("Flatten", "2, 3", "x |> Flatten |> Dense(3)", "3"),
        case("LastStep", "4, 3", "x |> LastStep |> Dense(3)", "3"),
        case("Residual", "4", "x |> Residual(5)", "4"),
        case(
            "Dropout",
            "6",
            "x |> Dense(8) |> Dropout(0.3) |> Dense(3)",
            "3",
        ),
        case(
            "GaussianNoise",
            "6",
            "x |> GaussianNoise(0.5) |> Dense(3)",
            "3",
        ),
        case("BatchNorm", "4", "x |> BatchNorm |> Dense(3)", "3"),
        case(
            "BatchNorm2d",
            "2, 3, 3",
            "x |> BatchNorm2d(momentum: 0.5) |> Flatten |> Dense(3)",
            "3",
        ),
        case("LayerNorm", "5", "x |> LayerNorm |> Dense(3)", "3"),
        case(
            "LayerNorm (on a sequence)",
            "3, 4",
            "x |> LayerNorm(eps: 1e-3)",
            "3, 4",
        ),
        case(
            "Conv2d (stride, padding, dilation)",
            "2, 6, 6",
            "x |> Conv2d(3, 3, stride: 2, padding: 1, dilation: 2) |> Flatten",
            "12",
        ),
        case(
            "Conv2d (no bias)",
            "2, 4, 4",
            "x |> Conv2d(2, 2, bias: false) |> Flatten |> Dense(3)",
            "3",
        ),
        case(
            "ConvTranspose2d (stride, padding)",
            "2, 3, 3",
            "x |> ConvTranspose2d(2, 3, stride: 2, padding: 1) |> Flatten |> Dense(3)",
            "3",
        ),
        case(
            "ConvTranspose2d (dilation, no bias)",
            "2, 2, 3",
            "x |> ConvTranspose2d(1, 2, dilation: 2, bias: false) |> Flatten",
            "20",
        ),
        case(
            "MaxPool2d",
            "2, 5, 5",
            "x |> MaxPool2d(2) |> Flatten |> Dense(3)",
            "3",
        ),
        case(
            "AvgPool2d",
            "2, 5, 4",
            "x |> AvgPool2d(2) |> Flatten |> Dense(3)",
            "3",
        ),
        case(
            "GlobalAvgPool2d",
            "2, 3, 4",
            "x |> GlobalAvgPool2d |> Dense(3)",
            "3",
        ),
        ids("Embedding", "x |> Embedding(7, 3) |> Flatten |> Dense(3)"),
        case(
            "PositionalEncoding",
            "4, 6",
            "x |> PositionalEncoding(max_len: 8) |> Flatten |> Dense(3)",
            "3",
        ),
        case(
            "PositionEmbedding",
            "4, 6",
            "x |> PositionEmbedding(max_len: 6) |> Flatten |> Dense(3)",
            "3",
        ),
        case("RNN", "4, 2", "x |> RNN(3) |> Flatten |> Dense(3)", "3"),
        case("LSTM", "4, 2", "x |> LSTM(3) |> Flatten |> Dense(3)", "3"),
        case("GRU", "4, 2", "x |> GRU(3) |> Flatten |> Dense(3)", "3"),
        case("SelfAttention", "4, 6", "x |> SelfAttention(2)", "4, 6"),
        case(
            "SelfAttention (causal)",
            "4, 6",
            "x |> SelfAttention(3, causal: true)",
            "4, 6",
        ),
        case(
            "TransformerBlock",
            "4, 6",
            "x |> TransformerBlock(2, 8, dropout: 0.2)",
            "4, 6",
        ),
        case(
            "TransformerBlock (causal)",
            "4, 6",
            "x |> TransformerBlock(2, 8, causal: true)",
            "4, 6",
        ),
    ]);
}

/// The output `name` as f64s.
fn output(outputs: &Values, name: &str) -> Result<Vec<f64>, String> {
    outputs
        .get(name)
        .map(Tensor::to_f64)
        .ok_or(format!("no output `{name}`"))
}

fn close(what: &str, got: &[f64], want: &[f64]) -> Result<(), String> {
    let far = got.len() != want.len()
        || got
            .iter()
            .zip(want)
            .any(|(g, w)| (g - w).abs() > 1e-12 * w.abs().max(1.0));
    if far {
        return Err(format!("{what}: got {got:?}, want {want:?}"));
    }
    Ok(())
}

/// Runs every check, naming each one that fails.
fn all_ok(results: Vec<(&str, Result<(), String>)>) {
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

fn tensor(shape: &[usize], values: &[f64]) -> Tensor {
    Tensor::from_f64(
        &TensorType::new(DType::F64, shape.to_vec()),
        values.to_vec(),
    )
}

/// Metrics on a hand-made batch: `M` is a dense layer set to the identity, so `out` is `x`.
#[test]
fn metrics_evaluate_to_their_values() {
    let text = "use std.nn.*\n\ndata d {\n  train = blobs(n: 10, features: 6, seed: 1)\n  \
                x: f32[3] = x\n  y: i32 = y\n  z: f32 = x\n  t: f32[3] = x\n}\n\n\
                model M()(x: f32[B, 3]) -> f32[B, 3] {\n  x |> Dense(3)\n}\n\n\
                train M on d {\n  loss = mse(out, t)\n  optimizer = sgd(lr: 0.1)\n  \
                metrics accuracy, binary_accuracy(slice(out, axis: 1, start: 0, end: 1), z), rmse(out, t)\n}\n";
    let lowered = lower("metrics", text).unwrap();
    let x = [0.1, 0.9, -0.2, 2.0, 1.0, 0.5, -1.0, -3.0, -0.5];
    let t = [0.0, 1.0, 0.0, 1.5, 0.5, 0.5, -1.0, -2.0, 1.5];
    let values: Values = [
        ("x", tensor(&[3, 3], &x)),
        // argmax(x) = [1, 0, 2]: two of three right
        (
            "y",
            Tensor::from_f64(&TensorType::new(DType::I32, vec![3]), vec![1.0, 1.0, 2.0]),
        ),
        // x[:, 0] > 0 = [1, 1, 0] against z > 0.5 = [0, 1, 1]: one of three right
        ("z", tensor(&[3], &[0.2, 0.7, 0.8])),
        ("t", tensor(&[3, 3], &t)),
        (
            "M.dense_1.w",
            tensor(&[3, 3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
        ),
        ("M.dense_1.b", tensor(&[3], &[0.0; 3])),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect();
    let squares: f64 = x.iter().zip(&t).map(|(a, b)| (a - b) * (a - b)).sum();
    let want = [
        ("accuracy", 2.0 / 3.0),
        ("binary_accuracy", 1.0 / 3.0),
        ("rmse", (squares / 9.0).sqrt()),
    ];
    let mut results = Vec::new();
    for graph in [&lowered.phases[0].forward, &lowered.eval] {
        let outputs = run(graph, &values).unwrap();
        for (metric, value) in want {
            let r = output(&outputs, metric).and_then(|got| close(&graph.name, &got, &[value]));
            results.push((metric, r));
        }
    }
    all_ok(results);
}

/// The batch of the training-step tests and the gradient of `loss = mean(out * t)` for
/// `out = x @ w + b`, which does not depend on the parameters: d w[i, j] = Σ_b x[b, i] t[b, j] / 6,
/// d b[j] = Σ_b t[b, j] / 6.
const X: [[f64; 2]; 3] = [[1.0, 2.0], [-1.0, 0.5], [0.5, -2.0]];
const T: [[f64; 2]; 3] = [[1.0, -1.0], [0.5, 2.0], [-1.0, 0.25]];
/// The parameters before the step: w's first column and b have norms above 3, w's second below.
const W: [f64; 4] = [3.0, 0.5, 2.5, -1.0];
const BIAS: [f64; 2] = [-4.0, 1.0];

fn hand_gradients() -> [(&'static str, Vec<f64>, Vec<f64>); 2] {
    let gw = (0..4)
        .map(|k| (0..3).map(|b| X[b][k / 2] * T[b][k % 2]).sum::<f64>() / 6.0)
        .collect();
    let gb = (0..2)
        .map(|j| (0..3).map(|b| T[b][j]).sum::<f64>() / 6.0)
        .collect();
    [
        ("M.dense_1.w", W.to_vec(), gw),
        ("M.dense_1.b", BIAS.to_vec(), gb),
    ]
}

/// The loss of the training-step tests.
const LOSS: &str = "loss = mean(out * t)";

/// The statements of a train block with `LOSS` and `optimizer`.
fn with_optimizer(optimizer: &str) -> String {
    format!("{LOSS}\n  optimizer = {optimizer}")
}

/// One training step (`step::train_step`) of `x |> Dense(2)` with the statements `train` (the
/// loss, the optimizer, any constraint) from the hand-made values, at the given `step` and
/// `epoch`; the step's outputs.
fn one_step(train: &str, step: f64, epoch: f64) -> Result<Values, String> {
    let text = format!(
        "use std.nn.*\n\ndata d {{\n  train = blobs(n: 10, features: 6, seed: 1)\n  \
         x: f32[2] = x\n  t: f32[2] = x\n}}\n\n\
         model M()(x: f32[B, 2]) -> f32[B, 2] {{\n  x |> Dense(2)\n}}\n\n\
         train M on d {{\n  {train}\n}}\n"
    );
    let lowered = lower("step", &text)?;
    let graph = nnl::step::train_step(&lowered, &lowered.phases[0])?;
    let mut values = initial_values(&lowered, 1)?;
    values.insert("x".into(), tensor(&[3, 2], X.as_flattened()));
    values.insert("t".into(), tensor(&[3, 2], T.as_flattened()));
    values.insert("M.dense_1.w".into(), tensor(&[2, 2], &W));
    values.insert("M.dense_1.b".into(), tensor(&[2], &BIAS));
    values.insert("step".into(), scalar_f64(step));
    values.insert("epoch".into(), scalar_f64(epoch));
    run(&graph, &values)
}

/// An elementwise rule of the parameter `p` and its gradient `g`.
type Rule = fn(f64, f64) -> f64;

/// Checks the new parameters and optimizer states of one step with the statements `train`
/// against `param` and `states` (state name suffix, its new value).
fn check_optimizer(train: &str, param: Rule, states: &[(&str, Rule)]) -> Result<(), String> {
    let outputs = one_step(train, 1.0, 0.0)?;
    for (name, p, g) in hand_gradients() {
        for (what, rule) in [(name.to_string(), param)]
            .into_iter()
            .chain(states.iter().map(|(s, r)| (format!("{name}.{s}"), *r)))
        {
            let want: Vec<f64> = p.iter().zip(&g).map(|(&p, &g)| rule(p, g)).collect();
            close(&what, &output(&outputs, &what)?, &want)?;
        }
    }
    Ok(())
}

#[test]
fn optimizers_make_one_step_by_their_formula() {
    all_ok(vec![
        (
            "sgd",
            check_optimizer(&with_optimizer("sgd(lr: 0.1)"), |p, g| p - 0.1 * g, &[]),
        ),
        (
            "sgd (weight decay)",
            check_optimizer(
                &with_optimizer("sgd(lr: 0.1, weight_decay: 0.01)"),
                |p, g| p - 0.1 * (g + 0.01 * p),
                &[],
            ),
        ),
        (
            "momentum",
            check_optimizer(
                &with_optimizer("momentum(lr: 0.1, momentum: 0.8, weight_decay: 0.01)"),
                |p, g| p - 0.1 * (g + 0.01 * p),
                &[("v", |p, g| g + 0.01 * p)],
            ),
        ),
        (
            "nesterov",
            check_optimizer(
                &with_optimizer("nesterov(lr: 0.1, momentum: 0.8, weight_decay: 0.01)"),
                |p, g| p - 0.1 * 1.8 * (g + 0.01 * p),
                &[("v", |p, g| g + 0.01 * p)],
            ),
        ),
        (
            "rmsprop",
            check_optimizer(
                &with_optimizer("rmsprop(lr: 0.01, rho: 0.8, weight_decay: 0.01)"),
                |p, g| {
                    let gd = g + 0.01 * p;
                    p - 0.01 * gd / ((0.2 * gd * gd).sqrt() + 1e-7)
                },
                &[("s", |p, g| 0.2 * (g + 0.01 * p).powi(2))],
            ),
        ),
        (
            "adagrad",
            check_optimizer(
                &with_optimizer("adagrad(lr: 0.1, initial: 0.5, weight_decay: 0.01)"),
                |p, g| {
                    let gd = g + 0.01 * p;
                    p - 0.1 * gd / ((0.5 + gd * gd).sqrt() + 1e-7)
                },
                &[("s", |p, g| 0.5 + (g + 0.01 * p).powi(2))],
            ),
        ),
        (
            "adam",
            check_optimizer(
                &with_optimizer("adam"),
                |p, g| p - 1e-3 * g / (g.abs() + 1e-8),
                &[("m", |_, g| 0.1 * g), ("v", |_, g| 0.001 * g * g)],
            ),
        ),
        (
            "adam (weight decay)",
            check_optimizer(
                &with_optimizer("adam(lr: 0.01, b1: 0.5, b2: 0.9, eps: 1e-3, weight_decay: 0.01)"),
                |p, g| {
                    let gd = g + 0.01 * p;
                    p - 0.01 * gd / (gd.abs() + 1e-3)
                },
                &[("m", |p, g| 0.5 * (g + 0.01 * p))],
            ),
        ),
        (
            "adam (bare, in a phase)",
            check_optimizer(
                &format!("phase fit {{\n    {LOSS}\n    update M with adam\n  }}"),
                |p, g| p - 1e-3 * g / (g.abs() + 1e-8),
                &[],
            ),
        ),
        (
            "adamw",
            check_optimizer(
                &with_optimizer("adamw(lr: 0.01, weight_decay: 0.1)"),
                |p, g| p - 0.01 * (g / (g.abs() + 1e-8) + 0.1 * p),
                &[("m", |_, g| 0.1 * g), ("v", |_, g| 0.001 * g * g)],
            ),
        ),
    ]);
}

/// `sgd(lr: schedule)` at a given step and epoch moves each parameter by -lr · g.
fn check_schedule(schedule: &str, step: f64, epoch: f64, lr: f64) -> Result<(), String> {
    let train = with_optimizer(&format!("sgd(lr: {schedule})"));
    let outputs = one_step(&train, step, epoch)?;
    for (name, p, g) in hand_gradients() {
        let want: Vec<f64> = p.iter().zip(&g).map(|(p, g)| p - lr * g).collect();
        close(name, &output(&outputs, name)?, &want)?;
    }
    Ok(())
}

#[test]
fn schedules_give_their_learning_rate() {
    use std::f64::consts::PI;
    let cosine = |t: f64| 0.5 * (1.0 + (PI * t).cos());
    all_ok(vec![
        (
            "step_decay (first epoch)",
            check_schedule("step_decay(0.1, every: 2, factor: 0.5)", 3.0, 1.0, 0.1),
        ),
        (
            "step_decay",
            check_schedule("step_decay(0.1, every: 2, factor: 0.5)", 30.0, 5.0, 0.025),
        ),
        (
            "exponential",
            check_schedule(
                "exponential(0.1, rate: 0.5, every: 2)",
                4.0,
                0.0,
                0.1 * 0.5f64.powf(1.5),
            ),
        ),
        (
            "exponential (staircase)",
            check_schedule(
                "exponential(0.1, rate: 0.5, every: 2, staircase: true)",
                4.0,
                0.0,
                0.05,
            ),
        ),
        (
            "cosine (first step)",
            check_schedule("cosine(0.1, total: 10)", 1.0, 0.0, 0.1),
        ),
        (
            "cosine",
            check_schedule("cosine(0.1, total: 10)", 3.0, 0.0, 0.1 * cosine(0.2)),
        ),
        (
            "cosine (past the end)",
            check_schedule("cosine(0.1, total: 10, final: 0.01)", 15.0, 1.0, 0.01),
        ),
        (
            "warmup",
            check_schedule("warmup(0.1, steps: 4)", 2.0, 0.0, 0.05),
        ),
        (
            "warmup (after)",
            check_schedule("warmup(0.1, steps: 4)", 6.0, 0.0, 0.1),
        ),
        (
            "warmup_cosine (warming up)",
            check_schedule("warmup_cosine(0.1, steps: 2, total: 6)", 1.0, 0.0, 0.05),
        ),
        (
            "warmup_cosine",
            check_schedule(
                "warmup_cosine(0.1, steps: 2, total: 6, final: 0.02)",
                5.0,
                0.0,
                0.02 + 0.08 * cosine(0.75),
            ),
        ),
    ]);
}

/// One `sgd(lr: 0.1)` step with `constrain M with {constraint}`: each parameter is updated, then
/// `rule` is applied to each slice along axis 0 (w's columns, all of b).
fn check_constraint(constraint: &str, rule: fn(&[f64]) -> Vec<f64>) -> Result<(), String> {
    let train = format!(
        "{}\n  constrain M with {constraint}",
        with_optimizer("sgd(lr: 0.1)")
    );
    let outputs = one_step(&train, 1.0, 0.0)?;
    for (name, p, g) in hand_gradients() {
        let updated: Vec<f64> = p.iter().zip(&g).map(|(p, g)| p - 0.1 * g).collect();
        let want = if updated.len() == 4 {
            let columns: Vec<Vec<f64>> = (0..2)
                .map(|j| rule(&[updated[j], updated[2 + j]]))
                .collect();
            vec![columns[0][0], columns[1][0], columns[0][1], columns[1][1]]
        } else {
            rule(&updated)
        };
        close(name, &output(&outputs, name)?, &want)?;
    }
    Ok(())
}

#[test]
fn constraints_apply_after_the_update() {
    all_ok(vec![
        (
            "max_norm",
            check_constraint("max_norm(3)", |s| {
                let n = norm(s);
                s.iter().map(|v| v * 3.0 / n.max(3.0)).collect()
            }),
        ),
        (
            "unit_norm",
            check_constraint("unit_norm", |s| {
                let n = norm(s);
                s.iter().map(|v| v / (n + 1e-7)).collect()
            }),
        ),
        (
            "non_neg",
            check_constraint("non_neg", |s| s.iter().map(|v| v.max(0.0)).collect()),
        ),
    ]);
}

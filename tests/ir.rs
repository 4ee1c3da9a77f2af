//! The graph IR of the examples: snapshots of the forward graph, the training step (forward,
//! backward, update) and the optimized step; every graph verifies and reads back from its text.

mod common;
#[path = "common/lowering.rs"]
mod lowering;
#[path = "common/summary.rs"]
mod summary;

use nnl::ir::{Aggregation, Graph, OutputRole, Role, text, verify};

/// Examples whose graphs are snapshotted, with the phase to show.
const EXAMPLES: &[(&str, &str)] = &[
    ("mnist_mlp", "train"),
    ("mnist_cnn", "train"),
    ("lstm_sine", "train"),
    ("transformer_reverse", "train"),
    ("gan", "generator"),
];

/// A batch size unlike any other dimension of the examples, so shapes read unambiguously.
const BATCH: usize = 4;

fn round_trips(g: &Graph) {
    verify(g).unwrap_or_else(|e| panic!("{} does not verify: {e}", g.name));
    let printed = text::print(g);
    let parsed = text::parse(&printed)
        .unwrap_or_else(|e| panic!("{} does not parse back: {e}\n{printed}", g.name));
    assert_eq!(&parsed, g, "{} changed through its text", g.name);
}

#[test]
fn example_graphs_match_their_snapshots_and_round_trip() {
    for (name, phase_name) in EXAMPLES {
        let lowered = lowering::lower_example(name, BATCH, &|t| t);
        let phase = lowered
            .phases
            .iter()
            .find(|p| p.name == *phase_name)
            .expect("the phase exists");
        let step = nnl::step::train_step(&lowered, phase).expect("a training step");
        let (opt, stats) = nnl::opt::optimize(&step);
        assert!(
            stats.after < stats.before,
            "{name}: optimization removed nothing"
        );
        for (stage, g) in [
            ("ir", &phase.forward),
            ("grad", &step),
            ("opt", &opt),
            ("init", &lowered.init),
            ("eval", &lowered.eval),
        ] {
            round_trips(g);
            if stage != "init" && stage != "eval" {
                insta::with_settings!({snapshot_path => "snapshots/ir", prepend_module_to_snapshot => false}, {
                    insta::assert_snapshot!(format!("{name}.{stage}"), text::print(g));
                });
            }
        }
    }
}

#[test]
fn every_example_lowers_and_its_steps_verify() {
    for path in common::nnl_files(&common::root().join("examples")) {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let checked = common::check_path(&path);
        assert!(
            checked.diagnostics.is_empty(),
            "{name} does not check clean"
        );
        let lowered = lowering::lower_example(&name, BATCH, &|t| t);
        summary::summary_matches_graph(&checked, &lowered)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        round_trips(&lowered.init);
        round_trips(&lowered.eval);
        for phase in &lowered.phases {
            let step = nnl::step::train_step(&lowered, phase)
                .unwrap_or_else(|e| panic!("{name}/{}: {e}", phase.name));
            round_trips(&step);
            round_trips(&nnl::opt::optimize(&step).0);
        }
    }
}

/// A scan is a loop in the IR: making the sequence 8 times longer adds no node to the LSTM's
/// training step.
#[test]
fn lstm_step_size_does_not_grow_with_sequence_length() {
    let sizes: Vec<usize> = [32, 256]
        .iter()
        .map(|t| {
            let edit = |text: String| {
                text.replace("length: 32", &format!("length: {t}"))
                    .replace("f32[32, 1]", &format!("f32[{t}, 1]"))
            };
            let lowered = lowering::lower_example("lstm_sine", BATCH, &edit);
            assert_eq!(lowered.fields[0].1.shape, vec![BATCH, *t, 1]);
            nnl::step::train_step(&lowered, &lowered.phases[0])
                .expect("a step")
                .size()
        })
        .collect();
    assert_eq!(sizes[0], sizes[1]);
}

/// The LSTM's backward scan reads the gate activations its forward scan saved instead of
/// recomputing them (no exponential, `tanh` or `sigmoid` in its body, no recurrent product
/// h·U), and the recurrent weight's gradient is one product after it, not an accumulator
/// carried through it.
#[test]
fn lstm_backward_scan_reads_saved_activations_and_hoists_the_weight_gradient() {
    use nnl::ir::{Graph, Op};
    let lowered = lowering::lower_example("lstm_sine", BATCH, &|t| t);
    let step = nnl::step::train_step(&lowered, &lowered.phases[0]).expect("a step");
    let scans: Vec<(&Graph, usize, bool)> = step
        .nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Scan {
                body,
                carries,
                reverse,
                ..
            } => Some((body.as_ref(), *carries, *reverse)),
            _ => None,
        })
        .collect();
    let (backward, carries, _) = scans
        .iter()
        .find(|(_, _, reverse)| *reverse)
        .expect("a reverse scan");
    let names: Vec<&str> = backward.nodes.iter().map(|n| n.op.name()).collect();
    for recomputed in ["exp", "tanh", "sigmoid"] {
        assert!(!names.contains(&recomputed), "{recomputed} in {names:?}");
    }
    // Only the products of the cotangent with Uᵀ remain: one per step.
    assert_eq!(
        names.iter().filter(|&&n| n == "matmul").count(),
        1,
        "{names:?}"
    );
    // The carries are the cotangents of h and c alone: no [hidden, 4·hidden] accumulator.
    assert_eq!(*carries, 2);
}

/// After optimization, the backward scan's product with Uᵀ reads Uᵀ as a scan operand, laid
/// out once per step, instead of permuting U inside the body at every step.
#[test]
fn optimized_lstm_backward_scan_reads_the_transposed_weight_as_an_operand() {
    use nnl::ir::Op;
    let lowered = lowering::lower_example("lstm_sine", BATCH, &|t| t);
    let step = nnl::step::train_step(&lowered, &lowered.phases[0]).expect("a step");
    let (optimized, _) = nnl::opt::optimize(&step);
    nnl::ir::verify(&optimized).expect("a well-formed graph");
    let (backward, operands) = optimized
        .nodes
        .iter()
        .find_map(|n| match &n.op {
            Op::Scan {
                body,
                reverse: true,
                ..
            } => Some((body.as_ref(), &n.args)),
            _ => None,
        })
        .expect("a reverse scan");
    let names: Vec<&str> = backward.nodes.iter().map(|n| n.op.name()).collect();
    assert!(!names.contains(&"permute"), "{names:?}");
    let last = operands.last().expect("operands");
    assert!(
        matches!(optimized.nodes[last.index()].op, Op::Permute { .. }),
        "the last operand is {:?}",
        optimized.nodes[last.index()].op
    );
}

/// `nnlc ir --model M` (and `predict`) lower one model alone: its inputs take the types it
/// declares, with its attributes' defaults, even where a data field shares an input's name
/// (the GAN's generator reads noise `x: f32[B, 64]`, not the 784 pixels of the field `x`).
#[test]
fn a_model_alone_takes_the_inputs_it_declares() {
    let cases = [
        (
            "gan",
            "Generator",
            "x",
            vec![BATCH, 64],
            "Generator.dense_1.w",
            vec![64, 256],
        ),
        (
            "autoencoder",
            "Decoder",
            "z",
            vec![BATCH, 32],
            "Decoder.dense_1.w",
            vec![32, 128],
        ),
        (
            "lstm_sine",
            "SineLstm",
            "x",
            vec![BATCH, 32, 1],
            "SineLstm.lstm_1.w",
            vec![1, 128],
        ),
    ];
    for (example, model, input, input_shape, param, param_shape) in cases {
        let rel = format!("examples/{example}.nnl");
        let text = std::fs::read_to_string(common::root().join(&rel)).expect("readable example");
        let opts = nnl::lower::Options {
            batch: Some(BATCH),
            ..Default::default()
        };
        let loader = common::CwdLoader {
            base: common::root(),
        };
        let out = nnl::lower_model_source(&rel, &text, &loader, &opts, model, false);
        let g = out
            .lowered
            .unwrap_or_else(|| panic!("{model} of {rel} does not lower alone"));
        round_trips(&g);
        let ty = |name: &str| g.ty(g.find_input(name).expect("an input")).shape.clone();
        assert_eq!(ty(input), input_shape, "{model}'s input `{input}`");
        assert_eq!(ty(param), param_shape, "{model}'s `{param}`");
    }
}

/// Outputs carry the role later stages read: the loss, each metric with the aggregation its
/// definition declares (`std.metrics` and a user's own), the prediction, and in a step the next
/// value of every parameter and optimizer state. `early_stop` without a `mode` follows the
/// metric's declared direction.
#[test]
fn outputs_carry_their_roles_and_metrics_their_declared_aggregation() {
    let user_metric = |text: String| {
        text.replace(
            "metrics rmse, mae, r2",
            "metrics rmse, mae, r2, within\n  early_stop(monitor: val.within, patience: 25)",
        )
        .replace(
            "  early_stop(monitor: val.loss, mode: min, patience: 25, restore_best: true)\n",
            "",
        ) + "\nfn within(pred: f32[B, 1], target: f32[B, 1], higher_is_better: bool = true, aggregate: str = \"root_mean_square\") -> f32 {\n  mean(cast(abs(pred - target) < 0.5, f32))\n}\n"
    };
    let lowered = lowering::lower_example("diabetes", BATCH, &user_metric);
    let role = |g: &Graph, name: &str| {
        g.outputs
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no output `{name}` in {}", g.name))
            .role
    };
    for g in [&lowered.eval, &lowered.phases[0].forward] {
        assert_eq!(role(g, "loss"), OutputRole::Loss);
        assert_eq!(role(g, "out"), OutputRole::Prediction);
        assert_eq!(
            role(g, "rmse"),
            OutputRole::Metric(Aggregation::RootMeanSquare)
        );
        assert_eq!(role(g, "mae"), OutputRole::Metric(Aggregation::Mean));
        assert_eq!(role(g, "r2"), OutputRole::Metric(Aggregation::R2));
        assert_eq!(
            role(g, "within"),
            OutputRole::Metric(Aggregation::RootMeanSquare)
        );
    }
    let early_stop = lowered.config.early_stop.as_ref().expect("early_stop");
    assert!(!early_stop.minimize, "`within` declares higher_is_better");
    let step = nnl::step::train_step(&lowered, &lowered.phases[0]).expect("a step");
    for (v, name, input_role) in step.inputs() {
        if matches!(input_role, Role::Param | Role::OptState) {
            assert_eq!(role(&step, name), OutputRole::Update(input_role), "{name}");
            assert_ne!(step.output(name), Some(v), "{name} is updated");
        }
    }
    for (_, name, input_role) in lowered.init.inputs() {
        assert_eq!(input_role, Role::Rng, "the init graph reads `{name}`");
    }
    for o in &lowered.init.outputs {
        assert!(
            matches!(
                o.role,
                OutputRole::Update(Role::Param | Role::State | Role::OptState)
            ),
            "{}",
            o.name
        );
    }
}

/// The checker and lowering agree on `transpose` of a vector: an error in both (lowering used
/// to return the vector unchanged).
#[test]
fn transpose_of_a_vector_is_an_error_in_check_and_lowering() {
    let text = "use std.nn.{Dense}\n\ndata d {\n  train = blobs(n: 10, features: 3, seed: 1)\n  \
                x: f32[3] = x\n  y: f32[3] = x\n}\n\n\
                model M()(x: f32[B, 3]) -> f32[B, 3] {\n  x |> Dense(3)\n}\n\n\
                train M on d {\n  loss = mse(out, y) + sum(transpose(reshape(out, [B * 3])))\n  \
                optimizer = sgd(lr: 0.1)\n}\n";
    let loader = common::CwdLoader {
        base: common::root(),
    };
    let (check, program) = nnl::check_program("t.nnl", text, &loader);
    assert!(
        check.diagnostics.iter().any(|d| d.code == "E0202"),
        "{:?}",
        check.diagnostics
    );
    let opts = nnl::lower::Options {
        batch: Some(BATCH),
        ..Default::default()
    };
    let lowered = nnl::lower::lower(&program, &check.sources, &opts);
    assert!(lowered.is_err(), "lowering accepted a vector's transpose");
}

/// Lowering takes a train block's settings as the checker evaluated them (`Program::facts`),
/// with `early_stop`'s arguments bound by the one binding rule: a positional `monitor` after a
/// named argument is the monitor (the checker used to read the first argument, and lowering
/// too, so this block was rejected), and without `mode` the metric's declared direction holds.
#[test]
fn lowering_reads_the_settings_the_checker_evaluated() {
    let text = "use std.nn.{Dense}\n\ndata d {\n  train = blobs(n: 40, features: 3, seed: 1)\n  \
                split val = 0.25 of train\n  x: f32[3] = x\n  y: i32 = y\n}\n\n\
                model M()(x: f32[B, 3]) -> f32[B, 3] {\n  x |> Dense(3)\n}\n\n\
                train M on d {\n  loss = sparse_cross_entropy(out, y)\n  \
                optimizer = sgd(lr: 0.1)\n  batch 2 * 4\n  epochs 3\n  seed 7\n  \
                clip_grad_norm 2\n  metrics accuracy\n  \
                early_stop(patience: 2, val.accuracy, min_delta: 0.5)\n  checkpoint \"runs/m\"\n}\n";
    let loader = common::CwdLoader {
        base: common::root(),
    };
    let (check, program) = nnl::check_program("t.nnl", text, &loader);
    assert!(check.diagnostics.is_empty(), "{:?}", check.diagnostics);
    let lowered = nnl::lower::lower(&program, &check.sources, &Default::default())
        .unwrap_or_else(|d| panic!("{}", d.message));
    let c = &lowered.config;
    assert_eq!(
        (c.batch, c.epochs, c.seed, c.clip_grad_norm),
        (8, Some(3), Some(7), Some(2.0))
    );
    assert_eq!(c.metrics, ["accuracy"]);
    assert_eq!(c.checkpoint.as_deref(), Some("runs/m"));
    assert_eq!(
        c.early_stop,
        Some(nnl::lower::EarlyStop {
            split: "val".into(),
            metric: "accuracy".into(),
            minimize: false,
            patience: 2,
            min_delta: 0.5,
            restore_best: false,
        })
    );
    let at_16 = nnl::lower::Options {
        batch: Some(16),
        ..Default::default()
    };
    let lowered = nnl::lower::lower(&program, &check.sources, &at_16).expect("lowers");
    assert_eq!(lowered.config.batch, 16);
}

/// Lowering names layer instances and binds call arguments by the checker's tables
/// (`Program::facts`), not by rules of its own: a function called twice makes two instances, a
/// shared instance is named where it is first applied, `Dense(bias: false, 3)` binds `units`
/// to the positional argument; the summary and the graph list the same parameters; and with
/// the tables emptied, lowering refuses instead of deriving them again.
#[test]
fn lowering_reads_call_bindings_and_instance_paths_from_the_facts() {
    let text = "use std.nn.{Dense}\n\ndata d {\n  train = blobs(n: 40, features: 3, seed: 1)\n  \
                x: f32[3] = x\n  y: i32 = y\n}\n\n\
                fn block(x: f32[B, 3]) -> f32[B, 3] {\n  x |> Dense(3) |> relu\n}\n\n\
                model M()(x: f32[B, 3]) -> f32[B, 3] {\n  let shared = Dense(bias: false, 3)\n  \
                x |> block |> block |> shared |> shared\n}\n\n\
                train M on d {\n  loss = sparse_cross_entropy(out, y)\n  \
                optimizer = sgd(lr: 0.1)\n}\n";
    let loader = common::CwdLoader {
        base: common::root(),
    };
    let (check, mut program) = nnl::check_program("t.nnl", text, &loader);
    assert!(check.diagnostics.is_empty(), "{:?}", check.diagnostics);
    let facts = &program.facts;

    let call = "Dense(bias: false, 3)";
    let start = text.find(call).expect("the call");
    let file = program.modules[program.root].file;
    let span = nnl::source::Span::new(file, start, start + call.len());
    let dense = program.lookup(program.root, "Dense").expect("imported");
    let callee = nnl::check::Callee::Def(dense, nnl::check::Part::Attrs);
    // Dense(units, init, bias): `units` from argument 1, `init` by default, `bias` from 0.
    assert_eq!(
        facts.calls.binding(span, callee, 2),
        Some(&[Some(1), None, Some(0)][..])
    );

    let paths: Vec<(&str, &str)> = facts
        .instances
        .iter()
        .map(|i| (i.path.as_str(), i.layer.as_str()))
        .collect();
    assert_eq!(
        paths,
        [
            ("M", "M"),
            ("M.dense_1", "Dense"),
            ("M.dense_2", "Dense"),
            ("M.dense_3", "Dense")
        ]
    );
    let summary: Vec<&str> = check.summaries[0]
        .params
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        summary,
        [
            "M.dense_1.w",
            "M.dense_1.b",
            "M.dense_2.w",
            "M.dense_2.b",
            "M.dense_3.w"
        ]
    );
    let lowered = nnl::lower::lower(&program, &check.sources, &Default::default())
        .unwrap_or_else(|d| panic!("{}", d.message));
    let graph: Vec<&str> = lowered.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(graph, summary);

    let calls = std::mem::take(&mut program.facts.calls);
    let refused = nnl::lower::lower(&program, &check.sources, &Default::default());
    let message = refused.err().map(|d| d.message).unwrap_or_default();
    assert!(message.contains("recorded no binding"), "{message}");
    program.facts.calls = calls;
    program.facts.instances = Default::default();
    let refused = nnl::lower::lower(&program, &check.sources, &Default::default());
    let message = refused.err().map(|d| d.message).unwrap_or_default();
    assert!(message.contains("recorded no instance"), "{message}");
}

//! The catalogues of the language's fixed vocabulary other than builtin functions (which are
//! declared by family in [`crate::builtins`]): initializers, train settings, dtype names, search
//! distributions. Stages match on these enums, never on the names. `data` is the vocabulary of
//! `data` blocks.

pub mod data;

/// A parameter of a builtin, initializer or setting: its name and whether it may be left out.
#[derive(Debug, Clone, Copy)]
pub struct PrimParam {
    pub name: &'static str,
    pub optional: bool,
}

impl PrimParam {
    pub const fn req(name: &'static str) -> PrimParam {
        PrimParam {
            name,
            optional: false,
        }
    }

    pub const fn opt(name: &'static str) -> PrimParam {
        PrimParam {
            name,
            optional: true,
        }
    }
}

/// Initializers usable as `param w: [..] = NAME` (with arguments where they take some).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Initializer {
    Zeros,
    Ones,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    /// `uniform(limit)`: uniform on [-limit, limit].
    Uniform,
    /// `normal(std)`: normal with mean 0.
    Normal,
}

impl Initializer {
    pub const ALL: [Initializer; 8] = [
        Initializer::Zeros,
        Initializer::Ones,
        Initializer::GlorotUniform,
        Initializer::GlorotNormal,
        Initializer::HeUniform,
        Initializer::HeNormal,
        Initializer::Uniform,
        Initializer::Normal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Initializer::Zeros => "zeros",
            Initializer::Ones => "ones",
            Initializer::GlorotUniform => "glorot_uniform",
            Initializer::GlorotNormal => "glorot_normal",
            Initializer::HeUniform => "he_uniform",
            Initializer::HeNormal => "he_normal",
            Initializer::Uniform => "uniform",
            Initializer::Normal => "normal",
        }
    }

    /// The arguments it is called with; one without any is written bare (`= glorot_uniform`).
    pub fn params(self) -> &'static [PrimParam] {
        match self {
            Initializer::Zeros
            | Initializer::Ones
            | Initializer::GlorotUniform
            | Initializer::GlorotNormal
            | Initializer::HeUniform
            | Initializer::HeNormal => &[],
            Initializer::Uniform => {
                const LIMIT: &[PrimParam] = &[PrimParam::req("limit")];
                LIMIT
            }
            Initializer::Normal => {
                const STD: &[PrimParam] = &[PrimParam::req("std")];
                STD
            }
        }
    }
}

pub fn initializer(name: &str) -> Option<Initializer> {
    Initializer::ALL.into_iter().find(|i| i.name() == name)
}

/// The settings of a `train` block: `loss = …`, `optimizer = …`, and a word with its value
/// (`batch 64`). The checker checks each, lowering evaluates each into the run's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainSetting {
    Loss,
    Optimizer,
    Batch,
    Epochs,
    Metrics,
    EarlyStop,
    Checkpoint,
    Log,
    ClipGradNorm,
    Seed,
    Init,
    Freeze,
    FrozenBn,
}

impl TrainSetting {
    pub const ALL: [TrainSetting; 13] = [
        TrainSetting::Loss,
        TrainSetting::Optimizer,
        TrainSetting::Batch,
        TrainSetting::Epochs,
        TrainSetting::Metrics,
        TrainSetting::EarlyStop,
        TrainSetting::Checkpoint,
        TrainSetting::Log,
        TrainSetting::ClipGradNorm,
        TrainSetting::Seed,
        TrainSetting::Init,
        TrainSetting::Freeze,
        TrainSetting::FrozenBn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TrainSetting::Loss => "loss",
            TrainSetting::Optimizer => "optimizer",
            TrainSetting::Batch => "batch",
            TrainSetting::Epochs => "epochs",
            TrainSetting::Metrics => "metrics",
            TrainSetting::EarlyStop => "early_stop",
            TrainSetting::Checkpoint => "checkpoint",
            TrainSetting::Log => "log",
            TrainSetting::ClipGradNorm => "clip_grad_norm",
            TrainSetting::Seed => "seed",
            TrainSetting::Init => "init",
            TrainSetting::Freeze => "freeze",
            TrainSetting::FrozenBn => "frozen_bn",
        }
    }

    pub fn from_name(name: &str) -> Option<TrainSetting> {
        TrainSetting::ALL.into_iter().find(|s| s.name() == name)
    }

    /// How it is written, for errors that show the form.
    pub fn example(self) -> &'static str {
        match self {
            TrainSetting::Loss => "loss = sparse_cross_entropy(out, y)",
            TrainSetting::Optimizer => "optimizer = adam(lr: 1e-3)",
            TrainSetting::Batch => "batch 64",
            TrainSetting::Epochs => "epochs 5",
            TrainSetting::Metrics => "metrics accuracy",
            TrainSetting::EarlyStop => "early_stop(monitor: val.loss, patience: 3)",
            TrainSetting::Checkpoint => "checkpoint \"runs/name\"",
            TrainSetting::Log => "log \"runs/name/logs\"",
            TrainSetting::ClipGradNorm => "clip_grad_norm 1.0",
            TrainSetting::Seed => "seed 1",
            TrainSetting::Init => "init \"runs/base/best.safetensors\"",
            TrainSetting::Freeze => "freeze Model.dense_1",
            TrainSetting::FrozenBn => "frozen_bn running_stats",
        }
    }
}

/// The arguments of `early_stop(…)`; `monitor` (`val.loss`) and `mode` (`min`) are words, not
/// values.
pub const EARLY_STOP: &[PrimParam] = &[
    PrimParam::req("monitor"),
    PrimParam::opt("mode"),
    PrimParam::opt("patience"),
    PrimParam::opt("min_delta"),
    PrimParam::opt("restore_best"),
];

/// The arguments of an `early_stop(…)` that name things rather than compute values, by the
/// binding rule: whether each argument is `monitor` or `mode`.
pub fn early_stop_words<'a>(names: impl IntoIterator<Item = Option<&'a str>>) -> Vec<bool> {
    let params: Vec<&str> = EARLY_STOP.iter().map(|p| p.name).collect();
    let matched = crate::bind::match_args(&params, names);
    let mut words = Vec::new();
    for (param, arg) in matched.slots.iter().enumerate() {
        if let Some(arg) = *arg {
            if words.len() <= arg {
                words.resize(arg + 1, false);
            }
            words[arg] = param < 2;
        }
    }
    words
}

pub const DTYPE_NAMES: &[&str] = &["f32", "f64", "i32", "bool"];

/// Every name that is predefined in expressions, for lookups and "did you mean".
pub fn is_predefined(name: &str) -> bool {
    crate::builtins::lookup(name).is_some()
        || initializer(name).is_some()
        || DTYPE_NAMES.contains(&name)
}

/// The distributions a `search` space may draw from: `log_uniform(1e-4, 1e-2)`.
pub const SEARCH_DISTRIBUTIONS: &[&str] = &["uniform", "log_uniform", "choice", "int_range"];

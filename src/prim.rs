//! The closed set of built-in functions the language offers over the primitives. Everything else
//! a user calls (layers, losses, activations, optimizers) is `.nnl` source in `stdlib/`.
//! Each builtin lists its parameters so that arity and named arguments are checked uniformly.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Exp,
    Log,
    Sqrt,
    Sin,
    Cos,
    Erf,
    Tanh,
    Sigmoid,
    Maximum,
    Minimum,
    Select,
    Cast,
    Detach,
    AllSum,
    Sum,
    Mean,
    Max,
    Min,
    Argmax,
    Reshape,
    Flatten,
    Permute,
    Transpose,
    BroadcastTo,
    Slice,
    Pad,
    Concat,
    Split,
    Stack,
    Matmul,
    Unfold,
    Fold,
    Gather,
    Pick,
    OneHot,
    ScatterAdd,
    Zeros,
    Ones,
    Full,
    ZerosLike,
    OnesLike,
    Arange,
    Positions,
    Cached,
    CausalMask,
    RandUniform,
    RandNormal,
    Shape,
    Params,
    SumOver,
}

/// A builtin's parameter: its name and whether it may be left out.
#[derive(Debug, Clone, Copy)]
pub struct PrimParam {
    pub name: &'static str,
    pub optional: bool,
}

const fn req(name: &'static str) -> PrimParam {
    PrimParam {
        name,
        optional: false,
    }
}

const fn opt(name: &'static str) -> PrimParam {
    PrimParam {
        name,
        optional: true,
    }
}

pub struct BuiltinInfo {
    pub builtin: Builtin,
    pub name: &'static str,
    pub params: &'static [PrimParam],
    pub doc: &'static str,
}

const X: &[PrimParam] = &[req("x")];
const REDUCE: &[PrimParam] = &[req("x"), opt("axis"), opt("keep")];
const WINDOW: &[PrimParam] = &[
    req("x"),
    req("kernel"),
    opt("stride"),
    opt("padding"),
    opt("dilation"),
];

pub const BUILTINS: &[BuiltinInfo] = &[
    BuiltinInfo {
        builtin: Builtin::Exp,
        name: "exp",
        params: X,
        doc: "e^x, elementwise",
    },
    BuiltinInfo {
        builtin: Builtin::Log,
        name: "log",
        params: X,
        doc: "natural logarithm, elementwise",
    },
    BuiltinInfo {
        builtin: Builtin::Sqrt,
        name: "sqrt",
        params: X,
        doc: "square root, elementwise",
    },
    BuiltinInfo {
        builtin: Builtin::Sin,
        name: "sin",
        params: X,
        doc: "sine, elementwise",
    },
    BuiltinInfo {
        builtin: Builtin::Cos,
        name: "cos",
        params: X,
        doc: "cosine, elementwise",
    },
    BuiltinInfo {
        builtin: Builtin::Erf,
        name: "erf",
        params: X,
        doc: "the error function 2/√π ∫₀ˣ e^(−t²) dt, elementwise",
    },
    BuiltinInfo {
        builtin: Builtin::Tanh,
        name: "tanh",
        params: X,
        doc: "hyperbolic tangent, elementwise; its gradient is 1 − tanh²",
    },
    BuiltinInfo {
        builtin: Builtin::Sigmoid,
        name: "sigmoid",
        params: X,
        doc: "logistic function 1 / (1 + e^−x), elementwise; its gradient is σ (1 − σ)",
    },
    BuiltinInfo {
        builtin: Builtin::Maximum,
        name: "maximum",
        params: &[req("a"), req("b")],
        doc: "elementwise maximum, broadcasting",
    },
    BuiltinInfo {
        builtin: Builtin::Minimum,
        name: "minimum",
        params: &[req("a"), req("b")],
        doc: "elementwise minimum, broadcasting",
    },
    BuiltinInfo {
        builtin: Builtin::Select,
        name: "select",
        params: &[req("cond"), req("a"), req("b")],
        doc: "a where cond is true, else b, broadcasting",
    },
    BuiltinInfo {
        builtin: Builtin::Cast,
        name: "cast",
        params: &[req("x"), req("dtype")],
        doc: "converts to another dtype",
    },
    BuiltinInfo {
        builtin: Builtin::Detach,
        name: "detach",
        params: X,
        doc: "the same value, with no gradient flowing back",
    },
    BuiltinInfo {
        builtin: Builtin::AllSum,
        name: "all_sum",
        params: X,
        doc: "the sum over the shards of a data-parallel step; the value itself in one process",
    },
    BuiltinInfo {
        builtin: Builtin::Sum,
        name: "sum",
        params: REDUCE,
        doc: "sum over an axis, a list of axes, or everything",
    },
    BuiltinInfo {
        builtin: Builtin::Mean,
        name: "mean",
        params: REDUCE,
        doc: "mean over an axis, a list of axes, or everything",
    },
    BuiltinInfo {
        builtin: Builtin::Max,
        name: "max",
        params: REDUCE,
        doc: "maximum over an axis, a list of axes, or everything",
    },
    BuiltinInfo {
        builtin: Builtin::Min,
        name: "min",
        params: REDUCE,
        doc: "minimum over an axis, a list of axes, or everything",
    },
    BuiltinInfo {
        builtin: Builtin::Argmax,
        name: "argmax",
        params: &[req("x"), opt("axis")],
        doc: "index of the maximum along an axis (i32)",
    },
    BuiltinInfo {
        builtin: Builtin::Reshape,
        name: "reshape",
        params: &[req("x"), req("shape")],
        doc: "the same elements in another shape",
    },
    BuiltinInfo {
        builtin: Builtin::Flatten,
        name: "flatten",
        params: &[req("x"), opt("axis")],
        doc: "collapses the axes from `axis` (default 1) to the end",
    },
    BuiltinInfo {
        builtin: Builtin::Permute,
        name: "permute",
        params: &[req("x"), req("perm")],
        doc: "reorders the axes",
    },
    BuiltinInfo {
        builtin: Builtin::Transpose,
        name: "transpose",
        params: X,
        doc: "swaps the last two axes",
    },
    BuiltinInfo {
        builtin: Builtin::BroadcastTo,
        name: "broadcast_to",
        params: &[req("x"), req("shape")],
        doc: "stretches size-1 and missing leading axes",
    },
    BuiltinInfo {
        builtin: Builtin::Slice,
        name: "slice",
        params: &[req("x"), req("axis"), req("start"), req("end")],
        doc: "the range start..end along an axis",
    },
    BuiltinInfo {
        builtin: Builtin::Pad,
        name: "pad",
        params: &[
            req("x"),
            req("axis"),
            req("before"),
            req("after"),
            opt("value"),
        ],
        doc: "pads an axis with a constant",
    },
    BuiltinInfo {
        builtin: Builtin::Concat,
        name: "concat",
        params: &[req("xs"), opt("axis")],
        doc: "joins tensors along an axis",
    },
    BuiltinInfo {
        builtin: Builtin::Split,
        name: "split",
        params: &[req("x"), req("parts"), opt("axis")],
        doc: "cuts an axis into equal parts (a tuple)",
    },
    BuiltinInfo {
        builtin: Builtin::Stack,
        name: "stack",
        params: &[req("xs"), opt("axis")],
        doc: "stacks equal-shaped tensors along a new axis",
    },
    BuiltinInfo {
        builtin: Builtin::Matmul,
        name: "matmul",
        params: &[req("a"), req("b")],
        doc: "batched matrix product, the same as `a @ b`",
    },
    BuiltinInfo {
        builtin: Builtin::Unfold,
        name: "unfold",
        params: WINDOW,
        doc: "image patches as columns (im2col): [B, C, H, W] → [B, C*k*k, OH*OW]",
    },
    BuiltinInfo {
        builtin: Builtin::Fold,
        name: "fold",
        params: &[
            req("x"),
            req("size"),
            req("kernel"),
            opt("stride"),
            opt("padding"),
            opt("dilation"),
        ],
        doc: "sums columns back into an image (col2im), the transpose of unfold",
    },
    BuiltinInfo {
        builtin: Builtin::Gather,
        name: "gather",
        params: &[req("table"), req("idx")],
        doc: "rows of a table: [V, D] at i32[..S] → [..S, D]",
    },
    BuiltinInfo {
        builtin: Builtin::Pick,
        name: "pick",
        params: &[req("x"), req("idx")],
        doc: "the entry at an index along the last axis: [..S, C] at i32[..S] → [..S]",
    },
    BuiltinInfo {
        builtin: Builtin::OneHot,
        name: "one_hot",
        params: &[req("idx"), req("n")],
        doc: "i32[..S] → f32[..S, n] with a 1 at each index",
    },
    BuiltinInfo {
        builtin: Builtin::ScatterAdd,
        name: "scatter_add",
        params: &[req("x"), req("idx"), req("rows")],
        doc: "adds rows of x into a [rows, D] table at idx (gather's transpose)",
    },
    BuiltinInfo {
        builtin: Builtin::Zeros,
        name: "zeros",
        params: &[req("shape")],
        doc: "a tensor of zeros; as an initializer, zeros",
    },
    BuiltinInfo {
        builtin: Builtin::Ones,
        name: "ones",
        params: &[req("shape")],
        doc: "a tensor of ones; as an initializer, ones",
    },
    BuiltinInfo {
        builtin: Builtin::Full,
        name: "full",
        params: &[req("shape"), req("value")],
        doc: "a tensor filled with a value",
    },
    BuiltinInfo {
        builtin: Builtin::ZerosLike,
        name: "zeros_like",
        params: X,
        doc: "zeros of the shape and dtype of x",
    },
    BuiltinInfo {
        builtin: Builtin::OnesLike,
        name: "ones_like",
        params: X,
        doc: "ones of the shape and dtype of x",
    },
    BuiltinInfo {
        builtin: Builtin::Arange,
        name: "arange",
        params: &[req("n")],
        doc: "0, 1, …, n-1 as f32[n]",
    },
    BuiltinInfo {
        builtin: Builtin::Positions,
        name: "positions",
        params: &[req("n")],
        doc: "the positions of a sequence of n as i32[n]: 0, 1, …, n-1, or the new positions when a causal model generates with its cache",
    },
    BuiltinInfo {
        builtin: Builtin::Cached,
        name: "cached",
        params: &[req("x"), req("axis")],
        doc: "x itself; when a causal model generates one position at a time, x's earlier positions along axis (keys, values) from the cache, this one written in",
    },
    BuiltinInfo {
        builtin: Builtin::CausalMask,
        name: "causal_mask",
        params: &[req("scores")],
        doc: "attention scores [..S, queries, keys] with -1e9 where a key lies after its query's position",
    },
    BuiltinInfo {
        builtin: Builtin::RandUniform,
        name: "rand_uniform",
        params: &[req("shape")],
        doc: "uniform [0, 1) samples, seeded per step",
    },
    BuiltinInfo {
        builtin: Builtin::RandNormal,
        name: "rand_normal",
        params: &[req("shape")],
        doc: "standard normal samples, seeded per step",
    },
    BuiltinInfo {
        builtin: Builtin::Shape,
        name: "shape",
        params: X,
        doc: "the dimensions of x, as a list",
    },
    BuiltinInfo {
        builtin: Builtin::Params,
        name: "params",
        params: &[req("model")],
        doc: "every parameter of a model, for regularizers",
    },
    BuiltinInfo {
        builtin: Builtin::SumOver,
        name: "sum_over",
        params: &[req("params"), req("f")],
        doc: "the sum of a scalar function over a parameter set",
    },
];

pub fn builtin(name: &str) -> Option<&'static BuiltinInfo> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Initializers usable as `param w: [..] = NAME` (with arguments where they take some).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
                const LIMIT: &[PrimParam] = &[req("limit")];
                LIMIT
            }
            Initializer::Normal => {
                const STD: &[PrimParam] = &[req("std")];
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
    req("monitor"),
    opt("mode"),
    opt("patience"),
    opt("min_delta"),
    opt("restore_best"),
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
    builtin(name).is_some() || initializer(name).is_some() || DTYPE_NAMES.contains(&name)
}

/// The distributions a `search` space may draw from: `log_uniform(1e-4, 1e-2)`.
pub const SEARCH_DISTRIBUTIONS: &[&str] = &["uniform", "log_uniform", "choice", "int_range"];

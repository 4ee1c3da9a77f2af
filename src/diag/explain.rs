//! Long explanations of every diagnostic code, printed by `nnlc explain CODE`.

const EXPLANATIONS: &[(&str, &str)] = &[
    (
        "E0001",
        "Syntax error.\n\nThe parser expected something else at this point. The message lists what could stand there. Common causes: a missing `,` between arguments, a missing `=`, or a statement split over two lines where the second line starts with `(` (a call's arguments must start on the callee's line).",
    ),
    (
        "E0002",
        "Unbalanced delimiter.\n\nA `(`, `[` or `{` is never closed, or a closing delimiter does not match the one it closes. The label points at the delimiter that is still open.",
    ),
    (
        "E0003",
        "A dtype without a shape where a shape was meant.\n\nTensor types are written `f32[B, 784]`: the dtype, then the dimensions in square brackets. A bare `f32` is a scalar.",
    ),
    (
        "E0004",
        "Unterminated string.\n\nStrings are written between double quotes on one line: `\"data/iris.csv\"`.",
    ),
    (
        "E0005",
        "A reserved word used as a name.\n\nWords such as `fn`, `let`, `param`, `state`, `if`, `else`, `scan`, `yield`, `where`, `training` have a meaning in the language and cannot name values.",
    ),
    (
        "E0100",
        "Unknown name.\n\nThe name is not a local value, a definition in this file, an import, a standard-library function or a builtin. Check the spelling (the help suggests the closest name). Layers from the standard library must be imported: `use std.nn.{Dense}`.",
    ),
    (
        "E0101",
        "Duplicate definition.\n\nTwo items in one file (or an item and an import) have the same name. Every name in a file must be unique.",
    ),
    (
        "E0102",
        "Unknown module or unreadable file.\n\n`use std.X` names a standard module (std.nn, std.ops, std.losses, std.optim, std.schedules, std.metrics, std.reg); `use \"./file.nnl\"` names a file relative to the one that contains the `use`.",
    ),
    ("E0103", "The imported name does not exist in that module."),
    (
        "E0104",
        "Import cycle.\n\nTwo or more files `use` each other. Move what they share into a third file.",
    ),
    (
        "E0105",
        "Recursive definition.\n\nLayers and functions are expanded inline when a program is compiled, so a definition that uses itself (directly or through others) would never finish expanding. Repetition over a sequence is written with `scan`.",
    ),
    (
        "E0106",
        "A parameter, `param`, `state` or pattern name is declared twice in the same scope.",
    ),
    (
        "E0107",
        "A `use` without names.\n\nWrite `use std.nn.{Dense, Dropout}` for some names or `use std.nn.*` for all of them.",
    ),
    (
        "E0200",
        "Shapes do not broadcast.\n\nElementwise operations align shapes from the right; each pair of dimensions must be equal, or one of them must be 1. `[B, 10] + [10]` works; `[B, 10] + [B]` does not (reshape the second to `[B, 1]`).",
    ),
    (
        "E0201",
        "Matrix product with mismatched inner dimensions.\n\nIn `a @ b`, the last dimension of `a` must equal the second-to-last dimension of `b`: `[B, 784] @ [784, 128]` gives `[B, 128]`.",
    ),
    (
        "E0202",
        "Wrong rank.\n\nA value has a different number of dimensions than the parameter it is given to. Use `reshape`, `flatten` or a layer that changes rank.",
    ),
    (
        "E0203",
        "A dimension symbol bound to two values.\n\nIn a signature such as `(a: f32[B, N], b: f32[B, N])`, every occurrence of `N` must have the same size. The labels show where each value came from.",
    ),
    (
        "E0204",
        "A `where` constraint does not hold.\n\nDefinitions state requirements on their attributes and dimensions with `where cond : \"message\"`. The call gives values that violate it; the note lists the values.",
    ),
    (
        "E0205",
        "A dimension would be zero or negative.\n\nTypically a convolution or pooling window larger than its (padded) input. Output size = (size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1.",
    ),
    (
        "E0206",
        "The body's type differs from the declared return type.",
    ),
    (
        "E0207",
        "Not a scalar.\n\nA loss (and every metric) must be a single number per step. Reduce the per-sample values, e.g. with `mean(…)`.",
    ),
    (
        "E0208",
        "Dtype mismatch.\n\nValues of different dtypes (f32, f64, i32, bool) are never converted silently. Use `cast(x, f32)`.",
    ),
    (
        "E0209",
        "Class labels in the wrong encoding.\n\n`cross_entropy` takes one-hot or probability targets `f32[B, C]`; for integer labels `i32[B]` use `sparse_cross_entropy`, or convert them in the data block with `one_hot`. Conversely `sparse_cross_entropy` takes class indices `i32[B]`: for one-hot targets use `cross_entropy`.",
    ),
    (
        "E0210",
        "Wrong number of arguments: too many, or a required one is missing.",
    ),
    (
        "E0211",
        "Unknown named argument (or hyperparameter). The help lists the valid names.",
    ),
    (
        "E0212",
        "An argument is given twice (by position and by name, or twice by name).",
    ),
    ("E0213", "The value cannot be called, or has no such field."),
    (
        "E0214",
        "A value of the wrong kind: an integer where a tensor is needed, a tensor where a constant is needed, and so on.",
    ),
    (
        "E0215",
        "An axis or a slice range is out of bounds for the tensor's rank or size.",
    ),
    (
        "E0216",
        "`reshape` to a shape with a different number of elements.",
    ),
    (
        "E0217",
        "`permute` with a list that is not a permutation of the axes.",
    ),
    (
        "E0218",
        "Destructuring a value into the wrong number of names.",
    ),
    (
        "E0219",
        "An `if` whose condition is not known at compile time, or whose branches have different types, or that lacks `else`.",
    ),
    (
        "E0220",
        "A value does not fit its declaration: an argument of the wrong shape, a state assigned a different shape, an initializer of the wrong shape, tensors of different shapes given to `concat` or `stack`.",
    ),
    (
        "E0221",
        "Misplaced statement: `param` outside a layer, `yield` outside a scan, a scan body without `yield`, or a scan carry that changes shape.",
    ),
    (
        "E0222",
        "Assignment to something that is not a `state`. New values are named with `let`.",
    ),
    ("E0223", "A `state` without a type or an initial value."),
    ("E0224", "An optimizer that never assigns `p`."),
    (
        "E0225",
        "A definition cannot be expanded with these inputs; the secondary label shows where inside it the problem arises.",
    ),
    ("E0226", "`split` into parts that do not divide the axis."),
    (
        "E0302",
        "`train` names something that is not a model, or `on` names something that is not a data block.",
    ),
    (
        "E0303",
        "A training block (or phase) without a loss or an optimizer/update.",
    ),
    (
        "E0304",
        "The data does not fit the model.\n\nEach input of the trained model needs a data field of the same name, and the field's declared per-sample type, with the batch dimension `B` in front, must fit the input's declared type: `x: f32[784]` feeds `x: f32[B, 784]`. A selection must pick as many columns as the field declares, and `one_hot(n)` gives `f32[n]`. When a field and an input disagree, decide which one is right and make the other agree.",
    ),
    (
        "E0305",
        "Unknown or malformed setting in a `train` or `data` block.",
    ),
    (
        "E0306",
        "Split fractions out of range, or adding up to 1 or more so that no training data remains.",
    ),
    (
        "E0307",
        "A monitored metric that is never computed. Add it to `metrics`, or monitor `val.loss`.",
    ),
    (
        "E0308",
        "`update`/`constrain` names something that is not a trained model, or the value given is not an optimizer/constraint.",
    ),
    ("E0309", "Unknown data source, column or transform."),
    (
        "E0310",
        "A setting with an invalid value (batch and epochs are positive integers, checkpoint is a path, …).",
    ),
    (
        "E0311",
        "`out` in a training block that trains several models.\n\n`out` is the trained model applied to the data fields named like its inputs, so it exists only when the block trains exactly one model. With several (a GAN's generator and critic), apply each model by name to what it takes and bind the result: `let fake = Generator(rand_normal([B, 64]))`, `loss = bce_logits(Critic(x), ones([B, 1]))`.",
    ),
    (
        "E0312",
        "`val.…` monitored without a validation split. Add `split val = 0.1 of train`.",
    ),
    (
        "E0313",
        "A trained model has an attribute without a default value.\n\nThe model a `train` block trains is built with its default attributes, so every attribute needs one: write `model Mlp(hidden: int = 128)(x: …)`. A `search` block then tries other values for the attributes it names.",
    ),
    (
        "E0314",
        "A metric's declaration cannot be read.\n\nA metric declares how `nnlc run` treats it with parameters read only for their defaults: `aggregate: str` is \"mean\" (the default: batch values weighted by batch size), \"root_mean_square\" (the root of the weighted mean square, as for `rmse`) or \"r2\" (from the whole split's sums of the model's output and the target); `higher_is_better: bool` is `true` or `false` and sets the direction `early_stop` watches without a `mode`. Write `fn f1(pred: f32[B], target: f32[B], higher_is_better: bool = true) -> f32`.",
    ),
    (
        "E0400",
        "The program passed every check, but the compiler could not lower a construct to the graph IR (for example an `if` whose condition is a tensor rather than a value known when compiling, or a model input whose sizes no data field gives). The label points at the construct. This is a limit of the compiler, not a mistake in the program: rewrite the construct (`select` for tensor conditions) and report it.",
    ),
    (
        "W0001",
        "A `param` that the layer never uses: it would be initialized, trained and saved for nothing.",
    ),
    (
        "W0002",
        "A layer whose output is never used: its work is wasted. Names starting with `_` are exempt.",
    ),
];

pub fn explain(code: &str) -> Option<&'static str> {
    EXPLANATIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, t)| *t)
}

/// Every documented code, for tests that keep the documentation complete.
pub fn codes() -> impl Iterator<Item = &'static str> {
    EXPLANATIONS.iter().map(|(c, _)| *c)
}

//! Long explanations of every diagnostic code, printed by `nnlc explain CODE`.

use super::codes;

const EXPLANATIONS: &[(&str, &str)] = &[
    (
        codes::SYNTAX,
        "Syntax error.\n\nThe parser expected something else at this point. The message lists what could stand there. Common causes: a missing `,` between arguments, a missing `=`, or a statement split over two lines where the second line starts with `(` (a call's arguments must start on the callee's line).",
    ),
    (
        codes::UNBALANCED_DELIMITER,
        "Unbalanced delimiter.\n\nA `(`, `[` or `{` is never closed, or a closing delimiter does not match the one it closes. The label points at the delimiter that is still open.",
    ),
    (
        codes::DTYPE_WITHOUT_SHAPE,
        "A dtype without a shape where a shape was meant.\n\nTensor types are written `f32[B, 784]`: the dtype, then the dimensions in square brackets. A bare `f32` is a scalar.",
    ),
    (
        codes::UNTERMINATED_STRING,
        "Unterminated string.\n\nStrings are written between double quotes on one line: `\"data/iris.csv\"`.",
    ),
    (
        codes::RESERVED_WORD,
        "A reserved word used as a name.\n\nWords such as `fn`, `let`, `param`, `state`, `if`, `else`, `scan`, `yield`, `where`, `training` have a meaning in the language and cannot name values.",
    ),
    (
        codes::NESTING_TOO_DEEP,
        "Nested deeper than 256 levels.\n\nEach bracket, block, `if`, closure and operator of a chain is a level (`a + b + c` nests two deep). Every stage of the compiler walks the program recursively, so nesting is limited to keep them within their stack, whatever the input. Name the inner parts with `let` and combine the names.",
    ),
    (
        codes::UNKNOWN_NAME,
        "Unknown name.\n\nThe name is not a local value, a definition in this file, an import, a standard-library function or a builtin. Check the spelling (the help suggests the closest name). Layers from the standard library must be imported: `use std.nn.{Dense}`.",
    ),
    (
        codes::DUPLICATE_DEFINITION,
        "Duplicate definition.\n\nTwo items in one file (or an item and an import) have the same name. Every name in a file must be unique.",
    ),
    (
        codes::UNKNOWN_MODULE,
        "Unknown module or unreadable file.\n\n`use std.X` names a standard module (std.nn, std.ops, std.losses, std.optim, std.schedules, std.metrics, std.reg); `use \"./file.nnl\"` names a file relative to the one that contains the `use`.",
    ),
    (
        codes::UNKNOWN_IMPORT,
        "The imported name does not exist in that module.",
    ),
    (
        codes::IMPORT_CYCLE,
        "Import cycle.\n\nTwo or more files `use` each other. Move what they share into a third file.",
    ),
    (
        codes::RECURSIVE_DEFINITION,
        "Recursive definition.\n\nLayers and functions are expanded inline when a program is compiled, so a definition that uses itself (directly or through others) would never finish expanding. Repetition over a sequence is written with `scan`.",
    ),
    (
        codes::DUPLICATE_BINDING,
        "A parameter, `param`, `state` or pattern name is declared twice in the same scope.",
    ),
    (
        codes::USE_WITHOUT_NAMES,
        "A `use` without names.\n\nWrite `use std.nn.{Dense, Dropout}` for some names or `use std.nn.*` for all of them.",
    ),
    (
        codes::PATH_OUTSIDE_PROJECT,
        "A path written in the file leads outside its project.\n\nPaths written in a `.nnl` file (`use \"…\"`, data files, the `checkpoint` directory, `init` weights) must stay inside the directory of the file being run or the current directory, so that a shared model file cannot read or write anything else the user can. Absolute paths, `..` that climbs out, and symbolic links that point out are refused. Paths given on the command line are the user's own choice and are not restricted. To allow a directory, pass `--allow-path DIR` (repeatable) or list it in NNL_ALLOW_PATH (separated by `:`).",
    ),
    (
        codes::BROADCAST,
        "Shapes do not broadcast.\n\nElementwise operations align shapes from the right; each pair of dimensions must be equal, or one of them must be 1. `[B, 10] + [10]` works; `[B, 10] + [B]` does not (reshape the second to `[B, 1]`).",
    ),
    (
        codes::MATMUL_INNER_DIM,
        "Matrix product with mismatched inner dimensions.\n\nIn `a @ b`, the last dimension of `a` must equal the second-to-last dimension of `b`: `[B, 784] @ [784, 128]` gives `[B, 128]`.",
    ),
    (
        codes::RANK,
        "Wrong rank.\n\nA value has a different number of dimensions than the parameter it is given to. Use `reshape`, `flatten` or a layer that changes rank.",
    ),
    (
        codes::SYMBOL_CONFLICT,
        "A dimension symbol bound to two values.\n\nIn a signature such as `(a: f32[B, N], b: f32[B, N])`, every occurrence of `N` must have the same size. The labels show where each value came from.",
    ),
    (
        codes::WHERE_FAILED,
        "A `where` constraint does not hold.\n\nDefinitions state requirements on their attributes and dimensions with `where cond : \"message\"`. The call gives values that violate it; the note lists the values.",
    ),
    (
        codes::NONPOSITIVE_DIM,
        "A dimension would be zero or negative.\n\nTypically a convolution or pooling window larger than its (padded) input. Output size = (size + 2·padding − dilation·(kernel − 1) − 1) / stride + 1.",
    ),
    (
        codes::RETURN_TYPE,
        "The body's type differs from the declared return type.",
    ),
    (
        codes::NOT_SCALAR,
        "Not a scalar.\n\nA loss (and every metric) must be a single number per step. Reduce the per-sample values, e.g. with `mean(…)`.",
    ),
    (
        codes::DTYPE_MISMATCH,
        "Dtype mismatch.\n\nValues of different dtypes (f32, f64, i32, bool) are never converted silently. Use `cast(x, f32)`.",
    ),
    (
        codes::LABEL_ENCODING,
        "Class labels in the wrong encoding.\n\n`cross_entropy` takes one-hot or probability targets `f32[B, C]`; for integer labels `i32[B]` use `sparse_cross_entropy`, or convert them in the data block with `one_hot`. Conversely `sparse_cross_entropy` takes class indices `i32[B]`: for one-hot targets use `cross_entropy`.",
    ),
    (
        codes::ARGUMENT_COUNT,
        "Wrong number of arguments: too many, or a required one is missing.",
    ),
    (
        codes::UNKNOWN_ARGUMENT,
        "Unknown named argument (or hyperparameter). The help lists the valid names.",
    ),
    (
        codes::ARGUMENT_TWICE,
        "An argument is given twice (by position and by name, or twice by name).",
    ),
    (
        codes::NOT_CALLABLE,
        "The value cannot be called, or has no such field.",
    ),
    (
        codes::NOT_A_TENSOR,
        "A tensor is needed, and the value is another kind: an arithmetic operand, a builtin's tensor argument (`sum`, `shape`, `concat`'s list) or a matrix product's side that is a layer, a list, a string or a parameter set. Apply a layer to its input first (`x |> Dense(10)`, not `Dense(10) + 1`); scale by a number with `*`, not `@`.",
    ),
    (
        codes::OPERATOR_KIND,
        "An operator applied to a kind of value it does not take: `@`, `and` and `or` on compile-time integers, `-` on a boolean, `not` on a number or a float tensor, `//` and `%` on tensors (they compute sizes: `N // 2`). Use `*` to multiply integers, `select` or comparisons for booleans.",
    ),
    (
        codes::NOT_A_CONSTANT,
        "An argument that must be known when the program is compiled has the wrong form: a dimension or axis that is not an integer (a fraction, a tensor), a list of dimensions that is a tuple or something else (`[B, 10]` is written in square brackets), `keep:` that is not `true`/`false`, `cast`'s dtype that is not `f32`, `f64`, `i32` or `bool`, a range whose bounds are not constants with start ≤ end, a data field's size that is a name (`x: f32[n]`; nothing in a data block binds it). Sizes and axes shape the graph, so they cannot come from tensors.",
    ),
    (
        codes::ZERO_DIVISOR,
        "A compile-time division by zero (`N / 0`, `N // 0`, `N % 0` with constants), or a window with stride 0 (`unfold`), which would divide its input's size by zero.",
    ),
    (
        codes::WHERE_NOT_CONDITION,
        "A `where` constraint that is not a condition. Each constraint after `where` must be a boolean known at compile time, usually a comparison of dimensions or attributes: `where D % heads == 0: \"heads must divide D\"`.",
    ),
    (
        codes::NOT_A_PARAMETER_SET,
        "`params(M)` takes a model (or layer instance) and gives its parameter set; `sum_over(params(M), f)` takes such a set. Another value was given: write `params(Mlp)` with the model's name.",
    ),
    (
        codes::EMPTY_LIST,
        "Nothing to join: `concat` and `stack` need at least one tensor in their list.",
    ),
    (
        codes::TOO_LARGE,
        "Too large to compute with.\n\nDimensions, sizes and compile-time integers are 64-bit integers; arithmetic that leaves that range (`2 ^ 64`, a product of large dimensions) is an error where it happens instead of a wrapped number. A tensor may hold at most 2^60 elements (its size in bytes must fit in 63 bits), and a range `a..b` at most 2^20 numbers. Whether a model fits in memory is decided before training starts, with its sizes in the message.",
    ),
    (
        codes::OUT_OF_BOUNDS,
        "An axis or a slice range is out of bounds for the tensor's rank or size.",
    ),
    (
        codes::RESHAPE_SIZE,
        "`reshape` to a shape with a different number of elements.",
    ),
    (
        codes::NOT_A_PERMUTATION,
        "`permute` with a list that is not a permutation of the axes.",
    ),
    (
        codes::DESTRUCTURE_COUNT,
        "Destructuring a value into the wrong number of names.",
    ),
    (
        codes::IF_FORM,
        "An `if` whose condition is not known at compile time, or whose branches have different types, or that lacks `else`.",
    ),
    (
        codes::DECLARATION_MISMATCH,
        "A value does not fit its declaration: an argument of the wrong shape, a state assigned a different shape, an initializer of the wrong shape, tensors of different shapes given to `concat` or `stack`.",
    ),
    (
        codes::MISPLACED_STATEMENT,
        "Misplaced statement: `param` outside a layer, `yield` outside a scan, a scan body without `yield`, or a scan carry that changes shape.",
    ),
    (
        codes::ASSIGN_NON_STATE,
        "Assignment to something that is not a `state`. New values are named with `let`.",
    ),
    (
        codes::STATE_WITHOUT_TYPE,
        "A `state` without a type or an initial value.",
    ),
    (
        codes::OPTIMIZER_WITHOUT_P,
        "An optimizer that never assigns `p`.",
    ),
    (
        codes::EXPANSION_FAILED,
        "A definition cannot be expanded with these inputs; the secondary label shows where inside it the problem arises.",
    ),
    (
        codes::SPLIT_NOT_DIVISIBLE,
        "`split` into parts that do not divide the axis.",
    ),
    (
        codes::TRAIN_TARGETS,
        "`train` names something that is not a model, or `on` names something that is not a data block.",
    ),
    (
        codes::MISSING_LOSS_OR_OPTIMIZER,
        "A training block (or phase) without a loss or an optimizer/update.",
    ),
    (
        codes::DATA_MODEL_MISMATCH,
        "The data does not fit the model.\n\nEach input of the trained model needs a data field of the same name, and the field's declared per-sample type, with the batch dimension `B` in front, must fit the input's declared type: `x: f32[784]` feeds `x: f32[B, 784]`. A selection must pick as many columns as the field declares, and `one_hot(n)` gives `f32[n]`. When a field and an input disagree, decide which one is right and make the other agree.",
    ),
    (
        codes::SETTING,
        "Unknown or malformed setting in a `train` or `data` block.\n\nIn a data block this is also a field's transforms in an order they cannot run in: `tokenize(…)` and a `label`/`one_hot` of category names come first, right after the column; `mask` follows `tokenize`; `one_hot` comes before any augmentation; nothing reshapes the one vector a `one_hot` of names gives. A `text` or `images` source cannot be joined, and a block needs at least one field.",
    ),
    (
        codes::SPLIT_FRACTIONS,
        "Split fractions out of range, or adding up to 1 or more so that no training data remains.",
    ),
    (
        codes::MONITOR,
        "A monitored metric that is never computed. Add it to `metrics`, or monitor `val.loss`.",
    ),
    (
        codes::UPDATE_TARGET,
        "`update`/`constrain` names something that is not a trained model, or the value given is not an optimizer/constraint.",
    ),
    (
        codes::UNKNOWN_DATA_VOCABULARY,
        "Unknown data source, column or transform.",
    ),
    (
        codes::SETTING_VALUE,
        "A setting with an invalid value (batch and epochs are positive integers, checkpoint is a path, …), or an argument of a data source, tokenizer or transform that the call does not take: a count below zero or not whole, a `delimiter` of more than one character, `channels` other than 1 or 3, a crop `scale` above 1.",
    ),
    (
        codes::OUT_AMBIGUOUS,
        "`out` in a training block that trains several models.\n\n`out` is the trained model applied to the data fields named like its inputs, so it exists only when the block trains exactly one model. With several (a GAN's generator and critic), apply each model by name to what it takes and bind the result: `let fake = Generator(rand_normal([B, 64]))`, `loss = bce_logits(Critic(x), ones([B, 1]))`.",
    ),
    (
        codes::NO_VALIDATION_SPLIT,
        "`val.…` monitored without a validation split. Add `split val = 0.1 of train`.",
    ),
    (
        codes::ATTRIBUTE_WITHOUT_DEFAULT,
        "A trained model has an attribute without a default value.\n\nThe model a `train` block trains is built with its default attributes, so every attribute needs one: write `model Mlp(hidden: int = 128)(x: …)`. A `search` block then tries other values for the attributes it names.",
    ),
    (
        codes::METRIC_DECLARATION,
        "A metric's declaration cannot be read.\n\nA metric declares how `nnlc run` treats it with parameters read only for their defaults: `aggregate: str` is \"mean\" (the default: batch values weighted by batch size), \"root_mean_square\" (the root of the weighted mean square, as for `rmse`), \"geometric_mean\" (the exponential of the weighted mean of the logarithms, as for `perplexity`) or \"r2\" (from the whole split's sums of the model's output and the target); `higher_is_better: bool` is `true` or `false` and sets the direction `early_stop` watches without a `mode`. Write `fn f1(pred: f32[B], target: f32[B], higher_is_better: bool = true) -> f32`.",
    ),
    (
        codes::FIELD_NOT_TENSOR,
        "A data field's declared type must be a tensor type, such as `x: f32[784]` or `y: i32` (a scalar per sample). Types such as `int`, `str` or a tuple do not describe a column of samples.",
    ),
    (
        codes::PATH_NOT_STRING,
        "A data source's file path must be a string in double quotes: `csv(\"data/iris.csv\")`. Paths are relative to the `.nnl` file.",
    ),
    (
        codes::WEIGHTS_MISMATCH,
        "Weights loaded with `init` (or `--init`) do not fit the model.\n\nEvery parameter must find its tensor and every tensor of the file must be used, with matching shapes. A tensor named exactly like the parameter (`LeNet.dense_1.w`, as `nnlc check --summary` lists them) is taken as it is; otherwise PyTorch's names are expected, `<layer path>.<tensor>` with the layer path as nnl names it without the model (`dense_1.weight`), converted to nnl's layout by the layer's kind (a Linear's weight is transposed, a Conv2d's flattened). Rename the layers, map PyTorch's names onto nnl's with `init(\"w.safetensors\", map: [(\"fc1\", \"dense_1\")])`, or load what fits with `strict: false`.",
    ),
    (
        codes::CLASSES_NOT_STATED,
        "A loss that reads class indices (`sparse_cross_entropy`) takes them from a field encoded with `label`, but the `label` does not say how many classes there are.\n\nThe vocabulary of a `label` is fitted on the training split when the data are loaded, so without `classes:` nothing can compare it with the number of classes the model scores before the run: a category the model has no output for would train to a loss of 0 and never be predicted. State the count, `label(classes: 3)`: the checker then compares it with the model's output, and loading the data checks it against the categories found.",
    ),
    (
        codes::LOWERING_LIMIT,
        "The program passed every check, but the compiler could not lower a construct to the graph IR (for example an `if` whose condition is a tensor rather than a value known when compiling, or a model input whose sizes no data field gives). The label points at the construct. This is a limit of the compiler, not a mistake in the program: rewrite the construct (`select` for tensor conditions) and report it.",
    ),
    (
        codes::UNUSED_PARAM,
        "A `param` that the layer never uses: it would be initialized, trained and saved for nothing.",
    ),
    (
        codes::UNUSED_LAYER,
        "A layer whose output is never used: its work is wasted. Names starting with `_` are exempt.",
    ),
];

pub fn explain(code: &str) -> Option<&'static str> {
    EXPLANATIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, t)| *t)
}

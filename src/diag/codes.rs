//! Every diagnostic code, declared once. Stages name codes by these constants; `explain.rs`
//! gives each its long text and docs/language.md lists each in its table (tests hold both).
//! A code means one thing: a new kind of error gets a new code.

// Syntax.
/// Syntax error: the message lists what could stand there.
pub const SYNTAX: &str = "E0001";
/// An unbalanced delimiter.
pub const UNBALANCED_DELIMITER: &str = "E0002";
/// A dtype without a shape where a shape was meant.
pub const DTYPE_WITHOUT_SHAPE: &str = "E0003";
/// An unterminated string.
pub const UNTERMINATED_STRING: &str = "E0004";
/// A reserved word used as a name.
pub const RESERVED_WORD: &str = "E0005";
/// Brackets, blocks or operator chains nested deeper than the limit.
pub const NESTING_TOO_DEEP: &str = "E0006";

// Names.
/// Unknown name or type.
pub const UNKNOWN_NAME: &str = "E0100";
/// Duplicate definition.
pub const DUPLICATE_DEFINITION: &str = "E0101";
/// Unknown module or unreadable file.
pub const UNKNOWN_MODULE: &str = "E0102";
/// The imported name does not exist.
pub const UNKNOWN_IMPORT: &str = "E0103";
/// Import cycle.
pub const IMPORT_CYCLE: &str = "E0104";
/// Recursive definition.
pub const RECURSIVE_DEFINITION: &str = "E0105";
/// A name declared twice in one scope.
pub const DUPLICATE_BINDING: &str = "E0106";
/// A `use` without names.
pub const USE_WITHOUT_NAMES: &str = "E0107";
/// A path written in a file that leads outside its project.
pub const PATH_OUTSIDE_PROJECT: &str = "E0108";

// Types and shapes.
/// Shapes do not broadcast.
pub const BROADCAST: &str = "E0200";
/// Matrix product with mismatched inner dimensions.
pub const MATMUL_INNER_DIM: &str = "E0201";
/// Wrong rank.
pub const RANK: &str = "E0202";
/// A dimension symbol bound to two values.
pub const SYMBOL_CONFLICT: &str = "E0203";
/// A `where` constraint does not hold.
pub const WHERE_FAILED: &str = "E0204";
/// A dimension would be zero or negative.
pub const NONPOSITIVE_DIM: &str = "E0205";
/// The body's type differs from the declared return type.
pub const RETURN_TYPE: &str = "E0206";
/// Not a scalar.
pub const NOT_SCALAR: &str = "E0207";
/// Dtype mismatch.
pub const DTYPE_MISMATCH: &str = "E0208";
/// Class labels in the wrong encoding.
pub const LABEL_ENCODING: &str = "E0209";
/// Wrong number of arguments.
pub const ARGUMENT_COUNT: &str = "E0210";
/// Unknown named argument.
pub const UNKNOWN_ARGUMENT: &str = "E0211";
/// An argument given twice.
pub const ARGUMENT_TWICE: &str = "E0212";
/// Not callable, or no such field.
pub const NOT_CALLABLE: &str = "E0213";
/// A tensor is needed and the value is another kind.
pub const NOT_A_TENSOR: &str = "E0214";
/// An axis or slice range out of bounds.
pub const OUT_OF_BOUNDS: &str = "E0215";
/// Reshape to a different number of elements.
pub const RESHAPE_SIZE: &str = "E0216";
/// Permute with a list that is not a permutation.
pub const NOT_A_PERMUTATION: &str = "E0217";
/// Destructuring into the wrong number of names.
pub const DESTRUCTURE_COUNT: &str = "E0218";
/// An `if` not decidable at compile time, without `else`, or with differing branches.
pub const IF_FORM: &str = "E0219";
/// A value does not fit its declaration.
pub const DECLARATION_MISMATCH: &str = "E0220";
/// A misplaced statement.
pub const MISPLACED_STATEMENT: &str = "E0221";
/// Assignment to something that is not a `state`.
pub const ASSIGN_NON_STATE: &str = "E0222";
/// A `state` without a type or initial value.
pub const STATE_WITHOUT_TYPE: &str = "E0223";
/// An optimizer that never assigns `p`.
pub const OPTIMIZER_WITHOUT_P: &str = "E0224";
/// A definition cannot be expanded with these inputs.
pub const EXPANSION_FAILED: &str = "E0225";
/// Split into parts that do not divide the axis.
pub const SPLIT_NOT_DIVISIBLE: &str = "E0226";
/// An operator applied to a kind of value it does not take.
pub const OPERATOR_KIND: &str = "E0227";
/// An argument that must be a compile-time constant of a given form.
pub const NOT_A_CONSTANT: &str = "E0228";
/// Division by zero, or a zero stride.
pub const ZERO_DIVISOR: &str = "E0229";
/// A `where` constraint that is not a condition.
pub const WHERE_NOT_CONDITION: &str = "E0230";
/// `params` or `sum_over` given something else.
pub const NOT_A_PARAMETER_SET: &str = "E0231";
/// Nothing to join.
pub const EMPTY_LIST: &str = "E0232";
/// An integer, a tensor or a range too large to compute with.
pub const TOO_LARGE: &str = "E0233";

// Data and training blocks.
/// `train` of something that is not a model, or `on` something that is not a data block.
pub const TRAIN_TARGETS: &str = "E0302";
/// A training block without a loss or an optimizer.
pub const MISSING_LOSS_OR_OPTIMIZER: &str = "E0303";
/// The data does not fit the model.
pub const DATA_MODEL_MISMATCH: &str = "E0304";
/// Unknown or malformed setting.
pub const SETTING: &str = "E0305";
/// Split fractions out of range.
pub const SPLIT_FRACTIONS: &str = "E0306";
/// A monitored metric never computed, or a malformed monitor.
pub const MONITOR: &str = "E0307";
/// `update`/`constrain` of an untrained model, or not an optimizer/constraint.
pub const UPDATE_TARGET: &str = "E0308";
/// Unknown data source, column or transform.
pub const UNKNOWN_DATA_VOCABULARY: &str = "E0309";
/// A setting with an invalid value.
pub const SETTING_VALUE: &str = "E0310";
/// `out` with several models.
pub const OUT_AMBIGUOUS: &str = "E0311";
/// `val.…` monitored without a validation split.
pub const NO_VALIDATION_SPLIT: &str = "E0312";
/// A trained model's attribute without a default.
pub const ATTRIBUTE_WITHOUT_DEFAULT: &str = "E0313";
/// A metric's declaration that cannot be read.
pub const METRIC_DECLARATION: &str = "E0314";
/// A data field whose type is not a tensor type.
pub const FIELD_NOT_TENSOR: &str = "E0315";
/// A data file path that is not a string.
pub const PATH_NOT_STRING: &str = "E0316";
/// Weights loaded with `init` that do not fit the model.
pub const WEIGHTS_MISMATCH: &str = "E0317";
/// A loss reads class indices from a `label` that does not state how many classes it has.
pub const CLASSES_NOT_STATED: &str = "E0318";

// Lowering.
/// A construct the compiler cannot lower.
pub const LOWERING_LIMIT: &str = "E0400";

// Warnings.
/// A `param` the layer never uses.
pub const UNUSED_PARAM: &str = "W0001";
/// A layer whose output is never used.
pub const UNUSED_LAYER: &str = "W0002";

/// Every code, in order.
pub const ALL: &[&str] = &[
    SYNTAX,
    UNBALANCED_DELIMITER,
    DTYPE_WITHOUT_SHAPE,
    UNTERMINATED_STRING,
    RESERVED_WORD,
    NESTING_TOO_DEEP,
    UNKNOWN_NAME,
    DUPLICATE_DEFINITION,
    UNKNOWN_MODULE,
    UNKNOWN_IMPORT,
    IMPORT_CYCLE,
    RECURSIVE_DEFINITION,
    DUPLICATE_BINDING,
    USE_WITHOUT_NAMES,
    PATH_OUTSIDE_PROJECT,
    BROADCAST,
    MATMUL_INNER_DIM,
    RANK,
    SYMBOL_CONFLICT,
    WHERE_FAILED,
    NONPOSITIVE_DIM,
    RETURN_TYPE,
    NOT_SCALAR,
    DTYPE_MISMATCH,
    LABEL_ENCODING,
    ARGUMENT_COUNT,
    UNKNOWN_ARGUMENT,
    ARGUMENT_TWICE,
    NOT_CALLABLE,
    NOT_A_TENSOR,
    OUT_OF_BOUNDS,
    RESHAPE_SIZE,
    NOT_A_PERMUTATION,
    DESTRUCTURE_COUNT,
    IF_FORM,
    DECLARATION_MISMATCH,
    MISPLACED_STATEMENT,
    ASSIGN_NON_STATE,
    STATE_WITHOUT_TYPE,
    OPTIMIZER_WITHOUT_P,
    EXPANSION_FAILED,
    SPLIT_NOT_DIVISIBLE,
    OPERATOR_KIND,
    NOT_A_CONSTANT,
    ZERO_DIVISOR,
    WHERE_NOT_CONDITION,
    NOT_A_PARAMETER_SET,
    EMPTY_LIST,
    TOO_LARGE,
    TRAIN_TARGETS,
    MISSING_LOSS_OR_OPTIMIZER,
    DATA_MODEL_MISMATCH,
    SETTING,
    SPLIT_FRACTIONS,
    MONITOR,
    UPDATE_TARGET,
    UNKNOWN_DATA_VOCABULARY,
    SETTING_VALUE,
    OUT_AMBIGUOUS,
    NO_VALIDATION_SPLIT,
    ATTRIBUTE_WITHOUT_DEFAULT,
    METRIC_DECLARATION,
    FIELD_NOT_TENSOR,
    PATH_NOT_STRING,
    WEIGHTS_MISMATCH,
    CLASSES_NOT_STATED,
    LOWERING_LIMIT,
    UNUSED_PARAM,
    UNUSED_LAYER,
];

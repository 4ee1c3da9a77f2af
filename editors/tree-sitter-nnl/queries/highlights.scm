; Highlighting for nnl. Capture names follow the common tree-sitter set (Neovim, Helix, Zed):
; a more specific name (`@keyword.function`) falls back to its prefix (`@keyword`).
; Editors disagree on which of two patterns matching one node wins (the first in Helix and the
; tree-sitter CLI, the last in Neovim), so no two patterns here capture the same node: the
; alternatives exclude each other with predicates, and plain names are left uncaptured.

; ------------------------------------------------------------------ comments, literals

(comment) @comment @spell

(string) @string

(number) @number

(boolean) @boolean

(training) @constant.builtin

; ------------------------------------------------------------------ keywords by kind

; items and declarations
"use" @keyword.import

[
  "data"
  "model"
  "layer"
  "optimizer"
  "schedule"
  "constraint"
  "train"
  "search"
  "phase"
] @keyword.type

"fn" @keyword.function

"let" @keyword

[
  "param"
  "state"
] @keyword.modifier

; control
[
  "if"
  "else"
] @keyword.conditional

"scan" @keyword.repeat

"yield" @keyword.return

"where" @keyword

; training and data clauses
[
  "update"
  "constrain"
  "with"
  "on"
  "of"
  "split"
  "over"
  "in"
  "maximize"
  "minimize"
] @keyword

[
  "and"
  "or"
  "not"
] @keyword.operator

; settings of a train or data block: `loss = …`, `batch 64`, `early_stop(…)`; another name
; there is a data source (`train = idx(…)`) or an unknown setting
(setting
  name: (identifier) @keyword
  (#any-of? @keyword
    "loss" "optimizer" "batch" "epochs" "metrics" "early_stop" "checkpoint" "clip_grad_norm"
    "seed" "shuffle"))

(setting
  name: (identifier) @variable
  (#not-any-of? @variable
    "loss" "optimizer" "batch" "epochs" "metrics" "early_stop" "checkpoint" "clip_grad_norm"
    "seed" "shuffle"))

; ------------------------------------------------------------------ operators, punctuation

[
  "|>"
  "->"
  "@"
  "+"
  "-"
  "*"
  "/"
  "//"
  "%"
  "^"
  "=="
  "!="
  "<"
  "<="
  ">"
  ">="
  ".."
  "="
] @operator

(wildcard) @operator

[
  "("
  ")"
  "["
  "]"
  "{"
  "}"
] @punctuation.bracket

(closure
  "|" @punctuation.bracket)

(scan_expression
  "|" @punctuation.bracket)

[
  ","
  ";"
  ":"
  "."
] @punctuation.delimiter

; ------------------------------------------------------------------ types and shapes

(dtype) @type.builtin

(named_type
  (identifier) @type.builtin
  (#any-of? @type.builtin "int" "str" "init" "params"))

(named_type
  (identifier) @type
  (#not-any-of? @type "int" "str" "init" "params"))

; dimension symbols in a shape (`f32[B, 784]`, `param w: [N, units]`) and packs (`..S`)
(shape
  (identifier) @type.parameter)

(shape
  (_
    (identifier) @type.parameter))

(pack
  name: (identifier) @type.parameter)

; upper-case one-letter names in a list are dimension symbols by convention: `zeros([B, H])`
(list
  (identifier) @type.parameter
  (#match? @type.parameter "^[A-Z]$"))

; a dtype used as a value: `cast(x, f32)`
((identifier) @type.builtin
  (#any-of? @type.builtin "f32" "f64" "i32" "bool"))

; ------------------------------------------------------------------ definitions and calls

(definition
  kind: [
    "model"
    "layer"
  ]
  name: (identifier) @type.definition)

(definition
  kind: [
    "fn"
    "optimizer"
    "schedule"
    "constraint"
  ]
  name: (identifier) @function)

(use_declaration
  module: (identifier) @module)

(use_list
  (identifier) @type)

(data_declaration
  name: (identifier) @type.definition)

(train_declaration
  model: (identifier) @type)

(train_declaration
  data: (identifier) @type)

(search_declaration
  model: (identifier) @type)

(search_declaration
  data: (identifier) @type)

(phase
  name: (identifier) @label)

(call_expression
  function: (identifier) @function.call
  (#not-match? @function.call "^[A-Z]"))

; layers and models are UpperCamelCase: `Dense(10)`
(call_expression
  function: (identifier) @constructor
  (#match? @constructor "^[A-Z]"))

; a function or layer as the right side of a pipe: `x |> relu`
(pipe_expression
  right: (identifier) @function.call)

(member_expression
  field: (identifier) @variable.member)

(member_expression
  field: (index) @number)

; ------------------------------------------------------------------ names

(parameter
  name: (identifier) @variable.parameter)

(named_argument
  name: (identifier) @variable.parameter)

(closure_parameters
  (identifier) @variable.parameter)

(closure_parameters
  (tuple_pattern
    (identifier) @variable.parameter))

(param_statement
  name: (identifier) @variable)

(state_statement
  name: (identifier) @variable)

(field_statement
  name: (identifier) @variable.member)

(split_statement
  name: (identifier) @variable)

(search_dimension
  name: (identifier) @variable.parameter)

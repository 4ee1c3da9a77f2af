; Scopes, definitions and references for nnl (Neovim's capture names).

[
  (definition)
  (block)
  (closure)
  (scan_expression)
  (data_declaration)
  (train_declaration)
  (phase)
] @local.scope

(definition
  name: (identifier) @local.definition.function)

(parameter
  name: (identifier) @local.definition.parameter)

(let_statement
  (identifier) @local.definition.var)

(let_statement
  (tuple_pattern
    (identifier) @local.definition.var))

(param_statement
  name: (identifier) @local.definition.var)

(state_statement
  name: (identifier) @local.definition.var)

(closure_parameters
  (identifier) @local.definition.parameter)

(closure_parameters
  (tuple_pattern
    (identifier) @local.definition.parameter))

(field_statement
  name: (identifier) @local.definition.field)

(split_statement
  name: (identifier) @local.definition.var)

(identifier) @local.reference

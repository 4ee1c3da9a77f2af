; Indentation for nnl (Neovim's capture names): one level inside every bracket pair.

[
  (block)
  (parameter_list)
  (argument_list)
  (list)
  (shape)
  (tuple_expression)
  (parenthesized_expression)
  (tuple_type)
  (data_declaration)
  (train_declaration)
  (search_declaration)
  (phase)
  (use_list)
] @indent.begin

[
  "}"
  ")"
  "]"
] @indent.end @indent.branch

(comment) @indent.auto

(string) @indent.ignore

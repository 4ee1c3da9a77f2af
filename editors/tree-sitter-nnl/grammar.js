/**
 * @file Tree-sitter grammar for nnl (.nnl files).
 *
 * It follows grammar/nnl.pest (the compiler's grammar) rule for rule and accepts the same
 * language; docs/language.md describes it. Where pest relies on ordered choice or on "no
 * whitespace here", this grammar uses:
 *  - the external scanner (src/scanner.c) for the places that depend on the characters between
 *    two tokens: a call's `(` and a dtype's `[` must be on the same line as what precedes them
 *    (`_call_open`, `_shape_open`) while a setting's `(` may be anywhere after its name
 *    (`_setting_open`), the name of a pack follows `..` directly (`_immediate`), and a number
 *    may not be followed directly by a letter (`number`);
 *  - `reserved` for the words that can never be names;
 *  - precedences so that an expression always continues when it can (`a` then a line `- b` is
 *    `a - b`), as pest's greedy repetition does.
 */

const RESERVED = [
  'fn', 'let', 'param', 'state', 'if', 'else', 'training', 'scan', 'yield', 'where',
  'phase', 'update', 'constrain', 'true', 'false', 'and', 'or', 'not',
];

// Statements are not separated, so after `a` a line `- b` could end the statement or continue
// it: as in pest (greedy), it continues. Each level of the precedence table has a precedence
// above the looser levels, so continuing (shifting the tighter operator) always wins over ending
// the statement, the closure body or the looser operation before it.
const PREC = {
  closure: -1,
  pipe: 1,
  or: 2,
  and: 3,
  compare: 4,
  range: 5,
  add: 6,
  multiply: 7,
  power: 9,
  postfix: 10,
};

const sep1 = (rule, separator = ',') => seq(rule, repeat(seq(separator, rule)));
// `a, b, c` with an optional trailing comma, possibly empty.
const commaList = (rule) => optional(seq(sep1(rule), optional(',')));
const commaList1 = (rule) => seq(sep1(rule), optional(','));

module.exports = grammar({
  name: 'nnl',

  word: ($) => $.identifier,

  extras: ($) => [/[ \t\r\n]/, $.comment],

  externals: ($) => [$._call_open, $._shape_open, $._immediate, $.number, $._setting_open],

  reserved: {
    global: (_) => RESERVED,
  },

  conflicts: ($) => [
    // `split NAME = …` (a split) or `split NAME, …` (a setting named `split`): decided by the
    // token after NAME.
    [$.split_statement, $._setting_name],
  ],

  rules: {
    source_file: ($) => repeat($._item),

    _item: ($) =>
      choice(
        $.use_declaration,
        $.data_declaration,
        $.definition,
        $.train_declaration,
        $.search_declaration,
      ),

    // ------------------------------------------------------------------ tokens

    comment: (_) => token(seq('#', /[^\n]*/)),

    identifier: (_) => /[A-Za-z_][A-Za-z0-9_]*/,

    string: (_) => token(seq('"', repeat(choice(/[^"\\\n]/, /\\[\s\S]/)), '"')),

    boolean: (_) => choice('true', 'false'),

    training: (_) => 'training',

    // ------------------------------------------------------------------ use

    use_declaration: ($) =>
      seq(
        'use',
        choice(
          field('path', $.string),
          seq(field('module', $.identifier), repeat(seq('.', field('module', $.identifier)))),
        ),
        optional(seq('.', field('names', choice($.wildcard, $.use_list)))),
      ),

    wildcard: (_) => '*',

    use_list: ($) => seq('{', commaList1($.identifier), '}'),

    // ------------------------------------------------------------------ definitions

    definition: ($) =>
      seq(
        field('kind', choice('model', 'layer', 'fn', 'optimizer', 'schedule', 'constraint')),
        field('name', $.identifier),
        field('parameters', $.parameter_list),
        optional(field('inputs', $.parameter_list)),
        optional(field('return_type', $.return_type)),
        repeat($.where_clause),
        field('body', $.block),
      ),

    parameter_list: ($) => seq('(', commaList($.parameter), ')'),

    parameter: ($) =>
      seq(
        field('name', $.identifier),
        optional(seq(':', field('type', $._type))),
        optional(seq('=', field('default', $._expression))),
      ),

    return_type: ($) => seq('->', $._type),

    where_clause: ($) => seq('where', sep1($.where_constraint)),

    where_constraint: ($) =>
      seq(field('condition', $._expression), optional(seq(':', field('message', $.string)))),

    // ------------------------------------------------------------------ types

    _type: ($) => choice($.tuple_type, $.tensor_type, $.named_type),

    tuple_type: ($) => seq('(', commaList1($._type), ')'),

    // The shape of a tensor type starts on the dtype's line (`_shape_open` is that `[`).
    tensor_type: ($) =>
      seq(
        field('dtype', $.dtype),
        optional(field('shape', alias($._attached_shape, $.shape))),
      ),

    dtype: (_) => choice('f32', 'f64', 'i32', 'bool'),

    named_type: ($) => $.identifier,

    _attached_shape: ($) => seq(alias($._shape_open, '['), commaList($._list_item), ']'),

    shape: ($) => seq('[', commaList($._list_item), ']'),

    _list_item: ($) => choice($.pack, $._expression),

    pack: ($) => seq('..', $._immediate, field('name', $.identifier)),

    // ------------------------------------------------------------------ blocks and statements

    block: ($) => seq('{', repeat(seq($._statement, optional(';'))), '}'),

    _statement: ($) =>
      choice(
        $.let_statement,
        $.param_statement,
        $.state_statement,
        $.yield_statement,
        $.assignment,
        $.expression_statement,
      ),

    let_statement: ($) => seq('let', sep1($._pattern), '=', field('value', $._expression)),

    _pattern: ($) => choice($.identifier, $.tuple_pattern),

    tuple_pattern: ($) => seq('(', commaList1($._pattern), ')'),

    param_statement: ($) =>
      seq(
        'param',
        sep1(field('name', $.identifier)),
        ':',
        field('type', choice($.shape, $._type)),
        optional(seq('=', field('value', $._expression))),
      ),

    state_statement: ($) =>
      seq(
        'state',
        sep1(field('name', $.identifier)),
        optional(seq(':', field('type', choice($.shape, $._type)))),
        optional(seq('=', field('value', $._expression))),
      ),

    yield_statement: ($) => seq('yield', sep1($._expression)),

    assignment: ($) => seq(field('left', $.identifier), '=', field('right', $._expression)),

    expression_statement: ($) => $._expression,

    // ------------------------------------------------------------------ expressions

    // One level per line of the precedence table (docs/language.md 6.1), loosest first, as in
    // the pest grammar; each binary level is left-recursive, comparison and range take one
    // operator at most.
    _expression: ($) => choice($.pipe_expression, $._or_level),

    pipe_expression: ($) =>
      prec(
        PREC.pipe,
        seq(field('left', $._expression), field('operator', '|>'), field('right', $._or_level)),
      ),

    _or_level: ($) => choice(alias($._or_expression, $.binary_expression), $._and_level),
    _or_expression: ($) =>
      prec(
        PREC.or,
        seq(field('left', $._or_level), field('operator', 'or'), field('right', $._and_level)),
      ),

    _and_level: ($) => choice(alias($._and_expression, $.binary_expression), $._cmp_level),
    _and_expression: ($) =>
      prec(
        PREC.and,
        seq(field('left', $._and_level), field('operator', 'and'), field('right', $._cmp_level)),
      ),

    _cmp_level: ($) => choice(alias($._cmp_expression, $.binary_expression), $._range_level),
    _cmp_expression: ($) =>
      prec(
        PREC.compare,
        seq(
          field('left', $._range_level),
          field('operator', choice('==', '!=', '<=', '>=', '<', '>')),
          field('right', $._range_level),
        ),
      ),

    _range_level: ($) => choice($.range_expression, $._add_level),
    range_expression: ($) =>
      prec(
        PREC.range,
        seq(field('start', $._add_level), field('operator', '..'), field('end', $._add_level)),
      ),

    _add_level: ($) => choice(alias($._add_expression, $.binary_expression), $._mul_level),
    _add_expression: ($) =>
      prec(
        PREC.add,
        seq(
          field('left', $._add_level),
          field('operator', choice('+', '-')),
          field('right', $._mul_level),
        ),
      ),

    _mul_level: ($) => choice(alias($._mul_expression, $.binary_expression), $._unary_level),
    _mul_expression: ($) =>
      prec(
        PREC.multiply,
        seq(
          field('left', $._mul_level),
          field('operator', choice('*', '//', '/', '%', '@')),
          field('right', $._unary_level),
        ),
      ),

    _unary_level: ($) => choice($.unary_expression, $._power_level),
    unary_expression: ($) =>
      seq(field('operator', choice('-', 'not')), field('operand', $._unary_level)),

    _power_level: ($) => choice(alias($._power_expression, $.binary_expression), $._postfix),
    _power_expression: ($) =>
      prec(
        PREC.power,
        seq(field('left', $._postfix), field('operator', '^'), field('right', $._unary_level)),
      ),

    _postfix: ($) => choice($.call_expression, $.member_expression, $._primary),

    // The argument list starts on the callee's line (`_call_open` is that `(`).
    call_expression: ($) =>
      prec(
        PREC.postfix,
        seq(
          field('function', $._postfix),
          field('arguments', alias($._call_arguments, $.argument_list)),
        ),
      ),

    _call_arguments: ($) => seq(alias($._call_open, '('), commaList($._argument), ')'),

    argument_list: ($) => seq('(', commaList($._argument), ')'),

    _argument: ($) => choice($.named_argument, $._expression),

    named_argument: ($) =>
      seq(field('name', $.identifier), ':', field('value', $._expression)),

    // `t.0`, `val.loss`: no space before the dot.
    member_expression: ($) =>
      prec(
        PREC.postfix,
        seq(
          field('object', $._postfix),
          token.immediate('.'),
          field('field', choice($.identifier, alias(/[0-9]+/, $.index))),
        ),
      ),

    _primary: ($) =>
      choice(
        $.number,
        $.string,
        $.boolean,
        $.training,
        $.if_expression,
        $.scan_expression,
        $.closure,
        $.parenthesized_expression,
        $.tuple_expression,
        $.list,
        $.block,
        $.identifier,
      ),

    parenthesized_expression: ($) => seq('(', $._expression, ')'),

    tuple_expression: ($) =>
      seq('(', $._expression, ',', optional(commaList1($._expression)), ')'),

    list: ($) => seq('[', commaList($._list_item), ']'),

    closure: ($) =>
      prec(
        PREC.closure,
        seq(
          '|',
          optional(field('parameters', $.closure_parameters)),
          '|',
          field('body', $._expression),
        ),
      ),

    closure_parameters: ($) => sep1($._pattern),

    if_expression: ($) =>
      seq(
        'if',
        field('condition', $._expression),
        field('consequence', $.block),
        optional(seq('else', field('alternative', choice($.if_expression, $.block)))),
      ),

    scan_expression: ($) =>
      seq(
        'scan',
        field('arguments', $.argument_list),
        '|',
        field('parameters', $.closure_parameters),
        '|',
        field('body', $.block),
      ),

    // ------------------------------------------------------------------ data

    data_declaration: ($) =>
      seq(
        'data',
        field('name', $.identifier),
        '{',
        repeat(seq(choice($.split_statement, $.field_statement, $.setting), optional(';'))),
        '}',
      ),

    // a field, a source (`train = idx(…)`) and a setting share the leading name, which may be
    // the word `split` too (`split` is a keyword only at the start of a split).
    _setting_name: ($) => choice($.identifier, alias('split', $.identifier)),

    field_statement: ($) =>
      seq(
        field('name', $._setting_name),
        ':',
        field('type', $._type),
        '=',
        field('value', $._expression),
      ),

    split_statement: ($) =>
      seq(
        'split',
        field('name', $.identifier),
        '=',
        field('fraction', $._expression),
        'of',
        field('parent', $.identifier),
        repeat(seq(',', field('option', $._expression))),
      ),

    // `loss = e`, `batch 64`, `metrics accuracy, mae`, `early_stop(monitor: val.loss)`
    setting: ($) =>
      seq(
        field('name', $._setting_name),
        choice(
          seq('=', field('value', $._expression)),
          field('arguments', alias($._setting_arguments, $.argument_list)),
          sep1(field('value', $._expression)),
        ),
      ),

    // pest skips whitespace and comments between a setting's name and its argument list, so a
    // `(` after the name is an argument list even on the next line (`_setting_open`).
    _setting_arguments: ($) => seq(alias($._setting_open, '('), commaList($._argument), ')'),

    // ------------------------------------------------------------------ train

    train_declaration: ($) =>
      seq(
        'train',
        sep1(field('model', $.identifier)),
        'on',
        field('data', $.identifier),
        '{',
        repeat(
          seq(
            choice($.let_statement, $.phase, $.update_statement, $.constrain_statement, $.setting),
            optional(';'),
          ),
        ),
        '}',
      ),

    phase: ($) =>
      seq(
        'phase',
        field('name', $.identifier),
        '{',
        repeat(
          seq(
            choice($.let_statement, $.update_statement, $.constrain_statement, $.setting),
            optional(';'),
          ),
        ),
        '}',
      ),

    update_statement: ($) =>
      seq('update', sep1(field('target', $._or_level)), 'with', field('rule', $._expression)),

    constrain_statement: ($) =>
      seq('constrain', sep1(field('target', $._or_level)), 'with', field('rule', $._expression)),

    // ------------------------------------------------------------------ search

    search_declaration: ($) =>
      seq(
        'search',
        field('strategy', $._expression),
        'over',
        sep1(field('model', $.identifier)),
        'on',
        field('data', $.identifier),
        '{',
        repeat(seq($.search_dimension, optional(';'))),
        '}',
        field('goal', $.search_goal),
      ),

    search_dimension: ($) =>
      seq(field('name', $.identifier), 'in', field('space', $._expression)),

    search_goal: ($) => seq(choice('maximize', 'minimize'), field('metric', $._expression)),
  },
});

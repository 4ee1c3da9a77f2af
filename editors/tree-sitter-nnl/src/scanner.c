// External scanner for tree-sitter-nnl: the tokens that depend on the characters between two
// tokens, which grammar.js cannot see (the pest grammar writes them as atomic rules).
//
//  _call_open   `(` on the same line as the callee: only spaces and tabs before it
//  _shape_open  `[` on the same line as the dtype: only spaces and tabs before it
//  _immediate   nothing (zero width), valid only when a letter or `_` follows directly (`..S`)
//  _setting_open `(` after a setting's name, after any whitespace and comments (pest skips them
//               there: `early_stop` and `(monitor: …)` on the next line is still a call); a
//               setting's values never start with `(`
//  number       digits ("." digits)? (("e" | "E") ("+" | "-")? digits)?, not followed by a
//               letter, digit or `_` (`2x` and `1e` are errors, as in the compiler)

#include "tree_sitter/parser.h"

#include <stdbool.h>
#include <stdint.h>

enum TokenType {
  CALL_OPEN,
  SHAPE_OPEN,
  IMMEDIATE,
  NUMBER,
  SETTING_OPEN,
};

static bool is_digit(int32_t c) { return c >= '0' && c <= '9'; }

static bool is_ident_start(int32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(int32_t c) { return is_ident_start(c) || is_digit(c); }

static void skip(TSLexer *lexer) { lexer->advance(lexer, true); }
static void advance(TSLexer *lexer) { lexer->advance(lexer, false); }

static bool scan_digits(TSLexer *lexer) {
  if (!is_digit(lexer->lookahead)) return false;
  while (is_digit(lexer->lookahead)) advance(lexer);
  return true;
}

static bool scan_number(TSLexer *lexer) {
  if (!scan_digits(lexer)) return false;
  lexer->mark_end(lexer);
  if (lexer->lookahead == '.') {
    advance(lexer);
    if (!scan_digits(lexer)) {
      // `1.x` or `1..5`: the number is `1`, and a `.` follows it (not a letter).
      lexer->result_symbol = NUMBER;
      return true;
    }
    lexer->mark_end(lexer);
  }
  if (lexer->lookahead == 'e' || lexer->lookahead == 'E') {
    advance(lexer);
    if (lexer->lookahead == '+' || lexer->lookahead == '-') advance(lexer);
    // `1e`, `1e+`: a letter follows the digits, which the language rejects.
    if (!scan_digits(lexer)) return false;
    lexer->mark_end(lexer);
  }
  if (is_ident_char(lexer->lookahead)) return false;
  lexer->result_symbol = NUMBER;
  return true;
}

void *tree_sitter_nnl_external_scanner_create(void) { return NULL; }
void tree_sitter_nnl_external_scanner_destroy(void *payload) { (void)payload; }
unsigned tree_sitter_nnl_external_scanner_serialize(void *payload, char *buffer) {
  (void)payload;
  (void)buffer;
  return 0;
}
void tree_sitter_nnl_external_scanner_deserialize(void *payload, const char *buffer,
                                                  unsigned length) {
  (void)payload;
  (void)buffer;
  (void)length;
}

bool tree_sitter_nnl_external_scanner_scan(void *payload, TSLexer *lexer,
                                           const bool *valid_symbols) {
  (void)payload;
  // In error recovery every symbol is valid; then only numbers are scanned here.
  bool recovering = valid_symbols[CALL_OPEN] && valid_symbols[SHAPE_OPEN];

  if (valid_symbols[IMMEDIATE] && !recovering) {
    if (is_ident_start(lexer->lookahead)) {
      lexer->mark_end(lexer);
      lexer->result_symbol = IMMEDIATE;
      return true;
    }
    return false;
  }

  if (!recovering && (valid_symbols[CALL_OPEN] || valid_symbols[SHAPE_OPEN])) {
    while (lexer->lookahead == ' ' || lexer->lookahead == '\t') skip(lexer);
    if (lexer->lookahead == '(' && valid_symbols[CALL_OPEN]) {
      advance(lexer);
      lexer->mark_end(lexer);
      lexer->result_symbol = CALL_OPEN;
      return true;
    }
    if (lexer->lookahead == '[' && valid_symbols[SHAPE_OPEN]) {
      advance(lexer);
      lexer->mark_end(lexer);
      lexer->result_symbol = SHAPE_OPEN;
      return true;
    }
  }

  if (valid_symbols[SETTING_OPEN] && !recovering) {
    bool comment = false;
    for (;;) {
      int32_t c = lexer->lookahead;
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        skip(lexer);
      } else if (c == '#') {
        comment = true;
        while (lexer->lookahead != '\n' && !lexer->eof(lexer)) skip(lexer);
      } else {
        break;
      }
    }
    if (lexer->lookahead == '(') {
      advance(lexer);
      lexer->mark_end(lexer);
      lexer->result_symbol = SETTING_OPEN;
      return true;
    }
    // a comment is lexed as a comment (then this runs again after it); a number is scanned below
    if (comment) return false;
  }

  if (valid_symbols[NUMBER]) {
    while (lexer->lookahead == ' ' || lexer->lookahead == '\t' || lexer->lookahead == '\r' ||
           lexer->lookahead == '\n') {
      skip(lexer);
    }
    return scan_number(lexer);
  }
  return false;
}

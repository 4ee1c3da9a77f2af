//! The nnl grammar for tree-sitter: [`LANGUAGE`] for a `tree_sitter::Parser` and the query
//! sources in `queries/` (highlights, locals, indents).
//!
//! ```ignore
//! let mut parser = tree_sitter::Parser::new();
//! parser.set_language(&tree_sitter_nnl::LANGUAGE.into()).unwrap();
//! let tree = parser.parse("fn f(x: f32) -> f32 { x }", None).unwrap();
//! assert!(!tree.root_node().has_error());
//! ```

use tree_sitter_language::LanguageFn;

unsafe extern "C" {
    fn tree_sitter_nnl() -> *const ();
}

/// The tree-sitter [`LanguageFn`] of nnl.
pub const LANGUAGE: LanguageFn = unsafe { LanguageFn::from_raw(tree_sitter_nnl) };

/// The node types (src/node-types.json).
pub const NODE_TYPES: &str = include_str!("../../src/node-types.json");

/// Highlighting: `@keyword`, `@type`, `@number`, … (queries/highlights.scm).
pub const HIGHLIGHTS_QUERY: &str = include_str!("../../queries/highlights.scm");

/// Definitions, references and scopes (queries/locals.scm).
pub const LOCALS_QUERY: &str = include_str!("../../queries/locals.scm");

/// Indentation (queries/indents.scm).
pub const INDENTS_QUERY: &str = include_str!("../../queries/indents.scm");

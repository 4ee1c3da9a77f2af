//! Lowering: a checked program becomes graphs of primitives.

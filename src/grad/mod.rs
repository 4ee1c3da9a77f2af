//! Reverse-mode differentiation: one VJP rule per primitive, each emitting only primitives.

//! Optimization passes over the graph IR.

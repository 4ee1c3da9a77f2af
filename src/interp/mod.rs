//! The reference interpreter: executes any graph on ndarray, in f32 or f64, deterministically for
//! a given random key. It is the oracle every faster backend is tested against.

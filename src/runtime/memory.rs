//! Whether a run fits in memory, decided before its first allocation of parameters: the
//! allocator aborts the process when it cannot give memory, so a model too large for the machine
//! must be refused while that is still a message.
//!
//! The estimate counts what a training step holds at once: the parameters, layer state and
//! optimizer state (the outputs of the `init` graph), their new values (a step's outputs), and
//! the values of every node of the largest phase's forward graph (reverse mode keeps the
//! activations for the backward pass; fusion keeps fewer, so this errs on the safe side only
//! for the activations). Sizes are added in `u128`, so no shape can wrap them. A training run
//! loads its data set first (every reader bounds what it allocates by the file's real size), so
//! the memory the data set holds is already taken out of what the machine has left.
//! What the machine has is the available memory (`MemAvailable`) and, under an address-space
//! limit (`ulimit -v`), what is left of it.

use crate::ir::{DType, Graph, Type};
use crate::lower::Lowered;

/// What a run needs, in bytes, and the largest persistent tensor (for the message).
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Parameters, layer state and optimizer state.
    pub persistent: u128,
    /// A step's new values and the activations of its forward pass.
    pub working: u128,
    pub largest: Option<(String, u128)>,
}

impl Estimate {
    pub fn total(&self) -> u128 {
        self.persistent + self.working
    }
}

fn dtype_bytes(d: DType) -> u128 {
    match d {
        DType::F64 => 8,
        DType::F32 | DType::I32 => 4,
        DType::Bool => 1,
    }
}

fn tensor_bytes(t: &crate::ir::TensorType) -> u128 {
    t.shape
        .iter()
        .fold(dtype_bytes(t.dtype), |n, &d| n.saturating_mul(d as u128))
}

fn type_bytes(t: &Type) -> u128 {
    match t {
        Type::Tensor(t) => tensor_bytes(t),
        Type::Tuple(ts) => ts.iter().map(tensor_bytes).fold(0, u128::saturating_add),
    }
}

/// The bytes of every node's value.
fn graph_bytes(g: &Graph) -> u128 {
    g.nodes
        .iter()
        .map(|n| type_bytes(&n.ty))
        .fold(0, u128::saturating_add)
}

/// The memory a training run of `lowered` needs.
pub fn estimate(lowered: &Lowered) -> Estimate {
    let mut persistent = 0u128;
    let mut largest: Option<(String, u128)> = None;
    for out in &lowered.init.outputs {
        let bytes = type_bytes(&lowered.init.node(out.value).ty);
        persistent = persistent.saturating_add(bytes);
        if largest.as_ref().is_none_or(|(_, b)| bytes > *b) {
            largest = Some((out.name.clone(), bytes));
        }
    }
    let activations = lowered
        .phases
        .iter()
        .map(|p| graph_bytes(&p.forward))
        .chain([graph_bytes(&lowered.eval)])
        .max()
        .unwrap_or(0);
    Estimate {
        persistent,
        working: persistent.saturating_add(activations),
        largest,
    }
}

/// The bytes this process can still get, when the system says (see
/// [`crate::fs::available_memory`]).
pub fn available() -> Option<u128> {
    crate::fs::available_memory()
}

/// `1.5 GiB`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Refuses a run whose estimate exceeds what the machine has.
pub fn check_fits(e: &Estimate, available: Option<u128>) -> Result<(), String> {
    let Some(available) = available else {
        return Ok(());
    };
    if e.total() <= available {
        return Ok(());
    }
    let largest = match &e.largest {
        Some((name, bytes)) => format!(", the largest `{name}` with {}", human(*bytes)),
        None => String::new(),
    };
    Err(format!(
        "this run needs about {} of memory — {} for parameters, layer and optimizer state{largest}, and {} more during a step — but only {} is available: make the model or the batch smaller",
        human(e.total()),
        human(e.persistent),
        human(e.working),
        human(available)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_larger_than_the_machine_is_refused_with_its_sizes() {
        let e = Estimate {
            persistent: 16 << 40,
            working: 32 << 40,
            largest: Some(("Mlp.dense_1.w".into(), 16 << 40)),
        };
        let err = check_fits(&e, Some(8 << 30)).unwrap_err();
        assert!(
            err.contains("48.0 TiB") && err.contains("Mlp.dense_1.w"),
            "{err}"
        );
        assert!(err.contains("8.0 GiB"), "{err}");
        assert!(check_fits(&e, None).is_ok());
        assert!(check_fits(&e, Some(64 << 40)).is_ok());
    }
}

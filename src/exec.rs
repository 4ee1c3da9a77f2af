//! Running lowered programs on the reference interpreter: initial values from a seed, and the
//! loss and gradients of one batch (`nnlc grad`).

use crate::interp::{self, Options, Tensor};
use crate::ir::{Graph, Role};
use crate::lower::{Lowered, Phase};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// The random key `[seed, counter]` graphs draw from.
pub fn rng_key(seed: u64, counter: u64) -> Tensor {
    // The key holds 32-bit halves; a seed above 2^31 wraps, which only changes which stream.
    let key = vec![seed as u32 as i32, counter as u32 as i32];
    Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2]), key).expect("two elements"))
}

/// The initial value of every parameter, layer state and optimizer state.
pub fn initial_values(lowered: &Lowered, seed: u64) -> Result<HashMap<String, Tensor>, String> {
    let inputs = HashMap::from([("rng".to_string(), rng_key(seed, 0))]);
    interp::run(&lowered.init, &inputs, &Options::default()).map_err(|e| e.to_string())
}

/// Checks that `values` has every input of `graph` with `role`, with the right dtype and shape.
pub fn check_inputs(
    graph: &Graph,
    role: Role,
    values: &HashMap<String, Tensor>,
    what: &str,
) -> Result<(), String> {
    for (v, name, r) in graph.inputs() {
        if r != role {
            continue;
        }
        let want = graph.ty(v);
        match values.get(name) {
            None => {
                let mut have: Vec<&str> = values.keys().map(String::as_str).collect();
                have.sort_unstable();
                return Err(format!(
                    "{what} has no `{name}` ({want}); it has {}",
                    if have.is_empty() {
                        "nothing".to_string()
                    } else {
                        have.join(", ")
                    }
                ));
            }
            Some(t) if t.ty() != *want => {
                return Err(format!("`{name}` in {what} is {}, expected {want}", t.ty()));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The loss and the gradient of every parameter the phase's forward pass reads, for one batch;
/// named `loss` and like the parameters, in the order of `lowered.params`.
pub fn batch_gradients(
    lowered: &Lowered,
    phase: &Phase,
    batch: &HashMap<String, Tensor>,
    values: &HashMap<String, Tensor>,
    seed: u64,
) -> Result<Vec<(String, Tensor)>, String> {
    let graph = crate::step::gradient_graph(lowered, phase);
    check_inputs(&graph, Role::Data, batch, "the batch")?;
    check_inputs(&graph, Role::Param, values, "the parameters")?;
    let mut inputs: HashMap<String, Tensor> = HashMap::new();
    for (_, name, role) in graph.inputs() {
        let v = match role {
            Role::Data => batch.get(name).cloned(),
            Role::Param | Role::State => values.get(name).cloned(),
            Role::Rng => Some(rng_key(seed, 1)),
            _ => None,
        };
        if let Some(v) = v {
            inputs.insert(name.to_string(), v);
        }
    }
    let opts = Options {
        check_finite: true,
        ..Options::default()
    };
    let mut out = interp::run(&graph, &inputs, &opts).map_err(|e| e.to_string())?;
    let mut result = vec![(
        "loss".to_string(),
        out.remove("loss").ok_or("the graph computed no loss")?,
    )];
    for (name, _) in &lowered.params {
        if let Some(g) = out.remove(&format!("{}{name}", crate::step::GRAD_PREFIX)) {
            result.push((name.clone(), g));
        }
    }
    Ok(result)
}

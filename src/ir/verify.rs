//! The verifier: a graph is well formed when every operand is defined before its use, every
//! node's stored type is what its shape rule gives, inputs are uniquely named, every output
//! exists, and every scan body is itself well formed.

use super::{Graph, Op, Type, infer};
use std::collections::HashSet;

pub fn verify(graph: &Graph) -> Result<(), String> {
    let mut names = HashSet::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let at = || format!("in graph `{}`, %{i} = {}", graph.name, node.op.name());
        let mut types: Vec<&Type> = Vec::new();
        for a in &node.args {
            if a.index() >= i {
                return Err(format!("{}: operand {a} is not defined before use", at()));
            }
            types.push(&graph.nodes[a.index()].ty);
        }
        let ty = infer(&node.op, &types).map_err(|e| format!("{}: {e}", at()))?;
        if ty != node.ty {
            return Err(format!(
                "{}: recorded type {:?} but the shape rule gives {:?}",
                at(),
                node.ty,
                ty
            ));
        }
        if let Op::Input { name, .. } = &node.op
            && !names.insert(name.as_str())
        {
            return Err(format!("{}: input `{name}` is defined twice", at()));
        }
        if let Op::Scan { body, .. } = &node.op {
            verify(body).map_err(|e| format!("{}: {e}", at()))?;
        }
        let tuple_ok = matches!(node.op, Op::Get { .. });
        for a in &node.args {
            if matches!(graph.nodes[a.index()].ty, Type::Tuple(_)) && !tuple_ok {
                return Err(format!(
                    "{}: a tuple can only be taken apart by `get`",
                    at()
                ));
            }
        }
    }
    let mut outs = HashSet::new();
    for o in &graph.outputs {
        let (name, v) = (&o.name, o.value);
        if v.index() >= graph.nodes.len() {
            return Err(format!("output `{name}` refers to undefined {v}"));
        }
        if matches!(graph.nodes[v.index()].ty, Type::Tuple(_)) {
            return Err(format!("output `{name}` is a tuple"));
        }
        if !outs.insert(name.as_str()) {
            return Err(format!("output `{name}` is defined twice"));
        }
    }
    Ok(())
}

/// A graph the verifier accepted. Backends keep one for each prepared graph, so that a graph is
/// verified once, when it is prepared, and never again per run.
#[derive(Debug, Clone)]
pub struct Verified(Graph);

impl Verified {
    pub fn new(graph: Graph) -> Result<Verified, String> {
        verify(&graph)?;
        Ok(Verified(graph))
    }
}

impl std::ops::Deref for Verified {
    type Target = Graph;

    fn deref(&self) -> &Graph {
        &self.0
    }
}

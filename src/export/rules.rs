//! The ONNX form of every primitive, one exhaustive match: the operator it becomes, no node at
//! all, or an explicit refusal. The emitter takes its operator names from here; the tests export
//! every primitive's sample graph and find the operator named here in the result, or the
//! refusal's reason in the error.

use crate::ir::Prim;

/// How a primitive is written in ONNX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// This ONNX operator computes it (with the `Cast`, `Reshape` or `Expand` nodes around it
    /// that the IR's dtypes and shapes need, and none where its operand already is the result:
    /// a reshape of a splat, a slice of a broadcast axis).
    Operator(&'static str),
    /// No node: a graph input or initializer, a part of a scan's results, or the operand's own
    /// value (ONNX operators broadcast by themselves; an exported model runs in one process,
    /// where a sum over shards is the identity).
    Value,
    /// No ONNX form: exporting a model that needs it fails, giving this reason.
    Unsupported(&'static str),
}

pub fn rule(prim: Prim) -> Rule {
    use Rule::{Operator, Unsupported, Value};
    match prim {
        Prim::Input | Prim::Const | Prim::Get => Value,
        Prim::Iota => Operator("Range"),
        Prim::RandUniform | Prim::RandNormal => Unsupported(
            "it draws random numbers in evaluation mode, and nnl's counter-based generator has no ONNX equivalent",
        ),
        Prim::Neg => Operator("Neg"),
        Prim::Exp => Operator("Exp"),
        Prim::Log => Operator("Log"),
        Prim::Sqrt => Operator("Sqrt"),
        Prim::Sin => Operator("Sin"),
        Prim::Cos => Operator("Cos"),
        Prim::Erf => Operator("Erf"),
        Prim::Tanh => Operator("Tanh"),
        Prim::Sigmoid => Operator("Sigmoid"),
        Prim::Not => Operator("Not"),
        Prim::Cast => Operator("Cast"),
        Prim::Detach | Prim::AllSum | Prim::Broadcast => Value,
        Prim::Add => Operator("Add"),
        Prim::Sub => Operator("Sub"),
        Prim::Mul => Operator("Mul"),
        // On integers, after subtracting the floor remainder (`Mod`): ONNX rounds toward zero.
        Prim::Div => Operator("Div"),
        Prim::Max => Operator("Max"),
        Prim::Min => Operator("Min"),
        Prim::Eq => Operator("Equal"),
        // `Not` of `Equal`.
        Prim::Ne => Operator("Not"),
        Prim::Lt => Operator("Less"),
        Prim::Le => Operator("LessOrEqual"),
        Prim::Gt => Operator("Greater"),
        Prim::Ge => Operator("GreaterOrEqual"),
        Prim::And => Operator("And"),
        Prim::Or => Operator("Or"),
        Prim::Select => Operator("Where"),
        Prim::Sum => Operator("ReduceSum"),
        Prim::ReduceMax => Operator("ReduceMax"),
        Prim::Argmax => Operator("ArgMax"),
        Prim::Reshape => Operator("Reshape"),
        Prim::Permute => Operator("Transpose"),
        Prim::Slice => Operator("Slice"),
        Prim::Pad => Operator("Pad"),
        Prim::Concat => Operator("Concat"),
        Prim::MatMul => Operator("MatMul"),
        // A convolution with a one-hot kernel per (channel, ki, kj) row.
        Prim::Unfold => Operator("Conv"),
        // The transposed convolution with `unfold`'s kernel.
        Prim::Fold => Operator("ConvTranspose"),
        Prim::Gather => Operator("Gather"),
        Prim::ScatterAdd => Operator("ScatterND"),
        Prim::Scan => Operator("Scan"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Rule, rule};
    use crate::export::emit::{Builder, Tv, Value};
    use crate::export::{proto, sym};
    use crate::ir::{DType, Graph, Prim, Role, samples};
    use std::collections::BTreeMap;

    /// Exports a graph whose inputs are all ONNX graph inputs; the ONNX operators it used.
    fn export(g: &Graph) -> Result<BTreeMap<String, usize>, String> {
        let sym = sym::symbolic(g, g)?;
        let mut b = Builder::new(&g.name);
        let mut bind =
            |b: &mut Builder, name: &str, _: Role, t: &sym::SymTensor| -> Result<Value, String> {
                let elem = proto::elem_type(t.dtype);
                b.graph_mut()
                    .input
                    .push(proto::value_info(name, elem, Some(&t.shape)));
                Ok(Value::Tensor(Tv {
                    name: name.to_string(),
                    dtype: t.dtype,
                    shape: t.shape.clone(),
                }))
            };
        let values = b.graph(g, &sym, &mut bind)?;
        for out in &g.outputs {
            if values[out.value.index()].is_none() {
                return Err(format!("output `{}` was not exported", out.name));
            }
        }
        Ok(b.op_counts)
    }

    /// Every primitive has a rule, and its sample exports by it: the operator the rule names is
    /// in the exported graph, or the export fails naming the primitive and the rule's reason.
    #[test]
    fn every_primitive_exports_by_its_rule() {
        for &prim in Prim::ALL {
            let name = prim.info().name;
            let g = samples::sample(prim, DType::F32);
            let exported = export(&g);
            match rule(prim) {
                Rule::Operator(op) => {
                    let ops = exported.unwrap_or_else(|e| panic!("`{name}` does not export: {e}"));
                    assert!(
                        ops.contains_key(op),
                        "`{name}` exports as {ops:?}, without the `{op}` its rule names"
                    );
                }
                Rule::Value => {
                    exported.unwrap_or_else(|e| panic!("`{name}` does not export: {e}"));
                }
                Rule::Unsupported(why) => {
                    let e = exported.expect_err(name);
                    assert!(
                        e.contains(&format!("`{name}`")) && e.contains(why),
                        "`{name}`'s export error: {e}"
                    );
                }
            }
        }
    }

    /// The integer forms the rules' comments describe: `div` rounds toward −∞ through `Mod`.
    #[test]
    fn integer_division_subtracts_the_remainder() {
        let mut g = Graph::new("int div");
        let ty = crate::ir::TensorType::new(DType::I32, vec![2, 3]);
        let a = g.input("a", Role::Data, ty.clone());
        let b = g.input("b", Role::Data, ty);
        let q = g.add(crate::ir::Op::Div, vec![a, b], crate::ir::Loc::default());
        g.add_output("y", q, crate::ir::OutputRole::Value);
        let ops = export(&g).expect("exports");
        assert_eq!((ops.get("Mod"), ops.get("Div")), (Some(&1), Some(&1)));
    }
}

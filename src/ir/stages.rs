//! A data-parallel step cut at its sums over shards (`all_sum`) into stages, each an ordinary
//! graph that a backend compiles as any other. The runtime runs stage 0 on every shard, adds the
//! shards' values of each sum that stage 1 reads (in shard order, so that the result does not
//! depend on which process computed which shard), runs stage 1 on every shard, and so on.
//!
//! A node's stage is the number of sums on its longest path from the inputs: a sum's value is
//! known only once every shard has computed its operand. Inputs and constants are repeated in
//! every stage that reads them; any other value an earlier stage computed is passed on as an
//! output of that stage (`carry.<node>`) and an input of the later one.

use super::{Class, Graph, Loc, Node, Op, OutputRole, Role, TensorType, ValueId};
use std::collections::HashMap;

/// One sum over shards that a stage reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Sum {
    /// The output of the previous stage that each shard computes: its part of the sum.
    pub part: String,
    /// The input of this stage (and of later ones that read it) that receives the sum.
    pub total: String,
    pub ty: TensorType,
}

/// A graph to run on every shard once the sums it starts from are known.
#[derive(Debug, Clone)]
pub struct Stage {
    pub graph: Graph,
    /// The sums to add up before this stage runs (none for the first).
    pub sums: Vec<Sum>,
}

/// The stages of `g`: `g` itself when it has no `all_sum`. Outputs of `g` are outputs of the
/// stage that computes them. Refused when an `all_sum` lies in a scan body, whose steps run in
/// one call of a compiled loop that cannot stop halfway for the other shards.
pub fn cut(g: &Graph) -> Result<Vec<Stage>, String> {
    if let Some(name) = scan_with_sum(g) {
        return Err(format!(
            "a sum over shards (`all_sum`, as in `BatchNorm(sync: true)`) inside the `scan` {name} cannot be exchanged step by step; keep synchronized batch norm out of `scan` bodies"
        ));
    }
    if !g.nodes.iter().any(|n| n.op == Op::AllSum) {
        return Ok(vec![Stage {
            graph: g.clone(),
            sums: Vec::new(),
        }]);
    }
    // Leaves (inputs, constants, indices) are repeated in every stage that reads them.
    let free = |n: &Node| n.op.primitive().class == Class::Leaf;
    let mut level = vec![0usize; g.nodes.len()];
    let mut ordinal: HashMap<usize, usize> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let deepest = n.args.iter().map(|a| level[a.index()]).max().unwrap_or(0);
        level[i] = match n.op {
            Op::AllSum => {
                let k = ordinal.len();
                ordinal.insert(i, k);
                deepest + 1
            }
            _ => deepest,
        };
    }
    let count = level.iter().max().copied().unwrap_or(0) + 1;
    let total_name = |i: usize| format!("all_sum.{}", ordinal[&i]);
    let part_name = |i: usize| format!("part.{}", ordinal[&i]);
    let carry_name = |i: usize| format!("carry.{i}");

    let mut graphs: Vec<Graph> = (0..count)
        .map(|k| Graph::new(format!("{}.stage{k}", g.name)))
        .collect();
    // Per stage, the new value of each original node it has.
    let mut maps: Vec<HashMap<usize, ValueId>> = vec![HashMap::new(); count];
    // Values an earlier stage must output for a later one.
    let mut carries: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut sums: Vec<Vec<Sum>> = vec![Vec::new(); count];

    // The value of original node `a` in stage `k`, brought in if another stage computes it.
    let bring = |k: usize,
                 a: usize,
                 graphs: &mut Vec<Graph>,
                 maps: &mut Vec<HashMap<usize, ValueId>>,
                 carries: &mut Vec<Vec<usize>>|
     -> ValueId {
        if let Some(&v) = maps[k].get(&a) {
            return v;
        }
        let node = &g.nodes[a];
        let v = if free(node) {
            graphs[k].add(node.op.clone(), Vec::new(), node.loc.clone())
        } else if node.op == Op::AllSum {
            graphs[k].input(total_name(a), Role::Arg, g.ty(ValueId(a as u32)).clone())
        } else {
            if !carries[level[a]].contains(&a) {
                carries[level[a]].push(a);
            }
            graphs[k].input(carry_name(a), Role::Arg, g.ty(ValueId(a as u32)).clone())
        };
        maps[k].insert(a, v);
        v
    };

    for (i, n) in g.nodes.iter().enumerate() {
        if free(n) {
            continue;
        }
        let k = level[i];
        if n.op == Op::AllSum {
            let a = n.args[0].index();
            let part = bring(k - 1, a, &mut graphs, &mut maps, &mut carries);
            graphs[k - 1].add_output(part_name(i), part, OutputRole::Value);
            sums[k].push(Sum {
                part: part_name(i),
                total: total_name(i),
                ty: g.ty(ValueId(i as u32)).clone(),
            });
            continue;
        }
        let args: Vec<ValueId> = n
            .args
            .iter()
            .map(|a| bring(k, a.index(), &mut graphs, &mut maps, &mut carries))
            .collect();
        let v = graphs[k].add(n.op.clone(), args, n.loc.clone());
        maps[k].insert(i, v);
    }
    for o in &g.outputs {
        let a = o.value.index();
        let k = match g.nodes[a].op {
            _ if free(&g.nodes[a]) => 0,
            _ => level[a],
        };
        let v = bring(k, a, &mut graphs, &mut maps, &mut carries);
        graphs[k].add_output(o.name.clone(), v, o.role);
    }
    for (k, list) in carries.iter().enumerate() {
        for &a in list {
            let v = maps[k][&a];
            graphs[k].add_output(carry_name(a), v, OutputRole::Value);
        }
    }
    let stages: Vec<Stage> = graphs
        .into_iter()
        .zip(sums)
        .map(|(graph, sums)| Stage { graph, sums })
        .collect();
    for s in &stages {
        super::verify(&s.graph)?;
    }
    Ok(stages)
}

/// The location of a scan whose body (or a body within it) has an `all_sum`.
fn scan_with_sum(g: &Graph) -> Option<String> {
    fn has_sum(g: &Graph) -> bool {
        g.nodes.iter().any(|n| match &n.op {
            Op::AllSum => true,
            Op::Scan { body, .. } => has_sum(body),
            _ => false,
        })
    }
    g.nodes.iter().find_map(|n| match &n.op {
        Op::Scan { body, .. } if has_sum(body) => Some(describe(&n.loc)),
        _ => None,
    })
}

fn describe(loc: &Loc) -> String {
    match loc.is_known() {
        true => format!("of `{}` ({}:{}:{})", loc.scope, loc.file, loc.line, loc.col),
        false => "of a recurrent layer".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;
    use crate::tensor::Tensor;

    fn vector(values: &[f32]) -> Tensor {
        let ty = TensorType::new(DType::F32, vec![values.len()]);
        Tensor::from_f64(&ty, values.iter().map(|&v| f64::from(v)).collect())
    }

    /// y = x − Σ_shards x / n: the mean over shards subtracted, with a second sum downstream.
    fn centered() -> Graph {
        let mut g = Graph::new("t");
        let ty = TensorType::new(DType::F32, vec![3]);
        let x = g.input("x", Role::Data, ty.clone());
        let s = g.add(Op::AllSum, vec![x], Loc::default());
        let n = g.add(
            Op::Const {
                value: 2.0,
                ty: ty.clone(),
            },
            Vec::new(),
            Loc::default(),
        );
        let mean = g.add(Op::Div, vec![s, n], Loc::default());
        let y = g.add(Op::Sub, vec![x, mean], Loc::default());
        let sq = g.add(Op::Mul, vec![y, y], Loc::default());
        let var = g.add(Op::AllSum, vec![sq], Loc::default());
        g.add_output("y", y, OutputRole::Value);
        g.add_output("var", var, OutputRole::Value);
        g
    }

    #[test]
    fn a_graph_without_sums_is_one_stage_unchanged() {
        let mut g = Graph::new("t");
        let x = g.input("x", Role::Data, TensorType::new(DType::F32, vec![2]));
        let y = g.add(Op::Neg, vec![x], Loc::default());
        g.add_output("y", y, OutputRole::Value);
        let stages = cut(&g).unwrap();
        assert_eq!(stages.len(), 1);
        assert_eq!(stages[0].graph, g);
    }

    #[test]
    fn each_sum_starts_a_stage_and_the_stages_run_to_the_graphs_values() {
        let g = centered();
        let stages = cut(&g).unwrap();
        assert_eq!(stages.len(), 3);
        assert!(stages[0].sums.is_empty());
        assert_eq!(stages[1].sums[0].total, "all_sum.0");
        assert_eq!(stages[2].sums[0].part, "part.1");
        // Two shards, run stage by stage as the runtime does, against the sums done by hand.
        let shards = [[1f32, 2., 3.], [5., -1., 0.5]];
        let mut maps: Vec<HashMap<String, Tensor>> = shards
            .iter()
            .map(|x| HashMap::from([("x".to_string(), vector(x))]))
            .collect();
        for stage in &stages {
            for sum in &stage.sums {
                let parts: Vec<Vec<f64>> = maps.iter().map(|m| m[&sum.part].to_f64()).collect();
                let total: Vec<f32> = (0..3)
                    .map(|i| parts.iter().map(|p| p[i] as f32).sum())
                    .collect();
                for m in &mut maps {
                    m.insert(sum.total.clone(), vector(&total));
                }
            }
            for m in &mut maps {
                let out = crate::interp::run(&stage.graph, m, &Default::default()).unwrap();
                m.extend(out);
            }
        }
        let mean = [3f32, 0.5, 1.75];
        let mut var = [0f32; 3];
        for (s, x) in shards.iter().enumerate() {
            let y: Vec<f32> = (0..3).map(|i| x[i] - mean[i]).collect();
            assert_eq!(
                maps[s]["y"].to_f64(),
                y.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()
            );
            for i in 0..3 {
                var[i] += y[i] * y[i];
            }
        }
        for m in &maps {
            assert_eq!(
                m["var"].to_f64(),
                var.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_sum_inside_a_scan_is_refused() {
        let ty = TensorType::new(DType::F32, vec![2]);
        let mut body = Graph::new("body");
        let h = body.input("h", Role::Arg, ty.clone());
        let x = body.input("x", Role::Arg, ty.clone());
        let hx = body.add(Op::Add, vec![h, x], Loc::default());
        let s = body.add(Op::AllSum, vec![hx], Loc::default());
        body.add_output("h", s, OutputRole::Value);
        let mut g = Graph::new("t");
        let h0 = g.input("h0", Role::Data, ty);
        let xs = g.input("xs", Role::Data, TensorType::new(DType::F32, vec![4, 2]));
        let scan = g.add(
            Op::Scan {
                body: Box::new(body),
                carries: 1,
                seqs: 1,
                reverse: false,
            },
            vec![h0, xs],
            Loc::default(),
        );
        let y = g.add(Op::Get { index: 0 }, vec![scan], Loc::default());
        g.add_output("y", y, OutputRole::Value);
        let e = cut(&g).unwrap_err();
        assert!(e.contains("scan"), "{e}");
    }
}

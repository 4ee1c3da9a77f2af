//! Primitive patterns that have a readable ONNX operator. A pattern is written as the
//! primitives the standard library lowers to, in a small s-expression language:
//!
//! - `(op a b …)`: a node with op name `op` (as `nnlc ir` prints it) and these operands; the
//!   operands of `add`, `mul`, `max`, `min`, `eq`, `ne`, `and`, `or` match in either order;
//!   `(op@label …)` also names the node, for attribute checks in Rust;
//! - `$x`: any value, the same one at every use; a variable defined in `where` must be that
//!   expression, the first time it is met;
//! - `1.5`: a constant of that value; `#eps`: a constant of any value, bound to the name;
//! - `(~ p)`: `p`, possibly under broadcasts, detaches and reshapes (which only add or drop
//!   unit axes, as `keep: true` reductions do);
//! - `(name a …)` where `name` is another definition (`abs`, `sigmoid`): that definition inlined.

use crate::ir::{Graph, Op, ValueId};
use std::collections::HashMap;
use std::sync::OnceLock;

/// A definition: name, parameters, body, and the variables the body defines.
struct Def {
    name: &'static str,
    params: &'static [&'static str],
    body: &'static str,
    wheres: &'static [(&'static str, &'static str)],
}

/// The patterns, as `std.ops` and `std.nn` lower. A pattern that does not match only costs
/// readability: the primitives are exported as they are.
const DEFS: &[Def] = &[
    Def {
        name: "relu",
        params: &["x"],
        body: "(max $x 0)",
        wheres: &[],
    },
    Def {
        name: "leaky_relu",
        params: &["x"],
        body: "(max $x (mul $x #alpha))",
        wheres: &[],
    },
    Def {
        name: "softmax",
        params: &["x"],
        body: "(div $e (~ (sum@sum $e)))",
        wheres: &[("e", "(exp (sub $x (~ (reduce_max@max $x))))")],
    },
    Def {
        name: "layer_norm",
        params: &["x", "gamma", "beta"],
        body: "(add (mul (div $d (~ (sqrt (add $var #eps)))) (~ $gamma)) (~ $beta))",
        wheres: &[
            ("d", "(sub $x (~ $mu))"),
            ("mu", "(div (~ (sum@sum1 $x)) #n1)"),
            ("var", "(div (~ (sum@sum2 (mul $d $d))) #n2)"),
        ],
    },
    Def {
        name: "gemm",
        params: &["a", "w", "bias"],
        body: "(add (matmul@mm $a $w) (~ $bias))",
        wheres: &[],
    },
    Def {
        name: "matmul_nd",
        params: &["x", "w"],
        body: "(reshape@out (matmul@mm (reshape@flat $x) $w))",
        wheres: &[],
    },
    Def {
        name: "conv",
        params: &["x", "w"],
        body: "(reshape@out (matmul (~ (permute@wt $w)) (unfold@cols $x)))",
        wheres: &[],
    },
    Def {
        name: "conv_bias",
        params: &["x", "w", "bias"],
        body: "(add (conv $x $w) (~ $bias))",
        wheres: &[],
    },
    Def {
        name: "max_pool",
        params: &["x"],
        body: "(reduce_max@pool (reshape@windows $x))",
        wheres: &[],
    },
    Def {
        name: "avg_pool",
        params: &["x"],
        body: "(div (sum@pool (reshape@windows $x)) #n)",
        wheres: &[],
    },
];

#[derive(Debug, Clone)]
enum Pat {
    Var(String),
    Num(f64),
    AnyNum(String),
    Op {
        op: String,
        label: Option<String>,
        args: Vec<Pat>,
    },
    Loose(Box<Pat>),
}

/// A definition with every inner definition inlined, its variables renamed apart.
struct Compiled {
    body: Pat,
    wheres: HashMap<String, Pat>,
}

fn compiled() -> &'static HashMap<&'static str, Compiled> {
    static ALL: OnceLock<HashMap<&'static str, Compiled>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = HashMap::new();
        let mut fresh = 0;
        for def in DEFS {
            let mut wheres = HashMap::new();
            let body = expand(&parse(def.body), &all, &mut wheres, &mut fresh);
            for (name, text) in def.wheres {
                let p = expand(&parse(text), &all, &mut wheres, &mut fresh);
                wheres.insert(name.to_string(), p);
            }
            all.insert(def.name, Compiled { body, wheres });
        }
        all
    })
}

/// Inlines calls of earlier definitions: their parameters become the call's operands, their
/// own variables get fresh names, their `where`s join the caller's.
fn expand(
    p: &Pat,
    defs: &HashMap<&'static str, Compiled>,
    wheres: &mut HashMap<String, Pat>,
    fresh: &mut usize,
) -> Pat {
    match p {
        Pat::Op { op, label, args } => {
            let args: Vec<Pat> = args
                .iter()
                .map(|a| expand(a, defs, wheres, fresh))
                .collect();
            let Some(def) = DEFS.iter().find(|d| d.name == op) else {
                return Pat::Op {
                    op: op.clone(),
                    label: label.clone(),
                    args,
                };
            };
            let compiled = &defs[def.name];
            *fresh += 1;
            let mut subst: HashMap<String, Pat> =
                def.params.iter().map(|p| p.to_string()).zip(args).collect();
            for name in compiled.wheres.keys() {
                subst.insert(name.clone(), Pat::Var(format!("{name}'{fresh}")));
            }
            for (name, w) in &compiled.wheres {
                wheres.insert(format!("{name}'{fresh}"), rename(w, &subst));
            }
            rename(&compiled.body, &subst)
        }
        Pat::Loose(inner) => Pat::Loose(Box::new(expand(inner, defs, wheres, fresh))),
        other => other.clone(),
    }
}

fn rename(p: &Pat, subst: &HashMap<String, Pat>) -> Pat {
    match p {
        Pat::Var(v) => subst.get(v).cloned().unwrap_or_else(|| p.clone()),
        Pat::Op { op, label, args } => Pat::Op {
            op: op.clone(),
            label: label.clone(),
            args: args.iter().map(|a| rename(a, subst)).collect(),
        },
        Pat::Loose(inner) => Pat::Loose(Box::new(rename(inner, subst))),
        other => other.clone(),
    }
}

/// Parses one s-expression of a definition (the table above is static: a mistake is a bug).
fn parse(text: &str) -> Pat {
    let tokens: Vec<String> = text
        .replace('(', " ( ")
        .replace(')', " ) ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut pos = 0;
    let p = parse_at(&tokens, &mut pos);
    assert_eq!(pos, tokens.len(), "trailing tokens in pattern `{text}`");
    p
}

fn parse_at(tokens: &[String], pos: &mut usize) -> Pat {
    let t = &tokens[*pos];
    *pos += 1;
    if t == "(" {
        let head = tokens[*pos].clone();
        *pos += 1;
        let mut args = Vec::new();
        while tokens[*pos] != ")" {
            args.push(parse_at(tokens, pos));
        }
        *pos += 1;
        if head == "~" {
            let [inner] = <[Pat; 1]>::try_from(args).expect("`~` takes one pattern");
            return Pat::Loose(Box::new(inner));
        }
        let (op, label) = match head.split_once('@') {
            Some((op, label)) => (op.to_string(), Some(label.to_string())),
            None => (head, None),
        };
        Pat::Op { op, label, args }
    } else if let Some(v) = t.strip_prefix('$') {
        Pat::Var(v.to_string())
    } else if let Some(v) = t.strip_prefix('#') {
        Pat::AnyNum(v.to_string())
    } else {
        Pat::Num(
            t.parse()
                .unwrap_or_else(|_| panic!("bad pattern token `{t}`")),
        )
    }
}

/// A successful match: what the variables, numbers and labels stand for, and every node the
/// pattern covers (the root included, the variables' values not).
#[derive(Debug, Clone, Default)]
pub struct Match {
    pub vars: HashMap<String, ValueId>,
    pub nums: HashMap<String, f64>,
    pub labels: HashMap<String, ValueId>,
    pub nodes: Vec<ValueId>,
}

impl Match {
    pub fn var(&self, name: &str) -> ValueId {
        self.vars[name]
    }

    pub fn label(&self, name: &str) -> ValueId {
        self.labels[name]
    }
}

/// Matches the definition `name` at `root`.
pub fn find(g: &Graph, name: &str, root: ValueId) -> Option<Match> {
    let def = &compiled()[name];
    let mut m = Matcher {
        g,
        wheres: &def.wheres,
        state: Match::default(),
    };
    m.matches(&def.body, root).then_some(m.state)
}

struct Matcher<'a> {
    g: &'a Graph,
    wheres: &'a HashMap<String, Pat>,
    state: Match,
}

const COMMUTATIVE: &[&str] = &["add", "mul", "max", "min", "eq", "ne", "and", "or"];

impl Matcher<'_> {
    fn matches(&mut self, p: &Pat, v: ValueId) -> bool {
        match p {
            Pat::Var(name) => {
                if let Some(&bound) = self.state.vars.get(name) {
                    return bound == v;
                }
                if let Some(def) = self.wheres.get(name)
                    && !self.matches(def, v)
                {
                    return false;
                }
                self.state.vars.insert(name.clone(), v);
                true
            }
            Pat::Num(c) => self.constant(v).is_some_and(|x| x == *c),
            Pat::AnyNum(name) => match self.constant(v) {
                Some(x) => match self.state.nums.get(name) {
                    Some(&bound) => bound == x,
                    None => {
                        self.state.nums.insert(name.clone(), x);
                        true
                    }
                },
                None => false,
            },
            Pat::Loose(inner) => {
                // The chain of shape-only nodes under `v`; the deepest value is tried first, so
                // a variable binds the value before it was broadcast or reshaped.
                let mut chain = vec![v];
                while let Some(&last) = chain.last() {
                    match self.transparent(last) {
                        Some(arg) => chain.push(arg),
                        None => break,
                    }
                }
                for depth in (0..chain.len()).rev() {
                    let saved = self.state.clone();
                    self.state.nodes.extend(&chain[..depth]);
                    if self.matches(inner, chain[depth]) {
                        return true;
                    }
                    self.state = saved;
                }
                false
            }
            Pat::Op { op, label, args } => {
                let node = self.g.node(v);
                if node.op.name() != op || node.args.len() != args.len() {
                    return false;
                }
                let saved = self.state.clone();
                self.state.nodes.push(v);
                if let Some(l) = label {
                    self.state.labels.insert(l.clone(), v);
                }
                if self.all(args, &node.args) {
                    return true;
                }
                if COMMUTATIVE.contains(&op.as_str()) && args.len() == 2 {
                    self.state = saved.clone();
                    self.state.nodes.push(v);
                    if let Some(l) = label {
                        self.state.labels.insert(l.clone(), v);
                    }
                    if self.all(args, &[node.args[1], node.args[0]]) {
                        return true;
                    }
                }
                self.state = saved;
                false
            }
        }
    }

    /// The operand of a node that only moves values around without changing them: a
    /// broadcast, a detach, or a reshape that only adds or drops unit axes.
    fn transparent(&self, v: ValueId) -> Option<ValueId> {
        let node = self.g.node(v);
        let ok = match &node.op {
            Op::Broadcast { .. } | Op::Detach => true,
            Op::Reshape { shape } => {
                let from = &self.g.ty(node.args[0]).shape;
                let strip =
                    |s: &[usize]| -> Vec<usize> { s.iter().copied().filter(|&d| d != 1).collect() };
                strip(from) == strip(shape)
            }
            _ => false,
        };
        ok.then(|| node.args[0])
    }

    fn all(&mut self, pats: &[Pat], values: &[ValueId]) -> bool {
        pats.iter().zip(values).all(|(p, &v)| self.matches(p, v))
    }

    /// The value of a constant node (a splat), looking through shape-only nodes.
    fn constant(&mut self, v: ValueId) -> Option<f64> {
        let node = self.g.node(v);
        match &node.op {
            Op::Const { value, .. } => {
                self.state.nodes.push(v);
                Some(*value)
            }
            Op::Broadcast { .. } | Op::Reshape { .. } => {
                let c = self.constant(node.args[0])?;
                self.state.nodes.push(v);
                Some(c)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_parses_and_inlines() {
        for def in DEFS {
            assert!(compiled().contains_key(def.name), "{}", def.name);
        }
        // conv_bias inlines conv: its first operand is conv's reshape.
        let conv_bias = &compiled()["conv_bias"];
        assert!(matches!(
            &conv_bias.body,
            Pat::Op { args, .. } if matches!(&args[0], Pat::Op { op, .. } if op == "reshape")
        ));
    }
}

//! The layer tree of a model, recorded while its body is expanded: each instance with its
//! hierarchical name (`Mlp.dense_1`), output shape and parameters — the Keras-style summary.

use super::facts::InstanceNames;
use super::ty::{Shape, Ty, VarKind};
use super::{ArgVal, Checker, Frame};
use crate::resolve::ItemRef;
use crate::source::Span;

pub(crate) struct TraceNode {
    /// The instance's full path (`Mlp.dense_1`); empty for the root, outside every model.
    pub path: String,
    pub layer: String,
    pub instance: Option<u32>,
    /// Instances already expanded under this node (shared instances are expanded once).
    pub instance_ids: Vec<u32>,
    /// Full names and shapes.
    pub params: Vec<(String, Shape)>,
    pub children: Vec<TraceNode>,
    pub output: Option<Ty>,
    pub names: InstanceNames,
    /// The calls inlined since this instance's body began: the prefix of its children's sites.
    pub calls: Vec<Span>,
}

impl TraceNode {
    pub fn new(path: String, layer: String, instance: Option<u32>) -> TraceNode {
        TraceNode {
            path,
            layer,
            instance,
            instance_ids: Vec::new(),
            params: Vec::new(),
            children: Vec::new(),
            output: None,
            names: InstanceNames::default(),
            calls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    /// `Mlp.dense_1`; nested instances appear under their parents, indented by `depth`.
    pub path: String,
    pub layer: String,
    pub depth: usize,
    pub output: String,
    /// Parameters of this instance and everything inside it; None when a size is symbolic.
    pub params: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    pub model: String,
    pub input: String,
    pub output: String,
    pub rows: Vec<InstanceRow>,
    /// Every parameter: hierarchical name and shape, in declaration order.
    pub params: Vec<(String, String)>,
    pub total: Option<i64>,
}

/// A parameter's element count; None when symbolic or beyond 64 bits (the checker reported a
/// tensor that large where it was declared).
fn count(shape: &Shape) -> Option<i64> {
    shape
        .concrete()?
        .iter()
        .try_fold(1i64, |n, &d| n.checked_mul(d))
}

fn node_total(n: &TraceNode) -> Option<i64> {
    let mut total = 0i64;
    for (_, s) in &n.params {
        total = total.checked_add(count(s)?)?;
    }
    for kid in &n.children {
        total = total.checked_add(node_total(kid)?)?;
    }
    Some(total)
}

fn flatten_rows(
    n: &TraceNode,
    depth: usize,
    rows: &mut Vec<InstanceRow>,
    params: &mut Vec<(String, String)>,
) {
    for (p, s) in &n.params {
        params.push((p.clone(), s.to_string()));
    }
    for c in &n.children {
        rows.push(InstanceRow {
            path: c.path.clone(),
            layer: c.layer.clone(),
            depth,
            output: c.output.as_ref().map_or("?".into(), ToString::to_string),
            params: node_total(c),
        });
        flatten_rows(c, depth + 1, rows, params);
    }
}

impl Checker<'_> {
    /// Expands a model with its default attributes on its declared inputs, recording the tree.
    pub(crate) fn summarize(&mut self, r: ItemRef) -> Option<ModelSummary> {
        let def = self.program.def(r)?;
        if self.def_failed(r) {
            return None;
        }
        let mut f = Frame::new(r.module, Some(def.kind));
        // Inputs like `f32[B, code]` refer to attributes: give them their default values.
        for (name, ty) in self.default_attrs(r) {
            f.bind(name, ty, def.name.span, VarKind::Plain);
        }
        let mut inputs = Vec::new();
        let mut input_desc = Vec::new();
        for p in &def.params {
            let t = match &p.ty {
                Some(t) => self.eval_type(&mut f, t, true),
                None => return None,
            };
            if self.keep.summaries {
                input_desc.push(t.to_string());
            }
            f.bind(p.name.name, t.clone(), p.name.span, VarKind::Plain);
            inputs.push(ArgVal {
                name: None,
                ty: t,
                span: p.name.span,
            });
        }
        let inst = self.model_instance(&mut f, r, def.name.span);
        self.trace
            .push(TraceNode::new(String::new(), String::new(), None));
        let out = self.apply_instance(&inst, inputs, def.name.span);
        let root = self.trace.pop()?;
        if !self.keep.summaries {
            return None;
        }
        // The model's own node is the single child of the root.
        let model_node = root.children.into_iter().next()?;
        let mut rows = Vec::new();
        let mut params = Vec::new();
        flatten_rows(&model_node, 0, &mut rows, &mut params);
        Some(ModelSummary {
            model: def.name.name.to_string(),
            input: input_desc.join(", "),
            output: out.to_string(),
            rows,
            params,
            total: node_total(&model_node),
        })
    }
}

/// 101770 → "101,770".
pub fn group(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The Keras-style table.
pub fn render(s: &ModelSummary) -> String {
    let show = |p: Option<i64>| p.map_or("symbolic".to_string(), group);
    let mut lines: Vec<(String, String, String)> = vec![(
        "Layer (type)".into(),
        "Output shape".into(),
        "Params".into(),
    )];
    for r in &s.rows {
        let indent = "  ".repeat(r.depth);
        let name = r.path.rsplit('.').next().unwrap_or(&r.path);
        lines.push((
            format!("{indent}{name} ({})", r.layer),
            r.output.clone(),
            show(r.params),
        ));
    }
    let w0 = lines
        .iter()
        .map(|l| l.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(20);
    let w1 = lines
        .iter()
        .map(|l| l.1.chars().count())
        .max()
        .unwrap_or(0)
        .max(14);
    let w2 = lines
        .iter()
        .map(|l| l.2.chars().count())
        .max()
        .unwrap_or(0)
        .max(8);
    let rule = |c: char| c.to_string().repeat(w0 + w1 + w2 + 4);
    let mut out = format!(
        "Model: {}  (input {} → output {})\n",
        s.model, s.input, s.output
    );
    out.push_str(&rule('━'));
    out.push('\n');
    for (i, (a, b, c)) in lines.iter().enumerate() {
        out.push_str(&format!("{a:<w0$}  {b:<w1$}  {c:>w2$}\n"));
        if i == 0 {
            out.push_str(&rule('─'));
            out.push('\n');
        }
    }
    out.push_str(&rule('━'));
    out.push('\n');
    out.push_str(&format!("Total params: {}\n", show(s.total)));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn snake_case_names_instances() {
        use super::super::facts::snake_case;
        assert_eq!(snake_case("Dense"), "dense");
        assert_eq!(snake_case("Conv2d"), "conv2d");
        assert_eq!(snake_case("SelfAttention"), "self_attention");
        assert_eq!(snake_case("LSTM"), "lstm");
        assert_eq!(super::group(101770), "101,770");
    }
}

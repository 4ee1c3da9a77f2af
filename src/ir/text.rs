//! The textual form of the IR: one line per node, with its type and where it came from.
//!
//! ```text
//! graph eval {
//!   %0: f32[64, 784] = input "x" data
//!   %1: f32[784, 128] = input "Mlp.dense_1.w" param
//!   %2: f32[64, 128] = matmul %0, %1    ; Mlp.dense_1 @ examples/mnist_mlp.nnl:30:8
//!   output "out" prediction = %2
//! }
//! ```
//!
//! Attributes that the result type already states (a reshape's shape, a cast's dtype, a
//! constant's shape) are not repeated. A scan's body follows its line as an indented block
//! `{ … }` with its own `output` lines; the scan's location trails the closing brace:
//!
//! ```text
//!   %4: (f32[8], f32[5, 8]) = scan %2, %3 carries=1 seqs=1 body=step {
//!     %0: f32[8] = input "h" arg
//!     ...
//!     output "h" = %5
//!     output "y" = %6
//!   }                                                       ; Rnn @ examples/rnn.nnl:12:5
//! ```
//!
//! An output line names the output's role after its name (`loss`, `metric mean`, `new param`,
//! `grad`, `prediction`; nothing for a plain value). A location's scope and file are quoted when they are not a single plain word. `parse` reads
//! the form back into the same graph.

mod parse;
#[cfg(test)]
mod tests;

pub use parse::parse;

use super::{Graph, Node, Op, Type, ValueId, Window};
use std::fmt::Write;

pub fn print(graph: &Graph) -> String {
    let mut out = String::new();
    print_graph(graph, 0, &mut out);
    out
}

fn print_graph(graph: &Graph, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let _ = writeln!(out, "{pad}graph {} {{", quote_if_needed(&graph.name));
    for (i, node) in graph.nodes.iter().enumerate() {
        print_node(ValueId(i as u32), node, depth + 1, out);
    }
    print_outputs(graph, &pad, out);
    let _ = writeln!(out, "{pad}}}");
}

/// `output "name" role = %v`; a plain value has no role words.
fn print_outputs(graph: &Graph, pad: &str, out: &mut String) {
    for o in &graph.outputs {
        let mut words = o.role.words();
        if !words.is_empty() {
            words.push(' ');
        }
        let _ = writeln!(out, "{pad}  output {} {words}= {}", quote(&o.name), o.value);
    }
}

fn print_node(v: ValueId, node: &Node, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let mut line = format!("{pad}{v}: {} = {}", type_text(&node.ty), node.op.name());
    let args: Vec<String> = node.args.iter().map(ValueId::to_string).collect();
    if !args.is_empty() {
        let _ = write!(line, " {}", args.join(", "));
    }
    let attrs = attributes(&node.op);
    if !attrs.is_empty() {
        let _ = write!(line, " {attrs}");
    }
    if let Op::Scan { body, .. } = &node.op {
        let _ = writeln!(line, " {{");
        out.push_str(&line);
        for (i, n) in body.nodes.iter().enumerate() {
            print_node(ValueId(i as u32), n, depth + 1, out);
        }
        print_outputs(body, &pad, out);
        line = format!("{pad}}}");
    }
    if node.loc.is_known() {
        let width = 56 + 2 * depth;
        let fill = width.saturating_sub(line.chars().count()).max(1);
        let _ = write!(line, "{:fill$}; ", "");
        if !node.loc.scope.is_empty() {
            let _ = write!(line, "{} ", loc_text(&node.loc.scope));
        }
        let _ = write!(
            line,
            "@ {}:{}:{}",
            loc_text(&node.loc.file),
            node.loc.line,
            node.loc.col
        );
    }
    out.push_str(&line);
    out.push('\n');
}

pub fn type_text(ty: &Type) -> String {
    match ty {
        Type::Tensor(t) => t.to_string(),
        Type::Tuple(parts) => {
            let parts: Vec<String> = parts.iter().map(ToString::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

fn window_attrs(w: &Window) -> String {
    format!(
        "kernel={} stride={} padding={} dilation={}",
        w.kernel, w.stride, w.padding, w.dilation
    )
}

fn list(xs: &[usize]) -> String {
    let xs: Vec<String> = xs.iter().map(usize::to_string).collect();
    format!("[{}]", xs.join(","))
}

fn attributes(op: &Op) -> String {
    match op {
        Op::Input { name, role, .. } => format!("{} {}", quote(name), role.name()),
        Op::Const { value, .. } => number(*value),
        Op::Iota { axis, .. } => format!("axis={axis}"),
        Op::Rand { stream, .. } => format!("stream={stream}"),
        Op::Sum { axes } | Op::ReduceMax { axes } => format!("axes={}", list(axes)),
        Op::Argmax { axis } | Op::Concat { axis } => format!("axis={axis}"),
        Op::Permute { perm } => format!("perm={}", list(perm)),
        Op::Slice { axis, start, end } => format!("axis={axis} start={start} end={end}"),
        Op::Pad { axis, lo, hi } => format!("axis={axis} lo={lo} hi={hi}"),
        Op::Unfold(w) => window_attrs(w),
        Op::Fold { window, size } => format!("{} size={}", window_attrs(window), list(size)),
        Op::Scan {
            body,
            carries,
            seqs,
            reverse,
        } => {
            let dir = if *reverse { " reverse" } else { "" };
            let name = quote_if_needed(&body.name);
            format!("carries={carries} seqs={seqs}{dir} body={name}")
        }
        Op::Get { index } => format!("index={index}"),
        // The printed type states these attributes: a cast's dtype, a reshape's or broadcast's
        // shape, a scatter's row count.
        Op::Cast { .. } | Op::Reshape { .. } | Op::Broadcast { .. } | Op::ScatterAdd { .. } => {
            String::new()
        }
        Op::Neg
        | Op::Exp
        | Op::Log
        | Op::Sqrt
        | Op::Sin
        | Op::Cos
        | Op::Erf
        | Op::Tanh
        | Op::Sigmoid
        | Op::Not
        | Op::Detach
        | Op::AllSum
        | Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Div
        | Op::Max
        | Op::Min
        | Op::Cmp(_)
        | Op::And
        | Op::Or
        | Op::Select
        | Op::MatMul
        | Op::Gather => String::new(),
    }
}

/// A number that reads back bit-for-bit: Rust's shortest round-trip form, or `inf`/`nan`.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x:?}")
    }
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A scope or file name of a location: bare when it is one word that cannot be confused with the
/// `@` separator or a quoted string, else quoted.
fn loc_text(s: &str) -> String {
    let plain = |c: char| !c.is_whitespace() && !c.is_control() && c != '"' && c != '@';
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        quote(s)
    }
}

fn quote_if_needed(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_') {
        s.to_string()
    } else {
        quote(s)
    }
}

//! Listings of a compiled program: its plan (`nnlc ir --stage plan`) and where the time of its
//! runs went (`nnlc run --profile`).

use super::Program;
use super::plan::{Fold, Kernel, Step, Storage, View};
use std::fmt::Write;

/// What a step of a plan is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// A compiled loop nest.
    Kernel,
    /// A matrix product (gemm).
    Gemm,
    /// A node run by the shared kernels (`tensor::kernels`).
    Library,
    /// A loop over a sequence, its body a program of its own.
    Scan,
    /// The check that the loss is finite before inputs are overwritten.
    Guard,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Kernel => "kernel",
            StepKind::Gemm => "gemm",
            StepKind::Library => "library",
            StepKind::Scan => "scan",
            StepKind::Guard => "guard",
        }
    }
}

/// The time of one step over the runs profiled; a scan's body's steps follow it, one level
/// deeper.
#[derive(Debug, Clone)]
pub struct ProfileRow {
    pub kind: StepKind,
    pub what: String,
    pub depth: usize,
    pub calls: u64,
    pub seconds: f64,
}

fn view(v: &View) -> String {
    let dims: Vec<String> = v
        .shape
        .iter()
        .zip(&v.strides)
        .map(|(n, s)| format!("{n}:{s}"))
        .collect();
    let offset = if v.offset == 0 {
        String::new()
    } else {
        format!("+{}", v.offset)
    };
    format!("b{}{offset}[{}]", v.buf, dims.join(" "))
}

impl Program {
    fn nodes_text(&self, nodes: &[usize]) -> String {
        let parts: Vec<String> = nodes
            .iter()
            .map(|&n| format!("%{n} {}", self.graph.nodes[n].op.name()))
            .collect();
        parts.join(", ")
    }

    fn kernel_text(&self, k: &Kernel, compiled: &super::codegen::Compiled) -> String {
        let width = match compiled.lanes {
            _ if compiled.transpose.is_some() => "a copy by tiles".to_string(),
            lanes if lanes > 1 => format!("{lanes} lanes"),
            _ => "scalar".to_string(),
        };
        format!(
            "kernel {:?} {width}: {}",
            k.space,
            self.nodes_text(&k.nodes)
        )
    }

    /// One line naming what step `s` does.
    fn step_text(&self, s: usize) -> (StepKind, String) {
        match &self.plan.steps[s] {
            Step::Kernel(k) => {
                let compiled = &self.code.kernels[self.kernel_of_step[s].expect("a kernel")];
                (StepKind::Kernel, self.kernel_text(k, compiled))
            }
            Step::MatMul {
                node,
                a,
                b,
                sum_batch,
                ..
            } => {
                let summed = if *sum_batch {
                    " summed over the batch"
                } else {
                    ""
                };
                (
                    StepKind::Gemm,
                    format!("matmul %{node} {:?} @ {:?}{summed}", a.shape, b.shape),
                )
            }
            Step::Library { node, .. } => (
                StepKind::Library,
                format!("library %{node} {}", self.graph.nodes[*node].op.name()),
            ),
            Step::Scan { node, args, .. } => {
                let carries = match &self.graph.nodes[*node].op {
                    crate::ir::Op::Scan { carries, .. } => *carries,
                    _ => 0,
                };
                let steps = args.get(carries).and_then(|v| v.shape.first()).copied();
                (
                    StepKind::Scan,
                    format!("scan %{node} over {} steps", steps.unwrap_or(0)),
                )
            }
            Step::Guard { loss } => (StepKind::Guard, format!("guard: b{loss} is finite")),
        }
    }

    /// The plan as text: every buffer, then every step with what it reads and writes.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        self.describe_into(&mut out, "");
        out
    }

    fn describe_into(&self, out: &mut String, indent: &str) {
        let _ = writeln!(
            out,
            "{indent}plan \"{}\" ({} steps, arena {} bytes) {{",
            self.graph.name,
            self.plan.steps.len(),
            self.plan.arena_bytes
        );
        for (b, buffer) in self.plan.buffers.iter().enumerate() {
            let place = match &buffer.storage {
                Storage::Input(name) => {
                    let written = self
                        .plan
                        .outputs
                        .iter()
                        .any(|o| o.replaces_input && o.buf == b);
                    let mode = if written { "read and written" } else { "read" };
                    format!("input \"{name}\", {mode} in place")
                }
                Storage::Arena(offset) => format!("arena at {offset}"),
                Storage::Output => {
                    let names: Vec<&str> = self
                        .plan
                        .outputs
                        .iter()
                        .filter(|o| o.buf == b)
                        .map(|o| o.name.as_str())
                        .collect();
                    format!("output \"{}\"", names.join("\", \""))
                }
            };
            let _ = writeln!(
                out,
                "{indent}  b{b}: {}[{}] {place}",
                buffer.dtype.name(),
                buffer.numel
            );
        }
        for (s, step) in self.plan.steps.iter().enumerate() {
            let (_, text) = self.step_text(s);
            let _ = writeln!(out, "{indent}  s{s}: {text}");
            match step {
                Step::Kernel(k) => {
                    for l in &k.loads {
                        let _ = writeln!(out, "{indent}      reads {}", view(l));
                    }
                    for o in &k.outs {
                        let how = match o.fold {
                            None => "writes",
                            Some(Fold::Sum) => "sums into",
                            Some(Fold::Max) => "takes the max into",
                        };
                        let _ = writeln!(out, "{indent}      {how} {}", view(&o.view));
                    }
                }
                Step::MatMul {
                    a,
                    b,
                    out: o,
                    sum_batch,
                    ..
                } => {
                    let how = if *sum_batch { "sums into" } else { "writes" };
                    let _ = writeln!(
                        out,
                        "{indent}      reads {}, {}\n{indent}      {how} {}",
                        view(a),
                        view(b),
                        view(o)
                    );
                }
                Step::Library { args, out: o, .. } => {
                    let reads: Vec<String> = args.iter().map(view).collect();
                    let _ = writeln!(
                        out,
                        "{indent}      reads {}\n{indent}      writes b{o}",
                        reads.join(", ")
                    );
                }
                Step::Scan {
                    args,
                    carries,
                    outs,
                    ..
                } => {
                    let reads: Vec<String> = args.iter().map(view).collect();
                    let carried: Vec<String> =
                        carries.iter().map(|[a, b]| format!("b{a}/b{b}")).collect();
                    let writes: Vec<String> = outs.iter().map(|b| format!("b{b}")).collect();
                    let _ = writeln!(
                        out,
                        "{indent}      reads {}\n{indent}      carries {}\n{indent}      writes {}",
                        reads.join(", "),
                        carried.join(", "),
                        writes.join(", ")
                    );
                    if let Some(body) = &self.body_of_step[s] {
                        body.describe_into(out, &format!("{indent}      "));
                    }
                }
                Step::Guard { .. } => {}
            }
        }
        let _ = writeln!(out, "{indent}}}");
    }

    /// The time of every step over the runs since profiling was turned on.
    pub fn profile(&self) -> Vec<ProfileRow> {
        let mut rows = Vec::new();
        self.profile_into(&mut rows, 0);
        rows
    }

    fn profile_into(&self, rows: &mut Vec<ProfileRow>, depth: usize) {
        let Some(times) = &self.profile else {
            return;
        };
        let times = times.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (s, &(calls, nanos)) in times.iter().enumerate() {
            let (kind, what) = self.step_text(s);
            rows.push(ProfileRow {
                kind,
                what,
                depth,
                calls,
                seconds: nanos as f64 * 1e-9,
            });
            if let Some(body) = &self.body_of_step[s] {
                body.profile_into(rows, depth + 1);
            }
        }
    }
}

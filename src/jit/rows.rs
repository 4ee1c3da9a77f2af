//! Scans split by batch rows. A recurrent layer's step treats every row of the batch on its
//! own: row `r` of the next carry depends on row `r` of the carry and of the step's inputs
//! only. When the compiled body shows that, the threads each run the whole scan on a range of
//! rows, with no synchronisation between time steps, instead of sharing each of the body's
//! small products and kernels step by step (a wait per kernel per time step).
//!
//! The proof is read off the body's plan: every buffer the body writes is *rowed* (each loop
//! iteration over the batch axis writes its own row, and reads the rows it writes only at the
//! same row) or computed whole, from nothing rowed, into scratch memory that each thread has
//! its own copy of. Inputs that are not carries (a sequence's step, weights) are read freely.
//! Every element is computed by the same code as without the split, so the results are the same
//! bit for bit.

use super::Program;
use super::plan::{BufId, Step, Storage, View};

/// How a scan's body runs on a range of batch rows.
#[derive(Debug, Clone)]
pub(super) struct RowSplit {
    /// The batch rows (the carries' leading extent).
    pub rows: usize,
    /// How each step of the body's plan runs.
    pub steps: Vec<RowStep>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum RowStep {
    /// On the range's rows only: a kernel's outermost loop runs `per_row` iterations per row,
    /// a product multiplies the range's rows of its left operand.
    Rows { per_row: usize },
    /// Whole, by each thread, into its own scratch memory.
    Whole,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Not written by the body (a sequence's step, a constant), or not yet.
    Ready,
    /// Written one row at a time.
    Rowed,
    /// Written whole into scratch memory.
    Private,
}

/// The row split of a scan body whose inputs are `carries` carries, then sequences and
/// constants; None when some step mixes rows (a sum over the batch, a product with a rowed
/// right operand, a library call on rowed values…).
pub(super) fn row_split(body: &Program, carries: usize) -> Option<RowSplit> {
    let plan = &body.plan;
    let (first, _, _) = body.graph.inputs().next()?;
    let rows = *body.graph.ty(first).shape.first()?;
    if carries == 0 || rows < 2 {
        return None;
    }
    let row_elems: Vec<Option<usize>> = plan
        .buffers
        .iter()
        .map(|b| b.numel.is_multiple_of(rows).then_some(b.numel / rows))
        .collect();
    // Whether the view's axis 0 walks the rows of its buffer and its other axes stay in a row.
    let by_rows = |v: &View| -> bool {
        let Some(len) = row_elems[v.buf] else {
            return false;
        };
        let (mut low, mut high) = (v.offset, v.offset);
        for (&n, &s) in v.shape.iter().zip(&v.strides).skip(1) {
            let reach = (n.max(1) as isize - 1) * s;
            if reach < 0 {
                low += reach;
            } else {
                high += reach;
            }
        }
        v.shape.first() == Some(&rows)
            && v.strides[0] == len as isize
            && low >= 0
            && high < len as isize
    };
    let mut kind: Vec<Kind> = vec![Kind::Ready; plan.buffers.len()];
    for (i, &buf) in body.inputs.iter().enumerate() {
        if i < carries {
            if body.graph.ty(body.graph.inputs().nth(i)?.0).shape.first() != Some(&rows) {
                return None;
            }
            kind[buf] = Kind::Rowed;
        }
    }
    let scratch = |buf: BufId| matches!(plan.buffers[buf].storage, Storage::Arena(_));
    let mut steps = Vec::with_capacity(plan.steps.len());
    for (s, step) in plan.steps.iter().enumerate() {
        let reads = step.reads();
        let writes = step.writes();
        let reads_rowed = reads.iter().any(|&b| kind[b] == Kind::Rowed);
        let fresh = writes
            .iter()
            .all(|&b| !matches!(plan.buffers[b].storage, Storage::Input(_)));
        let row_step = match step {
            Step::Kernel(k) => {
                let outer = body.kernel_of_step[s].map_or(0, |i| body.code.kernels[i].outer);
                let local = k.space.first() == Some(&rows)
                    && outer != 0
                    && outer.is_multiple_of(rows)
                    && k.loads
                        .iter()
                        .all(|v| kind[v.buf] != Kind::Rowed || by_rows(v))
                    && k.outs.iter().all(|o| by_rows(&o.view));
                local.then_some(outer / rows)
            }
            Step::MatMul { a, b, out, .. } => {
                let local = a.shape.len() == 2
                    && a.shape[0] == rows
                    && (kind[a.buf] != Kind::Rowed || by_rows(a))
                    && kind[b.buf] != Kind::Rowed
                    && by_rows(out);
                local.then_some(1)
            }
            Step::Library { .. } | Step::Scan { .. } | Step::Guard { .. } => None,
        };
        let row_step = match row_step {
            Some(per_row) if fresh => {
                for &b in &writes {
                    kind[b] = Kind::Rowed;
                }
                RowStep::Rows { per_row }
            }
            None if !reads_rowed && writes.iter().all(|&b| scratch(b)) => {
                for &b in &writes {
                    kind[b] = Kind::Private;
                }
                RowStep::Whole
            }
            _ => return None,
        };
        steps.push(row_step);
    }
    plan.outputs
        .iter()
        .all(|o| kind[o.buf] == Kind::Rowed)
        .then_some(RowSplit { rows, steps })
}

/// The rows `rows` of a view whose axis 0 walks its buffer's rows.
pub(super) fn rows_of(v: &View, rows: std::ops::Range<usize>) -> View {
    let mut part = v.clone();
    part.offset += rows.start as isize * v.strides[0];
    part.shape[0] = rows.len();
    part
}

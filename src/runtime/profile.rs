//! `nnlc run --profile`: where a training step's time goes, by kind of work and step by step.

use super::Session;
use crate::jit::{ProfileRow, StepKind};
use std::fmt::Write;

/// The report: time per training step by kind (gemm, compiled loops, library calls, scans'
/// bookkeeping, the step's own overhead, the loop around the steps), then the slowest steps.
pub fn report(session: &Session, steps: u64, train_seconds: f64) -> String {
    let mut out = String::new();
    let per_step = |seconds: f64| 1e3 * seconds / steps.max(1) as f64;
    let phases = session.training_profile();
    let rows: Vec<&ProfileRow> = phases.iter().flat_map(|(_, rows)| rows).collect();
    if rows.is_empty() {
        return "no profile: only the JIT backend profiles its steps\n".into();
    }
    let mut by_kind: Vec<(&str, f64)> = Vec::new();
    let mut add = |name: &'static str, seconds: f64| match by_kind.iter_mut().find(|k| k.0 == name)
    {
        Some(k) => k.1 += seconds,
        None => by_kind.push((name, seconds)),
    };
    let mut profiled = 0.0;
    for (i, row) in rows.iter().enumerate() {
        if row.depth == 0 {
            profiled += row.seconds;
        }
        match row.kind {
            StepKind::Scan => {
                // A scan's own time is what its body's steps do not account for.
                let inner: f64 = rows[i + 1..]
                    .iter()
                    .take_while(|r| r.depth > row.depth)
                    .filter(|r| r.depth == row.depth + 1)
                    .map(|r| r.seconds)
                    .sum();
                add("scan bookkeeping", row.seconds - inner);
            }
            StepKind::Gemm => add("gemm", row.seconds),
            StepKind::Kernel => add("compiled loops", row.seconds),
            StepKind::Library => add("library calls", row.seconds),
            StepKind::Guard => add("step overhead", row.seconds),
        }
    }
    add("step overhead", session.step_seconds - profiled);
    add("outside the step", train_seconds - session.step_seconds);
    let total = per_step(train_seconds);
    let _ = writeln!(
        out,
        "profile of {steps} training steps: {total:.3} ms per step"
    );
    for (name, seconds) in &by_kind {
        let ms = per_step(*seconds);
        let _ = writeln!(
            out,
            "  {name:<18} {ms:8.3} ms  {:5.1}%",
            100.0 * ms / total.max(1e-12)
        );
    }
    let mut slowest: Vec<&ProfileRow> = rows
        .iter()
        .copied()
        .filter(|r| r.kind != StepKind::Scan)
        .collect();
    slowest.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    let _ = writeln!(out, "slowest steps (ms per training step):");
    for r in slowest.iter().take(15) {
        let inside = if r.depth > 0 { "in a scan: " } else { "" };
        let _ = writeln!(out, "  {:8.3}  {inside}{}", per_step(r.seconds), r.what);
    }
    out
}

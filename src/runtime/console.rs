//! Progress on stderr: a bar per epoch on a terminal (samples/s, running loss, ETA), one plain
//! line per epoch otherwise.

use super::{EpochRecord, Metrics, Observer, Warning};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Console {
    bar: Option<ProgressBar>,
    terminal: bool,
    started: Instant,
    samples: usize,
    loss_sum: f64,
    batches: usize,
}

impl Default for Console {
    fn default() -> Console {
        Console {
            bar: None,
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            samples: 0,
            loss_sum: 0.0,
            batches: 0,
        }
    }
}

impl Observer for Console {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.started = Instant::now();
        (self.samples, self.loss_sum, self.batches) = (0, 0.0, 0);
        if !self.terminal {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::stderr());
        let style =
            ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                .expect("the template is valid")
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn batch_done(&mut self, samples: usize, loss: f64) {
        self.samples += samples;
        self.loss_sum += loss;
        self.batches += 1;
        if let Some(bar) = &self.bar {
            let rate = self.samples as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.4} {:.0} samples/s",
                self.loss_sum / self.batches as f64,
                rate
            ));
            bar.inc(1);
        }
    }

    fn epoch_done(&mut self, record: &EpochRecord, epochs: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let mut line = format!(
            "epoch {}/{epochs}  {}",
            record.epoch,
            format_metrics(&record.train)
        );
        if !record.val.is_empty() {
            line += &format!("  | val {}", format_metrics(&record.val));
        }
        line += &format!(
            "  | {:.1}s, {:.0} samples/s",
            record.seconds, record.samples_per_second
        );
        // A closed stderr (`2>&-`, a pipe whose reader left) must not stop a run.
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    fn warning(&mut self, warning: &Warning) {
        let text = format!("warning: {}", warning.text());
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{text}");
    }
}

/// `loss 0.1234 accuracy 0.9612`, loss first.
pub fn format_metrics(m: &Metrics) -> String {
    let mut names: Vec<&String> = m.keys().collect();
    names.sort_by_key(|n| (!n.starts_with("loss"), n.as_str()));
    names
        .iter()
        .map(|n| format!("{n} {:.4}", m[*n]))
        .collect::<Vec<_>>()
        .join(" ")
}

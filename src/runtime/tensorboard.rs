//! `nnlc run --logdir DIR` (or `log "DIR"` in the train block): the run as TensorBoard event
//! files, written as it trains.
//!
//! Runs (sibling directories, so TensorBoard overlays the curves of one tag): `train`, `val`,
//! `test`. Tags:
//! - `step/loss` (`step/loss.<phase>`), `step/<metric>` (the batch's value) and
//!   `step/learning_rate` (`step/learning_rate.<phase>`) in `train`, every N steps at the global
//!   step;
//! - `epoch/<metric>` (`epoch/loss`, `epoch/accuracy`, …) in `train` and `val` at each epoch,
//!   and in `test` at the last epoch; `epoch/samples_per_second` in `train`;
//! - `health/<layer>/grad_norm`, `…/weight_norm`, `…/update_ratio` and
//!   `health/<relu>/dead_fraction` in `train` at each epoch, and the gradient-health warnings as
//!   Markdown under `health/warnings` (the Text tab);
//! - histograms `weights/<param>` and `gradients/<param>` in `train` every M epochs.
//!
//! Writing a log never stops a run: the first error is kept and reported at the end, and
//! nothing more is written.

use super::{EpochRecord, Metrics, Observer, StepRecord, Warning};
use crate::tensor::Tensor;
use crate::tensorboard::EventWriter;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct TensorBoardLog {
    dir: PathBuf,
    runs: HashMap<&'static str, EventWriter>,
    histograms_every: usize,
    error: Option<String>,
    last_step: u64,
}

impl TensorBoardLog {
    /// A log in `dir`, creating it and the `train` run's event file (an error now, before
    /// training, if that cannot be done); histograms every `histograms_every` epochs (0: none).
    pub fn create(dir: &Path, histograms_every: usize) -> Result<TensorBoardLog, String> {
        let mut log = TensorBoardLog {
            dir: dir.to_path_buf(),
            runs: HashMap::new(),
            histograms_every,
            error: None,
            last_step: 0,
        };
        let train = EventWriter::create(&dir.join("train"))?;
        log.runs.insert("train", train);
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `write` on the writer of a run (created on first use), keeping the first error.
    fn write(
        &mut self,
        run: &'static str,
        write: impl FnOnce(&mut EventWriter) -> Result<(), String>,
    ) {
        if self.error.is_some() {
            return;
        }
        if !self.runs.contains_key(run) {
            match EventWriter::create(&self.dir.join(run)) {
                Ok(w) => {
                    self.runs.insert(run, w);
                }
                Err(e) => {
                    self.error = Some(e);
                    return;
                }
            }
        }
        let writer = self.runs.get_mut(run).expect("created above");
        if let Err(e) = write(writer) {
            self.error = Some(e);
        }
    }

    fn metrics(&mut self, run: &'static str, epoch: usize, metrics: &Metrics) {
        let mut names: Vec<&String> = metrics.keys().collect();
        names.sort();
        self.write(run, |w| {
            for name in names {
                w.scalar(&format!("epoch/{name}"), epoch as u64, metrics[name])?;
            }
            Ok(())
        });
    }

    /// The test split's metrics, at the last epoch.
    pub fn test(&mut self, epoch: usize, metrics: &Metrics) {
        self.metrics("test", epoch, metrics);
    }

    /// Flushes every event file; the first error of the run, if any.
    pub fn finish(mut self) -> Result<(), String> {
        for w in self.runs.values_mut() {
            if let Err(e) = w.flush() {
                self.error.get_or_insert(e);
            }
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn flush(&mut self) {
        let mut error = None;
        for w in self.runs.values_mut() {
            if let Err(e) = w.flush() {
                error.get_or_insert(e);
            }
        }
        if let Some(e) = error {
            self.error.get_or_insert(e);
        }
    }
}

impl Observer for TensorBoardLog {
    fn step_logged(&mut self, r: &StepRecord) {
        self.last_step = r.step;
        self.write("train", |w| {
            for (key, value) in r.loss.iter().chain(&r.metrics).chain(&r.learning_rate) {
                w.scalar(&format!("step/{key}"), r.step, *value)?;
            }
            Ok(())
        });
    }

    fn epoch_done(&mut self, r: &EpochRecord, _epochs: usize) {
        let epoch = r.epoch as u64;
        self.metrics("train", r.epoch, &r.train);
        if !r.val.is_empty() {
            self.metrics("val", r.epoch, &r.val);
        }
        self.write("train", |w| {
            w.scalar("epoch/samples_per_second", epoch, r.samples_per_second)?;
            if let Some(h) = &r.health {
                for l in &h.layers {
                    let tag = |stat: &str| format!("health/{}/{stat}", l.layer);
                    w.scalar(&tag("grad_norm"), epoch, l.grad_norm)?;
                    w.scalar(&tag("weight_norm"), epoch, l.weight_norm)?;
                    w.scalar(&tag("update_ratio"), epoch, l.update_ratio)?;
                }
                for relu in &h.relus {
                    let tag = format!("health/{}/dead_fraction", relu.relu);
                    w.scalar(&tag, epoch, relu.dead_fraction)?;
                }
            }
            Ok(())
        });
        self.flush();
    }

    fn warning(&mut self, warning: &Warning) {
        let text = format!(
            "**{}** in `{}` ({}), epoch {}, step {}: {}.\n\n*{}*",
            warning.kind.title(),
            warning.subject,
            warning.location,
            warning.epoch,
            warning.step,
            warning.message,
            warning.help
        );
        self.write("train", |w| w.text("health/warnings", warning.step, &text));
    }

    fn wants_tensors(&self, epoch: usize) -> bool {
        self.histograms_every > 0 && epoch.is_multiple_of(self.histograms_every)
    }

    fn tensors(
        &mut self,
        epoch: usize,
        weights: &HashMap<String, Tensor>,
        grads: &HashMap<String, Tensor>,
    ) {
        let mut names: Vec<&String> = weights.keys().collect();
        names.sort();
        let as_f32 = |t: &Tensor| t.to_f64().into_iter().map(|v| v as f32).collect::<Vec<_>>();
        self.write("train", |w| {
            for name in names {
                w.histogram(
                    &format!("weights/{name}"),
                    epoch as u64,
                    &as_f32(&weights[name]),
                )?;
                if let Some(g) = grads.get(name) {
                    w.histogram(&format!("gradients/{name}"), epoch as u64, &as_f32(g))?;
                }
            }
            Ok(())
        });
        self.flush();
    }
}

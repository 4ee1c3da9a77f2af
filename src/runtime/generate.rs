//! `nnlc generate`: autoregressive sampling from a trained causal language model.
//!
//! The model runs alone in evaluation mode on one sequence of its declared context length `C`
//! (the length of the data field it reads). A sample starts from the end-of-document id and the
//! prompt's ids; while it is shorter than `C` its ids sit at positions `0..n` (the rest is
//! padding, which a causal model cannot see) and the next id is drawn from the logits at
//! position `n − 1`; after that the last `C` ids are the window and the prediction at `C − 1`
//! is used. Without the cache, each step recomputes the whole window.
//!
//! With the key/value cache (the default), the model is also compiled for one new position
//! (`lower::lower_model_step`: each attention's keys and values for the earlier positions come
//! from cache inputs, and the step outputs the caches with the new position written in), so a
//! new id costs one position instead of `C`. While a sample is at most `C` ids long, its ids
//! are fed one at a time at positions `0, 1, …`; once it is longer, the window slides, every
//! position moves, the cached keys no longer hold, and each further id recomputes the window as
//! without the cache — so greedy decoding gives the same ids either way. Before it is used, the
//! one-position graph must reproduce the full graph's logits at every position of a probe
//! sequence; a model it does not (a layer that mixes positions without `cached`, such as a
//! recurrent one) generates without the cache, with a note saying why.
//!
//! Sampling: logits divided by the temperature, then only the `top_k` most likely ids, then the
//! smallest set of most likely ids whose probabilities reach `top_p` (nucleus), renormalized;
//! temperature 0 is greedy (the lowest id among equal maxima). Draw `j` of sample `s` is
//! `bits(key, j)` with `key = bits(seed, s)` (`crate::tensor::random::bits`), a uniform
//! `(bits >> 11) · 2⁻⁵³` compared with the cumulative probabilities in id order, so a seed
//! repeats its samples exactly.
//!
//! Before generating, the model is checked to be causal: the logits at every position but the
//! last must not change when the last input id does. A bidirectional model (attention without
//! `causal: true`) fails this with a message naming the first position that saw the future.

use super::checkpoint::Checkpoint;
use super::predict::{model_name, prepare};
use super::{Backend, Executable};
use crate::data::Pipeline;
use crate::data::text::Tokenizer;
use crate::ir::{DType, Role, TensorType};
use crate::lower;
use crate::resolve::Program;
use crate::source::SourceMap;
use crate::tensor::Tensor;
use crate::tensor::random::bits;
use std::collections::HashMap;

/// How to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Ids to generate per sample (at most).
    pub tokens: usize,
    /// 0: greedy.
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    pub seed: u64,
    pub samples: usize,
    /// End a sample when it produces the end-of-document id.
    pub stop_at_end: bool,
}

impl Sampling {
    fn check(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "--temperature must be a finite number ≥ 0, found {}",
                self.temperature
            ));
        }
        if self.top_k == Some(0) {
            return Err("--top-k must be at least 1".into());
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(format!("--top-p must be in (0, 1], found {p}"));
        }
        Ok(())
    }
}

/// What the generator reports as it goes.
pub enum Event<'a> {
    /// A sample begins (0-based), with the prompt's text.
    Start(usize, &'a str),
    /// The text of one new id.
    Token(&'a str),
    /// A sample ended, with the ids it generated.
    End(usize, &'a [i32]),
}

/// A model ready to predict the next id.
pub struct Generator<'a> {
    exe: Box<dyn Executable>,
    input: String,
    context: usize,
    vocab: usize,
    tokenizer: Tokenizer,
    saved: &'a Checkpoint,
    /// The model at one new position with its key/value cache, when it is used.
    step: Option<Step>,
    /// Why the cache is not used, when it was asked for.
    notes: Vec<String>,
}

/// The one-position graph and the caches it reads.
struct Step {
    exe: Box<dyn Executable>,
    caches: Vec<(String, TensorType)>,
}

/// One sample's caches and how many of its ids they hold.
struct CacheState {
    caches: HashMap<String, Tensor>,
    fed: usize,
}

impl<'a> Generator<'a> {
    /// Prepares `model` (the train block's only model if None) with the tokenizer saved in
    /// `saved`, checks that it is causal and, with `use_cache`, prepares its one-position graph.
    pub fn new(
        program: &Program,
        sources: &SourceMap,
        backend: &dyn Backend,
        saved: &'a Checkpoint,
        model: Option<&str>,
        use_cache: bool,
    ) -> Result<Generator<'a>, String> {
        let model = match model {
            Some(m) => m.to_string(),
            None => model_name(program)?,
        };
        let mut pipeline =
            Pipeline::from_decl(program, super::train_data(program)?).map_err(|e| e.to_string())?;
        pipeline
            .restore_text(&saved.data_text)
            .map_err(|e| e.to_string())?;
        let (inputs, exe) = prepare(program, sources, backend, &model, 1)?;
        let (input, ty) = match &inputs[..] {
            [(name, ty)] => (name.clone(), ty.clone()),
            _ => {
                return Err(format!(
                    "`{model}` reads {} inputs; a language model reads one sequence of ids",
                    inputs.len()
                ));
            }
        };
        let (DType::I32, &[1, context]) = (ty.dtype, &ty.shape[..]) else {
            return Err(format!(
                "`{model}`'s input `{input}` is {ty}; a language model reads ids, i32[B, T]"
            ));
        };
        let tokenizer = pipeline
            .tokenizer(&input)
            .ok_or_else(|| {
                format!(
                    "the data field `{input}` that `{model}` reads has no tokenizer: generation needs a model trained on a `text` source"
                )
            })?
            .clone();
        let mut g = Generator {
            exe,
            input,
            context,
            vocab: 0,
            tokenizer,
            saved,
            step: None,
            notes: Vec::new(),
        };
        let probe: Vec<i32> = (0..context)
            .map(|i| (i % g.tokenizer.vocab_size()) as i32)
            .collect();
        let before = g.logits(&probe)?;
        let steps = before.len() / context;
        if steps * context != before.len() || steps == 0 {
            return Err(format!(
                "`{model}` gives {} values for {context} positions; a language model gives [B, T, vocab] logits",
                before.len()
            ));
        }
        g.vocab = steps;
        if g.vocab != g.tokenizer.vocab_size() {
            return Err(format!(
                "`{model}` gives {} logits per position, but the tokenizer has {} ids",
                g.vocab,
                g.tokenizer.vocab_size()
            ));
        }
        let mut changed = probe.clone();
        changed[context - 1] = (probe[context - 1] + 1) % g.vocab as i32;
        let after = g.logits(&changed)?;
        if let Some(pos) = (0..context - 1).find(|&t| {
            before[t * g.vocab..(t + 1) * g.vocab] != after[t * g.vocab..(t + 1) * g.vocab]
        }) {
            return Err(format!(
                "`{model}` is not causal: its output at position {pos} changes when the input at position {} does, so it cannot generate one id after another (give its attention `causal: true`)",
                context - 1
            ));
        }
        if use_cache {
            match g.step_graph(program, sources, backend, &model, &probe, &before) {
                Ok(step) => g.step = Some(step),
                Err(why) => g
                    .notes
                    .push(format!("generating without the key/value cache: {why}")),
            }
        }
        Ok(g)
    }

    /// The one-position graph, checked to give the full graph's logits `full` at every position
    /// of `probe`.
    fn step_graph(
        &self,
        program: &Program,
        sources: &SourceMap,
        backend: &dyn Backend,
        model: &str,
        probe: &[i32],
        full: &[f64],
    ) -> Result<Step, String> {
        let opts = lower::Options {
            batch: Some(1),
            float: DType::F32,
        };
        let graph = lower::lower_model_step(program, sources, &opts, model).map_err(|d| {
            format!(
                "`{model}` cannot be compiled for one position: {}",
                d.message
            )
        })?;
        let caches: Vec<(String, TensorType)> = graph
            .inputs()
            .filter(|(_, _, role)| *role == Role::State)
            .map(|(v, name, _)| (name.to_string(), graph.ty(v).clone()))
            .collect();
        let step = Step {
            exe: backend.prepare(crate::opt::optimize(&graph).0)?,
            caches,
        };
        let mut state = self.fresh_cache(&step);
        let scale = full.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (t, want) in full.chunks(self.vocab).enumerate() {
            let got = self.cached_logits(&step, &mut state, &probe[..=t])?;
            if let Some(i) = (0..self.vocab).find(|&i| (got[i] - want[i]).abs() > 1e-4 * scale) {
                return Err(format!(
                    "at position {t}, its one-position graph gives logit {} for id {i} where the whole sequence gives {} (a layer that mixes positions without `cached`?)",
                    got[i], want[i]
                ));
            }
        }
        Ok(step)
    }

    fn fresh_cache(&self, step: &Step) -> CacheState {
        CacheState {
            caches: step
                .caches
                .iter()
                .map(|(name, ty)| (name.clone(), Tensor::zeros(ty)))
                .collect(),
            fed: 0,
        }
    }

    /// The logits for the id that follows `ids` (at most `context` of them, extending the ids
    /// `state` holds), feeding the new ones one position at a time.
    fn cached_logits(
        &self,
        step: &Step,
        state: &mut CacheState,
        ids: &[i32],
    ) -> Result<Vec<f64>, String> {
        let one = TensorType::new(DType::I32, vec![1, 1]);
        let mut logits = None;
        while state.fed < ids.len() {
            let x = Tensor::from_f64(&one, vec![f64::from(ids[state.fed])]);
            let position =
                Tensor::from_f64(&TensorType::scalar(DType::I32), vec![state.fed as f64]);
            let out = step
                .exe
                .run_step(
                    &|n| {
                        if n == self.input {
                            Some(&x)
                        } else if n == "position" {
                            Some(&position)
                        } else {
                            self.saved.values.get(n)
                        }
                    },
                    &mut state.caches,
                )
                .map_err(|e| e.to_string())?;
            logits = Some(out.get("out").ok_or("the model gave no output")?.to_f64());
            state.fed += 1;
        }
        logits.ok_or_else(|| "no new id to feed".to_string())
    }

    /// Whether each new id costs one position (the key/value cache is used).
    pub fn uses_cache(&self) -> bool {
        self.step.is_some()
    }

    /// Why the cache is not used, when it was asked for.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The model's context length.
    pub fn context(&self) -> usize {
        self.context
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The logits at every position of one window of `context` ids, flattened.
    fn logits(&self, window: &[i32]) -> Result<Vec<f64>, String> {
        let ty = TensorType::new(DType::I32, vec![1, self.context]);
        let x = Tensor::from_f64(&ty, window.iter().map(|&i| f64::from(i)).collect());
        let out = self
            .exe
            .run(
                &|n| {
                    if n == self.input {
                        Some(&x)
                    } else {
                        self.saved.values.get(n)
                    }
                },
                false,
            )
            .map_err(|e| e.to_string())?;
        Ok(out.get("out").ok_or("the model gave no output")?.to_f64())
    }

    /// The logits for the id that follows `ids`.
    pub fn next_logits(&self, ids: &[i32]) -> Result<Vec<f64>, String> {
        let end = self.tokenizer.end_of_document();
        let (window, at) = if ids.len() >= self.context {
            (ids[ids.len() - self.context..].to_vec(), self.context - 1)
        } else {
            let mut w = ids.to_vec();
            w.resize(self.context, end);
            (w, ids.len() - 1)
        };
        let all = self.logits(&window)?;
        Ok(all[at * self.vocab..(at + 1) * self.vocab].to_vec())
    }

    /// Generates `sampling.samples` samples after `prompt`, reporting each id as it is drawn.
    pub fn generate(
        &self,
        prompt: &str,
        sampling: &Sampling,
        emit: &mut dyn FnMut(Event),
    ) -> Result<(), String> {
        sampling.check()?;
        let start: Vec<i32> = std::iter::once(self.tokenizer.end_of_document())
            .chain(self.tokenizer.encode(prompt))
            .collect();
        let end = self.tokenizer.end_of_document();
        for s in 0..sampling.samples {
            emit(Event::Start(s, prompt));
            let key = bits(sampling.seed, s as u64);
            let mut ids = start.clone();
            let mut made = Vec::new();
            let mut cache = self.step.as_ref().map(|st| (st, self.fresh_cache(st)));
            for j in 0..sampling.tokens {
                let logits = match &mut cache {
                    Some((st, state)) if ids.len() <= self.context => {
                        self.cached_logits(st, state, &ids)?
                    }
                    _ => self.next_logits(&ids)?,
                };
                let u = (bits(key, j as u64) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                let id = choose(&logits, sampling, u);
                ids.push(id);
                made.push(id);
                emit(Event::Token(&self.tokenizer.decode_one(id)));
                if sampling.stop_at_end && id == end {
                    break;
                }
            }
            emit(Event::End(s, &made));
        }
        Ok(())
    }
}

/// The id drawn from `logits` with the uniform `u` in [0, 1).
pub fn choose(logits: &[f64], s: &Sampling, u: f64) -> i32 {
    let argmax = || {
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        best as i32
    };
    if s.temperature == 0.0 {
        return argmax();
    }
    // Ids by decreasing logit (ties: lower id first), cut by top-k and top-p.
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if let Some(k) = s.top_k {
        order.truncate(k.max(1));
    }
    let top = logits[order[0]];
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i] - top) / s.temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut keep = order.len();
    if let Some(p) = s.top_p {
        let mut acc = 0.0;
        for (n, w) in weights.iter().enumerate() {
            acc += w / total;
            if acc >= p {
                keep = n + 1;
                break;
            }
        }
    }
    let mut kept: Vec<(usize, f64)> = order[..keep]
        .iter()
        .copied()
        .zip(weights[..keep].iter().copied())
        .collect();
    kept.sort_by_key(|&(i, _)| i);
    let total: f64 = kept.iter().map(|(_, w)| w).sum();
    let mut acc = 0.0;
    for &(i, w) in &kept {
        acc += w / total;
        if u < acc {
            return i as i32;
        }
    }
    kept.last().map_or_else(argmax, |&(i, _)| i as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f64, top_k: Option<usize>, top_p: Option<f64>) -> Sampling {
        Sampling {
            tokens: 1,
            temperature,
            top_k,
            top_p,
            seed: 0,
            samples: 1,
            stop_at_end: false,
        }
    }

    #[test]
    fn greedy_top_k_and_top_p() {
        let logits = [0.0, 2.0, 1.0, 2.0];
        // greedy: the first of the equal maxima, whatever the draw.
        assert_eq!(choose(&logits, &sampling(0.0, None, None), 0.99), 1);
        // top-k 1 keeps id 1 only.
        assert_eq!(choose(&logits, &sampling(1.0, Some(1), None), 0.99), 1);
        // top-k 2 keeps ids 1 and 3 with equal weight.
        assert_eq!(choose(&logits, &sampling(1.0, Some(2), None), 0.49), 1);
        assert_eq!(choose(&logits, &sampling(1.0, Some(2), None), 0.51), 3);
        // without cuts every id can be drawn: id 0 holds the lowest probability first.
        let p0 = 1.0 / (1.0 + 2.0 * 2f64.exp() + 1f64.exp());
        assert_eq!(choose(&logits, &sampling(1.0, None, None), p0 * 0.99), 0);
        // top-p 0.5: ids 1 and 3 together hold more than half.
        for u in [0.0, 0.3, 0.7, 0.99] {
            assert!([1, 3].contains(&choose(&logits, &sampling(1.0, None, Some(0.5)), u)));
        }
        // a low temperature approaches greedy.
        assert_eq!(choose(&[0.0, 1.0], &sampling(0.01, None, None), 0.999), 1);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(sampling(-1.0, None, None).check().is_err());
        assert!(sampling(1.0, Some(0), None).check().is_err());
        assert!(sampling(1.0, None, Some(0.0)).check().is_err());
        assert!(sampling(1.0, None, Some(1.5)).check().is_err());
        assert!(sampling(0.0, Some(3), Some(0.9)).check().is_ok());
    }
}

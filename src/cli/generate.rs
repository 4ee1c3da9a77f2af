//! `nnlc generate`: samples from a trained causal language model, streamed to stdout.

use super::train::{Common, backend, checked, checkpoint_file};
use super::{err, out, out_raw};
use nnl::runtime::checkpoint;
use nnl::runtime::generate::{Event, Generator, Sampling};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub common: Common,
    /// A checkpoint file, or a checkpoint directory (its best checkpoint)
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The model to sample from, for a file that trains several
    #[arg(long)]
    pub model: Option<String>,
    /// Text every sample continues (after the start of a document)
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Ids to generate per sample
    #[arg(long, default_value_t = 200)]
    pub tokens: usize,
    /// Softmax temperature; 0 is greedy (the most likely id every time)
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Sample only among the K most likely ids
    #[arg(long = "top-k", value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample only among the most likely ids that together hold probability P (nucleus)
    #[arg(long = "top-p", value_name = "P")]
    pub top_p: Option<f64>,
    /// The seed of the draws: the same seed gives the same samples
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How many samples
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    /// End a sample when the model ends the document (a line, for a `text` source)
    #[arg(long = "stop-at-end")]
    pub stop_at_end: bool,
    /// Recompute the whole context for every new id instead of using the key/value cache
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}

pub fn generate(args: &GenerateArgs) -> Result<(), String> {
    let (check, program) = checked(&args.common, &[])?;
    let (backend, _) = backend(&args.common, false);
    let saved = checkpoint::load(&checkpoint_file(&args.checkpoint))?;
    let generator = Generator::new(
        &program,
        &check.sources,
        backend.as_ref(),
        &saved,
        args.model.as_deref(),
        !args.no_cache,
    )?;
    for note in generator.notes() {
        err!("note: {note}");
    }
    let sampling = Sampling {
        tokens: args.tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        samples: args.samples,
        stop_at_end: args.stop_at_end,
    };
    let started = Instant::now();
    let mut made = 0usize;
    let mut last = String::new();
    generator.generate(&args.prompt, &sampling, &mut |e| match e {
        Event::Start(_, prompt) => {
            out_raw!("{prompt}");
            last = prompt.to_string();
        }
        Event::Token(text) => {
            use std::io::Write as _;
            out_raw!("{text}");
            let _ = std::io::stdout().flush();
            last = text.to_string();
        }
        Event::End(_, ids) => {
            made += ids.len();
            if !last.ends_with('\n') {
                out!();
            }
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    err!(
        "{made} ids in {seconds:.2} s ({:.1} ids/s, context {}, {})",
        made as f64 / seconds.max(1e-9),
        generator.context(),
        if generator.uses_cache() {
            "key/value cache"
        } else {
            "no cache"
        }
    );
    Ok(())
}

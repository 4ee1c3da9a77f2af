//! `nnlc data`: what a file's data block reads (splits, fields, classes, files left out), and
//! with `--show N` a picture of training samples as the model sees them.

use super::err;
use super::out;
use super::train::{Common, checked};
use nnl::runtime::{self, Interpreter, Session};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct DataArgs {
    #[command(flatten)]
    pub common: Common,
    /// Draw the first N training samples of an epoch, shuffled and augmented as in training,
    /// with their labels, into the PNG file of `-o`
    #[arg(long, value_name = "N", value_parser = super::positive)]
    pub show: Option<usize>,
    /// The picture of `--show`
    #[arg(short = 'o', value_name = "FILE.png", default_value = "samples.png")]
    pub output: PathBuf,
    /// The epoch whose order and augmentations `--show` draws (from 0)
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
    /// The field `--show` draws (default: the first with height and width)
    #[arg(long)]
    pub field: Option<String>,
    /// The seed (default: the train block's, as `nnlc run` takes it)
    #[arg(long)]
    pub seed: Option<u64>,
}

pub fn data(args: &DataArgs) -> Result<(), String> {
    let path = args.common.file.as_str();
    let (check, program) = checked(&args.common, &[])?;
    let seed = match args.seed {
        Some(s) => s,
        None => {
            let session = Session::new(
                &program,
                &check.sources,
                None,
                Box::new(Interpreter { threads: 1 }),
            )?;
            session.config().seed.unwrap_or(0)
        }
    };
    let data = runtime::load_data(&program, Path::new(path), seed)?;
    let splits: Vec<String> = data
        .splits()
        .iter()
        .map(|(n, k)| format!("{n} {k}"))
        .collect();
    out!("samples: {}", splits.join(", "));
    for (name, ty) in data.fields() {
        out!("field {name}: {}", ty);
    }
    for (field, names) in data.pipeline().labels() {
        out!("classes of {field} ({}): {}", names.len(), names.join(", "));
    }
    if let Some(note) = data.skipped_note() {
        err!("{note}");
    }
    if let Some(n) = args.show {
        let pictures = nnl::plot::training_pictures(&data, n, args.epoch, args.field.as_deref())?;
        nnl::plot::write_grid(&args.output, &pictures)?;
        out!("{}", args.output.display());
    }
    Ok(())
}

//! `nnlc export`: a trained model as an ONNX file.

use super::train::{Common, checked, checkpoint_file};
use nnl::data::Pipeline;
use nnl::runtime::{self, checkpoint};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub common: Common,
    /// A checkpoint file, or a checkpoint directory (its best checkpoint)
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The model to export, for a file that trains several (a GAN's Generator, a Decoder)
    #[arg(long)]
    pub model: Option<String>,
    /// Put the data block's fitted transforms in front of the model, so that it takes raw
    /// inputs as `nnlc predict` does (in double precision)
    #[arg(long)]
    pub with_preprocessing: bool,
    /// Where to write the ONNX model
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

pub fn export(args: &ExportArgs) -> Result<(), String> {
    let (check, program) = checked(&args.common, &[])?;
    let file = checkpoint_file(&args.checkpoint);
    let saved = checkpoint::load(&file)?;
    let pipeline = if args.with_preprocessing {
        let mut p = Pipeline::from_decl(&program, runtime::train_data(&program)?)
            .map_err(|e| e.to_string())?;
        p.restore_text(&saved.data_text)
            .map_err(|e| e.to_string())?;
        p.restore_stats(&saved.data_stats)
            .map_err(|e| e.to_string())?;
        Some(p)
    } else {
        None
    };
    let opts = nnl::export::Options {
        model: args.model.as_deref(),
        preprocessing: pipeline.as_ref(),
    };
    let exported = nnl::export::export(&program, &check.sources, &saved.values, &opts)?;
    nnl::store::write_atomically(&args.output, &exported.bytes)?;
    let ops: Vec<String> = exported
        .ops
        .iter()
        .map(|(op, n)| {
            if *n == 1 {
                op.clone()
            } else {
                format!("{op} ×{n}")
            }
        })
        .collect();
    super::err!(
        "{} exported to {} (ONNX opset {}): inputs {}, outputs {}; {} initializers; {}",
        exported.model,
        args.output.display(),
        nnl::export::OPSET,
        exported.inputs.join(", "),
        exported.outputs.join(", "),
        exported.initializers,
        ops.join(", ")
    );
    Ok(())
}

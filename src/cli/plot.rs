//! `nnlc plot`: learning curves of runs, from their reports or checkpoint directories.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct PlotArgs {
    /// Runs: `--report` JSON files or checkpoint directories; several are overlaid
    #[arg(required = true, value_name = "RUN_DIR|REPORT.json")]
    pub runs: Vec<PathBuf>,
    /// The picture: SVG, or PNG for a name ending in `.png`
    #[arg(short = 'o', value_name = "FILE", default_value = "curves.svg")]
    pub output: PathBuf,
}

pub fn plot(args: &PlotArgs) -> Result<(), String> {
    let runs = args
        .runs
        .iter()
        .map(|p| nnl::plot::Run::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    nnl::plot::write(&args.output, &runs)?;
    println!("{}", args.output.display());
    Ok(())
}

//! `nnlc`, the command-line interface. It parses arguments, reads files, calls the library and
//! prints; all compiler logic lives in the library.

use clap::{Parser, Subcommand, ValueEnum};
use nnl::diag;
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nnlc",
    version,
    about = "The nnl compiler: check, differentiate and train .nnl models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check files for syntax, name, type and shape errors
    Check {
        #[arg(required = true)]
        files: Vec<String>,
        /// Print each model's layers, output shapes and parameter counts
        #[arg(long)]
        summary: bool,
        /// How to print diagnostics
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Explain an error code at length, e.g. `nnlc explain E0201`
    Explain { code: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            files,
            summary,
            format,
        } => check(&files, summary, format),
        Command::Explain { code } => match diag::explain(&code.to_uppercase()) {
            Some(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: no error code `{code}`; codes look like E0201 or W0001");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(files: &[String], summary: bool, format: Format) -> ExitCode {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut failed = false;
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                failed = true;
                continue;
            }
        };
        let out = nnl::check_source(path, &text, &nnl::fs::DiskLoader);
        match format {
            Format::Human => eprint!("{}", diag::render(&out.sources, &out.diagnostics, color)),
            Format::Json => print!("{}", diag::render_json(&out.sources, &out.diagnostics)),
        }
        failed |= out.has_errors();
        if summary && !out.has_errors() {
            for s in &out.summaries {
                println!("{}", nnl::check::render_summary(s));
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

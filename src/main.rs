//! `nnlc`, the command-line interface. It parses arguments, reads files, calls the library and
//! prints; all compiler logic lives in the library.

mod cli;

use clap::{Parser, Subcommand, ValueEnum};
use cli::{Allow, err, err_raw, out, out_raw};
use nnl::diag;
use std::io::IsTerminal;
use std::path::PathBuf;
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
    /// Train the model a file declares: progress per epoch, checkpoints, test metrics
    Run(cli::train::RunArgs),
    /// Run the file's `search` block: trials, a live table, the best trial and how to reproduce it
    Search(cli::search::SearchArgs),
    /// Metrics of a trained model on a split of the file's data
    Eval(cli::train::EvalArgs),
    /// A trained model's outputs for new inputs, prepared as its training data were
    Predict(cli::train::PredictArgs),
    /// Samples from a trained causal language model, streamed as they are drawn
    Generate(cli::generate::GenerateArgs),
    /// A trained model as an ONNX file (evaluation mode, symbolic batch, weights included)
    Export(cli::export::ExportArgs),
    /// What a file's data block reads; `--show N -o grid.png` draws augmented training samples
    Data(cli::data::DataArgs),
    /// Draw runs' loss and metric curves (train solid, validation dashed, best epoch marked)
    Plot(cli::plot::PlotArgs),
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
        #[command(flatten)]
        allow: Allow,
    },
    /// Explain an error code at length, e.g. `nnlc explain E0201`
    Explain { code: String },
    /// Print the graph IR a file compiles to
    Ir {
        file: String,
        /// Which graph: the forward pass (`ir`), the training step with its backward pass and
        /// updates (`grad`), that step optimized (`opt`), the JIT's plan of the optimized step
        /// (`plan`: its buffers and loop nests, what each reads and writes, vector widths,
        /// library calls), parameter initialization (`init`), evaluation (`eval`)
        #[arg(long, value_enum, default_value = "ir")]
        stage: Stage,
        /// The phase, for training blocks with phases (default: the first)
        #[arg(long)]
        phase: Option<String>,
        /// One model alone, applied to inputs named like its parameters (stages ir and eval)
        #[arg(long, conflicts_with = "phase")]
        model: Option<String>,
        /// The batch size that fixes `B` (default: the train block's `batch`)
        #[arg(long, value_parser = cli::positive)]
        batch: Option<usize>,
        /// Print node counts instead of the graph
        #[arg(long)]
        stats: bool,
        #[command(flatten)]
        allow: Allow,
    },
    /// Compute the loss and every parameter's gradient for one batch, on the reference interpreter
    Grad(GradArgs),
    /// Rewrite files in the canonical layout (docs/language.md, "Formatting")
    Fmt {
        #[arg(required = true)]
        files: Vec<String>,
        /// Write nothing; list the files that would change and fail if there are any
        #[arg(long)]
        check: bool,
    },
    /// Run the language server on stdin/stdout (for editors)
    Lsp,
}

#[derive(Clone, Copy, ValueEnum)]
enum Stage {
    Ir,
    Grad,
    Opt,
    Plan,
    Init,
    Eval,
}

fn main() -> ExitCode {
    // Usage errors exit with 1 like every other error (clap's own code is 2); `--help` with 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Run(args) => report(cli::train::in_pool(&args.common, || cli::train::run(&args))),
        Command::Search(args) => report(cli::search::search(&args)),
        Command::Eval(args) => report(cli::train::in_pool(&args.common, || {
            cli::train::eval(&args)
        })),
        Command::Predict(args) => report(cli::train::in_pool(&args.common, || {
            cli::train::predict(&args)
        })),
        Command::Generate(args) => report(cli::train::in_pool(&args.common, || {
            cli::generate::generate(&args)
        })),
        Command::Export(args) => report(cli::export::export(&args)),
        Command::Plot(args) => report(cli::plot::plot(&args)),
        Command::Data(args) => report(cli::train::in_pool(&args.common, || cli::data::data(&args))),
        Command::Check {
            files,
            summary,
            format,
            allow,
        } => check(&files, summary, format, &allow),
        Command::Ir {
            file,
            stage,
            phase,
            model,
            batch,
            stats,
            allow,
        } => {
            let lowering = Lowering {
                path: &file,
                batch,
                allow: &allow,
            };
            match model {
                Some(m) => ir_model(&lowering, &m, stage, stats),
                None => ir(&lowering, stage, phase.as_deref(), stats),
            }
        }
        Command::Grad(args) => report(grad(&args)),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Lsp => report(nnl::lsp::run_stdio()),
        Command::Explain { code } => match diag::explain(&code.to_uppercase()) {
            Some(text) => {
                out!("{text}");
                ExitCode::SUCCESS
            }
            None => {
                err!("error: no error code `{code}`; codes look like E0201 or W0001");
                ExitCode::FAILURE
            }
        },
    }
}

/// The exit code of a command, with its error on stderr.
fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether diagnostics are coloured: on a terminal, unless `NO_COLOR` is set.
fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A source file's text, or None after printing why it cannot be read (see
/// [`nnl::fs::read_source`]).
fn read_source(path: &str) -> Option<String> {
    nnl::fs::read_source(std::path::Path::new(path))
        .map_err(|e| err!("error: cannot read `{path}`: {e}"))
        .ok()
}

fn check(files: &[String], summary: bool, format: Format, allow: &Allow) -> ExitCode {
    let color = color();
    let mut failed = false;
    for path in files {
        let Some(text) = read_source(path) else {
            failed = true;
            continue;
        };
        // Given, not copied: the source map keeps the only copy of a file that may be large.
        // Only the diagnostics (and the summaries when asked for) are kept.
        let keep = nnl::check::Keep {
            summaries: summary,
            ..nnl::check::Keep::DIAGNOSTICS
        };
        let (out, program) = cli::check_in_project_keeping(path, text, allow, keep);
        // Freeing the syntax tree of a 50 MB file takes a quarter of a second: done on another
        // thread, beside the rendering and the next file, or not at all when the process
        // exits first (here, when no thread can be made: the refused closure drops it).
        let _ = std::thread::Builder::new().spawn(move || drop(program));
        match format {
            Format::Human => err_raw!("{}", diag::render(&out.sources, &out.diagnostics, color)),
            Format::Json => out_raw!("{}", diag::render_json(&out.sources, &out.diagnostics)),
        }
        failed |= out.has_errors();
        if summary && !out.has_errors() {
            for s in &out.summaries {
                out!("{}", nnl::check::render_summary(s));
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A file to check and lower, within its project.
struct Lowering<'a> {
    path: &'a str,
    batch: Option<usize>,
    allow: &'a Allow,
}

/// Reads, checks and lowers a file, printing diagnostics; None when it does not compile.
fn lower_file(l: &Lowering) -> Option<nnl::lower::Lowered> {
    lower_with(l, &|program, sources, opts| {
        nnl::lower::lower(program, sources, opts)
    })
}

fn lower_with<T>(
    l: &Lowering,
    lower: &dyn Fn(
        &nnl::resolve::Program,
        &nnl::source::SourceMap,
        &nnl::lower::Options,
    ) -> Result<T, diag::Diagnostic>,
) -> Option<T> {
    let color = color();
    let text = read_source(l.path)?;
    let opts = nnl::lower::Options {
        batch: l.batch,
        ..Default::default()
    };
    let (mut check, program) = cli::check_in_project(l.path, &text, l.allow);
    let lowered = if check.has_errors() {
        None
    } else {
        lower(&program, &check.sources, &opts)
            .map_err(|d| check.diagnostics.push(d))
            .ok()
    };
    err_raw!(
        "{}",
        diag::render(&check.sources, &check.diagnostics, color)
    );
    lowered
}

fn ir_model(l: &Lowering, model: &str, stage: Stage, stats: bool) -> ExitCode {
    let training = match stage {
        Stage::Ir => true,
        Stage::Eval => false,
        _ => {
            err!(
                "error: `--model` shows a model's forward pass: use `--stage ir` or `--stage eval`"
            );
            return ExitCode::FAILURE;
        }
    };
    let lowered = lower_with(l, &|program, sources, opts| {
        nnl::lower::lower_model(program, sources, opts, model, training)
    });
    let Some(graph) = lowered else {
        return ExitCode::FAILURE;
    };
    print_graph(&graph, stats)
}

fn ir(l: &Lowering, stage: Stage, phase: Option<&str>, stats: bool) -> ExitCode {
    let Some(lowered) = lower_file(l) else {
        return ExitCode::FAILURE;
    };
    let phase = match find_phase(&lowered, phase) {
        Ok(p) => p,
        Err(e) => {
            err!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let graph = match stage {
        Stage::Ir => phase.forward.clone(),
        Stage::Init => lowered.init.clone(),
        Stage::Eval => lowered.eval.clone(),
        Stage::Grad | Stage::Opt | Stage::Plan => match nnl::step::train_step(&lowered, phase) {
            Ok(g) if matches!(stage, Stage::Plan) => {
                let (g, _) = nnl::opt::optimize(&g);
                return match nnl::jit::compile(&g) {
                    Ok(program) => {
                        out_raw!("{}", program.describe());
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        err!("error: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            Ok(g) if matches!(stage, Stage::Opt) => {
                let (g, s) = nnl::opt::optimize(&g);
                if stats {
                    out!(
                        "{}: {} nodes before optimization, {} after",
                        g.name,
                        s.before,
                        s.after
                    );
                    return ExitCode::SUCCESS;
                }
                g
            }
            Ok(g) => g,
            Err(e) => {
                err!("error: internal: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    print_graph(&graph, stats)
}

fn find_phase<'a>(
    lowered: &'a nnl::lower::Lowered,
    name: Option<&str>,
) -> Result<&'a nnl::lower::Phase, String> {
    let Some(name) = name else {
        return Ok(&lowered.phases[0]);
    };
    lowered
        .phases
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = lowered.phases.iter().map(|p| p.name.as_str()).collect();
            format!("no phase `{name}`; the phases are {}", names.join(", "))
        })
}

#[derive(clap::Args)]
struct GradArgs {
    file: String,
    /// The batch: an .npz file with one array per data field (`x`, `y`), batch axis first
    #[arg(long)]
    inputs: PathBuf,
    /// Parameters to use (a safetensors file named like `nnlc check --summary` lists them);
    /// without it they are initialized from the seed
    #[arg(long, conflicts_with = "write_params")]
    params: Option<PathBuf>,
    /// Save the parameters initialized from the seed
    #[arg(long)]
    write_params: Option<PathBuf>,
    /// The seed for initialization and for random layers (dropout, noise)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The phase, for training blocks with phases (default: the first)
    #[arg(long)]
    phase: Option<String>,
    /// Where to write `loss` and the gradients (safetensors, named like the parameters)
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    #[command(flatten)]
    allow: Allow,
}

fn grad(args: &GradArgs) -> Result<(), String> {
    let path = args.file.as_str();
    let batch: std::collections::HashMap<String, nnl::tensor::Tensor> =
        nnl::store::read_npz(&args.inputs)?.into_iter().collect();
    let batch_size = batch
        .values()
        .find_map(|t| t.ty().shape.first().copied())
        .ok_or_else(|| format!("`{}` holds no batched array", args.inputs.display()))?;
    let lowered = lower_file(&Lowering {
        path,
        batch: Some(batch_size),
        allow: &args.allow,
    })
    .ok_or("the file does not compile")?;
    let phase = find_phase(&lowered, args.phase.as_deref())?;
    let mut values = nnl::exec::initial_values(&lowered, args.seed)?;
    if let Some(p) = &args.params {
        let (given, _) = nnl::store::read_safetensors(p)?;
        for (name, t) in given {
            if !lowered.params.iter().any(|(n, _)| *n == name) {
                return Err(format!(
                    "`{}` has a tensor `{name}` that is not a parameter of this model",
                    p.display()
                ));
            }
            values.insert(name, t);
        }
    }
    if let Some(w) = &args.write_params {
        let params: Vec<(String, nnl::tensor::Tensor)> = lowered
            .params
            .iter()
            .map(|(n, _)| (n.clone(), values[n].clone()))
            .collect();
        nnl::store::write_safetensors(w, &params, None)?;
    }
    let result = nnl::exec::batch_gradients(&lowered, phase, &batch, &values, args.seed)?;
    nnl::store::write_safetensors(&args.output, &result, None)?;
    if let Some(loss) = result[0].1.scalar() {
        err!(
            "loss {loss:.6}; {} gradients written to {}",
            result.len() - 1,
            args.output.display()
        );
    }
    Ok(())
}

/// A graph as text, or its node count with `--stats`.
fn print_graph(graph: &nnl::ir::Graph, stats: bool) -> ExitCode {
    if stats {
        out!("{}: {} nodes", graph.name, graph.size());
    } else {
        out_raw!("{}", nnl::ir::text::print(graph));
    }
    ExitCode::SUCCESS
}

/// Formats each file; with `check`, only reports the files whose layout would change.
fn fmt(files: &[String], check: bool) -> ExitCode {
    let color = color();
    let mut failed = false;
    for path in files {
        let Some(text) = read_source(path) else {
            failed = true;
            continue;
        };
        let formatted = match nnl::fmt::format(&text) {
            Ok(f) => f,
            Err(diags) => {
                let mut sources = nnl::source::SourceMap::new();
                sources.add(path.as_str(), text, false);
                err_raw!("{}", diag::render(&sources, &diags, color));
                err!("error: `{path}` has syntax errors; not formatted");
                failed = true;
                continue;
            }
        };
        if formatted == text {
            continue;
        }
        if check {
            out!("{path}");
            failed = true;
        } else if let Err(e) =
            nnl::store::write_atomically(std::path::Path::new(path), formatted.as_bytes())
        {
            err!("error: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

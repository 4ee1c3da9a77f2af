//! `nnlc run`, `nnlc eval` and `nnlc predict`: training and using a trained model.

use super::{Allow, err, err_raw, out, positive};
use nnl::runtime::distributed::{Collective, Local, Sharding};
use nnl::runtime::tensorboard::TensorBoardLog;
use nnl::runtime::{
    self, Both, Console, Interpreter, Jit, RunOptions, Session, Trainer, checkpoint,
};
use nnl::syntax::overrides::{self, Override};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackendKind {
    /// Native code compiled by Cranelift
    Jit,
    /// The reference interpreter
    Interp,
}

/// What every command that compiles a file and runs it takes.
#[derive(clap::Args)]
pub struct Common {
    pub file: String,
    /// Threads for matrix products and, on the JIT, large loops (default: every core)
    #[arg(long, value_parser = positive)]
    pub threads: Option<usize>,
    /// Where graphs run
    #[arg(long, value_enum, default_value = "jit")]
    pub backend: BackendKind,
    /// Override a hyperparameter of the file: a train setting (`epochs=10`), a model attribute
    /// (`hidden=256`), an optimizer argument (`lr=3e-4`, `optimizer.b1=0.8`) or an early-stop
    /// argument (`early_stop.patience=5`); repeatable
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub overrides: Vec<Override>,
    #[command(flatten)]
    pub allow: Allow,
}

#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: Common,
    /// The seed of initialization, shuffling, augmentation and dropout (default: the file's);
    /// checked like the file's `seed`
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub seed: Option<String>,
    /// Train for this many epochs (default: the file's `epochs`); checked like the file's
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub epochs: Option<String>,
    /// The batch size (default: the file's `batch`); checked like the file's
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub batch: Option<String>,
    /// Train on at most N batches per epoch (a quick look at a long run)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub steps_per_epoch: Option<usize>,
    /// Where to keep checkpoints (default: the train block's `checkpoint`, relative to the file)
    #[arg(long, conflicts_with = "resume")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue the run whose checkpoints are in DIR, from its last checkpoint (an interrupted
    /// epoch resumes at the step where it stopped)
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Start afresh in a checkpoint directory that holds an earlier run's checkpoints, replacing
    /// them (without it such a run is refused)
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Write a JSON report: configuration, metrics per epoch, test metrics, timings
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Time every step of the compiled training step and print where the time went
    #[arg(long)]
    pub profile: bool,
    /// Start from these weights (safetensors or .npz; nnl's or PyTorch's names), instead of
    /// the train block's `init`
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Write TensorBoard event files into DIR (runs `train`, `val`, `test`); default: the train
    /// block's `log`, relative to the file
    #[arg(long, value_name = "DIR")]
    pub logdir: Option<PathBuf>,
    /// Log the loss and learning rate of every N-th step (to TensorBoard and the report)
    #[arg(long, value_name = "N", default_value = "10", value_parser = positive)]
    pub log_every: usize,
    /// Log histograms of the weights and gradients every M epochs (0: never)
    #[arg(long, value_name = "M", default_value_t = 1)]
    pub histograms_every: usize,
    /// Compute the gradient-health statistics (per-layer norms, ReLU activity) at every K-th
    /// step, the first included
    #[arg(long, value_name = "K", default_value_t = runtime::DEFAULT_HEALTH_EVERY, value_parser = positive)]
    pub health_every: usize,
    /// Do not compute the gradient-health statistics nor warn about vanishing or exploding
    /// gradients, dead ReLUs or the learning rate
    #[arg(long, conflicts_with = "health_every")]
    pub no_health: bool,
    /// Train data-parallel: cut every batch into N shards whose gradient sums are added in shard
    /// order before one update (default: 1, or the number of processes under `mpirun`). In one
    /// process this computes exactly what `mpirun -np N` does
    #[arg(long, value_name = "N", value_parser = positive)]
    pub shards: Option<usize>,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub common: Common,
    /// A checkpoint file, or a checkpoint directory (its best checkpoint); without it, the
    /// weights of `init` or `--init`
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Evaluate these weights (safetensors or .npz; nnl's or PyTorch's names)
    #[arg(long, value_name = "FILE", conflicts_with = "checkpoint")]
    pub init: Option<PathBuf>,
    /// The split to evaluate
    #[arg(long, default_value = "test")]
    pub split: String,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub common: Common,
    /// A checkpoint file, or a checkpoint directory (its best checkpoint)
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The model to apply, for a file that trains several (a GAN's Generator, a Decoder)
    #[arg(long)]
    pub model: Option<String>,
    /// Inputs as the data source gives them: .npy (samples first) or .csv (a row per sample;
    /// columns of the training file that the input does not read, such as the label, are
    /// ignored). `NAME=FILE` for each input of a model with several; repeatable
    #[arg(long, value_name = "[NAME=]FILE", required = true)]
    pub input: Vec<String>,
    /// What to write per sample: the model's outputs, probabilities (softmax, or the sigmoid of
    /// a single logit) or the class (argmax, or logit > 0)
    #[arg(long, value_enum, default_value = "logits")]
    pub output: OutputArg,
    /// Where to write: .npy or .csv, or `-` for CSV on stdout
    #[arg(short = 'o', value_name = "FILE", required = true)]
    pub output_file: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutputArg {
    Logits,
    Probabilities,
    Class,
}

/// A file read, its `--set` overrides (and `extra`, from flags such as `--epochs`) applied, and
/// checked in its project; diagnostics are printed, and `Err` means there were errors.
pub(crate) fn checked(
    common: &Common,
    extra: &[Override],
) -> Result<(nnl::CheckOutput, nnl::resolve::Program), String> {
    let path = common.file.as_str();
    let text = crate::read_source(path).ok_or("nothing was run")?;
    let all: Vec<Override> = common.overrides.iter().chain(extra).cloned().collect();
    let text = overrides::apply(&text, &all)?;
    let (check, program) = super::check_in_project(path, &text, &common.allow);
    err_raw!(
        "{}",
        nnl::diag::render(&check.sources, &check.diagnostics, crate::color())
    );
    if check.has_errors() {
        return Err(format!("`{path}` has errors; nothing was run"));
    }
    Ok((check, program))
}

fn threads(common: &Common) -> usize {
    common.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Runs a command on the pool of threads it asks for.
pub fn in_pool(
    common: &Common,
    command: impl FnOnce() -> Result<(), String> + Send,
) -> Result<(), String> {
    runtime::with_threads(threads(common), command)?
}

pub(crate) fn backend(common: &Common, profile: bool) -> (Box<dyn runtime::Backend>, usize) {
    let threads = threads(common);
    match common.backend {
        BackendKind::Jit => (Box::new(Jit { threads, profile }), threads),
        BackendKind::Interp => (Box::new(Interpreter { threads }), threads),
    }
}

/// `--batch`, `--epochs` and `--seed` as `--set` overrides, so that the checker checks them
/// exactly as it checks the file's own settings.
fn flag_overrides(args: &RunArgs) -> Vec<Override> {
    [
        ("batch", &args.batch),
        ("epochs", &args.epochs),
        ("seed", &args.seed),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        value.as_ref().map(|v| Override {
            name: name.to_string(),
            value: v.trim().to_string(),
        })
    })
    .collect()
}

/// `nnlc run`, as one process or as a rank of a data-parallel MPI job: the ranks other than 0
/// print nothing, and a rank that fails ends the whole job (`MPI_Abort`) with its message.
#[cfg(feature = "mpi")]
pub fn run(args: &RunArgs) -> Result<(), String> {
    let Some(world) = runtime::mpi::World::init()? else {
        return finish(train(args, None));
    };
    let world = Rc::new(world);
    if world.rank() != 0 {
        super::set_quiet();
    }
    match train(args, Some(world.clone())) {
        Ok(interrupted) => finish(Ok(interrupted)),
        Err(e) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "error on rank {}: {e}", world.rank());
            world.abort(1)
        }
    }
}

/// `nnlc run` in one process; started by an MPI launcher, it refuses to train N copies alone.
#[cfg(not(feature = "mpi"))]
pub fn run(args: &RunArgs) -> Result<(), String> {
    if let Some(n) = runtime::distributed::launcher_size()
        && n > 1
    {
        return Err(format!(
            "an MPI launcher started {n} processes, but this nnlc was built without MPI, so each would train alone: build it with `cargo build --release --features mpi`"
        ));
    }
    finish(train(args, None))
}

/// A run's end: an interruption is reported as an error (exit status 1).
fn finish(result: Result<Option<String>, String>) -> Result<(), String> {
    match result? {
        None => Ok(()),
        Some(interrupted) => Err(interrupted),
    }
}

/// Trains; `Some` says where an interrupted run stopped and how to continue it.
fn train(args: &RunArgs, comm: Option<Rc<dyn Collective>>) -> Result<Option<String>, String> {
    let rank = comm.as_ref().map_or(0, |c| c.rank());
    let leader = rank == 0;
    let path = args.common.file.as_str();
    let (check, program) = checked(&args.common, &flag_overrides(args))?;
    let root = &program.modules[program.root].ast;
    if root
        .items
        .iter()
        .any(|i| matches!(i, nnl::syntax::ast::Item::Search(_)))
    {
        err!(
            "note: `{path}` has a search block; `nnlc run` trains the file as written, `nnlc search {path}` runs the search"
        );
    }
    let (backend, threads) = backend(&args.common, args.profile);
    let mut session = Session::new(&program, &check.sources, None, backend)?;
    let config = session.config().clone();
    let checkpoint_dir = args
        .resume
        .clone()
        .or_else(|| args.checkpoint_dir.clone())
        .or_else(|| runtime::checkpoint_dir_of(Path::new(path), &config));
    // Claimed before the data are loaded, so that a refused run fails at once; held to the end.
    let _lock = match &checkpoint_dir {
        Some(dir) if leader => Some(checkpoint::claim(
            dir,
            if args.resume.is_some() {
                checkpoint::Claim::Resume
            } else if args.overwrite {
                checkpoint::Claim::Overwrite
            } else {
                checkpoint::Claim::Fresh
            },
        )?),
        _ => None,
    };
    let resumed = match &args.resume {
        Some(dir) => Some(
            checkpoint::load(&dir.join(checkpoint::LAST))
                .map_err(|e| {
                    format!("{e}; `--resume` takes the checkpoint directory of an earlier run")
                })?
                .state,
        ),
        None => None,
    };
    // `--seed` is in the config (as an override); without it a resumed run keeps its own.
    let seed = if args.seed.is_some() {
        config.seed
    } else {
        None
    }
    .or(resumed.as_ref().map(|s| s.seed))
    .or(config.seed)
    .unwrap_or(0);
    let stop = stop_on_signals()?;
    let data_start = Instant::now();
    let mut data = runtime::load_data(&program, Path::new(path), seed)?;
    let data_seconds = data_start.elapsed().as_secs_f64();
    if stop.load(Ordering::SeqCst) {
        return Err("interrupted before training began; nothing was trained".into());
    }
    let processes = comm.as_ref().map_or(1, |c| c.size());
    let shards = args.shards.unwrap_or(processes);
    let sharding = match (comm, shards) {
        (None, 1) => None,
        (None, n) => Some(Sharding::new(Rc::new(Local), n)?),
        (Some(comm), n) => Some(Sharding::new(comm, n)?),
    };
    let splits = data.splits();
    let sizes: Vec<String> = splits.iter().map(|(n, k)| format!("{n} {k}")).collect();
    err!(
        "training {} on `{}`: {} parameters; {} samples; batch {}, seed {seed}, backend {}, {threads} thread{}",
        session.lowered().train,
        path,
        nnl::check::group_digits(session.parameter_count() as i64),
        sizes.join(", "),
        config.batch,
        session.backend_name(),
        if threads == 1 { "" } else { "s" }
    );
    if let Some(sh) = &sharding {
        err!(
            "data-parallel: {} shards of every batch on {} process{}",
            sh.shards(),
            sh.processes(),
            if sh.processes() == 1 { "" } else { "es" }
        );
    }
    if let Some(note) = data.skipped_note() {
        err!("{note}");
    }
    let logdir = args
        .logdir
        .clone()
        .or_else(|| runtime::log_dir_of(Path::new(path), &config));
    let opts = RunOptions {
        seed: Some(seed),
        epochs: config.epochs,
        checkpoint_dir,
        resume: args.resume.clone(),
        steps_per_epoch: args.steps_per_epoch,
        log_every: Some(args.log_every),
        stop: Some(stop),
        finish_trained: false,
    };
    session.set_health_every((!args.no_health).then_some(args.health_every));
    let mut log = match &logdir {
        Some(dir) if leader => Some(TensorBoardLog::create(dir, args.histograms_every)?),
        _ => None,
    };
    let loaded = init_weights(path, args.init.as_deref(), &session, &check)?;
    let mut trainer = Trainer::new(&mut session, &mut data, &opts)?;
    if let Some(w) = loaded
        && args.resume.is_none()
    {
        trainer.start_from(w);
    }
    if let Some(sharding) = sharding {
        trainer.distribute(sharding)?;
    }
    let mut console = Console::default();
    let result = match &mut log {
        Some(log) => trainer.run(&mut Both(&mut console, log))?,
        None if leader => trainer.run(&mut console)?,
        None => trainer.run(&mut Quiet)?,
    };
    if !leader {
        return Ok(None);
    }
    let resumed_after = resumed.map(|s| s.epochs_done);
    let report = runtime::report::Report::new(
        path,
        &session,
        threads,
        splits,
        &result,
        resumed_after,
        data_seconds,
    );
    if result.interrupted.is_none() {
        print_summary(&report);
    }
    if let Some(mut log) = log {
        if let Some(test) = &result.test {
            log.test(result.state.epochs_done, test);
        }
        let dir = log.dir().display().to_string();
        match log.finish() {
            Ok(()) => out!("TensorBoard logs: {dir} (`tensorboard --logdir {dir}`)"),
            Err(e) => err!("warning: the TensorBoard logs are incomplete: {e}"),
        }
    }
    if let Some(dir) = &result.checkpoint_dir {
        let curves = dir.join("curves.svg");
        let run = nnl::plot::Run::of_report(&report, &dir.display().to_string());
        match nnl::plot::write(&curves, &[run]) {
            Ok(()) => out!("curves: {}", curves.display()),
            Err(e) => err!("warning: cannot draw the curves: {e}"),
        }
    }
    if args.profile {
        err_raw!(
            "{}",
            runtime::profile::report(
                &session,
                result.steps_this_run,
                report.timings.mean_step_ms * result.steps_this_run as f64 / 1e3
            )
        );
    }
    if let Some(file) = &args.report {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        nnl::store::write_atomically(file, format!("{json}\n").as_bytes())?;
    }
    Ok(result
        .interrupted
        .map(|at| interrupted_message(&at, path, result.checkpoint_dir.as_deref())))
}

/// The observer of the ranks other than 0.
struct Quiet;

impl runtime::Observer for Quiet {}

/// A flag that SIGINT (Ctrl-C) and SIGTERM set, so that the run stops at the next step
/// boundary and saves; a second signal ends the process at once (exit status 1).
pub(crate) fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // The shutdown is registered first, so it sees the flag as the first signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(&stop)))
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    // Says at once that the signal was heard; the step in progress may take a while.
    let watched = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !watched.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        err!("stopping after the current step to save the run (interrupt again to quit at once)");
    });
    Ok(stop)
}

fn interrupted_message(at: &runtime::Interruption, file: &str, dir: Option<&Path>) -> String {
    let place = match at.steps_done {
        Some(steps) => format!(
            "in epoch {} after {steps} step{}",
            at.epoch,
            if steps == 1 { "" } else { "s" }
        ),
        None => format!("after epoch {}", at.epoch),
    };
    match dir {
        Some(dir) => format!(
            "interrupted {place}; `{}` holds the run as it stopped: continue it exactly with `nnlc run {file} --resume {}`",
            dir.join(checkpoint::LAST).display(),
            dir.display()
        ),
        None => format!(
            "interrupted {place}; the file names no `checkpoint` directory, so nothing was saved"
        ),
    }
}

fn print_summary(r: &runtime::report::Report) {
    let t = &r.timings;
    out!(
        "trained {} for {} epoch{}{} in {:.1}s ({:.0} samples/s, {:.3} ms per step; compile {:.2}s, data {:.2}s)",
        r.train,
        r.epochs.len(),
        if r.epochs.len() == 1 { "" } else { "s" },
        if r.stopped_early {
            " (stopped early)"
        } else {
            ""
        },
        t.train_seconds,
        t.samples_per_second,
        t.mean_step_ms,
        t.compile_seconds,
        t.data_seconds
    );
    if let Some(b) = &r.best {
        out!(
            "best epoch {}: {} {:.4}{}",
            b.epoch,
            b.monitor,
            b.value,
            if r.restored_best {
                " (weights restored)"
            } else {
                ""
            }
        );
    }
    if let Some(test) = &r.test {
        out!("test: {}", runtime::console::format_metrics(test));
        if let Some(c) = &r.confusion {
            out!("{}", c.table().trim_end());
        }
    }
    if let Some(dir) = &r.config.checkpoint
        && Path::new(dir).join(checkpoint::LAST).exists()
    {
        let best = if r.best.is_some() {
            format!(", best: {dir}/{}", checkpoint::BEST)
        } else {
            String::new()
        };
        out!("checkpoints: last: {dir}/{}{best}", checkpoint::LAST);
    }
}

/// A checkpoint file, or a directory's best one (its last when it has no best).
pub(crate) fn checkpoint_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        let best = path.join(checkpoint::BEST);
        if best.exists() {
            return best;
        }
        return path.join(checkpoint::LAST);
    }
    path.to_path_buf()
}

/// The weights that `init` in the train block, or `--init FILE`, names, loaded for the
/// session's parameters and layer state; None when there are none. A load that does not fit
/// prints its diagnostic.
pub(crate) fn init_weights(
    path: &str,
    init: Option<&Path>,
    session: &Session,
    check: &nnl::CheckOutput,
) -> Result<Option<std::collections::HashMap<String, nnl::tensor::Tensor>>, String> {
    let lowered = session.lowered();
    let declared = lowered.config.init.clone();
    let (spec, span, base) = match (init, declared) {
        (Some(file), declared) => {
            let mut spec = declared.unwrap_or(nnl::syntax::finetune::InitFrom {
                path: String::new(),
                strict: true,
                map: Vec::new(),
                span: nnl::source::Span::new(nnl::source::FileId(0), 0, 0),
            });
            spec.path = file.display().to_string();
            (spec, None, PathBuf::new())
        }
        (None, Some(spec)) => {
            let base = Path::new(path)
                .parent()
                .unwrap_or(Path::new(""))
                .to_path_buf();
            let span = Some(spec.span);
            (spec, span, base)
        }
        (None, None) => return Ok(None),
    };
    let targets: Vec<(String, nnl::ir::TensorType)> = lowered
        .params
        .iter()
        .chain(&lowered.states)
        .cloned()
        .collect();
    let models: Vec<String> = lowered.train.split(", ").map(str::to_string).collect();
    match runtime::weights::load(&spec, span, &base, &targets, &models) {
        Ok(loaded) => {
            for note in &loaded.notes {
                err!("note: {note}");
            }
            err!(
                "loaded {} tensors from `{}`",
                loaded.values.len(),
                spec.path
            );
            Ok(Some(loaded.values))
        }
        Err(d) => {
            err_raw!(
                "{}",
                nnl::diag::render(&check.sources, &[d], crate::color())
            );
            Err(format!(
                "the weights in `{}` do not fit; nothing was run",
                spec.path
            ))
        }
    }
}

pub fn eval(args: &EvalArgs) -> Result<(), String> {
    let path = args.common.file.as_str();
    let (check, program) = checked(&args.common, &[])?;
    let (backend, _) = backend(&args.common, false);
    let Some(ckpt) = &args.checkpoint else {
        // The weights of `init` / `--init`, on statistics fitted to the data as in training.
        let mut session = Session::new(&program, &check.sources, None, backend)?;
        let seed = session.config().seed.unwrap_or(0);
        session.check_memory()?;
        let loaded = init_weights(path, args.init.as_deref(), &session, &check)?.ok_or(
            "nothing to evaluate: give --checkpoint, or weights with --init or `init` in the train block",
        )?;
        let mut values = session.initial_values(seed)?;
        values.extend(loaded);
        let data = runtime::load_data(&program, Path::new(path), seed)?;
        session.check_classes(&data)?;
        let metrics = session.evaluate(&data, &args.split, &values, seed)?;
        out!(
            "{} (loaded weights): {}",
            args.split,
            runtime::console::format_metrics(&metrics)
        );
        return Ok(());
    };
    let file = checkpoint_file(ckpt);
    let saved = checkpoint::load(&file)?;
    let mut session = Session::new(&program, &check.sources, Some(saved.state.batch), backend)?;
    session.check_memory()?;
    session.check_values(&saved.values, &format!("`{}`", file.display()))?;
    let mut data = runtime::load_data(&program, Path::new(path), saved.state.seed)?;
    data.restore_text(&saved.data_text)
        .map_err(|e| e.to_string())?;
    data.restore_stats(&saved.data_stats)
        .map_err(|e| e.to_string())?;
    session.check_classes(&data)?;
    let metrics = session.evaluate(&data, &args.split, &saved.values, saved.state.seed)?;
    out!(
        "{} (epoch {}): {}",
        args.split,
        saved.state.epochs_done,
        runtime::console::format_metrics(&metrics)
    );
    Ok(())
}

pub fn predict(args: &PredictArgs) -> Result<(), String> {
    let (check, program) = checked(&args.common, &[])?;
    let (backend, _) = backend(&args.common, false);
    let file = checkpoint_file(&args.checkpoint);
    let saved = checkpoint::load(&file)?;
    let mut raw = Vec::new();
    for spec in &args.input {
        let (name, path) = match spec.split_once('=') {
            Some((n, p)) if !n.is_empty() && !n.contains(['/', '.']) => (Some(n.to_string()), p),
            _ => (None, spec.as_str()),
        };
        let t = nnl::data::read_inputs(Path::new(path)).map_err(|e| e.to_string())?;
        raw.push((name, t));
    }
    let kind = match args.output {
        OutputArg::Logits => runtime::predict::OutputKind::Logits,
        OutputArg::Probabilities => runtime::predict::OutputKind::Probabilities,
        OutputArg::Class => runtime::predict::OutputKind::Class,
    };
    let prediction = runtime::predict::predict(
        &program,
        &check.sources,
        backend.as_ref(),
        &saved,
        args.model.as_deref(),
        &raw,
        kind,
    )?;
    for note in &prediction.notes {
        err!("note: {note}");
    }
    let to_stdout = args.output_file.as_os_str() == "-";
    let out = (!to_stdout).then_some(args.output_file.as_path());
    runtime::predict::write_outputs(out, &prediction.outputs, prediction.class_names.as_deref())?;
    if !to_stdout {
        err!(
            "{} predictions written to {}",
            prediction.outputs.shape().first().copied().unwrap_or(0),
            args.output_file.display()
        );
    }
    Ok(())
}

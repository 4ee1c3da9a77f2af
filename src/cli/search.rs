//! `nnlc search FILE`: runs the file's `search` block. The strategy (`nnl::search::schedule`)
//! hands out waves of jobs; each job trains one trial — the file with the trial's values applied
//! as `--set` applies them, checked like source — in its own checkpoint directory under the
//! search's directory, `--jobs` at a time, each on its own pool of threads. After every trial
//! event the search's state (`search.json`) is written atomically, so a killed search continues
//! with `--resume DIR` where it stopped, with the same trials and results.

use super::train::{BackendKind, Common, init_weights, stop_on_signals};
use super::{err, err_raw, out, positive};
use nnl::runtime::tensorboard::TensorBoardLog;
use nnl::runtime::{
    self, Both, EpochRecord, Interpreter, Jit, Observer, RunOptions, Session, Trainer, checkpoint,
};
use nnl::search::schedule::{self, Job, Scheduler};
use nnl::search::state::{self, JobResult, SearchState, Status, Trial};
use nnl::search::{Config, Plan, Space, Strategy};
use nnl::syntax::overrides::{self, Override};
use nnl::tensorboard::{EventWriter, hparams};
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

#[derive(clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Trials trained at once; the threads (`--threads`, default every core) are divided
    /// between them (default: a trial per thread, up to 4, for models of fewer than a million
    /// parameters, whose steps gain little from more threads; else one trial on every thread)
    #[arg(long, value_parser = positive)]
    pub jobs: Option<usize>,
    /// The search's directory: its state (`search.json`) and a checkpoint directory per trial
    /// (default: the train block's `checkpoint` followed by `-search`, or `runs/<file>-search`)
    #[arg(long, conflicts_with = "resume")]
    pub dir: Option<PathBuf>,
    /// Continue the search whose directory is DIR (after a kill or Ctrl-C)
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Start afresh in a directory that holds an earlier search, removing its trials
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
    /// Write the search as JSON: every trial's values, status, epochs, goal, history and time
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write TensorBoard event files into DIR: a run per trial and the HParams tab's summaries
    #[arg(long, value_name = "DIR")]
    pub logdir: Option<PathBuf>,
    /// Train each trial on at most N batches per epoch (a quick look at a search)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub steps_per_epoch: Option<usize>,
    /// Which search block to run, for a file with several (1-based)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub block: Option<usize>,
}

/// Below this many parameters, trials run a thread each by default: measured on 2 cores,
/// iris's grid (131 parameters) takes 7.0 s with 2 jobs against 12.3 s with 1, and 4 trials of
/// the MNIST MLP (25k-200k parameters) 32-38 s against 53-54 s (on a busy machine).
const SMALL_MODEL: i64 = 1_000_000;
/// The most trials run at once by default (each holds its own copy of the data).
const MAX_DEFAULT_JOBS: usize = 4;

/// What every job reads.
struct Context<'a> {
    path: &'a str,
    /// The file's text with the command line's `--set` applied.
    text: &'a str,
    args: &'a SearchArgs,
    plan: &'a Plan,
    dir: &'a Path,
    threads: usize,
    stop: Arc<AtomicBool>,
    /// The data, loaded by the first job and copied for the others: trials vary the models and
    /// the optimizer, never the data block.
    data: std::sync::OnceLock<Result<nnl::data::Dataset, String>>,
}

/// What a job reports to the search's thread.
enum Event {
    Epoch {
        trial: usize,
        epoch: usize,
        epochs: usize,
    },
    Done(usize, Box<Outcome>),
}

/// How a job ended.
struct Outcome {
    status: Status,
    history: Vec<EpochRecord>,
    test: Option<runtime::Metrics>,
    message: Option<String>,
    /// The rendered diagnostics of a configuration that does not compile.
    diagnostics: Option<String>,
    seconds: f64,
    /// The epochs the job trained to.
    target: usize,
}

impl Outcome {
    fn failed(message: String, seconds: f64, target: usize) -> Outcome {
        Outcome {
            status: Status::Failed,
            history: Vec::new(),
            test: None,
            message: Some(message),
            diagnostics: None,
            seconds,
            target,
        }
    }
}

pub fn search(args: &SearchArgs) -> Result<(), String> {
    let started = Instant::now();
    let path = args.common.file.as_str();
    let original = crate::read_source(path).ok_or("nothing was run")?;
    let text = overrides::apply(&original, &args.common.overrides)?;
    let (check, program) = super::check_in_project(path, &text, &args.common.allow);
    err_raw!(
        "{}",
        nnl::diag::render(&check.sources, &check.diagnostics, crate::color())
    );
    if check.has_errors() {
        return Err(format!("`{path}` has errors; nothing was run"));
    }
    let root = &program.modules[program.root].ast;
    let blocks: Vec<&nnl::syntax::ast::SearchDecl> = root
        .items
        .iter()
        .filter_map(|i| match i {
            nnl::syntax::ast::Item::Search(s) => Some(s),
            _ => None,
        })
        .collect();
    let index = match (blocks.len(), args.block) {
        (0, _) => {
            return Err(format!(
                "`{path}` has no `search` block; `nnlc run {path}` trains it (docs/language.md, section 12, shows a search)"
            ));
        }
        (n, Some(b)) if b > n => {
            return Err(format!("`--block {b}`: `{path}` has {n} search blocks"));
        }
        (_, Some(b)) => b - 1,
        (1, None) => 0,
        (n, None) => {
            return Err(format!(
                "`{path}` has {n} search blocks: choose one with `--block 1` … `--block {n}`"
            ));
        }
    };
    let decl = blocks[index];
    let plan = nnl::search::plans(root, &text)
        .into_iter()
        .nth(index)
        .expect("one plan per block")?;
    let strategy_text = text[decl.strategy.span.range()].to_string();
    check_values(path, &text, &args.common, &plan, decl, &check.sources)?;

    let dir = match (&args.resume, &args.dir) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => default_dir(path, &program)?,
    };
    let _lock = checkpoint::claim(&dir, checkpoint::Claim::Fresh).map_err(|e| {
        e.replace(
            "another run is writing checkpoints to",
            "another search runs in",
        )
    })?;
    let mut state = match &args.resume {
        Some(_) => {
            let s = SearchState::load(&dir)
                .map_err(|e| format!("{e}; `--resume` takes the directory of an earlier search"))?;
            if s.source_hash != state::source_hash(&text) {
                return Err(format!(
                    "`{}` holds a search of another version of `{path}` (the file or its `--set` changed): resume with the same, or start afresh with `--overwrite`",
                    dir.display()
                ));
            }
            s
        }
        None => {
            if dir.join(state::FILE).exists() {
                if !args.overwrite {
                    return Err(format!(
                        "`{}` holds an earlier search: continue it with `nnlc search {path} --resume {}`, replace it with `--overwrite`, or search elsewhere with `--dir DIR`",
                        dir.display(),
                        dir.display()
                    ));
                }
                remove_trials(&dir)?;
            }
            SearchState::new(path, &text, &strategy_text, &plan.objective)
        }
    };
    let seconds_before = state.seconds;
    state.finished = false;
    state.save(&dir)?;

    let threads = args.common.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let parameters: i64 = check
        .summaries
        .iter()
        .filter(|s| plan.models.contains(&s.model))
        .filter_map(|s| s.total)
        .sum();
    let jobs = args
        .jobs
        .unwrap_or(if parameters < SMALL_MODEL {
            threads.min(MAX_DEFAULT_JOBS)
        } else {
            1
        })
        .min(threads.max(1));
    let per_job = (threads / jobs).max(1);
    let total = Scheduler::planned_trials(&plan);
    out!(
        "searching `{path}`: {strategy_text}, {} trial{}, {} {}; {jobs} at a time, {per_job} thread{} each; in {}",
        total,
        if total == 1 { "" } else { "s" },
        if plan.objective.maximize {
            "maximize"
        } else {
            "minimize"
        },
        plan.objective.name(),
        if per_job == 1 { "" } else { "s" },
        dir.display()
    );
    if let Some(logdir) = &args.logdir {
        write_experiment(logdir, path, &plan)?;
    }
    let ctx = Context {
        path,
        text: &text,
        args,
        plan: &plan,
        dir: &dir,
        threads: per_job,
        stop: stop_on_signals()?,
        data: std::sync::OnceLock::new(),
    };
    let table = Table::new(&plan);
    table.header();
    let mut scheduler = Scheduler::new(&plan);
    let mut last: Vec<schedule::Result> = Vec::new();
    let mut interrupted = false;
    while let Some(wave) = scheduler.next(&last) {
        let mut results: Vec<Option<schedule::Result>> = wave
            .iter()
            .map(|job| state.trial(job.trial).and_then(|t| t.result_of(job)))
            .collect();
        for (job, r) in wave.iter().zip(&results) {
            if let (Some(_), Some(t)) = (r, state.trial(job.trial))
                && t.config() != job.config
            {
                return Err(format!(
                    "trial {} in `{}` has other values than the strategy draws now; start afresh with `--overwrite`",
                    job.trial + 1,
                    dir.display()
                ));
            }
        }
        let todo: Vec<usize> = (0..wave.len()).filter(|&i| results[i].is_none()).collect();
        let finished = run_wave(&ctx, &wave, &todo, jobs, |event| match event {
            Event::Epoch {
                trial,
                epoch,
                epochs,
            } => {
                table.progress(trial, epoch, epochs);
                None
            }
            Event::Done(i, outcome) => {
                let job = &wave[i];
                if let Some(d) = &outcome.diagnostics {
                    table.clear_progress();
                    err_raw!("{d}");
                }
                let goal = record(&mut state, &ctx, job, &outcome);
                state.seconds = seconds_before + started.elapsed().as_secs_f64();
                let previous_best = state.best;
                state.update_best();
                if let Err(e) = state.save(&dir) {
                    err!("warning: cannot save the search's state: {e}");
                }
                let trial = state.trial(job.trial).expect("recorded");
                table.row(
                    trial,
                    job,
                    state.best != previous_best && state.best == Some(trial.trial),
                );
                if outcome.status == Status::Interrupted {
                    None
                } else {
                    Some((i, goal))
                }
            }
        });
        for (i, goal) in finished.iter().flatten() {
            results[*i] = Some(*goal);
        }
        if results.iter().any(Option::is_none) {
            interrupted = true;
            break;
        }
        last = results.into_iter().map(|r| r.expect("all ran")).collect();
    }
    table.clear_progress();
    state.finished = !interrupted;
    state.seconds = seconds_before + started.elapsed().as_secs_f64();
    state.update_best();
    state.save(&dir)?;
    if let Some(report) = &args.report {
        let json = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
        nnl::store::write_atomically(report, format!("{json}\n").as_bytes())?;
    }
    if interrupted {
        return Err(format!(
            "the search was interrupted; `{}` holds it: continue it with `nnlc search {path} --resume {}`",
            dir.display(),
            dir.display()
        ));
    }
    summary(&state, &plan, &dir);
    Ok(())
}

/// Every value of the lists and every bound of the distributions, applied alone and checked,
/// so that a value the file cannot take stops the search before it trains anything, with the
/// file's diagnostics and one at the search block's dimension.
fn check_values(
    path: &str,
    text: &str,
    common: &Common,
    plan: &Plan,
    decl: &nnl::syntax::ast::SearchDecl,
    sources: &nnl::source::SourceMap,
) -> Result<(), String> {
    let mut bad = Vec::new();
    for (dim, (_, expr)) in plan.dims.iter().zip(&decl.space) {
        let values: Vec<String> = match &dim.space {
            Space::Values(v) => v.iter().map(|v| v.text.clone()).collect(),
            Space::Uniform { lo, hi } | Space::LogUniform { lo, hi } => {
                vec![format!("{lo:?}"), format!("{hi:?}")]
            }
            Space::IntRange { lo, hi } => vec![lo.to_string(), hi.to_string()],
        };
        // Each value's own span where it is written: a list's item, a bound, a choice.
        let spans: Vec<nnl::source::Span> = match &expr.kind {
            nnl::syntax::ast::ExprKind::List(items) => items
                .iter()
                .map(|i| match i {
                    nnl::syntax::ast::ListItem::Expr(e) => e.span,
                    nnl::syntax::ast::ListItem::Spread(n) => n.span,
                })
                .collect(),
            nnl::syntax::ast::ExprKind::Call(call) => {
                call.args.iter().map(|a| a.value.span).collect()
            }
            _ => Vec::new(),
        };
        for (k, v) in values.into_iter().enumerate() {
            let span = spans.get(k).copied().unwrap_or(expr.span);
            let set = Override {
                name: dim.name.clone(),
                value: v.clone(),
            };
            let trial_text = overrides::apply(text, std::slice::from_ref(&set))?;
            let (check, _) = super::check_in_project(path, &trial_text, &common.allow);
            if check.has_errors() {
                let errors: Vec<nnl::diag::Diagnostic> = check
                    .diagnostics
                    .into_iter()
                    .filter(|d| d.is_error())
                    .collect();
                err_raw!(
                    "{}",
                    nnl::diag::render(&check.sources, &errors, crate::color())
                );
                bad.push(
                    nnl::diag::Diagnostic::error(
                        nnl::diag::codes::SETTING_VALUE,
                        format!("the file does not compile with `{} = {v}`", dim.name),
                    )
                    .with_primary(span, format!("the file cannot take `{v}`"))
                    .with_help(format!(
                        "the errors above are the file's with `--set {}={v}`; search values it can take",
                        dim.name
                    )),
                );
            }
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    err_raw!("{}", nnl::diag::render(sources, &bad, crate::color()));
    Err(format!(
        "the search block of `{path}` has values the file cannot take; nothing was run"
    ))
}

/// The default directory: the train block's checkpoint directory followed by `-search`, or
/// `runs/<file stem>-search`, next to the file.
fn default_dir(path: &str, program: &nnl::resolve::Program) -> Result<PathBuf, String> {
    let file = Path::new(path);
    let base = file.parent().unwrap_or(Path::new(""));
    let train = program.train().ok_or("the file has no `train` block")?;
    let declared = train.stmts.iter().find_map(|s| match s {
        nnl::syntax::ast::TrainStmt::Setting(set)
            if nnl::prim::TrainSetting::from_name(&set.name.name)
                == Some(nnl::prim::TrainSetting::Checkpoint) =>
        {
            match &set.value {
                nnl::syntax::ast::SettingValue::Values(v) => match v.first().map(|e| &e.kind) {
                    Some(nnl::syntax::ast::ExprKind::Str(s)) => Some(s.to_string()),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    });
    let stem = file
        .file_stem()
        .map_or("search".into(), |s| s.to_string_lossy().into_owned());
    Ok(match declared {
        Some(d) => base.join(format!("{}-search", d.trim_end_matches('/'))),
        None => base.join("runs").join(format!("{stem}-search")),
    })
}

/// Removes an earlier search's state and trial directories (`--overwrite`).
fn remove_trials(dir: &Path) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_trial = name
            .strip_prefix("trial-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_trial {
            std::fs::remove_dir_all(entry.path())
                .map_err(|e| format!("cannot remove `{}`: {e}", entry.path().display()))?;
        }
    }
    let _ = std::fs::remove_file(dir.join(state::FILE));
    Ok(())
}

fn trial_dir(dir: &Path, trial: usize) -> PathBuf {
    dir.join(format!("trial-{:03}", trial + 1))
}

/// Runs the jobs `todo` of a wave, `jobs` at a time, handing each event to `on_event` on this
/// thread; returns what `on_event` returned for each finished job.
fn run_wave<T>(
    ctx: &Context,
    wave: &[Job],
    todo: &[usize],
    jobs: usize,
    mut on_event: impl FnMut(Event) -> Option<T>,
) -> Vec<Option<T>> {
    let queue = Mutex::new(todo.iter().copied().collect::<VecDeque<usize>>());
    let (tx, rx) = mpsc::channel::<Event>();
    let mut results = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(todo.len()) {
            let tx = tx.clone();
            let queue = &queue;
            scope.spawn(move || {
                loop {
                    if ctx.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Some(i) = queue.lock().map(|mut q| q.pop_front()).ok().flatten() else {
                        break;
                    };
                    let started = Instant::now();
                    let outcome =
                        runtime::with_threads(ctx.threads, || run_job(ctx, &wave[i], &tx))
                            .unwrap_or_else(|e| {
                                Outcome::failed(e, started.elapsed().as_secs_f64(), 0)
                            });
                    if tx.send(Event::Done(i, Box::new(outcome))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for event in rx {
            results.push(on_event(event));
        }
    });
    results
}

/// Sends the search's thread each finished epoch of a trial.
struct Progress<'a> {
    trial: usize,
    tx: &'a mpsc::Sender<Event>,
}

impl Observer for Progress<'_> {
    fn epoch_done(&mut self, record: &EpochRecord, epochs: usize) {
        let _ = self.tx.send(Event::Epoch {
            trial: self.trial,
            epoch: record.epoch,
            epochs,
        });
    }
}

/// Trains one job: the trial's values applied to the file, checked, then a run in the trial's
/// directory — fresh, or continued from its last checkpoint (a promotion, or a job a kill
/// interrupted, which the exact-resume machinery finishes as if it had never stopped).
fn run_job(ctx: &Context, job: &Job, tx: &mpsc::Sender<Event>) -> Outcome {
    let started = Instant::now();
    let elapsed = || started.elapsed().as_secs_f64();
    let sets: Vec<Override> = job
        .config
        .iter()
        .map(|(name, v)| Override {
            name: name.clone(),
            value: v.text.clone(),
        })
        .collect();
    let text = match overrides::apply(ctx.text, &sets) {
        Ok(t) => t,
        Err(e) => return Outcome::failed(e, elapsed(), 0),
    };
    let (check, program) = super::check_in_project(ctx.path, &text, &ctx.args.common.allow);
    if check.has_errors() {
        let mut o = Outcome::failed(
            format!(
                "the file does not compile with {}",
                nnl::search::set_flags(&job.config)
            ),
            elapsed(),
            0,
        );
        o.diagnostics = Some(nnl::diag::render(
            &check.sources,
            &check.diagnostics,
            crate::color(),
        ));
        return o;
    }
    match train_job(ctx, job, &check, &program, tx) {
        Ok(mut o) => {
            o.seconds = elapsed();
            o
        }
        Err((message, target)) => {
            // What the trial trained before it failed is in its last checkpoint.
            let dir = trial_dir(ctx.dir, job.trial);
            let history = checkpoint::load(&dir.join(checkpoint::LAST))
                .map(|c| c.state.history)
                .unwrap_or_default();
            Outcome {
                history,
                ..Outcome::failed(message, elapsed(), target)
            }
        }
    }
}

fn train_job(
    ctx: &Context,
    job: &Job,
    check: &nnl::CheckOutput,
    program: &nnl::resolve::Program,
    tx: &mpsc::Sender<Event>,
) -> Result<Outcome, (String, usize)> {
    let backend: Box<dyn runtime::Backend> = match ctx.args.common.backend {
        BackendKind::Jit => Box::new(Jit {
            threads: ctx.threads,
            profile: false,
        }),
        BackendKind::Interp => Box::new(Interpreter {
            threads: ctx.threads,
        }),
    };
    let mut session = Session::new(program, &check.sources, None, backend).map_err(|e| (e, 0))?;
    session.set_health_every(None);
    let config = session.config().clone();
    let target = job.epochs.or(config.epochs).unwrap_or(1);
    let fail = |e: String| (e, target);
    let dir = trial_dir(ctx.dir, job.trial);
    let last = checkpoint::load(&dir.join(checkpoint::LAST)).ok();
    let resume = last.is_some();
    let _lock = checkpoint::claim(
        &dir,
        if resume {
            checkpoint::Claim::Resume
        } else {
            checkpoint::Claim::Overwrite
        },
    )
    .map_err(fail)?;
    let seed = config.seed.unwrap_or(0);
    let mut data = ctx
        .data
        .get_or_init(|| {
            let data = runtime::load_data(program, Path::new(ctx.path), seed)?;
            data.prepare();
            Ok(data)
        })
        .clone()
        .map_err(fail)?;
    let opts = RunOptions {
        seed: Some(seed),
        epochs: Some(target),
        checkpoint_dir: Some(dir.clone()),
        resume: resume.then(|| dir.clone()),
        steps_per_epoch: ctx.args.steps_per_epoch,
        log_every: None,
        stop: Some(Arc::clone(&ctx.stop)),
        // A job trained to its end before a kill that came before the search recorded it.
        finish_trained: true,
    };
    let splits = data.splits();
    let loaded = init_weights(ctx.path, None, &session, check).map_err(fail)?;
    let mut log = match &ctx.args.logdir {
        Some(logdir) => {
            Some(TensorBoardLog::create(&logdir.join(trial_name(job.trial)), 0).map_err(fail)?)
        }
        None => None,
    };
    let mut trainer = Trainer::new(&mut session, &mut data, &opts).map_err(fail)?;
    if let Some(w) = loaded
        && !resume
    {
        trainer.start_from(w);
    }
    let mut progress = Progress {
        trial: job.trial,
        tx,
    };
    let result = match &mut log {
        Some(log) => trainer.run(&mut Both(&mut progress, log)),
        None => trainer.run(&mut progress),
    }
    .map_err(fail)?;
    let resumed_after = last.map(|l| l.state.epochs_done);
    let report = runtime::report::Report::new(
        ctx.path,
        &session,
        ctx.threads,
        splits,
        &result,
        resumed_after,
        0.0,
    );
    let json = serde_json::to_string_pretty(&report).map_err(|e| fail(e.to_string()))?;
    nnl::store::write_atomically(&dir.join("report.json"), format!("{json}\n").as_bytes())
        .map_err(fail)?;
    if let Some(mut log) = log {
        if let Some(test) = &result.test {
            log.test(result.state.epochs_done, test);
        }
        if let Err(e) = log.finish() {
            err!(
                "warning: the TensorBoard logs of trial {} are incomplete: {e}",
                job.trial + 1
            );
        }
    }
    Ok(Outcome {
        status: if result.interrupted.is_some() {
            Status::Interrupted
        } else {
            Status::Completed
        },
        history: result.state.history,
        test: result.test,
        message: None,
        diagnostics: None,
        seconds: 0.0,
        target,
    })
}

fn trial_name(trial: usize) -> String {
    format!("trial-{:03}", trial + 1)
}

/// Records a finished job in the search's state; returns the trial's goal for the strategy
/// (None when it failed).
fn record(state: &mut SearchState, ctx: &Context, job: &Job, o: &Outcome) -> schedule::Result {
    let objective = ctx.plan.objective.clone();
    let dir = trial_dir(ctx.dir, job.trial);
    let command = reproduce(ctx, &job.config, job.epochs);
    let trial = state.trial_mut(job.trial, || Trial {
        trial: job.trial + 1,
        config: state::settings(&job.config),
        status: Status::Running,
        epochs: 0,
        goal: None,
        best_epoch: None,
        message: None,
        seconds: 0.0,
        checkpoint: dir.display().to_string(),
        command: String::new(),
        jobs: Vec::new(),
        history: Vec::new(),
        test: None,
    });
    let best = state::goal_of(&o.history, &objective);
    trial.status = o.status;
    trial.epochs = o.history.last().map_or(0, |e| e.epoch);
    trial.goal = best.map(|b| b.0);
    trial.best_epoch = best.map(|b| b.1);
    trial.message = o.message.clone();
    trial.seconds += o.seconds;
    trial.command = command;
    trial.history = o.history.clone();
    trial.test = o.test.clone();
    if trial.status == Status::Completed && trial.goal.is_none() {
        trial.status = Status::Failed;
        trial.message = Some(format!("no epoch computed `{}`", objective.name()));
    }
    let goal = match trial.status {
        Status::Completed => trial.goal,
        _ => None,
    };
    if o.status != Status::Interrupted {
        trial.jobs.retain(|r| r.epochs != job.epochs);
        trial.jobs.push(JobResult {
            epochs: job.epochs,
            goal,
        });
    }
    if let Some(logdir) = &ctx.args.logdir
        && o.status != Status::Interrupted
    {
        let t = state.trial(job.trial).expect("recorded").clone();
        if let Err(e) = write_session(logdir, &t, o.target) {
            err!("warning: no HParams summary for trial {}: {e}", t.trial);
        }
    }
    goal
}

/// `nnlc run FILE --set …` that trains a trial again alone (its values, the command line's
/// `--set`, and Hyperband's epochs).
fn reproduce(ctx: &Context, config: &Config, epochs: Option<usize>) -> String {
    let mut words = vec![
        "nnlc".to_string(),
        "run".to_string(),
        nnl::search::shell_word(ctx.path),
    ];
    for o in &ctx.args.common.overrides {
        words.push("--set".into());
        words.push(nnl::search::shell_word(&format!("{}={}", o.name, o.value)));
    }
    for (name, v) in config {
        words.push("--set".into());
        words.push(nnl::search::shell_word(&format!("{name}={}", v.text)));
    }
    if let Some(e) = epochs {
        words.push("--epochs".into());
        words.push(e.to_string());
    }
    if let Some(s) = ctx.args.steps_per_epoch {
        words.push("--steps-per-epoch".into());
        words.push(s.to_string());
    }
    words.join(" ")
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn hparam(v: &nnl::search::Value) -> hparams::HParam {
    match v.number {
        Some(x) => hparams::HParam::Number(x),
        None => hparams::HParam::Text(v.text.clone()),
    }
}

/// The HParams experiment, in the log directory's root run.
fn write_experiment(logdir: &Path, path: &str, plan: &Plan) -> Result<(), String> {
    let specs: Vec<hparams::HParamSpec> = plan
        .dims
        .iter()
        .map(|d| hparams::HParamSpec {
            name: d.name.clone(),
            domain: match &d.space {
                Space::Values(v) => hparams::Domain::Discrete(v.iter().map(hparam).collect()),
                Space::Uniform { lo, hi } | Space::LogUniform { lo, hi } => {
                    hparams::Domain::Interval { min: *lo, max: *hi }
                }
                Space::IntRange { lo, hi } => hparams::Domain::Interval {
                    min: *lo as f64,
                    max: *hi as f64,
                },
            },
        })
        .collect();
    let metric = hparams::MetricSpec {
        group: plan.objective.split.clone(),
        tag: format!("epoch/{}", plan.objective.metric),
        training: plan.objective.split == "train",
    };
    let mut w = EventWriter::create(logdir)?;
    w.summary(0, hparams::experiment(path, &specs, &[metric], now_secs()))?;
    w.flush()
}

/// A trial's HParams session: its values at its start, its status at its end.
fn write_session(logdir: &Path, t: &Trial, epochs: usize) -> Result<(), String> {
    let values: Vec<(String, hparams::HParam)> = t
        .config()
        .iter()
        .map(|(n, v)| (n.clone(), hparam(v)))
        .collect();
    let mut w = EventWriter::create(&logdir.join(format!("trial-{:03}", t.trial)))?;
    let end = now_secs();
    w.summary(0, hparams::session_start(&values, "", end - t.seconds))?;
    let status = match t.status {
        Status::Completed => hparams::Status::Success,
        _ => hparams::Status::Failure,
    };
    w.summary(epochs as u64, hparams::session_end(status, end))?;
    w.flush()
}

/// The live table: a row per finished job on stdout; on a terminal, the running trials' epochs
/// on a status line of stderr.
struct Table {
    names: Vec<String>,
    widths: Vec<usize>,
    goal: String,
    live: bool,
    running: Mutex<Vec<(usize, usize, usize)>>,
}

impl Table {
    fn new(plan: &Plan) -> Table {
        let names: Vec<String> = plan.dims.iter().map(|d| d.name.clone()).collect();
        let widths = plan
            .dims
            .iter()
            .map(|d| {
                let longest = match &d.space {
                    Space::Values(v) => v.iter().map(|v| v.text.chars().count()).max().unwrap_or(0),
                    Space::IntRange { lo, hi } => lo.to_string().len().max(hi.to_string().len()),
                    _ => 9,
                };
                longest.max(d.name.chars().count())
            })
            .collect();
        Table {
            names,
            widths,
            goal: plan.objective.name(),
            live: std::io::stderr().is_terminal(),
            running: Mutex::new(Vec::new()),
        }
    }

    fn header(&self) {
        let mut line = format!("{:>5}", "trial");
        for (n, w) in self.names.iter().zip(&self.widths) {
            line += &format!("  {n:>w$}");
        }
        line += &format!(
            "  {:>6}  {:>w$}  {:>8}  status",
            "epochs",
            self.goal,
            "time",
            w = self.goal.len().max(8)
        );
        out!("{line}");
    }

    fn row(&self, t: &Trial, job: &Job, new_best: bool) {
        self.finish_progress(job.trial);
        let mut line = format!("{:>5}", t.trial);
        for (s, w) in t.config.iter().zip(&self.widths) {
            line += &format!("  {:>w$}", s.value);
        }
        let goal = t.goal.map_or("-".to_string(), |g| format!("{g:.4}"));
        let status = match (t.status, &t.message) {
            (Status::Completed, _) if new_best => "best so far".to_string(),
            (Status::Completed, _) => String::new(),
            (Status::Failed, Some(m)) => format!("failed: {m}"),
            (s, _) => format!("{s:?}").to_lowercase(),
        };
        let rung = job.rung.map_or(String::new(), |(b, r)| {
            format!("(bracket {}, rung {})", b + 1, r + 1)
        });
        let status = [status, rung]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        line += &format!(
            "  {:>6}  {goal:>w$}  {:>7.1}s  {status}",
            t.epochs,
            t.seconds,
            w = self.goal.len().max(8)
        );
        out!("{}", line.trim_end());
        self.draw();
    }

    fn progress(&self, trial: usize, epoch: usize, epochs: usize) {
        if let Ok(mut r) = self.running.lock() {
            r.retain(|x| x.0 != trial);
            r.push((trial, epoch, epochs));
            r.sort();
        }
        self.draw();
    }

    fn finish_progress(&self, trial: usize) {
        if let Ok(mut r) = self.running.lock() {
            r.retain(|x| x.0 != trial);
        }
        self.clear_progress();
    }

    fn clear_progress(&self) {
        if self.live {
            err_raw!("\r\x1b[2K");
        }
    }

    fn draw(&self) {
        if !self.live {
            return;
        }
        let Ok(r) = self.running.lock() else { return };
        if r.is_empty() {
            return;
        }
        let parts: Vec<String> = r
            .iter()
            .map(|(t, e, n)| format!("trial {} epoch {e}/{n}", t + 1))
            .collect();
        err_raw!("\r\x1b[2Krunning: {}", parts.join(", "));
    }
}

/// The best trial, where its checkpoints are, and the command that trains it again.
fn summary(state: &SearchState, plan: &Plan, dir: &Path) {
    let done = state
        .trials
        .iter()
        .filter(|t| t.status == Status::Completed)
        .count();
    let failed = state.trials.len() - done;
    let epochs: usize = state.trials.iter().map(|t| t.epochs).sum();
    out!(
        "searched {} trial{} ({failed} failed), {epochs} epochs in {:.1}s",
        state.trials.len(),
        if state.trials.len() == 1 { "" } else { "s" },
        state.seconds
    );
    let Some(best) = state
        .best
        .and_then(|b| state.trials.iter().find(|t| t.trial == b))
    else {
        out!(
            "no trial finished; nothing to choose (the failures are in {})",
            dir.join(state::FILE).display()
        );
        return;
    };
    let values: Vec<String> = best
        .config
        .iter()
        .map(|s| format!("{} = {}", s.name, s.value))
        .collect();
    out!(
        "best: trial {}, {} {:.4} at epoch {}: {}",
        best.trial,
        plan.objective.name(),
        best.goal.unwrap_or(f64::NAN),
        best.best_epoch.unwrap_or(0),
        values.join(", ")
    );
    if let Some(test) = &best.test {
        out!("  test: {}", runtime::console::format_metrics(test));
    }
    out!("  checkpoints: {}", best.checkpoint);
    out!("  reproduce: {}", best.command);
    out!("  every trial: {}", dir.join(state::FILE).display());
    if matches!(plan.strategy, Strategy::Hyperband { .. }) {
        let full = state.trials.len()
            * match plan.strategy {
                Strategy::Hyperband { max_epochs, .. } => max_epochs,
                _ => 0,
            };
        out!(
            "  Hyperband trained {epochs} epochs, {:.0}% of the {full} of training every configuration fully",
            100.0 * epochs as f64 / full.max(1) as f64
        );
    }
}

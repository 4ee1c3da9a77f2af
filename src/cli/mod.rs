//! The commands' argument handling and output, shared by `main.rs` and the training commands.

pub mod data;
pub mod export;
pub mod generate;
pub mod plot;
pub mod search;
pub mod train;

/// `println!` that never panics: when stdout is closed (`nnlc run … | head -1`), what cannot be
/// written is dropped and the command goes on.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !$crate::cli::quiet() {
            let _ = writeln!(std::io::stdout(), $($arg)*);
        }
    }};
}

/// `print!` that never panics (see [`out!`]).
macro_rules! out_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !$crate::cli::quiet() {
            let _ = write!(std::io::stdout(), $($arg)*);
        }
    }};
}

/// `eprintln!` that never panics when stderr is closed.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !$crate::cli::quiet() {
            let _ = writeln!(std::io::stderr(), $($arg)*);
        }
    }};
}

/// `eprint!` that never panics (see [`err!`]).
macro_rules! err_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if !$crate::cli::quiet() {
            let _ = write!(std::io::stderr(), $($arg)*);
        }
    }};
}

pub(crate) use {err, err_raw, out, out_raw};

/// Set in the processes of a data-parallel job other than rank 0, which print nothing.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(feature = "mpi")]
pub fn set_quiet() {
    QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A count given on the command line (`--threads`, `--steps-per-epoch`, `--batch` of `nnlc ir`):
/// the check and the message of a count written in a file (`batch 0`: "must be a positive whole
/// number").
pub fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a positive whole number, found {text}")),
    }
}

/// Where paths written in `.nnl` files may lead beyond their project.
#[derive(clap::Args, Clone, Default)]
pub struct Allow {
    /// Let paths written in the file (`use`, data sources, `checkpoint`) lead into DIR, outside
    /// the file's directory and the current directory (repeatable; also NNL_ALLOW_PATH)
    #[arg(long = "allow-path", value_name = "DIR")]
    pub dirs: Vec<std::path::PathBuf>,
}

/// Reads, resolves and checks the file at `path` (with `text`, after any `--set`) within its
/// project: `use`d files and the paths it writes must stay inside it unless `allow` lets them out.
pub fn check_in_project(
    path: &str,
    text: impl Into<String>,
    allow: &Allow,
) -> (nnl::CheckOutput, nnl::resolve::Program) {
    check_in_project_keeping(path, text, allow, nnl::check::Keep::ALL)
}

/// As [`check_in_project`], keeping only what `keep` asks for besides the diagnostics.
pub fn check_in_project_keeping(
    path: &str,
    text: impl Into<String>,
    allow: &Allow,
    keep: nnl::check::Keep,
) -> (nnl::CheckOutput, nnl::resolve::Program) {
    let project = nnl::fs::Project::of_file(std::path::Path::new(path), &allow.dirs);
    let loader = nnl::fs::ProjectLoader { project: &project };
    let (mut out, program) = nnl::check_program_keeping(path, text, &loader, keep);
    out.diagnostics.extend(nnl::fs::check_paths(
        &program,
        std::path::Path::new(path),
        &project,
    ));
    nnl::diag::sort_and_dedup(&mut out.diagnostics);
    (out, program)
}

//! The file-system adaptor for callers of the pipeline (the CLI, the language server and
//! tests): reading `use`d files, and where paths written in a `.nnl` file may lead. The stages
//! themselves never read files.
//!
//! A `.nnl` file is shared the way a notebook is, so what it names stays inside its project:
//! `use` files, data sources and the checkpoint directory must resolve (symbolic links
//! followed) inside the directory tree of the file being run or the current directory, unless
//! the user allows more with `--allow-path DIR` or the environment variable [`ALLOW_ENV`].
//! Paths the user types on the command line are the user's own choice and are not checked.

use crate::diag::Diagnostic;
use crate::resolve::{Loader, Program, Refusal};
use crate::source::Span;
use crate::syntax::ast::{Call, DataStmt, Expr, ExprKind, Item, SettingValue, TrainStmt};
use std::path::{Component, Path, PathBuf};

/// Reads `use`d files from the disk, wherever they are (tests, trusted tools).
pub struct DiskLoader;

impl Loader for DiskLoader {
    fn load(&self, path: &str) -> Result<String, String> {
        read_source(Path::new(path))
    }
}

/// The largest source file read: checking takes about 0.4 s of CPU per megabyte and
/// under 50 bytes of memory per byte of source, so this keeps a check within a minute and 3 GiB.
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// The memory a check takes per byte of source, rounded up from the largest: a check keeping
/// the types, summaries and facts (the language server, `nnlc run`) takes 33–38 bytes of heap
/// per byte (`tests/check_memory.rs`); `nnlc check`, which keeps the diagnostics alone, 19–28
/// bytes of resident memory (`tools/check_scaling.py` at 1 to 50 MB). One figure for every
/// reader of sources, so the refusal is never too late.
pub const CHECK_BYTES_PER_SOURCE_BYTE: u128 = 50;

/// Refuses a source of `len` bytes whose check would need more memory than there is: the
/// allocator would abort the process, so this says so first.
pub fn check_fits_in_memory(len: usize) -> Result<(), String> {
    let needed = len as u128 * CHECK_BYTES_PER_SOURCE_BYTE;
    match available_memory() {
        Some(available) if needed > available => Err(format!(
            "checking {} MiB of source takes about {} MiB of memory, and only {} MiB is available: split the file",
            len >> 20,
            needed >> 20,
            available >> 20
        )),
        _ => Ok(()),
    }
}

/// The bytes this process can still get, when the system says: the memory available
/// (`MemAvailable`), and under an address-space limit (`ulimit -v`) what is left of it.
pub fn available_memory() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let free = meminfo
        .as_deref()
        .and_then(|m| kib_field(m, "MemAvailable:"));
    let status = std::fs::read_to_string("/proc/self/status").ok();
    let used = status.as_deref().and_then(|s| kib_field(s, "VmSize:"));
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| address_space_limit(&l));
    let left_in_limit = limit.zip(used).map(|(l, u)| l.saturating_sub(u));
    match (free, left_in_limit) {
        (Some(f), Some(l)) => Some(f.min(l)),
        (f, l) => f.or(l),
    }
}

/// A `/proc` field given in kB (`MemAvailable:   1234 kB`), in bytes.
fn kib_field(text: &str, name: &str) -> Option<u128> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u128 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft address-space limit of `/proc/self/limits`, None when unlimited.
fn address_space_limit(limits: &str) -> Option<u128> {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A source file's text: a regular file (not a device or a FIFO, which may have no end) of at
/// most [`MAX_SOURCE_BYTES`], in UTF-8. The error says why not.
pub fn read_source(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file".to_string());
    }
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(format!(
            "it is {} MiB; source files may have at most {} MiB",
            meta.len() >> 20,
            MAX_SOURCE_BYTES >> 20
        ));
    }
    check_fits_in_memory(meta.len() as usize)?;
    let bytes = crate::store::read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "it is not UTF-8 text (byte {} is not)",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Directories (`:`-separated, like `PATH`) that paths written in `.nnl` files may reach, in
/// addition to `--allow-path`.
pub const ALLOW_ENV: &str = "NNL_ALLOW_PATH";

/// The directories that paths written in `.nnl` files may lead into.
#[derive(Debug, Clone)]
pub struct Project {
    /// Canonical directories.
    roots: Vec<PathBuf>,
}

impl Project {
    /// The directory of `file`, the current directory, `allowed` and the directories of
    /// [`ALLOW_ENV`].
    pub fn of_file(file: &Path, allowed: &[PathBuf]) -> Project {
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Project::new(
            [dir, Path::new(".")].into_iter().map(Path::to_path_buf),
            allowed,
        )
    }

    /// `roots`, `allowed` and the directories of [`ALLOW_ENV`] (the language server's project is
    /// its workspace).
    pub fn new(roots: impl IntoIterator<Item = PathBuf>, allowed: &[PathBuf]) -> Project {
        let from_env: Vec<PathBuf> = std::env::var_os(ALLOW_ENV)
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        let mut canonical: Vec<PathBuf> = Vec::new();
        for dir in roots
            .into_iter()
            .chain(allowed.iter().cloned())
            .chain(from_env)
        {
            if dir.as_os_str().is_empty() {
                continue;
            }
            if let Ok(c) = dir.canonicalize()
                && !canonical.contains(&c)
            {
                canonical.push(c);
            }
        }
        Project { roots: canonical }
    }

    /// Whether `path` (relative to the current directory) leads inside the project; the
    /// refusal names where it leads and how to allow it.
    pub fn check(&self, path: &Path) -> Result<(), Refusal> {
        let real = real_path(path);
        if self.roots.iter().any(|r| real.starts_with(r)) {
            return Ok(());
        }
        let roots: Vec<String> = self
            .roots
            .iter()
            .map(|r| format!("`{}`", r.display()))
            .collect();
        let dir = if real.is_dir() {
            real.clone()
        } else {
            real.parent().map_or(real.clone(), Path::to_path_buf)
        };
        Err(Refusal {
            reason: format!(
                "it leads to `{}`, outside the project ({})",
                real.display(),
                roots.join(", ")
            ),
            help: format!(
                "keep the files a model needs inside its project; to allow this one, pass `--allow-path {}` (or add the directory to {ALLOW_ENV})",
                dir.display()
            ),
        })
    }
}

/// `path` made absolute, component by component: symbolic links resolved where it exists,
/// `.` and `..` applied to what is resolved so far.
fn real_path(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::Prefix(_) | Component::RootDir => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

/// Reads `use`d files from the disk, refusing those outside a [`Project`] and files that are
/// not nnl source (so that no diagnostic ever quotes another kind of file).
pub struct ProjectLoader<'a> {
    pub project: &'a Project,
}

impl Loader for ProjectLoader<'_> {
    fn load(&self, path: &str) -> Result<String, String> {
        read_source(Path::new(path))
    }

    fn permit(&self, path: &str) -> Result<(), Refusal> {
        self.project.check(Path::new(path))?;
        nnl_source(Path::new(path))
    }
}

/// Refuses a `use`d path whose file (symbolic links followed) is not named `*.nnl`.
pub fn nnl_source(path: &Path) -> Result<(), Refusal> {
    let real = real_path(path);
    if real.extension().is_some_and(|e| e == "nnl") {
        return Ok(());
    }
    Err(Refusal {
        reason: format!("`{}` is not an nnl source file", real.display()),
        help: "`use \"…\"` reads `.nnl` files".into(),
    })
}

/// Errors for the paths the program's files write (data sources, the train block's checkpoint
/// directory) that lead outside `project`. Data paths and the checkpoint directory are
/// relative to `root_file`'s directory, as the runtime reads them.
pub fn check_paths(program: &Program, root_file: &Path, project: &Project) -> Vec<Diagnostic> {
    let base = root_file.parent().unwrap_or(Path::new(""));
    let mut diags = Vec::new();
    let mut check = |written: &str, span: Span, what: &str| {
        if let Err(r) = project.check(&base.join(written)) {
            diags.push(
                Diagnostic::error(
                    crate::diag::codes::PATH_OUTSIDE_PROJECT,
                    format!("{what} `{written}` is outside the project"),
                )
                .with_primary(span, r.reason)
                .with_help(r.help),
            );
        }
    };
    for module in program.modules.iter().filter(|m| !m.is_std) {
        for item in &module.ast.items {
            match item {
                Item::Data(d) => {
                    for stmt in &d.stmts {
                        // Sources name data files; a field's `tokenize(bpe(file: …))` a
                        // tokenizer file.
                        if let DataStmt::Source { value, .. } | DataStmt::Field { value, .. } = stmt
                        {
                            for (path, span, what) in source_paths(value) {
                                check(path, span, what);
                            }
                        }
                    }
                }
                Item::Train(t) => {
                    for stmt in &t.stmts {
                        if let TrainStmt::Setting(s) = stmt
                            && matches!(
                                crate::prim::TrainSetting::from_name(&s.name.name),
                                Some(
                                    crate::prim::TrainSetting::Checkpoint
                                        | crate::prim::TrainSetting::Log
                                )
                            )
                            && let SettingValue::Values(v) = &s.value
                            && let [
                                Expr {
                                    kind: ExprKind::Str(dir),
                                    span,
                                },
                            ] = &v[..]
                        {
                            let what = if s.name.name == "log" {
                                "the log directory"
                            } else {
                                "the checkpoint directory"
                            };
                            check(dir, *span, what);
                        }
                        if let TrainStmt::Setting(s) = stmt
                            && s.name.name == "init"
                            && let Some((file, span)) = init_path(&s.value)
                        {
                            check(file, span, "the weights file");
                        }
                    }
                }
                _ => {}
            }
        }
    }
    diags
}

/// The weights file of `init "w.safetensors"` or `init("w.safetensors", …)`.
fn init_path(value: &SettingValue) -> Option<(&str, Span)> {
    let e = match value {
        SettingValue::Values(v) if v.len() == 1 => &v[0],
        SettingValue::Call(args, _) => &args.iter().find(|a| a.name.is_none())?.value,
        _ => return None,
    };
    match &e.kind {
        ExprKind::Str(file) => Some((file, e.span)),
        _ => None,
    }
}

/// The file paths of a data source expression: the path arguments of `csv`, `idx`, `npy`,
/// `npz`, `text` and `images` calls and the `file` of a `bpe` tokenizer, written as strings,
/// through `|> join(…)` (an `images` folder's files must stay inside it, [`crate::data`]).
fn source_paths(e: &Expr) -> Vec<(&str, Span, &'static str)> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Pipe { lhs, rhs } => {
                stack.push(lhs);
                stack.push(rhs);
            }
            ExprKind::Call(call) => {
                let Call { callee, args, .. } = &**call;
                // The parameters that name files, and how many of them come first (may be
                // given by position).
                let is_tokenizer = matches!(&callee.kind, ExprKind::Name(n) if n.name == "bpe");
                let what = if is_tokenizer {
                    "the tokenizer file"
                } else {
                    "the data file"
                };
                let (paths, positional): (&[&str], usize) = match &callee.kind {
                    ExprKind::Name(n) if n.name == "idx" => (&["images", "labels"], 2),
                    ExprKind::Name(n)
                        if ["csv", "npy", "npz", "images", "text"].contains(&n.name.as_str()) =>
                    {
                        (&["path"], 1)
                    }
                    ExprKind::Name(n) if n.name == "bpe" => (&["file"], 0),
                    _ => (&[], 0),
                };
                for (i, a) in args.iter().enumerate() {
                    let is_path = match &a.name {
                        Some(n) => paths.contains(&n.name.as_str()),
                        None => i < positional,
                    };
                    match &a.value.kind {
                        ExprKind::Str(s) if is_path => out.push((&**s, a.value.span, what)),
                        _ => stack.push(&a.value),
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_are_read_in_bytes() {
        let meminfo = "MemTotal:       24000000 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(kib_field(meminfo, "MemAvailable:"), Some(2048 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax address space         4294967296           unlimited            bytes\n";
        assert_eq!(address_space_limit(limits), Some(4294967296));
        let unlimited =
            "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_limit(unlimited), None);
    }
}

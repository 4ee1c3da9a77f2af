//! nnl: the compiler pipeline as a library. Data flows one way:
//! syntax → resolve → check → lower → grad (`step`) → optimize (`opt`) → fuse and codegen
//! (`jit`) → runtime, with `interp` as the reference backend. The compiler stages perform no
//! IO: the caller loads files into a `SourceMap` and serves `use "…"`d files through a
//! `resolve::Loader` (`fs::DiskLoader` reads the disk). `data`, the first part of the runtime,
//! reads the data files a `data` block names.

pub mod bind;
pub mod builtins;
pub mod check;
pub mod data;
pub mod diag;
pub mod exec;
pub mod export;
pub mod fmt;
pub mod fs;
pub mod grad;
pub mod interp;
pub mod ir;
pub mod jit;
pub mod lower;
pub mod lsp;
pub mod opt;
mod par;
pub mod plot;
pub mod prim;
pub mod resolve;
pub mod runtime;
pub mod search;
pub mod source;
pub mod step;
pub mod store;
mod suggest;
pub mod syntax;
pub mod tensor;
pub mod tensorboard;

use diag::Diagnostic;
use source::SourceMap;

/// Everything `nnlc check` learns about a file.
pub struct CheckOutput {
    pub sources: SourceMap,
    pub summaries: Vec<check::ModelSummary>,
    /// Sorted by position; errors and warnings.
    pub diagnostics: Vec<Diagnostic>,
    /// The type of each expression of the checked file, by span (for editors' hovers).
    pub types: check::ExprTypes,
}

impl CheckOutput {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses, resolves and checks the program whose root file is `name` with contents `text`.
pub fn check_source(name: &str, text: &str, loader: &dyn resolve::Loader) -> CheckOutput {
    check_program(name, text, loader).0
}

/// Parses, resolves and checks, and also gives the resolved program (for lowering, loading its
/// data, and the language server's navigation).
pub fn check_program(
    name: &str,
    text: impl Into<String>,
    loader: &dyn resolve::Loader,
) -> (CheckOutput, resolve::Program) {
    check_program_keeping(name, text, loader, check::Keep::ALL)
}

/// As [`check_program`], keeping only what `keep` asks for besides the diagnostics (which are
/// the same): `nnlc check` keeps neither the types of expressions nor, unless `--summary`, the
/// summaries, nor the facts lowering reads (so the program it returns cannot be lowered).
pub fn check_program_keeping(
    name: &str,
    text: impl Into<String>,
    loader: &dyn resolve::Loader,
    keep: check::Keep,
) -> (CheckOutput, resolve::Program) {
    let mut sources = SourceMap::new();
    let root = sources.add(name, text, false);
    let (mut program, mut diagnostics) = resolve::resolve(&mut sources, root, loader);
    let (checked, check_diags) = check::check_keeping(&program, &sources, keep);
    program.facts = checked.facts;
    diagnostics.extend(check_diags);
    diag::sort_and_dedup(&mut diagnostics);
    let out = CheckOutput {
        sources,
        summaries: checked.summaries,
        diagnostics,
        types: checked.types,
    };
    (out, program)
}

/// Checks, then lowers the program's `train` block to graphs. `lowered` is None when there are
/// errors (all of them are in `check.diagnostics`).
pub struct LowerOutput<T> {
    pub check: CheckOutput,
    pub lowered: Option<T>,
}

pub fn lower_source(
    name: &str,
    text: &str,
    loader: &dyn resolve::Loader,
    opts: &lower::Options,
) -> LowerOutput<lower::Lowered> {
    after_check(name, text, loader, |program, sources| {
        lower::lower(program, sources, opts)
    })
}

/// Checks, then lowers one model alone (`nnlc ir --model M`).
pub fn lower_model_source(
    name: &str,
    text: &str,
    loader: &dyn resolve::Loader,
    opts: &lower::Options,
    model: &str,
    training: bool,
) -> LowerOutput<ir::Graph> {
    after_check(name, text, loader, |program, sources| {
        lower::lower_model(program, sources, opts, model, training)
    })
}

/// Runs `stage` on a program that checked without errors.
fn after_check<T>(
    name: &str,
    text: &str,
    loader: &dyn resolve::Loader,
    stage: impl FnOnce(&resolve::Program, &SourceMap) -> Result<T, Diagnostic>,
) -> LowerOutput<T> {
    let (mut check, program) = check_program(name, text, loader);
    if check.has_errors() {
        return LowerOutput {
            check,
            lowered: None,
        };
    }
    match stage(&program, &check.sources) {
        Ok(l) => LowerOutput {
            check,
            lowered: Some(l),
        },
        Err(d) => {
            check.diagnostics.push(d);
            LowerOutput {
                check,
                lowered: None,
            }
        }
    }
}

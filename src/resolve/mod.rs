//! Name resolution: loads the standard library and `use`d files, builds each module's scope,
//! and reports unknown names (with suggestions), duplicates, import cycles and recursion.
//!
//! Scopes, innermost first: locals (parameters, `let`, closure and scan patterns, `param`/`state`),
//! the module's own items, its imports, then the prelude (every `std` module but `std.nn`),
//! then builtins. Data blocks are resolved by the checker, which knows the data vocabulary.

mod walk;

use crate::diag::Diagnostic;
use crate::diag::codes;
use crate::source::{FileId, SourceMap, Span};
use crate::syntax::ast::{self, Item, UseNames, UseTarget};
use crate::syntax::symbol::Symbol;
use rustc_hash::FxHashMap;
use std::collections::HashSet;

/// The standard library, embedded in the binary: (module name, file name, text).
pub const STDLIB: &[(&str, &str, &str)] = &[
    (
        "std.ops",
        "std/ops.nnl",
        include_str!("../../stdlib/ops.nnl"),
    ),
    (
        "std.losses",
        "std/losses.nnl",
        include_str!("../../stdlib/losses.nnl"),
    ),
    (
        "std.metrics",
        "std/metrics.nnl",
        include_str!("../../stdlib/metrics.nnl"),
    ),
    (
        "std.optim",
        "std/optim.nnl",
        include_str!("../../stdlib/optim.nnl"),
    ),
    (
        "std.schedules",
        "std/schedules.nnl",
        include_str!("../../stdlib/schedules.nnl"),
    ),
    (
        "std.reg",
        "std/reg.nnl",
        include_str!("../../stdlib/reg.nnl"),
    ),
    ("std.nn", "std/nn.nnl", include_str!("../../stdlib/nn.nnl")),
];

/// Modules whose names are visible everywhere without `use`.
fn in_prelude(module_name: &str) -> bool {
    module_name.starts_with("std.") && module_name != "std.nn"
}

/// Reads the files named by `use "…"`. The CLI reads the disk; tests and the language server
/// may serve files from memory.
pub trait Loader {
    fn load(&self, path: &str) -> Result<String, String>;

    /// Whether `path` may be read at all (see `crate::fs::Project`); asked before `load`.
    fn permit(&self, _path: &str) -> Result<(), Refusal> {
        Ok(())
    }
}

/// Why a loader will not read a path: where it leads, and how the user can allow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub reason: String,
    pub help: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemRef {
    pub module: usize,
    pub index: usize,
}

#[derive(Debug)]
pub struct ModuleInfo {
    /// `std.nn`, or the file's path for user files.
    pub name: String,
    pub file: FileId,
    pub ast: ast::Module,
    /// Every item name visible at module level.
    pub scope: Scope,
    pub is_std: bool,
    /// Names whose `use` failed (already reported there): their uses are not reported again.
    pub failed_imports: HashSet<String>,
    /// A `use … .*` failed: no unknown name in this module is reported.
    pub failed_glob_import: bool,
}

/// The names visible at a module's top level: its items, its imports and the prelude.
pub type Scope = FxHashMap<Symbol, ItemRef>;

#[derive(Debug)]
pub struct Program {
    pub modules: Vec<ModuleInfo>,
    pub root: usize,
    /// Filled by the checker (`crate::check_program`): what lowering reads of the checked
    /// program. Empty for a program that was not checked.
    pub facts: crate::check::Facts,
}

impl Program {
    /// The root file's `train` block, if it has one.
    pub fn train(&self) -> Option<&crate::syntax::ast::TrainDecl> {
        self.modules[self.root]
            .ast
            .items
            .iter()
            .find_map(|i| match i {
                Item::Train(t) => Some(t),
                _ => None,
            })
    }

    pub fn item(&self, r: ItemRef) -> &Item {
        &self.modules[r.module].ast.items[r.index]
    }

    pub fn def(&self, r: ItemRef) -> Option<&ast::Def> {
        match self.item(r) {
            Item::Def(d) => Some(d),
            _ => None,
        }
    }

    pub fn lookup(&self, module: usize, name: &str) -> Option<ItemRef> {
        self.modules[module].scope.get(name).copied()
    }

    /// The std module that defines `name`, for "add `use std.nn.{Dense}`" hints.
    pub fn std_home_of(&self, name: &str) -> Option<&str> {
        self.modules
            .iter()
            .find(|m| m.is_std && item_names(&m.ast).any(|(n, _)| n == name))
            .map(|m| m.name.as_str())
    }
}

fn item_names(m: &ast::Module) -> impl Iterator<Item = (&str, Span)> {
    m.items.iter().filter_map(|it| match it {
        Item::Def(d) => Some((d.name.name.as_str(), d.name.span)),
        Item::Data(d) => Some((d.name.name.as_str(), d.name.span)),
        _ => None,
    })
}

/// Loads and resolves the program rooted at `root` (already in `sources`).
pub fn resolve(
    sources: &mut SourceMap,
    root: FileId,
    loader: &dyn Loader,
) -> (Program, Vec<Diagnostic>) {
    let mut r = Resolver {
        sources,
        loader,
        modules: Vec::new(),
        diags: Vec::new(),
        loading: Vec::new(),
    };
    for (name, file_name, text) in STDLIB {
        let file = r
            .sources
            .find(file_name)
            .unwrap_or_else(|| r.sources.add(*file_name, *text, true));
        r.add_module(name.to_string(), file, true);
    }
    let root_name = r.sources.file(root).name.clone();
    let root_idx = r.load_file_module(root_name, root);
    let mut program = Program {
        modules: r.modules,
        root: root_idx,
        facts: Default::default(),
    };
    let mut diags = r.diags;
    build_scopes(&mut program, &mut diags);
    walk::check_bodies(&program, &mut diags);
    (program, diags)
}

struct Resolver<'a> {
    sources: &'a mut SourceMap,
    loader: &'a dyn Loader,
    modules: Vec<ModuleInfo>,
    diags: Vec<Diagnostic>,
    /// Files being loaded, to detect `use` cycles.
    loading: Vec<String>,
}

impl Resolver<'_> {
    fn add_module(&mut self, name: String, file: FileId, is_std: bool) -> usize {
        let (ast, diags) = crate::syntax::parse(file, &self.sources.file(file).text);
        self.diags.extend(diags);
        self.modules.push(ModuleInfo {
            name,
            file,
            ast,
            scope: Scope::default(),
            is_std,
            failed_imports: HashSet::new(),
            failed_glob_import: false,
        });
        self.modules.len() - 1
    }

    fn load_file_module(&mut self, name: String, file: FileId) -> usize {
        self.loading.push(name.clone());
        let idx = self.add_module(name.clone(), file, false);
        let uses: Vec<ast::UseDecl> = self.modules[idx]
            .ast
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Use(u) => Some(u.clone()),
                _ => None,
            })
            .collect();
        for u in uses {
            if let UseTarget::File(rel) = &u.target {
                let path = join_relative(&name, rel);
                if let Some(pos) = self.loading.iter().position(|l| *l == path) {
                    let chain: Vec<&str> = self.loading[pos..].iter().map(String::as_str).collect();
                    self.diags.push(
                        Diagnostic::error(
                            codes::IMPORT_CYCLE,
                            format!("`use` cycle: `{path}` is already being loaded"),
                        )
                        .with_primary(u.target_span, "this `use` closes the cycle")
                        .with_note(format!("the cycle: {} → {path}", chain.join(" → ")))
                        .with_help("move what both files need into a third file that both `use`"),
                    );
                    continue;
                }
                if self.modules.iter().any(|m| m.name == path) {
                    continue;
                }
                if let Err(r) = self.loader.permit(&path) {
                    self.diags.push(
                        Diagnostic::error(
                            codes::PATH_OUTSIDE_PROJECT,
                            format!("`use \"{rel}\"` is not read"),
                        )
                        .with_primary(u.target_span, r.reason)
                        .with_help(r.help),
                    );
                    continue;
                }
                match self.loader.load(&path) {
                    Ok(text) => {
                        let f = self.sources.add(path.clone(), text, false);
                        self.load_file_module(path, f);
                    }
                    Err(why) => self.diags.push(
                        Diagnostic::error(codes::UNKNOWN_MODULE, format!("cannot read `{rel}`"))
                            .with_primary(u.target_span, format!("{path}: {why}"))
                            .with_help("paths in `use \"…\"` are relative to the file that contains the `use`"),
                    ),
                }
            }
        }
        self.loading.pop();
        idx
    }
}

/// `dir/a.nnl` + `./b.nnl` → `dir/b.nnl`; an absolute `rel` stays absolute.
fn join_relative(base: &str, rel: &str) -> String {
    let dir = std::path::Path::new(base)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    let mut out: Vec<String> = if rel.starts_with('/') {
        // Joined below into `/…`.
        vec![String::new()]
    } else {
        dir.components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    for part in rel.split('/') {
        match part {
            "." | "" => {}
            ".." if out
                .last()
                .is_some_and(|p| p != ".." && !p.is_empty() && p != "/") =>
            {
                out.pop();
            }
            p => out.push(p.to_string()),
        }
    }
    out.join("/")
}

fn build_scopes(program: &mut Program, diags: &mut Vec<Diagnostic>) {
    let n = program.modules.len();
    let prelude: Vec<usize> = (0..n)
        .filter(|&i| in_prelude(&program.modules[i].name))
        .collect();
    for m in 0..n {
        let mut scope = Scope::default();
        let mut origin: FxHashMap<Symbol, Span> = FxHashMap::default();
        // The prelude first, so that the module's own items and imports shadow it.
        for &p in prelude.iter().filter(|&&p| p != m) {
            for (i, it) in program.modules[p].ast.items.iter().enumerate() {
                if let Some(name) = item_name(it) {
                    scope.entry(name).or_insert(ItemRef {
                        module: p,
                        index: i,
                    });
                }
            }
        }
        let own: Vec<(Symbol, Span, usize)> = program.modules[m]
            .ast
            .items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| item_name(it).map(|n| (n, it_name_span(it), i)))
            .collect();
        for (name, span, i) in &own {
            if let Some(first) = origin.get(name) {
                diags.push(
                    Diagnostic::error(
                        codes::DUPLICATE_DEFINITION,
                        format!("`{name}` is defined twice"),
                    )
                    .with_primary(*span, "second definition")
                    .with_secondary(*first, "first defined here")
                    .with_help("rename one of them; names in a file must be unique"),
                );
                continue;
            }
            origin.insert(*name, *span);
            scope.insert(
                *name,
                ItemRef {
                    module: m,
                    index: *i,
                },
            );
        }
        let uses: Vec<ast::UseDecl> = program.modules[m]
            .ast
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Use(u) => Some(u.clone()),
                _ => None,
            })
            .collect();
        for u in uses {
            let target_name = match &u.target {
                UseTarget::Module(path) => path
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
                UseTarget::File(rel) => join_relative(&program.modules[m].name, rel),
            };
            let Some(target) = program.modules.iter().position(|mm| mm.name == target_name) else {
                match &u.names {
                    UseNames::Some(ids) => program.modules[m]
                        .failed_imports
                        .extend(ids.iter().map(|i| i.name.to_string())),
                    UseNames::All(_) => program.modules[m].failed_glob_import = true,
                    UseNames::Missing => {}
                }
                if let UseTarget::Module(_) = u.target {
                    let names: Vec<&str> = program
                        .modules
                        .iter()
                        .filter(|mm| mm.is_std)
                        .map(|mm| mm.name.as_str())
                        .collect();
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_MODULE,
                        format!("there is no module `{target_name}`"),
                    )
                    .with_primary(u.target_span, "unknown module");
                    d = match crate::suggest::closest(&target_name, names.iter().copied()) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => {
                            d.with_help(format!("the standard modules are {}", names.join(", ")))
                        }
                    };
                    diags.push(d);
                }
                continue;
            };
            let exported: Vec<(Symbol, usize)> = program.modules[target]
                .ast
                .items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| item_name(it).map(|n| (n, i)))
                .collect();
            let wanted: Vec<(Symbol, Span)> = match &u.names {
                UseNames::Missing => {
                    program.modules[m]
                        .failed_imports
                        .extend(exported.iter().map(|(n, _)| n.to_string()));
                    diags.push(
                        Diagnostic::error(codes::USE_WITHOUT_NAMES, format!("`use {target_name}` does not say which names to import"))
                            .with_primary(u.span, "no names listed")
                            .with_help(format!(
                                "list them, as in `use {target_name}.{{Dense, Dropout}}`, or import all with `use {target_name}.*`"
                            )),
                    );
                    continue;
                }
                UseNames::All(span) => exported.iter().map(|(n, _)| (*n, *span)).collect(),
                UseNames::Some(ids) => ids.iter().map(|i| (i.name, i.span)).collect(),
            };
            for (name, span) in wanted {
                let Some((_, idx)) = exported.iter().find(|(n, _)| *n == name) else {
                    let mut d = Diagnostic::error(
                        codes::UNKNOWN_IMPORT,
                        format!("`{target_name}` has no item named `{name}`"),
                    )
                    .with_primary(span, "not found in that module");
                    d = match crate::suggest::closest(
                        &name,
                        exported.iter().map(|(n, _)| n.as_str()),
                    ) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => {
                            let names: Vec<&str> =
                                exported.iter().map(|(n, _)| n.as_str()).collect();
                            d.with_help(format!("`{target_name}` defines {}", names.join(", ")))
                        }
                    };
                    diags.push(d);
                    program.modules[m].failed_imports.insert(name.to_string());
                    continue;
                };
                if let Some(first) = origin.get(&name) {
                    if scope.get(&name)
                        != Some(&ItemRef {
                            module: target,
                            index: *idx,
                        })
                    {
                        diags.push(
                            Diagnostic::error(
                                codes::DUPLICATE_DEFINITION,
                                format!("`{name}` is imported but also defined here"),
                            )
                            .with_primary(span, "imported here")
                            .with_secondary(*first, "defined here")
                            .with_help("rename your definition or leave the name out of the `use`"),
                        );
                    }
                    continue;
                }
                origin.insert(name, span);
                scope.insert(
                    name,
                    ItemRef {
                        module: target,
                        index: *idx,
                    },
                );
            }
        }
        program.modules[m].scope = scope;
    }
}

fn item_name(it: &Item) -> Option<Symbol> {
    match it {
        Item::Def(d) => Some(d.name.name),
        Item::Data(d) => Some(d.name.name),
        _ => None,
    }
}

fn it_name_span(it: &Item) -> Span {
    match it {
        Item::Def(d) => d.name.span,
        Item::Data(d) => d.name.span,
        _ => it.span(),
    }
}

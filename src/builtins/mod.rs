//! The builtin functions, by family, each declared once: its name, parameters and doc (what
//! resolve, the binder and the language server read), its shape rule (what the checker does) and
//! its lowering to primitives (what lowering does), side by side in one [`Rule`] — the way JAX
//! keeps a primitive's abstract evaluation and lowering together. Both stages find a builtin here
//! and call its rule, so adding one is one entry in its family's file.
//!
//! Everything else a user calls (layers, losses, activations, optimizers) is `.nnl` source in
//! `stdlib/`.

mod create;
mod elementwise;
mod indexing;
mod linalg;
mod meta;
mod movement;
mod random;
mod reduce;
mod sequence;
mod window;

use crate::check::ty::Ty;
use crate::check::{BuiltinArgs as CheckArgs, Checker, Frame};
use crate::lower::{BuiltinArgs as LowerArgs, Lowerer, Res, Val};
use crate::prim::{Initializer, PrimParam};

/// One builtin: what the language's name binds to.
pub struct BuiltinDef {
    pub name: &'static str,
    pub params: &'static [PrimParam],
    pub doc: &'static str,
    pub(crate) rule: &'static dyn Rule,
}

/// A builtin's two rules, written next to each other. The arguments come bound to the
/// parameters by [`crate::bind`] (in the order of [`BuiltinDef::params`]), so a rule reads them
/// by position.
pub(crate) trait Rule: Sync {
    /// The result type, or `Ty::Unknown` with the problem reported.
    fn check(&self, c: &mut Checker, f: &mut Frame, a: &CheckArgs) -> Ty;
    /// The value for concrete arguments: numbers folded, tensors as nodes.
    fn lower(&self, l: &mut Lowerer, a: &LowerArgs) -> Res<Val>;
    /// As the initial value of a parameter (`param b: [N] = zeros`), the initializer it means.
    fn initializer(&self) -> Option<Initializer> {
        None
    }
}

/// The families, in the order completions and suggestions list their builtins.
const FAMILIES: &[&[BuiltinDef]] = &[
    elementwise::BUILTINS,
    reduce::BUILTINS,
    movement::BUILTINS,
    linalg::BUILTINS,
    window::BUILTINS,
    indexing::BUILTINS,
    create::BUILTINS,
    sequence::BUILTINS,
    random::BUILTINS,
    meta::BUILTINS,
];

/// A builtin, as a value of the language: a handle to its one declaration.
#[derive(Clone, Copy)]
pub struct Builtin(&'static BuiltinDef);

impl Builtin {
    pub fn def(self) -> &'static BuiltinDef {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    pub(crate) fn rule(self) -> &'static dyn Rule {
        self.0.rule
    }

    /// As a parameter's initial value, the initializer this builtin means (`zeros`, `ones`).
    pub fn initializer(self) -> Option<Initializer> {
        self.0.rule.initializer()
    }
}

impl PartialEq for Builtin {
    fn eq(&self, other: &Builtin) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Builtin {}

impl std::hash::Hash for Builtin {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.name.hash(h);
    }
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Builtin({})", self.0.name)
    }
}

/// Every builtin, family by family.
pub fn all() -> impl Iterator<Item = Builtin> {
    FAMILIES.iter().flat_map(|f| f.iter()).map(Builtin)
}

/// The builtin a name means.
pub fn lookup(name: &str) -> Option<Builtin> {
    all().find(|b| b.name() == name)
}

/// Parameter lists several builtins share.
const X: &[PrimParam] = &[PrimParam::req("x")];
const SHAPE: &[PrimParam] = &[PrimParam::req("shape")];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parameters_too() {
        let mut names: Vec<&str> = all().map(Builtin::name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a builtin is declared twice");
        for b in all() {
            let mut ps: Vec<&str> = b.def().params.iter().map(|p| p.name).collect();
            ps.sort_unstable();
            ps.dedup();
            assert_eq!(ps.len(), b.def().params.len(), "{}", b.name());
            assert!(
                b.def()
                    .params
                    .windows(2)
                    .all(|w| !w[0].optional || w[1].optional),
                "`{}`: a required parameter after an optional one",
                b.name()
            );
        }
    }
}

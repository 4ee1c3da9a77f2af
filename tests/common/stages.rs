//! Every stage of the compiler on one source text, for the mutation and fuzz tests
//! (`tests/mutations.rs`, `tests/fuzz.rs`) and the coverage-guided fuzz target
//! (`fuzz/src/bin/source.rs`): a panic anywhere is the failure.

/// Checks and formats `text`, read as the file `name` (its data paths resolve from there), and
/// packs each definition's body again (the same bytes as the parser's packing); when it checks
/// clean and has a train block, lowers it, builds and optimizes each phase's training step and
/// verifies every graph. What checks clean must compile: a refusal by the compiler (E0400) is a
/// mistake the checker let through, and panics like any other failure.
///
/// How far it went: the number of diagnostics, whether it checked clean, and whether it was
/// compiled (it checked clean and had a train block).
pub fn all_stages(name: &str, text: &str) -> (usize, bool, bool) {
    let (check, program) = nnl::check_program(name, text, &nnl::fs::DiskLoader);
    let _ = nnl::fmt::format(text);
    let checked_clean = !check.has_errors();
    let items = &program.modules[program.root].ast.items;
    for item in items {
        if let nnl::syntax::ast::Item::Def(d) = item {
            let repacked = nnl::syntax::ast::Body::pack(&d.body.unpack());
            assert!(
                repacked == d.body,
                "`{}` packs again differently",
                d.name.name
            );
        }
    }
    let has_train_block = items
        .iter()
        .any(|i| matches!(i, nnl::syntax::ast::Item::Train(_)));
    let compiled = checked_clean && has_train_block;
    if compiled {
        compile(&check, &program);
    }
    (check.diagnostics.len(), checked_clean, compiled)
}

fn compile(check: &nnl::CheckOutput, program: &nnl::resolve::Program) {
    let opts = nnl::lower::Options {
        batch: Some(4),
        ..Default::default()
    };
    let lowered = nnl::lower::lower(program, &check.sources, &opts).unwrap_or_else(|refusal| {
        panic!(
            "checked clean, refused by the compiler: {}",
            nnl::diag::render(&check.sources, &[refusal], false)
        )
    });
    nnl::ir::verify(&lowered.init).expect("the init graph verifies");
    nnl::ir::verify(&lowered.eval).expect("the eval graph verifies");
    for phase in &lowered.phases {
        let step = nnl::step::train_step(&lowered, phase).expect("a step is built");
        nnl::ir::verify(&step).expect("the step verifies");
        let (step, _) = nnl::opt::optimize(&step);
        nnl::ir::verify(&step).expect("the optimized step verifies");
    }
}

//! Every stage of the compiler on one source text, for the fuzz test (`tests/fuzz.rs`) and the
//! coverage-guided fuzz target (`fuzz/src/bin/source.rs`): a panic anywhere is the failure.

/// Every stage on `text` (a panic anywhere fails the test with the case); whether it checked
/// clean.
pub fn all_stages(text: &str) -> bool {
    let loader = nnl::fs::DiskLoader;
    let (check, program) = nnl::check_program("fuzz.nnl", text, &loader);
    let _ = nnl::fmt::format(text);
    if check.has_errors() {
        return false;
    }
    let opts = nnl::lower::Options {
        batch: Some(4),
        ..Default::default()
    };
    // Lowering may refuse what it cannot do (E0400); it must not panic.
    let Ok(lowered) = nnl::lower::lower(&program, &check.sources, &opts) else {
        return true;
    };
    nnl::ir::verify(&lowered.init).expect("the init graph verifies");
    nnl::ir::verify(&lowered.eval).expect("the eval graph verifies");
    for phase in &lowered.phases {
        if let Ok(step) = nnl::step::train_step(&lowered, phase) {
            nnl::ir::verify(&step).expect("the step verifies");
            let (step, _) = nnl::opt::optimize(&step);
            nnl::ir::verify(&step).expect("the optimized step verifies");
        }
    }
    true
}

//! Lowering examples for the IR tests.

/// Lowers an example (`examples/NAME.nnl`) for a batch size, with its text optionally edited.
pub fn lower_example(
    name: &str,
    batch: usize,
    edit: &dyn Fn(String) -> String,
) -> nnl::lower::Lowered {
    let rel = format!("examples/{name}.nnl");
    let text =
        edit(std::fs::read_to_string(super::common::root().join(&rel)).expect("readable example"));
    let opts = nnl::lower::Options {
        batch: Some(batch),
        ..Default::default()
    };
    let out = nnl::lower_source(
        &rel,
        &text,
        &super::common::CwdLoader {
            base: super::common::root(),
        },
        &opts,
    );
    match out.lowered {
        Some(l) => l,
        None => panic!(
            "{rel} does not lower:\n{}",
            nnl::diag::render(&out.check.sources, &out.check.diagnostics, false)
        ),
    }
}

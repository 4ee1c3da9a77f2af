//! `check --summary` against the lowered graph: the same parameters, names and shapes.

/// Every model summary's parameter list equals the lowered program's parameters of that model
/// (in order, with their shapes); every trained model has a summary.
pub fn summary_matches_graph(
    check: &nnl::CheckOutput,
    lowered: &nnl::lower::Lowered,
) -> Result<(), String> {
    for s in &check.summaries {
        let prefix = format!("{}.", s.model);
        let summarized: Vec<(String, String)> = s.params.clone();
        let lowered_params: Vec<(String, String)> = lowered
            .params
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, t)| (n.clone(), format!("{:?}", t.shape)))
            .collect();
        if summarized != lowered_params {
            return Err(format!(
                "the summary of `{}` lists {summarized:?}\nbut the graph has {lowered_params:?}",
                s.model
            ));
        }
    }
    for (name, _) in &lowered.params {
        let model = name.split('.').next().unwrap_or(name);
        if !check.summaries.iter().any(|s| s.model == model) {
            return Err(format!("`{name}` belongs to no summarized model"));
        }
    }
    Ok(())
}

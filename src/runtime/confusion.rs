//! The confusion matrix of a classifier on one split, for the end of a run: which class each
//! sample has and which the model predicts (the largest logit; for one logit per sample, a
//! positive one), with per-class precision and recall, the classes named as the data block
//! names them (`label`) or numbered.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    pub split: String,
    pub classes: Vec<String>,
    /// `matrix[t][p]`: samples of class `t` predicted as `p`.
    pub matrix: Vec<Vec<usize>>,
    /// Per predicted class: the share of its predictions that are right; None when the model
    /// never predicts it.
    pub precision: Vec<Option<f64>>,
    /// Per true class: the share of its samples predicted right; None when the split has none.
    pub recall: Vec<Option<f64>>,
}

impl Confusion {
    /// An empty matrix; class names must number at least two.
    pub fn new(split: &str, classes: Vec<String>) -> Confusion {
        let k = classes.len();
        Confusion {
            split: split.to_string(),
            classes,
            matrix: vec![vec![0; k]; k],
            precision: vec![None; k],
            recall: vec![None; k],
        }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.matrix[truth][predicted] += 1;
    }

    /// Computes precision and recall from the counts.
    pub fn finish(&mut self) {
        let k = self.classes.len();
        let ratio = |hit: usize, all: usize| (all > 0).then(|| hit as f64 / all as f64);
        for c in 0..k {
            let predicted: usize = (0..k).map(|t| self.matrix[t][c]).sum();
            let actual: usize = self.matrix[c].iter().sum();
            self.precision[c] = ratio(self.matrix[c][c], predicted);
            self.recall[c] = ratio(self.matrix[c][c], actual);
        }
    }

    /// The matrix as a text table: a row per true class, a column per predicted class, then
    /// recall; a last row of precision.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
        let mut rows: Vec<Vec<String>> = Vec::new();
        let mut head = vec![format!("{} (true \\ predicted)", self.split)];
        head.extend(self.classes.iter().cloned());
        head.push("recall".into());
        rows.push(head);
        for (t, name) in self.classes.iter().enumerate() {
            let mut row = vec![name.clone()];
            row.extend(self.matrix[t].iter().map(usize::to_string));
            row.push(pct(self.recall[t]));
            rows.push(row);
        }
        let mut last = vec!["precision".to_string()];
        last.extend(self.precision.iter().map(|&p| pct(p)));
        last.push(String::new());
        rows.push(last);
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (cell, &w))| {
                    if c == 0 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            out += cells.join("  ").trim_end();
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_recall_and_table() {
        let mut c = Confusion::new("test", vec!["Adelie".into(), "Gentoo".into(), "x".into()]);
        for (t, p) in [(0, 0), (0, 0), (0, 1), (1, 1), (1, 1)] {
            c.add(t, p);
        }
        c.finish();
        assert_eq!(c.recall, [Some(2.0 / 3.0), Some(1.0), None]);
        assert_eq!(c.precision, [Some(1.0), Some(2.0 / 3.0), None]);
        assert_eq!(
            c.table(),
            "test (true \\ predicted)  Adelie  Gentoo  x  recall\n\
             Adelie                        2       1  0   66.7%\n\
             Gentoo                        0       2  0  100.0%\n\
             x                             0       0  0       -\n\
             precision                100.0%   66.7%  -\n"
        );
    }
}

//! "Did you mean …?": the closest candidate by edit distance, if it is close enough to help.

pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Never a whole-name substitution: `y` is not a typo of `B`.
    let n = name.chars().count();
    let limit = (n / 3).max(1).min(n.saturating_sub(1));
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c)
}

/// The one candidate that `name` abbreviates (`acc` → `accuracy`), for names of 3 or more letters.
pub fn completion<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    if name.chars().count() < 3 {
        return None;
    }
    let mut found = candidates
        .into_iter()
        .filter(|c| *c != name && c.starts_with(name));
    let first = found.next()?;
    found.all(|c| c == first).then_some(first)
}

/// Levenshtein distance, counting an adjacent swap as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_typos_and_ignores_strangers() {
        assert_eq!(super::closest("Dnese", ["Dense", "Dropout"]), Some("Dense"));
        assert_eq!(super::closest("relu", ["sigmoid", "tanh"]), None);
        assert_eq!(super::edit_distance("ab", "ba"), 1);
        assert_eq!(super::closest("y", ["B", "x"]), None);
        assert_eq!(
            super::completion("acc", ["accuracy", "adam"]),
            Some("accuracy")
        );
        assert_eq!(super::completion("ad", ["adam"]), None);
    }
}

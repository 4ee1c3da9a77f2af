//! Matching a call's arguments to a signature's parameters: the one rule the checker (which
//! records each binding in `check::Facts` for lowering) and the data pipeline share. A named argument takes its parameter; a positional one takes
//! the first parameter still free (so `csv(header: true, "a.csv")` gives `path` the file); a
//! parameter is given at most once. Each stage turns the problems into its own errors.

/// What is wrong with one argument, by its index in the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// A positional argument beyond the last free parameter.
    TooMany { arg: usize },
    /// A named argument the signature has no parameter for.
    Unknown { arg: usize },
    /// A parameter given again; `first` is the argument that gave it first.
    Twice {
        arg: usize,
        param: usize,
        first: usize,
    },
}

/// Arguments matched to parameters: for each parameter, the index of the argument giving it.
#[derive(Debug, Clone, PartialEq)]
pub struct Matched {
    pub slots: Vec<Option<usize>>,
    /// In argument order.
    pub problems: Vec<Problem>,
}

impl Matched {
    /// The parameters no argument gives, among those `required` says must be given.
    pub fn missing(&self, required: impl Fn(usize) -> bool) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_none() && required(i))
            .collect()
    }

    /// The values in parameter order, taking each argument out of `args`.
    pub fn take<A>(&self, args: Vec<A>) -> Vec<Option<A>> {
        let mut args: Vec<Option<A>> = args.into_iter().map(Some).collect();
        self.slots
            .iter()
            .map(|s| s.and_then(|i| args.get_mut(i).and_then(Option::take)))
            .collect()
    }
}

/// Matches arguments, given by their names (`None` for positional ones), to `params`.
pub fn match_args<'a>(
    params: &[&str],
    names: impl IntoIterator<Item = Option<&'a str>>,
) -> Matched {
    let mut slots: Vec<Option<usize>> = vec![None; params.len()];
    let mut problems = Vec::new();
    let mut next_positional = 0;
    for (arg, name) in names.into_iter().enumerate() {
        let param = match name {
            None => {
                while next_positional < slots.len() && slots[next_positional].is_some() {
                    next_positional += 1;
                }
                if next_positional >= slots.len() {
                    problems.push(Problem::TooMany { arg });
                    continue;
                }
                next_positional
            }
            Some(n) => match params.iter().position(|p| *p == n) {
                Some(i) => i,
                None => {
                    problems.push(Problem::Unknown { arg });
                    continue;
                }
            },
        };
        match slots[param] {
            Some(first) => problems.push(Problem::Twice { arg, param, first }),
            None => slots[param] = Some(arg),
        }
    }
    Matched { slots, problems }
}

#[cfg(test)]
mod tests {
    use super::{Problem, match_args};

    #[test]
    fn positional_arguments_take_the_first_free_parameters() {
        let m = match_args(&["path", "header", "skip"], [Some("header"), None, None]);
        assert_eq!(m.slots, vec![Some(1), Some(0), Some(2)]);
        assert!(m.problems.is_empty());
        assert_eq!(m.missing(|_| true), Vec::<usize>::new());
    }

    #[test]
    fn problems_are_reported_per_argument() {
        let m = match_args(&["a", "b"], [None, Some("a"), Some("c"), None, None]);
        assert_eq!(
            m.problems,
            vec![
                Problem::Twice {
                    arg: 1,
                    param: 0,
                    first: 0
                },
                Problem::Unknown { arg: 2 },
                Problem::TooMany { arg: 4 },
            ]
        );
        assert_eq!(m.slots, vec![Some(0), Some(3)]);
        assert_eq!(
            m.take(vec!['x', 'y', 'z', 'w', 'v']),
            vec![Some('x'), Some('w')]
        );
    }

    #[test]
    fn missing_parameters_are_those_required_and_not_given() {
        let m = match_args(&["n", "noise", "seed"], [Some("seed")]);
        assert_eq!(m.missing(|i| i == 0), vec![0]);
        assert_eq!(m.missing(|i| i != 2), vec![0, 1]);
    }
}

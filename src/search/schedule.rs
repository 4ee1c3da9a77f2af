//! Which trials run, in waves: the jobs of a wave may run at once; the next wave is a function of
//! the plan and the results of the earlier waves, taken in job order. Grid and random searches
//! are one wave; Hyperband has a wave per rung of each bracket; TPE runs its random start-up
//! trials as one wave, then one trial per wave, each drawn from all the results before it.

use super::{Config, Plan, Strategy, sample, tpe};

/// One training of a trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// 0-based; trial `t` keeps the directory `trial-{t+1:03}`.
    pub trial: usize,
    pub config: Config,
    /// The epochs the trial has trained when the job ends; None: the file's `epochs`.
    pub epochs: Option<usize>,
    /// The job continues the trial from its last checkpoint (a Hyperband promotion).
    pub continues: bool,
    /// Hyperband's bracket and rung (0-based).
    pub rung: Option<(usize, usize)>,
}

/// What a finished job tells the strategy: the trial's goal value (None when it failed).
pub type Result = Option<f64>;

/// A successive-halving bracket of Hyperband: its configurations and the epochs of each rung.
#[derive(Debug, Clone, PartialEq)]
pub struct Bracket {
    /// Configurations in rung 0.
    pub configs: usize,
    /// (trials, epochs) of each rung.
    pub rungs: Vec<(usize, usize)>,
}

/// Hyperband's brackets (Li et al. 2018) for a largest budget `r` and a factor `eta`: bracket
/// `s` (s_max down to 0) starts ⌈(s_max+1)/(s+1)·ηˢ⌉ configurations at r/ηˢ epochs and keeps the
/// best ⌊n/ηⁱ⌋ at each later rung.
pub fn brackets(r: usize, eta: usize) -> Vec<Bracket> {
    let mut s_max = 0;
    while eta.saturating_pow(s_max as u32 + 1) <= r {
        s_max += 1;
    }
    (0..=s_max)
        .rev()
        .map(|s| {
            let pow = |k: usize| eta.pow(k as u32);
            let n = (s_max + 1) * pow(s);
            let n = n.div_ceil(s + 1);
            let rungs = (0..=s)
                .map(|i| ((n / pow(i)).max(1), (r / pow(s - i)).max(1)))
                .collect();
            Bracket { configs: n, rungs }
        })
        .collect()
}

pub struct Scheduler {
    plan: Plan,
    /// Every trial's configuration so far, by trial number.
    configs: Vec<Config>,
    /// Every finished job's trial and result, in order.
    results: Vec<(usize, Result)>,
    /// The jobs of the wave given last.
    wave: Vec<Job>,
    /// Hyperband: the bracket and rung of the wave given last.
    position: Option<(usize, usize)>,
    finished: bool,
}

impl Scheduler {
    pub fn new(plan: &Plan) -> Scheduler {
        Scheduler {
            plan: plan.clone(),
            configs: Vec::new(),
            results: Vec::new(),
            wave: Vec::new(),
            position: None,
            finished: false,
        }
    }

    /// The number of trials a search runs, when it is known before it starts.
    pub fn planned_trials(plan: &Plan) -> usize {
        match plan.strategy {
            Strategy::Grid => sample::grid(&plan.dims).map_or(0, |g| g.len()),
            Strategy::Random { trials, .. } | Strategy::Tpe { trials, .. } => trials,
            Strategy::Hyperband {
                max_epochs, factor, ..
            } => brackets(max_epochs, factor).iter().map(|b| b.configs).sum(),
        }
    }

    /// The next wave, given the results of the last one's jobs in their order; None when the
    /// search is over.
    pub fn next(&mut self, last: &[Result]) -> Option<Vec<Job>> {
        assert_eq!(last.len(), self.wave.len(), "one result per job");
        let done = std::mem::take(&mut self.wave);
        self.results
            .extend(done.iter().map(|j| j.trial).zip(last.iter().copied()));
        if self.finished {
            return None;
        }
        let wave = match self.plan.strategy {
            Strategy::Grid => {
                self.finished = true;
                let configs = sample::grid(&self.plan.dims).unwrap_or_default();
                self.fresh(configs, None, None)
            }
            Strategy::Random { trials, seed } => {
                self.finished = true;
                let configs = (0..trials)
                    .map(|t| sample::random_config(&self.plan.dims, seed, t))
                    .collect();
                self.fresh(configs, None, None)
            }
            Strategy::Tpe {
                trials,
                startup,
                seed,
            } => {
                let start = self.configs.len();
                if start >= trials {
                    self.finished = true;
                    return None;
                }
                let configs = if start == 0 {
                    (0..startup.clamp(1, trials))
                        .map(|t| sample::random_config(&self.plan.dims, seed, t))
                        .collect()
                } else {
                    let history: Vec<(&Config, f64)> = self
                        .results
                        .iter()
                        .filter_map(|&(t, r)| r.map(|g| (&self.configs[t], g)))
                        .collect();
                    vec![tpe::propose(
                        &self.plan.dims,
                        &history,
                        self.plan.objective.maximize,
                        seed,
                        start,
                    )]
                };
                self.fresh(configs, None, None)
            }
            Strategy::Hyperband {
                max_epochs,
                factor,
                seed,
            } => {
                let brackets = brackets(max_epochs, factor);
                let next = match self.position {
                    None => Some((0, 0)),
                    Some((b, r)) if r + 1 < brackets[b].rungs.len() => Some((b, r + 1)),
                    Some((b, _)) if b + 1 < brackets.len() => Some((b + 1, 0)),
                    Some(_) => None,
                };
                let Some((b, r)) = next else {
                    self.finished = true;
                    return None;
                };
                self.position = Some((b, r));
                let (keep, epochs) = brackets[b].rungs[r];
                if r == 0 {
                    let start = self.configs.len();
                    let configs = (start..start + keep)
                        .map(|t| sample::random_config(&self.plan.dims, seed, t))
                        .collect();
                    self.fresh(configs, Some(epochs), Some((b, 0)))
                } else {
                    // The previous rung's results, best first; failures last; ties by trial.
                    let mut ranked: Vec<(usize, Result)> = done
                        .iter()
                        .map(|j| j.trial)
                        .zip(last.iter().copied())
                        .collect();
                    let objective = &self.plan.objective;
                    ranked.sort_by(|(ta, a), (tb, b)| match (a, b) {
                        (Some(a), Some(b)) if objective.better(*a, *b) => std::cmp::Ordering::Less,
                        (Some(a), Some(b)) if objective.better(*b, *a) => {
                            std::cmp::Ordering::Greater
                        }
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        _ => ta.cmp(tb),
                    });
                    ranked
                        .into_iter()
                        .filter(|(_, r)| r.is_some())
                        .take(keep)
                        .map(|(t, _)| Job {
                            trial: t,
                            config: self.configs[t].clone(),
                            epochs: Some(epochs),
                            continues: true,
                            rung: Some((b, r)),
                        })
                        .collect()
                }
            }
        };
        if wave.is_empty() {
            // A rung whose every trial failed: the bracket ends there.
            return self.next(&[]);
        }
        self.wave = wave.clone();
        Some(wave)
    }

    fn fresh(
        &mut self,
        configs: Vec<Config>,
        epochs: Option<usize>,
        rung: Option<(usize, usize)>,
    ) -> Vec<Job> {
        configs
            .into_iter()
            .map(|config| {
                self.configs.push(config.clone());
                Job {
                    trial: self.configs.len() - 1,
                    config,
                    epochs,
                    continues: false,
                    rung,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{Dim, Objective, Space};

    fn plan(strategy: Strategy) -> Plan {
        Plan {
            strategy,
            models: vec!["M".into()],
            dims: vec![Dim {
                name: "lr".into(),
                space: Space::LogUniform { lo: 1e-4, hi: 1.0 },
            }],
            objective: Objective {
                maximize: false,
                split: "val".into(),
                metric: "loss".into(),
            },
        }
    }

    #[test]
    fn hyperband_brackets_follow_the_paper() {
        let b = brackets(27, 3);
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].rungs, vec![(27, 1), (9, 3), (3, 9), (1, 27)]);
        assert_eq!(b[1].rungs, vec![(12, 3), (4, 9), (1, 27)]);
        assert_eq!(b[2].rungs, vec![(6, 9), (2, 27)]);
        assert_eq!(b[3].rungs, vec![(4, 27)]);
        assert_eq!(
            brackets(1, 3),
            vec![Bracket {
                configs: 1,
                rungs: vec![(1, 1)]
            }]
        );
    }

    /// Drives a scheduler with a goal computed from each configuration (lower is better here).
    fn drive(plan: &Plan, goal: impl Fn(&Config, usize) -> Option<f64>) -> Vec<Job> {
        let mut s = Scheduler::new(plan);
        let mut all = Vec::new();
        let mut results = Vec::new();
        while let Some(wave) = s.next(&results) {
            results = wave
                .iter()
                .map(|j| goal(&j.config, j.epochs.unwrap_or(1)))
                .collect();
            all.extend(wave);
        }
        all
    }

    #[test]
    fn hyperband_promotes_the_best_of_each_rung_and_continues_them() {
        let p = plan(Strategy::Hyperband {
            max_epochs: 9,
            factor: 3,
            seed: 1,
        });
        let lr = |c: &Config| c[0].1.number.unwrap();
        let jobs = drive(&p, |c, _| Some((lr(c).log10() + 2.0).abs()));
        // Brackets of 9, 5 and 3 configurations: 9 + 3 + 1, 5 + 1, 3 jobs.
        assert_eq!(jobs.len(), 22);
        assert_eq!(Scheduler::planned_trials(&p), 17);
        let rung1: Vec<&Job> = jobs.iter().filter(|j| j.rung == Some((0, 1))).collect();
        assert_eq!(rung1.len(), 3);
        assert!(rung1.iter().all(|j| j.continues && j.epochs == Some(3)));
        // The promoted trials are the three closest to lr = 1e-2 among the first nine.
        let mut first: Vec<(f64, usize)> = jobs[..9]
            .iter()
            .map(|j| ((lr(&j.config).log10() + 2.0).abs(), j.trial))
            .collect();
        first.sort_by(|a, b| a.0.total_cmp(&b.0));
        let best: Vec<usize> = first[..3].iter().map(|x| x.1).collect();
        assert_eq!(rung1.iter().map(|j| j.trial).collect::<Vec<_>>(), best);
        // The epochs trained: 21 + 21 + 27 of the 17 × 9 = 153 of full training.
        let mut trained = std::collections::HashMap::new();
        let mut total = 0;
        for j in &jobs {
            let before = trained.insert(j.trial, j.epochs.unwrap()).unwrap_or(0);
            total += j.epochs.unwrap() - before;
        }
        assert_eq!(total, 69);
    }

    #[test]
    fn failed_trials_are_never_promoted() {
        let p = plan(Strategy::Hyperband {
            max_epochs: 3,
            factor: 3,
            seed: 1,
        });
        let jobs = drive(&p, |_, _| None);
        assert!(jobs.iter().all(|j| !j.continues));
    }

    #[test]
    fn random_and_grid_are_one_wave() {
        let p = plan(Strategy::Random { trials: 5, seed: 3 });
        let mut s = Scheduler::new(&p);
        assert_eq!(s.next(&[]).unwrap().len(), 5);
        assert!(s.next(&[Some(1.0); 5]).is_none());
    }
}

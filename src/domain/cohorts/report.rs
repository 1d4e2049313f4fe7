//! The quality report: how balanced the cohorts are, next to what drawing
//! lots would have given, so a manager can trust (and we can benchmark) the
//! optimisation.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Objective;
use super::objective::gaps;
use super::search::{self, Assignment, Problem};

/// Balance figures of one skill across the new cohorts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillSpread {
    /// Skill name (CSV header) or `skill N`.
    pub name: String,
    /// Highest minus lowest cohort mean.
    pub mean_gap: f64,
    /// Highest minus lowest cohort SD (population formula).
    pub sd_gap: f64,
    /// `mean_gap` of the random feasible reference assignment.
    pub random_mean_gap: f64,
    /// `sd_gap` of the random feasible reference assignment.
    pub random_sd_gap: f64,
}

/// What a formation achieved, for logs, the CLI's stderr and the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// Objective optimised.
    pub objective: Objective,
    /// Learners placed in new cohorts.
    pub learners: usize,
    /// New cohorts formed.
    pub cohorts: usize,
    /// Locked cohorts kept as they were.
    pub locked: usize,
    /// Smallest and largest new cohort.
    pub size_range: (usize, usize),
    /// Per-skill spreads.
    pub skills: Vec<SkillSpread>,
    /// Objective value reached: for balanced, the sum over cohorts and
    /// skills of squared deviations of cohort means and (relative) SDs, in
    /// population SD units; for leveled, the within-cohort sum of squares.
    pub objective_value: f64,
    /// The same for the random feasible reference.
    pub random_objective_value: f64,
    /// Largest share of one company in any new cohort.
    pub max_company_share: f64,
    /// The cap it must stay under.
    pub company_cap: f64,
    /// Wall-clock time of the formation.
    pub elapsed: Duration,
}

impl QualityReport {
    /// Measures a final assignment against the random reference.
    pub fn measure(
        p: &Problem,
        fin: &Assignment,
        random: &Assignment,
        locked: usize,
        elapsed: Duration,
    ) -> QualityReport {
        let rows = |a: &Assignment| -> Vec<Vec<&[f64]>> {
            a.iter()
                .map(|m| {
                    m.iter()
                        .map(|&l| p.learners[p.global(l)].mastery.as_slice())
                        .collect()
                })
                .collect()
        };
        let (mg, sg) = gaps(&rows(fin), p.skills);
        let (rmg, rsg) = gaps(&rows(random), p.skills);
        let skills = (0..p.skills)
            .map(|s| SkillSpread {
                name: format!("skill {}", s + 1),
                mean_gap: mg[s],
                sd_gap: sg[s],
                random_mean_gap: rmg[s],
                random_sd_gap: rsg[s],
            })
            .collect();
        let value = |a: &Assignment| match p.objective {
            Objective::Balanced => search::cost(p, a),
            Objective::Leveled => {
                let sq: f64 = p.feats.iter().map(|f| f * f).sum();
                sq + search::cost(p, a)
            }
        };
        let mut max_share: f64 = 0.0;
        for m in fin {
            let mut comps: Vec<&str> = m
                .iter()
                .map(|&l| p.learners[p.global(l)].company.as_str())
                .filter(|c| !c.is_empty())
                .collect();
            comps.sort_unstable();
            let mut run = 0usize;
            for (i, c) in comps.iter().enumerate() {
                run = if i > 0 && comps[i - 1] == *c {
                    run + 1
                } else {
                    1
                };
                max_share = max_share.max(run as f64 / m.len() as f64);
            }
        }
        QualityReport {
            objective: p.objective,
            learners: fin.iter().map(Vec::len).sum(),
            cohorts: fin.len(),
            locked,
            size_range: (
                fin.iter().map(Vec::len).min().unwrap_or(0),
                fin.iter().map(Vec::len).max().unwrap_or(0),
            ),
            skills,
            objective_value: value(fin),
            random_objective_value: value(random),
            max_company_share: max_share,
            company_cap: p.cons.max_company_share,
            elapsed,
        }
    }

    /// Largest mean gap over skills: the headline balance figure.
    pub fn max_mean_gap(&self) -> f64 {
        self.skills.iter().map(|s| s.mean_gap).fold(0.0, f64::max)
    }

    /// Largest SD gap over skills.
    pub fn max_sd_gap(&self) -> f64 {
        self.skills.iter().map(|s| s.sd_gap).fold(0.0, f64::max)
    }

    /// Largest mean gap of the random reference.
    pub fn random_max_mean_gap(&self) -> f64 {
        self.skills
            .iter()
            .map(|s| s.random_mean_gap)
            .fold(0.0, f64::max)
    }

    /// Largest SD gap of the random reference.
    pub fn random_max_sd_gap(&self) -> f64 {
        self.skills
            .iter()
            .map(|s| s.random_sd_gap)
            .fold(0.0, f64::max)
    }

    /// Replaces the generic skill names, e.g. with a CSV header's.
    pub fn name_skills(&mut self, names: &[String]) {
        for (s, n) in self.skills.iter_mut().zip(names) {
            s.name = n.clone();
        }
    }
}

impl fmt::Display for QualityReport {
    /// A small table for a terminal: one line per skill, then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let obj = match self.objective {
            Objective::Balanced => "balanced",
            Objective::Leveled => "leveled",
        };
        writeln!(
            f,
            "{} learners in {} new cohorts of {}..{} ({} locked kept), objective {obj}",
            self.learners, self.cohorts, self.size_range.0, self.size_range.1, self.locked
        )?;
        let w = self
            .skills
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "  {:<w$}  {:>9} {:>9}   {:>9} {:>9}",
            "skill", "mean gap", "(random)", "SD gap", "(random)"
        )?;
        for s in &self.skills {
            writeln!(
                f,
                "  {:<w$}  {:>9.4} {:>9.4}   {:>9.4} {:>9.4}",
                s.name, s.mean_gap, s.random_mean_gap, s.sd_gap, s.random_sd_gap
            )?;
        }
        writeln!(
            f,
            "  {:<w$}  {:>9.4} {:>9.4}   {:>9.4} {:>9.4}",
            "worst",
            self.max_mean_gap(),
            self.random_max_mean_gap(),
            self.max_sd_gap(),
            self.random_max_sd_gap()
        )?;
        writeln!(
            f,
            "objective value {:.4} (random {:.4})",
            self.objective_value, self.random_objective_value
        )?;
        writeln!(
            f,
            "largest company share in a cohort {:.1}% (cap {:.1}%)",
            100.0 * self.max_company_share,
            100.0 * self.company_cap
        )?;
        write!(f, "elapsed {:.3} s", self.elapsed.as_secs_f64())
    }
}

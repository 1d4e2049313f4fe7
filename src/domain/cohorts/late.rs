//! Late enrolments: placing one newcomer into existing cohorts without
//! moving anyone else, since cohorts that have started must stay stable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::constraints::{check_cohort, resolve};
use super::objective::Scale;
use super::{Cohort, CohortConstraints, CohortError, CohortLearner, Constraint, Objective};

/// Where a late learner goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Index of the chosen cohort in the slice passed in.
    pub cohort_index: usize,
    /// Its id.
    pub cohort_id: String,
    /// How much the chosen cohort's cost grows (balanced: squared deviation
    /// of means and SDs in population SD units; leveled: within-cohort sum
    /// of squares), never negative: 0 when the newcomer brings the cohort
    /// closer to the population (its cost falls). The cohort chosen is the
    /// one whose cost changes least (falls most).
    pub cost_increase: f64,
}

/// Picks the cohort where adding `newcomer` hurts the objective least,
/// among those where every hard rule (max size included) still holds.
///
/// `learners` is the population the cohorts refer to; the newcomer may or
/// may not be in it already but must not be a member of any cohort. When
/// no cohort fits, the error names the constraint that blocked the most
/// cohorts and counts the others, so the manager sees what to relax.
pub fn assign_late(
    learners: &[CohortLearner],
    cohorts: &[Cohort],
    newcomer: &CohortLearner,
    cons: &CohortConstraints,
    objective: Objective,
) -> Result<Placement, CohortError> {
    cons.validate()?;
    let (pop, who) = with_newcomer(learners, newcomer);
    let skills = super::validate_learners(&pop)?;
    let index: BTreeMap<&str, usize> = pop
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect();
    let scale = Scale::from_population(&pop, skills);
    let dim = scale.dim(objective);
    let feat = |i: usize| {
        let mut f = vec![0.0; dim];
        scale.features(&pop[i].mastery, objective, &mut f);
        f
    };
    let fnew = feat(who);
    let mut best: Option<(f64, usize)> = None;
    let mut blocked: BTreeMap<Constraint, (usize, String)> = BTreeMap::new();
    for (ci, c) in cohorts.iter().enumerate() {
        let mut members = resolve(&index, c).map_err(CohortError::Violation)?;
        if members.contains(&who) {
            return Err(CohortError::InvalidInput(format!(
                "learner {:?} is already in cohort {:?}",
                newcomer.id, c.id
            )));
        }
        let n = members.len() as f64;
        let mut sum = vec![0.0; dim];
        for &m in &members {
            for (s, f) in sum.iter_mut().zip(feat(m)) {
                *s += f;
            }
        }
        members.push(who);
        if let Err(v) = check_cohort(&pop, &c.id, &members, cons) {
            let e = blocked.entry(v.constraint()).or_insert((0, String::new()));
            e.0 += 1;
            if e.1.is_empty() {
                e.1 = v.to_string();
            }
            continue;
        }
        let inc = cost_increase(objective, &sum, n, &fnew);
        if best.is_none_or(|(b, _)| inc < b) {
            best = Some((inc, ci));
        }
    }
    if let Some((inc, ci)) = best {
        return Ok(Placement {
            cohort_index: ci,
            cohort_id: cohorts[ci].id.clone(),
            cost_increase: inc.max(0.0),
        });
    }
    Err(nothing_fits(cohorts, newcomer, &blocked))
}

/// The population with `newcomer` in it (replacing its older record, if
/// any), and its index.
fn with_newcomer(
    learners: &[CohortLearner],
    newcomer: &CohortLearner,
) -> (Vec<CohortLearner>, usize) {
    let mut pop: Vec<CohortLearner> = learners.to_vec();
    let who = match pop.iter().position(|l| l.id == newcomer.id) {
        Some(i) => {
            pop[i] = newcomer.clone();
            i
        }
        None => {
            pop.push(newcomer.clone());
            pop.len() - 1
        }
    };
    (pop, who)
}

/// How much a cohort's cost grows when the newcomer with features `fnew`
/// joins its `n` members, whose features sum to `sum`.
fn cost_increase(objective: Objective, sum: &[f64], n: f64, fnew: &[f64]) -> f64 {
    let dim = sum.len();
    match objective {
        Objective::Balanced => (0..dim)
            .map(|k| ((sum[k] + fnew[k]) / (n + 1.0)).powi(2) - (sum[k] / n.max(1.0)).powi(2))
            .sum(),
        Objective::Leveled => {
            let d2: f64 = (0..dim)
                .map(|k| (fnew[k] - sum[k] / n.max(1.0)).powi(2))
                .sum();
            n / (n + 1.0) * d2
        }
    }
}

/// Why no cohort can take the newcomer: the constraint that blocked the
/// most cohorts, with a count and an example of every one.
fn nothing_fits(
    cohorts: &[Cohort],
    newcomer: &CohortLearner,
    blocked: &BTreeMap<Constraint, (usize, String)>,
) -> CohortError {
    if cohorts.is_empty() {
        return CohortError::Infeasible {
            constraint: Constraint::Size,
            reason: format!("there is no cohort to place learner {:?} in", newcomer.id),
        };
    }
    let (&constraint, _) = blocked
        .iter()
        .max_by_key(|(c, (n, _))| (*n, std::cmp::Reverse(**c)))
        .expect("every cohort was blocked by something");
    let parts: Vec<String> = blocked
        .iter()
        .map(|(c, (n, example))| format!("{n} blocked by {c} (e.g. {example})"))
        .collect();
    CohortError::Infeasible {
        constraint,
        reason: format!(
            "no cohort can take learner {:?} without moving others: of {} cohorts, {}",
            newcomer.id,
            cohorts.len(),
            parts.join("; ")
        ),
    }
}

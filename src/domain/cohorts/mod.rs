//! Cohort formation: splitting a program's learners into live cohorts.
//!
//! A program manager enrols hundreds to tens of thousands of learners from
//! many companies and needs them split into cohorts that are each a fair
//! mix of levels, mix companies, speak one language and sit close enough in
//! time zones to meet live. This module does that as plain data in, plain
//! data out: it knows nothing of gRPC, protobuf or storage, so the service,
//! the offline CLI and the tests all call the same pure functions.
//!
//! The pipeline is:
//!
//! 1. [`plan`] splits the pool into *blocks* that may share cohorts (one
//!    language, a time-zone window) and decides how many cohorts each
//!    block gets, refusing early with a precise reason when the hard
//!    constraints cannot all hold.
//! 2. [`construct`] builds a first assignment that already respects the
//!    company caps (a capacity-aware greedy).
//! 3. [`search`] improves it by exchanging learners between pairs of
//!    cohorts, with O(features) incremental updates per candidate swap.
//! 4. [`constraints::verify_partition`] re-checks the result: no new
//!    cohort leaves this module breaking a hard constraint (locked cohorts
//!    are kept as they are; [`cohort_breaches`] says what they break).
//! 5. [`report`] measures the balance against a random feasible
//!    assignment so the manager can see what the optimisation bought.

pub mod constraints;
pub mod construct;
pub mod csv;
pub mod knn;
pub mod late;
pub mod leveled;
pub mod objective;
pub mod offsets;
pub mod plan;
pub mod records;
pub mod report;
pub mod search;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use constraints::{
    Breach, Constraint, Violation, check_move, cohort_breaches, verify_partition,
};
pub use csv::{OfflineOptions, assignment_csv, parse_learners, run_offline, write_assignment};
pub use late::{Placement, assign_late};
pub use offsets::{Window, ZoneOffsets, utc_offset_minutes};
pub use report::{QualityReport, SkillSpread};

/// Smallest cohort size the product allows: below it live sessions lose
/// their group dynamic, so bounds outside 15..=50 are refused.
pub const MIN_COHORT_SIZE: usize = 15;
/// Largest cohort size the product allows: above it one trainer cannot
/// follow everybody in a live session.
pub const MAX_COHORT_SIZE: usize = 50;

/// One learner as cohort formation sees them: identity, the attributes
/// the hard constraints look at, and the mastery vector balance is judged on.
///
/// Kept separate from the storage model so the algorithm stays a pure
/// function of its inputs; the caller maps its own learner type onto it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortLearner {
    /// Stable learner id; cohorts list members by it.
    pub id: String,
    /// Employer; no company may exceed the share cap within a cohort.
    pub company: String,
    /// Language tag; empty means "unknown", which fits any cohort.
    pub language: String,
    /// UTC offsets of the learner's time zone, in minutes, at the
    /// formation's instants: the same instants in the same order for every
    /// learner of a request (one for a single reference instant; over a
    /// program's dates, see [`offsets::ZoneOffsets`]). Empty when the time
    /// zone is unknown, which fits any cohort.
    pub utc_offsets: Vec<i32>,
    /// Mastery per skill in `[0, 1]`, the same skills in the same order for
    /// every learner of a program.
    pub mastery: Vec<f64>,
}

/// The hard rules of a program's cohorts.
///
/// These are never traded for balance: formation either satisfies all of
/// them or fails with [`CohortError::Infeasible`] naming the one that
/// cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CohortConstraints {
    /// Smallest cohort, in learners (within 15..=50).
    pub min_size: usize,
    /// Largest cohort, in learners (within 15..=50, at least `min_size`).
    pub max_size: usize,
    /// Largest share of one company in a cohort, in `(0, 1]`: a cohort of
    /// `s` learners holds at most `floor(share * s)` of one company.
    pub max_company_share: f64,
    /// Whether every cohort must speak a single language.
    pub single_language: bool,
    /// Largest difference of UTC offsets within a cohort, in hours.
    pub max_tz_spread_hours: f64,
    /// Total number of cohorts wanted (locked ones included); `None` lets
    /// formation aim at cohorts of about `(min_size + max_size) / 2`.
    pub target_cohorts: Option<usize>,
}

impl Default for CohortConstraints {
    /// The product defaults: sizes 15..50, company share 0.3, one language,
    /// three hours of time-zone spread, no target count.
    fn default() -> Self {
        CohortConstraints {
            min_size: MIN_COHORT_SIZE,
            max_size: MAX_COHORT_SIZE,
            max_company_share: 0.3,
            single_language: true,
            max_tz_spread_hours: 3.0,
            target_cohorts: None,
        }
    }
}

impl CohortConstraints {
    /// Most learners of one company a cohort of `size` may hold.
    ///
    /// The tiny epsilon keeps `0.3 * 30` at 9 despite binary rounding.
    pub fn company_cap(&self, size: usize) -> usize {
        (self.max_company_share * size as f64 + 1e-9).floor() as usize
    }

    /// Largest allowed spread in minutes, the unit offsets are kept in.
    pub fn max_tz_spread_minutes(&self) -> i64 {
        (self.max_tz_spread_hours * 60.0 + 1e-9).floor() as i64
    }

    /// Refuses rules outside the product's range before any work is done,
    /// so a typo in a CLI flag is not reported as an infeasible program.
    pub fn validate(&self) -> Result<(), CohortError> {
        let bad = |m: String| Err(CohortError::InvalidInput(m));
        if self.min_size < MIN_COHORT_SIZE || self.max_size > MAX_COHORT_SIZE {
            return bad(format!(
                "cohort size bounds {}..{} must lie within {MIN_COHORT_SIZE}..{MAX_COHORT_SIZE}",
                self.min_size, self.max_size
            ));
        }
        if self.min_size > self.max_size {
            return bad(format!(
                "minimum cohort size {} exceeds maximum {}",
                self.min_size, self.max_size
            ));
        }
        if !(self.max_company_share > 0.0 && self.max_company_share <= 1.0) {
            return bad(format!(
                "company share cap {} must be in (0, 1]",
                self.max_company_share
            ));
        }
        if !(self.max_tz_spread_hours >= 0.0 && self.max_tz_spread_hours.is_finite()) {
            return bad(format!(
                "time-zone spread {} h must be a non-negative number",
                self.max_tz_spread_hours
            ));
        }
        if self.target_cohorts == Some(0) {
            return bad("target number of cohorts must be at least 1".into());
        }
        Ok(())
    }
}

/// What "good cohorts" means for a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Objective {
    /// Every cohort mirrors the population: same mean and same spread of
    /// mastery per skill, companies spread as evenly as caps allow. The
    /// default, for peer learning across levels.
    #[default]
    Balanced,
    /// Cohorts homogeneous in level (k-means clusters repaired to the
    /// size and hard constraints), for pacing each cohort to its level.
    Leveled,
}

/// An existing cohort to keep untouched while the rest is (re)formed, e.g.
/// cohorts that already started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedCohort {
    /// The cohort's id, kept in the output.
    pub id: String,
    /// Learner ids of its members.
    pub members: Vec<String>,
}

/// One cohort of a partition: an id and its members' learner ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cohort {
    /// Stable id: a locked cohort's own id, or `cohort-NNN` for new ones.
    pub id: String,
    /// Learner ids, in a deterministic order.
    pub members: Vec<String>,
    /// Whether this cohort was passed in locked and kept as it was.
    pub locked: bool,
}

/// Everything formation needs, gathered so call sites stay readable and
/// new options do not change every signature.
#[derive(Debug, Clone)]
pub struct FormationRequest<'a> {
    /// The whole program population, locked cohorts' members included.
    pub learners: &'a [CohortLearner],
    /// The hard rules.
    pub constraints: CohortConstraints,
    /// Balanced or leveled.
    pub objective: Objective,
    /// Seed of the only randomness used: same inputs and seed, same result.
    pub seed: u64,
    /// Cohorts to keep as they are; their members are not re-formed.
    pub locked: &'a [LockedCohort],
}

/// Result of a formation: the partition and how good it is.
#[derive(Debug, Clone)]
pub struct Formation {
    /// Locked cohorts first (as given), then the new ones.
    pub cohorts: Vec<Cohort>,
    /// Balance figures, with a random feasible assignment as reference.
    pub report: QualityReport,
    /// Learners no cohort could take, in id order, each with the rule and
    /// why: one learner who fits nowhere does not stop the others.
    pub unplaced: Vec<Unplaced>,
}

/// A learner formation left out, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unplaced {
    /// The learner.
    pub id: String,
    /// The rule that left them out.
    pub constraint: Constraint,
    /// Why, with the figures (the group, its size, what it lacks).
    pub reason: String,
}

/// Why formation, a late assignment or a move was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CohortError {
    /// The hard constraints cannot all hold; `reason` says which numbers
    /// clash so the manager knows what to relax.
    #[error("infeasible {constraint} constraint: {reason}")]
    Infeasible {
        /// The constraint that cannot hold.
        constraint: Constraint,
        /// Human-readable explanation with the figures involved.
        reason: String,
    },
    /// A concrete cohort breaks a hard constraint (a locked cohort, a
    /// proposed move, or a partition handed in for verification).
    #[error("{0}")]
    Violation(Violation),
    /// Malformed request: bad ids, mastery out of range, bad bounds.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A CSV row could not be read; `line` is 1-based, header included.
    #[error("line {line}: {reason}")]
    Csv {
        /// 1-based line number in the input file.
        line: usize,
        /// What is wrong with the row.
        reason: String,
    },
    /// Reading or writing a CSV stream failed.
    #[error("i/o error: {0}")]
    Io(String),
}

impl CohortError {
    /// The constraint at fault, if this error is about one; lets the gRPC
    /// layer put it in a structured field rather than parse the message.
    pub fn constraint(&self) -> Option<Constraint> {
        match self {
            CohortError::Infeasible { constraint, .. } => Some(*constraint),
            CohortError::Violation(v) => Some(v.constraint()),
            _ => None,
        }
    }
}

/// Checks learner data once, up front, so the algorithm can index freely.
/// Returns the number of skills.
pub(crate) fn validate_learners(learners: &[CohortLearner]) -> Result<usize, CohortError> {
    let skills = learners.first().map_or(0, |l| l.mastery.len());
    let mut seen = BTreeSet::new();
    let mut instants = None;
    for l in learners {
        if l.id.is_empty() {
            return Err(CohortError::InvalidInput(
                "a learner has an empty id".into(),
            ));
        }
        if !seen.insert(l.id.as_str()) {
            return Err(CohortError::InvalidInput(format!(
                "learner id {:?} appears twice",
                l.id
            )));
        }
        if l.mastery.len() != skills {
            return Err(CohortError::InvalidInput(format!(
                "learner {:?} has {} mastery values, expected {skills}",
                l.id,
                l.mastery.len()
            )));
        }
        if !l.utc_offsets.is_empty() {
            match instants {
                None => instants = Some(l.utc_offsets.len()),
                Some(n) if n != l.utc_offsets.len() => {
                    return Err(CohortError::InvalidInput(format!(
                        "learner {:?} has {} UTC offsets, expected {n} (one per instant)",
                        l.id,
                        l.utc_offsets.len()
                    )));
                }
                Some(_) => {}
            }
        }
        if let Some(v) = l.mastery.iter().find(|v| !(0.0..=1.0).contains(*v)) {
            return Err(CohortError::InvalidInput(format!(
                "learner {:?} has mastery {v} outside [0, 1]",
                l.id
            )));
        }
    }
    Ok(skills)
}

/// Forms cohorts for a program: the single entry point of the service and
/// the CLI.
///
/// Locked cohorts are kept as they are, even when they break a rule (see
/// [`cohort_breaches`]); everybody else is split into new cohorts that
/// satisfy every hard constraint, optimised for the chosen objective. The
/// result is re-verified before it is returned, so a bug surfaces as an
/// error instead of a silently broken partition.
pub fn form_cohorts(req: &FormationRequest<'_>) -> Result<Formation, CohortError> {
    let start = Instant::now();
    let cons = &req.constraints;
    cons.validate()?;
    let skills = validate_learners(req.learners)?;
    let (pool, locked_ids) = pool_and_locked(req)?;

    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let plan = plan::plan_blocks(req.learners, &pool, cons, req.locked.len())?;
    let scale = objective::Scale::from_population(req.learners, skills);

    let problem = search::Problem::new(req.learners, &plan, &scale, req.objective, cons);
    let random_assignment = construct::random_feasible(&problem, &mut rng)?;
    let initial = match req.objective {
        Objective::Balanced => construct::balanced_start(&problem, &mut rng)?,
        Objective::Leveled => leveled::leveled_start(&problem, &mut rng)?,
    };
    let final_assignment = search::optimise(&problem, initial, &mut rng);

    let cohorts = new_cohorts(req, &locked_ids, &final_assignment, &problem);
    let mut left_out = vec![false; req.learners.len()];
    for (i, _, _) in &plan.unplaced {
        left_out[*i] = true;
    }
    let placed: Vec<CohortLearner> = req
        .learners
        .iter()
        .zip(&left_out)
        .filter(|(_, out)| !**out)
        .map(|(l, _)| l.clone())
        .collect();
    constraints::verify(&placed, &cohorts, cons, false).map_err(CohortError::Violation)?;
    let mut unplaced: Vec<Unplaced> = plan
        .unplaced
        .iter()
        .map(|(i, constraint, reason)| Unplaced {
            id: req.learners[*i].id.clone(),
            constraint: *constraint,
            reason: reason.clone(),
        })
        .collect();
    unplaced.sort_by(|a, b| a.id.cmp(&b.id));

    let report = report::QualityReport::measure(
        &problem,
        &final_assignment,
        &random_assignment,
        req.locked.len(),
        start.elapsed(),
    );
    Ok(Formation {
        cohorts,
        report,
        unplaced,
    })
}

/// The learners left to place (not in a locked cohort) and the locked
/// cohorts' ids; a locked cohort named twice, naming an unknown learner
/// or sharing one with another is refused.
fn pool_and_locked<'a>(
    req: &FormationRequest<'a>,
) -> Result<(Vec<usize>, BTreeSet<&'a str>), CohortError> {
    let index: BTreeMap<&str, usize> = req
        .learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect();

    // Locked cohorts: members leave the pool.
    let mut taken = vec![false; req.learners.len()];
    let mut locked_ids = BTreeSet::new();
    for lc in req.locked {
        if !locked_ids.insert(lc.id.as_str()) {
            return Err(CohortError::InvalidInput(format!(
                "locked cohort id {:?} appears twice",
                lc.id
            )));
        }
        for m in &lc.members {
            let &i = index.get(m.as_str()).ok_or_else(|| {
                CohortError::InvalidInput(format!(
                    "locked cohort {:?} lists unknown learner {m:?}",
                    lc.id
                ))
            })?;
            if std::mem::replace(&mut taken[i], true) {
                return Err(CohortError::InvalidInput(format!(
                    "learner {m:?} is in more than one locked cohort"
                )));
            }
        }
        // Kept as it is even if it breaks a rule now (a member's language
        // or time zone changed, the rules were tightened): a lock is the
        // manager's word; the stored cohort reports its breaches.
    }
    let pool: Vec<usize> = (0..req.learners.len()).filter(|&i| !taken[i]).collect();
    Ok((pool, locked_ids))
}

/// The cohorts: locked first, as they are, then the new ones with fresh
/// ids (`cohort-001`...), their members sorted.
fn new_cohorts(
    req: &FormationRequest<'_>,
    locked_ids: &BTreeSet<&str>,
    assignment: &[Vec<u32>],
    problem: &search::Problem,
) -> Vec<Cohort> {
    let mut cohorts: Vec<Cohort> = req
        .locked
        .iter()
        .map(|lc| Cohort {
            id: lc.id.clone(),
            members: lc.members.clone(),
            locked: true,
        })
        .collect();
    let mut next = 1usize;
    for members in assignment {
        let id = loop {
            let id = format!("cohort-{next:03}");
            next += 1;
            if !locked_ids.contains(id.as_str()) {
                break id;
            }
        };
        let mut ids: Vec<String> = members
            .iter()
            .map(|&li| req.learners[problem.global(li)].id.clone())
            .collect();
        ids.sort();
        cohorts.push(Cohort {
            id,
            members: ids,
            locked: false,
        });
    }
    cohorts
}

#[cfg(test)]
mod tests;

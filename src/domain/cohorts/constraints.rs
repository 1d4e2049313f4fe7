//! The hard constraints, checked on concrete cohorts.
//!
//! Formation plans around these rules, but plans can have bugs; so every
//! partition is re-checked here before it leaves the module, and the same
//! checks are public so the service can re-verify stored cohorts and vet a
//! manager's manual move before applying it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Cohort, CohortConstraints, CohortLearner};

/// The hard constraints by name, so callers can map a refusal to the
/// setting the manager should relax without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Constraint {
    /// Cohort size bounds `min_size..=max_size`.
    Size,
    /// Largest share of one company in a cohort.
    CompanyShare,
    /// One language per cohort.
    Language,
    /// Largest time-zone spread within a cohort.
    TimezoneSpread,
    /// The requested total number of cohorts.
    CohortCount,
    /// Every learner in exactly one cohort, every id known.
    Membership,
}

impl fmt::Display for Constraint {
    /// Lower-case names that read well inside a sentence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Constraint::Size => "cohort size",
            Constraint::CompanyShare => "company share",
            Constraint::Language => "language",
            Constraint::TimezoneSpread => "time-zone spread",
            Constraint::CohortCount => "cohort count",
            Constraint::Membership => "membership",
        })
    }
}

/// One concrete breach of a hard constraint by a concrete cohort, with the
/// figures a manager needs to understand it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Violation {
    /// A cohort has fewer members than `min_size`.
    TooSmall {
        /// Cohort id.
        cohort: String,
        /// Its size.
        size: usize,
        /// The bound.
        min: usize,
    },
    /// A cohort has more members than `max_size`.
    TooLarge {
        /// Cohort id.
        cohort: String,
        /// Its size.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// One company holds more than its cap in a cohort.
    CompanyShare {
        /// Cohort id.
        cohort: String,
        /// The company over its cap.
        company: String,
        /// Its members in the cohort.
        count: usize,
        /// The cohort size.
        size: usize,
        /// Most members of one company allowed at that size.
        cap: usize,
    },
    /// A single-language cohort mixes two languages.
    MixedLanguages {
        /// Cohort id.
        cohort: String,
        /// One language present.
        first: String,
        /// Another language present.
        second: String,
    },
    /// UTC offsets within a cohort are too far apart.
    TimezoneSpread {
        /// Cohort id.
        cohort: String,
        /// Actual spread in minutes.
        spread_minutes: i64,
        /// Allowed spread in minutes.
        max_minutes: i64,
    },
    /// The number of cohorts differs from the requested one.
    CohortCount {
        /// Cohorts present.
        count: usize,
        /// Cohorts requested.
        target: usize,
    },
    /// A cohort lists a learner id that is not in the population.
    UnknownLearner {
        /// Cohort id.
        cohort: String,
        /// The unknown id.
        learner: String,
    },
    /// A learner appears in two cohorts (or twice in one).
    DuplicateLearner {
        /// The learner id.
        learner: String,
    },
    /// A learner of the population is in no cohort.
    MissingLearner {
        /// The learner id.
        learner: String,
    },
    /// A move names a cohort that does not exist.
    UnknownCohort {
        /// The cohort id.
        cohort: String,
    },
    /// A move takes a learner from a cohort they are not in.
    NotAMember {
        /// Cohort id.
        cohort: String,
        /// The learner id.
        learner: String,
    },
}

impl Violation {
    /// Which hard constraint this breach belongs to.
    pub fn constraint(&self) -> Constraint {
        match self {
            Violation::TooSmall { .. } | Violation::TooLarge { .. } => Constraint::Size,
            Violation::CompanyShare { .. } => Constraint::CompanyShare,
            Violation::MixedLanguages { .. } => Constraint::Language,
            Violation::TimezoneSpread { .. } => Constraint::TimezoneSpread,
            Violation::CohortCount { .. } => Constraint::CohortCount,
            Violation::UnknownLearner { .. }
            | Violation::DuplicateLearner { .. }
            | Violation::MissingLearner { .. }
            | Violation::UnknownCohort { .. }
            | Violation::NotAMember { .. } => Constraint::Membership,
        }
    }
}

impl fmt::Display for Violation {
    /// One sentence naming the constraint, the cohort and the figures.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::TooSmall { cohort, size, min } => write!(
                f,
                "cohort size: cohort {cohort} would have {size} learners, below the minimum {min}"
            ),
            Violation::TooLarge { cohort, size, max } => write!(
                f,
                "cohort size: cohort {cohort} would have {size} learners, above the maximum {max}"
            ),
            Violation::CompanyShare {
                cohort,
                company,
                count,
                size,
                cap,
            } => write!(
                f,
                "company share: cohort {cohort} would hold {count} learners of company {company:?} \
                 out of {size}, above the cap of {cap}"
            ),
            Violation::MixedLanguages {
                cohort,
                first,
                second,
            } => write!(
                f,
                "language: cohort {cohort} would mix {first:?} and {second:?}"
            ),
            Violation::TimezoneSpread {
                cohort,
                spread_minutes,
                max_minutes,
            } => write!(
                f,
                "time-zone spread: cohort {cohort} would span {} h, above the maximum {} h",
                *spread_minutes as f64 / 60.0,
                *max_minutes as f64 / 60.0
            ),
            Violation::CohortCount { count, target } => write!(
                f,
                "cohort count: {count} cohorts instead of the requested {target}"
            ),
            Violation::UnknownLearner { cohort, learner } => write!(
                f,
                "membership: cohort {cohort} lists unknown learner {learner:?}"
            ),
            Violation::DuplicateLearner { learner } => {
                write!(
                    f,
                    "membership: learner {learner:?} is in more than one cohort"
                )
            }
            Violation::MissingLearner { learner } => {
                write!(f, "membership: learner {learner:?} is in no cohort")
            }
            Violation::UnknownCohort { cohort } => {
                write!(f, "membership: there is no cohort {cohort:?}")
            }
            Violation::NotAMember { cohort, learner } => write!(
                f,
                "membership: learner {learner:?} is not in cohort {cohort:?}"
            ),
        }
    }
}

/// Checks one cohort, given as population indices, against every per-cohort
/// rule: size, company share, language, time-zone spread.
///
/// Empty company or language and unknown offsets are "unknown": they never
/// count against a cap and fit any cohort.
pub fn check_cohort(
    learners: &[CohortLearner],
    id: &str,
    members: &[usize],
    cons: &CohortConstraints,
) -> Result<(), Violation> {
    let size = members.len();
    if size < cons.min_size {
        return Err(Violation::TooSmall {
            cohort: id.to_string(),
            size,
            min: cons.min_size,
        });
    }
    if size > cons.max_size {
        return Err(Violation::TooLarge {
            cohort: id.to_string(),
            size,
            max: cons.max_size,
        });
    }
    let cap = cons.company_cap(size);
    let mut per_company: BTreeMap<&str, usize> = BTreeMap::new();
    for &m in members {
        let c = learners[m].company.as_str();
        if !c.is_empty() {
            *per_company.entry(c).or_default() += 1;
        }
    }
    if let Some((company, &count)) = per_company.iter().find(|(_, n)| **n > cap) {
        return Err(Violation::CompanyShare {
            cohort: id.to_string(),
            company: company.to_string(),
            count,
            size,
            cap,
        });
    }
    if cons.single_language {
        let langs: BTreeSet<&str> = members
            .iter()
            .map(|&m| learners[m].language.as_str())
            .filter(|l| !l.is_empty())
            .collect();
        let mut it = langs.iter();
        if let (Some(a), Some(b)) = (it.next(), it.next()) {
            return Err(Violation::MixedLanguages {
                cohort: id.to_string(),
                first: a.to_string(),
                second: b.to_string(),
            });
        }
    }
    let offsets = members
        .iter()
        .filter_map(|&m| learners[m].utc_offset_minutes);
    let (lo, hi) = offsets.fold((i64::MAX, i64::MIN), |(lo, hi), o| {
        (lo.min(o as i64), hi.max(o as i64))
    });
    if lo <= hi && hi - lo > cons.max_tz_spread_minutes() {
        return Err(Violation::TimezoneSpread {
            cohort: id.to_string(),
            spread_minutes: hi - lo,
            max_minutes: cons.max_tz_spread_minutes(),
        });
    }
    Ok(())
}

/// Verifies a whole partition of `learners`: every learner in exactly one
/// cohort, every cohort within every hard rule, and the requested number
/// of cohorts if one was set.
///
/// Formation calls this on its own output; the service should call it on
/// anything it is about to persist that did not come straight from here.
pub fn verify_partition(
    learners: &[CohortLearner],
    cohorts: &[Cohort],
    cons: &CohortConstraints,
) -> Result<(), Violation> {
    let index: BTreeMap<&str, usize> = learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect();
    let mut seen = vec![false; learners.len()];
    for c in cohorts {
        let members = resolve(&index, c)?;
        for &m in &members {
            if std::mem::replace(&mut seen[m], true) {
                return Err(Violation::DuplicateLearner {
                    learner: learners[m].id.clone(),
                });
            }
        }
        check_cohort(learners, &c.id, &members, cons)?;
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(Violation::MissingLearner {
            learner: learners[i].id.clone(),
        });
    }
    if let Some(target) = cons.target_cohorts
        && target != cohorts.len()
    {
        return Err(Violation::CohortCount {
            count: cohorts.len(),
            target,
        });
    }
    Ok(())
}

/// Maps a cohort's member ids to population indices.
pub(crate) fn resolve(index: &BTreeMap<&str, usize>, c: &Cohort) -> Result<Vec<usize>, Violation> {
    c.members
        .iter()
        .map(|m| {
            index
                .get(m.as_str())
                .copied()
                .ok_or_else(|| Violation::UnknownLearner {
                    cohort: c.id.clone(),
                    learner: m.clone(),
                })
        })
        .collect()
}

/// Tells whether moving `learner_id` from cohort `from` to cohort `to`
/// keeps every hard rule, and if not which one breaks (checked on both
/// cohorts: leaving can break the source's minimum size or, since the cap
/// shrinks with the size, its company share).
///
/// Lets a manager's drag-and-drop be vetted before anything is written.
pub fn check_move(
    learners: &[CohortLearner],
    cohorts: &[Cohort],
    learner_id: &str,
    from: &str,
    to: &str,
    cons: &CohortConstraints,
) -> Result<(), Violation> {
    let index: BTreeMap<&str, usize> = learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect();
    let find = |id: &str| {
        cohorts
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Violation::UnknownCohort {
                cohort: id.to_string(),
            })
    };
    let (src, dst) = (find(from)?, find(to)?);
    let &who = index
        .get(learner_id)
        .ok_or_else(|| Violation::UnknownLearner {
            cohort: from.to_string(),
            learner: learner_id.to_string(),
        })?;
    let mut src_members = resolve(&index, src)?;
    let pos = src_members
        .iter()
        .position(|&m| m == who)
        .ok_or_else(|| Violation::NotAMember {
            cohort: from.to_string(),
            learner: learner_id.to_string(),
        })?;
    if from == to {
        return Ok(());
    }
    src_members.remove(pos);
    let mut dst_members = resolve(&index, dst)?;
    dst_members.push(who);
    check_cohort(learners, to, &dst_members, cons)?;
    check_cohort(learners, from, &src_members, cons)
}

//! The hard constraints, checked on concrete cohorts.
//!
//! Formation plans around these rules, but plans can have bugs; so every
//! partition is re-checked here before it leaves the module, and the same
//! checks are public so the service can re-verify stored cohorts and vet a
//! manager's manual move before applying it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::plan::fmt_offset;
use super::{Cohort, CohortConstraints, CohortLearner, offsets};

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

/// One hard rule a cohort breaks, with what a manager needs to repair it:
/// who is concerned, and the measured figure against the limit.
///
/// Formation and moves never produce one; stored cohorts can hold one
/// after a learner's language or time zone changed, the program's rules
/// were tightened, or formation kept a locked cohort that breaks them.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// The breach as refusals report it.
    pub violation: Violation,
    /// Members concerned, in id order: those of the company over its cap,
    /// those outside the cohort's most common language, those at the
    /// lowest and highest offsets where the spread is widest; empty for a
    /// size breach (the cohort as a whole).
    pub learners: Vec<String>,
    /// The company over its cap (company share only).
    pub companies: Vec<String>,
    /// The measured figure: members (size), the company's share of the
    /// cohort in `[0, 1]`, distinct languages, spread in hours.
    pub value: f64,
    /// The limit broken, in the same unit: the minimum or maximum size,
    /// the share cap, 1 language, the spread allowed in hours.
    pub limit: f64,
    /// One sentence with the figures.
    pub message: String,
}

impl Breach {
    /// The program setting the breach is against, as `CohortRules` names
    /// it: `min_size`, `max_size`, `max_company_share`, `single_language`
    /// or `max_timezone_spread_hours`.
    pub fn rule(&self) -> &'static str {
        match self.violation {
            Violation::TooSmall { .. } => "min_size",
            Violation::TooLarge { .. } => "max_size",
            Violation::CompanyShare { .. } => "max_company_share",
            Violation::MixedLanguages { .. } => "single_language",
            _ => "max_timezone_spread_hours",
        }
    }

    /// How far beyond its limit, larger being worse: compares two states
    /// of one cohort (a move may not make a breach worse).
    fn excess(&self) -> f64 {
        match self.violation {
            Violation::TooSmall { .. } => self.limit - self.value,
            _ => self.value - self.limit,
        }
    }

    /// Whether `self` is the same breach as `other` (same rule, same
    /// company) and no worse.
    fn within(&self, other: &Breach) -> bool {
        self.rule() == other.rule()
            && self.companies == other.companies
            && self.excess() <= other.excess()
    }
}

/// Every hard rule one cohort, given as population indices, breaks: size,
/// then company share (one breach per company over its cap, by name), one
/// language, time-zone spread (the widest at one instant).
///
/// Empty company or language and unknown offsets are "unknown": they never
/// count against a cap and fit any cohort.
pub fn cohort_breaches(
    learners: &[CohortLearner],
    id: &str,
    members: &[usize],
    cons: &CohortConstraints,
) -> Vec<Breach> {
    let c = Checked {
        learners,
        id,
        members,
    };
    let mut out = c.size_breaches(cons);
    out.extend(c.company_breaches(cons));
    out.extend(c.language_breach(cons));
    out.extend(c.timezone_breach(cons));
    out
}

/// One cohort under check: its members, as indices into the population.
struct Checked<'a> {
    learners: &'a [CohortLearner],
    id: &'a str,
    members: &'a [usize],
}

impl Checked<'_> {
    /// The sorted ids of the members `pick` selects.
    fn ids(&self, pick: impl Fn(&CohortLearner) -> bool) -> Vec<String> {
        let mut v: Vec<String> = self
            .members
            .iter()
            .map(|&m| &self.learners[m])
            .filter(|l| pick(l))
            .map(|l| l.id.clone())
            .collect();
        v.sort();
        v
    }

    /// Below the minimum or above the maximum size.
    fn size_breaches(&self, cons: &CohortConstraints) -> Vec<Breach> {
        let (id, size) = (self.id, self.members.len());
        let mut out = Vec::new();
        if size < cons.min_size {
            out.push(Breach {
                violation: Violation::TooSmall {
                    cohort: self.id.to_string(),
                    size,
                    min: cons.min_size,
                },
                learners: Vec::new(),
                companies: Vec::new(),
                value: size as f64,
                limit: cons.min_size as f64,
                message: format!(
                    "cohort {id} has {size} learners, below the minimum of {}",
                    cons.min_size
                ),
            });
        }
        if size > cons.max_size {
            out.push(Breach {
                violation: Violation::TooLarge {
                    cohort: self.id.to_string(),
                    size,
                    max: cons.max_size,
                },
                learners: Vec::new(),
                companies: Vec::new(),
                value: size as f64,
                limit: cons.max_size as f64,
                message: format!(
                    "cohort {id} has {size} learners, above the maximum of {}",
                    cons.max_size
                ),
            });
        }
        out
    }

    /// One breach per company over its cap.
    fn company_breaches(&self, cons: &CohortConstraints) -> Vec<Breach> {
        let (id, size) = (self.id, self.members.len());
        let mut out = Vec::new();
        let cap = cons.company_cap(size);
        let mut per_company: BTreeMap<&str, usize> = BTreeMap::new();
        for &m in self.members {
            let c = self.learners[m].company.as_str();
            if !c.is_empty() {
                *per_company.entry(c).or_default() += 1;
            }
        }
        for (company, &count) in per_company.iter().filter(|(_, n)| **n > cap) {
            let share = count as f64 / size as f64;
            out.push(Breach {
                violation: Violation::CompanyShare {
                    cohort: self.id.to_string(),
                    company: company.to_string(),
                    count,
                    size,
                    cap,
                },
                learners: self.ids(|l| l.company == *company),
                companies: vec![company.to_string()],
                value: share,
                limit: cons.max_company_share,
                message: format!(
                    "cohort {id} holds {count} learners of company {company:?} out of {size} \
                     ({:.1}%), above the cap of {}% ({cap} learners)",
                    100.0 * share,
                    100.0 * cons.max_company_share
                ),
            });
        }
        out
    }

    /// More than one language where one is required.
    fn language_breach(&self, cons: &CohortConstraints) -> Option<Breach> {
        let id = self.id;
        if cons.single_language {
            let mut langs: BTreeMap<&str, usize> = BTreeMap::new();
            for &m in self.members {
                let l = self.learners[m].language.as_str();
                if !l.is_empty() {
                    *langs.entry(l).or_default() += 1;
                }
            }
            let mut names = langs.keys();
            if let (Some(first), Some(second)) = (names.next(), names.next()) {
                let main = langs
                    .iter()
                    .max_by_key(|(l, n)| (**n, std::cmp::Reverse(**l)))
                    .map(|(l, _)| *l)
                    .expect("two languages");
                let list: Vec<String> = langs.keys().map(|l| format!("{l:?}")).collect();
                return Some(Breach {
                    violation: Violation::MixedLanguages {
                        cohort: self.id.to_string(),
                        first: first.to_string(),
                        second: second.to_string(),
                    },
                    learners: self.ids(|l| !l.language.is_empty() && l.language != main),
                    companies: Vec::new(),
                    value: langs.len() as f64,
                    limit: 1.0,
                    message: format!(
                        "cohort {id} mixes {} languages ({}), where one is allowed; {:?} is the \
                         most common",
                        langs.len(),
                        list.join(", "),
                        main
                    ),
                });
            }
        }
        None
    }

    /// Time zones wider apart than allowed at some instant.
    fn timezone_breach(&self, cons: &CohortConstraints) -> Option<Breach> {
        let id = self.id;
        let widest = offsets::widest(
            self.members
                .iter()
                .map(|&m| self.learners[m].utc_offsets.as_slice()),
        );
        if let Some(w) = widest.filter(|w| w.minutes > cons.max_tz_spread_minutes()) {
            let at_edge = |l: &CohortLearner| {
                l.utc_offsets
                    .get(w.instant)
                    .is_some_and(|&o| o == w.low || o == w.high)
            };
            return Some(Breach {
                violation: Violation::TimezoneSpread {
                    cohort: self.id.to_string(),
                    spread_minutes: w.minutes,
                    max_minutes: cons.max_tz_spread_minutes(),
                },
                learners: self.ids(at_edge),
                companies: Vec::new(),
                value: w.minutes as f64 / 60.0,
                limit: cons.max_tz_spread_hours,
                message: format!(
                    "cohort {id} spans {} h of UTC offsets ({} to {}), above the maximum of {} h",
                    w.minutes as f64 / 60.0,
                    fmt_offset(w.low.into()),
                    fmt_offset(w.high.into()),
                    cons.max_tz_spread_hours
                ),
            });
        }
        None
    }
}

/// Checks one cohort, given as population indices, against every per-cohort
/// rule (size, company share, language, time-zone spread) and returns the
/// first breach, in that order.
pub fn check_cohort(
    learners: &[CohortLearner],
    id: &str,
    members: &[usize],
    cons: &CohortConstraints,
) -> Result<(), Violation> {
    match cohort_breaches(learners, id, members, cons)
        .into_iter()
        .next()
    {
        Some(b) => Err(b.violation),
        None => Ok(()),
    }
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
    verify(learners, cohorts, cons, true)
}

/// [`verify_partition`], checking the per-cohort rules of locked cohorts
/// only when `check_locked` (formation keeps locked cohorts as they are,
/// whatever they break; their breaches are reported on the stored cohort).
pub(crate) fn verify(
    learners: &[CohortLearner],
    cohorts: &[Cohort],
    cons: &CohortConstraints,
    check_locked: bool,
) -> Result<(), Violation> {
    let index = index_by_id(learners);
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
        if check_locked || !c.locked {
            check_cohort(learners, &c.id, &members, cons)?;
        }
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

/// Each learner's position in `learners`, by id.
fn index_by_id(learners: &[CohortLearner]) -> BTreeMap<&str, usize> {
    learners
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id.as_str(), i))
        .collect()
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
/// A cohort that already breaks a rule (see [`Breach`]) may keep breaking
/// it as long as the move does not make it worse: moves are how a manager
/// repairs a locked cohort, one learner at a time. Lets a manager's
/// drag-and-drop be vetted before anything is written.
pub fn check_move(
    learners: &[CohortLearner],
    cohorts: &[Cohort],
    learner_id: &str,
    from: &str,
    to: &str,
    cons: &CohortConstraints,
) -> Result<(), Violation> {
    let index = index_by_id(learners);
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
    let src_before = src_members.clone();
    src_members.remove(pos);
    let dst_before = resolve(&index, dst)?;
    let mut dst_members = dst_before.clone();
    dst_members.push(who);
    for (id, before, after) in [
        (to, &dst_before, &dst_members),
        (from, &src_before, &src_members),
    ] {
        let old = cohort_breaches(learners, id, before, cons);
        if let Some(b) = cohort_breaches(learners, id, after, cons)
            .into_iter()
            .find(|b| !old.iter().any(|o| b.within(o)))
        {
            return Err(b.violation);
        }
    }
    Ok(())
}

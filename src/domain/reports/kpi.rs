//! The KPI computations of a cohort (or program) report, over plain rows.
//!
//! The caller gathers rows for the learners in scope (attempts with the
//! P(mastered) they led to, module events, alerts); [`compute`] turns them
//! into a [`CohortReport`]. Rows of learners outside `learners` are ignored,
//! rows may come in any order, and every figure is defined in the doc of its
//! field so that a trainer and a test can recompute it by hand.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::completion::CompletionPlan;
use crate::domain::learner::Micros;
use crate::domain::risk::AlertKind;

/// Whether a report covers one cohort or a whole program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeKind {
    /// One cohort of a program.
    Cohort,
    /// Every learner of a program.
    Program,
}

/// What the report is about, as printed in its title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportScope {
    /// Cohort or program.
    pub kind: ScopeKind,
    /// Id of the cohort or program.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A skill or module of the program: id for joins, name for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedItem {
    /// Catalog id.
    pub id: String,
    /// Display name.
    pub name: String,
}

/// A learner in scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnerRow {
    /// The learner.
    pub learner_id: String,
    /// When they enrolled in the program.
    pub enrolled_at: Micros,
}

/// One answer on one skill (an attempt testing two skills gives two rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRow {
    /// Who answered.
    pub learner_id: String,
    /// The skill the answer is evidence of.
    pub skill_id: String,
    /// The module the quiz belongs to, when known (module blocking points).
    pub module_id: Option<String>,
    /// Whether the answer was right.
    pub correct: bool,
    /// When.
    pub at: Micros,
    /// Time spent on the item, in milliseconds.
    pub time_spent_ms: u64,
    /// P(mastered) of the skill right after this answer.
    pub p_after: f64,
}

/// One module event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRow {
    /// Who.
    pub learner_id: String,
    /// Which module.
    pub module_id: String,
    /// `true` for a completion, `false` for a start.
    pub completed: bool,
    /// When.
    pub at: Micros,
    /// Time spent in the module reported with this event, in milliseconds.
    pub time_spent_ms: u64,
}

/// One alert as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRow {
    /// The learner concerned.
    pub learner_id: String,
    /// What it was about.
    pub kind: AlertKind,
    /// When it was raised.
    pub raised_at: Micros,
    /// When it was resolved, if it was.
    pub resolved_at: Option<Micros>,
}

/// Everything a report is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// What the report covers.
    pub scope: ReportScope,
    /// When it is computed (printed, and the end of the participation range).
    pub generated_at: Micros,
    /// The program's skills, in display order.
    pub skills: Vec<NamedItem>,
    /// The program's modules, in display order.
    pub modules: Vec<NamedItem>,
    /// What completing the program takes (see `domain::completion`).
    pub completion: CompletionPlan,
    /// P(mastered) at or above which a skill counts as mastered.
    pub mastery_threshold: f64,
    /// Consecutive failures on a skill or module that make a blocking point
    /// (the alert rule's threshold, usually 3).
    pub blocking_failures: u32,
    /// The learners in scope.
    pub learners: Vec<LearnerRow>,
    /// Their answers.
    pub attempts: Vec<AttemptRow>,
    /// Their module events.
    pub activities: Vec<ActivityRow>,
    /// Their alerts.
    pub alerts: Vec<AlertRow>,
}

/// Time spent in one module by the learners who spent any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleTime {
    /// The module.
    pub module_id: String,
    /// Its name.
    pub name: String,
    /// Learners with time recorded in it.
    pub learners: usize,
    /// Median over those learners of their total minutes in the module.
    pub median_minutes: f64,
    /// 90th percentile of the same (linear interpolation between ranks).
    pub p90_minutes: f64,
}

/// Whether a blocking point is a skill or a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlockingScope {
    /// A skill.
    Skill,
    /// A module (its quiz).
    Module,
}

/// A skill or module where learners fail repeatedly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockingPoint {
    /// Skill or module.
    pub scope: BlockingScope,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Learners who had a run of `blocking_failures` consecutive failures
    /// on it at some point (the ranking key).
    pub learners_blocked: usize,
    /// Learners who answered on it at all.
    pub learners_attempted: usize,
    /// All failed answers on it.
    pub failed_attempts: usize,
}

/// Competence in one skill before vs. now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillCompetence {
    /// The skill.
    pub skill_id: String,
    /// Its name.
    pub name: String,
    /// Learners with at least one answer on it (the means are over them).
    pub learners: usize,
    /// Mean P(mastered) after each learner's first answer: the first
    /// evidence, i.e. the level they came in with.
    pub before_mean: f64,
    /// Mean P(mastered) after each learner's latest answer.
    pub after_mean: f64,
    /// Learners at or above the mastery threshold now.
    pub mastered_now: usize,
}

/// One ISO week of the participation curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekActivity {
    /// ISO week, e.g. `2024-W46`.
    pub week: String,
    /// Its Monday, e.g. `2024-11-11`.
    pub starts_on: String,
    /// Learners with at least one answer or module event that week.
    pub active_learners: usize,
    /// Learners who had completed the program by the end of that week.
    pub completed_cumulative: usize,
}

/// Alerts raised and resolved, for one kind or in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlertCount {
    /// Alerts raised.
    pub raised: usize,
    /// Of which resolved.
    pub resolved: usize,
}

/// A learner who reached the mastery threshold on every program skill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Certification {
    /// The learner.
    pub learner_id: String,
    /// The first moment every skill was at or above the threshold at once.
    pub certified_at: Micros,
    /// The same, as a UTC date (`2024-11-12`).
    pub certified_on: String,
    /// The evidence: answers per skill up to that moment.
    pub attempts_per_skill: BTreeMap<String, u32>,
}

/// The report of a cohort or program: what `to_csv` and `to_html` export and
/// what the report service returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CohortReport {
    /// What it covers.
    pub scope: ReportScope,
    /// When it was computed.
    pub generated_at: Micros,
    /// The mastery threshold used for competence and certification.
    pub mastery_threshold: f64,
    /// Learners in scope.
    pub learners: usize,
    /// Learners who completed the program (`domain::completion`).
    pub completed: usize,
    /// `completed / learners` (0 without learners).
    pub completion_rate: f64,
    /// Time per module, in program order (modules nobody opened included,
    /// with zeros).
    pub module_time: Vec<ModuleTime>,
    /// Skills and modules where learners get stuck, worst first; only those
    /// with at least one blocked learner.
    pub blocking_points: Vec<BlockingPoint>,
    /// Competence per skill, in program order.
    pub competence: Vec<SkillCompetence>,
    /// Active learners and cumulative completions per ISO week, from the
    /// week of the first event to the week of the last (gaps included).
    pub participation: Vec<WeekActivity>,
    /// All alerts.
    pub alerts: AlertCount,
    /// Alerts per kind (every kind listed).
    pub alerts_by_kind: BTreeMap<AlertKind, AlertCount>,
    /// Certified learners, earliest first.
    pub certified: Vec<Certification>,
}

/// Computes the report. Pure: same rows, same report.
pub fn compute(input: &ReportInput) -> CohortReport {
    let in_scope: BTreeSet<&str> = input
        .learners
        .iter()
        .map(|l| l.learner_id.as_str())
        .collect();
    let attempts: Vec<&AttemptRow> = sorted_by_time(
        input
            .attempts
            .iter()
            .filter(|a| in_scope.contains(a.learner_id.as_str())),
        |a| a.at,
    );
    let activities: Vec<&ActivityRow> = sorted_by_time(
        input
            .activities
            .iter()
            .filter(|a| in_scope.contains(a.learner_id.as_str())),
        |a| a.at,
    );

    let completions = completions(input, &activities);
    let learners = in_scope.len();
    let completed = completions.len();

    let mut alerts = AlertCount::default();
    let mut alerts_by_kind: BTreeMap<AlertKind, AlertCount> = AlertKind::ALL
        .iter()
        .map(|k| (*k, AlertCount::default()))
        .collect();
    for a in input
        .alerts
        .iter()
        .filter(|a| in_scope.contains(a.learner_id.as_str()))
    {
        let resolved = usize::from(a.resolved_at.is_some());
        for count in [&mut alerts, alerts_by_kind.entry(a.kind).or_default()] {
            count.raised += 1;
            count.resolved += resolved;
        }
    }

    CohortReport {
        scope: input.scope.clone(),
        generated_at: input.generated_at,
        mastery_threshold: input.mastery_threshold,
        learners,
        completed,
        completion_rate: if learners == 0 {
            0.0
        } else {
            completed as f64 / learners as f64
        },
        module_time: module_time(input, &activities),
        blocking_points: blocking_points(input, &attempts),
        competence: competence(input, &attempts),
        participation: participation(&attempts, &activities, &completions),
        alerts,
        alerts_by_kind,
        certified: certifications(input, &attempts),
    }
}

/// Rows sorted by time; the sort is stable so equal times keep input order.
fn sorted_by_time<'a, T>(
    rows: impl Iterator<Item = &'a T>,
    at: impl Fn(&T) -> Micros,
) -> Vec<&'a T> {
    let mut rows: Vec<&T> = rows.collect();
    rows.sort_by_key(|r| at(r));
    rows
}

/// Completion time of every learner who completed the program: when the
/// last program skill got its first completed module.
fn completions(input: &ReportInput, activities: &[&ActivityRow]) -> BTreeMap<String, Micros> {
    let mut first_done: BTreeMap<&str, BTreeMap<&str, Micros>> = BTreeMap::new();
    for a in activities.iter().filter(|a| a.completed) {
        let first = first_done
            .entry(&a.learner_id)
            .or_default()
            .entry(&a.module_id)
            .or_insert(a.at);
        *first = (*first).min(a.at);
    }
    first_done
        .into_iter()
        .filter_map(|(learner, done)| {
            let at = input.completion.completed_at(&done)?;
            Some((learner.to_string(), at))
        })
        .collect()
}

fn module_time(input: &ReportInput, activities: &[&ActivityRow]) -> Vec<ModuleTime> {
    let mut per_module: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for a in activities {
        *per_module
            .entry(&a.module_id)
            .or_default()
            .entry(&a.learner_id)
            .or_default() += a.time_spent_ms;
    }
    input
        .modules
        .iter()
        .map(|m| {
            let mut minutes: Vec<f64> = per_module
                .get(m.id.as_str())
                .map(|by_learner| {
                    by_learner
                        .values()
                        .filter(|ms| **ms > 0)
                        .map(|ms| *ms as f64 / 60_000.0)
                        .collect()
                })
                .unwrap_or_default();
            minutes.sort_by(f64::total_cmp);
            ModuleTime {
                module_id: m.id.clone(),
                name: m.name.clone(),
                learners: minutes.len(),
                median_minutes: quantile(&minutes, 0.5),
                p90_minutes: quantile(&minutes, 0.9),
            }
        })
        .collect()
}

/// Quantile `q` of sorted values, linear between closest ranks (the
/// spreadsheet `PERCENTILE.INC` / numpy default); 0 for no values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

fn blocking_points(input: &ReportInput, attempts: &[&AttemptRow]) -> Vec<BlockingPoint> {
    #[derive(Default)]
    struct Tally<'a> {
        attempted: BTreeSet<&'a str>,
        blocked: BTreeSet<&'a str>,
        failed: usize,
        runs: BTreeMap<&'a str, u32>,
    }
    let threshold = input.blocking_failures.max(1);
    let mut tallies: BTreeMap<(BlockingScope, &str), Tally> = BTreeMap::new();
    for a in attempts {
        let keys = std::iter::once((BlockingScope::Skill, a.skill_id.as_str()))
            .chain(a.module_id.as_deref().map(|m| (BlockingScope::Module, m)));
        for key in keys {
            let t = tallies.entry(key).or_default();
            t.attempted.insert(&a.learner_id);
            let run = t.runs.entry(&a.learner_id).or_default();
            if a.correct {
                *run = 0;
            } else {
                *run += 1;
                t.failed += 1;
                if *run >= threshold {
                    t.blocked.insert(&a.learner_id);
                }
            }
        }
    }
    let name = |scope: BlockingScope, id: &str| {
        let items = match scope {
            BlockingScope::Skill => &input.skills,
            BlockingScope::Module => &input.modules,
        };
        items
            .iter()
            .find(|i| i.id == id)
            .map_or_else(|| id.to_string(), |i| i.name.clone())
    };
    let mut points: Vec<BlockingPoint> = tallies
        .into_iter()
        .filter(|(_, t)| !t.blocked.is_empty())
        .map(|((scope, id), t)| BlockingPoint {
            scope,
            id: id.to_string(),
            name: name(scope, id),
            learners_blocked: t.blocked.len(),
            learners_attempted: t.attempted.len(),
            failed_attempts: t.failed,
        })
        .collect();
    points.sort_by(|a, b| {
        b.learners_blocked
            .cmp(&a.learners_blocked)
            .then(b.failed_attempts.cmp(&a.failed_attempts))
            .then(a.scope.cmp(&b.scope))
            .then(a.id.cmp(&b.id))
    });
    points
}

fn competence(input: &ReportInput, attempts: &[&AttemptRow]) -> Vec<SkillCompetence> {
    // (skill, learner) -> (first p_after, latest p_after)
    let mut levels: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
    for a in attempts {
        levels
            .entry((&a.skill_id, &a.learner_id))
            .and_modify(|(_, last)| *last = a.p_after)
            .or_insert((a.p_after, a.p_after));
    }
    input
        .skills
        .iter()
        .map(|s| {
            let rows: Vec<(f64, f64)> = levels
                .range((s.id.as_str(), "")..)
                .take_while(|((skill, _), _)| *skill == s.id)
                .map(|(_, v)| *v)
                .collect();
            let n = rows.len();
            let mean = |f: fn(&(f64, f64)) -> f64| {
                if n == 0 {
                    0.0
                } else {
                    rows.iter().map(f).sum::<f64>() / n as f64
                }
            };
            SkillCompetence {
                skill_id: s.id.clone(),
                name: s.name.clone(),
                learners: n,
                before_mean: mean(|r| r.0),
                after_mean: mean(|r| r.1),
                mastered_now: rows
                    .iter()
                    .filter(|r| r.1 >= input.mastery_threshold)
                    .count(),
            }
        })
        .collect()
}

/// The UTC civil date of a time.
fn date_of(at: Micros) -> Option<jiff::civil::Date> {
    jiff::Timestamp::from_microsecond(at)
        .ok()
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
}

/// The Monday of the ISO week holding `date`.
fn monday_of(date: jiff::civil::Date) -> jiff::civil::Date {
    let back = i64::from(date.weekday().to_monday_zero_offset());
    date.checked_sub(jiff::Span::new().days(back))
        .unwrap_or(date)
}

/// A UTC date as `2024-11-12`.
pub fn iso_date(at: Micros) -> String {
    date_of(at).map_or_else(|| "?".to_string(), |d| d.to_string())
}

/// Longest participation curve drawn, in weeks (a stray timestamp must not
/// produce a thousand-row report).
const MAX_WEEKS: usize = 260;

fn participation(
    attempts: &[&AttemptRow],
    activities: &[&ActivityRow],
    completions: &BTreeMap<String, Micros>,
) -> Vec<WeekActivity> {
    let events: Vec<(Micros, &str)> = attempts
        .iter()
        .map(|a| (a.at, a.learner_id.as_str()))
        .chain(activities.iter().map(|a| (a.at, a.learner_id.as_str())))
        .collect();
    let (Some(first), Some(last)) = (
        events.iter().map(|e| e.0).min().and_then(date_of),
        events.iter().map(|e| e.0).max().and_then(date_of),
    ) else {
        return Vec::new();
    };
    let mut active: BTreeMap<jiff::civil::Date, BTreeSet<&str>> = BTreeMap::new();
    for (at, learner) in &events {
        if let Some(d) = date_of(*at) {
            active.entry(monday_of(d)).or_default().insert(learner);
        }
    }
    let completion_mondays: Vec<jiff::civil::Date> = completions
        .values()
        .filter_map(|at| date_of(*at).map(monday_of))
        .collect();
    let mut weeks = Vec::new();
    let mut monday = monday_of(first);
    while monday <= last && weeks.len() < MAX_WEEKS {
        let iso = monday.iso_week_date();
        weeks.push(WeekActivity {
            week: format!("{:04}-W{:02}", iso.year(), iso.week()),
            starts_on: monday.to_string(),
            active_learners: active.get(&monday).map_or(0, BTreeSet::len),
            completed_cumulative: completion_mondays.iter().filter(|m| **m <= monday).count(),
        });
        match monday.checked_add(jiff::Span::new().days(7)) {
            Ok(next) => monday = next,
            Err(_) => break,
        }
    }
    weeks
}

fn certifications(input: &ReportInput, attempts: &[&AttemptRow]) -> Vec<Certification> {
    if input.skills.is_empty() {
        return Vec::new();
    }
    let program: BTreeSet<&str> = input.skills.iter().map(|s| s.id.as_str()).collect();
    struct Progress<'a> {
        current: BTreeMap<&'a str, f64>,
        counts: BTreeMap<String, u32>,
        certified_at: Option<Micros>,
    }
    let mut by_learner: BTreeMap<&str, Progress> = BTreeMap::new();
    for a in attempts
        .iter()
        .filter(|a| program.contains(a.skill_id.as_str()))
    {
        let p = by_learner.entry(&a.learner_id).or_insert_with(|| Progress {
            current: BTreeMap::new(),
            counts: BTreeMap::new(),
            certified_at: None,
        });
        if p.certified_at.is_some() {
            continue;
        }
        p.current.insert(&a.skill_id, a.p_after);
        *p.counts.entry(a.skill_id.clone()).or_default() += 1;
        if p.current.len() == program.len()
            && p.current.values().all(|v| *v >= input.mastery_threshold)
        {
            p.certified_at = Some(a.at);
        }
    }
    let mut certified: Vec<Certification> = by_learner
        .into_iter()
        .filter_map(|(learner, p)| {
            let at = p.certified_at?;
            Some(Certification {
                learner_id: learner.to_string(),
                certified_at: at,
                certified_on: iso_date(at),
                attempts_per_skill: p.counts,
            })
        })
        .collect();
    certified.sort_by(|a, b| {
        a.certified_at
            .cmp(&b.certified_at)
            .then(a.learner_id.cmp(&b.learner_id))
    });
    certified
}

//! Offline mode: learners from a CSV file, cohorts to a CSV file.
//!
//! Managers often start from a spreadsheet export, so `spoc cohorts form-offline`
//! works without a server. Input header: `learner_id,company_id,language,
//! timezone,` then one column per skill (mastery in `[0, 1]`); language and
//! timezone may be empty. Time zones are IANA names converted to a UTC
//! offset at a reference instant chosen by the caller (offsets move with
//! daylight saving time, so "now" or the program's start date matters).
//! Output: `learner_id,cohort_id`, in input order. Both through
//! [`crate::domain::spreadsheet`] (the `csv` crate).

use std::io::{Read, Write};

use jiff::Timestamp;

use super::offsets::utc_offset_minutes;
use super::{
    Cohort, CohortConstraints, CohortError, CohortLearner, FormationRequest, Objective,
    QualityReport, form_cohorts,
};
use crate::domain::roster::read_roster;
use crate::domain::spreadsheet::{CsvError, Writer};

/// Settings of an offline run, mirroring the CLI flags.
#[derive(Debug, Clone)]
pub struct OfflineOptions {
    /// Hard rules (`--min`, `--max`, `--company-cap`, `--max-tz-spread`).
    pub constraints: CohortConstraints,
    /// `--objective balanced|leveled`.
    pub objective: Objective,
    /// `--seed N`.
    pub seed: u64,
    /// Instant at which time-zone names are turned into UTC offsets.
    pub reference_instant: Timestamp,
}

/// Reads learners from a roster ([`read_roster`]) whose extra columns are
/// skills, each learner's mastery in `[0, 1]`; returns them with the skill
/// names. A malformed row is refused with its 1-based line number.
pub fn parse_learners(
    input: impl Read,
    at: Timestamp,
) -> Result<(Vec<CohortLearner>, Vec<String>), CohortError> {
    let csv = |e: CsvError| CohortError::Csv {
        line: e.line,
        reason: e.reason,
    };
    let roster = read_roster(input).map_err(csv)?;
    let skills = roster.extra_columns;
    let mut learners = Vec::with_capacity(roster.rows.len());
    for row in roster.rows {
        let bad = |reason: String| CohortError::Csv {
            line: row.line,
            reason,
        };
        let learner = row.learner;
        if learner.id.is_empty() {
            return Err(bad("empty learner_id".into()));
        }
        if learner.company_id.is_empty() {
            return Err(bad("empty company_id".into()));
        }
        let utc_offsets = if learner.time_zone.is_empty() {
            Vec::new()
        } else {
            vec![utc_offset_minutes(&learner.time_zone, at).map_err(bad)?]
        };
        let mut mastery = Vec::with_capacity(skills.len());
        for (s, v) in skills.iter().zip(&row.extra) {
            let x: f64 = v
                .parse()
                .map_err(|_| bad(format!("mastery {v:?} for {s:?} is not a number")))?;
            if !(0.0..=1.0).contains(&x) {
                return Err(bad(format!("mastery {x} for {s:?} is outside [0, 1]")));
            }
            mastery.push(x);
        }
        learners.push(CohortLearner {
            id: learner.id,
            company: learner.company_id,
            language: learner.language,
            utc_offsets,
            mastery,
        });
    }
    Ok((learners, skills))
}

/// `learner_id,cohort_id` rows, as every command that writes cohorts out
/// writes them (`form-offline`, `cohorts form --output`, `cohorts export`).
pub fn assignment_csv<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = Writer::new(["learner_id", "cohort_id"]);
    for (learner, cohort) in rows {
        out.row([learner, cohort]);
    }
    out.finish()
}

/// Writes `learner_id,cohort_id` rows, in the order of `learners`; a
/// learner in no cohort (unplaced) gets an empty `cohort_id`.
pub fn write_assignment(
    learners: &[CohortLearner],
    cohorts: &[Cohort],
    mut output: impl Write,
) -> Result<(), CohortError> {
    let mut of = std::collections::BTreeMap::new();
    for c in cohorts {
        for m in &c.members {
            of.insert(m.as_str(), c.id.as_str());
        }
    }
    let text = assignment_csv(
        learners
            .iter()
            .map(|l| (l.id.as_str(), of.get(l.id.as_str()).copied().unwrap_or(""))),
    );
    let io = |e: std::io::Error| CohortError::Io(e.to_string());
    output.write_all(text.as_bytes()).map_err(io)?;
    output.flush().map_err(io)
}

/// The whole offline command: read, form, write; returns the report and
/// the learners left out, for the CLI to print on stderr.
pub fn run_offline(
    input: impl Read,
    output: impl Write,
    options: &OfflineOptions,
) -> Result<(QualityReport, Vec<super::Unplaced>), CohortError> {
    let (learners, skills) = parse_learners(input, options.reference_instant)?;
    let formation = form_cohorts(&FormationRequest {
        learners: &learners,
        constraints: options.constraints,
        objective: options.objective,
        seed: options.seed,
        locked: &[],
    })?;
    write_assignment(&learners, &formation.cohorts, output)?;
    let mut report = formation.report;
    report.name_skills(&skills);
    Ok((report, formation.unplaced))
}

//! Offline mode: learners from a CSV file, cohorts to a CSV file.
//!
//! Managers often start from a spreadsheet export, so `spoc cohorts form-offline`
//! works without a server. Input header: `learner_id,company_id,language,
//! timezone,` then one column per skill (mastery in `[0, 1]`); language and
//! timezone may be empty. Time zones are IANA names converted to a UTC
//! offset at a reference instant chosen by the caller (offsets move with
//! daylight saving time, so "now" or the program's start date matters).
//! Output: `learner_id,cohort_id`, in input order. Parsing is by hand:
//! simple fields, with double-quoted fields (and `""` escapes) accepted.

use std::io::{BufRead, BufReader, Read, Write};

use jiff::Timestamp;

use super::offsets::utc_offset_minutes;
use super::{
    Cohort, CohortConstraints, CohortError, CohortLearner, FormationRequest, Objective,
    QualityReport, form_cohorts,
};

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

/// Splits one CSV line into fields; double quotes protect commas and `""`
/// stands for a quote inside a quoted field.
fn split_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut at_start = true;
    loop {
        if at_start && chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        cur.push('"');
                    }
                    Some('"') => break,
                    Some(c) => cur.push(c),
                    None => return Err("unterminated quoted field".into()),
                }
            }
            match chars.next() {
                None => {
                    fields.push(std::mem::take(&mut cur));
                    return Ok(fields);
                }
                Some(',') => {
                    fields.push(std::mem::take(&mut cur));
                    continue;
                }
                Some(c) => return Err(format!("unexpected {c:?} after a closing quote")),
            }
        }
        at_start = false;
        match chars.next() {
            None => {
                fields.push(cur.trim().to_string());
                return Ok(fields);
            }
            Some(',') => {
                fields.push(std::mem::take(&mut cur).trim().to_string());
                at_start = true;
            }
            Some(c) => cur.push(c),
        }
    }
}

/// Quotes a field for output when it needs it.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

const HEADER: [&str; 4] = ["learner_id", "company_id", "language", "timezone"];

/// Reads learners from CSV; returns them with the skill names of the
/// header. A malformed row is refused with its 1-based line number.
pub fn parse_learners(
    input: impl Read,
    at: Timestamp,
) -> Result<(Vec<CohortLearner>, Vec<String>), CohortError> {
    let reader = BufReader::new(input);
    let mut lines = reader.lines().enumerate();
    let header = loop {
        match lines.next() {
            None => {
                return Err(CohortError::Csv {
                    line: 1,
                    reason: "empty input: a header row is required".into(),
                });
            }
            Some((i, line)) => {
                let line = line.map_err(|e| CohortError::Io(e.to_string()))?;
                let line = line.trim_start_matches('\u{feff}');
                if line.trim().is_empty() {
                    continue;
                }
                let fields = split_record(line).map_err(|reason| CohortError::Csv {
                    line: i + 1,
                    reason,
                })?;
                break (i + 1, fields);
            }
        }
    };
    let (hline, hfields) = header;
    let lower: Vec<String> = hfields.iter().map(|f| f.to_ascii_lowercase()).collect();
    if lower.len() < HEADER.len() || lower[..HEADER.len()] != HEADER {
        return Err(CohortError::Csv {
            line: hline,
            reason: format!(
                "header must start with {}, found {}",
                HEADER.join(","),
                hfields.join(",")
            ),
        });
    }
    let skills: Vec<String> = hfields[HEADER.len()..].to_vec();
    let mut learners = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.map_err(|e| CohortError::Io(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: String| CohortError::Csv {
            line: line_no,
            reason,
        };
        let f = split_record(&line).map_err(bad)?;
        if f.len() != hfields.len() {
            return Err(bad(format!(
                "expected {} fields, found {}",
                hfields.len(),
                f.len()
            )));
        }
        if f[0].is_empty() {
            return Err(bad("empty learner_id".into()));
        }
        if let Some(prev) = seen.insert(f[0].clone(), line_no) {
            return Err(bad(format!(
                "learner_id {:?} already appears on line {prev}",
                f[0]
            )));
        }
        if f[1].is_empty() {
            return Err(bad("empty company_id".into()));
        }
        let utc_offsets = if f[3].is_empty() {
            Vec::new()
        } else {
            vec![utc_offset_minutes(&f[3], at).map_err(bad)?]
        };
        let mut mastery = Vec::with_capacity(skills.len());
        for (s, v) in skills.iter().zip(&f[HEADER.len()..]) {
            let x: f64 = v
                .parse()
                .map_err(|_| bad(format!("mastery {v:?} for {s:?} is not a number")))?;
            if !(0.0..=1.0).contains(&x) {
                return Err(bad(format!("mastery {x} for {s:?} is outside [0, 1]")));
            }
            mastery.push(x);
        }
        learners.push(CohortLearner {
            id: f[0].clone(),
            company: f[1].clone(),
            language: f[2].clone(),
            utc_offsets,
            mastery,
        });
    }
    Ok((learners, skills))
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
    let io = |e: std::io::Error| CohortError::Io(e.to_string());
    writeln!(output, "learner_id,cohort_id").map_err(io)?;
    for l in learners {
        let c = of.get(l.id.as_str()).copied().unwrap_or("");
        writeln!(output, "{},{}", quote(&l.id), quote(c)).map_err(io)?;
    }
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

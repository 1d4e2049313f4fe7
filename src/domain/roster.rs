//! The roster managers keep in spreadsheets: one learner a row under the
//! header `learner_id,company_id,language,timezone`, then any columns.
//! `spoc learners import` ignores them; `spoc cohorts form-offline` reads
//! them as each skill's mastery. One reader serves both.

use std::collections::BTreeMap;
use std::io::Read;

use super::learner::Learner;
use super::spreadsheet::{self, CsvError};

/// The columns a roster starts with.
pub const ROSTER_COLUMNS: [&str; 4] = ["learner_id", "company_id", "language", "timezone"];

/// A roster, read whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Roster {
    /// The header's columns after [`ROSTER_COLUMNS`].
    pub extra_columns: Vec<String>,
    /// The learners, in file order.
    pub rows: Vec<RosterRow>,
}

/// One learner of a [`Roster`], as written (the callers check the fields:
/// the import as the service does, the offline formation its own way).
#[derive(Debug, Clone, PartialEq)]
pub struct RosterRow {
    /// 1-based line in the file, for messages.
    pub line: usize,
    /// The learner (display name empty: a roster has none).
    pub learner: Learner,
    /// The fields under [`Roster::extra_columns`].
    pub extra: Vec<String>,
}

/// Reads a roster. A learner id given twice is refused, naming both lines.
pub fn read_roster(input: impl Read) -> Result<Roster, CsvError> {
    let table = spreadsheet::read(input, &ROSTER_COLUMNS)?;
    let mut seen = BTreeMap::new();
    let mut rows = Vec::with_capacity(table.rows.len());
    for row in table.rows {
        let mut fields = row.fields.into_iter();
        let mut next = || fields.next().unwrap_or_default();
        let learner = Learner {
            id: next(),
            company_id: next(),
            language: next(),
            time_zone: next(),
            display_name: String::new(),
        };
        if !learner.id.is_empty() {
            if let Some(prev) = seen.insert(learner.id.clone(), row.line) {
                return Err(CsvError {
                    line: row.line,
                    reason: format!("learner_id {:?} already appears on line {prev}", learner.id),
                });
            }
        }
        rows.push(RosterRow {
            line: row.line,
            learner,
            extra: fields.collect(),
        });
    }
    Ok(Roster {
        extra_columns: table.header[ROSTER_COLUMNS.len()..].to_vec(),
        rows,
    })
}

/// The roster column of a [`Learner`] field, for messages
/// (`time_zone` is `timezone`).
pub fn column(field: &str) -> String {
    match field {
        "id" => "learner_id",
        "time_zone" => "timezone",
        other => other,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_learners_and_the_extra_columns() {
        let text = "Learner_ID,company_id,language,timezone,sql\n\
                    a,acme,fr,Europe/Paris,0.4\n\
                    \"b,1\",\"glo\"\"bex\",en,,0.9\n";
        let roster = read_roster(text.as_bytes()).unwrap();
        assert_eq!(roster.extra_columns, ["sql"]);
        assert_eq!(roster.rows[1].learner.id, "b,1");
        assert_eq!(roster.rows[1].learner.company_id, "glo\"bex");
        assert_eq!(roster.rows[1].learner.time_zone, "");
        assert_eq!(
            (roster.rows[1].line, roster.rows[1].extra.as_slice()),
            (3, &["0.9".to_string()][..])
        );
        let twice = format!("{text}a,x,fr,UTC,0.1\n");
        let err = read_roster(twice.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 4: learner_id \"a\" already appears on line 2"
        );
        assert_eq!(column("time_zone"), "timezone");
    }
}

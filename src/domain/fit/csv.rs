//! Import of attempts in pyBKT's CSV layout.
//!
//! Required columns: `order_id` (integer), `user_id`, `skill_name`,
//! `correct` (0 or 1). Optional: `template_id` (module / item template, used
//! by multilearn and multigs), `group_id` (company or cohort, used by
//! multiprior), `timestamp` (integer Unix seconds, only summarised). Columns
//! may come in any order; others are ignored. Fields may be double-quoted
//! (RFC 4180 style, `""` for a quote); a field cannot span lines. Rows are
//! ordered by `order_id` within each learner (stable for ties), as pyBKT does.
//!
//! A malformed row is refused with its 1-based line number rather than
//! skipped: silently dropping answers would bias the fit.

use std::io::Read;

use thiserror::Error;

use super::data::{AttemptRecord, Dataset};

/// Why a CSV could not be imported.
#[derive(Debug, Error)]
pub enum CsvError {
    /// The input could not be read (or is not UTF-8).
    #[error("cannot read input: {0}")]
    Io(#[from] std::io::Error),
    /// The header lacks a required column.
    #[error("line 1: missing required column `{0}`")]
    MissingColumn(&'static str),
    /// The header names a column twice.
    #[error("line 1: duplicate column `{0}`")]
    DuplicateColumn(String),
    /// There is no header line at all.
    #[error("empty input: expected a header line")]
    Empty,
    /// A data row is malformed.
    #[error("line {line}: {reason}")]
    Row {
        /// 1-based line number (the header is line 1).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Splits one CSV line into fields, honouring double quotes.
fn split_fields(line: &str, out: &mut Vec<String>) -> Result<(), String> {
    out.clear();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    quoted = false;
                    match chars.peek() {
                        None | Some(',') => {}
                        Some(other) => {
                            return Err(format!("unexpected `{other}` after a closing quote"));
                        }
                    }
                }
            } else {
                field.push(c);
            }
        } else if c == ',' {
            out.push(std::mem::take(&mut field));
            at_start = true;
            continue;
        } else if c == '"' && at_start {
            quoted = true;
        } else {
            field.push(c);
        }
        at_start = false;
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(field);
    Ok(())
}

struct Columns {
    order: usize,
    user: usize,
    skill: usize,
    correct: usize,
    template: Option<usize>,
    group: Option<usize>,
    timestamp: Option<usize>,
    count: usize,
}

fn columns(header: &[String]) -> Result<Columns, CsvError> {
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    for (i, h) in header.iter().enumerate() {
        if header[..i].iter().any(|p| p.trim() == h.trim()) {
            return Err(CsvError::DuplicateColumn(h.trim().to_owned()));
        }
    }
    let need = |name: &'static str| find(name).ok_or(CsvError::MissingColumn(name));
    Ok(Columns {
        order: need("order_id")?,
        user: need("user_id")?,
        skill: need("skill_name")?,
        correct: need("correct")?,
        template: find("template_id"),
        group: find("group_id"),
        timestamp: find("timestamp"),
        count: header.len(),
    })
}

struct Row {
    order: i64,
    user: String,
    skill: String,
    correct: bool,
    template: Option<String>,
    group: Option<String>,
    timestamp: Option<i64>,
}

fn parse_row(f: &mut [String], c: &Columns) -> Result<Row, String> {
    if f.len() != c.count {
        return Err(format!("expected {} fields, found {}", c.count, f.len()));
    }
    let order_text = f[c.order].trim();
    let order = order_text
        .parse::<i64>()
        .map_err(|_| format!("order_id `{order_text}` is not an integer"))?;
    let nonempty = |f: &mut [String], i: usize, name: &str| {
        let v = f[i].trim();
        if v.is_empty() {
            Err(format!("{name} is empty"))
        } else {
            Ok(std::mem::take(&mut f[i]).trim().to_owned())
        }
    };
    let user = nonempty(f, c.user, "user_id")?;
    let skill = nonempty(f, c.skill, "skill_name")?;
    let correct = match f[c.correct].trim() {
        "1" | "1.0" => true,
        "0" | "0.0" => false,
        other => return Err(format!("correct must be 0 or 1, got `{other}`")),
    };
    let optional = |f: &mut [String], i: Option<usize>| {
        i.map(|i| std::mem::take(&mut f[i]).trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let template = optional(f, c.template);
    let group = optional(f, c.group);
    let timestamp = match optional(f, c.timestamp) {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("timestamp `{t}` is not an integer (Unix seconds)"))?,
        ),
    };
    Ok(Row {
        order,
        user,
        skill,
        correct,
        template,
        group,
        timestamp,
    })
}

/// Reads attempts in pyBKT's CSV layout (see the module docs).
///
/// Errors name the first malformed line (1-based) and the reason, e.g.
/// `line 7: correct must be 0 or 1, got `yes``. Blank lines are skipped.
pub fn read_csv(mut input: impl Read) -> Result<Dataset, CsvError> {
    let mut text = String::new();
    input.read_to_string(&mut text)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text.lines().enumerate();
    let mut fields = Vec::new();
    let cols = loop {
        let Some((i, line)) = lines.next() else {
            return Err(CsvError::Empty);
        };
        if line.trim().is_empty() {
            continue;
        }
        split_fields(line, &mut fields).map_err(|reason| CsvError::Row {
            line: i + 1,
            reason,
        })?;
        break columns(&fields)?;
    };
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let row = split_fields(line, &mut fields)
            .and_then(|()| parse_row(&mut fields, &cols))
            .map_err(|reason| CsvError::Row {
                line: i + 1,
                reason,
            })?;
        rows.push(row);
    }
    // Stable: equal order_ids keep file order.
    rows.sort_by_key(|r| r.order);
    let mut ds = Dataset::new();
    for r in &rows {
        ds.push(AttemptRecord {
            learner: &r.user,
            skill: &r.skill,
            correct: r.correct,
            template: r.template.as_deref(),
            group: r.group.as_deref(),
            timestamp: r.timestamp,
        });
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_line(input: &str) -> (usize, String) {
        match read_csv(input.as_bytes()) {
            Err(CsvError::Row { line, reason }) => (line, reason),
            other => panic!("expected a row error, got {other:?}"),
        }
    }

    #[test]
    fn reads_columns_in_any_order_and_sorts_by_order_id() {
        let csv = "extra,correct,skill_name,user_id,order_id,template_id\n\
                   x,1,\"Add, subtract\",u1,20,t1\n\
                   y,0,\"Add, subtract\",u1,10,t2\n\
                   z,1,mult,u2,5,\n";
        let ds = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.num_learners(), 2);
        let a = ds.attempts();
        // Sorted by order_id: u2@5, u1@10, u1@20.
        assert_eq!(ds.learner_name(a[0].learner), "u2");
        assert_eq!(a[0].template, None);
        assert_eq!(ds.skill_name(a[1].skill), "Add, subtract");
        assert!(!a[1].correct && a[2].correct);
        assert_eq!(ds.template_name(a[1].template.unwrap()), "t2");
    }

    #[test]
    fn refuses_malformed_rows_with_line_numbers() {
        let head = "order_id,user_id,skill_name,correct\n";
        let (l, r) = err_line(&format!("{head}1,u,s,1\n2,u,s,yes\n"));
        assert_eq!(l, 3);
        assert!(r.contains("correct"), "{r}");
        let (l, r) = err_line(&format!("{head}1,u,s,1\n\n2,u,s\n"));
        assert_eq!(l, 4);
        assert!(r.contains("expected 4 fields"), "{r}");
        let (l, r) = err_line(&format!("{head}x,u,s,1\n"));
        assert_eq!(l, 2);
        assert!(r.contains("order_id"), "{r}");
        let (l, r) = err_line(&format!("{head}1,u,,1\n"));
        assert_eq!((l, r.as_str()), (2, "skill_name is empty"));
        let (l, r) = err_line(&format!("{head}1,\"u,s,1\n"));
        assert_eq!((l, r.as_str()), (2, "unterminated quoted field"));
    }

    #[test]
    fn refuses_bad_headers() {
        assert!(matches!(
            read_csv("order_id,user_id,correct\n".as_bytes()),
            Err(CsvError::MissingColumn("skill_name"))
        ));
        assert!(matches!(read_csv("".as_bytes()), Err(CsvError::Empty)));
        assert!(matches!(
            read_csv("order_id,user_id,skill_name,correct,user_id\n".as_bytes()),
            Err(CsvError::DuplicateColumn(_))
        ));
    }

    #[test]
    fn accepts_bom_crlf_and_float_correct() {
        let csv = "\u{feff}order_id,user_id,skill_name,correct,timestamp\r\n1,u,s,1.0,100\r\n2,u,s,0,50\r\n";
        let ds = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(ds.len(), 2);
        let s = ds.summary();
        assert_eq!((s.first_timestamp, s.last_timestamp), (Some(50), Some(100)));
    }
}

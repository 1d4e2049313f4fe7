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

use std::io::{BufRead, BufReader, Read};

use thiserror::Error;

use super::data::{Attempt, Dataset, Interner};

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

/// Reads attempts in pyBKT's CSV layout (see the module docs).
///
/// Streams the input a line at a time (one reused buffer, no copy of the
/// file in memory), splits fields as bytes and interns names as it goes:
/// the rows are laid out once, as the [`Dataset`]'s interned columns. A
/// file already in `order_id` order (the usual case) is not sorted again.
///
/// Errors name the first malformed line (1-based) and the reason, e.g.
/// `line 7: correct must be 0 or 1, got `yes``. Blank lines are skipped.
pub fn read_csv(input: impl Read) -> Result<Dataset, CsvError> {
    read_csv_sized(input, None)
}

/// [`read_csv`] of an input of `bytes` bytes (when known): the rows are
/// allocated once, for the number of lines the first data line implies
/// (plus a tenth), which spares the copies and page faults of a growing
/// vector on a file of millions of rows.
pub fn read_csv_sized(input: impl Read, bytes: Option<u64>) -> Result<Dataset, CsvError> {
    let mut lines = Lines {
        input: BufReader::with_capacity(1 << 16, input),
        line: Vec::new(),
        number: 0,
    };
    let mut record = Record::default();
    let cols = loop {
        if !lines.next()? {
            return Err(CsvError::Empty);
        }
        let line = lines
            .line
            .strip_prefix(b"\xef\xbb\xbf")
            .unwrap_or(&lines.line);
        if line.trim_ascii().is_empty() {
            continue;
        }
        let number = lines.number;
        let row = |reason| CsvError::Row {
            line: number,
            reason,
        };
        record.split(line).map_err(row)?;
        let header = (0..record.len())
            .map(|i| text(record.field(i), "header").map(str::to_owned))
            .collect::<Result<Vec<String>, String>>()
            .map_err(row)?;
        break columns(&header)?;
    };
    let mut ds = Dataset::new();
    let mut rows = Rows {
        attempts: Vec::new(),
        orders: Vec::new(),
        sorted: true,
    };
    let mut last = LastNames::default();
    while lines.next()? {
        if lines.line.trim_ascii().is_empty() {
            continue;
        }
        if let (Some(bytes), true) = (bytes, rows.attempts.is_empty()) {
            let rows_expected = bytes / (lines.line.len() as u64 + 1);
            let rows_expected = (rows_expected + rows_expected / 10).min(1 << 32) as usize;
            rows.attempts.reserve(rows_expected);
            rows.orders.reserve(rows_expected);
        }
        record
            .split(&lines.line)
            .and_then(|()| rows.push(&record, &cols, &mut ds, &mut last))
            .map_err(|reason| CsvError::Row {
                line: lines.number,
                reason,
            })?;
    }
    ds.set_attempts(rows.in_order());
    Ok(ds)
}

/// The input a line at a time, without its line break.
struct Lines<R> {
    input: BufReader<R>,
    line: Vec<u8>,
    /// 1-based number of the line in `line`.
    number: usize,
}

impl<R: Read> Lines<R> {
    /// Reads the next line into `self.line`; `false` at the end.
    fn next(&mut self) -> Result<bool, CsvError> {
        self.line.clear();
        if self.input.read_until(b'\n', &mut self.line)? == 0 {
            return Ok(false);
        }
        self.number += 1;
        if self.line.last() == Some(&b'\n') {
            self.line.pop();
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(true)
    }
}

/// The fields of one line: their bytes end to end, and where each ends.
#[derive(Default)]
struct Record {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Record {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn field(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Splits `line` at commas, honouring double quotes (`""` inside
    /// quotes is a quote; a quote elsewhere than at a field's start is
    /// an ordinary character). Runs between commas and quotes are copied
    /// whole, found with `memchr`.
    fn split(&mut self, line: &[u8]) -> Result<(), String> {
        self.bytes.clear();
        self.ends.clear();
        let mut i = 0;
        loop {
            if line.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    let Some(k) = memchr::memchr(b'"', &line[i..]) else {
                        return Err("unterminated quoted field".into());
                    };
                    self.bytes.extend_from_slice(&line[i..i + k]);
                    i += k + 1;
                    if line.get(i) != Some(&b'"') {
                        break;
                    }
                    self.bytes.push(b'"');
                    i += 1;
                }
                self.ends.push(self.bytes.len());
                match line.get(i) {
                    None => return Ok(()),
                    Some(b',') => i += 1,
                    Some(&other) => {
                        return Err(format!(
                            "unexpected `{}` after a closing quote",
                            char::from(other)
                        ));
                    }
                }
            } else {
                match memchr::memchr(b',', &line[i..]) {
                    None => {
                        self.bytes.extend_from_slice(&line[i..]);
                        self.ends.push(self.bytes.len());
                        return Ok(());
                    }
                    Some(k) => {
                        self.bytes.extend_from_slice(&line[i..i + k]);
                        self.ends.push(self.bytes.len());
                        i += k + 1;
                    }
                }
            }
        }
    }
}

/// A field as text, trimmed; `what` names it in the error.
fn text<'a>(field: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(field.trim_ascii()).map_err(|_| format!("{what} is not valid UTF-8"))
}

/// The id of the previous row's name in each text column: rows of one
/// learner and skill come together, so most rows skip the hash lookup.
#[derive(Default)]
struct LastNames {
    user: Option<(Vec<u8>, u32)>,
    skill: Option<(Vec<u8>, u32)>,
}

/// `name`'s id in `interner`, from `last` when it is the previous row's.
fn intern_cached(interner: &mut Interner, last: &mut Option<(Vec<u8>, u32)>, name: &str) -> u32 {
    if let Some((bytes, id)) = last
        && bytes.as_slice() == name.as_bytes()
    {
        return *id;
    }
    let id = interner.intern(name);
    match last {
        Some((bytes, old)) => {
            bytes.clear();
            bytes.extend_from_slice(name.as_bytes());
            *old = id;
        }
        None => *last = Some((name.as_bytes().to_vec(), id)),
    }
    id
}

/// The parsed rows with their `order_id`, in file order until [`Rows::in_order`].
struct Rows {
    attempts: Vec<Attempt>,
    orders: Vec<i64>,
    /// Whether every `order_id` so far is at least the one before.
    sorted: bool,
}

impl Rows {
    fn push(
        &mut self,
        f: &Record,
        c: &Columns,
        ds: &mut Dataset,
        last: &mut LastNames,
    ) -> Result<(), String> {
        if f.len() != c.count {
            return Err(format!("expected {} fields, found {}", c.count, f.len()));
        }
        let order_text = text(f.field(c.order), "order_id")?;
        let order = order_text
            .parse::<i64>()
            .map_err(|_| format!("order_id `{order_text}` is not an integer"))?;
        let nonempty = |i: usize, name: &str| -> Result<&str, String> {
            let v = text(f.field(i), name)?;
            if v.is_empty() {
                Err(format!("{name} is empty"))
            } else {
                Ok(v)
            }
        };
        let user = nonempty(c.user, "user_id")?;
        let skill = nonempty(c.skill, "skill_name")?;
        let correct = match text(f.field(c.correct), "correct")? {
            "1" | "1.0" => true,
            "0" | "0.0" => false,
            other => return Err(format!("correct must be 0 or 1, got `{other}`")),
        };
        let optional = |i: Option<usize>, name: &str| -> Result<Option<&str>, String> {
            match i {
                None => Ok(None),
                Some(i) => text(f.field(i), name).map(|v| Some(v).filter(|v| !v.is_empty())),
            }
        };
        let template = optional(c.template, "template_id")?;
        let group = optional(c.group, "group_id")?;
        let timestamp = match optional(c.timestamp, "timestamp")? {
            None => None,
            Some(t) => Some(
                t.parse::<i64>()
                    .map_err(|_| format!("timestamp `{t}` is not an integer (Unix seconds)"))?,
            ),
        };
        let attempt = Attempt::new(
            intern_cached(&mut ds.learners, &mut last.user, user),
            intern_cached(&mut ds.skills, &mut last.skill, skill),
            template.map(|t| ds.templates.intern(t)),
            group.map(|g| ds.groups.intern(g)),
            correct,
        );
        if let Some(t) = timestamp {
            ds.saw_timestamp(t);
        }
        if self.orders.last().is_some_and(|&prev| prev > order) {
            self.sorted = false;
        }
        self.orders.push(order);
        self.attempts.push(attempt);
        Ok(())
    }

    /// The attempts sorted by `order_id`, equal ids in file order (stable,
    /// as pyBKT sorts).
    fn in_order(self) -> Vec<Attempt> {
        if self.sorted {
            return self.attempts;
        }
        let mut index: Vec<u32> = (0..self.attempts.len() as u32).collect();
        index.sort_by_key(|&i| self.orders[i as usize]);
        index
            .into_iter()
            .map(|i| self.attempts[i as usize])
            .collect()
    }
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
        assert_eq!(a[0].template(), None);
        assert_eq!(ds.skill_name(a[1].skill), "Add, subtract");
        assert!(!a[1].correct && a[2].correct);
        assert_eq!(ds.template_name(a[1].template().unwrap()), "t2");
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

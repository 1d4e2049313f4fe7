//! CSV as spreadsheets read and write it, through the `csv` crate: the one
//! reader and the one writer of the files people exchange with the service
//! (rosters, catalogs, cohort assignments, reports). pyBKT's layout
//! (`fit/csv.rs`) and the store's files are formats of their own.
//!
//! The reader checks the header by its first columns (any case; later
//! columns are the caller's), trims fields, skips blank lines and names the
//! line of every refusal. The writer quotes per RFC 4180 and neutralizes
//! spreadsheet formulas: ids and names come from users, and a cell that a
//! spreadsheet would evaluate (`=HYPERLINK(...)`) is a known attack on
//! whoever opens the export.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

/// A refusal of a CSV input, at its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    /// The line of the offending record (1 for the header).
    pub line: usize,
    /// What is wrong, in words.
    pub reason: String,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for CsvError {}

/// A CSV input, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The header's fields, as written.
    pub header: Vec<String>,
    /// Every non-blank record after the header, as many fields each.
    pub rows: Vec<Row>,
}

/// One record of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Its 1-based line, for messages.
    pub line: usize,
    /// Its fields, trimmed.
    pub fields: Vec<String>,
}

impl Row {
    /// Field `i`, or empty.
    pub fn get(&self, i: usize) -> &str {
        self.fields.get(i).map_or("", String::as_str)
    }
}

/// Reads a CSV whose header starts with `columns` (compared in any case).
/// A UTF-8 byte-order mark and blank lines are skipped; every row must
/// hold as many fields as the header.
pub fn read(mut input: impl Read, columns: &[&str]) -> Result<Table, CsvError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(|e| CsvError {
        line: 1,
        reason: format!("cannot read the input: {e}"),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    // A line of spaces is blank too.
    let mut records = reader.records().filter(|r| match r {
        Ok(r) => r.iter().any(|f| !f.is_empty()),
        Err(_) => true,
    });
    // The crate's position is where it started reading the record, blank
    // lines before it included: those are counted in.
    let line_of = |r: &csv::StringRecord| {
        r.position().map_or(0, |p| {
            let blank = bytes[p.byte() as usize..]
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .filter(|b| **b == b'\n')
                .count();
            p.line() as usize + blank
        })
    };
    let failed = |e: csv::Error| CsvError {
        line: e.position().map_or(0, |p| p.line() as usize),
        reason: match e.kind() {
            csv::ErrorKind::Io(e) => format!("cannot read the input: {e}"),
            _ => e.to_string(),
        },
    };
    let header = match records.next() {
        None => {
            return Err(CsvError {
                line: 1,
                reason: "empty input: a header row is required".into(),
            });
        }
        Some(record) => record.map_err(failed)?,
    };
    let header_line = line_of(&header);
    let header: Vec<String> = header.iter().map(str::to_string).collect();
    let starts = header.len() >= columns.len()
        && header
            .iter()
            .zip(columns)
            .all(|(found, wanted)| found.eq_ignore_ascii_case(wanted));
    if !starts {
        return Err(CsvError {
            line: header_line,
            reason: format!(
                "header must start with {}, found {}",
                columns.join(","),
                header.join(",")
            ),
        });
    }
    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(failed)?;
        let line = line_of(&record);
        if record.len() != header.len() {
            return Err(CsvError {
                line,
                reason: format!("expected {} fields, found {}", header.len(), record.len()),
            });
        }
        rows.push(Row {
            line,
            fields: record.iter().map(str::to_string).collect(),
        });
    }
    Ok(Table { header, rows })
}

/// A CSV output in memory, every field guarded ([`guard`]).
pub struct Writer(csv::Writer<Vec<u8>>);

impl Writer {
    /// An output that starts with `header`.
    pub fn new<S: AsRef<str>>(header: impl IntoIterator<Item = S>) -> Self {
        let mut writer = Self(csv::WriterBuilder::new().from_writer(Vec::new()));
        writer.row(header);
        writer
    }

    /// Appends one record.
    pub fn row<S: AsRef<str>>(&mut self, fields: impl IntoIterator<Item = S>) {
        let guarded = fields.into_iter().map(|f| guard(f.as_ref()).into_owned());
        // Into a Vec: no I/O error can happen.
        let _ = self.0.write_record(guarded);
    }

    /// The text written.
    pub fn finish(self) -> String {
        // Into a Vec: flushing cannot fail, and every field was a `str`.
        let bytes = self.0.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// `field`, with a `'` before it when a spreadsheet would take it for a
/// formula (OWASP's list: `=`, `+`, `-`, `@`, tab, carriage return at the
/// start), except a number such as `-0.5`.
pub fn guard(field: &str) -> Cow<'_, str> {
    let formula = field.starts_with(['=', '+', '@', '\t', '\r'])
        || (field.starts_with('-') && field.parse::<f64>().is_err());
    if formula {
        Cow::Owned(format!("'{field}"))
    } else {
        Cow::Borrowed(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_quoted_fields_and_names_lines() {
        let text = "\u{feff}ID,Name,more\n\n a ,\"b, \"\"c\"\"\",1\n   \nd,e,2\n";
        let table = read(text.as_bytes(), &["id", "name"]).unwrap();
        assert_eq!(table.header, ["ID", "Name", "more"]);
        assert_eq!(table.rows.len(), 2);
        assert_eq!(table.rows[0].fields, ["a", "b, \"c\"", "1"]);
        assert_eq!((table.rows[0].line, table.rows[1].line), (3, 5));
        assert_eq!(table.rows[1].get(9), "");
        let crlf = read("id\r\n\r\n\r\na\r\n".as_bytes(), &["id"]).unwrap();
        assert_eq!(crlf.rows[0].line, 4);
        let err = read("id,name\na,b\nc\n".as_bytes(), &["id"]).unwrap_err();
        assert_eq!(err.to_string(), "line 3: expected 2 fields, found 1");
        let err = read("name,id\n".as_bytes(), &["id", "name"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: header must start with id,name, found name,id"
        );
        let err = read("\n\n".as_bytes(), &["id"]).unwrap_err();
        assert!(err.reason.contains("header row is required"), "{err}");
    }

    #[test]
    fn writes_quoted_and_guarded_fields() {
        let mut out = Writer::new(["id", "name"]);
        out.row(["a,1", "say \"hi\""]);
        out.row(["=HYPERLINK(\"x\")", "-0.5"]);
        out.row(["@SUM(A1)", "-x"]);
        out.row(["+1", "\tt"]);
        assert_eq!(
            out.finish(),
            "id,name\n\"a,1\",\"say \"\"hi\"\"\"\n\"'=HYPERLINK(\"\"x\"\")\",-0.5\n'@SUM(A1),'-x\n'+1,'\tt\n"
        );
    }
}

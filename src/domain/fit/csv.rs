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

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;

use parking_lot::Mutex;

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
/// Streams the input in chunks of whole lines (4 MiB, their buffers
/// reused; no copy of the file in memory), parsed by one worker per core
/// (fields split as bytes, names interned per chunk) and merged in input
/// order, each chunk's names interned once into the [`Dataset`]'s: the
/// rows are laid out once, as its interned columns. A file already in
/// `order_id` order (the usual case) is not sorted again.
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
    // The data lines: read in chunks of whole lines by this thread,
    // parsed by workers (names interned per chunk), merged here in order.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let first_line = lines.number + 1;
    let mut input = lines.input;
    let mut ds = Dataset::new();
    let mut rows = Rows::default();
    let cols = &cols;
    let (job_tx, job_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(workers);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Parsed)>();
    // Chunk buffers come back to the reader once parsed: fresh ones would
    // cost a page fault per 4 KiB of input.
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (jobs, done, free) = (&job_rx, done_tx.clone(), free_tx.clone());
            scope.spawn(move || {
                loop {
                    let job = jobs.lock().recv();
                    let Ok((seq, chunk)) = job else { break };
                    let parsed = parse_chunk(&chunk, cols);
                    let _ = free.send(chunk);
                    if done.send((seq, parsed)).is_err() {
                        break;
                    }
                }
            });
        }
        drop((done_tx, free_tx));
        let mut merger = Merger {
            next: 0,
            line: first_line,
            pending: BTreeMap::new(),
            bytes,
        };
        let mut carry = Vec::new();
        let mut sent = 0;
        let outcome = loop {
            let buffer = free_rx.try_recv().unwrap_or_default();
            match read_chunk(&mut input, &mut carry, buffer) {
                Err(e) => break Err(CsvError::Io(e)),
                Ok(None) => break Ok(()),
                Ok(Some(chunk)) => {
                    if job_tx.send((sent, chunk)).is_err() {
                        break Ok(());
                    }
                    sent += 1;
                }
            }
            if let Err(e) = merger.take(done_rx.try_iter(), &mut ds, &mut rows) {
                break Err(e);
            }
        };
        drop(job_tx);
        outcome?;
        merger.take(done_rx.iter(), &mut ds, &mut rows)
    })?;
    ds.set_attempts(rows.in_order());
    Ok(ds)
}

/// Bytes of input handed to a worker at a time (whole lines).
const CHUNK_BYTES: u64 = 4 << 20;

/// The next chunk of whole lines of `input`, in `chunk` (the part of a
/// line after the last line break waits in `carry` for the next one);
/// `None` at the end.
fn read_chunk(
    input: &mut impl Read,
    carry: &mut Vec<u8>,
    mut chunk: Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    chunk.clear();
    chunk.append(carry);
    loop {
        let before = chunk.len();
        input.take(CHUNK_BYTES).read_to_end(&mut chunk)?;
        let end = chunk.len() == before;
        if end {
            return Ok((!chunk.is_empty()).then_some(chunk));
        }
        // A line longer than a chunk: read on until it ends.
        if let Some(last) = memchr::memrchr(b'\n', &chunk[before..]) {
            carry.extend_from_slice(&chunk[before + last + 1..]);
            chunk.truncate(before + last + 1);
            return Ok(Some(chunk));
        }
    }
}

/// What a worker makes of one chunk: its rows (names interned locally),
/// how many lines it held, and the first malformed one.
struct Parsed {
    rows: Rows,
    names: Names,
    span: Option<(i64, i64)>,
    lines: usize,
    /// Bytes of the chunk.
    bytes: usize,
    /// (0-based line in the chunk, reason).
    error: Option<(usize, String)>,
}

/// The names met in one chunk, numbered in order of appearance.
#[derive(Default)]
struct Names {
    learners: Interner,
    skills: Interner,
    templates: Interner,
    groups: Interner,
}

/// Parses the lines of `chunk` (blank ones skipped), up to the first
/// malformed one.
fn parse_chunk(chunk: &[u8], cols: &Columns) -> Parsed {
    // Room for the rows of lines of 64 bytes or more, so that the vectors
    // do not grow (and copy) a dozen times per chunk.
    let room = chunk.len() / 64;
    let mut parsed = Parsed {
        rows: Rows {
            attempts: Vec::with_capacity(room),
            orders: Vec::with_capacity(room),
            sorted: true,
        },
        names: Names::default(),
        span: None,
        lines: 0,
        bytes: chunk.len(),
        error: None,
    };
    let mut record = Record::default();
    let mut last = LastNames::default();
    let mut start = 0;
    while start < chunk.len() {
        let end = memchr::memchr(b'\n', &chunk[start..]).map_or(chunk.len(), |k| start + k);
        let mut line = &chunk[start..end];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        parsed.lines += 1;
        start = end + 1;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let row = record.split(line).and_then(|()| {
            parsed.rows.push(
                &record,
                cols,
                &mut parsed.names,
                &mut last,
                &mut parsed.span,
            )
        });
        if let Err(reason) = row {
            parsed.error = Some((parsed.lines - 1, reason));
            break;
        }
    }
    parsed
}

/// Merges parsed chunks into the dataset in input order.
struct Merger {
    /// The chunk to merge next.
    next: usize,
    /// The line number of its first line.
    line: usize,
    /// Chunks parsed ahead of it.
    pending: BTreeMap<usize, Parsed>,
    /// The input's size, if known (sizes the rows once).
    bytes: Option<u64>,
}

impl Merger {
    fn take(
        &mut self,
        parsed: impl IntoIterator<Item = (usize, Parsed)>,
        ds: &mut Dataset,
        rows: &mut Rows,
    ) -> Result<(), CsvError> {
        for (seq, p) in parsed {
            self.pending.insert(seq, p);
            while let Some(p) = self.pending.remove(&self.next) {
                self.merge(p, ds, rows)?;
                self.next += 1;
            }
        }
        Ok(())
    }

    fn merge(&mut self, p: Parsed, ds: &mut Dataset, rows: &mut Rows) -> Result<(), CsvError> {
        if let Some((at, reason)) = p.error {
            return Err(CsvError::Row {
                line: self.line + at,
                reason,
            });
        }
        if let (Some(bytes), 0) = (self.bytes, self.next) {
            // Rows expected from the first chunk's rows per byte.
            let rows_in = p.rows.attempts.len() as u64;
            let estimate = bytes.saturating_mul(rows_in) / (p.bytes as u64).max(1);
            let estimate = (estimate + estimate / 10).min(1 << 32) as usize;
            rows.attempts
                .reserve(estimate.saturating_sub(rows.attempts.len()));
            rows.orders
                .reserve(estimate.saturating_sub(rows.orders.len()));
        }
        self.line += p.lines;
        let global = |local: &Interner, global: &mut Interner| -> Vec<u32> {
            local.names().iter().map(|n| global.intern(n)).collect()
        };
        let learners = global(&p.names.learners, &mut ds.learners);
        let skills = global(&p.names.skills, &mut ds.skills);
        let templates = global(&p.names.templates, &mut ds.templates);
        let groups = global(&p.names.groups, &mut ds.groups);
        if let Some((lo, hi)) = p.span {
            ds.saw_timestamp(lo);
            ds.saw_timestamp(hi);
        }
        if !p.rows.sorted
            || rows
                .orders
                .last()
                .zip(p.rows.orders.first())
                .is_some_and(|(prev, first)| prev > first)
        {
            rows.sorted = false;
        }
        rows.orders.extend_from_slice(&p.rows.orders);
        rows.attempts.extend(p.rows.attempts.iter().map(|a| {
            Attempt::new(
                learners[a.learner as usize],
                skills[a.skill as usize],
                a.template().map(|t| templates[t as usize]),
                a.group().map(|g| groups[g as usize]),
                a.correct,
            )
        }));
        Ok(())
    }
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

impl Default for Rows {
    fn default() -> Self {
        Self {
            attempts: Vec::new(),
            orders: Vec::new(),
            sorted: true,
        }
    }
}

impl Rows {
    fn push(
        &mut self,
        f: &Record,
        c: &Columns,
        names: &mut Names,
        last: &mut LastNames,
        span: &mut Option<(i64, i64)>,
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
            intern_cached(&mut names.learners, &mut last.user, user),
            intern_cached(&mut names.skills, &mut last.skill, skill),
            template.map(|t| names.templates.intern(t)),
            group.map(|g| names.groups.intern(g)),
            correct,
        );
        if let Some(t) = timestamp {
            *span = Some(span.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
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

    /// A file of several chunks: names interned alike across chunks, the
    /// order checked across their boundaries, a malformed line in a late
    /// chunk named by its line number in the file.
    #[test]
    fn a_file_of_many_chunks_reads_as_one() {
        let mut csv = String::from("order_id,user_id,skill_name,correct\n");
        let rows = 400_000usize; // about 13 MB: three chunks at least
        for i in 0..rows {
            let order = if i == 200_000 { 5 } else { i + 10 };
            csv.push_str(&format!(
                "{order},learner-{},skill {},{}\n",
                i % 997,
                i % 13,
                i % 2
            ));
        }
        assert!(csv.len() as u64 > 2 * CHUNK_BYTES);
        let ds = read_csv_sized(csv.as_bytes(), Some(csv.len() as u64)).unwrap();
        assert_eq!(ds.len(), rows);
        // Room for the rows the size implies, a tenth more, not more.
        assert!(
            ds.capacity() >= rows && ds.capacity() <= rows * 12 / 10,
            "{}",
            ds.capacity()
        );
        assert_eq!(ds.num_learners(), 997);
        assert_eq!(ds.num_skills(), 13);
        // Row 200,000 has the smallest order_id: sorted first.
        let first = ds.attempts()[0];
        assert_eq!(
            ds.learner_name(first.learner),
            format!("learner-{}", 200_000 % 997)
        );
        assert_eq!(
            ds.skill_name(first.skill),
            format!("skill {}", 200_000 % 13)
        );
        let second = ds.attempts()[1];
        assert_eq!(ds.learner_name(second.learner), "learner-0");
        // A bad line deep in the file (line 1 is the header).
        let bad = csv.replacen("230010,", "230010x,", 1);
        assert_eq!(
            err_line(&bad),
            (230_002, "order_id `230010x` is not an integer".to_string())
        );
    }

    #[test]
    fn a_line_longer_than_a_chunk_is_read_whole() {
        let long = "u".repeat(CHUNK_BYTES as usize + 10);
        let csv = format!("order_id,user_id,skill_name,correct\n1,{long},s,1\n2,v,s,0");
        let ds = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.learner_name(ds.attempts()[0].learner), long);
        assert_eq!(ds.learner_name(ds.attempts()[1].learner), "v");
    }
}

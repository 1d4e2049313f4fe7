//! How client commands speak: aligned tables for people, JSON for scripts,
//! progress bars on stderr for long operations.
//!
//! Results go to stdout and progress to stderr, so `spoc ... --format json
//! | jq` works while a person still sees a bar; a bar is hidden when stderr
//! is not a terminal (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use clap::ValueEnum;
use comfy_table::{CellAlignment, ContentArrangement, LineStyle, Table, TableStyle};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a client command prints on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned tables for people.
    #[default]
    Table,
    /// JSON for scripts (one document, or one object per line for streams).
    Json,
}

/// The style of every table: a rule above, under the header and below; no
/// vertical lines, no rules between rows (easy to read, easy to grep).
pub const STYLE: TableStyle = TableStyle::new()
    .top_border(LineStyle::none().fill('─').junction('─'))
    .header_separator(LineStyle::none().fill('─').junction('─'))
    .bottom_border(LineStyle::none().fill('─').junction('─'));

/// A table with a header row, in the style every command uses. On a
/// terminal, long cells (alert reasons) wrap to its width; in a pipe or a
/// file, rows stay on one line each (easy to grep).
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_style(STYLE).set_header(header);
    match console::Term::stdout().size_checked() {
        Some((_, width)) if std::io::stdout().is_terminal() => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(width);
        }
        _ => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table
}

/// Right-aligns the given columns (numbers).
pub fn align_right(table: &mut Table, columns: &[usize]) {
    for &c in columns {
        if let Some(column) = table.column_mut(c) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Writes `text` on stdout as it is and flushes (a watcher's line shows at
/// once). A closed pipe (`spoc ... | head`) ends the command quietly, as
/// Unix tools do, instead of a panic.
pub fn write_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// [`write_out`] followed by a newline.
pub fn emit(text: impl std::fmt::Display) {
    write_out(&format!("{text}\n"));
}

/// Prints a JSON value on stdout, pretty for a document.
pub fn print_json(value: &serde_json::Value) {
    emit(serde_json::to_string_pretty(value).expect("JSON values always serialize"));
}

/// Prints what a command did: `json` for scripts, or `line` for people.
pub fn outcome(format: OutputFormat, json: serde_json::Value, line: impl std::fmt::Display) {
    match format {
        OutputFormat::Json => print_json(&json),
        OutputFormat::Table => emit(line),
    }
}

/// Whether progress should be drawn (stderr is a terminal).
fn draws() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar over `len` steps on stderr; hidden when stderr is not a terminal.
pub fn bar(len: u64, message: &str) -> ProgressBar {
    if !draws() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>24} [{bar:32.cyan/blue}] {pos}/{len} ({per_sec}, {eta} left)",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A spinner with elapsed time on stderr, for waits of unknown length;
/// hidden when stderr is not a terminal.
pub fn spinner(message: &str) -> ProgressBar {
    if !draws() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template"),
    );
    spinner.set_message(message.to_string());
    spinner.enable_steady_tick(Duration::from_millis(120));
    spinner
}

/// A protobuf timestamp as RFC 3339 (UTC, seconds), empty when unset.
pub fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| jiff::Timestamp::new(t.seconds, 0).ok())
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A short `YYYY-MM-DD HH:MM` UTC for tables.
pub fn short_time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.and_then(|t| jiff::Timestamp::new(t.seconds, 0).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// The enum value name without its type prefix, lowercased
/// (`ALERT_KIND_BLOCKING_POINT` → `blocking_point`).
pub fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix)
        .unwrap_or(full)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_enum_names_read_well() {
        let ts = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
        };
        assert_eq!(time(Some(&ts)), "2023-11-14T22:13:20Z");
        assert_eq!(short_time(Some(&ts)), "2023-11-14 22:13");
        assert_eq!(time(None), "");
        assert_eq!(
            enum_name("ALERT_KIND_BLOCKING_POINT", "ALERT_KIND_"),
            "blocking_point"
        );
    }

    #[test]
    fn tables_align_columns() {
        let mut t = table(["name", "n"]);
        t.add_row(vec!["a", "1"]);
        t.add_row(vec!["bbbb", "22"]);
        align_right(&mut t, &[1]);
        let text = t.to_string();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains('a') || l.contains('b'))
            .collect();
        assert!(lines.len() >= 3, "{text}");
        assert!(text.contains(" 1") && text.contains("22"), "{text}");
    }
}

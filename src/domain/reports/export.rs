//! Report exports: one tidy CSV for spreadsheets and one self-contained HTML
//! page with charts for people.
//!
//! The charts are drawn with plotters' SVG backend into strings and inlined,
//! so the page needs no script, stylesheet, image or font file: it can be
//! mailed or archived as is. Text is emitted as SVG `<text>` elements sized
//! by plotters' built-in estimate, so no font is read at build or run time.

use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::kpi::{BlockingScope, CohortReport, ScopeKind, WeekActivity, iso_date};
use crate::domain::spreadsheet::Writer;

/// The report as one CSV table in long format: `section,id,name,metric,value`.
///
/// One row per figure keeps a single file that any spreadsheet pivots,
/// instead of one file per table. Fields are quoted per RFC 4180 when
/// needed and guarded against formulas ([`crate::domain::spreadsheet`]); numbers use `.`
/// and up to 4 decimals.
pub fn to_csv(report: &CohortReport) -> String {
    let mut out = Writer::new(["section", "id", "name", "metric", "value"]);
    let s = &report.scope;
    figures(
        &mut out,
        ("summary", &s.id, &s.name),
        [
            ("learners", report.learners.to_string()),
            ("completed", report.completed.to_string()),
            ("completion_rate", num(report.completion_rate)),
            ("certified", report.certified.len().to_string()),
            ("alerts_raised", report.alerts.raised.to_string()),
            ("alerts_resolved", report.alerts.resolved.to_string()),
        ],
    );
    for m in &report.module_time {
        figures(
            &mut out,
            ("module_time", &m.module_id, &m.name),
            [
                ("learners", m.learners.to_string()),
                ("median_minutes", num(m.median_minutes)),
                ("p90_minutes", num(m.p90_minutes)),
            ],
        );
    }
    for b in &report.blocking_points {
        let section = match b.scope {
            BlockingScope::Skill => "blocking_skill",
            BlockingScope::Module => "blocking_module",
        };
        figures(
            &mut out,
            (section, &b.id, &b.name),
            [
                ("learners_blocked", b.learners_blocked.to_string()),
                ("learners_attempted", b.learners_attempted.to_string()),
                ("failed_attempts", b.failed_attempts.to_string()),
            ],
        );
    }
    for c in &report.competence {
        figures(
            &mut out,
            ("competence", &c.skill_id, &c.name),
            [
                ("learners", c.learners.to_string()),
                ("before_mean", num(c.before_mean)),
                ("after_mean", num(c.after_mean)),
                ("mastered_now", c.mastered_now.to_string()),
            ],
        );
    }
    for w in &report.participation {
        figures(
            &mut out,
            ("participation", &w.week, &w.starts_on),
            [
                ("active_learners", w.active_learners.to_string()),
                ("completed_cumulative", w.completed_cumulative.to_string()),
            ],
        );
    }
    for (kind, count) in &report.alerts_by_kind {
        figures(
            &mut out,
            ("alerts", kind.as_str(), ""),
            [
                ("raised", count.raised.to_string()),
                ("resolved", count.resolved.to_string()),
            ],
        );
    }
    for c in &report.certified {
        let learner = ("certified", c.learner_id.as_str(), "");
        figures(
            &mut out,
            learner,
            [("certified_on", c.certified_on.clone())],
        );
        for (skill, n) in &c.attempts_per_skill {
            figures(
                &mut out,
                ("certified", &c.learner_id, skill),
                [("attempts", n.to_string())],
            );
        }
    }
    out.finish()
}

/// One row per `(metric, value)` of the thing `(section, id, name)`.
fn figures<const N: usize>(
    out: &mut Writer,
    (section, id, name): (&str, &str, &str),
    values: [(&str, String); N],
) {
    for (metric, value) in values {
        out.row([section, id, name, metric, &value]);
    }
}

/// A number with at most 4 decimals and no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Escapes text for HTML element content and attribute values.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Cuts long names so that axis labels stay readable.
fn short(name: &str, max: usize) -> String {
    if name.chars().count() <= max {
        name.to_string()
    } else {
        let cut: String = name.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 340;
const BEFORE: RGBColor = RGBColor(158, 185, 212);
const AFTER: RGBColor = RGBColor(31, 95, 160);
const ACTIVE: RGBColor = RGBColor(230, 140, 40);
const BLOCKED: RGBColor = RGBColor(200, 60, 50);

/// The report as a self-contained HTML page (inline CSS and SVG charts).
pub fn to_html(report: &CohortReport) -> String {
    let mut page = String::new();
    html_head(&mut page, report);
    competence_section(&mut page, report);
    page.push_str("<h2>Completion and participation over time</h2>\n");
    page.push_str(&figure(timeline_chart(report), "Share of learners who completed the program (cumulative) and who were active, per ISO week"));
    blocking_section(&mut page, report);
    time_and_alert_sections(&mut page, report);
    certified_section(&mut page, report);
    page.push_str("</body>\n</html>\n");
    page
}

/// The page's head, title and key figures.
fn html_head(page: &mut String, report: &CohortReport) {
    let scope = match report.scope.kind {
        ScopeKind::Cohort => "Cohort",
        ScopeKind::Program => "Program",
    };
    let title = format!("{scope} report: {}", report.scope.name);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>\n\
         body{{font-family:sans-serif;max-width:820px;margin:2em auto;color:#222}}\n\
         table{{border-collapse:collapse;margin:1em 0}}\n\
         th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\n\
         th:first-child,td:first-child{{text-align:left}}\n\
         .kpi{{display:inline-block;margin:0 2em 1em 0}}\n\
         .kpi b{{display:block;font-size:1.6em}}\n\
         figure{{margin:1em 0}}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p>{} <code>{}</code>, generated {}; mastery threshold {}.</p>\n",
        html(&title),
        html(&title),
        scope,
        html(&report.scope.id),
        iso_date(report.generated_at),
        num(report.mastery_threshold)
    );
    let _ = writeln!(
        page,
        "<div class=\"kpi\">learners<b>{}</b></div>\
         <div class=\"kpi\">completed<b>{} ({:.0}%)</b></div>\
         <div class=\"kpi\">certified<b>{}</b></div>\
         <div class=\"kpi\">alerts raised / resolved<b>{} / {}</b></div>",
        report.learners,
        report.completed,
        report.completion_rate * 100.0,
        report.certified.len(),
        report.alerts.raised,
        report.alerts.resolved
    );
}

/// Competence before and after: the chart and its table.
fn competence_section(page: &mut String, report: &CohortReport) {
    page.push_str("<h2>Competence before and after</h2>\n");
    page.push_str(&figure(
        mastery_chart(report),
        "P(mastered) per skill: mean after the first answer vs. now",
    ));
    table(
        page,
        &["skill", "learners", "before", "now", "mastered now"],
        report.competence.iter().map(|c| {
            vec![
                html(&c.name),
                c.learners.to_string(),
                format!("{:.2}", c.before_mean),
                format!("{:.2}", c.after_mean),
                c.mastered_now.to_string(),
            ]
        }),
    );
}

/// Blocking points: the chart and its table, or a sentence when none.
fn blocking_section(page: &mut String, report: &CohortReport) {
    page.push_str("<h2>Blocking points</h2>\n");
    if report.blocking_points.is_empty() {
        page.push_str("<p>No learner failed repeatedly on a skill or module.</p>\n");
        return;
    }
    page.push_str(&figure(
        blocking_chart(report),
        "Learners with a run of repeated failures, worst first",
    ));
    table(
        page,
        &["skill / module", "blocked", "attempted", "failed answers"],
        report.blocking_points.iter().map(|b| {
            let kind = match b.scope {
                BlockingScope::Skill => "skill",
                BlockingScope::Module => "module",
            };
            vec![
                format!("{} ({kind})", html(&b.name)),
                b.learners_blocked.to_string(),
                b.learners_attempted.to_string(),
                b.failed_attempts.to_string(),
            ]
        }),
    );
}

/// The time-per-module and alert tables.
fn time_and_alert_sections(page: &mut String, report: &CohortReport) {
    page.push_str("<h2>Time per module</h2>\n");
    table(
        page,
        &["module", "learners", "median (min)", "p90 (min)"],
        report.module_time.iter().map(|m| {
            vec![
                html(&m.name),
                m.learners.to_string(),
                format!("{:.1}", m.median_minutes),
                format!("{:.1}", m.p90_minutes),
            ]
        }),
    );
    page.push_str("<h2>Alerts</h2>\n");
    table(
        page,
        &["kind", "raised", "resolved"],
        report.alerts_by_kind.iter().map(|(kind, count)| {
            vec![
                kind.as_str().to_string(),
                count.raised.to_string(),
                count.resolved.to_string(),
            ]
        }),
    );
}

/// The certified learners' table, or a sentence when none.
fn certified_section(page: &mut String, report: &CohortReport) {
    page.push_str("<h2>Certified learners</h2>\n");
    if report.certified.is_empty() {
        page.push_str("<p>No learner has mastered every skill yet.</p>\n");
        return;
    }
    table(
        page,
        &["learner", "certified on", "answers per skill"],
        report.certified.iter().map(|c| {
            let evidence: Vec<String> = c
                .attempts_per_skill
                .iter()
                .map(|(skill, n)| format!("{skill}: {n}"))
                .collect();
            vec![
                html(&c.learner_id),
                c.certified_on.to_string(),
                html(&evidence.join(", ")),
            ]
        }),
    );
}

/// An HTML table: a header row of `header`, then one row of cells (already
/// escaped) per item of `rows`.
fn table(page: &mut String, header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    page.push_str("<table><tr>");
    for h in header {
        let _ = write!(page, "<th>{h}</th>");
    }
    page.push_str("</tr>\n");
    for row in rows {
        page.push_str("<tr>");
        for cell in row {
            let _ = write!(page, "<td>{cell}</td>");
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</table>\n");
}

/// Wraps an SVG (or the reason it could not be drawn) in a `<figure>`.
fn figure(svg: Result<String, String>, caption: &str) -> String {
    match svg {
        Ok(svg) => format!(
            "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n",
            html(caption)
        ),
        Err(e) => format!("<p>chart unavailable: {}</p>\n", html(&e)),
    }
}

/// Draws into an SVG string with plotters; drawing errors become a message.
fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<String, String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn mastery_chart(report: &CohortReport) -> Result<String, String> {
    let skills = &report.competence;
    if skills.is_empty() {
        return Err("the program has no skills".into());
    }
    let n = skills.len() as f64;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..n, 0.0..1.0)
            .map_err(|e| e.to_string())?;
        // Skill names are drawn under each pair of bars below, not by the
        // mesh, whose key points need not fall on the bars.
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("P(mastered)")
            .draw()
            .map_err(|e| e.to_string())?;
        let bar = |x0: f64, x1: f64, v: f64, color: RGBColor| {
            Rectangle::new([(x0, 0.0), (x1, v)], color.filled())
        };
        chart
            .draw_series(
                skills
                    .iter()
                    .enumerate()
                    .map(|(i, s)| bar(i as f64 + 0.12, i as f64 + 0.5, s.before_mean, BEFORE)),
            )
            .map_err(|e| e.to_string())?
            .label("after the first answer")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], BEFORE.filled()));
        chart
            .draw_series(
                skills
                    .iter()
                    .enumerate()
                    .map(|(i, s)| bar(i as f64 + 0.5, i as f64 + 0.88, s.after_mean, AFTER)),
            )
            .map_err(|e| e.to_string())?
            .label("now")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], AFTER.filled()));
        let max_chars = (90.0 / n).clamp(6.0, 24.0) as usize;
        for (i, s) in skills.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                short(&s.name, max_chars),
                (x, y + 8),
                label_style(HPos::Center),
            ))
            .map_err(|e| e.to_string())?;
        }
        legend(&mut chart)
    })
}

/// A line of the timeline chart: its label, colour and count per week.
type TimelineLine = (&'static str, RGBColor, fn(&WeekActivity) -> usize);

/// The series' legend, in a box at the chart's upper left.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Axis-label text, anchored horizontally as asked and below its point.
fn label_style(h: HPos) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(h, VPos::Top))
}

fn timeline_chart(report: &CohortReport) -> Result<String, String> {
    let weeks = &report.participation;
    if weeks.is_empty() || report.learners == 0 {
        return Err("no activity yet".into());
    }
    let learners = report.learners as f64;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .margin_right(40)
            .x_label_area_size(40)
            .y_label_area_size(45)
            .build_cartesian_2d(0..weeks.len().max(2) - 1, 0.0..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .y_desc("share of learners")
            .x_labels(weeks.len().min(12))
            .x_label_formatter(&|i| weeks.get(*i).map_or_else(String::new, |w| w.week.clone()))
            .draw()
            .map_err(|e| e.to_string())?;
        let lines: [TimelineLine; 2] = [
            ("completed the program", AFTER, |w| w.completed_cumulative),
            ("active that week", ACTIVE, |w| w.active_learners),
        ];
        for (label, color, count) in lines {
            chart
                .draw_series(LineSeries::new(
                    weeks
                        .iter()
                        .enumerate()
                        .map(|(i, w)| (i, count(w) as f64 / learners)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        legend(&mut chart)
    })
}

/// Bars drawn in the blocking-point chart at most.
const MAX_BLOCKING_BARS: usize = 10;

fn blocking_chart(report: &CohortReport) -> Result<String, String> {
    let points: Vec<_> = report
        .blocking_points
        .iter()
        .take(MAX_BLOCKING_BARS)
        .collect();
    let max = points
        .iter()
        .map(|p| p.learners_blocked)
        .max()
        .unwrap_or(1)
        .max(1);
    let n = points.len().max(1) as f64;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(190)
            .build_cartesian_2d(0.0..max as f64 * 1.05, 0.0..n)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("learners blocked")
            .x_labels((max + 1).min(10))
            .x_label_formatter(&|v| {
                // Whole learners only.
                if (v - v.round()).abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        // Worst at the top.
        let row = |i: usize| n - 1.0 - i as f64;
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                Rectangle::new(
                    [
                        (0.0, row(i) + 0.2),
                        (p.learners_blocked as f64, row(i) + 0.8),
                    ],
                    BLOCKED.filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        for (i, p) in points.iter().enumerate() {
            let kind = match p.scope {
                BlockingScope::Skill => "skill",
                BlockingScope::Module => "module",
            };
            let (x, y) = chart.backend_coord(&(0.0, row(i) + 0.5));
            root.draw(&Text::new(
                format!("{} ({kind})", short(&p.name, 22)),
                (x - 8, y - 6),
                label_style(HPos::Right),
            ))
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

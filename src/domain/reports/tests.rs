//! Report figures against values computed by hand on a small fixture cohort.

use super::*;
use crate::domain::completion::CompletionPlan;
use crate::domain::risk::AlertKind;

const DAY: i64 = 86_400_000_000;
const MINUTE: u64 = 60_000;
/// 2024-11-04T00:00:00Z, a Monday (ISO week 2024-W45).
const NOV_4: i64 = 1_730_678_400_000_000;

fn on(day_of_november: i64) -> i64 {
    NOV_4 + (day_of_november - 4) * DAY + 10 * 3_600_000_000
}

fn item(id: &str, name: &str) -> NamedItem {
    NamedItem {
        id: id.into(),
        name: name.into(),
    }
}

fn attempt(
    learner: &str,
    skill: &str,
    module: Option<&str>,
    correct: bool,
    day: i64,
    p: f64,
) -> AttemptRow {
    AttemptRow {
        learner_id: learner.into(),
        skill_id: skill.into(),
        module_id: module.map(Into::into),
        correct,
        at: on(day),
        time_spent_ms: MINUTE,
        p_after: p,
    }
}

fn activity(learner: &str, module: &str, completed: bool, day: i64, minutes: u64) -> ActivityRow {
    ActivityRow {
        learner_id: learner.into(),
        module_id: module.into(),
        completed,
        at: on(day),
        time_spent_ms: minutes * MINUTE,
    }
}

fn alert(learner: &str, kind: AlertKind, resolved: bool) -> AlertRow {
    AlertRow {
        learner_id: learner.into(),
        kind,
        raised_at: on(10),
        resolved_at: resolved.then(|| on(15)),
    }
}

/// Four learners: `a` completes and masters everything, `b` completes after
/// being blocked on SQL joins, `c` starts and fails twice, `d` never shows
/// up; `x` belongs to another cohort and must be ignored everywhere.
pub(super) fn fixture() -> ReportInput {
    ReportInput {
        scope: ReportScope {
            kind: ScopeKind::Cohort,
            id: "c1".into(),
            name: "Data, autumn".into(),
        },
        generated_at: on(22),
        skills: vec![item("s1", "SQL joins"), item("s2", "Window functions")],
        modules: vec![item("m1", "Joins 101"), item("m2", "Windows, in practice")],
        completion: CompletionPlan::new(["s1", "s2"], [("m1", ["s1"]), ("m2", ["s2"])]),
        mastery_threshold: 0.8,
        blocking_failures: 3,
        learners: ["a", "b", "c", "d"]
            .iter()
            .map(|id| LearnerRow {
                learner_id: id.to_string(),
                enrolled_at: NOV_4,
            })
            .collect(),
        attempts: vec![
            // Deliberately out of order: compute sorts by time.
            attempt("a", "s2", None, true, 12, 0.9),
            attempt("a", "s1", None, false, 4, 0.3),
            attempt("a", "s1", None, true, 5, 0.85),
            attempt("a", "s2", None, true, 11, 0.6),
            attempt("b", "s1", Some("m1"), false, 6, 0.2),
            attempt("b", "s1", Some("m1"), false, 6, 0.15),
            attempt("b", "s1", Some("m1"), false, 7, 0.1),
            attempt("b", "s1", None, true, 13, 0.5),
            attempt("b", "s2", None, true, 20, 0.7),
            attempt("c", "s1", None, false, 6, 0.25),
            attempt("c", "s1", None, false, 6, 0.2),
            attempt("x", "s1", Some("m1"), false, 25, 0.1),
            attempt("x", "s1", Some("m1"), false, 25, 0.1),
            attempt("x", "s1", Some("m1"), false, 25, 0.1),
        ],
        activities: vec![
            activity("a", "m1", false, 4, 10),
            activity("a", "m1", true, 5, 20),
            activity("a", "m2", true, 12, 30),
            activity("b", "m1", true, 6, 40),
            activity("b", "m2", true, 20, 50),
            activity("c", "m1", false, 6, 60),
            activity("x", "m1", true, 25, 5),
            activity("x", "m2", true, 25, 5),
        ],
        alerts: vec![
            alert("a", AlertKind::Inactivity, true),
            alert("b", AlertKind::BlockingPoint, false),
            alert("b", AlertKind::PredictedDropout, true),
            alert("x", AlertKind::Inactivity, false),
        ],
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn completion_rate_counts_learners_who_completed_the_program() {
    let r = compute(&fixture());
    assert_eq!(r.learners, 4);
    assert_eq!(r.completed, 2);
    assert_eq!(r.completion_rate, 0.5);
}

#[test]
fn one_module_per_skill_completes_when_modules_are_alternatives() {
    // s1 gets a French module too: a and b, who did m1 and m2, still
    // completed; c completes with the French one and m2 on day 21.
    let mut input = fixture();
    input.modules.push(item("m1-fr", "Jointures 101"));
    input.completion = CompletionPlan::new(
        ["s1", "s2"],
        [("m1", ["s1"]), ("m1-fr", ["s1"]), ("m2", ["s2"])],
    );
    input.activities.push(activity("c", "m1-fr", true, 14, 15));
    input.activities.push(activity("c", "m2", true, 21, 15));
    let r = compute(&input);
    assert_eq!((r.learners, r.completed), (4, 3));
    let last = r.participation.last().expect("weeks");
    assert_eq!(last.completed_cumulative, 3, "c completed in the last week");
}

#[test]
fn module_time_median_and_p90() {
    let r = compute(&fixture());
    // m1: a 10+20, b 40, c 60 -> [30, 40, 60]; p90 at rank 1.8 -> 40 + 0.8*20.
    let m1 = &r.module_time[0];
    assert_eq!((m1.module_id.as_str(), m1.learners), ("m1", 3));
    assert!(close(m1.median_minutes, 40.0));
    assert!(close(m1.p90_minutes, 56.0));
    // m2: a 30, b 50; median 40, p90 at rank 0.9 -> 30 + 0.9*20.
    let m2 = &r.module_time[1];
    assert!(close(m2.median_minutes, 40.0));
    assert!(close(m2.p90_minutes, 48.0));
}

#[test]
fn quantile_interpolates_between_ranks() {
    assert_eq!(quantile(&[], 0.5), 0.0);
    assert_eq!(quantile(&[7.0], 0.9), 7.0);
    assert!(close(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5));
    assert!(close(
        quantile(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 0.9),
        9.1
    ));
}

#[test]
fn blocking_points_are_ranked() {
    let r = compute(&fixture());
    assert_eq!(r.blocking_points.len(), 2, "{:?}", r.blocking_points);
    let s1 = &r.blocking_points[0];
    assert_eq!(
        (s1.scope, s1.id.as_str(), s1.name.as_str()),
        (BlockingScope::Skill, "s1", "SQL joins")
    );
    // Only b had 3 failures in a row; a, b, c answered; 1 + 3 + 2 failures.
    assert_eq!(
        (
            s1.learners_blocked,
            s1.learners_attempted,
            s1.failed_attempts
        ),
        (1, 3, 6)
    );
    let m1 = &r.blocking_points[1];
    assert_eq!((m1.scope, m1.id.as_str()), (BlockingScope::Module, "m1"));
    assert_eq!(
        (
            m1.learners_blocked,
            m1.learners_attempted,
            m1.failed_attempts
        ),
        (1, 1, 3)
    );
}

#[test]
fn competence_before_and_after() {
    let r = compute(&fixture());
    let s1 = &r.competence[0];
    assert_eq!(s1.learners, 3);
    assert!(close(s1.before_mean, (0.3 + 0.2 + 0.25) / 3.0));
    assert!(close(s1.after_mean, (0.85 + 0.5 + 0.2) / 3.0));
    assert_eq!(s1.mastered_now, 1);
    let s2 = &r.competence[1];
    assert_eq!(s2.learners, 2);
    assert!(close(s2.before_mean, 0.65));
    assert!(close(s2.after_mean, 0.8));
    assert_eq!(s2.mastered_now, 1);
}

#[test]
fn participation_per_iso_week() {
    let r = compute(&fixture());
    let weeks: Vec<(&str, &str, usize, usize)> = r
        .participation
        .iter()
        .map(|w| {
            (
                w.week.as_str(),
                w.starts_on.as_str(),
                w.active_learners,
                w.completed_cumulative,
            )
        })
        .collect();
    assert_eq!(
        weeks,
        vec![
            ("2024-W45", "2024-11-04", 3, 0),
            ("2024-W46", "2024-11-11", 2, 1),
            ("2024-W47", "2024-11-18", 1, 2),
        ]
    );
}

#[test]
fn alerts_raised_and_resolved() {
    let r = compute(&fixture());
    assert_eq!((r.alerts.raised, r.alerts.resolved), (3, 2));
    let inactivity = r.alerts_by_kind[&AlertKind::Inactivity];
    assert_eq!((inactivity.raised, inactivity.resolved), (1, 1));
    let blocking = r.alerts_by_kind[&AlertKind::BlockingPoint];
    assert_eq!((blocking.raised, blocking.resolved), (1, 0));
    assert_eq!(
        r.alerts_by_kind[&AlertKind::MasteryDrop],
        AlertCount::default()
    );
}

#[test]
fn certified_when_every_skill_reaches_the_threshold() {
    let r = compute(&fixture());
    assert_eq!(r.certified.len(), 1);
    let a = &r.certified[0];
    assert_eq!(a.learner_id, "a");
    assert_eq!(a.certified_at, on(12));
    assert_eq!(a.certified_on, "2024-11-12");
    assert_eq!(a.attempts_per_skill["s1"], 2);
    assert_eq!(a.attempts_per_skill["s2"], 2);
    // A lower threshold certifies b too, once s2 is answered (0.7).
    let mut input = fixture();
    input.mastery_threshold = 0.5;
    let r = compute(&input);
    let b = r.certified.iter().find(|c| c.learner_id == "b").unwrap();
    assert_eq!(b.certified_at, on(20));
    assert_eq!(b.attempts_per_skill["s1"], 4);
}

#[test]
fn empty_cohort_gives_an_empty_report() {
    let mut input = fixture();
    input.learners.clear();
    let r = compute(&input);
    assert_eq!((r.learners, r.completed, r.completion_rate), (0, 0, 0.0));
    assert!(r.participation.is_empty() && r.certified.is_empty() && r.blocking_points.is_empty());
    // Exports still work.
    assert!(to_html(&r).contains("</html>"));
    assert!(to_csv(&r).starts_with("section,id,name,metric,value\n"));
}

#[test]
fn csv_holds_every_figure_and_quotes_names() {
    let csv = to_csv(&compute(&fixture()));
    for line in [
        "summary,c1,\"Data, autumn\",completion_rate,0.5",
        "module_time,m1,Joins 101,p90_minutes,56",
        "module_time,m2,\"Windows, in practice\",median_minutes,40",
        "blocking_skill,s1,SQL joins,failed_attempts,6",
        "competence,s1,SQL joins,before_mean,0.25",
        "competence,s2,Window functions,after_mean,0.8",
        "participation,2024-W46,2024-11-11,completed_cumulative,1",
        "alerts,inactivity,,resolved,1",
        "certified,a,,certified_on,2024-11-12",
        "certified,a,s2,attempts,2",
    ] {
        assert!(csv.lines().any(|l| l == line), "missing {line:?} in\n{csv}");
    }
}

#[test]
fn csv_neutralizes_formulas() {
    let mut input = fixture();
    input.skills[0].name = "=HYPERLINK(\"x\")".into();
    let csv = to_csv(&compute(&input));
    assert!(
        csv.contains("competence,s1,\"'=HYPERLINK(\"\"x\"\")\",learners,3"),
        "{csv}"
    );
}

#[test]
fn html_is_self_contained_with_three_charts() {
    let mut input = fixture();
    input.skills[1].name = "Window <functions> & co".into();
    let page = to_html(&compute(&input));
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_eq!(page.matches("<svg").count(), 3, "{page}");
    for forbidden in ["<script", "src=", "href=", "<link", "url("] {
        assert!(!page.contains(forbidden), "page contains {forbidden}");
    }
    // Names are escaped in tables and in SVG text.
    assert!(page.contains("Window &lt;functions&gt; &amp; co"));
    assert!(!page.contains("<functions>"));
    assert!(page.contains("SQL joins"));
    assert!(page.contains("2024-W46"));
    if let Ok(dir) = std::env::var("SPOC_REPORT_HTML") {
        std::fs::write(dir, &page).unwrap();
    }
}

//! The demo's output for people: one section per thing the engine does,
//! then how to keep playing with the running service.

use std::fmt::Write;

use super::{DemoSummary, RecommendedModule};
use crate::cli::{alerts, cohorts, output};

/// A section title, underlined.
fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}\n{}", "=".repeat(title.chars().count()));
}

/// Every section: the world loaded, cohorts, recommendations, alerts,
/// reports.
pub fn render(s: &DemoSummary) -> String {
    let mut out = String::new();
    loaded(&mut out, s);
    section(
        &mut out,
        "2. Cohorts: one language each, at most 30 % from one company, balanced in mastery",
    );
    for p in &s.programs {
        let _ = writeln!(out, "{}", cohorts::formation_text(&p.response));
    }
    recommendations(&mut out, s);
    open_alerts(&mut out, s);
    section(&mut out, "5. Reports");
    for r in &s.reports {
        let _ = writeln!(
            out,
            "{}: {} learners, {} completed the program, {} certified -> {}",
            r.program_id, r.learners, r.completed, r.certified, r.path
        );
    }
    out
}

/// What was loaded, and the programs.
fn loaded(out: &mut String, s: &DemoSummary) {
    let l = &s.loaded;
    section(out, "1. A demo world, loaded through the gRPC API");
    let _ = writeln!(
        out,
        "catalog: {} skills with prerequisites and {} bank questions, {} modules in {} formats and {} languages ({})",
        l.skills,
        l.items,
        l.modules,
        l.formats,
        l.languages.len(),
        l.languages.join(", ")
    );
    let _ = writeln!(
        out,
        "{} learners from {} companies in {} programs; {} quiz answers and {} module events over {} weeks",
        l.learners, l.companies, l.programs, l.attempts, l.module_events, l.weeks
    );
    let _ = writeln!(out, "loaded in {:.1} s", l.load_seconds);
    let mut programs = output::table(["program", "name", "learners", "runs"]);
    for p in &s.programs {
        programs.add_row(vec![
            p.id.clone(),
            p.name.clone(),
            p.learners.to_string(),
            if p.end.is_empty() {
                format!("since {}", p.start)
            } else {
                format!("{} to {}", p.start, p.end)
            },
        ]);
    }
    output::align_right(&mut programs, &[2]);
    let _ = writeln!(out, "{programs}");
}

/// The three learners' next modules, with the reasons.
fn recommendations(out: &mut String, s: &DemoSummary) {
    section(out, "3. Next modules for three learners, with the reasons");
    for r in &s.recommendations {
        let _ = writeln!(
            out,
            "{} {} ({}, {}, {}) in {}: {}; {} of {} program skills mastered",
            r.learner_id,
            r.display_name,
            r.company,
            r.language,
            r.time_zone,
            r.program_id,
            r.profile,
            r.mastered,
            r.skills
        );
        for a in &r.alerts {
            let _ = writeln!(out, "  open alert: {a}");
        }
        for (i, m) in r.modules.iter().enumerate() {
            out.push_str(&recommendation_lines(i + 1, m));
        }
        out.push('\n');
    }
}

/// One recommendation, numbered `rank`: a module with its id, title,
/// format and minutes, or the bank's questions; the reason below.
fn recommendation_lines(rank: usize, m: &RecommendedModule) -> String {
    if m.kind == "diagnostic" {
        format!(
            "  {rank}. {} ({} min)\n     {}\n",
            m.title, m.minutes, m.reason
        )
    } else {
        format!(
            "  {rank}. {} {} ({}, {} min)\n     {}\n",
            m.module_id, m.title, m.format, m.minutes, m.reason
        )
    }
}

/// The open alerts: counts by kind and severity, the most urgent.
fn open_alerts(out: &mut String, s: &DemoSummary) {
    section(out, "4. Open at-risk alerts");
    let kinds: Vec<String> = s
        .alerts
        .by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let severities: Vec<String> = s
        .alerts
        .by_severity
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let _ = writeln!(
        out,
        "{} open alerts on {} learners: {} ({})",
        s.alerts.open,
        s.alerts.learners,
        kinds.join(", "),
        severities.join(", ")
    );
    let _ = writeln!(
        out,
        "(at most {} open per 25 learners of a cohort, most urgent first; {} more wait in the \
         digest: spoc.v1.AlertService/GetAlertDigest)",
        s.alerts.budget_per_25, s.alerts.digest
    );
    if !s.alerts.shown_alerts.is_empty() {
        let _ = writeln!(
            out,
            "the {} most urgent:\n{}",
            s.alerts.shown_alerts.len(),
            alerts::alerts_table(&s.alerts.shown_alerts)
        );
    }
}

/// The closing words: the service is up, here is how to talk to it.
pub fn serving(s: &DemoSummary) -> String {
    let addr = &s.address;
    let learner = s
        .recommendations
        .first()
        .map(|r| (r.learner_id.as_str(), r.program_id.as_str()))
        .unwrap_or(("l0000", "excel-essentials"));
    let header = match &s.key_file {
        Some(_) => "-H \"authorization: Bearer $KEY\" ",
        None => "",
    };
    let mut out = String::new();
    section(&mut out, "The service keeps running");
    let _ = writeln!(out, "serving on {addr} (data in {})", s.data_dir);
    if let Some(console) = &s.console {
        let _ = writeln!(
            out,
            "web console: {}\n  sign in as a trainer of {} with {}\n  or as a manager with {}",
            console.url, console.trainer_cohort, console.trainer_key, console.manager_key
        );
    }
    match &s.key_file {
        Some(path) => {
            let _ = writeln!(
                out,
                "every call needs the admin key in {path}:\n  export KEY=\"$(cat {path})\" SPOC_API_KEY=\"$(cat {path})\""
            );
        }
        None => {
            let _ = writeln!(
                out,
                "no admin key in {}: this build serves without access control",
                std::path::Path::new(&s.data_dir)
                    .join(crate::engine::access::ADMIN_KEY_FILE)
                    .display()
            );
        }
    }
    let _ = writeln!(
        out,
        "try:\n  grpcurl -plaintext {header}{addr} list\n  grpcurl -plaintext {header}-d '{{\"learner_id\":\"{}\",\"program_id\":\"{}\",\"count\":3}}' \\\n    {addr} spoc.v1.RemediationService/RecommendNext\n  spoc alerts list --addr {addr} --state open\n  spoc alerts watch --addr {addr} --program data-analysis\n  spoc cohorts export --addr {addr} --program excel-essentials --output cohorts.csv\n  spoc report --addr {addr} --program data-analysis --output report.html\n(from a clone without `spoc` on the PATH: cargo run --release -- alerts list ...)\nCtrl-C to stop.",
        learner.0, learner.1
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recommended(
        kind: &'static str,
        module_id: &str,
        items: &[&str],
        title: &str,
    ) -> RecommendedModule {
        RecommendedModule {
            kind,
            module_id: module_id.into(),
            item_ids: items.iter().map(|i| i.to_string()).collect(),
            title: title.into(),
            format: "quiz".into(),
            minutes: 2,
            skill_id: "pivot-tables".into(),
            p_mastered: 0.97,
            reason: "checking skill 'Pivot tables'".into(),
        }
    }

    /// A module shows its id, title and format; questions show what they
    /// are on and their ids, never an empty module id.
    #[test]
    fn modules_and_questions_print_each_their_own_way() {
        let module = recommendation_lines(
            1,
            &recommended("module", "m007", &[], "Video: Pivot tables"),
        );
        assert_eq!(
            module,
            "  1. m007 Video: Pivot tables (quiz, 2 min)\n     checking skill 'Pivot tables'\n"
        );
        let questions = recommendation_lines(
            2,
            &recommended(
                "diagnostic",
                "",
                &["pivot-tables-q1", "pivot-tables-q5"],
                "questions on Pivot tables: pivot-tables-q1, pivot-tables-q5",
            ),
        );
        assert_eq!(
            questions,
            "  2. questions on Pivot tables: pivot-tables-q1, pivot-tables-q5 (2 min)\n     checking skill 'Pivot tables'\n"
        );
    }
}

//! Cohort and program reports: KPIs over plain rows, and their exports.
//!
//! [`compute`] is pure (rows in, [`CohortReport`] out); [`to_csv`] and
//! [`to_html`] render a report for spreadsheets and for people. The report
//! service gathers rows from the store and calls these; the same code runs
//! offline on exported data.

pub mod export;
pub mod kpi;

pub use export::{to_csv, to_html};
pub use kpi::{
    ActivityRow, AlertCount, AlertRow, AttemptRow, BlockingPoint, BlockingScope, Certification,
    CohortReport, LearnerRow, ModuleTime, NamedItem, ReportInput, ReportScope, ScopeKind,
    SkillCompetence, WeekActivity, compute, quantile,
};

#[cfg(test)]
mod tests;

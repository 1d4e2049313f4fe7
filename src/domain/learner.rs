//! Learners, programs (SPOCs) and enrolments: who follows what.

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, UTC: the one time unit of the domain.
pub type Micros = i64;

/// One employee of one company, following one or more programs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learner {
    /// Caller-chosen stable id (usually the LMS user id).
    pub id: String,
    /// The employer; cohorts cap the share of one company.
    pub company_id: String,
    /// Preferred BCP 47 language tag; may be empty when unknown.
    pub language: String,
    /// IANA time zone name; may be empty when unknown.
    pub time_zone: String,
    /// Optional display name for trainers' tools.
    pub display_name: String,
}

/// Hard rules for the cohorts of a program, with the defaults the product
/// promises (sizes 15..50, a company at most 30% of a cohort, one language,
/// three hours of time-zone spread).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CohortRules {
    /// Smallest cohort, in learners.
    pub min_size: u32,
    /// Largest cohort, in learners.
    pub max_size: u32,
    /// Largest share of one company in a cohort, in (0, 1].
    pub max_company_share: f64,
    /// Whether every cohort speaks one language.
    pub single_language: bool,
    /// Largest spread of UTC offsets within a cohort, in hours.
    pub max_timezone_spread_hours: f64,
    /// Number of cohorts wanted; `None` lets the engine choose.
    pub target_cohort_count: Option<u32>,
}

impl Default for CohortRules {
    fn default() -> Self {
        Self {
            min_size: 15,
            max_size: 50,
            max_company_share: 0.3,
            single_language: true,
            max_timezone_spread_hours: 3.0,
            target_cohort_count: None,
        }
    }
}

/// One SPOC: the skills it teaches and the rules of its cohorts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Caller-chosen stable id.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The skills the program teaches (catalog ids), in the caller's order.
    pub skill_ids: Vec<String>,
    /// The hard rules its cohorts follow.
    pub cohort_rules: CohortRules,
    /// First day of the program, if it has a calendar (pace signal).
    pub start_date: Option<Micros>,
    /// Planned end of the program; after `start_date` when both are set.
    pub end_date: Option<Micros>,
    /// Per-program overrides of the at-risk alert thresholds.
    pub risk_rules: RiskRules,
    /// Other ids the LMS knows it by (course IRIs, registrations); kept as
    /// for `catalog::Module::external_ids`.
    #[serde(skip)]
    pub external_ids: Vec<String>,
}

/// Alert thresholds a program may override; `None` keeps the engine's
/// default (see `domain::risk::RiskThresholds`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RiskRules {
    /// Fewest days without activity before an inactivity alert, whatever
    /// the learner's rhythm (`risk::rules`), in (0, 365].
    pub inactivity_days: Option<f64>,
    /// Consecutive failures on one skill without mastery gain that make a
    /// blocking point, in 1..=100.
    pub blocking_failures: Option<u32>,
    /// Fall of P(mastered) from its peak before a mastery-drop alert, in
    /// (0, 1).
    pub mastery_drop: Option<f64>,
}

/// A learner's enrolment in a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The enrolled learner.
    pub learner_id: String,
    /// The program.
    pub program_id: String,
    /// When it was first recorded (server time).
    pub enrolled_at: Micros,
}

//! The stored form of a program's cohorts.
//!
//! Formation returns a partition; the service keeps it between calls so
//! that late enrolments, manual moves and locks apply to the cohorts the
//! manager saw. These are the plain records it keeps: the store encodes
//! them as they are, the API turns them into messages.

use serde::{Deserialize, Serialize};

use super::Objective;
use crate::domain::learner::Micros;

/// One current cohort of a program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCohort {
    /// Id unique across programs (`<program>/v<version>/c<NNN>` when
    /// created), kept as long as the cohort is kept.
    pub id: String,
    /// The program it belongs to.
    pub program_id: String,
    /// The program's cohort version this cohort belongs to: stamped by the
    /// formation that created or kept it.
    pub version: u64,
    /// Learner ids of its members, sorted.
    pub members: Vec<String>,
    /// Whether re-forming must keep it as it is.
    pub locked: bool,
    /// When its membership last changed (server time).
    pub updated_at: Micros,
}

/// The latest formation of a program: what late placements optimise for
/// and which version the next formation gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormationRecord {
    /// The program.
    pub program_id: String,
    /// Incremented by every real formation; 1 for the first.
    pub version: u64,
    /// The objective of that formation, reused for late placements.
    pub objective: Objective,
    /// Its seed, kept for the record (reproducing a formation).
    pub seed: u64,
    /// When it was stored (server time).
    pub formed_at: Micros,
}

impl StoredCohort {
    /// Whether `learner` is a member (members are sorted).
    pub fn has_member(&self, learner: &str) -> bool {
        self.members
            .binary_search_by(|m| m.as_str().cmp(learner))
            .is_ok()
    }
}

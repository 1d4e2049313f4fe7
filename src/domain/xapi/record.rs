//! What the engine remembers of each statement: the idempotency record,
//! the statements kept for a later replay, and the ids it derives.

use serde::{Deserialize, Serialize};

use crate::domain::learner::Micros;

/// The fate of a stored statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fate {
    /// It produced the attempt `xapi:<id>`.
    Attempt,
    /// It produced the module event `xapi:<id>`.
    Activity,
    /// It voided the statement with this id.
    Voided(String),
    /// It names something the catalog does not know yet; kept verbatim in
    /// the unresolved tree until a replay resolves it.
    Unresolved,
    /// Valid but without effect (a verb or object the engine does not map).
    Ignored,
    /// It enrolled its learner in a program (a course launched, registered,
    /// completed); a voiding leaves the enrolment (kept by appending: older
    /// records decode unchanged).
    Enrolment,
}

/// The idempotency record of one statement id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementRecord {
    /// SHA-256 of the canonical statement (see `statement::Parsed::hash`):
    /// the same id with another hash is a conflict.
    pub hash: [u8; 32],
    /// What it produced.
    pub fate: Fate,
    /// Whether a later statement voided it (its effect is undone).
    pub voided: bool,
    /// When the engine first stored it.
    pub stored_at: Micros,
}

/// A statement kept for a replay once the catalog knows what it names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unresolved {
    /// The statement as stored (JSON, verbatim plus id and timestamp).
    pub raw: String,
    /// Why it could not be applied, e.g. `unknown activity 'https://...'`.
    pub reason: String,
    /// When it was received.
    pub received_at: Micros,
}

/// The attempt or event id derived from a statement id: deterministic, so
/// a statement sent twice produces the same engine record, and the engine's
/// own idempotency holds.
pub fn derived_id(statement_id: &str) -> String {
    format!("xapi:{statement_id}")
}

/// The kinds of object an xAPI activity can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectKind {
    /// A program (course).
    Program,
    /// A module.
    Module,
    /// An item (question).
    Item,
}

impl ObjectKind {
    /// The noun, for messages (`module`).
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Program => "program",
            ObjectKind::Module => "module",
            ObjectKind::Item => "item",
        }
    }
}

/// What the xAPI mapping keeps of one program, module or item beside its
/// own row: the ids the LMS knows it by and, for items, the pass mark.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ObjectMapping {
    /// External ids (activity IRIs, registrations), in the caller's order.
    pub external_ids: Vec<String>,
    /// An item's pass mark, if it sets one.
    pub pass_mark: Option<f64>,
}

impl ObjectMapping {
    /// Whether there is nothing to keep (no row is written then).
    pub fn is_empty(&self) -> bool {
        self.external_ids.is_empty() && self.pass_mark.is_none()
    }
}

/// An activity statements named that nothing maps: what they said of it,
/// for `ListUnmappedActivities`, or the decision to ignore it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SeenActivity {
    /// The latest definition's name.
    pub name: String,
    /// The latest definition's description.
    pub description: String,
    /// The latest definition's activity type.
    pub kind: String,
    /// The latest definition's interaction type.
    pub interaction_type: String,
    /// When a statement first named it.
    pub first_seen: Micros,
    /// When a statement last named it.
    pub last_seen: Micros,
    /// Marked as ignored (`MapActivity` with `ignore`).
    pub ignored: bool,
}

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

//! xAPI (Experience API 1.0.x and IEEE 9274.1.1, xAPI 2.0) statements and what they mean to the
//! engine, kept pure: the HTTP edge (`http/`) parses bodies with
//! [`statement::parse_body`], the engine (`engine/xapi.rs`) maps each
//! statement with [`mapping::resolve`] and stores [`record`] values.
//!
//! - [`statement`]: the statement model and its validation, naming the
//!   offending field (`statement[3].result.score.scaled`); content hash.
//! - [`duration`]: ISO 8601 durations (`result.duration`).
//! - [`verbs`]: the verb table.
//! - [`mapping`]: statement -> attempt, module event, enrolment, voiding,
//!   or nothing yet (an activity to map).
//! - [`responses`]: `result.response` against `correctResponsesPattern`.
//! - [`record`]: idempotency records, unresolved statements, derived ids.

pub mod aliases;
pub mod duration;
pub mod mapping;
pub mod record;
pub mod responses;
pub mod statement;
pub mod verbs;

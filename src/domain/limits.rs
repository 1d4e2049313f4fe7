//! Size and time limits every edge enforces (gRPC in `api/validate.rs`,
//! xAPI in `domain/xapi/`): kept in one place so that an id or a time one
//! edge accepts, the other accepts too.

use super::learner::Micros;

/// Longest id accepted, in bytes: ids become sled keys.
pub const MAX_ID_BYTES: usize = 256;

/// Longest item or module id accepted, in bytes: xAPI activity ids are
/// IRIs, often longer than a plain id.
pub const MAX_IRI_BYTES: usize = 2 * MAX_ID_BYTES;

/// Earliest event time accepted (an attempt, a module event, an
/// enrolment): 2000-01-01T00:00:00Z. No online course predates it, and an
/// earlier time is almost always a field the client forgot to set (a
/// zero protobuf Timestamp reads as 1970-01-01), which would otherwise go
/// first in the learner's history and move their mastery.
pub const MIN_EVENT_MICROS: Micros = 946_684_800_000_000;

/// What an edge answers about an event time before [`MIN_EVENT_MICROS`].
pub const BEFORE_2000: &str =
    "must not be before 2000-01-01 (is it set? an unset timestamp reads as 1970-01-01)";

/// How far in the future an event time may lie (clock skew allowance).
pub const MAX_FUTURE_MICROS: Micros = 3_600_000_000;

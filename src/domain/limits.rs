//! Size and time limits every edge enforces (gRPC in `api/`, xAPI and
//! Connect in `http/`, CSV files in `cli/`), checked by
//! `domain/validate.rs`: kept in one place so that an id, a time or a
//! request one edge accepts, the other accepts too.

use std::time::Duration;

use super::learner::Micros;

/// Longest id accepted, in bytes: ids become sled keys.
pub const MAX_ID_BYTES: usize = 256;

/// Longest cohort id accepted, in bytes: a program id (at most
/// [`MAX_ID_BYTES`]) plus the `/vN/cNNN` suffix the server adds.
pub const MAX_COHORT_ID_BYTES: usize = MAX_ID_BYTES + 64;

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

/// Longest name or title accepted, in bytes.
pub const MAX_TEXT_BYTES: usize = 512;

/// Longest language tag accepted: RFC 5646 asks for at least 35
/// characters; private-use subtags may otherwise chain without end.
pub const MAX_LANGUAGE_BYTES: usize = 64;

/// Most ids one list field may hold (skills of a program, filters...):
/// each becomes a store lookup, so the list is bounded, not just the message.
pub const MAX_IDS_PER_LIST: usize = 10_000;

/// Most external ids one program, module or item carries.
pub const MAX_EXTERNAL_IDS: usize = 100;

/// Page size used when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// Largest page returned; larger requests are coerced (AIP-158).
pub const MAX_PAGE_SIZE: usize = 1000;

/// Longest time spent on one answer, in milliseconds (a day). Both edges
/// refuse more, naming the field (gRPC `time_spent`, xAPI
/// `result.duration`), rather than store a shortened time.
pub const MAX_ATTEMPT_TIME_MS: u64 = 24 * 3_600_000;

/// Longest module a catalog holds, in minutes (a week).
pub const MAX_MODULE_MINUTES: u32 = 7 * 24 * 60;

/// Longest time spent on a module that one module event carries, in
/// milliseconds: as long as the longest module (a week). Both edges refuse
/// more, naming the field.
pub const MAX_MODULE_TIME_MS: u64 = MAX_MODULE_MINUTES as u64 * 60_000;

/// Largest gRPC message accepted, in bytes: a full `ImportCatalog` fits, a
/// runaway client does not. Connect calls are held to it too.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// A request still running after this is cancelled: DEADLINE_EXCEEDED over
/// gRPC and Connect, 503 over xAPI (streaming calls are exempt through their
/// own keep-alive).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests in flight across all connections of both listeners before new
/// ones are refused at once with RESOURCE_EXHAUSTED (`spoc serve
/// --max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

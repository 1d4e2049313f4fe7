//! Size and time limits every edge enforces (gRPC in `api/validate.rs`,
//! xAPI in `domain/xapi/`): kept in one place so that an id or a time one
//! edge accepts, the other accepts too.

use super::learner::Micros;

/// Longest id accepted, in bytes: ids become sled keys.
pub const MAX_ID_BYTES: usize = 256;

/// Longest item or module id accepted, in bytes: xAPI activity ids are
/// IRIs, often longer than a plain id. 512 bytes keeps page tokens (hex of
/// the last key, at most `4 * MAX_ID_BYTES` characters) able to name one.
pub const MAX_IRI_BYTES: usize = 2 * MAX_ID_BYTES;

/// How far in the future an event time may lie (clock skew allowance).
pub const MAX_FUTURE_MICROS: Micros = 3_600_000_000;

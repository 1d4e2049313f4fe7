//! The wall clock, read in one place.
//!
//! Every "now" the service stores or compares (event times against the
//! skew allowance, creation and erasure times, alert times) comes from
//! [`now_micros`]. The domain never reads it: its functions take the time
//! as an argument, so they run the same in tests, the simulator and the
//! server. Elapsed times (timeouts, durations in logs) use
//! `std::time::Instant`, which this is not.

use crate::domain::learner::Micros;

/// The current time in microseconds since the epoch (0 if the system clock
/// reads before 1970).
pub fn now_micros() -> Micros {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as Micros)
        .unwrap_or(0)
}

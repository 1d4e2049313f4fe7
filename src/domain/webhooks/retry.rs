//! When a failed delivery is tried again, and when it is given up.
//!
//! Exponential backoff: the delay doubles after each failure, from
//! `first_delay` up to `max_delay`, with ±20 % jitter so that the messages
//! of one outage do not all come back at the same instant. A message is
//! tried for `window` after it entered the outbox (24 hours by default):
//! the last attempt falls at the window's end, and a failure then makes it
//! a dead letter.

use std::time::Duration;

use super::super::learner::Micros;

/// The retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub first_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// How long a message is retried, from when it entered the outbox.
    pub window: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, doubling up to 1 h, for 24 h: a receiver back after an outage
    /// hears again within the hour (and then gets its backlog at once).
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            window: Duration::from_secs(24 * 3600),
        }
    }
}

/// What to do with a message whose attempt just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time.
    RetryAt(Micros),
    /// The window is over: keep it as a dead letter.
    GiveUp,
}

impl RetryPolicy {
    /// The delay after the `failures`-th failure (1 for the first), before
    /// jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(40);
        self.first_delay
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_delay)
    }

    /// The decision after the `failures`-th failed attempt, at `now`, of a
    /// message created at `created_at`; `jitter` is a draw in [0, 1).
    pub fn after_failure(
        &self,
        created_at: Micros,
        failures: u32,
        now: Micros,
        jitter: f64,
    ) -> AfterFailure {
        let end = created_at.saturating_add(micros(self.window));
        if now >= end {
            return AfterFailure::GiveUp;
        }
        let delay = micros(self.delay(failures)) as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        AfterFailure::RetryAt(now.saturating_add(delay as Micros).min(end))
    }
}

fn micros(d: Duration) -> Micros {
    d.as_micros().min(i64::MAX as u128) as Micros
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=12).map(|n| p.delay(n).as_secs()).collect();
        assert_eq!(
            secs,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(p.delay(1000).as_secs(), 3600, "no overflow");
    }

    #[test]
    fn the_last_attempt_falls_at_the_window_end_then_it_is_given_up() {
        let p = RetryPolicy::default();
        let day = 24 * 3600 * S;
        assert_eq!(p.after_failure(0, 1, 0, 0.5), AfterFailure::RetryAt(5 * S));
        assert_eq!(p.after_failure(0, 1, 0, 0.0), AfterFailure::RetryAt(4 * S));
        assert_eq!(
            p.after_failure(0, 30, day - 10 * S, 0.5),
            AfterFailure::RetryAt(day)
        );
        assert_eq!(p.after_failure(0, 31, day, 0.5), AfterFailure::GiveUp);
        // Attempts over a day: a few dozen, not thousands.
        let (mut now, mut n) = (0, 0);
        while let AfterFailure::RetryAt(next) = p.after_failure(0, n + 1, now, 0.5) {
            now = next;
            n += 1;
        }
        assert!((25..40).contains(&n), "{n} retries");
    }
}

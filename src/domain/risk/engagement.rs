//! Engagement measured against the learner's own habit: how long since the
//! last session compared with their usual gap, and whether time spent,
//! sessions and success are falling compared with their own past.
//!
//! A learner who works once a week and has been away eight days is on
//! rhythm; one who worked every day and has been away four is not. Staff
//! learners differ by a factor of five in how often they come, so absolute
//! figures (days inactive, minutes this fortnight) mostly measure who they
//! are, and the change against their own past measures what is happening
//! to them. Declared pauses are taken out of every span: a week off is
//! neither a gap nor a fall in effort.
//!
//! A session is a run of module events and quiz answers with no pause of
//! [`SESSION_BREAK_HOURS`] or more inside: independent of time zones and
//! of where midnight falls.

use serde::{Deserialize, Serialize};

use super::signals::{MICROS_PER_DAY, SignalInput};
use crate::domain::learner::Micros;

/// Hours without an event that end a session.
pub const SESSION_BREAK_HOURS: f64 = 4.0;

/// Days of the recent window the trends compare with the learner's past.
pub const RECENT_DAYS: f64 = 14.0;

/// The usual gap assumed before a learner has a history (days), and how
/// many observed gaps it weighs as: the first gaps of a learner move the
/// estimate only part of the way.
pub const PRIOR_GAP_DAYS: f64 = 3.0;
/// See [`PRIOR_GAP_DAYS`].
pub const PRIOR_GAP_WEIGHT: f64 = 2.0;

/// The past must cover this many (unpaused) days before the recent window
/// for a trend to be measured; shorter, the trend is 0 (no change seen).
pub const MIN_PAST_DAYS: f64 = 7.0;

/// Answers in the recent success rate.
pub const RECENT_ANSWERS: usize = 10;

/// Minutes added to both sides of the time trend, so that a learner going
/// from 2 to 1 minutes is not a halving of effort.
const TIME_SMOOTHING_MINUTES: f64 = 30.0;

/// The engagement of one learner in one program at one time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Engagement {
    /// When the learner was last seen: their latest event, or enrolment
    /// or the program start when later or when there is none.
    pub last_seen: Micros,
    /// Days since `last_seen`, declared pauses left out.
    pub days_away: f64,
    /// The learner's usual gap between the starts of two sessions in days:
    /// the median gap, shrunk towards [`PRIOR_GAP_DAYS`] while there are
    /// few; at least 1.
    pub usual_gap: f64,
    /// `days_away / usual_gap`: 1 is on rhythm.
    pub gap_ratio: f64,
    /// The gap that ended with the latest session, over the usual gap
    /// (1 with fewer than two sessions): a rhythm already slowing.
    pub last_gap_ratio: f64,
    /// Sessions so far.
    pub sessions: u32,
    /// Sessions in the last [`RECENT_DAYS`] unpaused days.
    pub recent_sessions: u32,
    /// Minutes spent in the program's modules in the last [`RECENT_DAYS`]
    /// unpaused days.
    pub recent_minutes: f64,
    /// Log of recent minutes per fortnight over the learner's own past
    /// rate (smoothed): negative when effort falls.
    pub time_trend: f64,
    /// The same for sessions: negative when the learner comes less.
    pub session_trend: f64,
    /// Share of right answers among the last [`RECENT_ANSWERS`] (0.5 with
    /// none, smoothed by one right and one wrong).
    pub recent_success: f64,
    /// Recent success minus the success of the answers before them (0
    /// with fewer than five earlier answers): negative when it worsens.
    pub success_trend: f64,
    /// Days since the first session (or enrolment), pauses left out.
    pub tenure_days: f64,
    /// Whether `now` is inside a declared pause.
    pub paused: bool,
}

/// Days of `[from, to)` covered by the pauses (which may overlap).
pub fn paused_days(pauses: &[(Micros, Micros)], from: Micros, to: Micros) -> f64 {
    if to <= from {
        return 0.0;
    }
    let mut spans: Vec<(Micros, Micros)> = pauses
        .iter()
        .map(|&(s, e)| (s.max(from), e.min(to)))
        .filter(|(s, e)| s < e)
        .collect();
    spans.sort_unstable();
    let mut covered = 0i64;
    let mut reach = from;
    for (s, e) in spans {
        let s = s.max(reach);
        if e > s {
            covered += e - s;
            reach = e;
        }
    }
    covered as f64 / MICROS_PER_DAY as f64
}

/// Unpaused days of `[from, to)`.
fn open_days(pauses: &[(Micros, Micros)], from: Micros, to: Micros) -> f64 {
    if to <= from {
        return 0.0;
    }
    ((to - from) as f64 / MICROS_PER_DAY as f64 - paused_days(pauses, from, to)).max(0.0)
}

/// The start of the last `days` unpaused days before `to`: a window that
/// reaches back past the pauses inside it.
fn open_window_start(pauses: &[(Micros, Micros)], to: Micros, days: f64) -> Micros {
    let day = MICROS_PER_DAY as f64;
    let mut from = to - (days * day) as Micros;
    // Each step adds back the paused time found; pauses are few.
    for _ in 0..16 {
        let missing = days - open_days(pauses, from, to);
        if missing < 1e-6 {
            break;
        }
        from -= (missing * day).ceil() as Micros;
    }
    from
}

/// Median of a non-empty slice.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The first event time of each session (events closer than
/// [`SESSION_BREAK_HOURS`] belong to one session); `times` sorted.
fn session_starts(times: &[Micros]) -> Vec<Micros> {
    let session_break = (SESSION_BREAK_HOURS * 3_600_000_000.0) as Micros;
    let mut starts: Vec<Micros> = Vec::new();
    let mut previous: Option<Micros> = None;
    for &at in times {
        if previous.is_none_or(|p| at - p >= session_break) {
            starts.push(at);
        }
        previous = Some(at);
    }
    starts
}

/// The success rate of the last [`RECENT_ANSWERS`] answers (smoothed), and
/// its change from the earlier answers' (0 with fewer than 5 earlier).
fn success(input: &SignalInput) -> (f64, f64) {
    let now = input.now;
    let mut answers: Vec<(Micros, bool)> = input
        .attempts
        .iter()
        .filter(|a| a.at <= now)
        .map(|a| (a.at, a.correct))
        .collect();
    answers.sort_by_key(|(at, _)| *at);
    let split = answers.len().saturating_sub(RECENT_ANSWERS);
    let rate = |xs: &[(Micros, bool)]| {
        (xs.iter().filter(|(_, c)| *c).count() as f64 + 1.0) / (xs.len() as f64 + 2.0)
    };
    let recent_success = rate(&answers[split..]);
    let success_trend = if split >= 5 {
        recent_success - rate(&answers[..split])
    } else {
        0.0
    };
    (recent_success, success_trend)
}

/// Computes the engagement of one learner. Pure; only events before or at
/// `input.now` count.
pub fn engagement(input: &SignalInput) -> Engagement {
    let now = input.now;
    let pauses = &input.pauses;
    // Sessions, by their first event time.
    let mut times: Vec<Micros> = input
        .attempts
        .iter()
        .map(|a| a.at)
        .chain(input.module_events.iter().map(|(at, _)| *at))
        .filter(|at| *at <= now)
        .collect();
    times.sort_unstable();
    let starts = session_starts(&times);
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| open_days(pauses, w[0], w[1]))
        .collect();
    let usual_gap = if gaps.is_empty() {
        PRIOR_GAP_DAYS
    } else {
        let n = gaps.len() as f64;
        let m = median(&mut gaps.clone());
        (n * m + PRIOR_GAP_WEIGHT * PRIOR_GAP_DAYS) / (n + PRIOR_GAP_WEIGHT)
    }
    .max(1.0);
    let last_seen = [
        Some(input.enrolled_at),
        Some(input.calendar.starts_at),
        times.last().copied(),
    ]
    .into_iter()
    .flatten()
    .filter(|t| *t <= now)
    .max()
    .unwrap_or(now);
    let days_away = open_days(pauses, last_seen, now);
    let last_gap_ratio = gaps.last().map_or(1.0, |g| g / usual_gap);

    // The last RECENT_DAYS unpaused days: a pause just over does not
    // empty the window.
    let recent_from = open_window_start(pauses, now, RECENT_DAYS);
    let first = times.first().copied().unwrap_or(input.enrolled_at).min(now);
    let recent_open = open_days(pauses, recent_from.max(first), now);
    let past_open = open_days(pauses, first, recent_from);
    let minutes = |from: Micros, to: Micros| {
        input
            .module_events
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, ms)| *ms as f64 / 60_000.0)
            .sum::<f64>()
    };
    let recent_minutes = minutes(recent_from, now + 1);
    let recent_sessions = starts.iter().filter(|at| **at >= recent_from).count() as u32;
    let (time_trend, session_trend) = if past_open >= MIN_PAST_DAYS && recent_open >= 1.0 {
        let per_fortnight = |total: f64, open: f64| total / open * RECENT_DAYS;
        let past_minutes = per_fortnight(minutes(Micros::MIN, recent_from), past_open);
        let past_sessions = per_fortnight(
            starts.iter().filter(|at| **at < recent_from).count() as f64,
            past_open,
        );
        let now_minutes = per_fortnight(recent_minutes, recent_open);
        let now_sessions = per_fortnight(f64::from(recent_sessions), recent_open);
        (
            ((now_minutes + TIME_SMOOTHING_MINUTES) / (past_minutes + TIME_SMOOTHING_MINUTES)).ln(),
            ((now_sessions + 1.0) / (past_sessions + 1.0)).ln(),
        )
    } else {
        (0.0, 0.0)
    };

    let (recent_success, success_trend) = success(input);
    let paused = pauses.iter().any(|&(s, e)| s <= now && now < e);
    Engagement {
        last_seen,
        days_away,
        usual_gap,
        gap_ratio: days_away / usual_gap,
        last_gap_ratio,
        sessions: starts.len() as u32,
        recent_sessions,
        recent_minutes,
        time_trend,
        session_trend,
        recent_success,
        success_trend,
        tenure_days: open_days(pauses, first, now),
        paused,
    }
}

#[cfg(test)]
mod tests {

    use super::super::signals::SkillAttempt;
    use super::super::signals::tests_support::quiet_learner;
    use super::*;

    const DAY: i64 = MICROS_PER_DAY;

    fn input(now_day: i64) -> SignalInput {
        quiet_learner(now_day * DAY, 56 * DAY, 10)
    }

    /// A session on `day` (at 10:00) of `minutes`, with answers.
    fn session(input: &mut SignalInput, day: i64, minutes: u64, right: &[bool]) {
        let at = day * DAY + 10 * 3_600_000_000;
        input.module_events.push((at, minutes * 60_000));
        for (k, &correct) in right.iter().enumerate() {
            input.attempts.push(SkillAttempt {
                skill_id: "s".into(),
                correct,
                at: at + k as i64,
                p_before: 0.5,
                p_after: 0.5,
            });
        }
    }

    #[test]
    fn gaps_are_read_against_the_learners_own_rhythm() {
        // A weekly learner away 8 days is on rhythm...
        let mut weekly = input(36);
        for day in [0, 7, 14, 21, 28] {
            session(&mut weekly, day, 60, &[true]);
        }
        let w = engagement(&weekly);
        assert_eq!(w.sessions, 5);
        // Median gap 7 over 4 gaps, shrunk by 2 prior gaps of 3: (28+6)/6.
        assert!((w.usual_gap - 34.0 / 6.0).abs() < 1e-9, "{w:?}");
        assert!((w.days_away - (8.0 - 10.0 / 24.0)).abs() < 1e-9, "{w:?}");
        assert!(w.gap_ratio < 1.5, "{w:?}");
        // ...a daily learner away 4 days is not.
        let mut daily = input(24);
        for day in 0..20 {
            session(&mut daily, day, 30, &[true]);
        }
        let d = engagement(&daily);
        assert!(d.usual_gap < 1.2, "{d:?}");
        assert!(d.gap_ratio > 3.0, "{d:?}");
    }

    #[test]
    fn falling_effort_sessions_and_success_show_as_negative_trends() {
        let mut x = input(42);
        // Four weeks of 3 sessions of 60 minutes, all right; then 2 weeks
        // of one 15-minute session a week, mostly wrong.
        for week in 0..4 {
            for d in [0, 2, 4] {
                session(&mut x, week * 7 + d, 60, &[true, true]);
            }
        }
        session(&mut x, 29, 15, &[false, false, true]);
        session(&mut x, 36, 15, &[false, false, false]);
        let e = engagement(&x);
        assert_eq!(e.recent_sessions, 2);
        assert!(e.time_trend < -1.0, "{e:?}");
        assert!(e.session_trend < -0.5, "{e:?}");
        assert!(e.success_trend < -0.3, "{e:?}");
        // The same learner keeping their habit shows no fall.
        let mut steady = input(42);
        for week in 0..6 {
            for d in [0, 2, 4] {
                session(&mut steady, week * 7 + d, 60, &[true, true]);
            }
        }
        let s = engagement(&steady);
        assert!(s.time_trend.abs() < 0.2, "{s:?}");
        assert!(s.session_trend.abs() < 0.2, "{s:?}");
    }

    #[test]
    fn a_declared_pause_is_neither_a_gap_nor_a_fall() {
        let mut x = input(30);
        for day in 0..14 {
            session(&mut x, day, 30, &[true]);
        }
        // Away since day 13 (10:00), on a declared pause from day 14 to
        // day 28: 14 hours and 2 days away.
        x.pauses = vec![(14 * DAY, 28 * DAY)];
        let e = engagement(&x);
        assert!((e.days_away - (2.0 + 14.0 / 24.0)).abs() < 1e-9, "{e:?}");
        assert!(!e.paused);
        // The recent window reaches back past the pause: days 2 to 14 and
        // 28 to 30, 12 sessions as in the past, no fall.
        assert_eq!(e.recent_sessions, 12, "{e:?}");
        assert!(e.session_trend.abs() < 0.3, "{e:?}");
        x.now = 20 * DAY;
        let during = engagement(&x);
        assert!(during.paused);
        assert!(during.days_away < 1.0, "{during:?}");
    }

    #[test]
    fn paused_days_merge_overlaps_and_clip_to_the_span() {
        let pauses = [(2 * DAY, 5 * DAY), (4 * DAY, 6 * DAY), (9 * DAY, 20 * DAY)];
        assert_eq!(paused_days(&pauses, 0, 10 * DAY), 5.0);
        assert_eq!(paused_days(&pauses, 3 * DAY, 3 * DAY), 0.0);
        assert_eq!(paused_days(&[], 0, DAY), 0.0);
    }

    #[test]
    fn no_history_reads_as_the_prior_rhythm() {
        let e = engagement(&input(6));
        assert_eq!(e.sessions, 0);
        assert_eq!(e.usual_gap, PRIOR_GAP_DAYS);
        assert_eq!(e.days_away, 6.0);
        assert_eq!(e.time_trend, 0.0);
        assert_eq!(e.recent_success, 0.5);
    }
}

//! Quiz attempts and the mastery they imply, kept in `occurred_at` order.
//!
//! Attempts can reach the engine out of order (LMS retries, offline
//! clients). Mastery must nevertheless be what BKT gives for the learner's
//! attempts sorted by time, so each state remembers the position of the last
//! attempt folded into it: a newer attempt is folded in incrementally, an
//! older one forces a replay of the whole sequence ([`fold`]).

use serde::{Deserialize, Serialize};

use super::bkt::{Belief, BktParams, Observation};
use super::learner::Micros;

/// Version of the filter that computes stored mastery states: 2 carries
/// the belief as log-odds ([`Belief`]); 1 carried P(mastered) as one
/// number, which froze at 1.0. States of another version are recomputed.
pub const FILTER_VERSION: u32 = 2;

/// One answer of one learner to one quiz item, as stored forever (the raw
/// attempts are the training data of model fitting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Caller-chosen idempotency key, unique across the deployment.
    pub attempt_id: String,
    /// The learner who answered.
    pub learner_id: String,
    /// The quiz item answered.
    pub item_id: String,
    /// The skills the item tests, sorted and deduplicated.
    pub skill_ids: Vec<String>,
    /// Whether the answer was right.
    pub correct: bool,
    /// Optional partial credit in `[0, 1]`.
    pub score: Option<f64>,
    /// When the learner answered.
    pub occurred_at: Micros,
    /// Time spent on the item, in milliseconds.
    pub time_spent_ms: u64,
}

impl Attempt {
    /// The evidence BKT takes from this attempt.
    pub fn observation(&self) -> Observation {
        Observation {
            correct: self.correct,
            score: self.score,
        }
    }

    /// Where the attempt sits in its learner's timeline: by time, then id so
    /// that simultaneous attempts still have one order.
    pub fn position(&self) -> Position {
        Position {
            occurred_at: self.occurred_at,
            attempt_id: self.attempt_id.clone(),
        }
    }
}

/// A point in a learner's timeline; ordered by time, then attempt id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// When the attempt occurred.
    pub occurred_at: Micros,
    /// Tie-breaker between attempts at the same instant.
    pub attempt_id: String,
}

/// One learner's mastery of one skill, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MasteryState {
    /// The belief after the last attempt, as log-odds (so that it can fall
    /// again after any run of right answers, see [`Belief`]).
    pub belief: Belief,
    /// Number of attempts folded in.
    pub attempt_count: u32,
    /// Position of the latest attempt folded in.
    pub last: Position,
    /// When `p_mastered` last changed (server time).
    pub updated_at: Micros,
}

impl MasteryState {
    /// P(mastered) after the last attempt, in `[0, 1]`.
    pub fn p_mastered(&self) -> f64 {
        self.belief.p_known()
    }
}

/// Whether `new` (sorted by position) holds an observation at or before
/// the last one folded into `previous`: then the history must be replayed.
pub fn is_late(previous: Option<&MasteryState>, new: &[(Position, Observation)]) -> bool {
    match (previous, new.first()) {
        (Some(state), Some((first, _))) => *first <= state.last,
        _ => false,
    }
}

/// Folds new observations of one (learner, skill) into its state,
/// incrementally: `previous` is the stored state (if any), `new` the new
/// observations sorted by position, all after `previous.last`. A batch
/// that is not ([`is_late`]) replays the whole history instead
/// ([`rebuild_merged`]).
pub fn fold(
    params: &BktParams,
    previous: Option<&MasteryState>,
    new: &[(Position, Observation)],
    now: Micros,
) -> Option<MasteryState> {
    debug_assert!(!is_late(previous, new), "a late batch must be replayed");
    let last_new = new.last()?.0.clone();
    let start = previous.map_or(params.prior_belief(), |s| s.belief);
    let count = previous.map_or(0, |s| s.attempt_count);
    Some(MasteryState {
        belief: new.iter().fold(start, |b, (_, obs)| params.update(b, *obs)),
        attempt_count: count + new.len() as u32,
        last: last_new,
        updated_at: now,
    })
}

/// The state that `observations` (in any order) give from the prior; an
/// observation present twice at one position counts once, so a history
/// that already holds some of the new observations (a replay after a
/// crash) gives the same state. `None` when there is none.
pub fn rebuild(
    params: &BktParams,
    mut observations: Vec<(Position, Observation)>,
    now: Micros,
) -> Option<MasteryState> {
    observations.sort_by(|a, b| a.0.cmp(&b.0));
    rebuild_merged(params, &observations, &[], now)
}

/// What [`rebuild`] gives for `history` and `new` together, without copying
/// the history: both sorted by position, `history` without duplicates; an
/// observation of `new` at a position `history` already holds counts once.
/// `None` when both are empty.
pub fn rebuild_merged(
    params: &BktParams,
    history: &[(Position, Observation)],
    new: &[(Position, Observation)],
    now: Micros,
) -> Option<MasteryState> {
    let (mut h, mut n) = (history.iter().peekable(), new.iter().peekable());
    let mut belief = params.prior_belief();
    let mut count = 0u32;
    let mut last: Option<&Position> = None;
    loop {
        let next = match (h.peek(), n.peek()) {
            (Some(a), Some(b)) if b.0 < a.0 => n.next(),
            (Some(_), _) => h.next(),
            (None, Some(_)) => n.next(),
            (None, None) => break,
        };
        let Some((position, obs)) = next else { break };
        if last == Some(position) {
            continue; // already counted (a resend, or a replay after a crash)
        }
        belief = params.update(belief, *obs);
        count += 1;
        last = Some(position);
    }
    Some(MasteryState {
        belief,
        attempt_count: count,
        last: last?.clone(),
        updated_at: now,
    })
}

/// A right or wrong answer of learner `l` to item `i`, which tests skill
/// `s`: the attempt unit tests across the crate build on.
#[cfg(test)]
pub(crate) fn test_attempt(id: &str, occurred_at: Micros, correct: bool) -> Attempt {
    Attempt {
        attempt_id: id.into(),
        learner_id: "l".into(),
        item_id: "i".into(),
        skill_ids: vec!["s".into()],
        correct,
        score: None,
        occurred_at,
        time_spent_ms: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: Micros, correct: bool) -> (Position, Observation) {
        (
            Position {
                occurred_at: t,
                attempt_id: format!("a{t}"),
            },
            Observation {
                correct,
                score: None,
            },
        )
    }

    #[test]
    fn out_of_order_equals_sorted_replay() {
        let params = BktParams::default();
        let seq = [at(1, false), at(2, true), at(3, true), at(4, false)];
        let sorted = params.replay(seq.iter().map(|(_, o)| *o));
        // Arrive as 3, 4, then 1 and 2 late.
        let first = fold(&params, None, &seq[2..4], 10).unwrap();
        assert!(is_late(Some(&first), &seq[0..2]));
        let stored = seq[2..4].to_vec();
        let second = rebuild_merged(&params, &stored, &seq[0..2], 20).unwrap();
        assert!((second.p_mastered() - sorted.p_known()).abs() < 1e-12);
        assert_eq!(second.attempt_count, 4);
        // A history that already holds some of the new observations (a
        // partly applied batch replayed) gives the same state.
        let partial = vec![seq[0].clone(), seq[2].clone(), seq[3].clone()];
        let again = rebuild_merged(&params, &partial, &seq[0..2], 30).unwrap();
        assert!((again.p_mastered() - sorted.p_known()).abs() < 1e-12);
        assert_eq!(again.attempt_count, 4);
        assert_eq!(second.last, seq[3].0);
    }

    #[test]
    fn in_order_fold_is_incremental() {
        let params = BktParams::default();
        let seq = [at(1, true), at(2, true)];
        let first = fold(&params, None, &seq[..1], 1).unwrap();
        assert!(
            !is_late(Some(&first), &seq[1..]),
            "history must not be read"
        );
        let second = fold(&params, Some(&first), &seq[1..], 2).unwrap();
        let expected = params.replay(seq.iter().map(|(_, o)| *o));
        assert!((second.p_mastered() - expected.p_known()).abs() < 1e-12);
    }

    #[test]
    fn a_merged_rebuild_equals_a_rebuild_of_everything() {
        let params = BktParams::default();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..200 {
            let mut history: Vec<_> = (0..next() % 20)
                .map(|_| at((next() % 50) as i64, next() % 2 == 0))
                .collect();
            history.sort_by(|a, b| a.0.cmp(&b.0));
            history.dedup_by(|a, b| a.0 == b.0);
            let mut new: Vec<_> = (0..next() % 5)
                .map(|_| at((next() % 50) as i64, next() % 2 == 0))
                .collect();
            new.sort_by(|a, b| a.0.cmp(&b.0));
            // Same position, same content: a resend of a stored attempt.
            for obs in new.iter_mut() {
                if let Some((_, stored)) = history.iter().find(|(p, _)| *p == obs.0) {
                    obs.1 = *stored;
                }
            }
            let mut all = history.clone();
            all.extend(new.iter().cloned());
            let expected = rebuild(&params, all, 9);
            let merged = rebuild_merged(&params, &history, &new, 9);
            assert_eq!(merged, expected, "history {history:?} new {new:?}");
        }
        assert_eq!(rebuild_merged(&params, &[], &[], 9), None);
    }
}

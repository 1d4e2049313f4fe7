//! The figures of the alert evaluation: what the engine raised for each
//! learner of a simulated world at a cut time, against what the world
//! knows happened next.
//!
//! Pure: the caller (`spoc eval-alerts`) feeds a snapshot of a world into a
//! running engine and reads back the open alerts and the models' scores;
//! this module turns them into per-kind precision and recall against
//! "stops within 21 days", ranking AUCs, precision at the budget, lead
//! time, alerts per 25 learners and false alarms on pauses, completers
//! and slow learners.

use serde::Serialize;

use super::model::auc;
use super::rules::AlertKind;

/// One learner at one cut, as the evaluation saw them.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    /// Still in the program at the cut (the population of the stopping
    /// question).
    pub active: bool,
    /// On a declared pause at the cut.
    pub declared_pause: bool,
    /// On a pause nobody declared at the cut.
    pub undeclared_pause: bool,
    /// Completed the program before the cut.
    pub completed: bool,
    /// A slow-but-steady learner.
    pub slow: bool,
    /// Stops within 21 days of the cut.
    pub stops_soon: bool,
    /// Days from the cut to the stop, for a learner who stops later.
    pub days_to_stop: Option<f64>,
    /// Does not complete the program by its deadline.
    pub not_completing: bool,
    /// Kinds of the learner's open alerts at the cut.
    pub open: Vec<AlertKind>,
    /// The stopping model's probability.
    pub stopping_risk: f64,
    /// The behind-schedule model's probability.
    pub behind_risk: f64,
    /// The baseline's probability of stopping within 21 days.
    pub baseline_risk: f64,
}

/// The figures of one alert kind (or of any kind).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindFigures {
    /// The kind (`any` for every kind together).
    pub kind: String,
    /// Open alerts of the kind.
    pub open: usize,
    /// Open alerts per 25 learners.
    pub per_25: f64,
    /// Among active learners alerted, the share who stop within 21 days.
    pub precision: f64,
    /// Among active learners who stop within 21 days, the share alerted.
    pub recall: f64,
    /// Median days from the alert (the cut) to the stop, over alerted
    /// learners who stop within 21 days.
    pub lead_days: Option<f64>,
    /// Alerts on learners on a declared pause.
    pub on_declared_pauses: usize,
    /// Share of learners on an undeclared pause alerted.
    pub undeclared_pause_share: f64,
    /// Alerts on learners who completed the program.
    pub on_completers: usize,
    /// Share of active slow-but-steady learners alerted.
    pub slow_share: f64,
}

/// The figures of a set of observations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Learners observed.
    pub learners: usize,
    /// Of which active (the stopping population, pauses included).
    pub active: usize,
    /// Share of active learners (not on a declared pause) who stop
    /// within 21 days.
    pub base_rate: f64,
    /// AUC of the stopping model for "stops within 21 days", among active
    /// learners not on a declared pause.
    pub stopping_auc: f64,
    /// AUC of the baseline on the same learners.
    pub baseline_auc: f64,
    /// AUC of the behind-schedule model for non-completion among active
    /// learners.
    pub behind_auc: f64,
    /// Seats of the budget over the active learners (5 per 25 by
    /// default).
    pub budget: usize,
    /// Share who stop within 21 days among the `budget` active learners
    /// the stopping model ranks first.
    pub precision_at_budget: f64,
    /// The same for the baseline.
    pub baseline_precision_at_budget: f64,
    /// Per kind, then `any`.
    pub kinds: Vec<KindFigures>,
}

/// The share of `n` in `d` (NaN when `d` is 0).
fn share(n: usize, d: usize) -> f64 {
    if d == 0 {
        f64::NAN
    } else {
        n as f64 / d as f64
    }
}

/// The median of a slice, if any.
fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// Precision among the `k` first by `score`.
fn precision_at(rows: &[&Seen], score: fn(&Seen) -> f64, k: usize) -> f64 {
    let mut ranked: Vec<&&Seen> = rows.iter().collect();
    ranked.sort_by(|a, b| score(b).total_cmp(&score(a)));
    let top = &ranked[..k.min(ranked.len())];
    share(top.iter().filter(|s| s.stops_soon).count(), top.len())
}

/// The figures of one kind; `None` for any kind.
fn kind_figures(rows: &[Seen], kind: Option<AlertKind>) -> KindFigures {
    let has = |s: &Seen| match kind {
        Some(k) => s.open.contains(&k),
        None => !s.open.is_empty(),
    };
    let open: usize = rows
        .iter()
        .map(|s| match kind {
            Some(k) => s.open.iter().filter(|x| **x == k).count(),
            None => s.open.len(),
        })
        .sum();
    let active: Vec<&Seen> = rows
        .iter()
        .filter(|s| s.active && !s.declared_pause)
        .collect();
    let alerted = active.iter().filter(|s| has(s)).count();
    let hits: Vec<&&Seen> = active.iter().filter(|s| has(s) && s.stops_soon).collect();
    let positives = active.iter().filter(|s| s.stops_soon).count();
    let slow: Vec<&&Seen> = active.iter().filter(|s| s.slow).collect();
    let undeclared: Vec<&Seen> = rows.iter().filter(|s| s.undeclared_pause).collect();
    KindFigures {
        kind: kind.map_or("any", AlertKind::as_str).to_string(),
        open,
        per_25: share(open, rows.len()) * 25.0,
        precision: share(hits.len(), alerted),
        recall: share(hits.len(), positives),
        lead_days: median(hits.iter().filter_map(|s| s.days_to_stop).collect()),
        on_declared_pauses: rows.iter().filter(|s| s.declared_pause && has(s)).count(),
        undeclared_pause_share: share(
            undeclared.iter().filter(|s| has(s)).count(),
            undeclared.len(),
        ),
        on_completers: rows.iter().filter(|s| s.completed && has(s)).count(),
        slow_share: share(slow.iter().filter(|s| has(s)).count(), slow.len()),
    }
}

/// Computes the figures, with a budget of `per_25` open alerts per 25
/// active learners for the precision at the budget.
pub fn figures(rows: &[Seen], per_25: u32) -> Figures {
    let question: Vec<&Seen> = rows
        .iter()
        .filter(|s| s.active && !s.declared_pause)
        .collect();
    let stops: Vec<bool> = question.iter().map(|s| s.stops_soon).collect();
    let scores = |f: fn(&Seen) -> f64| question.iter().map(|s| f(s)).collect::<Vec<f64>>();
    let pace: Vec<&Seen> = rows.iter().filter(|s| s.active).collect();
    let budget = question.len() * per_25 as usize / 25;
    let mut kinds: Vec<KindFigures> = [
        AlertKind::Stopping,
        AlertKind::BehindSchedule,
        AlertKind::Inactivity,
        AlertKind::BlockingPoint,
        AlertKind::MasteryDrop,
    ]
    .into_iter()
    .map(|k| kind_figures(rows, Some(k)))
    .collect();
    kinds.push(kind_figures(rows, None));
    Figures {
        learners: rows.len(),
        active: rows.iter().filter(|s| s.active).count(),
        base_rate: share(stops.iter().filter(|y| **y).count(), stops.len()),
        stopping_auc: auc(&scores(|s| s.stopping_risk), &stops),
        baseline_auc: auc(&scores(|s| s.baseline_risk), &stops),
        behind_auc: auc(
            &pace.iter().map(|s| s.behind_risk).collect::<Vec<_>>(),
            &pace.iter().map(|s| s.not_completing).collect::<Vec<_>>(),
        ),
        budget,
        precision_at_budget: precision_at(&question, |s| s.stopping_risk, budget),
        baseline_precision_at_budget: precision_at(&question, |s| s.baseline_risk, budget),
        kinds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(stops: bool, open: &[AlertKind], risk: f64) -> Seen {
        Seen {
            active: true,
            declared_pause: false,
            undeclared_pause: false,
            completed: false,
            slow: false,
            stops_soon: stops,
            days_to_stop: stops.then_some(10.0),
            not_completing: stops,
            open: open.to_vec(),
            stopping_risk: risk,
            behind_risk: risk,
            baseline_risk: 1.0 - risk,
        }
    }

    #[test]
    fn hand_counted_figures() {
        let s = AlertKind::Stopping;
        let mut rows = vec![
            seen(true, &[s], 0.9),
            seen(false, &[s], 0.8),
            seen(true, &[], 0.7),
            seen(false, &[], 0.1),
            seen(false, &[], 0.2),
        ];
        let mut paused = seen(false, &[AlertKind::Inactivity], 0.5);
        paused.declared_pause = true;
        rows.push(paused);
        let mut done = seen(false, &[AlertKind::BlockingPoint], 0.0);
        done.active = false;
        done.completed = true;
        rows.push(done);
        let f = figures(&rows, 5);
        // Five active learners off pause, two stop: 40%.
        assert!((f.base_rate - 0.4).abs() < 1e-12);
        // Positives 0.9 and 0.7 against 0.8, 0.1, 0.2: 5 of 6 pairs.
        assert!((f.stopping_auc - 5.0 / 6.0).abs() < 1e-12);
        assert!((f.baseline_auc - 1.0 / 6.0).abs() < 1e-12);
        assert_eq!(f.budget, 1);
        assert_eq!(f.precision_at_budget, 1.0);
        let stop = &f.kinds[0];
        assert_eq!((stop.kind.as_str(), stop.open), ("stopping", 2));
        assert_eq!((stop.precision, stop.recall), (0.5, 0.5));
        assert_eq!(stop.lead_days, Some(10.0));
        let any = f.kinds.last().unwrap();
        assert_eq!(any.open, 4);
        assert!((any.per_25 - 4.0 / 7.0 * 25.0).abs() < 1e-9);
        assert_eq!(any.on_declared_pauses, 1);
        assert_eq!(any.on_completers, 1);
    }
}

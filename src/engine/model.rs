//! Fitting the mastery model on stored attempts, and activating it.
//!
//! A fit runs on its own thread (EM is CPU-bound; rayon parallelizes it
//! across skills) so that ingestion keeps its latency. When it succeeds the
//! model file is written, the parameters are swapped atomically, and every
//! learner's mastery is recomputed with them, a small group of learners at
//! a time under their locks: ingestion of a learner is never blocked for
//! longer than one group's replay. The recomputed states are flushed and only then is
//! the model recorded as their basis (`store::models::MasteryBasis`) and
//! the fit reported as succeeded; a start that finds another basis than
//! the model in force (a crash in between, a new parameter file, a new
//! filter) recomputes every state before serving.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::Engine;
use super::params::ParamSet;
use crate::clock::now_micros;
use crate::domain::activity::ActivityKind;
use crate::domain::fit::{AttemptRecord, Dataset, FitOptions, FittedModel, Variants, build_model};
use crate::domain::mastery::FILTER_VERSION;
use crate::error::{Error, Result};
use crate::store::models::MasteryBasis;

/// Learners recomputed under one take of their lock stripe and written at
/// once: ingestion of these learners waits for the group (under 10 ms),
/// and the waiting ingestion rows are applied (a log sync and a sled
/// write) once per group rather than once per learner. With 32, those
/// applies took most of a fit's recomputation beside ingestion (10M
/// attempts: 17 s with ingestion beside it, 6.7 s without).
const RECOMPUTE_GROUP: usize = 128;

/// Threads of a recomputation (at most; the machine's cores otherwise).
const RECOMPUTE_THREADS: usize = 2;

/// What a caller asks of a fit (pyBKT's variants and EM settings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitRequest {
    /// Fit P(F).
    pub forgets: bool,
    /// One learn rate per module (the latest module teaching the attempt's
    /// skill completed since the previous attempt on that skill).
    pub multilearn: bool,
    /// One guess and slip per quiz item.
    pub multigs: bool,
    /// Cross-validation folds (below 2: none).
    pub folds: usize,
    /// EM restarts per skill.
    pub restarts: usize,
    /// Seed of the restarts and the fold split.
    pub seed: u64,
    /// Upper bound of every fitted guess (see [`Bounds::for_mastery`]).
    pub max_guess: f64,
    /// Upper bound of every fitted slip.
    pub max_slip: f64,
}

/// State of the last fit job.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum FitState {
    /// None started since the server started.
    #[default]
    Idle,
    /// One is running.
    Running,
    /// The last one succeeded; its model is in force.
    Succeeded,
    /// The last one failed, for this reason.
    Failed(String),
}

/// The model in force.
#[derive(Debug, Clone)]
pub struct ActiveModel {
    /// File name under `DATA_DIR/models`, or `defaults`.
    pub id: String,
    /// The fitted model, unless the defaults are in force.
    pub fitted: Option<Arc<FittedModel>>,
}

impl ActiveModel {
    /// The shipped or configured default parameters.
    pub fn defaults() -> Self {
        Self {
            id: "defaults".into(),
            fitted: None,
        }
    }

    /// When the model in force was fitted, in microseconds: its id is the
    /// time `Store::save_model` wrote it (`bkt-<unix millis>.json`); `None`
    /// for the defaults.
    pub fn fitted_at(&self) -> Option<i64> {
        self.fitted.as_ref()?;
        let millis = self.id.strip_prefix("bkt-")?.strip_suffix(".json")?;
        millis.parse::<i64>().ok().map(|ms| ms * 1000)
    }
}

impl ParamSet {
    /// The parameters of a fitted model: its per-skill summary parameters,
    /// and per module the mean of its fitted learn rates over the skills it
    /// was seen with. Skills the fit never saw keep `base`'s parameters.
    pub fn from_fitted(base: &ParamSet, fitted: &FittedModel) -> ParamSet {
        let mut skills = base.skills.clone();
        skills.extend(fitted.skills.iter().map(|(id, s)| (id.clone(), s.params)));
        ParamSet {
            version: 1,
            default: base.default,
            skills,
            modules: fitted.module_learn_rates(),
        }
    }
}

impl Engine {
    /// The model in force and the state of the last fit.
    pub fn model(&self) -> (ActiveModel, FitState) {
        (self.model.read().clone(), self.fit_state.lock().clone())
    }

    /// Starts a fit in the background; refuses when one is running or no
    /// attempt is stored.
    pub fn start_fit(self: &Arc<Self>, request: FitRequest) -> Result<()> {
        if request.multilearn && request.multigs {
            return Err(Error::invalid(
                "multigs",
                "cannot be combined with multilearn (both use the template of an attempt)",
            ));
        }
        if !self.store.has_attempts()? {
            return Err(Error::FailedPrecondition(
                "no attempt is stored yet: nothing to fit".into(),
            ));
        }
        {
            let mut state = self.fit_state.lock();
            if *state == FitState::Running {
                return Err(Error::FailedPrecondition("a fit is already running".into()));
            }
            *state = FitState::Running;
        }
        let engine = self.clone();
        let spawned = std::thread::Builder::new()
            .name("spoc-fit".into())
            .spawn(move || {
                let outcome = engine.run_fit(request);
                let mut state = engine.fit_state.lock();
                *state = match outcome {
                    Ok(()) => FitState::Succeeded,
                    Err(err) => {
                        tracing::error!(error = %err, "model fit failed");
                        FitState::Failed(err.to_string())
                    }
                };
            });
        if let Err(err) = spawned {
            *self.fit_state.lock() = FitState::Failed(err.to_string());
            return Err(Error::Unavailable(format!("cannot start the fit: {err}")));
        }
        Ok(())
    }

    fn run_fit(&self, request: FitRequest) -> Result<()> {
        let started = std::time::Instant::now();
        let dataset = self.training_set(&request)?;
        let read = started.elapsed().as_secs_f64();
        let variants = Variants {
            forgets: request.forgets,
            multilearn: request.multilearn,
            multigs: request.multigs,
            multiprior: false,
        };
        let mut options = FitOptions::for_mastery(variants, request.restarts, request.seed);
        options.bounds.guess.1 = request.max_guess;
        options.bounds.slip.1 = request.max_slip;
        let fitted = build_model(&dataset, &options, request.folds, request.seed)
            .map_err(|e| Error::FailedPrecondition(format!("fit failed: {e}")))?;
        let id = self.store.save_model(&fitted, now_micros() / 1000)?;
        let fitted_at = started.elapsed().as_secs_f64();
        tracing::info!(
            model = %id,
            attempts = dataset.len(),
            read_seconds = read,
            seconds = fitted_at,
            "model fitted"
        );
        drop(dataset);
        self.activate(id, fitted)?;
        tracing::info!(
            recompute_seconds = started.elapsed().as_secs_f64() - fitted_at,
            "mastery recomputed with the fitted model"
        );
        Ok(())
    }

    /// Every stored attempt in time order per learner and skill, one row
    /// per skill it tests, with the module (multilearn) or item (multigs)
    /// as template. Read as one scan of the attempt blocks, a learner at a
    /// time, straight into the dataset's interned columns: no attempt is
    /// held in memory besides its learner's.
    fn training_set(&self, request: &FitRequest) -> Result<Dataset> {
        let catalog = self.catalog();
        let teaches: BTreeMap<&str, &[String]> = catalog
            .modules
            .iter()
            .map(|m| (m.id.as_str(), m.skill_ids.as_slice()))
            .collect();
        // One row per attempt and skill: the attempt count is the size
        // when attempts test one skill each, as most do.
        let mut dataset = Dataset::with_capacity(self.store.attempt_count() as usize);
        let mut completed: Vec<(i64, String)> = Vec::new();
        let mut current_learner = String::new();
        // The current (learner, skill) pair and the time of its previous
        // attempt.
        let mut current_skill = String::new();
        let mut previous: Option<i64> = None;
        self.store.for_each_observation(
            |learner, skill, occurred_at, _attempt_id, item_id, observation| {
                if current_learner != learner {
                    current_learner.clear();
                    current_learner.push_str(learner);
                    current_skill.clear();
                    if request.multilearn {
                        completed = self
                            .store
                            .recent_activities(learner, ActivityKind::Completed, usize::MAX)?
                            .into_iter()
                            .map(|a| (a.activity.occurred_at, a.activity.module_id))
                            .collect();
                    }
                }
                if current_skill != skill {
                    current_skill.clear();
                    current_skill.push_str(skill);
                    previous = None;
                }
                let template = if request.multilearn {
                    // The latest module teaching this skill completed since
                    // the previous attempt on it: an answer on skill B after
                    // a module on skill A says nothing about A.
                    let since = previous.replace(occurred_at);
                    let done = completed.partition_point(|(at, _)| *at <= occurred_at);
                    completed[..done]
                        .iter()
                        .rev()
                        .take_while(|(at, _)| since.is_none_or(|prev| *at > prev))
                        .find(|(_, m)| {
                            teaches
                                .get(m.as_str())
                                .is_some_and(|skills| skills.iter().any(|s| s == skill))
                        })
                        .map(|(_, m)| m.as_str())
                } else if request.multigs {
                    Some(item_id)
                } else {
                    None
                };
                dataset.push(AttemptRecord {
                    learner,
                    skill,
                    correct: match observation.score {
                        Some(score) => score >= 0.5,
                        None => observation.correct,
                    },
                    template,
                    group: None,
                    timestamp: Some(occurred_at.div_euclid(1_000_000)),
                });
                Ok(())
            },
        )?;
        Ok(dataset)
    }

    /// Puts a fitted model in force and recomputes every learner's mastery;
    /// returns once the recomputed states and their basis are durable.
    pub(crate) fn activate(&self, id: String, fitted: FittedModel) -> Result<()> {
        let params = Arc::new(ParamSet::from_fitted(&self.config.params, &fitted));
        *self.params.write() = params.clone();
        *self.model.write() = ActiveModel {
            id: id.clone(),
            fitted: Some(Arc::new(fitted)),
        };
        self.recompute_mastery(&params)?;
        self.store.put_mastery_basis(&basis(&id, &params))
    }

    /// At start: recomputes every mastery state when the stored ones were
    /// computed with another filter or other parameters than those in force
    /// (or nobody recorded with what: a store older than the record).
    pub(crate) fn check_mastery_basis(&self) -> Result<()> {
        let params = self.params();
        let id = self.model.read().id.clone();
        let wanted = basis(&id, &params);
        let stored = self.store.mastery_basis()?;
        if stored.as_ref() == Some(&wanted) {
            return Ok(());
        }
        if stored.is_none() && self.store.mastery_learners()?.is_empty() {
            // A new store: nothing to recompute, only the basis to record.
            return self.store.put_mastery_basis(&wanted);
        }
        tracing::info!(
            stored = ?stored,
            model = %id,
            "mastery states were computed with another model or filter: recomputing them"
        );
        self.recompute_mastery(&params)?;
        self.store.put_mastery_basis(&wanted)
    }

    /// Replays every (learner, skill) with `params`, [`RECOMPUTE_GROUP`]
    /// learners of one lock stripe at a time under that stripe, on up to
    /// [`RECOMPUTE_THREADS`] threads: one read of a learner's attempts and
    /// of their mastery record for all their skills, one write (and one
    /// apply of the waiting ingestion rows) per group.
    fn recompute_mastery(&self, params: &ParamSet) -> Result<()> {
        let learners = self.store.mastery_learners()?;
        let locks = &self.learner_locks;
        let groups = stripe_groups(learners, locks.stripes(), |l| locks.stripe_of(l));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed = std::sync::atomic::AtomicBool::new(false);
        let now = now_micros();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, RECOMPUTE_THREADS);
        let worker = || -> Result<()> {
            while !failed.load(std::sync::atomic::Ordering::Relaxed) {
                let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(group) = groups.get(g) else {
                    return Ok(());
                };
                let outcome = self.recompute_group(group, params, now);
                if outcome.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return outcome;
                }
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
            let mut outcome = worker();
            for helper in helpers {
                let joined = helper.join().unwrap_or_else(|_| {
                    Err(Error::Storage("a recomputation thread panicked".into()))
                });
                outcome = outcome.and(joined);
            }
            outcome
        })
    }

    /// Recomputes the mastery of one group of learners (see
    /// [`Engine::recompute_mastery`]).
    fn recompute_group(&self, learners: &[String], params: &ParamSet, now: i64) -> Result<()> {
        let _guard = self
            .learner_locks
            .lock_all(learners.iter().map(String::as_str));
        let mut rows = Vec::new();
        for learner in learners {
            let mut histories = self.store.learner_observations(learner)?;
            for (skill, mut state) in self.store.learner_mastery(learner)? {
                let history = histories.remove(&skill).unwrap_or_default();
                state.belief = params
                    .for_skill(&skill)
                    .replay(history.iter().map(|(_, o)| *o));
                state.attempt_count = history.len() as u32;
                state.updated_at = now;
                rows.push((learner.clone(), skill, state));
            }
        }
        self.store.put_mastery(&rows)
    }
}

/// `learners` in groups of at most [`RECOMPUTE_GROUP`] that each lock a
/// single stripe (`stripe_of` among `stripes`), ordered round-robin over
/// the stripes so that threads taking consecutive groups lock different
/// stripes. Groups of learners taken in list order locked about 30 of the
/// 256 stripes each: two threads' groups nearly always shared one, so the
/// second thread waited out the first's whole group (3M attempts: one
/// thread of two blocked in every sample of the recomputation).
fn stripe_groups(
    learners: Vec<String>,
    stripes: usize,
    stripe_of: impl Fn(&str) -> usize,
) -> Vec<Vec<String>> {
    let mut by_stripe: Vec<Vec<String>> = vec![Vec::new(); stripes.max(1)];
    for learner in learners {
        let stripe = stripe_of(&learner);
        by_stripe[stripe].push(learner);
    }
    // Round k holds the k-th group of every stripe, in stripe order.
    let mut rounds: Vec<Vec<Vec<String>>> = Vec::new();
    for learners in by_stripe {
        let mut learners = learners.into_iter();
        for k in 0.. {
            let group: Vec<String> = learners.by_ref().take(RECOMPUTE_GROUP).collect();
            if group.is_empty() {
                break;
            }
            if rounds.len() == k {
                rounds.push(Vec::new());
            }
            rounds[k].push(group);
        }
    }
    rounds.into_iter().flatten().collect()
}

/// The basis of states computed with `params` under model `id`: only the
/// per-skill parameters enter the digest (module learn rates serve
/// remediation, not mastery).
pub(crate) fn basis(id: &str, params: &ParamSet) -> MasteryBasis {
    let skills = serde_json::to_vec(&(&params.default, &params.skills))
        .expect("parameters serialize to JSON");
    let digest = Sha256::digest(&skills);
    MasteryBasis {
        filter: FILTER_VERSION,
        model_id: id.to_string(),
        params_sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mastery::{Attempt, test_attempt as attempt};
    use crate::engine::testing::{engine, skill_s_and_learner_l};

    #[test]
    fn recompute_groups_lock_one_stripe_each_and_neighbours_differ() {
        let learners: Vec<String> = (0..50_000).map(|n| format!("learner-{n}")).collect();
        let locks = crate::engine::locks::StripedLocks::new(256);
        let groups = stripe_groups(learners.clone(), 256, |l| locks.stripe_of(l));
        let mut seen: Vec<String> = groups.iter().flatten().cloned().collect();
        seen.sort();
        let mut all = learners;
        all.sort();
        assert_eq!(seen, all, "every learner once");
        let stripe = |g: &Vec<String>| {
            let stripes: std::collections::BTreeSet<usize> =
                g.iter().map(|l| locks.stripe_of(l)).collect();
            assert_eq!(stripes.len(), 1, "a group locks one stripe");
            stripes.into_iter().next().unwrap()
        };
        assert!(
            groups
                .iter()
                .all(|g| !g.is_empty() && g.len() <= RECOMPUTE_GROUP)
        );
        // 50,000 learners over 256 stripes: about 195 a stripe, two
        // groups each, taken a round of all stripes at a time; consecutive
        // groups never share a stripe.
        assert!(groups.len() >= 2 * 256, "{} groups", groups.len());
        for pair in groups.windows(2) {
            assert_ne!(stripe(&pair[0]), stripe(&pair[1]));
        }
    }

    /// A recomputation rewrites every state: the next attempt folds into
    /// the new state, not into the one ingestion kept in memory before
    /// (`store/state_cache.rs`).
    #[tokio::test]
    async fn the_next_attempt_folds_into_the_recomputed_state() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());
        skill_s_and_learner_l(&engine, vec![]).await;
        let sent = [
            attempt("a1", 1, false),
            attempt("a2", 2, true),
            attempt("a3", 3, true),
        ];
        engine.record_attempts(sent[..2].to_vec()).await.unwrap();

        let mut params = (*engine.params()).clone();
        params.default.learn = 0.4;
        params.skills.clear();
        let params = Arc::new(params);
        *engine.params.write() = params.clone();
        engine.recompute_mastery(&params).unwrap();
        engine.record_attempts(sent[2..].to_vec()).await.unwrap();

        let expected = params
            .for_skill("s")
            .replay(sent.iter().map(Attempt::observation));
        let state = engine.store.mastery("l", "s").unwrap().unwrap();
        assert_eq!(state.attempt_count, 3);
        assert!(
            (state.p_mastered() - expected.p_known()).abs() < 1e-12,
            "{} != {}",
            state.p_mastered(),
            expected.p_known()
        );
    }
}

//! The engine: what every front end (gRPC, CLI, xAPI) calls.
//!
//! It sits between the pure domain and the store: it reads the state a use
//! case needs, calls domain functions, and writes the outcome back in one
//! store transaction. It knows nothing of tonic or protobuf; requests reach
//! it as validated domain values.

pub mod access;
pub mod alerts;
pub mod backup;
pub mod catalog;
pub mod cohorts;
pub mod effects;
pub mod history;
pub mod learners;
pub mod locks;
pub mod mapping;
pub mod mastery;
pub mod model;
pub mod params;
pub mod privacy;
pub mod remediation;
pub mod reports;
pub mod risk_history;
pub mod seen;
#[cfg(test)]
mod testing;
pub mod verify;
pub mod webhooks;
pub mod xapi;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::domain::catalog::{Item, Module, Skill};
use crate::domain::catalog_index::CatalogIndex;
use crate::domain::learner::Program;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::wal::WalRecord;
use locks::StripedLocks;
use params::ParamSet;

/// Default probability above which a skill counts as mastered.
pub const DEFAULT_MASTERY_THRESHOLD: f64 = 0.95;

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// P(mastered) at or above which a skill is mastered, in (0, 1].
    pub mastery_threshold: f64,
    /// BKT parameters in force.
    pub params: ParamSet,
}

/// Shared state of a running service.
pub struct Engine {
    store: Store,
    config: EngineConfig,
    params: RwLock<Arc<ParamSet>>,
    /// The fitted model in force (or the defaults).
    model: RwLock<model::ActiveModel>,
    /// State of the last fit job.
    fit_state: Mutex<model::FitState>,
    /// The catalog, cached: every recommendation reads all of it.
    catalog: RwLock<Arc<Catalog>>,
    /// Serializes catalog writes, whose validation reads the whole catalog.
    catalog_write: Mutex<()>,
    /// Programs read so far, kept current by `upsert_program`.
    programs: RwLock<HashMap<String, Arc<Program>>>,
    /// Serializes read-compute-write cycles per learner.
    learner_locks: StripedLocks,
    /// Learners known to exist (ingestion checks every attempt's learner).
    known_learners: seen::SeenSet,
    /// Observation histories of pairs that got late attempts.
    histories: history::Histories,
    /// `learner 00 module` pairs whose first recommendation is stored.
    noted_recommendations: seen::SeenSet,
    /// What modules did for the population, and the windows still
    /// waiting for answers.
    effects: effects::EffectsState,
    /// At-risk alerts: model, pending evaluations, sequence, watchers.
    alerts: alerts::AlertHub,
    /// API keys, cached for authentication.
    access: access::AccessKeys,
    /// xAPI ingestion: counters, the replay lock.
    xapi: xapi::XapiState,
    /// Learners erased lately (keyed hashes), so that a retry succeeds.
    recent_erasures: privacy::RecentErasures,
    /// Webhook subscriptions, outbox follower and delivery worker.
    webhooks: webhooks::WebhookHub,
}

impl Engine {
    /// Builds an engine over an open store: reads the catalog into memory,
    /// replays what the write-ahead log holds beyond the last checkpoint,
    /// and recomputes mastery if it was computed with another model.
    pub fn new(store: Store, config: EngineConfig) -> Result<Self> {
        let catalog = Catalog::load(&store)?;
        // The newest fitted model, if any, overrides the configured defaults.
        let (active, params) = match store.newest_model()? {
            Some((id, fitted)) => {
                tracing::info!(model = %id, "loaded fitted model");
                let params = ParamSet::from_fitted(&config.params, &fitted);
                (
                    model::ActiveModel {
                        id,
                        fitted: Some(Arc::new(fitted)),
                    },
                    params,
                )
            }
            None => (model::ActiveModel::defaults(), config.params.clone()),
        };
        let alerts = alerts::AlertHub::new(store.last_alert_sequence()?)?;
        let effects = effects::EffectsState::load(&store)?;
        let access = access::AccessKeys::load(&store)?;
        let webhooks = webhooks::WebhookHub::new(&store)?;
        let xapi = xapi::XapiState::new(store.count_unresolved()?, xapi::load_aliases(&store)?);
        // Every engine cache is sized from the store's memory budget.
        let budget = store.budget();
        let (seen_keys, history) = (
            store.capacity(budget.seen_keys()),
            store.capacity(budget.history_observations()),
        );
        let engine = Self {
            effects,
            access,
            xapi,
            alerts,
            store,
            params: RwLock::new(Arc::new(params)),
            model: RwLock::new(active),
            fit_state: Mutex::new(model::FitState::default()),
            catalog: RwLock::new(Arc::new(catalog)),
            config,
            catalog_write: Mutex::new(()),
            programs: RwLock::new(HashMap::new()),
            learner_locks: StripedLocks::new(256),
            known_learners: seen::SeenSet::new(seen_keys.clone()),
            noted_recommendations: seen::SeenSet::new(seen_keys),
            histories: history::Histories::new(history),
            recent_erasures: privacy::RecentErasures::default(),
            webhooks,
        };
        engine.replay()?;
        engine.check_mastery_basis()?;
        Ok(engine)
    }

    /// Re-applies logged batches (idempotent: attempts are written again
    /// and their mastery rebuilt, module events already stored are
    /// duplicates), then checkpoints so the log starts empty.
    fn replay(&self) -> Result<()> {
        let backlog = self.store.take_backlog();
        if backlog.is_empty() {
            return Ok(());
        }
        let (mut recorded, mut failed, mut first_error) = (0, 0, None);
        let mut dropped = 0;
        for record in &backlog {
            let (record, missing) = self.without_missing_learners(record)?;
            dropped += missing;
            let record = &record;
            let outcome = match record {
                WalRecord::Attempts(batch) => self
                    .apply_attempts(batch, &[], mastery::Ingest::Replay)
                    .map(|(r, _)| r.recorded),
                WalRecord::Activities(batch) => self.apply_activity(batch).map(|r| r.recorded),
            };
            match outcome {
                Ok(n) => recorded += n,
                Err(err) => {
                    failed += 1;
                    tracing::error!(error = %err, "a logged batch could not be replayed");
                    first_error.get_or_insert(err);
                }
            }
        }
        if dropped > 0 {
            tracing::info!(
                entries = dropped,
                "logged entries of learners the store does not hold were not replayed: \
                 learners erased after the entries were logged, or learners whose creation \
                 was still running at the stop (never acknowledged; clients resend it)"
            );
        }
        tracing::info!(
            batches = backlog.len(),
            recovered = recorded,
            failed,
            "write-ahead log replayed"
        );
        if let Some(err) = first_error {
            // Acknowledged data must never be trimmed away: keep the log
            // and refuse to start, so an operator can look at it.
            return Err(Error::Storage(format!(
                "{failed} of {} logged batches could not be replayed (first: {err}); \
                 the write-ahead log under the data folder is kept as it is",
                backlog.len()
            )));
        }
        match self.store.flush() {
            // A start on a full disk serves reads: the replayed batches
            // are applied in memory, the log keeps them until a checkpoint
            // succeeds, and writes answer UNAVAILABLE meanwhile.
            Err(Error::Unavailable(reason)) => {
                tracing::error!(
                    error = %reason,
                    "disk full at start: serving reads; writes are refused until space is freed"
                );
                Ok(())
            }
            other => other,
        }
    }

    /// The catalog as last written (a snapshot).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    /// The store, for front ends that need a read the engine does not wrap.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The mastery threshold in force.
    pub fn mastery_threshold(&self) -> f64 {
        self.config.mastery_threshold
    }

    /// The BKT parameters in force (a snapshot: a model swap does not tear
    /// a computation in two).
    pub fn params(&self) -> Arc<ParamSet> {
        self.params.read().clone()
    }
}

/// An in-memory copy of the catalog, replaced whole on every catalog write.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Every skill by id.
    pub skills: BTreeMap<String, Skill>,
    /// Every module, in id order.
    pub modules: Vec<Module>,
    /// Every item (the Q-matrix) by id.
    pub items: BTreeMap<String, Item>,
    /// Lookup tables over `skills` and `modules` for the hot paths.
    pub index: CatalogIndex,
}

impl Catalog {
    fn load(store: &Store) -> Result<Self> {
        let skills = store.all_skills()?;
        let modules = store.all_modules()?;
        let items: BTreeMap<String, Item> = store
            .all_items()?
            .into_iter()
            .map(|item| (item.id.clone(), item))
            .collect();
        Ok(Self {
            index: CatalogIndex::new(&skills, &modules).with_items(items.values()),
            skills,
            modules,
            items,
        })
    }
}

/// The clock under its former path, for the engine files rewritten
/// elsewhere meanwhile (`alerts.rs`, `mastery.rs`,
/// `remediation.rs`). New code uses [`crate::clock`].
pub use crate::clock::now_micros;

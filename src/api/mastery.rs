//! `spoc.v1.MasteryService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use super::pb::{self, mastery_service_server::MasteryService};
use super::validate as check;
use crate::clock::now_micros;
use crate::domain::fit::Bounds;
use crate::engine::Engine;
use crate::engine::model::{ActiveModel, FitRequest, FitState};
use crate::error::Error;
use crate::offload;

/// Batches of this many attempts or more are ingested on the blocking
/// pool; smaller ones (a few hundred microseconds at most) stay on the
/// worker, where single attempts, the common call, avoid the hand-over.
const OFFLOAD_FROM: usize = 32;

/// Serves attempt ingestion and mastery over the engine.
pub struct MasteryApi {
    engine: Arc<Engine>,
}

impl MasteryApi {
    /// Wraps a shared engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl MasteryService for MasteryApi {
    async fn record_attempts(
        &self,
        request: Request<pb::RecordAttemptsRequest>,
    ) -> Result<Response<pb::RecordAttemptsResponse>, Status> {
        let attempts = request.into_inner().attempts;
        let offloaded = attempts.len() >= OFFLOAD_FROM;
        let engine = self.engine.clone();
        let stage = move || {
            let converted = convert::attempts(&attempts, now_micros())?;
            engine
                .stage_attempts(converted)
                .map_err(|err| convert::locate_attempt_skill(err, &attempts))
        };
        // A large batch is milliseconds of CPU: off the workers, so that
        // the calls queued behind it are not held back (`offload.rs`).
        let staged = if offloaded {
            offload::cpu(stage).await??
        } else {
            stage()?
        };
        let outcome = self.engine.commit_attempts(staged).await?;
        Ok(Response::new(pb::RecordAttemptsResponse {
            mastery: outcome.mastery.into_iter().map(Into::into).collect(),
            recorded: outcome.recorded as i32,
            duplicates: outcome.duplicates as i32,
        }))
    }

    async fn get_mastery(
        &self,
        request: Request<pb::GetMasteryRequest>,
    ) -> Result<Response<pb::GetMasteryResponse>, Status> {
        // Fields first: a bad id is INVALID_ARGUMENT for every caller.
        let learner_id = check::id("learner_id", &request.get_ref().learner_id)?;
        let skill_ids = check::id_set("skill_ids", &request.get_ref().skill_ids)?;
        super::scope::authorize(&self.engine, &request)?;
        let skills = self
            .engine
            .mastery(&learner_id, &skill_ids)
            .map_err(|err| convert::locate_id(err, "skill_ids", &request.get_ref().skill_ids))?;
        Ok(Response::new(pb::GetMasteryResponse {
            learner_id,
            mastery_threshold: self.engine.mastery_threshold(),
            skills: skills.into_iter().map(Into::into).collect(),
        }))
    }

    async fn fit_model(
        &self,
        request: Request<pb::FitModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        let pb::FitModelRequest {
            forgets,
            multilearn,
            multigs,
            folds,
            restarts,
            seed,
            max_guess,
            max_slip,
        } = request.into_inner();
        let defaults = Bounds::for_mastery();
        self.engine.start_fit(FitRequest {
            folds: count_or_five("folds", folds, 20)?,
            restarts: count_or_five("restarts", restarts, 50)?,
            forgets,
            multilearn,
            multigs,
            seed,
            max_guess: bound_or("max_guess", max_guess, defaults.guess.1)?,
            max_slip: bound_or("max_slip", max_slip, defaults.slip.1)?,
        })?;
        let (active, state) = self.engine.model();
        Ok(Response::new(model_message(active, state)))
    }

    async fn get_model(
        &self,
        _request: Request<pb::GetModelRequest>,
    ) -> Result<Response<pb::Model>, Status> {
        let (active, state) = self.engine.model();
        Ok(Response::new(model_message(active, state)))
    }
}

/// The proto form of the model in force and of the last fit's state.
fn model_message(active: ActiveModel, state: FitState) -> pb::Model {
    let (fit_state, error) = match state {
        FitState::Idle => (pb::FitState::Unspecified, String::new()),
        FitState::Running => (pb::FitState::Running, String::new()),
        FitState::Succeeded => (pb::FitState::Succeeded, String::new()),
        FitState::Failed(reason) => (pb::FitState::Failed, reason),
    };
    let mut message = pb::Model {
        model_id: active.id.clone(),
        fit_state: fit_state as i32,
        error,
        ..Default::default()
    };
    message.fitted_at = active.fitted_at().map(super::convert::timestamp);
    let Some(fitted) = active.fitted else {
        return message;
    };
    message.log_likelihood = fitted.log_likelihood;
    if let Some(cv) = &fitted.cv {
        message.cv_auc = cv.auc;
        message.cv_rmse = cv.rmse;
    }
    message.attempts = fitted.data.attempts as i64;
    message.learners = fitted.data.learners as i64;
    message.fit_seconds = fitted.fit_seconds;
    message.module_learn_rates = fitted.module_learn_rates().into_iter().collect();
    message.skills = fitted
        .skills
        .iter()
        .map(|(id, skill)| pb::SkillParameters {
            skill_id: id.clone(),
            prior: skill.params.prior,
            learn: skill.params.learn,
            guess: skill.params.guess,
            slip: skill.params.slip,
            forget: skill.params.forget,
            attempts: skill.attempts as i64,
        })
        .collect();
    message
}

/// An upper bound of guess or slip: `default` when absent, else in
/// (0, 0.5) (at 0.5 and above a right answer stops being evidence of
/// knowing).
fn bound_or(field: &str, value: Option<f64>, default: f64) -> Result<f64, Error> {
    match value {
        None => Ok(default),
        Some(v) if v > 0.0 && v < 0.5 => Ok(v),
        Some(v) => Err(Error::invalid(
            field,
            format!("must be above 0 and below 0.5, got {v}"),
        )),
    }
}

/// A count the caller may leave at 0 for the default of 5, at most `max`.
fn count_or_five(field: &str, value: i32, max: i32) -> Result<usize, Error> {
    match value {
        0 => Ok(5),
        1.. if value <= max => Ok(value as usize),
        _ => Err(Error::invalid(
            field,
            format!("must be in 0..={max}, got {value}"),
        )),
    }
}

//! Learners and their enrolments sent to a running service, as the demo
//! and the alert evaluation both load them: each learner upserted then
//! enrolled, [`LEARNER_CONCURRENCY`] learners at a time.

use tokio::task::JoinSet;

use crate::api::pb;
use crate::cli::client::{BoxError, Service, describe};

/// Learners written at once (each upsert and enrolment waits for a flush).
pub const LEARNER_CONCURRENCY: usize = 32;

/// One learner to upsert and the program to enrol them in.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The learner as the API takes it.
    pub learner: pb::Learner,
    /// Their program.
    pub program_id: String,
    /// When they were enrolled (`None`: now).
    pub enrolled_at: Option<prost_types::Timestamp>,
}

/// Upserts each learner and enrols them; `done` is called once per
/// learner written (for a progress bar). The first refusal ends the load.
pub async fn enrol_all(
    service: &Service,
    enrolments: impl IntoIterator<Item = Enrolment>,
    mut done: impl FnMut(),
) -> Result<(), BoxError> {
    let mut tasks = JoinSet::new();
    for e in enrolments {
        if tasks.len() == LEARNER_CONCURRENCY {
            tasks.join_next().await.expect("a task is running")??;
            done();
        }
        let mut client = service.learners();
        tasks.spawn(async move {
            let id = e.learner.id.clone();
            client
                .upsert_learner(pb::UpsertLearnerRequest {
                    learner: Some(e.learner),
                })
                .await
                .map_err(|s| describe(&format!("learner {id:?}"), &s))?;
            client
                .enroll_learner(pb::EnrollLearnerRequest {
                    learner_id: id.clone(),
                    program_id: e.program_id,
                    enrolled_at: e.enrolled_at,
                })
                .await
                .map_err(|s| describe(&format!("enrolling {id:?}"), &s))?;
            Ok::<_, BoxError>(())
        });
    }
    while let Some(finished) = tasks.join_next().await {
        finished??;
        done();
    }
    Ok(())
}

//! Loading the demo world into the service through its public gRPC API, as
//! an LMS backend would: catalog, programs, learners and enrolments, then
//! quiz answers and module events in batches.

use std::collections::BTreeMap;

use tokio::task::JoinSet;

use super::world::{DemoActivity, DemoAttempt, DemoWorld};
use crate::api::convert::timestamp;
use crate::api::pb;
use crate::cli::client::{BoxError, Service, describe};
use crate::cli::enrol::{Enrolment, enrol_all};
use crate::cli::output;

/// Events per RecordAttempts / RecordActivity call: the API's maximum.
pub const BATCH: usize = 1000;

/// Calls in flight at once: enough to fill the service's group commit, few
/// enough for two cores.
pub const IN_FLIGHT: usize = 4;

/// Imports the catalog (all or nothing) and upserts the programs.
pub async fn catalog_and_programs(service: &Service, world: &DemoWorld) -> Result<(), BoxError> {
    service
        .catalog()
        .import_catalog(pb::ImportCatalogRequest {
            skills: world.skills.iter().cloned().map(Into::into).collect(),
            modules: world.modules.iter().cloned().map(Into::into).collect(),
            items: world.items.iter().cloned().map(Into::into).collect(),
        })
        .await
        .map_err(|s| describe("importing the catalog", &s))?;
    let mut programs = service.programs();
    for program in &world.programs {
        programs
            .upsert_program(pb::UpsertProgramRequest {
                program: Some(program.clone().into()),
            })
            .await
            .map_err(|s| describe(&format!("program {:?}", program.id), &s))?;
    }
    Ok(())
}

/// Upserts every learner and enrols them in their program.
pub async fn learners(service: &Service, world: &DemoWorld) -> Result<(), BoxError> {
    let bar = output::bar(world.learners.len() as u64, "learners and enrolments");
    // Enrolled on day 0, like the LMS history being replayed: the
    // inactivity of learners who stopped coming counts from there.
    let enrolled_at = Some(crate::api::convert::timestamp(world.start));
    let enrolments = world.learners.iter().map(|l| Enrolment {
        learner: l.learner.clone().into(),
        program_id: l.program_id.clone(),
        enrolled_at,
    });
    enrol_all(service, enrolments, || bar.inc(1)).await?;
    bar.finish_and_clear();
    Ok(())
}

/// What one learner group sends: its module events, then its answers.
#[derive(Debug, Default)]
struct Chunk {
    activities: Vec<pb::ModuleActivity>,
    attempts: Vec<pb::Attempt>,
}

/// Sends answers and module events learner group by learner group, each
/// learner's in time order (so the service never replays a late answer),
/// [`IN_FLIGHT`] groups at a time. Returns (answers, events) recorded.
pub async fn history(
    service: &Service,
    attempts: &[DemoAttempt],
    activities: &[DemoActivity],
    label: &str,
) -> Result<(usize, usize), BoxError> {
    let mut per_learner: BTreeMap<&str, Chunk> = BTreeMap::new();
    for a in activities {
        per_learner
            .entry(&a.learner_id)
            .or_default()
            .activities
            .push(activity_message(a));
    }
    for a in attempts {
        per_learner
            .entry(&a.learner_id)
            .or_default()
            .attempts
            .push(attempt_message(a));
    }
    // Whole learners per chunk, up to a batch of each kind.
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut current = Chunk::default();
    for (_, c) in per_learner {
        if current.attempts.len() + c.attempts.len() > BATCH
            || current.activities.len() + c.activities.len() > BATCH
        {
            chunks.push(std::mem::take(&mut current));
        }
        current.attempts.extend(c.attempts);
        current.activities.extend(c.activities);
    }
    chunks.push(current);

    let bar = output::bar((attempts.len() + activities.len()) as u64, label);
    let mut tasks = JoinSet::new();
    let (mut recorded, mut events) = (0usize, 0usize);
    for chunk in chunks {
        if tasks.len() == IN_FLIGHT {
            let (a, e) = tasks.join_next().await.expect("a task is running")??;
            recorded += a;
            events += e;
            bar.inc((a + e) as u64);
        }
        let mut mastery = service.mastery();
        let mut remediation = service.remediation();
        tasks.spawn(async move {
            let mut events = 0usize;
            for batch in chunk.activities.chunks(BATCH) {
                let r = remediation
                    .record_activity(pb::RecordActivityRequest {
                        activities: batch.to_vec(),
                    })
                    .await
                    .map_err(|s| describe("recording module events", &s))?
                    .into_inner();
                events += (r.recorded + r.duplicates) as usize;
            }
            let mut recorded = 0usize;
            for batch in chunk.attempts.chunks(BATCH) {
                let r = mastery
                    .record_attempts(pb::RecordAttemptsRequest {
                        attempts: batch.to_vec(),
                    })
                    .await
                    .map_err(|s| describe("recording quiz answers", &s))?
                    .into_inner();
                recorded += (r.recorded + r.duplicates) as usize;
            }
            Ok::<_, BoxError>((recorded, events))
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (a, e) = done??;
        recorded += a;
        events += e;
        bar.inc((a + e) as u64);
    }
    bar.finish_and_clear();
    Ok((recorded, events))
}

/// A demo answer as the API takes it.
fn attempt_message(a: &DemoAttempt) -> pb::Attempt {
    pb::Attempt {
        attempt_id: a.id.clone(),
        learner_id: a.learner_id.clone(),
        item_id: a.item_id.clone(),
        skill_ids: vec![a.skill_id.clone()],
        correct: a.correct,
        score: None,
        occurred_at: Some(timestamp(a.at)),
        time_spent: Some(prost_types::Duration {
            seconds: a.seconds,
            nanos: 0,
        }),
    }
}

/// A demo module event as the API takes it.
fn activity_message(a: &DemoActivity) -> pb::ModuleActivity {
    pb::ModuleActivity {
        event_id: a.id.clone(),
        learner_id: a.learner_id.clone(),
        module_id: a.module_id.clone(),
        program_id: a.program_id.clone(),
        kind: if a.completed {
            pb::ActivityKind::Completed
        } else {
            pb::ActivityKind::Started
        } as i32,
        occurred_at: Some(timestamp(a.at)),
        time_spent: Some(prost_types::Duration {
            seconds: a.minutes * 60,
            nanos: 0,
        }),
    }
}

//! One snapshot of a simulated world loaded into a running service through
//! its public gRPC API, as an LMS would send its history: catalog and
//! program, learners and enrolments, then each learner's module events and
//! quiz answers up to the cut, with the pauses it declared, every time
//! shifted so that the cut is the present.

use tokio::task::JoinSet;

use crate::api::convert::timestamp;
use crate::api::pb;
use crate::cli::client::{BoxError, Service, describe};
use crate::cli::enrol::{Enrolment, enrol_all};
use crate::domain::learner::Micros;
use crate::domain::risk::world::{EventKind, World, WorldLearner};

/// The program id of every world.
pub const PROGRAM: &str = "world";

/// Events per RecordAttempts / RecordActivity call: the API's maximum.
const BATCH: usize = 1000;

/// Calls in flight at once.
const IN_FLIGHT: usize = 4;

/// Loads the world as of `cut` (world time), shifting every time by
/// `shift` (so that `cut + shift` is now). Returns the events sent.
pub async fn snapshot(
    service: &Service,
    world: &World,
    cut: Micros,
    shift: Micros,
) -> Result<usize, BoxError> {
    let at = |t: Micros| Some(timestamp(t + shift));
    service
        .catalog()
        .import_catalog(catalog(world))
        .await
        .map_err(|s| describe("importing the catalog", &s))?;
    service
        .programs()
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: PROGRAM.into(),
                name: world.params.name.clone(),
                skill_ids: world.units.iter().map(|u| u.skill.clone()).collect(),
                start_date: at(world.starts_at),
                end_date: at(world.ends_at),
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| describe("upserting the program", &s))?;
    let enrolments = world.learners.iter().enumerate().map(|(i, l)| Enrolment {
        learner: pb::Learner {
            id: l.id.clone(),
            company_id: format!("company-{}", i % 8),
            language: "en".into(),
            time_zone: "Europe/Paris".into(),
            display_name: String::new(),
        },
        program_id: PROGRAM.into(),
        enrolled_at: at(world.starts_at),
    });
    enrol_all(service, enrolments, || {}).await?;

    // Whole learners per chunk, each learner's events in time order.
    let mut chunks: Vec<Vec<&WorldLearner>> = vec![Vec::new()];
    let mut size = 0;
    for l in &world.learners {
        let n = l.events.iter().filter(|e| e.at < cut).count();
        if size + n > BATCH && size > 0 {
            chunks.push(Vec::new());
            size = 0;
        }
        size += n;
        chunks.last_mut().expect("one chunk at least").push(l);
    }
    let mut sent = 0;
    let mut tasks = JoinSet::new();
    for chunk in chunks {
        if tasks.len() == IN_FLIGHT {
            sent += tasks.join_next().await.expect("a task is running")??;
        }
        let (activities, attempts, pauses) = messages(&chunk, cut, shift);
        let (mut remediation, mut mastery, mut alerts) =
            (service.remediation(), service.mastery(), service.alerts());
        tasks.spawn(async move {
            let n = activities.len() + attempts.len();
            if !activities.is_empty() {
                remediation
                    .record_activity(pb::RecordActivityRequest { activities })
                    .await
                    .map_err(|s| describe("recording module events", &s))?;
            }
            if !attempts.is_empty() {
                mastery
                    .record_attempts(pb::RecordAttemptsRequest { attempts })
                    .await
                    .map_err(|s| describe("recording quiz answers", &s))?;
            }
            for pause in pauses {
                alerts
                    .declare_pause(pause)
                    .await
                    .map_err(|s| describe("declaring a pause", &s))?;
            }
            Ok::<_, BoxError>(n)
        });
    }
    while let Some(done) = tasks.join_next().await {
        sent += done??;
    }
    Ok(sent)
}

/// The world's catalog: a skill per unit, taught by a video then a
/// document module in English.
fn catalog(world: &World) -> pb::ImportCatalogRequest {
    let skills: Vec<pb::Skill> = world
        .units
        .iter()
        .map(|u| pb::Skill {
            id: u.skill.clone(),
            name: u.skill.clone(),
            prerequisite_ids: Vec::new(),
        })
        .collect();
    let modules: Vec<pb::Module> = world
        .units
        .iter()
        .flat_map(|u| {
            u.modules.iter().enumerate().map(|(k, m)| pb::Module {
                external_ids: Vec::new(),
                id: m.clone(),
                title: m.clone(),
                skill_ids: vec![u.skill.clone()],
                format: if k == 0 {
                    pb::ModuleFormat::Video
                } else {
                    pb::ModuleFormat::Document
                } as i32,
                duration_minutes: 45,
                language: "en".into(),
            })
        })
        .collect();
    pb::ImportCatalogRequest {
        skills,
        modules,
        items: Vec::new(),
    }
}

/// The requests of a chunk of learners: module events, answers and the
/// pauses declared by the cut.
fn messages(
    chunk: &[&WorldLearner],
    cut: Micros,
    shift: Micros,
) -> (
    Vec<pb::ModuleActivity>,
    Vec<pb::Attempt>,
    Vec<pb::DeclarePauseRequest>,
) {
    let (mut activities, mut attempts, mut pauses) = (Vec::new(), Vec::new(), Vec::new());
    for l in chunk {
        for (k, e) in l.events.iter().enumerate().filter(|(_, e)| e.at < cut) {
            let id = format!("{}-{k:04}", l.id);
            let occurred_at = Some(timestamp(e.at + shift));
            let spent = Some(prost_types::Duration {
                seconds: (e.time_spent_ms / 1000) as i64,
                nanos: 0,
            });
            match &e.kind {
                EventKind::Answer { skill, correct } => attempts.push(pb::Attempt {
                    attempt_id: id,
                    learner_id: l.id.clone(),
                    item_id: format!("{skill}-q"),
                    skill_ids: vec![skill.clone()],
                    correct: *correct,
                    score: None,
                    occurred_at,
                    time_spent: spent,
                }),
                EventKind::ModuleStarted { module } | EventKind::ModuleCompleted { module } => {
                    let completed = matches!(e.kind, EventKind::ModuleCompleted { .. });
                    activities.push(pb::ModuleActivity {
                        event_id: id,
                        learner_id: l.id.clone(),
                        module_id: module.clone(),
                        program_id: PROGRAM.into(),
                        kind: if completed {
                            pb::ActivityKind::Completed
                        } else {
                            pb::ActivityKind::Started
                        } as i32,
                        occurred_at,
                        time_spent: spent,
                    })
                }
            }
        }
        if let Some(p) = l.pause.filter(|p| p.declared && p.starts_at <= cut) {
            pauses.push(pb::DeclarePauseRequest {
                learner_id: l.id.clone(),
                program_id: PROGRAM.into(),
                starts_at: Some(timestamp(p.starts_at + shift)),
                ends_at: Some(timestamp(p.ends_at + shift)),
                note: "planned break".into(),
                by: "lms".into(),
            });
        }
    }
    (activities, attempts, pauses)
}

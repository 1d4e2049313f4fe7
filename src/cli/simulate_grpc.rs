//! `spoc simulate-grpc`: the simulator's world played through the real
//! service, as an outside evaluator drives it.
//!
//! `spoc simulate` calls the policy in process, with the simulator's own
//! bookkeeping of beliefs, module outcomes, evidence and module effects.
//! The engine keeps those from stored events instead: answers and module
//! completions recorded through gRPC, effects credited from them, fitted
//! models put in force by `FitModel`. Whether the two agree is what this
//! command measures: the same world and learners, the adaptive policy only,
//! every decision taken by `RecommendNext` on a service started in process
//! (a fresh scratch folder, loopback), beside the in-process figures.
//! Both columns are equal, with or without `--refit-every`
//! (`remediation::history` builds the policy's view for both, events are
//! timed alike, and both fit the same data); a gap is a divergence between
//! the simulator and the service, which the held-out evaluation
//! (driving the service) would see and `spoc simulate` would not.

use clap::Args;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::client::{BoxError, Service, describe};
use super::enrol::{Enrolment, enrol_all};
use super::in_process::InProcess;
use super::output::{self, OutputFormat};
use super::simulate::World as WorldArg;
use crate::api::convert::timestamp;
use crate::api::pb;
use crate::domain::learner::Micros;
use crate::domain::simulator::report::{PolicyReport, summarise_one};
use crate::domain::simulator::run::{
    End, FAR_BELOW, LearnerOutcome, START, event_time, learner_id, quiz_passed,
};
use crate::domain::simulator::world::{LEARNER_STREAM, MASTERY_THETA, SimLearner, rng};
use crate::domain::simulator::{PolicyKind, SimOptions, World, WorldKind, simulate};

/// The program every simulated learner follows.
const PROGRAM: &str = "simulated";

/// Options of `spoc simulate-grpc`.
#[derive(Debug, Args)]
pub struct SimulateGrpcArgs {
    /// Number of synthetic learners, one after the other.
    #[arg(long, default_value_t = 200)]
    pub learners: usize,
    /// Seed of the world and the learners (as `spoc simulate --seed`).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The hidden learner model.
    #[arg(long, value_enum, default_value_t = WorldArg::Irt)]
    pub world: WorldArg,
    /// Learners between two `FitModel` calls (multilearn); 0: never.
    #[arg(long, default_value_t = 0)]
    pub refit_every: usize,
    /// Scratch folder of the service (removed after; a folder this command
    /// did not make is refused untouched).
    #[arg(long, default_value = "spoc-simulate-grpc")]
    pub data_dir: std::path::PathBuf,
    /// Output: aligned tables, or `{"through_grpc": {...}, "in_process": {...}}`.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

/// The adaptive policy's figures both ways (`spoc simulate`'s fields).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Every decision taken by `RecommendNext` through gRPC.
    pub through_grpc: PolicyReport,
    /// `spoc simulate`'s adaptive policy on the same learners.
    pub in_process: PolicyReport,
}

/// Runs both and prints them.
pub fn run(args: SimulateGrpcArgs) -> Result<(), BoxError> {
    if args.learners == 0 {
        return Err("--learners must be at least 1".into());
    }
    let options = SimOptions {
        learners: args.learners,
        seed: args.seed,
        seeds: 1,
        world: match args.world {
            WorldArg::Irt => WorldKind::Irt,
            WorldArg::Bkt => WorldKind::Bkt,
        },
        refit_every: args.refit_every,
        ..SimOptions::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let mut through_grpc = runtime.block_on(through_grpc(&options, &args.data_dir))?;
    let _ = std::fs::remove_dir_all(&args.data_dir);
    let mut policies = simulate(&options).policies;
    let in_process = policies
        .remove(PolicyKind::Adaptive.name())
        .ok_or("the simulation has no adaptive policy")?;
    // Against the same learners' mastery-learning baseline (in process: it
    // asks the service nothing).
    through_grpc.median_vs_mastery_learning = policies
        .get(PolicyKind::MasteryLearning.name())
        .filter(|base| base.median_minutes > 0.0)
        .map_or(0.0, |base| {
            through_grpc.median_minutes / base.median_minutes - 1.0
        });
    let comparison = Comparison {
        through_grpc,
        in_process,
    };
    match args.format {
        OutputFormat::Json => output::print_json(&serde_json::to_value(&comparison)?),
        OutputFormat::Table => output::emit(table(&comparison)),
    }
    Ok(())
}

/// The two columns side by side.
fn table(c: &Comparison) -> String {
    let mut t = output::table(["adaptive policy", "through gRPC", "in process"]);
    let pct = |x: f64| format!("{:.1} %", 100.0 * x);
    // (label, figure, whether a share)
    type Row = (&'static str, fn(&PolicyReport) -> f64, bool);
    let rows: [Row; 9] = [
        ("median minutes", |r| r.median_minutes, false),
        (
            "median vs mastery learning",
            |r| r.median_vs_mastery_learning,
            true,
        ),
        ("p90 minutes", |r| r.p90_minutes, false),
        ("reached true mastery", |r| r.mastered_share, true),
        ("false certification", |r| r.false_certification_rate, true),
        (
            "near-useless (after 50 learners)",
            |r| r.useless_share_warm,
            true,
        ),
        ("useful share", |r| r.useful_share, true),
        ("modules per learner", |r| r.mean_modules, false),
        (
            "diagnostic items per learner",
            |r| r.mean_diagnostic_items,
            false,
        ),
    ];
    for (name, figure, share) in rows {
        let show = |r: &PolicyReport| {
            if share {
                pct(figure(r))
            } else {
                format!("{:.0}", figure(r))
            }
        };
        t.add_row(vec![
            name.to_string(),
            show(&c.through_grpc),
            show(&c.in_process),
        ]);
    }
    output::align_right(&mut t, &[1, 2]);
    format!("{} learners\n{t}", c.through_grpc.learners)
}

/// Plays every learner through a service started in process.
async fn through_grpc(
    options: &SimOptions,
    dir: &std::path::Path,
) -> Result<PolicyReport, BoxError> {
    let world = World::generate(options);
    let running = InProcess::start(dir).await?;
    let outcome = async {
        let service = &running.service;
        load_catalog(service, &world).await?;
        let mut outcomes = Vec::with_capacity(options.learners);
        let bar = output::bar(options.learners as u64, "learners through gRPC");
        for index in 0..options.learners {
            if options.refit_every > 0 && index > 0 && index % options.refit_every == 0 {
                fit(service, options.seed).await?;
            }
            let learner = world.learner(options, index);
            let play = Play::new(&world, &learner, options, index);
            play.enrol(service).await?;
            outcomes.push((index, play.run(service).await?));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok::<_, BoxError>(outcomes)
    }
    .await;
    running.stop().await;
    Ok(summarise_one(options, &outcome?))
}

/// The world's catalog (skills, modules, item bank) and one program of its
/// program skills.
async fn load_catalog(service: &Service, world: &World) -> Result<(), BoxError> {
    service
        .catalog()
        .import_catalog(pb::ImportCatalogRequest {
            skills: world.skills.values().cloned().map(Into::into).collect(),
            modules: world.modules.iter().cloned().map(Into::into).collect(),
            items: world.items.iter().cloned().map(Into::into).collect(),
        })
        .await
        .map_err(|s| describe("importing the catalog", &s))?;
    service
        .programs()
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(pb::Program {
                id: PROGRAM.into(),
                name: "Simulated program".into(),
                skill_ids: world.program.clone(),
                ..Default::default()
            }),
        })
        .await
        .map_err(|s| describe("the program", &s))?;
    Ok(())
}

/// `FitModel` with multilearn (as `spoc simulate --refit-every`), waited for.
async fn fit(service: &Service, seed: u64) -> Result<(), BoxError> {
    let mut client = service.mastery();
    client
        .fit_model(pb::FitModelRequest {
            multilearn: true,
            folds: 1,
            seed,
            ..Default::default()
        })
        .await
        .map_err(|s| describe("FitModel", &s))?;
    loop {
        let model = client
            .get_model(pb::GetModelRequest {})
            .await
            .map_err(|s| describe("GetModel", &s))?
            .into_inner();
        match pb::FitState::try_from(model.fit_state) {
            Ok(pb::FitState::Running) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Ok(pb::FitState::Failed) => return Err(format!("fit failed: {}", model.error).into()),
            _ => return Ok(()),
        }
    }
}

/// One learner's run: the hidden truth, and what the LMS sends.
struct Play<'a> {
    world: &'a World,
    learner: &'a SimLearner,
    options: &'a SimOptions,
    id: String,
    theta: Vec<f64>,
    best: Vec<f64>,
    minutes: u32,
    /// Events sent so far (their ids, and their times: [`event_time`]).
    sent: u64,
    rng: ChaCha8Rng,
    out: LearnerOutcome,
}

impl<'a> Play<'a> {
    fn new(
        world: &'a World,
        learner: &'a SimLearner,
        options: &'a SimOptions,
        index: usize,
    ) -> Self {
        Play {
            world,
            learner,
            options,
            id: learner_id(index),
            theta: learner.theta.clone(),
            best: learner.theta.clone(),
            minutes: 0,
            sent: 0,
            // The in-process run's stream of this learner.
            rng: rng(
                options.seed ^ 0x5eed_5eed_5eed_5eed,
                LEARNER_STREAM + index as u64,
            ),
            out: LearnerOutcome {
                minutes: 0,
                end: End::Capped,
                recommendations: 0,
                useful: 0,
                useless: 0,
                diagnostic_items: 0,
            },
        }
    }

    async fn enrol(&self, service: &Service) -> Result<(), BoxError> {
        let learner = pb::Learner {
            id: self.id.clone(),
            company_id: "simulated".into(),
            language: self.learner.language.clone(),
            time_zone: "UTC".into(),
            display_name: self.id.clone(),
        };
        enrol_all(
            service,
            [Enrolment {
                learner,
                program_id: PROGRAM.into(),
                enrolled_at: Some(timestamp(START)),
            }],
            || {},
        )
        .await
    }

    /// The LMS loop of `simulator::run`, with `RecommendNext` deciding.
    async fn run(mut self, service: &Service) -> Result<LearnerOutcome, BoxError> {
        let program: Vec<usize> = self
            .world
            .program
            .iter()
            .map(|s| self.world.skill_index[s])
            .collect();
        let mut answers = Vec::new();
        for &s in &program {
            self.quiz(s, self.options.placement_items, &mut answers);
        }
        self.send_answers(service, answers).await?;
        let mut exam_passed = false;
        loop {
            if program.iter().all(|&s| self.theta[s] >= MASTERY_THETA) {
                self.out.end = End::Mastered;
                break;
            }
            if self.minutes >= self.options.max_minutes {
                self.out.end = End::Capped;
                break;
            }
            let answer = service
                .remediation()
                .recommend_next(pb::RecommendNextRequest {
                    learner_id: self.id.clone(),
                    program_id: PROGRAM.into(),
                    count: 1,
                    exclude_module_ids: Vec::new(),
                })
                .await
                .map_err(|s| describe(&format!("RecommendNext for {}", self.id), &s))?
                .into_inner();
            let before = self.minutes;
            let Some(first) = answer.recommendations.first() else {
                if answer.status != pb::RecommendationStatus::AllMastered as i32 {
                    // Nothing usable: stuck, as the in-process run counts it.
                    self.out.end = End::Capped;
                    break;
                }
                if exam_passed {
                    let far = program.iter().any(|&s| self.theta[s] < FAR_BELOW);
                    self.out.end = if far { End::Stopped } else { End::Mastered };
                    break;
                }
                let mut answers = Vec::new();
                exam_passed = true;
                for &s in &program {
                    let items = self.options.quiz_items;
                    let right = self.quiz(s, items, &mut answers);
                    exam_passed &= quiz_passed(right, items);
                }
                self.send_answers(service, answers).await?;
                let spent = self.minutes - before;
                self.forget(spent, &program);
                continue;
            };
            exam_passed = false;
            if first.kind == pb::RecommendationKind::Diagnostic as i32 {
                let items: Vec<(usize, usize)> = first
                    .item_ids
                    .iter()
                    .filter_map(|id| self.world.item_index.get(id).copied())
                    .collect();
                self.out.diagnostic_items += items.len() as u32;
                let mut answers = Vec::new();
                for &(s, k) in &items {
                    self.ask(s, k, &mut answers);
                }
                self.send_answers(service, answers).await?;
                let practised: Vec<usize> = items.iter().map(|(s, _)| *s).collect();
                let spent = self.minutes - before;
                self.forget(spent, &practised);
            } else {
                let Some(&m) = self.world.module_index.get(&first.module_id) else {
                    return Err(format!("unknown module {:?}", first.module_id).into());
                };
                self.take_module(service, m).await?;
                let spent = self.minutes - before;
                let skills = self.world.module_skills[m].clone();
                self.forget(spent, &skills);
            }
        }
        self.out.minutes = self.minutes;
        Ok(self.out)
    }

    /// Module `m`: its minutes and teaching, its completion, then the
    /// LMS's quiz on each of its skills.
    async fn take_module(&mut self, service: &Service, m: usize) -> Result<(), BoxError> {
        let world = self.world;
        let skills = &world.module_skills[m];
        self.out.recommendations += 1;
        if skills.iter().any(|&s| world.learnable(s, &self.theta)) {
            self.out.useful += 1;
        }
        self.out.useless += u32::from(world.useless[m]);
        self.minutes += world.modules[m].duration_minutes;
        world.teach(self.learner, m, &mut self.theta, &mut self.rng);
        let at = self.now();
        self.sent += 1;
        service
            .remediation()
            .record_activity(pb::RecordActivityRequest {
                activities: vec![pb::ModuleActivity {
                    event_id: format!("{}-e{}", self.id, self.sent),
                    learner_id: self.id.clone(),
                    module_id: world.modules[m].id.clone(),
                    program_id: PROGRAM.into(),
                    kind: pb::ActivityKind::Completed as i32,
                    occurred_at: Some(timestamp(at)),
                    time_spent: Some(prost_types::Duration {
                        seconds: i64::from(world.modules[m].duration_minutes) * 60,
                        nanos: 0,
                    }),
                }],
            })
            .await
            .map_err(|s| describe(&format!("RecordActivity for {}", self.id), &s))?;
        let mut answers = Vec::new();
        for &s in skills {
            self.quiz(s, self.options.quiz_items, &mut answers);
        }
        self.send_answers(service, answers).await
    }

    /// `count` distinct items of skill `s`'s bank (as the in-process LMS
    /// draws them); returns the right answers.
    fn quiz(&mut self, s: usize, count: u32, answers: &mut Vec<pb::Attempt>) -> u32 {
        self.world
            .quiz_items(s, count, &mut self.rng)
            .into_iter()
            .map(|k| u32::from(self.ask(s, k, answers)))
            .sum()
    }

    /// One answer on item `k` of skill `s`, a minute of the learner's time.
    fn ask(&mut self, s: usize, k: usize, answers: &mut Vec<pb::Attempt>) -> bool {
        let right = self
            .world
            .answer(self.learner, s, k, self.theta[s], &mut self.rng);
        self.minutes += self.options.minutes_per_item;
        let at = self.now();
        self.sent += 1;
        answers.push(pb::Attempt {
            attempt_id: format!("{}-a{}", self.id, self.sent),
            learner_id: self.id.clone(),
            item_id: self.world.bank[s][k].id.clone(),
            skill_ids: vec![self.world.skill_ids[s].clone()],
            correct: right,
            score: None,
            occurred_at: Some(timestamp(at)),
            time_spent: Some(prost_types::Duration {
                seconds: i64::from(self.options.minutes_per_item) * 60,
                nanos: 0,
            }),
        });
        right
    }

    async fn send_answers(
        &self,
        service: &Service,
        attempts: Vec<pb::Attempt>,
    ) -> Result<(), BoxError> {
        if attempts.is_empty() {
            return Ok(());
        }
        service
            .mastery()
            .record_attempts(pb::RecordAttemptsRequest { attempts })
            .await
            .map_err(|s| describe(&format!("RecordAttempts for {}", self.id), &s))?;
        Ok(())
    }

    /// The service's time of the next event (see [`event_time`]).
    fn now(&self) -> Micros {
        event_time(self.minutes, self.sent)
    }

    fn forget(&mut self, minutes: u32, practised: &[usize]) {
        self.world.forget(
            self.learner,
            &mut self.theta,
            &mut self.best,
            minutes,
            practised,
        );
    }
}

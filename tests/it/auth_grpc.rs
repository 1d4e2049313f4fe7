//! Access control through gRPC: every RPC x every kind of caller (admin,
//! lms, manager, trainer, company, no key, unknown key, revoked key), in
//! and out of scope, asserting the exact code; company isolation in
//! reports; trainer scoping of alerts; key management; the first admin key.

use std::time::{Duration, Instant};

use crate::common::*;
use spoc_engine::api::pb;
use tonic::{Code, Status};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Admin,
    Lms,
    Manager,
    Trainer,
    Company,
    NoKey,
    UnknownKey,
    RevokedKey,
}

const CALLERS: [Caller; 8] = [
    Caller::Admin,
    Caller::Lms,
    Caller::Manager,
    Caller::Trainer,
    Caller::Company,
    Caller::NoKey,
    Caller::UnknownKey,
    Caller::RevokedKey,
];

/// The objects a call names: in or out of the scoped callers' scope.
#[derive(Debug, Clone)]
struct Ids {
    learner: String,
    cohort: String,
    program: String,
    alert: String,
}

/// Two programs of 16 learners, one cohort each, one blocking-point alert
/// in each cohort, and a key per caller. The trainer teaches cohort 1; the
/// company key is for `co0`, which has learners in program 1 only.
struct World {
    server: TestServer,
    keys: Vec<(Caller, Option<String>)>,
    /// In scope of both the trainer and the company.
    inside: Ids,
    /// Out of the trainer's scope (program 2).
    trainer_out: Ids,
    /// Out of the company's scope: a colleague of another company in the
    /// same cohort, and program 2 where `co0` has nobody.
    company_out: Ids,
    cohort1: String,
    cohort2: String,
}

async fn form(server: &TestServer, program: &str) -> String {
    server.form_one_cohort(program).await
}

async fn fail(server: &TestServer, learner: &str, tag: &str) {
    let attempts = (0..4)
        .map(|k| attempt(&format!("{tag}-{k}"), learner, &["a"], false, t0() + k))
        .collect();
    server.record(attempts).await;
}

/// The blocking-point alert of `learner` once raised.
async fn alert_of(server: &TestServer, learner: &str) -> pb::Alert {
    let request = pb::ListAlertsRequest {
        learner_id: learner.into(),
        kind: pb::AlertKind::BlockingPoint as i32,
        ..Default::default()
    };
    server
        .alerts_when(request, |a| !a.is_empty())
        .await
        .remove(0)
}

async fn world() -> World {
    let server = TestServer::start().await;
    let p1: Vec<pb::Learner> = staff("l", 16, "co", 5);
    let p2: Vec<pb::Learner> = staff("m", 16, "other", 5);
    seed_cohort_program(&server, "p1", None, &p1).await;
    seed_cohort_program(&server, "p2", None, &p2).await;
    server
        .catalog()
        .await
        .upsert_module(pb::UpsertModuleRequest {
            module: Some(module("m-a", &["a"], pb::ModuleFormat::Video, 10)),
        })
        .await
        .expect("module");
    server
        .catalog()
        .await
        .upsert_items(pb::UpsertItemsRequest {
            items: vec![pb::Item {
                external_ids: Vec::new(),
                pass_mark: None,
                id: "q-seed".into(),
                skill_ids: vec!["a".into()],
                title: String::new(),
            }],
        })
        .await
        .expect("item");
    let cohort1 = form(&server, "p1").await;
    let cohort2 = form(&server, "p2").await;
    fail(&server, "l00", "f-l00").await;
    fail(&server, "m00", "f-m00").await;
    let alert1 = alert_of(&server, "l00").await;
    let alert2 = alert_of(&server, "m00").await;
    assert_eq!(alert1.cohort_id, cohort1);
    assert_eq!(alert2.cohort_id, cohort2);

    let revoked = server.key(pb::ApiKeyRole::Lms, &[], "").await;
    let revoked_id = revoked.split('_').nth(1).unwrap().to_string();
    server
        .admin()
        .await
        .revoke_api_key(pb::RevokeApiKeyRequest { key_id: revoked_id })
        .await
        .expect("revoke");
    let keys = vec![
        (Caller::Admin, Some(server.admin_key.clone())),
        (
            Caller::Lms,
            Some(server.key(pb::ApiKeyRole::Lms, &[], "").await),
        ),
        (
            Caller::Manager,
            Some(server.key(pb::ApiKeyRole::Manager, &[], "").await),
        ),
        (
            Caller::Trainer,
            Some(server.key(pb::ApiKeyRole::Trainer, &[&cohort1], "").await),
        ),
        (
            Caller::Company,
            Some(server.key(pb::ApiKeyRole::Company, &[], "co0").await),
        ),
        (Caller::NoKey, None),
        (
            Caller::UnknownKey,
            Some(format!("spoc_{}_{}", "0".repeat(16), "1".repeat(64))),
        ),
        (Caller::RevokedKey, Some(revoked)),
    ];
    let ids = |learner: &str, cohort: &str, program: &str, alert: &str| Ids {
        learner: learner.into(),
        cohort: cohort.into(),
        program: program.into(),
        alert: alert.into(),
    };
    World {
        inside: ids("l00", &cohort1, "p1", &alert1.id),
        trainer_out: ids("m00", &cohort2, "p2", &alert2.id),
        company_out: ids("l01", &cohort2, "p2", &alert2.id),
        cohort1,
        cohort2,
        keys,
        server,
    }
}

impl World {
    fn key(&self, caller: Caller) -> Option<&str> {
        self.keys
            .iter()
            .find(|(c, _)| *c == caller)
            .and_then(|(_, k)| k.as_deref())
    }

    async fn channel(&self, caller: Caller) -> AuthChannel {
        self.server.channel_with(self.key(caller)).await
    }
}

/// Every RPC of every service, plus a method nobody implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    CreateApiKey,
    RevokeApiKey,
    ListApiKeys,
    UpsertSkill,
    GetSkill,
    ListSkills,
    UpsertModule,
    GetModule,
    ListModules,
    ImportCatalog,
    UpsertItems,
    GetItem,
    ListItems,
    ListUnmappedActivities,
    MapActivity,
    UpsertProgram,
    GetProgram,
    ListPrograms,
    UpsertLearner,
    GetLearner,
    ListLearners,
    EnrollLearner,
    ListEnrolments,
    ExportLearner,
    EraseLearner,
    CreateBackup,
    FormCohorts,
    AssignLateEnrolment,
    MoveLearner,
    LockCohort,
    ListCohorts,
    GetCohort,
    RecordAttempts,
    GetMastery,
    FitModel,
    GetModel,
    RecommendNext,
    RecordActivity,
    GetCohortReport,
    GetProgramReport,
    GetCertification,
    ListAlerts,
    GetAlert,
    AcknowledgeAlert,
    WatchAlerts,
    ResolveAlert,
    CreateSubscription,
    ListSubscriptions,
    DeleteSubscription,
    ListDeadLetters,
    RedeliverDeadLetters,
    DeclarePause,
    EndPause,
    ListPauses,
    WithdrawLearner,
    GetAlertDigest,
    UnknownMethod,
}

use Caller::{Admin as A, Company as C, Lms as L, Manager as M, Trainer as T};

/// The matrix: each RPC, the callers allowed (besides the refusals of
/// missing, unknown and revoked keys), whether trainer and company keys
/// are scope-checked on it, and the code an allowed caller gets. Written
/// from the README's Security table, not from the code's table.
const MATRIX: &[(Rpc, &[Caller], Code)] = &[
    (Rpc::CreateApiKey, &[A], Code::Ok),
    (Rpc::RevokeApiKey, &[A], Code::Ok),
    (Rpc::ListApiKeys, &[A], Code::Ok),
    (Rpc::UpsertSkill, &[A, M], Code::Ok),
    (Rpc::GetSkill, &[A, M], Code::Ok),
    (Rpc::ListSkills, &[A, M], Code::Ok),
    (Rpc::UpsertModule, &[A, M], Code::Ok),
    (Rpc::GetModule, &[A, M], Code::Ok),
    (Rpc::ListModules, &[A, M], Code::Ok),
    (Rpc::ImportCatalog, &[A, M], Code::Ok),
    (Rpc::UpsertItems, &[A, M, L], Code::Ok),
    (Rpc::GetItem, &[A, M], Code::Ok),
    (Rpc::ListItems, &[A, M], Code::Ok),
    (Rpc::ListUnmappedActivities, &[A, M, L], Code::Ok),
    // Mapping to an unknown module: NOT_FOUND proves the key passed.
    (Rpc::MapActivity, &[A, M, L], Code::NotFound),
    (Rpc::UpsertProgram, &[A, M], Code::Ok),
    (Rpc::GetProgram, &[A, M], Code::Ok),
    (Rpc::ListPrograms, &[A, M], Code::Ok),
    (Rpc::UpsertLearner, &[A, M, L], Code::Ok),
    (Rpc::GetLearner, &[A, M, L], Code::Ok),
    (Rpc::ListLearners, &[A, M], Code::Ok),
    (Rpc::EnrollLearner, &[A, M, L], Code::Ok),
    (Rpc::ListEnrolments, &[A, M, L], Code::Ok),
    // GDPR and backups are admin business; the erase names nobody, so the
    // matrix keeps its world (NOT_FOUND proves the key passed).
    (Rpc::ExportLearner, &[A], Code::Ok),
    (Rpc::EraseLearner, &[A], Code::NotFound),
    (Rpc::CreateBackup, &[A], Code::Ok),
    (Rpc::FormCohorts, &[A, M], Code::Ok),
    (Rpc::AssignLateEnrolment, &[A, M, L], Code::Ok),
    (Rpc::MoveLearner, &[A, M], Code::Ok),
    (Rpc::LockCohort, &[A, M], Code::Ok),
    (Rpc::ListCohorts, &[A, M], Code::Ok),
    (Rpc::GetCohort, &[A, M], Code::Ok),
    (Rpc::RecordAttempts, &[A, L], Code::Ok),
    (Rpc::GetMastery, &[A, L, T, C], Code::Ok),
    // An invalid fit request: proves the key passed without starting a fit.
    (Rpc::FitModel, &[A, M], Code::InvalidArgument),
    (Rpc::GetModel, &[A, M], Code::Ok),
    (Rpc::RecommendNext, &[A, L], Code::Ok),
    (Rpc::RecordActivity, &[A, L], Code::Ok),
    (Rpc::GetCohortReport, &[A, M, T, C], Code::Ok),
    (Rpc::GetProgramReport, &[A, M, C], Code::Ok),
    (Rpc::GetCertification, &[A, M, T, C], Code::Ok),
    (Rpc::ListAlerts, &[A, M, T], Code::Ok),
    (Rpc::GetAlert, &[A, M, T], Code::Ok),
    (Rpc::AcknowledgeAlert, &[A, T], Code::Ok),
    (Rpc::WatchAlerts, &[A, M, T], Code::Ok),
    (Rpc::ResolveAlert, &[A, T], Code::Ok),
    // A target the server refuses (loopback, INVALID_ARGUMENT) proves the
    // key passed role and scope without subscribing anything; the
    // deletion names no subscription (NOT_FOUND proves the key passed).
    (Rpc::CreateSubscription, &[A, M, T], Code::InvalidArgument),
    (Rpc::ListSubscriptions, &[A, M, T], Code::Ok),
    (Rpc::DeleteSubscription, &[A, M, T], Code::NotFound),
    (Rpc::ListDeadLetters, &[A, M, T], Code::Ok),
    (Rpc::RedeliverDeadLetters, &[A, M, T], Code::NotFound),
    // Pauses: the LMS or a trainer of the learner's cohort.
    (Rpc::DeclarePause, &[A, L, T], Code::Ok),
    // An unknown pause: NOT_FOUND proves the key passed.
    (Rpc::EndPause, &[A, L, T], Code::NotFound),
    (Rpc::ListPauses, &[A, M, L, T], Code::Ok),
    // An unknown program: NOT_FOUND proves the key passed, and nobody of
    // the shared world is withdrawn.
    (Rpc::WithdrawLearner, &[A, M, L], Code::NotFound),
    (Rpc::GetAlertDigest, &[A, M, T], Code::Ok),
    // Unknown methods are for admins only (who then get UNIMPLEMENTED).
    (Rpc::UnknownMethod, &[A], Code::Unimplemented),
];

fn code<T>(result: Result<tonic::Response<T>, Status>) -> Result<(), Status> {
    result.map(|_| ())
}

/// Makes one call of `rpc` naming `ids`; the code is what matters.
async fn call(rpc: Rpc, ch: AuthChannel, ids: &Ids, world: &World) -> Result<(), Status> {
    use pb::admin_service_client::AdminServiceClient as Admin;
    use pb::alert_service_client::AlertServiceClient as Alerts;
    use pb::catalog_service_client::CatalogServiceClient as Catalog;
    use pb::cohort_service_client::CohortServiceClient as Cohorts;
    use pb::learner_service_client::LearnerServiceClient as Learners;
    use pb::mastery_service_client::MasteryServiceClient as Mastery;
    use pb::program_service_client::ProgramServiceClient as Programs;
    use pb::remediation_service_client::RemediationServiceClient as Remediation;
    use pb::report_service_client::ReportServiceClient as Reports;
    let program = |id: &str| pb::Program {
        id: id.into(),
        name: format!("Program {id}"),
        skill_ids: vec!["a".into()],
        ..Default::default()
    };
    match rpc {
        Rpc::CreateApiKey => code(
            Admin::new(ch)
                .create_api_key(pb::CreateApiKeyRequest {
                    role: pb::ApiKeyRole::Lms as i32,
                    display_name: "matrix".into(),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::RevokeApiKey => {
            let id = world.key(Caller::RevokedKey).unwrap().split('_').nth(1);
            code(
                Admin::new(ch)
                    .revoke_api_key(pb::RevokeApiKeyRequest {
                        key_id: id.unwrap().into(),
                    })
                    .await,
            )
        }
        Rpc::ListApiKeys => code(
            Admin::new(ch)
                .list_api_keys(pb::ListApiKeysRequest::default())
                .await,
        ),
        Rpc::UpsertSkill => code(
            Catalog::new(ch)
                .upsert_skill(pb::UpsertSkillRequest {
                    skill: Some(skill("z", &["a"])),
                })
                .await,
        ),
        Rpc::GetSkill => code(
            Catalog::new(ch)
                .get_skill(pb::GetSkillRequest {
                    skill_id: "a".into(),
                })
                .await,
        ),
        Rpc::ListSkills => code(
            Catalog::new(ch)
                .list_skills(pb::ListSkillsRequest::default())
                .await,
        ),
        Rpc::UpsertModule => code(
            Catalog::new(ch)
                .upsert_module(pb::UpsertModuleRequest {
                    module: Some(module("m-a", &["a"], pb::ModuleFormat::Video, 10)),
                })
                .await,
        ),
        Rpc::GetModule => code(
            Catalog::new(ch)
                .get_module(pb::GetModuleRequest {
                    module_id: "m-a".into(),
                })
                .await,
        ),
        Rpc::ListModules => code(
            Catalog::new(ch)
                .list_modules(pb::ListModulesRequest::default())
                .await,
        ),
        Rpc::ImportCatalog => code(
            Catalog::new(ch)
                .import_catalog(pb::ImportCatalogRequest {
                    skills: vec![skill("y", &[])],
                    modules: vec![],
                    items: vec![],
                })
                .await,
        ),
        Rpc::UpsertItems => code(
            Catalog::new(ch)
                .upsert_items(pb::UpsertItemsRequest {
                    items: vec![pb::Item {
                        external_ids: Vec::new(),
                        pass_mark: None,
                        id: "q-a".into(),
                        skill_ids: vec!["a".into()],
                        title: "Question on a".into(),
                    }],
                })
                .await,
        ),
        Rpc::GetItem => code(
            Catalog::new(ch)
                .get_item(pb::GetItemRequest {
                    item_id: "q-seed".into(),
                })
                .await,
        ),
        Rpc::ListItems => code(
            Catalog::new(ch)
                .list_items(pb::ListItemsRequest::default())
                .await,
        ),
        Rpc::ListUnmappedActivities => code(
            Catalog::new(ch)
                .list_unmapped_activities(pb::ListUnmappedActivitiesRequest::default())
                .await,
        ),
        Rpc::MapActivity => code(
            Catalog::new(ch)
                .map_activity(pb::MapActivityRequest {
                    activity_id: "https://lms.example.com/x".into(),
                    target: Some(pb::map_activity_request::Target::ModuleId(
                        "no-such-module".into(),
                    )),
                })
                .await,
        ),
        Rpc::UpsertProgram => code(
            Programs::new(ch)
                .upsert_program(pb::UpsertProgramRequest {
                    program: Some(program("p3")),
                })
                .await,
        ),
        Rpc::GetProgram => code(
            Programs::new(ch)
                .get_program(pb::GetProgramRequest {
                    program_id: ids.program.clone(),
                })
                .await,
        ),
        Rpc::ListPrograms => code(
            Programs::new(ch)
                .list_programs(pb::ListProgramsRequest::default())
                .await,
        ),
        Rpc::UpsertLearner => code(
            Learners::new(ch)
                .upsert_learner(pb::UpsertLearnerRequest {
                    learner: Some(learner("z1", "co9")),
                })
                .await,
        ),
        Rpc::GetLearner => code(
            Learners::new(ch)
                .get_learner(pb::GetLearnerRequest {
                    learner_id: ids.learner.clone(),
                })
                .await,
        ),
        Rpc::ListLearners => code(
            Learners::new(ch)
                .list_learners(pb::ListLearnersRequest::default())
                .await,
        ),
        Rpc::EnrollLearner => code(
            Learners::new(ch)
                .enroll_learner(pb::EnrollLearnerRequest {
                    enrolled_at: None,
                    learner_id: "l00".into(),
                    program_id: "p1".into(),
                })
                .await,
        ),
        Rpc::ListEnrolments => code(
            Learners::new(ch)
                .list_enrolments(pb::ListEnrolmentsRequest {
                    program_id: ids.program.clone(),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::ExportLearner => code(
            Learners::new(ch)
                .export_learner(pb::ExportLearnerRequest {
                    learner_id: ids.learner.clone(),
                })
                .await,
        ),
        Rpc::EraseLearner => code(
            Learners::new(ch)
                .erase_learner(pb::EraseLearnerRequest {
                    learner_id: "nobody".into(),
                })
                .await,
        ),
        Rpc::CreateBackup => code(
            pb::backup_service_client::BackupServiceClient::new(ch)
                .create_backup(pb::CreateBackupRequest {})
                .await,
        ),
        Rpc::FormCohorts => code(
            Cohorts::new(ch)
                .form_cohorts(pb::FormCohortsRequest {
                    program_id: "p1".into(),
                    objective: 0,
                    seed: 1,
                    dry_run: true,
                })
                .await,
        ),
        Rpc::AssignLateEnrolment => code(
            Cohorts::new(ch)
                .assign_late_enrolment(pb::AssignLateEnrolmentRequest {
                    program_id: "p1".into(),
                    learner_id: "l00".into(),
                })
                .await,
        ),
        Rpc::MoveLearner => code(
            Cohorts::new(ch)
                .move_learner(pb::MoveLearnerRequest {
                    program_id: "p1".into(),
                    learner_id: "l00".into(),
                    target_cohort_id: world.cohort1.clone(),
                })
                .await,
        ),
        Rpc::LockCohort => code(
            Cohorts::new(ch)
                .lock_cohort(pb::LockCohortRequest {
                    cohort_id: world.cohort1.clone(),
                    locked: false,
                })
                .await,
        ),
        Rpc::ListCohorts => code(
            Cohorts::new(ch)
                .list_cohorts(pb::ListCohortsRequest {
                    program_id: "p1".into(),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::GetCohort => code(
            Cohorts::new(ch)
                .get_cohort(pb::GetCohortRequest {
                    cohort_id: ids.cohort.clone(),
                })
                .await,
        ),
        Rpc::RecordAttempts => code(
            Mastery::new(ch)
                .record_attempts(pb::RecordAttemptsRequest {
                    attempts: vec![attempt("matrix-1", "l05", &["c"], true, t0())],
                })
                .await,
        ),
        Rpc::GetMastery => code(
            Mastery::new(ch)
                .get_mastery(pb::GetMasteryRequest {
                    learner_id: ids.learner.clone(),
                    skill_ids: vec![],
                })
                .await,
        ),
        Rpc::FitModel => code(
            Mastery::new(ch)
                .fit_model(pb::FitModelRequest {
                    folds: 99,
                    ..Default::default()
                })
                .await,
        ),
        Rpc::GetModel => code(Mastery::new(ch).get_model(pb::GetModelRequest {}).await),
        Rpc::RecommendNext => code(
            Remediation::new(ch)
                .recommend_next(pb::RecommendNextRequest {
                    learner_id: "l05".into(),
                    program_id: "p1".into(),
                    count: 0,
                    exclude_module_ids: vec![],
                })
                .await,
        ),
        Rpc::RecordActivity => code(
            Remediation::new(ch)
                .record_activity(pb::RecordActivityRequest {
                    activities: vec![activity("matrix-ev", "l05", "m-a", false, t0(), 1)],
                })
                .await,
        ),
        Rpc::GetCohortReport => code(
            Reports::new(ch)
                .get_cohort_report(pb::GetCohortReportRequest {
                    cohort_id: ids.cohort.clone(),
                    program_id: String::new(),
                    format: 0,
                })
                .await,
        ),
        Rpc::GetProgramReport => code(
            Reports::new(ch)
                .get_program_report(pb::GetProgramReportRequest {
                    program_id: ids.program.clone(),
                    format: 0,
                })
                .await,
        ),
        Rpc::GetCertification => code(
            Reports::new(ch)
                .get_certification(pb::GetCertificationRequest {
                    learner_id: ids.learner.clone(),
                    program_id: "p1".into(),
                })
                .await,
        ),
        Rpc::ListAlerts => code(
            Alerts::new(ch)
                .list_alerts(pb::ListAlertsRequest {
                    cohort_id: ids.cohort.clone(),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::GetAlert => code(
            Alerts::new(ch)
                .get_alert(pb::GetAlertRequest {
                    alert_id: ids.alert.clone(),
                })
                .await,
        ),
        Rpc::AcknowledgeAlert => code(
            Alerts::new(ch)
                .acknowledge_alert(pb::AcknowledgeAlertRequest {
                    alert_id: ids.alert.clone(),
                    by: "trainer-1".into(),
                    note: String::new(),
                })
                .await,
        ),
        Rpc::ResolveAlert => code(
            Alerts::new(ch)
                .resolve_alert(pb::ResolveAlertRequest {
                    alert_id: ids.alert.clone(),
                    by: "trainer-1".into(),
                    note: String::new(),
                })
                .await,
        ),
        Rpc::WatchAlerts => code(
            Alerts::new(ch)
                .watch_alerts(pb::WatchAlertsRequest {
                    cohort_ids: vec![ids.cohort.clone()],
                    program_id: String::new(),
                    after_sequence: 0,
                })
                .await,
        ),
        Rpc::CreateSubscription => code(
            Alerts::new(ch)
                .create_subscription(pb::CreateSubscriptionRequest {
                    url: "https://127.0.0.1/hook".into(),
                    program_ids: vec![ids.program.clone()],
                    delivery: pb::SubscriptionDelivery::Immediate as i32,
                    format: pb::SubscriptionFormat::Cloudevents as i32,
                    ..Default::default()
                })
                .await,
        ),
        Rpc::DeclarePause => code(
            Alerts::new(ch)
                .declare_pause(pb::DeclarePauseRequest {
                    learner_id: ids.learner.clone(),
                    program_id: ids.program.clone(),
                    starts_at: None,
                    ends_at: Some(prost_types::Timestamp {
                        seconds: t0() + 7 * 86_400,
                        nanos: 0,
                    }),
                    note: String::new(),
                    by: "trainer-1".into(),
                })
                .await,
        ),
        Rpc::EndPause => code(
            Alerts::new(ch)
                .end_pause(pb::EndPauseRequest {
                    learner_id: ids.learner.clone(),
                    pause_id: "pause-0000000000000000".into(),
                })
                .await,
        ),
        Rpc::ListPauses => code(
            Alerts::new(ch)
                .list_pauses(pb::ListPausesRequest {
                    learner_id: ids.learner.clone(),
                    ..Default::default()
                })
                .await,
        ),
        Rpc::ListSubscriptions => code(
            Alerts::new(ch)
                .list_subscriptions(pb::ListSubscriptionsRequest::default())
                .await,
        ),
        Rpc::DeleteSubscription => code(
            Alerts::new(ch)
                .delete_subscription(pb::DeleteSubscriptionRequest {
                    subscription_id: "sub_0000000000000000".into(),
                })
                .await,
        ),
        Rpc::ListDeadLetters => code(
            Alerts::new(ch)
                .list_dead_letters(pb::ListDeadLettersRequest::default())
                .await,
        ),
        Rpc::RedeliverDeadLetters => code(
            Alerts::new(ch)
                .redeliver_dead_letters(pb::RedeliverDeadLettersRequest {
                    subscription_id: "sub_0000000000000000".into(),
                    message_ids: vec![],
                })
                .await,
        ),
        Rpc::WithdrawLearner => code(
            Alerts::new(ch)
                .withdraw_learner(pb::WithdrawLearnerRequest {
                    learner_id: ids.learner.clone(),
                    program_id: "nope".into(),
                    withdrawn_at: None,
                    note: String::new(),
                    by: "lms".into(),
                })
                .await,
        ),
        Rpc::GetAlertDigest => code(
            Alerts::new(ch)
                .get_alert_digest(pb::GetAlertDigestRequest {
                    program_id: ids.program.clone(),
                    cohort_id: ids.cohort.clone(),
                })
                .await,
        ),
        Rpc::UnknownMethod => {
            let mut grpc = tonic::client::Grpc::new(ch);
            grpc.ready()
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                "/spoc.v1.NoSuchService/NoSuchMethod",
            );
            let codec = tonic_prost::ProstCodec::<(), ()>::default();
            code(grpc.unary(tonic::Request::new(()), path, codec).await)
        }
    }
}

/// Scoped methods whose requests name no program, cohort, learner or
/// alert: a scoped key sees only its own subscriptions there
/// (`tests/it/webhooks.rs`), so there is no out-of-scope case.
const NAMES_NOTHING: [Rpc; 2] = [Rpc::ListSubscriptions, Rpc::ListDeadLetters];

/// Which code `caller` must get on `rpc` naming `ids` (`out`: out of the
/// scoped callers' scope).
fn expected(caller: Caller, allowed: &[Caller], success: Code, out: bool) -> Code {
    match caller {
        Caller::NoKey | Caller::UnknownKey | Caller::RevokedKey => Code::Unauthenticated,
        c if !allowed.contains(&c) => Code::PermissionDenied,
        Caller::Trainer | Caller::Company if out => Code::NotFound,
        _ => success,
    }
}

/// Every RPC x every caller, in scope and (for trainer and company keys)
/// out of scope, gets exactly the code the Security table promises.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_every_caller_in_and_out_of_scope() {
    let world = world().await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (rpc, allowed, success) in MATRIX {
        for caller in CALLERS {
            let mut cases = vec![(&world.inside, false)];
            // These name no program, cohort, learner or alert: a scoped
            // key sees only its own subscriptions there (tests/it/webhooks.rs).
            let names_nothing = NAMES_NOTHING.contains(rpc);
            match caller {
                _ if names_nothing => {}
                Caller::Trainer => cases.push((&world.trainer_out, true)),
                Caller::Company => cases.push((&world.company_out, true)),
                _ => {}
            }
            for (ids, out) in cases {
                let ch = world.channel(caller).await;
                let got = match call(*rpc, ch, ids, &world).await {
                    Ok(()) => Code::Ok,
                    Err(status) => status.code(),
                };
                let want = expected(caller, allowed, *success, out);
                checked += 1;
                if got != want {
                    failures.push(format!(
                        "{rpc:?} by {caller:?} ({}): got {got:?}, want {want:?}",
                        if out { "out of scope" } else { "in scope" }
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} cases wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // 39 rows x (8 callers + 2 out-of-scope cases).
    assert_eq!(checked, MATRIX.len() * 10 - NAMES_NOTHING.len() * 2);
    world.server.stop().await;
}

/// Health checking and reflection answer without any key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_need_no_key() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let server = TestServer::start().await;
    let channel = server.channel_with(None).await;
    let health = HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "spoc.v1.AdminService".into(),
        })
        .await
        .expect("health without a key")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection without a key")
        .into_inner();
    let reply = replies.message().await.unwrap().expect("one reply");
    assert!(format!("{reply:?}").contains("spoc.v1.AdminService"));
    // A real method without a key is refused.
    let status =
        pb::mastery_service_client::MasteryServiceClient::new(server.channel_with(None).await)
            .get_model(pb::GetModelRequest {})
            .await
            .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    server.stop().await;
}

/// A company key's cohort report keeps the aggregates of the whole cohort
/// but lists none of another company's learners (not in the rendered CSV
/// either); its program report counts its own employees only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn company_reports_never_show_another_companys_learners() {
    let world = world().await;
    let server = &world.server;
    // l00 (co0) and l01 (co1) master every program skill: both certified.
    let mut attempts = Vec::new();
    for learner in ["l00", "l01"] {
        for (k, skill) in ["a", "b", "c"].iter().cycle().take(60).enumerate() {
            attempts.push(attempt(
                &format!("cert-{learner}-{k}"),
                learner,
                &[skill],
                true,
                t0() + 100 + k as i64,
            ));
        }
    }
    server.record(attempts).await;

    let request = pb::GetCohortReportRequest {
        cohort_id: world.cohort1.clone(),
        program_id: String::new(),
        format: pb::ReportFormat::Csv as i32,
    };
    let full = server
        .reports()
        .await
        .get_cohort_report(request.clone())
        .await
        .unwrap()
        .into_inner();
    let company =
        pb::report_service_client::ReportServiceClient::new(world.channel(Caller::Company).await)
            .get_cohort_report(request)
            .await
            .unwrap()
            .into_inner();
    let certified = |r: &pb::GetReportResponse| -> Vec<String> {
        r.report
            .as_ref()
            .unwrap()
            .certified
            .iter()
            .map(|c| c.learner_id.clone())
            .collect()
    };
    assert_eq!(certified(&full), ["l00", "l01"]);
    assert_eq!(certified(&company), ["l00"]);
    assert!(full.rendered.contains("l01"));
    assert!(!company.rendered.contains("l01"), "{}", company.rendered);
    // Aggregates stay those of the whole cohort.
    assert_eq!(company.report.as_ref().unwrap().learner_count, 16);

    let program = pb::GetProgramReportRequest {
        program_id: "p1".into(),
        format: 0,
    };
    let mut company_reports =
        pb::report_service_client::ReportServiceClient::new(world.channel(Caller::Company).await);
    let own = company_reports
        .get_program_report(program.clone())
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    // co0 is every fifth learner of program 1: l00, l05, l10, l15.
    assert_eq!(own.learner_count, 4);
    assert_eq!(own.certified.len(), 1);
    assert_eq!(own.certified[0].learner_id, "l00");
    let whole = server
        .reports()
        .await
        .get_program_report(program)
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(whole.learner_count, 16);
    // Mastery and certification of a colleague of another company: as if
    // the learner did not exist.
    let status = company_reports
        .get_certification(pb::GetCertificationRequest {
            learner_id: "l01".into(),
            program_id: "p1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    world.server.stop().await;
}

/// A trainer lists and watches only the alerts of the cohorts they teach,
/// and reads the mastery of those cohorts' learners only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_sees_alerts_and_mastery_of_their_cohorts_only() {
    let world = world().await;
    let ch = world.channel(Caller::Trainer).await;
    let mut alerts = pb::alert_service_client::AlertServiceClient::new(ch.clone());
    let listed = alerts
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|a| a.cohort_id == world.cohort1),
        "{listed:#?}"
    );
    let everything = world
        .server
        .list_alerts(pb::ListAlertsRequest::default())
        .await;
    assert!(everything.iter().any(|a| a.cohort_id == world.cohort2));

    // Watching program 1 whole: the snapshot holds cohort 1's alerts only.
    let mut stream = alerts
        .watch_alerts(pb::WatchAlertsRequest {
            cohort_ids: vec![],
            program_id: "p1".into(),
            after_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("an event")
        .unwrap()
        .unwrap();
    assert_eq!(first.alert.unwrap().cohort_id, world.cohort1);
    // Program 2 has none of the trainer's cohorts: not found.
    let status = alerts
        .watch_alerts(pb::WatchAlertsRequest {
            cohort_ids: vec![],
            program_id: "p2".into(),
            after_sequence: 0,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::NotFound);

    let mut mastery = pb::mastery_service_client::MasteryServiceClient::new(ch);
    for learner in ["l00", "l07", "l15"] {
        let got = mastery
            .get_mastery(pb::GetMasteryRequest {
                learner_id: learner.into(),
                skill_ids: vec![],
            })
            .await;
        assert!(got.is_ok(), "{learner}: {got:?}");
    }
    for learner in ["m00", "nobody"] {
        let status = mastery
            .get_mastery(pb::GetMasteryRequest {
                learner_id: learner.into(),
                skill_ids: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{learner}");
    }
    // A malformed id is a bad request for a scoped key too, named, not a
    // NOT_FOUND of the scope check.
    let status = mastery
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "x".repeat(300),
            skill_ids: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("learner_id"), "{status:?}");
    world.server.stop().await;
}

/// Keys: the secret is shown once and never listed; a revoked key stops
/// at once; the last admin key cannot be revoked; scopes must fit roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_listed_and_revoked() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let created = admin
        .create_api_key(pb::CreateApiKeyRequest {
            role: pb::ApiKeyRole::Trainer as i32,
            cohort_ids: vec!["p/v1/c002".into(), "p/v1/c001".into()],
            company_id: String::new(),
            display_name: "Trainer Alice".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let key = created.api_key.unwrap();
    let secret_part = created.secret.rsplit('_').next().unwrap().to_string();
    assert_eq!(created.secret, format!("spoc_{}_{secret_part}", key.id));
    assert_eq!(key.cohort_ids, ["p/v1/c001", "p/v1/c002"]);
    assert_eq!(key.role, pb::ApiKeyRole::Trainer as i32);

    let listed = admin
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.api_keys.len(), 2, "first admin key and the new one");
    assert!(!format!("{listed:?}").contains(&secret_part));
    let page = admin
        .list_api_keys(pb::ListApiKeysRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.api_keys.len(), 1);
    let rest = admin
        .list_api_keys(pb::ListApiKeysRequest {
            page_size: 1,
            page_token: page.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.api_keys.len(), 1);
    assert_ne!(rest.api_keys[0].id, page.api_keys[0].id);
    assert!(rest.next_page_token.is_empty());

    // The trainer key works, then stops working as soon as it is revoked.
    let mut as_trainer = pb::alert_service_client::AlertServiceClient::new(
        server.channel_with(Some(&created.secret)).await,
    );
    as_trainer
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .expect("trainer lists alerts");
    let revoked = admin
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: key.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    let status = as_trainer
        .list_alerts(pb::ListAlertsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // A wrong secret for a real key id is unknown too.
    let admin_id = server.admin_key.split('_').nth(1).unwrap();
    let forged = format!("spoc_{admin_id}_{}", "f".repeat(64));
    let status =
        pb::admin_service_client::AdminServiceClient::new(server.channel_with(Some(&forged)).await)
            .list_api_keys(pb::ListApiKeysRequest::default())
            .await
            .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let status = admin
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: admin_id.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = admin
        .revoke_api_key(pb::RevokeApiKeyRequest {
            key_id: "0123456789abcdef".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    for (role, cohorts, company, field) in [
        (pb::ApiKeyRole::Trainer, vec![], "", "cohort_ids"),
        (pb::ApiKeyRole::Company, vec![], "", "company_id"),
        (pb::ApiKeyRole::Lms, vec![], "acme", "company_id"),
        (pb::ApiKeyRole::Unspecified, vec![], "", "role"),
        (
            pb::ApiKeyRole::Trainer,
            vec!["c".to_string()],
            "acme",
            "company_id",
        ),
    ] {
        let status = admin
            .create_api_key(pb::CreateApiKeyRequest {
                role: role as i32,
                cohort_ids: cohorts,
                company_id: company.into(),
                display_name: String::new(),
            })
            .await
            .unwrap_err();
        assert_invalid_field(&status, field);
    }
    // Keys survive a restart, revocations too.
    let temp = server.stop().await;
    let server = TestServer::start_in(temp.as_ref().unwrap().path()).await;
    let status = pb::alert_service_client::AlertServiceClient::new(
        server.channel_with(Some(&created.secret)).await,
    )
    .list_alerts(pb::ListAlertsRequest::default())
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    server
        .admin()
        .await
        .list_api_keys(pb::ListApiKeysRequest::default())
        .await
        .expect("the first admin key still works");
    server.stop().await;
}

/// The first admin key is written once, mode 0600, and never again: not on
/// restart, not even when the file was deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_key_is_written_once_with_mode_0600() {
    let server = TestServer::start().await;
    let path = server.data_dir.join("admin-key");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with("spoc_") && written.ends_with('\n'));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let temp = server.stop().await.unwrap();

    // Restart: the file is left as it is.
    let server = TestServer::start_in(temp.path()).await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
    server.stop().await;

    // Deleted: a restart does not hand out a new key.
    std::fs::remove_file(&path).unwrap();
    let store = spoc_engine::store::Store::open(temp.path()).unwrap();
    let engine = spoc_engine::engine::Engine::new(
        store,
        spoc_engine::engine::EngineConfig {
            mastery_threshold: 0.95,
            params: spoc_engine::engine::params::ParamSet::load(None).unwrap(),
        },
    )
    .unwrap();
    assert_eq!(engine.bootstrap_admin_key(temp.path()).unwrap(), None);
    assert!(!path.exists());
    // The old key still authenticates, as an admin.
    let principal = engine.authenticate(written.trim()).unwrap();
    assert!(principal.may_call("/spoc.v1.AdminService/CreateApiKey"));
    assert!(engine.authenticate("spoc_nope").is_err());
}

/// The matrix names every method the service serves: a new RPC must be
/// added to it (and to the permission table) before this passes.
#[test]
fn the_matrix_covers_every_served_method() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(spoc_engine::api::pb::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let served: std::collections::BTreeSet<String> = set
        .file
        .iter()
        .flat_map(|file| file.service.iter())
        .flat_map(|service| service.method.iter().map(|m| m.name().to_string()))
        .collect();
    let covered: std::collections::BTreeSet<String> = MATRIX
        .iter()
        .map(|(rpc, _, _)| format!("{rpc:?}"))
        .filter(|name| name != "UnknownMethod")
        .collect();
    assert_eq!(served, covered);
}

/// A trainer's alert watch ends with UNAUTHENTICATED once their key is
/// revoked: nothing more reaches a revoked key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_receiving_alerts() {
    let world = world().await;
    let mut alerts =
        pb::alert_service_client::AlertServiceClient::new(world.channel(Caller::Trainer).await);
    let mut stream = alerts
        .watch_alerts(pb::WatchAlertsRequest {
            cohort_ids: vec![world.cohort1.clone()],
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();
    let first = stream.message().await.expect("first event");
    assert!(first.is_some(), "the snapshot holds the cohort's alert");
    let token = world.key(Caller::Trainer).expect("trainer key");
    let key_id = token.split('_').nth(1).unwrap().to_string();
    world
        .server
        .admin()
        .await
        .revoke_api_key(pb::RevokeApiKeyRequest { key_id })
        .await
        .expect("revoke");
    fail(&world.server, "l01", "after-revoke").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.message())
            .await
            .expect("the watch must end after the revocation");
        match next {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the watch ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    world.server.stop().await;
}

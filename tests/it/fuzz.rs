//! Garbage in, errors out, never a panic (proptest over arbitrary bytes):
//!
//! - the stored-value decoder, the write-ahead log reader and the snapshot
//!   reader take arbitrary or damaged bytes and answer with an error;
//! - arbitrary bytes decoded as each request message and handed to its
//!   gRPC handler (the real edge conversion, over a real engine and store)
//!   end in a reply or a proper status: INVALID_ARGUMENT always carries a
//!   `google.rpc.BadRequest` naming a field, and nothing ends as INTERNAL,
//!   UNKNOWN or DATA_LOSS;
//! - a `RecordAttempts` batch with one bad attempt anywhere stores none of
//!   it and names `attempts[i].<field>` (structured generation, plus the
//!   real server for each kind of badness).

use std::sync::{Arc, OnceLock};

use crate::common::*;
use proptest::prelude::*;
use prost::Message;
use spoc_engine::api::pb;
use spoc_engine::api::pb::alert_service_server::AlertService;
use spoc_engine::api::pb::catalog_service_server::CatalogService;
use spoc_engine::api::pb::cohort_service_server::CohortService;
use spoc_engine::api::pb::learner_service_server::LearnerService;
use spoc_engine::api::pb::mastery_service_server::MasteryService;
use spoc_engine::api::pb::program_service_server::ProgramService;
use spoc_engine::api::pb::remediation_service_server::RemediationService;
use spoc_engine::api::pb::report_service_server::ReportService;
use spoc_engine::api::{
    alerts::AlertApi, catalog::CatalogApi, cohorts::CohortApi, learners::LearnerApi,
    mastery::MasteryApi, programs::ProgramApi, remediation::RemediationApi, reports::ReportApi,
};
use spoc_engine::domain;
use spoc_engine::engine::Engine;
use spoc_engine::store::{Store, codec};
use tonic::Code;
use tonic_types::StatusExt;

// ---- stored values, log, snapshots --------------------------------------

/// Decodes `bytes` as `T`: never panics; bytes without the value version
/// in front are an error; a value that decodes re-encodes to itself.
fn decode_as<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let decoded = codec::decode::<T>("fuzz", b"key", bytes);
    if bytes.first() != Some(&codec::VALUE_VERSION) {
        prop_assert!(decoded.is_err(), "garbage decoded: {decoded:?}");
    }
    if let Ok(value) = decoded {
        let again = codec::encode(&value);
        prop_assert_eq!(codec::decode::<T>("fuzz", b"key", &again).unwrap(), value);
    }
    Ok(())
}

fn rich_attempt() -> domain::mastery::Attempt {
    domain::mastery::Attempt {
        attempt_id: "attempt-1".into(),
        learner_id: "alice".into(),
        item_id: "item".into(),
        skill_ids: vec!["a".into(), "b".into()],
        correct: true,
        score: Some(0.5),
        occurred_at: 1_700_000_000_000_000,
        time_spent_ms: 42_000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every stored value type survives arbitrary bytes.
    #[test]
    fn stored_values_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), version in any::<bool>()) {
        let mut bytes = bytes;
        if version && !bytes.is_empty() {
            bytes[0] = codec::VALUE_VERSION; // get past the version byte
        }
        decode_as::<domain::catalog::Skill>(&bytes)?;
        decode_as::<domain::catalog::Module>(&bytes)?;
        decode_as::<domain::learner::Learner>(&bytes)?;
        decode_as::<domain::learner::Program>(&bytes)?;
        decode_as::<domain::learner::Enrolment>(&bytes)?;
        decode_as::<domain::mastery::Attempt>(&bytes)?;
        decode_as::<domain::mastery::MasteryState>(&bytes)?;
        decode_as::<domain::activity::StoredActivity>(&bytes)?;
        decode_as::<domain::cohorts::records::StoredCohort>(&bytes)?;
        decode_as::<domain::cohorts::records::FormationRecord>(&bytes)?;
        decode_as::<domain::alerts::Alert>(&bytes)?;
        // The compact ingestion values (store formats 2 to 5).
        let _ = spoc_engine::store::compact::decode_block("fuzz", "k", &bytes);
        let _ = spoc_engine::store::compact::decode_states("fuzz", "k", &bytes);
        decode_as::<spoc_engine::store::wal::WalRecord>(&bytes)?;
        decode_as::<String>(&bytes)?;
        decode_as::<i64>(&bytes)?;
    }

    /// A stored value cut short anywhere is an error, not a wrong value.
    #[test]
    fn truncated_values_are_errors(cut in 0usize..1000) {
        let bytes = codec::encode(&rich_attempt());
        let cut = cut % bytes.len();
        prop_assert!(codec::decode::<domain::mastery::Attempt>("fuzz", b"k", &bytes[..cut]).is_err());
    }

    /// A write-ahead log segment of arbitrary bytes opens or is reported
    /// corrupt, never panics; a valid record followed by garbage replays
    /// the valid record or is reported.
    #[test]
    fn wal_segments_never_panic(garbage in prop::collection::vec(any::<u8>(), 0..200), prefix_valid in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        let record = spoc_engine::store::wal::WalRecord::Attempts(vec![rich_attempt()]);
        if prefix_valid {
            let payload = codec::encode(&record);
            bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
            bytes.extend_from_slice(&payload);
        }
        bytes.extend_from_slice(&garbage);
        std::fs::write(dir.path().join("wal-0000000000000001.log"), &bytes).unwrap();
        if let Ok((_, backlog)) = spoc_engine::store::wal::Wal::open(dir.path()) {
            if prefix_valid {
                prop_assert_eq!(backlog.first(), Some(&record));
            }
        }
    }

    /// A snapshot with any byte changed, or cut short, is refused.
    #[test]
    fn damaged_snapshots_are_refused(at in any::<prop::sample::Index>(), flip in 1u8..=255, cut in any::<bool>()) {
        let bytes = snapshot_bytes();
        let i = at.index(bytes.len());
        let mut damaged = bytes.to_vec();
        if cut {
            damaged.truncate(i);
        } else {
            damaged[i] ^= flip;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.snap");
        std::fs::write(&path, &damaged).unwrap();
        prop_assert!(spoc_engine::store::backup::verify_snapshot(&path).is_err());
    }
}

/// A small valid snapshot, made once.
fn snapshot_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .put_learner(&domain::learner::Learner {
                id: "alice".into(),
                company_id: "acme".into(),
                language: "fr".into(),
                time_zone: String::new(),
                display_name: String::new(),
            })
            .unwrap();
        let path = dir.path().join("s.snap");
        store.snapshot_to(&path).unwrap();
        std::fs::read(path).unwrap()
    })
}

// ---- requests through the real handlers ---------------------------------

/// One engine over a temporary store with a little data, shared by every
/// case, and a runtime to drive the async handlers.
struct World {
    runtime: tokio::runtime::Runtime,
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // The admin key it writes goes unused: the fuzz calls the services
        // in process.
        let (engine, _) = crate::common::engine_in(dir.path());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let catalog = CatalogApi::new(engine.clone());
            catalog
                .import_catalog(tonic::Request::new(pb::ImportCatalogRequest {
                    items: vec![],
                    skills: vec![skill("a", &[]), skill("b", &["a"])],
                    modules: vec![module("m-a", &["a"], pb::ModuleFormat::Video, 10)],
                }))
                .await
                .unwrap();
            LearnerApi::new(engine.clone())
                .upsert_learner(tonic::Request::new(pb::UpsertLearnerRequest {
                    learner: Some(learner("alice", "acme")),
                }))
                .await
                .unwrap();
        });
        World {
            runtime,
            engine,
            _dir: dir,
        }
    })
}

/// The property every reply must have.
fn check_status(outcome: Option<tonic::Status>) -> Result<(), TestCaseError> {
    let Some(status) = outcome else {
        return Ok(());
    };
    prop_assert!(
        !matches!(
            status.code(),
            Code::Internal | Code::Unknown | Code::DataLoss | Code::Unavailable
        ),
        "{status:?}"
    );
    if status.code() == Code::InvalidArgument {
        let details = status.get_error_details();
        let named = details
            .bad_request()
            .is_some_and(|b| b.field_violations.iter().any(|v| !v.field.is_empty()));
        prop_assert!(named, "INVALID_ARGUMENT without a field: {status:?}");
    }
    Ok(())
}

/// Valid encodings of every request kind, the starting points of mutation.
fn seeds() -> Vec<(usize, Vec<u8>)> {
    let t = Some(prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    });
    let program = pb::Program {
        external_ids: Vec::new(),
        id: "p".into(),
        name: "P".into(),
        skill_ids: vec!["a".into()],
        cohort_rules: Some(pb::CohortRules {
            min_size: Some(15),
            max_size: Some(30),
            max_company_share: Some(0.5),
            ..Default::default()
        }),
        start_date: t,
        end_date: Some(prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        }),
        risk_rules: Some(pb::RiskRules {
            inactivity_days: Some(3.0),
            blocking_failures: Some(3),
            mastery_drop: Some(0.2),
        }),
    };
    let mut scored = attempt("x", "alice", &["a", "b"], true, 1_700_000_000);
    scored.score = Some(0.25);
    vec![
        (
            0,
            pb::RecordAttemptsRequest {
                attempts: vec![scored, attempt("y", "alice", &["a"], false, 1_700_000_001)],
            }
            .encode_to_vec(),
        ),
        (
            1,
            pb::GetMasteryRequest {
                learner_id: "alice".into(),
                skill_ids: vec!["a".into()],
            }
            .encode_to_vec(),
        ),
        (
            2,
            pb::UpsertLearnerRequest {
                learner: Some(learner("bob", "acme")),
            }
            .encode_to_vec(),
        ),
        (
            3,
            pb::ListLearnersRequest {
                page_size: 10,
                page_token: "00ff".into(),
                company_id: "acme".into(),
            }
            .encode_to_vec(),
        ),
        (
            4,
            pb::EnrollLearnerRequest {
                enrolled_at: None,
                learner_id: "alice".into(),
                program_id: "p".into(),
            }
            .encode_to_vec(),
        ),
        (
            5,
            pb::ListEnrolmentsRequest {
                learner_id: "alice".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            6,
            pb::UpsertProgramRequest {
                program: Some(program),
            }
            .encode_to_vec(),
        ),
        (
            7,
            pb::ImportCatalogRequest {
                items: vec![],
                skills: vec![skill("c", &["a"])],
                modules: vec![module("m-c", &["c"], pb::ModuleFormat::Quiz, 5)],
            }
            .encode_to_vec(),
        ),
        (
            8,
            pb::RecordActivityRequest {
                activities: vec![activity("e", "alice", "m-a", true, 1_700_000_000, 3)],
            }
            .encode_to_vec(),
        ),
        (
            9,
            pb::RecommendNextRequest {
                learner_id: "alice".into(),
                program_id: "p".into(),
                count: 3,
                exclude_module_ids: vec!["m-a".into()],
            }
            .encode_to_vec(),
        ),
        (
            10,
            pb::ListAlertsRequest {
                learner_id: "alice".into(),
                page_size: 5,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            11,
            pb::AcknowledgeAlertRequest {
                alert_id: "alert-1".into(),
                by: "t".into(),
                note: "n".into(),
            }
            .encode_to_vec(),
        ),
        (
            12,
            pb::FormCohortsRequest {
                program_id: "p".into(),
                objective: 1,
                seed: 3,
                dry_run: true,
            }
            .encode_to_vec(),
        ),
        (
            13,
            pb::MoveLearnerRequest {
                program_id: "p".into(),
                learner_id: "alice".into(),
                target_cohort_id: "p/v1/c001".into(),
            }
            .encode_to_vec(),
        ),
        (
            14,
            pb::GetCohortReportRequest {
                cohort_id: "p/v1/c001".into(),
                program_id: "p".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            15,
            pb::GetCertificationRequest {
                learner_id: "alice".into(),
                program_id: "p".into(),
            }
            .encode_to_vec(),
        ),
        (
            16,
            pb::ExportLearnerRequest {
                learner_id: "nobody".into(),
            }
            .encode_to_vec(),
        ),
        (
            17,
            pb::ListSkillsRequest {
                page_size: 2,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            18,
            pb::LockCohortRequest {
                cohort_id: "p/v1/c001".into(),
                locked: true,
            }
            .encode_to_vec(),
        ),
        (
            19,
            pb::GetProgramReportRequest {
                program_id: "p".into(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    ]
}

/// Number of request kinds in [`seeds`] and [`call`].
const KINDS: usize = 20;

/// Decodes `bytes` as request kind `kind` and calls its handler; `None`
/// when the bytes are not a message of that kind.
async fn call(engine: &Arc<Engine>, kind: usize, bytes: &[u8]) -> Option<Option<tonic::Status>> {
    use tonic::Request as R;
    macro_rules! rpc {
        ($api:ident, $method:ident, $req:ty) => {{
            let message = <$req>::decode(bytes).ok()?;
            $api::new(engine.clone())
                .$method(R::new(message))
                .await
                .err()
        }};
    }
    Some(match kind {
        0 => rpc!(MasteryApi, record_attempts, pb::RecordAttemptsRequest),
        1 => rpc!(MasteryApi, get_mastery, pb::GetMasteryRequest),
        2 => rpc!(LearnerApi, upsert_learner, pb::UpsertLearnerRequest),
        3 => rpc!(LearnerApi, list_learners, pb::ListLearnersRequest),
        4 => rpc!(LearnerApi, enroll_learner, pb::EnrollLearnerRequest),
        5 => rpc!(LearnerApi, list_enrolments, pb::ListEnrolmentsRequest),
        6 => rpc!(ProgramApi, upsert_program, pb::UpsertProgramRequest),
        7 => rpc!(CatalogApi, import_catalog, pb::ImportCatalogRequest),
        8 => rpc!(RemediationApi, record_activity, pb::RecordActivityRequest),
        9 => rpc!(RemediationApi, recommend_next, pb::RecommendNextRequest),
        10 => rpc!(AlertApi, list_alerts, pb::ListAlertsRequest),
        11 => rpc!(AlertApi, acknowledge_alert, pb::AcknowledgeAlertRequest),
        12 => rpc!(CohortApi, form_cohorts, pb::FormCohortsRequest),
        13 => rpc!(CohortApi, move_learner, pb::MoveLearnerRequest),
        14 => rpc!(ReportApi, get_cohort_report, pb::GetCohortReportRequest),
        15 => rpc!(ReportApi, get_certification, pb::GetCertificationRequest),
        16 => rpc!(LearnerApi, export_learner, pb::ExportLearnerRequest),
        17 => rpc!(CatalogApi, list_skills, pb::ListSkillsRequest),
        18 => rpc!(CohortApi, lock_cohort, pb::LockCohortRequest),
        _ => rpc!(ReportApi, get_program_report, pb::GetProgramReportRequest),
    })
}

/// A request body: arbitrary bytes, or a valid request with a few bytes
/// changed, inserted or cut.
fn body() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let random = (0..KINDS, prop::collection::vec(any::<u8>(), 0..128));
    let mutated = (
        0..KINDS,
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop_oneof![3 => 0u8..0x80, 1 => any::<u8>()],
                0u8..8,
            ),
            1..4,
        ),
    )
        .prop_map(|(kind, edits)| {
            let mut bytes = seeds().swap_remove(kind).1;
            for (at, byte, op) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match op {
                    0 => bytes.insert(i, byte),
                    1 => bytes.truncate(i),
                    _ => bytes[i] = byte,
                }
            }
            (kind, bytes)
        });
    prop_oneof![1 => random, 9 => mutated]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Arbitrary bytes as any request: a reply or a proper status.
    #[test]
    fn requests_from_arbitrary_bytes_never_panic((kind, bytes) in body()) {
        let world = world();
        let outcome = world.runtime.block_on(call(&world.engine, kind, &bytes));
        if let Some(status) = outcome {
            check_status(status)?;
        }
    }
}

#[test]
fn every_seed_decodes_and_is_served() {
    assert_eq!(seeds().len(), KINDS);
    let world = world();
    for (kind, bytes) in seeds() {
        let outcome = world.runtime.block_on(call(&world.engine, kind, &bytes));
        let status = outcome.unwrap_or_else(|| panic!("seed {kind} does not decode"));
        check_status(status).unwrap();
    }
}

// ---- all or nothing -----------------------------------------------------

/// A field of an attempt made bad, and the field path it must be named by.
#[derive(Debug, Clone, Copy)]
enum Bad {
    EmptyLearner,
    LongId,
    ControlChar,
    NanScore,
    ScoreAbove1,
    FutureTime,
    MissingTime,
    NanosOutOfRange,
    NegativeTimeSpent,
    NoSkill,
    UnknownSkill,
}

impl Bad {
    fn apply(self, a: &mut pb::Attempt) -> &'static str {
        match self {
            Bad::EmptyLearner => {
                a.learner_id.clear();
                "learner_id"
            }
            Bad::LongId => {
                a.attempt_id = "x".repeat(300);
                "attempt_id"
            }
            Bad::ControlChar => {
                a.item_id = "item\0zero".into();
                "item_id"
            }
            Bad::NanScore => {
                a.score = Some(f64::NAN);
                "score"
            }
            Bad::ScoreAbove1 => {
                a.score = Some(1.5);
                "score"
            }
            Bad::FutureTime => {
                a.occurred_at = Some(prost_types::Timestamp {
                    seconds: 4_000_000_000,
                    nanos: 0,
                });
                "occurred_at"
            }
            Bad::MissingTime => {
                a.occurred_at = None;
                "occurred_at"
            }
            Bad::NanosOutOfRange => {
                a.occurred_at.as_mut().unwrap().nanos = -1;
                "occurred_at"
            }
            Bad::NegativeTimeSpent => {
                a.time_spent = Some(prost_types::Duration {
                    seconds: -5,
                    nanos: 0,
                });
                "time_spent"
            }
            Bad::NoSkill => {
                a.skill_ids.clear();
                "skill_ids"
            }
            Bad::UnknownSkill => {
                a.skill_ids = vec!["a".into(), "no-such-skill".into()];
                // Its position as sent, though the engine sees it sorted.
                "skill_ids[1]"
            }
        }
    }

    /// An unknown referenced id is NOT_FOUND; every other badness is
    /// INVALID_ARGUMENT (AIP-193).
    fn code(self) -> Code {
        match self {
            Bad::UnknownSkill => Code::NotFound,
            _ => Code::InvalidArgument,
        }
    }

    const ALL: [Bad; 11] = [
        Bad::EmptyLearner,
        Bad::LongId,
        Bad::ControlChar,
        Bad::NanScore,
        Bad::ScoreAbove1,
        Bad::FutureTime,
        Bad::MissingTime,
        Bad::NanosOutOfRange,
        Bad::NegativeTimeSpent,
        Bad::NoSkill,
        Bad::UnknownSkill,
    ];
}

/// A batch of `n` good attempts with attempt `bad_at` spoiled.
fn spoiled_batch(tag: &str, n: usize, bad_at: usize, bad: Bad) -> (Vec<pb::Attempt>, String) {
    let mut batch: Vec<pb::Attempt> = (0..n)
        .map(|i| {
            attempt(
                &format!("{tag}-{i}"),
                "alice",
                &["a"],
                i % 2 == 0,
                1_700_000_000 + i as i64,
            )
        })
        .collect();
    let field = bad.apply(&mut batch[bad_at]);
    (batch, format!("attempts[{bad_at}].{field}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// One bad attempt anywhere in a batch: INVALID_ARGUMENT naming it, and
    /// none of the batch stored (in-process, many shapes).
    #[test]
    fn one_bad_attempt_stores_none_of_the_batch(n in 1usize..40, at in any::<prop::sample::Index>(), which in 0..Bad::ALL.len(), case in any::<u64>()) {
        let world = world();
        let bad_at = at.index(n);
        let tag = format!("aon-{case:x}-{n}-{bad_at}-{which}");
        let (batch, field) = spoiled_batch(&tag, n, bad_at, Bad::ALL[which]);
        let status = world.runtime.block_on(
            MasteryApi::new(world.engine.clone())
                .record_attempts(tonic::Request::new(pb::RecordAttemptsRequest { attempts: batch })),
        ).expect_err("a spoiled batch is refused");
        prop_assert_eq!(status.code(), Bad::ALL[which].code());
        let violations = status.get_error_details().bad_request().map(|b| b.field_violations.clone()).unwrap_or_default();
        prop_assert!(violations.iter().any(|v| v.field == field), "{field}: {violations:?}");
        for i in 0..n {
            let id = format!("{tag}-{i}");
            prop_assert!(world.engine.store().attempt(&id).unwrap().is_none(), "{id} stored");
        }
    }
}

/// The same through the real server, once per kind of badness, plus the
/// batch size limit and an oversized message.
#[tokio::test]
async fn bad_batches_are_refused_whole_over_grpc() {
    let server = TestServer::start().await;
    seed(&server).await;
    let mut mastery = server.mastery().await;
    for (k, bad) in Bad::ALL.into_iter().enumerate() {
        let (batch, field) = spoiled_batch(&format!("g{k}"), 5, k % 5, bad);
        let status = mastery
            .record_attempts(pb::RecordAttemptsRequest { attempts: batch })
            .await
            .unwrap_err();
        assert_eq!(status.code(), bad.code(), "{status:?}");
        assert_field_named(&status, &field);
    }
    let got = mastery_of(&mut mastery, "alice", &["a"]).await;
    assert_eq!(
        got.skills[0].attempt_count, 0,
        "nothing of a refused batch is stored"
    );

    let too_many: Vec<pb::Attempt> = (0..1001)
        .map(|i| attempt(&format!("many-{i}"), "alice", &["a"], true, 1_700_000_000))
        .collect();
    let status = mastery
        .record_attempts(pb::RecordAttemptsRequest { attempts: too_many })
        .await
        .unwrap_err();
    assert_invalid_field(&status, "attempts");

    // Above the 16 MiB message limit the transport refuses before decoding
    // (OUT_OF_RANGE), and the server goes on serving.
    let huge = pb::UpsertLearnerRequest {
        learner: Some(pb::Learner {
            display_name: "x".repeat(17 << 20),
            ..learner("huge", "acme")
        }),
    };
    let status = server
        .learners()
        .await
        .upsert_learner(huge)
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    mastery
        .get_mastery(pb::GetMasteryRequest {
            learner_id: "alice".into(),
            skill_ids: vec![],
        })
        .await
        .expect("still serving");
    server.stop().await;
}

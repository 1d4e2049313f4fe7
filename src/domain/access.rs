//! Who may call what, and see which learners: roles, scopes, the role x
//! method table and the scope check.
//!
//! Inter-company SPOCs keep the records of several companies' staff in one
//! service, so access is decided in two steps, both here and both failing
//! closed:
//! 1. the role decides which methods a key may call ([`Principal::may_call`],
//!    keyed by the full gRPC method path; an unknown method is for admins
//!    only, so an RPC added later is never open by accident);
//! 2. the scope of a trainer or company key decides which objects it may
//!    see ([`Principal::sees`]), from facts the engine looks up
//!    ([`ScopeFacts`]). An object out of scope is reported as missing, so a
//!    key never learns that it exists.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::learner::Micros;
use crate::error::{Error, Result};

/// What a key is for; decides the methods it may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Everything, key management included.
    Admin,
    /// The LMS backend: records attempts and activity, reads mastery and
    /// recommendations.
    Lms,
    /// Program managers: catalog, learners, programs, cohorts, reports.
    Manager,
    /// A trainer: alerts, reports and mastery of the cohorts they teach.
    Trainer,
    /// A client company: reports and mastery of its own employees.
    Company,
}

impl Role {
    /// Every role, in the order the README table lists them.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Lms,
        Role::Manager,
        Role::Trainer,
        Role::Company,
    ];

    /// Lowercase name, as logs and the README write it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Lms => "lms",
            Role::Manager => "manager",
            Role::Trainer => "trainer",
            Role::Company => "company",
        }
    }
}

/// Which objects a key may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// No restriction (admin, lms, manager).
    All,
    /// A trainer's cohorts, by cohort id: their current members, their
    /// programs and the alerts raised in them.
    Cohorts(BTreeSet<String>),
    /// One company, by company id: its employees only; cohort reports show
    /// aggregates and none of another company's learners.
    Company(String),
}

impl Scope {
    /// Checks that `scope` fits `role`: trainers need cohorts, companies a
    /// company id, the other roles nothing.
    pub fn check_for(role: Role, scope: &Scope) -> Result<()> {
        match (role, scope) {
            (Role::Trainer, Scope::Cohorts(c)) if !c.is_empty() => Ok(()),
            (Role::Trainer, _) => Err(Error::invalid(
                "cohort_ids",
                "a trainer key needs at least one cohort id (and no company id)",
            )),
            (Role::Company, Scope::Company(c)) if !c.is_empty() => Ok(()),
            (Role::Company, _) => Err(Error::invalid(
                "company_id",
                "a company key needs a company id (and no cohort ids)",
            )),
            (_, Scope::All) => Ok(()),
            (_, Scope::Cohorts(_)) => Err(Error::invalid(
                "cohort_ids",
                "only trainer keys are scoped to cohorts",
            )),
            (_, Scope::Company(_)) => Err(Error::invalid(
                "company_id",
                "only company keys are scoped to a company",
            )),
        }
    }
}

/// A stored API key. Only a hash of its secret is kept: the secret itself
/// is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Public key id (the part of the token after `spoc_`).
    pub id: String,
    /// A name for people ("LMS production", "trainer Alice").
    pub name: String,
    /// What it may call.
    pub role: Role,
    /// What it may see.
    pub scope: Scope,
    /// SHA-256 of the secret part of the token.
    pub secret_hash: [u8; 32],
    /// When it was created (server time).
    pub created_at: Micros,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<Micros>,
}

/// The caller of a request, once its key is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Id of the key used.
    pub key_id: String,
    /// The key's name, for logs.
    pub name: String,
    /// What it may call.
    pub role: Role,
    /// What it may see.
    pub scope: Scope,
}

/// An object a request touches, checked against a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// A learner, by id.
    Learner(&'a str),
    /// A cohort, by id.
    Cohort(&'a str),
    /// A program, by id.
    Program(&'a str),
    /// An alert, by id.
    Alert(&'a str),
    /// A row about `learner` as a member of `cohort` (empty when none): a
    /// listed alert, a line of a report.
    Row {
        /// The learner the row is about.
        learner: &'a str,
        /// The learner's cohort in the row, or empty.
        cohort: &'a str,
    },
}

/// A cohort as the scope check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortFacts {
    /// Its program.
    pub program_id: String,
    /// Its current members.
    pub members: Vec<String>,
}

/// The facts a scope check reads, looked up by the engine.
pub trait ScopeFacts {
    /// The company of a learner; `None` for an unknown learner.
    fn learner_company(&self, learner: &str) -> Result<Option<String>>;
    /// A current cohort; `None` for an unknown or replaced one.
    fn cohort(&self, cohort: &str) -> Result<Option<CohortFacts>>;
    /// Whether a learner of `company` is enrolled in `program`.
    fn program_has_company(&self, program: &str, company: &str) -> Result<bool>;
    /// The learner and cohort of an alert; `None` for an unknown alert.
    fn alert_subject(&self, alert: &str) -> Result<Option<(String, String)>>;
}

/// Methods that need no key: health checking and server reflection.
pub const PUBLIC_SERVICES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The pseudo-method of the xAPI HTTP endpoint (statements in).
pub const XAPI_STATEMENTS: &str = "xapi/statements";

/// The pseudo-method of the xAPI operator endpoints (waiting statements,
/// their replay): admin only, as it is not listed in [`PERMISSIONS`].
pub const XAPI_ADMIN: &str = "xapi/admin";

use Role::{Company as C, Lms as L, Manager as M, Trainer as T};

/// Roles besides admin allowed on each method. Admin may call every method,
/// listed or not; any other role only what is listed here.
pub const PERMISSIONS: &[(&str, &[Role])] = &[
    // Keys are admin business.
    ("/spoc.v1.AdminService/CreateApiKey", &[]),
    ("/spoc.v1.AdminService/RevokeApiKey", &[]),
    ("/spoc.v1.AdminService/ListApiKeys", &[]),
    ("/spoc.v1.BackupService/CreateBackup", &[]),
    // Catalog, programs, learners, cohorts: managers.
    ("/spoc.v1.CatalogService/UpsertSkill", &[M]),
    ("/spoc.v1.CatalogService/GetSkill", &[M]),
    ("/spoc.v1.CatalogService/ListSkills", &[M]),
    ("/spoc.v1.CatalogService/UpsertModule", &[M]),
    ("/spoc.v1.CatalogService/GetModule", &[M]),
    ("/spoc.v1.CatalogService/ListModules", &[M]),
    ("/spoc.v1.CatalogService/ImportCatalog", &[M]),
    ("/spoc.v1.CatalogService/UpsertItems", &[M, L]),
    ("/spoc.v1.CatalogService/GetItem", &[M]),
    ("/spoc.v1.CatalogService/ListItems", &[M]),
    // Activity discovery: the manager or the LMS integrator maps them.
    ("/spoc.v1.CatalogService/ListUnmappedActivities", &[M, L]),
    ("/spoc.v1.CatalogService/MapActivity", &[M, L]),
    ("/spoc.v1.ProgramService/UpsertProgram", &[M]),
    ("/spoc.v1.ProgramService/GetProgram", &[M]),
    ("/spoc.v1.ProgramService/ListPrograms", &[M]),
    ("/spoc.v1.LearnerService/UpsertLearner", &[M, L]),
    ("/spoc.v1.LearnerService/GetLearner", &[M, L]),
    ("/spoc.v1.LearnerService/ListLearners", &[M]),
    ("/spoc.v1.LearnerService/EnrollLearner", &[M, L]),
    ("/spoc.v1.LearnerService/ListEnrolments", &[M, L]),
    // GDPR export and erasure: admin only.
    ("/spoc.v1.LearnerService/ExportLearner", &[]),
    ("/spoc.v1.LearnerService/EraseLearner", &[]),
    ("/spoc.v1.CohortService/FormCohorts", &[M]),
    ("/spoc.v1.CohortService/AssignLateEnrolment", &[M, L]),
    ("/spoc.v1.CohortService/MoveLearner", &[M]),
    ("/spoc.v1.CohortService/LockCohort", &[M]),
    ("/spoc.v1.CohortService/ListCohorts", &[M]),
    ("/spoc.v1.CohortService/GetCohort", &[M]),
    // Ingestion and the learner-facing reads: the LMS.
    ("/spoc.v1.MasteryService/RecordAttempts", &[L]),
    ("/spoc.v1.MasteryService/GetMastery", &[L, T, C]),
    ("/spoc.v1.MasteryService/FitModel", &[M]),
    ("/spoc.v1.MasteryService/GetModel", &[M]),
    ("/spoc.v1.RemediationService/RecommendNext", &[L]),
    ("/spoc.v1.RemediationService/RecordActivity", &[L]),
    (XAPI_STATEMENTS, &[L]),
    // Reports: managers, trainers and companies within their scope.
    ("/spoc.v1.ReportService/GetCohortReport", &[M, T, C]),
    ("/spoc.v1.ReportService/GetProgramReport", &[M, C]),
    ("/spoc.v1.ReportService/GetCertification", &[M, T, C]),
    // Alerts: trainers act on those of their cohorts; managers read.
    ("/spoc.v1.AlertService/ListAlerts", &[M, T]),
    ("/spoc.v1.AlertService/GetAlert", &[M, T]),
    ("/spoc.v1.AlertService/AcknowledgeAlert", &[T]),
    ("/spoc.v1.AlertService/ResolveAlert", &[T]),
    ("/spoc.v1.AlertService/WatchAlerts", &[M, T]),
    // Webhooks: as the alerts they carry; a trainer within its cohorts.
    ("/spoc.v1.AlertService/CreateSubscription", &[M, T]),
    ("/spoc.v1.AlertService/ListSubscriptions", &[M, T]),
    ("/spoc.v1.AlertService/DeleteSubscription", &[M, T]),
    ("/spoc.v1.AlertService/ListDeadLetters", &[M, T]),
    ("/spoc.v1.AlertService/RedeliverDeadLetters", &[M, T]),
    // Pauses: the learner's LMS or a trainer of their cohort declares
    // them; withdrawals come from the LMS or a manager; the digest is read
    // like the alerts.
    ("/spoc.v1.AlertService/DeclarePause", &[L, T]),
    ("/spoc.v1.AlertService/EndPause", &[L, T]),
    ("/spoc.v1.AlertService/ListPauses", &[M, L, T]),
    ("/spoc.v1.AlertService/WithdrawLearner", &[M, L]),
    ("/spoc.v1.AlertService/GetAlertDigest", &[M, T]),
];

/// Whether `method` needs no key at all (health, reflection).
pub fn is_public(method: &str) -> bool {
    PUBLIC_SERVICES
        .iter()
        .any(|prefix| method.starts_with(prefix))
}

/// Whether `role` may call `method` (a full gRPC path such as
/// `/spoc.v1.MasteryService/RecordAttempts`, or [`XAPI_STATEMENTS`]).
pub fn role_may_call(role: Role, method: &str) -> bool {
    if role == Role::Admin {
        return true;
    }
    PERMISSIONS
        .iter()
        .find(|(path, _)| *path == method)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

impl Principal {
    /// Whether this caller's role allows `method`; see [`role_may_call`].
    pub fn may_call(&self, method: &str) -> bool {
        role_may_call(self.role, method)
    }

    /// Whether the scope is restricted (trainer, company).
    pub fn is_scoped(&self) -> bool {
        !matches!(self.scope, Scope::All)
    }

    /// Whether this caller may see `resource`; an unknown object is never
    /// in a restricted scope.
    pub fn sees(&self, resource: Resource<'_>, facts: &impl ScopeFacts) -> Result<bool> {
        match &self.scope {
            Scope::All => Ok(true),
            Scope::Cohorts(cohorts) => trainer_sees(cohorts, resource, facts),
            Scope::Company(company) => company_sees(company, resource, facts),
        }
    }

    /// [`Principal::sees`], with an out-of-scope object reported as
    /// missing (NOT_FOUND), never as forbidden: the caller must not learn
    /// that it exists.
    pub fn check(&self, resource: Resource<'_>, facts: &impl ScopeFacts) -> Result<()> {
        if self.sees(resource, facts)? {
            return Ok(());
        }
        Err(match resource {
            Resource::Learner(id) => Error::not_found("learner", id),
            Resource::Cohort(id) => Error::not_found("cohort", id),
            Resource::Program(id) => Error::not_found("program", id),
            Resource::Alert(id) => Error::not_found("alert", id),
            Resource::Row { learner, .. } => Error::not_found("learner", learner),
        })
    }
}

fn trainer_sees(
    cohorts: &BTreeSet<String>,
    resource: Resource<'_>,
    facts: &impl ScopeFacts,
) -> Result<bool> {
    match resource {
        Resource::Cohort(id) => Ok(cohorts.contains(id)),
        Resource::Row { learner, cohort } => member_now(cohorts, learner, cohort, facts),
        Resource::Learner(id) => any_cohort(cohorts, facts, |c| c.members.iter().any(|m| m == id)),
        Resource::Program(id) => any_cohort(cohorts, facts, |c| c.program_id == id),
        Resource::Alert(id) => match facts.alert_subject(id)? {
            Some((learner, cohort)) => member_now(cohorts, &learner, &cohort, facts),
            None => Ok(false),
        },
    }
}

/// Whether a row about `learner` in `cohort` is a trainer's: the cohort is
/// one of its cohorts *and* the learner is a member of it now. A row keeps
/// the cohort it was written with (an alert raised before a move or a new
/// formation); the former trainer loses it as soon as the cohort changes.
fn member_now(
    cohorts: &BTreeSet<String>,
    learner: &str,
    cohort: &str,
    facts: &impl ScopeFacts,
) -> Result<bool> {
    if !cohorts.contains(cohort) {
        return Ok(false);
    }
    Ok(facts
        .cohort(cohort)?
        .is_some_and(|c| c.members.iter().any(|m| m == learner)))
}

fn any_cohort(
    cohorts: &BTreeSet<String>,
    facts: &impl ScopeFacts,
    test: impl Fn(&CohortFacts) -> bool,
) -> Result<bool> {
    for id in cohorts {
        if facts.cohort(id)?.is_some_and(|c| test(&c)) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn company_sees(company: &str, resource: Resource<'_>, facts: &impl ScopeFacts) -> Result<bool> {
    let employs = |learner: &str| -> Result<bool> {
        Ok(facts.learner_company(learner)?.as_deref() == Some(company))
    };
    match resource {
        Resource::Learner(id) => employs(id),
        Resource::Row { learner, .. } => employs(learner),
        Resource::Cohort(id) => {
            let Some(cohort) = facts.cohort(id)? else {
                return Ok(false);
            };
            for member in &cohort.members {
                if employs(member)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Resource::Program(id) => facts.program_has_company(id, company),
        Resource::Alert(id) => match facts.alert_subject(id)? {
            Some((learner, _)) => employs(&learner),
            None => Ok(false),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Two companies, one program with two cohorts, one alert.
    struct World;

    impl ScopeFacts for World {
        fn learner_company(&self, learner: &str) -> Result<Option<String>> {
            let companies =
                BTreeMap::from([("alice", "acme"), ("bob", "globex"), ("carol", "acme")]);
            Ok(companies.get(learner).map(|c| c.to_string()))
        }
        fn cohort(&self, cohort: &str) -> Result<Option<CohortFacts>> {
            let members: &[&str] = match cohort {
                "p/v1/c001" => &["alice", "bob"],
                "p/v1/c002" => &["carol"],
                _ => return Ok(None),
            };
            Ok(Some(CohortFacts {
                program_id: "p".into(),
                members: members.iter().map(|m| m.to_string()).collect(),
            }))
        }
        fn program_has_company(&self, program: &str, company: &str) -> Result<bool> {
            Ok(program == "p" && ["acme", "globex"].contains(&company))
        }
        fn alert_subject(&self, alert: &str) -> Result<Option<(String, String)>> {
            Ok((alert == "alert-1").then(|| ("carol".into(), "p/v1/c002".into())))
        }
    }

    fn principal(role: Role, scope: Scope) -> Principal {
        Principal {
            key_id: "k".into(),
            name: "n".into(),
            role,
            scope,
        }
    }

    #[test]
    fn admin_calls_everything_others_only_their_table() {
        let unknown = "/spoc.v1.NewService/NewMethod";
        assert!(role_may_call(Role::Admin, unknown));
        assert!(role_may_call(
            Role::Admin,
            "/spoc.v1.LearnerService/EraseLearner"
        ));
        for role in [Role::Lms, Role::Manager, Role::Trainer, Role::Company] {
            assert!(!role_may_call(role, unknown), "{role:?}");
            assert!(!role_may_call(role, "/spoc.v1.AdminService/CreateApiKey"));
            assert!(!role_may_call(
                role,
                "/spoc.v1.LearnerService/ExportLearner"
            ));
            assert!(!role_may_call(role, "/spoc.v1.BackupService/CreateBackup"));
        }
        assert!(role_may_call(
            Role::Lms,
            "/spoc.v1.MasteryService/RecordAttempts"
        ));
        assert!(role_may_call(Role::Lms, XAPI_STATEMENTS));
        assert!(!role_may_call(Role::Manager, XAPI_STATEMENTS));
        assert!(!role_may_call(
            Role::Manager,
            "/spoc.v1.MasteryService/RecordAttempts"
        ));
        assert!(!role_may_call(
            Role::Trainer,
            "/spoc.v1.ReportService/GetProgramReport"
        ));
        assert!(!role_may_call(
            Role::Company,
            "/spoc.v1.AlertService/ListAlerts"
        ));
        // A prefix or a longer path is not the method.
        assert!(!role_may_call(
            Role::Lms,
            "/spoc.v1.MasteryService/RecordAttemptsX"
        ));
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(!is_public("/spoc.v1.MasteryService/GetMastery"));
    }

    #[test]
    fn table_lists_each_method_once() {
        let paths: BTreeSet<_> = PERMISSIONS.iter().map(|(p, _)| *p).collect();
        assert_eq!(paths.len(), PERMISSIONS.len());
    }

    #[test]
    fn trainer_sees_their_cohorts_members_programs_and_alerts_only() {
        let trainer = principal(
            Role::Trainer,
            Scope::Cohorts(["p/v1/c002".to_string()].into()),
        );
        assert!(trainer.sees(Resource::Cohort("p/v1/c002"), &World).unwrap());
        assert!(!trainer.sees(Resource::Cohort("p/v1/c001"), &World).unwrap());
        assert!(trainer.sees(Resource::Learner("carol"), &World).unwrap());
        assert!(!trainer.sees(Resource::Learner("alice"), &World).unwrap());
        assert!(!trainer.sees(Resource::Learner("nobody"), &World).unwrap());
        assert!(trainer.sees(Resource::Program("p"), &World).unwrap());
        assert!(!trainer.sees(Resource::Program("q"), &World).unwrap());
        assert!(trainer.sees(Resource::Alert("alert-1"), &World).unwrap());
        assert!(!trainer.sees(Resource::Alert("alert-2"), &World).unwrap());
        let row = Resource::Row {
            learner: "alice",
            cohort: "p/v1/c001",
        };
        assert!(!trainer.sees(row, &World).unwrap());
        let err = trainer
            .check(Resource::Learner("alice"), &World)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotFound {
                    kind: "learner",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn company_sees_its_employees_and_where_they_are() {
        let acme = principal(Role::Company, Scope::Company("acme".into()));
        assert!(acme.sees(Resource::Learner("alice"), &World).unwrap());
        assert!(!acme.sees(Resource::Learner("bob"), &World).unwrap());
        assert!(acme.sees(Resource::Cohort("p/v1/c001"), &World).unwrap());
        assert!(acme.sees(Resource::Program("p"), &World).unwrap());
        assert!(acme.sees(Resource::Alert("alert-1"), &World).unwrap());
        let initech = principal(Role::Company, Scope::Company("initech".into()));
        assert!(!initech.sees(Resource::Cohort("p/v1/c001"), &World).unwrap());
        assert!(!initech.sees(Resource::Program("p"), &World).unwrap());
        let bob_row = Resource::Row {
            learner: "bob",
            cohort: "p/v1/c001",
        };
        assert!(!acme.sees(bob_row, &World).unwrap());
        let admin = principal(Role::Admin, Scope::All);
        assert!(admin.sees(bob_row, &World).unwrap());
    }

    #[test]
    fn scopes_must_fit_roles() {
        let cohorts = Scope::Cohorts(["c".to_string()].into());
        assert!(Scope::check_for(Role::Trainer, &cohorts).is_ok());
        assert!(Scope::check_for(Role::Trainer, &Scope::All).is_err());
        assert!(Scope::check_for(Role::Trainer, &Scope::Cohorts(BTreeSet::new())).is_err());
        assert!(Scope::check_for(Role::Company, &Scope::Company("acme".into())).is_ok());
        assert!(Scope::check_for(Role::Company, &Scope::Company(String::new())).is_err());
        assert!(Scope::check_for(Role::Lms, &Scope::All).is_ok());
        assert!(Scope::check_for(Role::Manager, &cohorts).is_err());
        assert!(Scope::check_for(Role::Admin, &Scope::Company("a".into())).is_err());
    }
}

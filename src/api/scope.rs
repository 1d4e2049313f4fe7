//! The scope check of trainer and company keys, for every request they may
//! send: each such request message names the objects it touches here, once,
//! and [`authorize`] checks them all against the caller's scope before the
//! handler does anything. An object out of scope is NOT_FOUND, as if it did
//! not exist.
//!
//! Only the methods in [`SCOPE_CHECKED`] may be granted to a scoped role:
//! a unit test fails if the permission table grants a trainer or company
//! key a method whose handler does not call [`authorize`].

use std::sync::Arc;

use tonic::{Request, Status};

use super::pb;
use crate::domain::access::{Principal, Resource};
use crate::engine::Engine;

/// Methods whose handler calls [`authorize`] (and filters what it lists).
pub const SCOPE_CHECKED: &[&str] = &[
    "/spoc.v1.MasteryService/GetMastery",
    "/spoc.v1.ReportService/GetCohortReport",
    "/spoc.v1.ReportService/GetProgramReport",
    "/spoc.v1.ReportService/GetCertification",
    "/spoc.v1.AlertService/ListAlerts",
    "/spoc.v1.AlertService/GetAlert",
    "/spoc.v1.AlertService/AcknowledgeAlert",
    "/spoc.v1.AlertService/ResolveAlert",
    "/spoc.v1.AlertService/WatchAlerts",
    // Webhooks: the programs and cohorts a subscription names; a scoped
    // key lists and deletes only its own subscriptions (engine).
    "/spoc.v1.AlertService/CreateSubscription",
    "/spoc.v1.AlertService/ListSubscriptions",
    "/spoc.v1.AlertService/DeleteSubscription",
    "/spoc.v1.AlertService/ListDeadLetters",
    "/spoc.v1.AlertService/RedeliverDeadLetters",
    "/spoc.v1.AlertService/DeclarePause",
    "/spoc.v1.AlertService/EndPause",
    "/spoc.v1.AlertService/ListPauses",
    "/spoc.v1.AlertService/GetAlertDigest",
];

/// A request message that names learners, cohorts, programs or alerts.
pub(crate) trait Touches {
    /// Every object the request reads or changes; unset (empty) ids are
    /// left out, the handler's validation refuses them.
    fn touches(&self) -> Vec<Resource<'_>>;
}

/// The caller of `request`, once every object the request touches is in
/// its scope (NOT_FOUND for the first that is not).
pub(crate) fn authorize<T: Touches>(
    engine: &Engine,
    request: &Request<T>,
) -> Result<Arc<Principal>, Status> {
    let who = super::auth::principal(request)?;
    if who.is_scoped() {
        for resource in request.get_ref().touches() {
            who.check(resource, engine)?;
        }
    }
    Ok(who)
}

/// The set ids of `ids` as resources of kind `make`.
fn set<'a>(ids: &[&'a str], make: fn(&'a str) -> Resource<'a>) -> Vec<Resource<'a>> {
    ids.iter()
        .filter(|id| !id.is_empty())
        .map(|id| make(id))
        .collect()
}

impl Touches for pb::GetMasteryRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        set(&[&self.learner_id], Resource::Learner)
    }
}

impl Touches for pb::GetCohortReportRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        let mut out = set(&[&self.cohort_id], Resource::Cohort);
        out.extend(set(&[&self.program_id], Resource::Program));
        out
    }
}

impl Touches for pb::GetProgramReportRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        set(&[&self.program_id], Resource::Program)
    }
}

impl Touches for pb::GetCertificationRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        let mut out = set(&[&self.learner_id], Resource::Learner);
        out.extend(set(&[&self.program_id], Resource::Program));
        out
    }
}

impl Touches for pb::ListAlertsRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        let mut out = set(&[&self.program_id], Resource::Program);
        out.extend(set(&[&self.cohort_id], Resource::Cohort));
        out.extend(set(&[&self.learner_id], Resource::Learner));
        out
    }
}

impl Touches for pb::GetAlertRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        set(&[&self.alert_id], Resource::Alert)
    }
}

impl Touches for pb::AcknowledgeAlertRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        set(&[&self.alert_id], Resource::Alert)
    }
}

impl Touches for pb::ResolveAlertRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        set(&[&self.alert_id], Resource::Alert)
    }
}

impl Touches for pb::WatchAlertsRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        let cohorts: Vec<&str> = self.cohort_ids.iter().map(String::as_str).collect();
        let mut out = set(&cohorts, Resource::Cohort);
        out.extend(set(&[&self.program_id], Resource::Program));
        out
    }
}

impl Touches for pb::CreateSubscriptionRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        let programs: Vec<&str> = self.program_ids.iter().map(String::as_str).collect();
        let cohorts: Vec<&str> = self.cohort_ids.iter().map(String::as_str).collect();
        let mut out = set(&programs, Resource::Program);
        out.extend(set(&cohorts, Resource::Cohort));
        out
    }
}

/// Subscriptions are not scope resources: the engine shows a scoped key
/// only the subscriptions it made.
impl Touches for pb::ListSubscriptionsRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        Vec::new()
    }
}

impl Touches for pb::DeleteSubscriptionRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        Vec::new()
    }
}

impl Touches for pb::ListDeadLettersRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        Vec::new()
    }
}

impl Touches for pb::RedeliverDeadLettersRequest {
    fn touches(&self) -> Vec<Resource<'_>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{PERMISSIONS, Role};

    /// A method granted to a scoped role without a scope check would let a
    /// trainer or company key read outside its scope.
    #[test]
    fn scoped_roles_reach_only_scope_checked_methods() {
        for (method, roles) in PERMISSIONS {
            if roles.contains(&Role::Trainer) || roles.contains(&Role::Company) {
                assert!(
                    SCOPE_CHECKED.contains(method),
                    "{method} is granted to a scoped role but not scope-checked"
                );
            }
        }
    }

    #[test]
    fn unset_ids_are_not_resources() {
        let request = pb::ListAlertsRequest {
            cohort_id: "p/v1/c001".into(),
            ..Default::default()
        };
        assert_eq!(request.touches(), vec![Resource::Cohort("p/v1/c001")]);
        let watch = pb::WatchAlertsRequest {
            cohort_ids: vec!["a".into(), "b".into()],
            program_id: "p".into(),
            after_sequence: 0,
        };
        assert_eq!(watch.touches().len(), 3);
    }
}

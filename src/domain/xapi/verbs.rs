//! The verbs the engine understands, and what each does to the object it
//! names. This table is the contract the README's xAPI section repeats.
//!
//! | verb (IRI)                                             | on an item                  | on a module                  | on a program |
//! |--------------------------------------------------------|-----------------------------|------------------------------|--------------|
//! | ADL `answered`, `responded`; acrossx `evaluated` (Open edX graded answers) | attempt (needs evidence) | none: an answer needs an item | enrolment |
//! | ADL `scored`, tla `scored` (Moodle manual grading)      | attempt (needs evidence)    | module completed             | enrolment    |
//! | ADL `completed`, `passed`, `failed`, `mastered`; activitystrea.ms `complete`; tincanapi `finished` | attempt (needs evidence; passed/mastered right, failed wrong) | module completed | enrolment |
//! | ADL `attempted`                                        | attempt (needs evidence)    | module started               | enrolment    |
//! | ADL `progressed`                                       | none                        | started, completed when `result.completion` | enrolment |
//! | cmi5 `satisfied`, `waived` (ADL w3id)                  | none                        | module completed (waived: no time, no evidence) | enrolment |
//! | ADL `experienced`, `launched`, `initialized`, `resumed`, `interacted`; tincanapi `viewed`; activitystrea.ms `start`; video `played` | none | module started | enrolment |
//! | ADL `registered`                                       | none                        | none                         | enrolment    |
//! | ADL `terminated`, `suspended`, `exited`; cmi5 `abandoned`; video `paused`, `seeked` | none | module started (its time spent counts) | none |
//! | ADL `voided`                                           | undo the target statement's effect (object: a StatementRef) |  |  |
//! | anything else                                          | none (stored, counted as `no_effect`) |            |              |
//!
//! "Needs evidence": `result.success`, else the verb (passed, failed), else
//! `result.score` against the item's pass mark, else `result.response`
//! against the activity's `correctResponsesPattern` (see `mapping.rs`).
//! Time spent is `result.duration`, else the video profile's played
//! segments. `https` and `http` spellings of an IRI are the same verb.

use crate::domain::activity::ActivityKind;

/// What a statement's verb means to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Answered a question (ADL `answered`, `responded`).
    Answered,
    /// An answer graded by the platform (Open edX's acrossx `evaluated`).
    Evaluated,
    /// A score given (ADL or tla `scored`: Moodle's manual grading).
    Scored,
    /// Completed an activity (ADL `completed`, `complete`, `finished`).
    Completed,
    /// Passed an assessment.
    Passed,
    /// Failed an assessment.
    Failed,
    /// Mastered an activity.
    Mastered,
    /// Attempted an activity: a module started, or an answer on an item
    /// when a result gives evidence.
    Attempted,
    /// Progressed in content: started, or completed with
    /// `result.completion`.
    Progressed,
    /// cmi5 `satisfied`: the requirements of a block or AU are met.
    Satisfied,
    /// cmi5 `waived`: the requirements were waived (counts as done).
    Waived,
    /// Opened or used content: `experienced`, `launched`, `initialized`,
    /// `resumed`, `interacted`, `viewed`, `start`, video `played`.
    Opened,
    /// Registered for a course: an enrolment.
    Registered,
    /// A session event that carries time spent but no progress:
    /// `terminated`, `suspended`, `exited`, `abandoned`, video `paused`
    /// and `seeked`.
    Session,
    /// Voids an earlier statement (object: a StatementRef).
    Voided,
}

/// The verb IRIs, as (IRI, verb, label): the label names the verb in the
/// `spoc_xapi_statements_total` counter.
pub const VERBS: &[(&str, Verb, &str)] = &[
    (
        "http://adlnet.gov/expapi/verbs/answered",
        Verb::Answered,
        "answered",
    ),
    (
        "http://adlnet.gov/expapi/verbs/responded",
        Verb::Answered,
        "responded",
    ),
    (
        "https://w3id.org/xapi/acrossx/verbs/evaluated",
        Verb::Evaluated,
        "evaluated",
    ),
    (
        "http://adlnet.gov/expapi/verbs/scored",
        Verb::Scored,
        "scored",
    ),
    (
        "https://w3id.org/xapi/tla/verbs/scored",
        Verb::Scored,
        "scored",
    ),
    (
        "http://adlnet.gov/expapi/verbs/completed",
        Verb::Completed,
        "completed",
    ),
    (
        "http://activitystrea.ms/schema/1.0/complete",
        Verb::Completed,
        "completed",
    ),
    (
        "http://id.tincanapi.com/verb/finished",
        Verb::Completed,
        "finished",
    ),
    (
        "http://adlnet.gov/expapi/verbs/passed",
        Verb::Passed,
        "passed",
    ),
    (
        "http://adlnet.gov/expapi/verbs/failed",
        Verb::Failed,
        "failed",
    ),
    (
        "http://adlnet.gov/expapi/verbs/mastered",
        Verb::Mastered,
        "mastered",
    ),
    (
        "http://adlnet.gov/expapi/verbs/attempted",
        Verb::Attempted,
        "attempted",
    ),
    (
        "http://adlnet.gov/expapi/verbs/progressed",
        Verb::Progressed,
        "progressed",
    ),
    (
        "https://w3id.org/xapi/adl/verbs/satisfied",
        Verb::Satisfied,
        "satisfied",
    ),
    (
        "https://w3id.org/xapi/adl/verbs/waived",
        Verb::Waived,
        "waived",
    ),
    (
        "http://adlnet.gov/expapi/verbs/experienced",
        Verb::Opened,
        "experienced",
    ),
    (
        "http://adlnet.gov/expapi/verbs/launched",
        Verb::Opened,
        "launched",
    ),
    (
        "http://adlnet.gov/expapi/verbs/initialized",
        Verb::Opened,
        "initialized",
    ),
    (
        "http://adlnet.gov/expapi/verbs/resumed",
        Verb::Opened,
        "resumed",
    ),
    (
        "http://adlnet.gov/expapi/verbs/interacted",
        Verb::Opened,
        "interacted",
    ),
    (
        "http://id.tincanapi.com/verb/viewed",
        Verb::Opened,
        "viewed",
    ),
    (
        "http://id.tincanapi.com/verb/started",
        Verb::Opened,
        "started",
    ),
    (
        "http://activitystrea.ms/schema/1.0/start",
        Verb::Opened,
        "started",
    ),
    (
        "https://w3id.org/xapi/video/verbs/played",
        Verb::Opened,
        "played",
    ),
    (
        "http://adlnet.gov/expapi/verbs/registered",
        Verb::Registered,
        "registered",
    ),
    (
        "http://adlnet.gov/expapi/verbs/terminated",
        Verb::Session,
        "terminated",
    ),
    (
        "http://adlnet.gov/expapi/verbs/suspended",
        Verb::Session,
        "suspended",
    ),
    (
        "http://adlnet.gov/expapi/verbs/exited",
        Verb::Session,
        "exited",
    ),
    (
        "https://w3id.org/xapi/adl/verbs/abandoned",
        Verb::Session,
        "abandoned",
    ),
    (
        "https://w3id.org/xapi/video/verbs/paused",
        Verb::Session,
        "paused",
    ),
    (
        "https://w3id.org/xapi/video/verbs/seeked",
        Verb::Session,
        "seeked",
    ),
    (
        "http://adlnet.gov/expapi/verbs/voided",
        Verb::Voided,
        "voided",
    ),
];

/// The IRI of the voiding verb.
pub const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// The label of verbs outside the table, in metrics.
pub const OTHER_LABEL: &str = "other";

/// The verb named by `iri` and its label, if the engine knows it; the
/// `http` and `https` spellings of an IRI are the same verb (tools emit
/// both).
pub fn lookup(iri: &str) -> Option<(Verb, &'static str)> {
    let find = |iri: &str| {
        VERBS
            .iter()
            .find(|(id, _, _)| *id == iri)
            .map(|(_, verb, label)| (*verb, *label))
    };
    find(iri).or_else(|| {
        let other = match iri.split_once("://") {
            Some(("https", rest)) => format!("http://{rest}"),
            Some(("http", rest)) => format!("https://{rest}"),
            _ => return None,
        };
        find(&other)
    })
}

impl Verb {
    /// Whether the verb reports an answer, which only an item can take
    /// (on a module it has no effect).
    pub fn is_answer(self) -> bool {
        matches!(self, Verb::Answered | Verb::Evaluated)
    }

    /// Whether, on an item, the verb can be an attempt (given evidence).
    pub fn may_attempt(self) -> bool {
        matches!(
            self,
            Verb::Answered
                | Verb::Evaluated
                | Verb::Scored
                | Verb::Completed
                | Verb::Passed
                | Verb::Failed
                | Verb::Mastered
                | Verb::Attempted
        )
    }

    /// The correctness the verb itself states (passed, failed).
    pub fn verdict(self) -> Option<bool> {
        match self {
            Verb::Passed | Verb::Mastered => Some(true),
            Verb::Failed => Some(false),
            _ => None,
        }
    }

    /// The module event the verb makes, given `result.completion`; `None`
    /// when it has no effect on a module.
    pub fn module_event(self, completion: bool) -> Option<ActivityKind> {
        match self {
            Verb::Answered | Verb::Evaluated | Verb::Registered | Verb::Voided => None,
            Verb::Scored
            | Verb::Completed
            | Verb::Passed
            | Verb::Failed
            | Verb::Mastered
            | Verb::Satisfied
            | Verb::Waived => Some(ActivityKind::Completed),
            Verb::Progressed | Verb::Attempted | Verb::Opened | Verb::Session => {
                Some(if completion {
                    ActivityKind::Completed
                } else {
                    ActivityKind::Started
                })
            }
        }
    }

    /// Whether the verb, on a program (a course), says the learner is in
    /// it.
    pub fn enrols(self) -> bool {
        !matches!(self, Verb::Session | Verb::Voided)
    }

    /// Whether the time spent the statement reports is credited (a waiver
    /// took no time).
    pub fn counts_time(self) -> bool {
        self != Verb::Waived
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookups() {
        assert_eq!(lookup(VOIDED).map(|v| v.0), Some(Verb::Voided));
        assert_eq!(
            lookup("https://adlnet.gov/expapi/verbs/answered"),
            Some((Verb::Answered, "answered"))
        );
        assert_eq!(
            lookup("http://w3id.org/xapi/video/verbs/paused").map(|v| v.0),
            Some(Verb::Session)
        );
        assert_eq!(lookup("http://example.com/verbs/liked"), None);
    }

    #[test]
    fn each_iri_once() {
        let mut iris: Vec<_> = VERBS.iter().map(|v| v.0).collect();
        iris.sort_unstable();
        iris.dedup();
        assert_eq!(iris.len(), VERBS.len());
    }
}

//! The verbs the engine understands: the ADL verbs LMSs emit for quiz
//! answers and module progress, plus the voiding verb.
//!
//! Every other verb is accepted (an LRS never refuses a valid statement for
//! its verb) and stored without effect.

/// What a statement's verb means to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Answered a question (an attempt on an item).
    Answered,
    /// Passed an assessment: a right answer on an item, a finished module.
    Passed,
    /// Failed an assessment: a wrong answer on an item, a finished module.
    Failed,
    /// Completed an activity: a finished module, or an attempt on an item
    /// when a result comes with it.
    Completed,
    /// Attempted an activity: a module started, or an attempt on an item
    /// when a result comes with it.
    Attempted,
    /// Experienced (viewed) content: a module started.
    Experienced,
    /// Progressed in content: a module started (completed when
    /// `result.completion` is true).
    Progressed,
    /// Voids an earlier statement (object: a StatementRef).
    Voided,
}

/// The ADL verb IRIs, as (IRI, verb). Open edX and Moodle emit these ids.
pub const VERBS: [(&str, Verb); 8] = [
    ("http://adlnet.gov/expapi/verbs/answered", Verb::Answered),
    ("http://adlnet.gov/expapi/verbs/passed", Verb::Passed),
    ("http://adlnet.gov/expapi/verbs/failed", Verb::Failed),
    ("http://adlnet.gov/expapi/verbs/completed", Verb::Completed),
    ("http://adlnet.gov/expapi/verbs/attempted", Verb::Attempted),
    (
        "http://adlnet.gov/expapi/verbs/experienced",
        Verb::Experienced,
    ),
    (
        "http://adlnet.gov/expapi/verbs/progressed",
        Verb::Progressed,
    ),
    ("http://adlnet.gov/expapi/verbs/voided", Verb::Voided),
];

/// The IRI of the voiding verb.
pub const VOIDED: &str = "http://adlnet.gov/expapi/verbs/voided";

/// The verb named by `iri`, if the engine knows it. `https` forms of the
/// ADL IRIs are accepted too (some tools emit them).
pub fn lookup(iri: &str) -> Option<Verb> {
    let normal = iri
        .strip_prefix("https://")
        .map(|rest| format!("http://{rest}"));
    let iri = normal.as_deref().unwrap_or(iri);
    VERBS
        .iter()
        .find(|(id, _)| *id == iri)
        .map(|(_, verb)| *verb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lookups() {
        assert_eq!(lookup(VOIDED), Some(Verb::Voided));
        assert_eq!(
            lookup("https://adlnet.gov/expapi/verbs/answered"),
            Some(Verb::Answered)
        );
        assert_eq!(lookup("http://adlnet.gov/expapi/verbs/launched"), None);
    }
}

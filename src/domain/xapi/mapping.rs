//! From a statement to what it means for the engine: an attempt on an item
//! (Q-matrix), a module event, a voiding, or nothing yet.
//!
//! | statement                                   | effect                              |
//! |---------------------------------------------|-------------------------------------|
//! | answered / passed / failed, object an item  | attempt on the item's skills        |
//! | completed / attempted / ..., object an item | attempt, when a result gives evidence |
//! | completed / passed / failed, object a module | module completed                   |
//! | attempted / experienced / progressed, module | module started (completed when `result.completion`) |
//! | voided, object a StatementRef               | undo the target's effect            |
//! | object unknown to the catalog               | unresolved: kept, replayed later    |
//! | other verbs, agents as objects, groups      | ignored (stored, no effect)         |

use super::record::derived_id;
use super::statement::{Actor, Ifi, Object, Outcome, Statement};
use super::verbs::{self, Verb};
use crate::domain::activity::{Activity, ActivityKind};
use crate::domain::limits::MAX_IRI_BYTES;
use crate::domain::mastery::Attempt;

/// Longest time spent credited to one answer, in milliseconds (a day, as
/// at the gRPC edge); longer durations are capped.
pub const MAX_ATTEMPT_MS: u64 = 24 * 3_600_000;
/// Longest time spent credited to one module event (a week).
pub const MAX_ACTIVITY_MS: u64 = 7 * 24 * 3_600_000;

/// What the mapping needs to know of the catalog.
pub trait CatalogView {
    /// The skills an item tests, if it is an item.
    fn item_skills(&self, id: &str) -> Option<&[String]>;
    /// Whether `id` is a module.
    fn has_module(&self, id: &str) -> bool;
    /// Whether `id` is a program.
    fn has_program(&self, id: &str) -> bool;
}

/// The learner a statement is about, as its actor describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnerRef {
    /// The learner id: account name, e-mail address (without `mailto:`),
    /// `sha1:<hex>` or the OpenID URI.
    pub id: String,
    /// The actor's name, if given.
    pub display_name: String,
    /// What may stand for the employer of a learner created from xAPI: the
    /// e-mail domain, else the account's home page, else `xapi`.
    pub company_hint: String,
}

/// What a statement does.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Record an attempt (and enrol the learner when a program is named).
    Attempt {
        /// Who answered.
        learner: LearnerRef,
        /// The attempt, id derived from the statement id.
        attempt: Attempt,
        /// The program the context names, if any.
        program: Option<String>,
    },
    /// Record a module event (and enrol the learner in its program).
    Activity {
        /// Who did it.
        learner: LearnerRef,
        /// The event, id derived from the statement id.
        activity: Activity,
    },
    /// Undo the effect of the statement with this id.
    Void {
        /// The voided statement's id.
        target: String,
    },
    /// Names something the catalog does not know yet.
    Unresolved {
        /// Why, in words.
        reason: String,
    },
    /// Valid but without effect.
    Ignored {
        /// Why, in words.
        reason: String,
    },
}

/// Maps one statement against the catalog as it is now.
pub fn resolve(statement: &Statement, catalog: &impl CatalogView) -> Effect {
    let verb = verbs::lookup(&statement.verb_id);
    let activity_id = match (&statement.object, verb) {
        (Object::StatementRef { id }, Some(Verb::Voided)) => {
            return Effect::Void { target: id.clone() };
        }
        (Object::Activity { id }, _) => id,
        (Object::StatementRef { .. }, _) => return ignored("its object is a statement"),
        (Object::Other { object_type }, _) => {
            return ignored(&format!("its object is a {object_type}"));
        }
    };
    // A statement about a longer IRI is valid but names no item or module.
    if activity_id.len() > MAX_IRI_BYTES {
        return ignored(&format!(
            "its activity id is longer than {MAX_IRI_BYTES} bytes, the limit of item and module ids"
        ));
    }
    let Some(verb) = verb else {
        return ignored(&format!("verb '{}' has no effect here", statement.verb_id));
    };
    let Some(learner) = learner(&statement.actor) else {
        return ignored("its actor is a group: mastery is tracked per person");
    };
    let program = match program(statement, catalog) {
        Ok(program) => program,
        Err(reason) => return Effect::Unresolved { reason },
    };
    let result = statement.result.as_ref();
    let item = catalog.item_skills(activity_id);
    let module = catalog.has_module(activity_id);
    let prefer_module = matches!(
        verb,
        Verb::Completed | Verb::Attempted | Verb::Experienced | Verb::Progressed
    );
    let attempt_on = |skills: &[String]| match evidence(verb, result) {
        Some((correct, score)) => Effect::Attempt {
            attempt: Attempt {
                attempt_id: derived_id(&statement.id),
                learner_id: learner.id.clone(),
                item_id: activity_id.clone(),
                skill_ids: skills.to_vec(),
                correct,
                score,
                occurred_at: statement.timestamp,
                time_spent_ms: duration(result, MAX_ATTEMPT_MS),
            },
            learner: learner.clone(),
            program: program.clone(),
        },
        None => ignored("no result.success or result.score to learn from"),
    };
    let module_event = || {
        let completed = matches!(verb, Verb::Completed | Verb::Passed | Verb::Failed)
            || result.and_then(|r| r.completion) == Some(true);
        Effect::Activity {
            activity: Activity {
                event_id: derived_id(&statement.id),
                learner_id: learner.id.clone(),
                module_id: activity_id.clone(),
                program_id: program.clone().unwrap_or_default(),
                kind: if completed {
                    ActivityKind::Completed
                } else {
                    ActivityKind::Started
                },
                occurred_at: statement.timestamp,
                time_spent_ms: duration(result, MAX_ACTIVITY_MS),
            },
            learner: learner.clone(),
        }
    };
    match (item, module) {
        (Some(_), true) if prefer_module => module_event(),
        (Some(skills), _) => attempt_on(skills),
        (None, true) if verb == Verb::Answered => {
            ignored("an answer needs an item, and this activity is a module")
        }
        (None, true) => module_event(),
        (None, false) => Effect::Unresolved {
            reason: format!("unknown activity '{activity_id}' (neither an item nor a module)"),
        },
    }
}

fn ignored(reason: &str) -> Effect {
    Effect::Ignored {
        reason: reason.to_string(),
    }
}

/// The learner an agent stands for; `None` for a group.
pub fn learner(actor: &Actor) -> Option<LearnerRef> {
    if actor.group {
        return None;
    }
    let (id, company_hint) = match actor.ifi.as_ref()? {
        Ifi::Mbox(address) => {
            let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
            (address.clone(), domain.to_ascii_lowercase())
        }
        Ifi::MboxSha1(hex) => (format!("sha1:{hex}"), String::new()),
        Ifi::OpenId(uri) => (uri.clone(), String::new()),
        Ifi::Account { home_page, name } => (name.clone(), home_page.clone()),
    };
    Some(LearnerRef {
        id,
        display_name: actor.name.clone().unwrap_or_default(),
        company_hint: if company_hint.is_empty() {
            "xapi".to_string()
        } else {
            company_hint
        },
    })
}

/// The program the statement's context names: the first candidate the
/// catalog knows. A registration that names no known program is an error
/// (the statement waits, unresolved); no registration and no known program
/// means no program.
fn program(statement: &Statement, catalog: &impl CatalogView) -> Result<Option<String>, String> {
    let Some(context) = &statement.context else {
        return Ok(None);
    };
    if let Some(known) = context
        .program_candidates
        .iter()
        .find(|id| catalog.has_program(id))
    {
        return Ok(Some(known.clone()));
    }
    match &context.registration {
        Some(registration) => Err(format!(
            "registration {registration} names no known program (looked at {})",
            if context.program_candidates.is_empty() {
                "no grouping or parent activity".to_string()
            } else {
                context.program_candidates.join(", ")
            }
        )),
        None => Ok(None),
    }
}

/// Correctness and partial credit: `result.success`, else the verb
/// (passed, failed), else the score against 0.5; the score (negative scaled
/// scores count as 0) is soft evidence.
fn evidence(verb: Verb, result: Option<&Outcome>) -> Option<(bool, Option<f64>)> {
    let score = result.and_then(|r| r.scaled).map(|s| s.clamp(0.0, 1.0));
    let correct = result
        .and_then(|r| r.success)
        .or(match verb {
            Verb::Passed => Some(true),
            Verb::Failed => Some(false),
            _ => None,
        })
        .or(score.map(|s| s >= 0.5))?;
    Some((correct, score))
}

fn duration(result: Option<&Outcome>, cap: u64) -> u64 {
    result
        .and_then(|r| r.duration_ms)
        .map_or(0, |ms| ms.min(cap))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::xapi::statement::parse_one;
    use serde_json::{Value, json};

    struct View {
        items: BTreeMap<String, Vec<String>>,
        modules: Vec<String>,
        programs: Vec<String>,
    }

    impl CatalogView for View {
        fn item_skills(&self, id: &str) -> Option<&[String]> {
            self.items.get(id).map(Vec::as_slice)
        }
        fn has_module(&self, id: &str) -> bool {
            self.modules.iter().any(|m| m == id)
        }
        fn has_program(&self, id: &str) -> bool {
            self.programs.iter().any(|p| p == id)
        }
    }

    fn view() -> View {
        View {
            items: BTreeMap::from([("https://q/1".into(), vec!["a".into(), "b".into()])]),
            modules: vec!["https://m/1".into()],
            programs: vec!["excel".into()],
        }
    }

    fn statement(verb: &str, object: &str, result: Value) -> Statement {
        let mut value = json!({
            "id": "11111111-2222-4333-8444-555555555555",
            "actor": {"mbox": "mailto:alice@Acme.com", "name": "Alice"},
            "verb": {"id": format!("http://adlnet.gov/expapi/verbs/{verb}")},
            "object": {"id": object},
            "timestamp": "2026-11-20T09:00:00Z"
        });
        if !result.is_null() {
            value["result"] = result;
        }
        parse_one(&value, "statement", 1_900_000_000_000_000)
            .unwrap()
            .statement
    }

    #[test]
    fn answered_item_is_an_attempt_on_its_skills() {
        let s = statement(
            "answered",
            "https://q/1",
            json!({"success": false, "score": {"scaled": 0.25}, "duration": "PT2M"}),
        );
        let Effect::Attempt {
            learner,
            attempt,
            program,
        } = resolve(&s, &view())
        else {
            panic!("expected an attempt");
        };
        assert_eq!(learner.id, "alice@Acme.com");
        assert_eq!(learner.company_hint, "acme.com");
        assert_eq!(
            attempt.attempt_id,
            "xapi:11111111-2222-4333-8444-555555555555"
        );
        assert_eq!(attempt.skill_ids, ["a", "b"]);
        assert!(!attempt.correct);
        assert_eq!(attempt.score, Some(0.25));
        assert_eq!(attempt.time_spent_ms, 120_000);
        assert_eq!(program, None);
    }

    #[test]
    fn verbs_on_modules_and_items() {
        let v = view();
        let kind = |e: Effect| match e {
            Effect::Activity { activity, .. } => format!("{:?}", activity.kind),
            Effect::Attempt { attempt, .. } => format!("attempt {}", attempt.correct),
            Effect::Unresolved { .. } => "unresolved".into(),
            Effect::Ignored { .. } => "ignored".into(),
            Effect::Void { .. } => "void".into(),
        };
        let m = "https://m/1";
        assert_eq!(
            kind(resolve(&statement("completed", m, Value::Null), &v)),
            "Completed"
        );
        assert_eq!(
            kind(resolve(&statement("experienced", m, Value::Null), &v)),
            "Started"
        );
        assert_eq!(
            kind(resolve(
                &statement("progressed", m, json!({"completion": true})),
                &v
            )),
            "Completed"
        );
        assert_eq!(
            kind(resolve(
                &statement("passed", "https://q/1", Value::Null),
                &v
            )),
            "attempt true"
        );
        assert_eq!(
            kind(resolve(
                &statement("failed", "https://q/1", Value::Null),
                &v
            )),
            "attempt false"
        );
        assert_eq!(
            kind(resolve(
                &statement("answered", "https://q/1", Value::Null),
                &v
            )),
            "ignored"
        );
        assert_eq!(
            kind(resolve(
                &statement("answered", "https://q/2", Value::Null),
                &v
            )),
            "unresolved"
        );
        assert_eq!(
            kind(resolve(
                &statement("launched", "https://q/1", Value::Null),
                &v
            )),
            "ignored"
        );
        let long = format!("https://q/{}", "x".repeat(600));
        let long = statement("answered", &long, Value::Null);
        assert_eq!(kind(resolve(&long, &v)), "ignored");
        assert_eq!(
            kind(resolve(
                &statement(
                    "completed",
                    "https://q/1",
                    json!({"score": {"scaled": 0.9}})
                ),
                &v
            )),
            "attempt true"
        );
    }

    #[test]
    fn a_registration_needs_a_known_program() {
        let v = view();
        let mut s = statement("completed", "https://m/1", Value::Null);
        s.context = Some(crate::domain::xapi::statement::Context {
            registration: Some("ec531277-b57b-4c15-8d91-d292c5b2b8f7".into()),
            program_candidates: vec!["https://lms/course/9".into()],
        });
        assert!(matches!(resolve(&s, &v), Effect::Unresolved { .. }));
        s.context
            .as_mut()
            .unwrap()
            .program_candidates
            .push("excel".into());
        match resolve(&s, &v) {
            Effect::Activity { activity, .. } => assert_eq!(activity.program_id, "excel"),
            other => panic!("{other:?}"),
        }
    }
}

//! From a statement to what it means for the engine: an attempt on an item
//! (Q-matrix), a module event, an enrolment, a voiding, or nothing yet.
//!
//! The verb table (`verbs.rs`) says what each verb does to an item, a
//! module or a program. This file finds which of them a statement names,
//! and in which program:
//!
//! - **The object.** Its id, or one of the `external_ids` a program,
//!   module or item carries (an LMS's activity IRIs); else the id without
//!   its fragment (`.../sco#lesson` is `.../sco`); else, for a per-attempt
//!   id (Moodle's `attempt.php?attempt=N&cmid=M`, a review slot), the first
//!   `parent`, `grouping` or `other` context activity that is a module or
//!   an item (an answer takes only an item). Unknown: the statement waits,
//!   and the activity is listed for mapping (`ListUnmappedActivities`).
//! - **The program.** The program extension; else the first context
//!   activity that is a program or an alias of one (Moodle's course URL in
//!   `grouping`, Open edX's course in `parent`); else a registration that
//!   is an alias; else the learner's only active enrolment. A context that
//!   names a course (by its definition type) the engine does not know, for
//!   a learner with no single enrolment, makes the statement wait for that
//!   course to be mapped; otherwise the statement applies without program.
//!   A registration is never required.
//! - **Correctness.** `result.success`; else the verb (passed, failed);
//!   else `result.score.scaled` against the item's pass mark (default
//!   [`DEFAULT_PASS_MARK`]); else `result.response` against the object's
//!   `correctResponsesPattern` (`responses.rs`).

use super::record::derived_id;
use super::responses;
use super::statement::{
    Actor, ContextList, Definition, Ifi, Object, Outcome, PLAYED_SEGMENTS, Statement,
};
use super::verbs::{self, Verb};
use crate::domain::activity::Activity;
use crate::domain::limits::{MAX_ATTEMPT_TIME_MS, MAX_IRI_BYTES, MAX_MODULE_TIME_MS};
use crate::domain::mastery::Attempt;
use crate::domain::validate;
use crate::error::Error;

/// The scaled score from which an answer counts as right, for items that
/// set no pass mark of their own.
pub const DEFAULT_PASS_MARK: f64 = 0.5;

/// An item as the mapping reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemRef<'a> {
    /// The item's own id (the attempt's `item_id`).
    pub id: &'a str,
    /// The skills it tests.
    pub skill_ids: &'a [String],
    /// Its pass mark, if it sets one.
    pub pass_mark: Option<f64>,
}

/// What the mapping needs to know of the catalog and enrolments. Every
/// lookup takes an activity id and accepts the object's own id or one of
/// its external ids.
pub trait CatalogView {
    /// The item `id` names.
    fn item(&self, id: &str) -> Option<ItemRef<'_>>;
    /// The id of the module `id` names.
    fn module(&self, id: &str) -> Option<&str>;
    /// The id of the program `id` names.
    fn program(&self, id: &str) -> Option<String>;
    /// Whether `id` was marked as ignored (`MapActivity` with `ignore`).
    fn ignored(&self, id: &str) -> bool;
    /// The programs `learner` is actively enrolled in.
    fn enrolments(&self, learner: &str) -> Vec<String>;
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
    /// The statement's `context.language` (empty when it gave none): the
    /// language of a learner created from xAPI, so that their
    /// recommendations are in it.
    pub language: String,
}

/// An activity the catalog does not know, which a waiting statement needs
/// mapped (or ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct Unknown {
    /// The activity IRI.
    pub id: String,
    /// Its definition as the statement gave it.
    pub definition: Option<Definition>,
}

/// What a statement does.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Record an attempt (and enrol the learner when a program is found).
    Attempt {
        /// Who answered.
        learner: LearnerRef,
        /// The attempt, id derived from the statement id.
        attempt: Attempt,
        /// The statement's program, if one was found.
        program: Option<String>,
    },
    /// Record a module event (and enrol the learner in its program).
    Activity {
        /// Who did it.
        learner: LearnerRef,
        /// The event, id derived from the statement id.
        activity: Activity,
    },
    /// The learner is in this program (a course launched, registered,
    /// completed...).
    Enrolment {
        /// Who.
        learner: LearnerRef,
        /// The program.
        program: String,
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
        /// The activities whose mapping (or ignoring) would resolve it.
        unknown: Vec<Unknown>,
    },
    /// Valid but without effect.
    Ignored {
        /// Why, in words.
        reason: String,
    },
    /// Refused: what it would record breaks a limit that the gRPC edge
    /// refuses too (a time spent over its cap).
    Refused {
        /// The offending field, within the statement (`result.duration`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a statement's object turned out to be.
enum Target<'a> {
    Item(ItemRef<'a>),
    Module(&'a str),
    Program(String),
}

/// Maps one statement against the catalog as it is now.
pub fn resolve(statement: &Statement, catalog: &impl CatalogView) -> Effect {
    let verb = verbs::lookup(&statement.verb_id).map(|(verb, _)| verb);
    let (activity_id, definition) = match (&statement.object, verb) {
        (Object::StatementRef { id }, Some(Verb::Voided)) => {
            return Effect::Void { target: id.clone() };
        }
        (Object::Activity { id, definition }, _) => (id, definition),
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
    let Some(mut learner) = learner(&statement.actor) else {
        return ignored("its actor is a group: mastery is tracked per person");
    };
    if let Some(language) = statement.context.as_ref().and_then(|c| c.language.clone()) {
        learner.language = language;
    }
    if catalog.ignored(activity_id) {
        return ignored(&format!("activity '{activity_id}' is mapped as ignored"));
    }
    let Some(target) = target(statement, activity_id, verb, catalog) else {
        return unresolved(
            statement,
            activity_id,
            definition.as_ref(),
            &learner,
            catalog,
        );
    };
    match target {
        Target::Program(program) if verb.enrols() => Effect::Enrolment { learner, program },
        Target::Program(_) => ignored("this verb has no effect on a program"),
        Target::Item(item) => attempt(statement, verb, item, definition.as_ref(), learner, catalog),
        Target::Module(module) => activity(statement, verb, module, learner, catalog),
    }
}

/// The effect of a statement whose activity the catalog does not know:
/// unresolved, listing at once everything a mapping would need.
fn unresolved(
    statement: &Statement,
    activity_id: &str,
    definition: Option<&Definition>,
    learner: &LearnerRef,
    catalog: &impl CatalogView,
) -> Effect {
    // Everything a mapping would need, listed at once: the object (or,
    // for a per-attempt id, the activities of its context), and an
    // unknown course the program would come from.
    let mut unknown = if is_per_attempt(definition) {
        context_candidates(statement, catalog)
    } else {
        Vec::new()
    };
    if unknown.is_empty() {
        unknown.push(Unknown {
            id: activity_id.to_string(),
            definition: definition.cloned(),
        });
    }
    if let Err(waiting) = program(statement, learner, catalog) {
        if let Effect::Unresolved {
            unknown: courses, ..
        } = *waiting
        {
            unknown.extend(courses);
        }
    }
    Effect::Unresolved {
        reason: format!(
            "unknown activity '{activity_id}' (no program, module or item has this id or external id)"
        ),
        unknown,
    }
}

/// The effect of an answer to `item`.
fn attempt(
    statement: &Statement,
    verb: Verb,
    item: ItemRef<'_>,
    definition: Option<&Definition>,
    learner: LearnerRef,
    catalog: &impl CatalogView,
) -> Effect {
    let result = statement.result.as_ref();
    if !verb.may_attempt() {
        return ignored("this verb is no answer: it has no effect on an item");
    }
    let Some((correct, score)) = evidence(verb, result, item, definition) else {
        return ignored(
            "no result.success, result.score or scorable result.response to learn from",
        );
    };
    let program = match program(statement, &learner, catalog) {
        Ok(program) => program,
        Err(unresolved) => return *unresolved,
    };
    let time_spent_ms = match time_spent(result, MAX_ATTEMPT_TIME_MS) {
        Ok(ms) => ms,
        Err(refused) => return *refused,
    };
    Effect::Attempt {
        attempt: Attempt {
            attempt_id: derived_id(&statement.id),
            learner_id: learner.id.clone(),
            item_id: item.id.to_string(),
            skill_ids: item.skill_ids.to_vec(),
            correct,
            score,
            occurred_at: statement.timestamp,
            time_spent_ms,
        },
        learner,
        program,
    }
}

/// The effect of a module event on `module`.
fn activity(
    statement: &Statement,
    verb: Verb,
    module: &str,
    learner: LearnerRef,
    catalog: &impl CatalogView,
) -> Effect {
    let result = statement.result.as_ref();
    let completion = result.and_then(|r| r.completion) == Some(true);
    let Some(kind) = verb.module_event(completion) else {
        return ignored("an answer needs an item, and this activity is a module");
    };
    let program = match program(statement, &learner, catalog) {
        Ok(program) => program,
        Err(unresolved) => return *unresolved,
    };
    let time_spent_ms = if verb.counts_time() {
        match time_spent(result, MAX_MODULE_TIME_MS) {
            Ok(ms) => ms,
            Err(refused) => return *refused,
        }
    } else {
        0
    };
    Effect::Activity {
        activity: Activity {
            event_id: derived_id(&statement.id),
            learner_id: learner.id.clone(),
            module_id: module.to_string(),
            program_id: program.unwrap_or_default(),
            kind,
            occurred_at: statement.timestamp,
            time_spent_ms,
        },
        learner,
    }
}

/// What `id` names: an item, a module or a program, by id or external id,
/// then without its fragment. Where an item and a module share the id,
/// answers and verdicts go to the item, the rest to the module.
fn lookup<'a>(id: &str, verb: Verb, catalog: &'a impl CatalogView) -> Option<Target<'a>> {
    let find = |id: &str| {
        let item = catalog.item(id);
        let module = catalog.module(id);
        let item_first = verb.is_answer() || verb.verdict().is_some() || verb == Verb::Scored;
        match (item, module) {
            (Some(item), Some(_)) if item_first => Some(Target::Item(item)),
            (_, Some(module)) => Some(Target::Module(module)),
            (Some(item), None) => Some(Target::Item(item)),
            (None, None) => catalog.program(id).map(Target::Program),
        }
    };
    find(id).or_else(|| {
        let (base, _) = id.split_once('#')?;
        find(base)
    })
}

/// The object's target, else (a per-attempt id) the first parent,
/// grouping or other context activity that is a module or an item.
fn target<'a>(
    statement: &Statement,
    id: &str,
    verb: Verb,
    catalog: &'a impl CatalogView,
) -> Option<Target<'a>> {
    if let Some(found) = lookup(id, verb, catalog) {
        return Some(found);
    }
    let context = statement.context.as_ref()?;
    context
        .activities
        .iter()
        .filter(|a| a.list != ContextList::Category)
        .find_map(|a| match lookup(&a.id, verb, catalog)? {
            Target::Item(item) => Some(Target::Item(item)),
            Target::Module(module) if !verb.is_answer() => Some(Target::Module(module)),
            _ => None,
        })
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
        language: String::new(),
    })
}

/// Whether an object's type says it is one attempt at something else (a
/// Moodle quiz attempt or review slot): such ids are new every time, so
/// what needs mapping is the activity of its context.
fn is_per_attempt(definition: Option<&Definition>) -> bool {
    definition.is_some_and(|d| d.kind.ends_with("/attempt") || d.kind.contains("/review"))
}

/// The context activities a per-attempt object may belong to: parent,
/// grouping and other, without courses, the platform and other attempts.
fn context_candidates(statement: &Statement, catalog: &impl CatalogView) -> Vec<Unknown> {
    let Some(context) = &statement.context else {
        return Vec::new();
    };
    context
        .activities
        .iter()
        .filter(|a| a.list != ContextList::Category && !catalog.ignored(&a.id))
        .filter(|a| {
            let d = a.definition.as_ref();
            !is_course(d)
                && !is_per_attempt(d)
                && !d.is_some_and(|d| d.kind.ends_with("/lms") || d.kind.ends_with("/section"))
                && catalog.program(&a.id).is_none()
        })
        .map(|a| Unknown {
            id: a.id.clone(),
            definition: a.definition.clone(),
        })
        .collect()
}

/// Whether a context activity's type says it is a course.
fn is_course(definition: Option<&Definition>) -> bool {
    definition.is_some_and(|d| d.kind.ends_with("/course"))
}

/// The statement's program (see the module documentation); `Err` with the
/// waiting effect when the context names a course nobody mapped and the
/// learner's enrolments do not settle it.
fn program(
    statement: &Statement,
    learner: &LearnerRef,
    catalog: &impl CatalogView,
) -> Result<Option<String>, Box<Effect>> {
    let context = statement.context.as_ref();
    if let Some(named) = context.and_then(|c| c.program.as_ref()) {
        return match catalog.program(named) {
            Some(program) => Ok(Some(program)),
            None => Err(Box::new(Effect::Unresolved {
                reason: format!("the program extension names unknown program '{named}'"),
                unknown: vec![Unknown {
                    id: named.clone(),
                    definition: None,
                }],
            })),
        };
    }
    let from_context = context.and_then(|c| {
        c.activities
            .iter()
            .find_map(|a| catalog.program(&a.id))
            .or_else(|| c.registration.as_deref().and_then(|r| catalog.program(r)))
    });
    if let Some(program) = from_context {
        return Ok(Some(program));
    }
    let enrolments = catalog.enrolments(&learner.id);
    if let [only] = enrolments.as_slice() {
        return Ok(Some(only.clone()));
    }
    let courses: Vec<Unknown> = context
        .map(|c| {
            c.activities
                .iter()
                .filter(|a| is_course(a.definition.as_ref()) && !catalog.ignored(&a.id))
                .map(|a| Unknown {
                    id: a.id.clone(),
                    definition: a.definition.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    if courses.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = courses.iter().map(|c| c.id.as_str()).collect();
    Err(Box::new(Effect::Unresolved {
        reason: format!(
            "unknown course {} (map it to a program or ignore it); learner '{}' is enrolled in {}",
            names.join(", "),
            learner.id,
            if enrolments.is_empty() {
                "no program".to_string()
            } else {
                enrolments.join(", ")
            }
        ),
        unknown: courses,
    }))
}

/// Correctness and partial credit: `result.success`, else the verb
/// (passed, failed), else the score against the item's pass mark, else the
/// response against the correct responses; the score (negative scaled
/// scores count as 0) is soft evidence.
fn evidence(
    verb: Verb,
    result: Option<&Outcome>,
    item: ItemRef<'_>,
    definition: Option<&Definition>,
) -> Option<(bool, Option<f64>)> {
    let score = result.and_then(|r| r.scaled).map(|s| s.clamp(0.0, 1.0));
    let pass_mark = item.pass_mark.unwrap_or(DEFAULT_PASS_MARK);
    let from_response = || {
        let response = result?.response.as_deref()?;
        let definition = definition?;
        responses::is_correct(
            &definition.interaction_type,
            &definition.correct_responses,
            response,
        )
    };
    let correct = result
        .and_then(|r| r.success)
        .or(verb.verdict())
        .or(score.map(|s| s >= pass_mark))
        .or_else(from_response)?;
    Some((correct, score))
}

/// The time spent a statement reports (0 without one), refused over `cap`
/// as the gRPC edge refuses it ([`validate::time_spent`]).
fn time_spent(result: Option<&Outcome>, cap: u64) -> Result<u64, Box<Effect>> {
    let Some(result) = result else { return Ok(0) };
    let Some(ms) = result.duration_ms else {
        return Ok(0);
    };
    let field = if result.duration_played {
        format!("result.extensions[\"{PLAYED_SEGMENTS}\"]")
    } else {
        "result.duration".to_string()
    };
    validate::time_spent(&field, ms, cap).map_err(|err| {
        Box::new(Effect::Refused {
            reason: match err {
                Error::InvalidArgument { reason, .. } => reason,
                other => other.to_string(),
            },
            field,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::xapi::statement::parse_one;
    use serde_json::{Value, json};

    /// A catalog: items (id -> skills, pass mark), modules and programs,
    /// each with external ids, and one learner's enrolments.
    #[derive(Default)]
    struct View {
        items: BTreeMap<String, (Vec<String>, Option<f64>)>,
        modules: Vec<String>,
        programs: Vec<String>,
        aliases: BTreeMap<String, String>,
        ignored: Vec<String>,
        enrolments: Vec<String>,
    }

    impl View {
        fn own<'a>(&self, id: &'a str) -> &'a str {
            id
        }
        fn canonical<'a>(&'a self, id: &'a str) -> &'a str {
            self.aliases.get(id).map_or(self.own(id), String::as_str)
        }
    }

    impl CatalogView for View {
        fn item(&self, id: &str) -> Option<ItemRef<'_>> {
            let (key, (skills, pass_mark)) = self.items.get_key_value(self.canonical(id))?;
            Some(ItemRef {
                id: key,
                skill_ids: skills,
                pass_mark: *pass_mark,
            })
        }
        fn module(&self, id: &str) -> Option<&str> {
            let id = self.canonical(id);
            self.modules.iter().find(|m| *m == id).map(String::as_str)
        }
        fn program(&self, id: &str) -> Option<String> {
            let id = self.canonical(id);
            self.programs.iter().find(|p| *p == id).cloned()
        }
        fn ignored(&self, id: &str) -> bool {
            self.ignored.iter().any(|i| i == id)
        }
        fn enrolments(&self, _learner: &str) -> Vec<String> {
            self.enrolments.clone()
        }
    }

    fn view() -> View {
        View {
            items: BTreeMap::from([
                ("https://q/1".into(), (vec!["a".into(), "b".into()], None)),
                ("q-strict".into(), (vec!["a".into()], Some(0.8))),
            ]),
            modules: vec!["https://m/1".into(), "m-quiz".into()],
            programs: vec!["excel".into(), "sql".into()],
            aliases: BTreeMap::from([
                ("https://lms/course/9".into(), "excel".into()),
                ("https://lms/mod/quiz/view.php?id=4".into(), "m-quiz".into()),
                ("https://lms/question/7".into(), "q-strict".into()),
            ]),
            ..View::default()
        }
    }

    fn statement_with(verb: &str, object: Value, result: Value, context: Value) -> Statement {
        let verb = if verb.contains("://") {
            verb.to_string()
        } else {
            format!("http://adlnet.gov/expapi/verbs/{verb}")
        };
        let mut value = json!({
            "id": "11111111-2222-4333-8444-555555555555",
            "actor": {"mbox": "mailto:alice@Acme.com", "name": "Alice"},
            "verb": {"id": verb},
            "object": object,
            "timestamp": "2026-11-20T09:00:00Z"
        });
        if !result.is_null() {
            value["result"] = result;
        }
        if !context.is_null() {
            value["context"] = context;
        }
        parse_one(&value, "statement", 1_900_000_000_000_000)
            .unwrap()
            .statement
    }

    fn statement(verb: &str, object: &str, result: Value) -> Statement {
        statement_with(verb, json!({ "id": object }), result, Value::Null)
    }

    /// The effect in a word, for compact assertions.
    fn kind(e: Effect) -> String {
        match e {
            Effect::Activity { activity, .. } => {
                format!(
                    "{:?} {} {}",
                    activity.kind, activity.module_id, activity.program_id
                )
            }
            Effect::Attempt {
                attempt, program, ..
            } => format!(
                "attempt {} {} {}",
                attempt.item_id,
                attempt.correct,
                program.unwrap_or_default()
            ),
            Effect::Enrolment { program, .. } => format!("enrolment {program}"),
            Effect::Unresolved { unknown, .. } => format!(
                "unresolved {}",
                unknown
                    .iter()
                    .map(|u| u.id.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Effect::Ignored { .. } => "ignored".into(),
            Effect::Void { .. } => "void".into(),
            Effect::Refused { field, reason } => format!("refused {field}: {reason}"),
        }
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

    /// One statement per row of the verb table, on a module, an item and a
    /// program.
    #[test]
    fn every_verb_of_the_table() {
        let v = view();
        let m = "https://m/1";
        let q = "https://q/1";
        let on = |verb: &str, object: &str, result: Value| {
            kind(resolve(&statement(verb, object, result), &v))
        };
        let tincan = |verb: &str| format!("http://id.tincanapi.com/verb/{verb}");
        let w3 = |path: &str| format!("https://w3id.org/xapi/{path}");
        for (verb, want) in [
            ("completed", "Completed"),
            ("passed", "Completed"),
            ("failed", "Completed"),
            ("mastered", "Completed"),
            ("scored", "Completed"),
            ("attempted", "Started"),
            ("experienced", "Started"),
            ("launched", "Started"),
            ("initialized", "Started"),
            ("resumed", "Started"),
            ("interacted", "Started"),
            ("terminated", "Started"),
            ("suspended", "Started"),
            ("exited", "Started"),
            ("progressed", "Started"),
        ] {
            assert_eq!(on(verb, m, Value::Null), format!("{want} {m} "), "{verb}");
        }
        for (verb, want) in [
            (tincan("viewed"), "Started"),
            (tincan("finished"), "Completed"),
            (
                "http://activitystrea.ms/schema/1.0/start".to_string(),
                "Started",
            ),
            (w3("adl/verbs/satisfied"), "Completed"),
            (w3("adl/verbs/waived"), "Completed"),
            (w3("adl/verbs/abandoned"), "Started"),
            (w3("video/verbs/played"), "Started"),
            (w3("video/verbs/paused"), "Started"),
            (w3("video/verbs/seeked"), "Started"),
            (w3("tla/verbs/scored"), "Completed"),
        ] {
            assert_eq!(on(&verb, m, Value::Null), format!("{want} {m} "), "{verb}");
        }
        assert_eq!(
            on("progressed", m, json!({"completion": true})),
            format!("Completed {m} ")
        );
        assert_eq!(on("answered", m, json!({"success": true})), "ignored");
        assert_eq!(on("registered", m, Value::Null), "ignored");
        // On an item: answers with evidence.
        for verb in ["answered", "responded", "completed", "attempted", "scored"] {
            assert_eq!(
                on(verb, q, json!({"success": true})),
                format!("attempt {q} true "),
                "{verb}"
            );
        }
        assert_eq!(
            on(
                &w3("acrossx/verbs/evaluated"),
                q,
                json!({"score": {"scaled": 0.9}})
            ),
            format!("attempt {q} true ")
        );
        assert_eq!(on("passed", q, Value::Null), format!("attempt {q} true "));
        assert_eq!(on("failed", q, Value::Null), format!("attempt {q} false "));
        assert_eq!(on("answered", q, Value::Null), "ignored");
        assert_eq!(on("launched", q, Value::Null), "ignored");
        // On a program: enrolment.
        for verb in ["launched", "registered", "completed", "initialized"] {
            assert_eq!(
                on(verb, "https://lms/course/9", Value::Null),
                "enrolment excel",
                "{verb}"
            );
        }
        assert_eq!(
            on("terminated", "https://lms/course/9", Value::Null),
            "ignored"
        );
        // Unknown: waits, naming the activity; unknown verbs do nothing.
        assert_eq!(
            on("answered", "https://q/2", Value::Null),
            "unresolved https://q/2"
        );
        assert_eq!(on("http://example.com/liked", q, Value::Null), "ignored");
        let long = format!("https://q/{}", "x".repeat(600));
        assert_eq!(on("answered", &long, Value::Null), "ignored");
    }

    #[test]
    fn waived_and_video_time() {
        let v = view();
        let w = statement(
            "https://w3id.org/xapi/adl/verbs/waived",
            "https://m/1",
            json!({"duration": "PT5M"}),
        );
        let Effect::Activity { activity, .. } = resolve(&w, &v) else {
            panic!()
        };
        assert_eq!(activity.time_spent_ms, 0);
        let paused = statement(
            "https://w3id.org/xapi/video/verbs/paused",
            "https://m/1",
            json!({"extensions": {"https://w3id.org/xapi/video/extensions/played-segments": "0[.]30[,]60[.]90"}}),
        );
        let Effect::Activity { activity, .. } = resolve(&paused, &v) else {
            panic!()
        };
        assert_eq!(activity.time_spent_ms, 60_000);
    }

    /// Times spent over the caps the gRPC edge holds are refused, naming
    /// where the time came from; a verb that counts no time ignores it.
    #[test]
    fn time_spent_over_the_caps_is_refused() {
        let v = view();
        let on = |verb: &str, object: &str, result: Value| {
            kind(resolve(&statement(verb, object, result), &v))
        };
        let day = json!({"success": true, "duration": "PT24H"});
        assert_eq!(
            on("answered", "https://q/1", day),
            "attempt https://q/1 true "
        );
        assert_eq!(
            on(
                "answered",
                "https://q/1",
                json!({"success": true, "duration": "PT24H0.001S"})
            ),
            format!("refused result.duration: must be at most {MAX_ATTEMPT_TIME_MS} ms")
        );
        // A module event may report up to a week, the longest module.
        assert!(
            on("experienced", "https://m/1", json!({"duration": "P7D"})).starts_with("Started")
        );
        assert_eq!(
            on("experienced", "https://m/1", json!({"duration": "P8D"})),
            format!("refused result.duration: must be at most {MAX_MODULE_TIME_MS} ms")
        );
        assert!(
            on(
                "https://w3id.org/xapi/adl/verbs/waived",
                "https://m/1",
                json!({"duration": "P8D"})
            )
            .starts_with("Completed")
        );
        let played = json!({"extensions": {PLAYED_SEGMENTS: "0[.]700000"}});
        assert_eq!(
            on(
                "https://w3id.org/xapi/video/verbs/paused",
                "https://m/1",
                played
            ),
            format!(
                "refused result.extensions[\"{PLAYED_SEGMENTS}\"]: must be at most {MAX_MODULE_TIME_MS} ms"
            )
        );
    }

    #[test]
    fn external_ids_fragments_and_per_attempt_ids() {
        let v = view();
        let on = |verb: &str, object: Value, context: Value| {
            kind(resolve(
                &statement_with(verb, object, json!({"success": true}), context),
                &v,
            ))
        };
        // An alias of an item; the pass mark is the item's.
        assert_eq!(
            on(
                "answered",
                json!({"id": "https://lms/question/7"}),
                Value::Null
            ),
            "attempt q-strict true "
        );
        // A fragment id resolves through its base.
        assert_eq!(
            on(
                "completed",
                json!({"id": "https://m/1#lesson"}),
                Value::Null
            ),
            "Completed https://m/1 "
        );
        // Moodle's attempt page resolves through its quiz in the context,
        // and the course URL there names the program.
        let moodle = json!({"contextActivities": {
            "grouping": [
                {"id": "https://lms", "definition": {"type": "http://id.tincanapi.com/activitytype/lms"}},
                {"id": "https://lms/course/9", "definition": {"type": "http://id.tincanapi.com/activitytype/lms/course"}},
                {"id": "https://lms/mod/quiz/view.php?id=4"}
            ],
            "category": [{"id": "http://moodle.org"}]
        }});
        assert_eq!(
            on(
                "http://id.tincanapi.com/verb/viewed",
                json!({"id": "https://lms/mod/quiz/attempt.php?attempt=12&cmid=4"}),
                moodle.clone()
            ),
            "Started m-quiz excel"
        );
        // An answer never resolves to the quiz module: the question waits.
        assert_eq!(
            on("answered", json!({"id": "https://lms/question/99"}), moodle),
            "unresolved https://lms/question/99"
        );
    }

    #[test]
    fn the_program_comes_from_context_registration_or_the_only_enrolment() {
        let mut v = view();
        let on = |v: &View, context: Value| {
            kind(resolve(
                &statement_with(
                    "completed",
                    json!({"id": "https://m/1"}),
                    Value::Null,
                    context,
                ),
                v,
            ))
        };
        let course = |id: &str| {
            json!({"registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
                   "contextActivities": {"parent": [{"id": id,
                       "definition": {"type": "http://adlnet.gov/expapi/activities/course"}}]}})
        };
        // A registration that is no alias is no obstacle.
        assert_eq!(
            on(&v, course("https://lms/course/9")),
            "Completed https://m/1 excel"
        );
        // An unknown course, a learner without a single enrolment: wait.
        assert_eq!(
            on(&v, course("https://lms/course/10")),
            "unresolved https://lms/course/10"
        );
        v.enrolments = vec!["excel".into(), "sql".into()];
        match resolve(
            &statement_with(
                "completed",
                json!({"id": "https://m/1"}),
                Value::Null,
                course("https://lms/course/10"),
            ),
            &v,
        ) {
            Effect::Unresolved { reason, .. } => {
                assert!(reason.contains("enrolled in excel, sql"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // The only enrolment settles it.
        v.enrolments = vec!["sql".into()];
        assert_eq!(
            on(&v, course("https://lms/course/10")),
            "Completed https://m/1 sql"
        );
        // Ignored courses are no obstacle; no context, no enrolment: none.
        v.enrolments.clear();
        v.ignored.push("https://lms/course/10".into());
        assert_eq!(
            on(&v, course("https://lms/course/10")),
            "Completed https://m/1 "
        );
        assert_eq!(on(&v, Value::Null), "Completed https://m/1 ");
        // A registration that is an alias names the program.
        v.aliases
            .insert("ec531277-b57b-4c15-8d91-d292c5b2b8f7".into(), "sql".into());
        assert_eq!(
            on(
                &v,
                json!({"registration": "EC531277-B57B-4C15-8D91-D292C5B2B8F7"})
            ),
            "Completed https://m/1 sql"
        );
    }

    #[test]
    fn correctness_from_score_pass_mark_and_response() {
        let v = view();
        let answer = |object: Value, result: Value| {
            kind(resolve(
                &statement_with("answered", object, result, Value::Null),
                &v,
            ))
        };
        // Default pass mark 0.5; the item's own 0.8.
        assert_eq!(
            answer(
                json!({"id": "https://q/1"}),
                json!({"score": {"scaled": 0.6}})
            ),
            "attempt https://q/1 true "
        );
        assert_eq!(
            answer(
                json!({"id": "https://lms/question/7"}),
                json!({"score": {"scaled": 0.6}})
            ),
            "attempt q-strict false "
        );
        // No success, no score: the response against the pattern.
        let question = |pattern: &str| {
            json!({"id": "https://q/1", "definition": {
                "interactionType": "choice", "correctResponsesPattern": [pattern]}})
        };
        assert_eq!(
            answer(question("b"), json!({"response": "b"})),
            "attempt https://q/1 true "
        );
        assert_eq!(
            answer(question("b"), json!({"response": "c"})),
            "attempt https://q/1 false "
        );
        assert_eq!(
            answer(question("b"), json!({"completion": true})),
            "ignored"
        );
    }
}

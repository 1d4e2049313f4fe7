//! The xAPI statement model and its validation.
//!
//! A statement arrives as JSON; [`parse_one`] walks it by hand rather than
//! through a derived deserializer so that every refusal names the exact
//! field (`statement[3].result.score.scaled`), as the gRPC edge does. Only
//! what the engine reads is modelled; the rest is kept verbatim in
//! [`Parsed::raw`] (what an LRS stores), and the canonical form is hashed
//! for idempotency.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::duration;
use crate::domain::learner::Micros;
use crate::error::{Error, Result};

use crate::domain::validate::event_micros;
/// The extension a statement's context may carry to name its program
/// explicitly, when `contextActivities.grouping` does not.
pub const PROGRAM_EXTENSION: &str = "https://spoc-engine.dev/xapi/extensions/program-id";

/// Top-level properties of a statement (xAPI 1.0.3, section 2.2).
const STATEMENT_PROPERTIES: [&str; 11] = [
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
];

/// One statement, as far as the engine reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// The statement id (a lowercase UUID), given or derived from content.
    pub id: String,
    /// Who did it.
    pub actor: Actor,
    /// The verb IRI.
    pub verb_id: String,
    /// What it was done to.
    pub object: Object,
    /// The outcome, if any.
    pub result: Option<Outcome>,
    /// Registration and surrounding activities, if any.
    pub context: Option<Context>,
    /// When it happened (the statement's `timestamp`, else when received).
    pub timestamp: Micros,
}

/// The actor of a statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    /// Its inverse functional identifier; `None` for an anonymous group.
    pub ifi: Option<Ifi>,
    /// Display name, if given.
    pub name: Option<String>,
    /// Whether the actor is a group rather than one agent.
    pub group: bool,
}

/// An agent's inverse functional identifier: what names a person in xAPI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Ifi {
    /// `mailto:` address, without the scheme.
    Mbox(String),
    /// SHA-1 of the `mailto:` IRI, 40 hex digits.
    MboxSha1(String),
    /// An OpenID URI.
    OpenId(String),
    /// An account on a system: Moodle and Open edX send these.
    Account {
        /// The system's home page (`https://moodle.example.com`).
        home_page: String,
        /// The user's id or login there.
        name: String,
    },
}

/// The object of a statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Object {
    /// An activity, by IRI.
    Activity {
        /// The activity IRI.
        id: String,
        /// What the emitter says the activity is, if anything: kept for
        /// discovery (an unmapped activity is listed with it) and for
        /// scoring answers against `correctResponsesPattern`.
        definition: Option<Definition>,
    },
    /// Another statement, by id (what `voided` points at).
    StatementRef {
        /// The referenced statement's id, lowercase.
        id: String,
    },
    /// An agent, group or sub-statement (or an `objectType` outside the
    /// specification that some emitters send, e.g. Open edX's
    /// `GroupActivity`): stored, no effect here.
    Other {
        /// Its `objectType`.
        object_type: String,
    },
}

/// An activity's `definition`, as far as the engine reads it. Read
/// leniently: a malformed member is left empty rather than refused, since
/// the specification lets an LRS ignore definitions it does not trust.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Definition {
    /// `name`, in English when given, else the first language.
    pub name: String,
    /// `description`, in the same way.
    pub description: String,
    /// `type`, an activity type IRI (`http://adlnet.gov/expapi/activities/cmi.interaction`).
    pub kind: String,
    /// `interactionType` (`choice`, `true-false`, `fill-in`, ...).
    pub interaction_type: String,
    /// `correctResponsesPattern`: the responses that count as right.
    pub correct_responses: Vec<String>,
}

/// The `result` of a statement.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// `result.success`.
    pub success: Option<bool>,
    /// `result.completion`.
    pub completion: Option<bool>,
    /// `result.score.scaled`, or `(raw - min) / (max - min)` when only
    /// those are given; in `[-1, 1]`.
    pub scaled: Option<f64>,
    /// `result.duration`, in milliseconds; else the time a video profile
    /// statement says was watched (`played-segments`).
    pub duration_ms: Option<u64>,
    /// Whether `duration_ms` is the time watched (`played-segments`), not
    /// `result.duration`: what a refusal names.
    #[serde(default)]
    pub duration_played: bool,
    /// `result.response`: what the learner answered.
    pub response: Option<String>,
}

/// The `context` of a statement, as far as programs and per-attempt
/// activities go.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Context {
    /// `context.registration`, lowercase UUID.
    pub registration: Option<String>,
    /// The program the [`PROGRAM_EXTENSION`] names explicitly, if any.
    pub program: Option<String>,
    /// `contextActivities`, in the order `parent`, `grouping`, `category`,
    /// `other` (each list in its own order): where a statement's course
    /// and the activity a per-attempt object belongs to are found.
    pub activities: Vec<ContextActivity>,
    /// `context.language`, canonical, when it is a well-formed BCP 47 tag:
    /// the language the learner took the activity in, which is the only
    /// word an LMS gives of a learner created from xAPI (a malformed tag
    /// is left out, not refused: it says nothing of the learning).
    #[serde(default)]
    pub language: Option<String>,
}

/// Which list of `contextActivities` an activity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContextList {
    /// `parent`: what the object is directly part of.
    Parent,
    /// `grouping`: what it is indirectly part of (the course).
    Grouping,
    /// `category`: tags (profiles, the LMS).
    Category,
    /// `other`: anything else related.
    Other,
}

/// One context activity: its id, list and definition type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextActivity {
    /// The activity IRI.
    pub id: String,
    /// The list it came from.
    pub list: ContextList,
    /// Its definition, if given (its name and type help discovery).
    pub definition: Option<Definition>,
}

/// A validated statement with its stored form and content hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The model.
    pub statement: Statement,
    /// SHA-256 of the canonical JSON without `id`, `stored`, `authority`
    /// and `version`: two sends of the same statement hash alike.
    pub hash: [u8; 32],
    /// The statement as stored: the JSON received, with `id` and
    /// `timestamp` filled in when absent (as an LRS does).
    pub raw: String,
    /// Whether `timestamp` was absent and filled with the time received.
    pub timestamp_filled: bool,
}

/// The content hash releases before statement equality followed the
/// specification computed (every property but `id`, `stored`, `authority`
/// and `version`, verbatim): a record stored then carries it, so a resend
/// of such a statement is compared with this one too.
pub fn legacy_hash(parsed: &Parsed) -> Option<[u8; 32]> {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&parsed.raw) else {
        return None;
    };
    if parsed.timestamp_filled {
        map.remove("timestamp");
    }
    let mut hasher = HashWriter(Sha256::new());
    let canonical = Without {
        map: &map,
        skip: &["id", "stored", "authority", "version"],
        extra: &[],
    };
    serde_json::to_writer(&mut hasher, &canonical).ok()?;
    Some(hasher.0.finalize().into())
}

/// Validates a request body: one statement (paths `statement.*`) or an
/// array of them (paths `statement[i].*`), at least one.
pub fn parse_body(body: &Value, now: Micros) -> Result<Vec<Parsed>> {
    match body {
        Value::Array(values) if values.is_empty() => Err(Error::invalid(
            "statement",
            "the array must hold at least one statement",
        )),
        Value::Array(values) => values
            .iter()
            .enumerate()
            .map(|(i, v)| parse_one(v, &format!("statement[{i}]"), now))
            .collect(),
        single => Ok(vec![parse_one(single, "statement", now)?]),
    }
}

/// Validates one statement; `at` is its path in the request.
pub fn parse_one(value: &Value, at: &str, now: Micros) -> Result<Parsed> {
    let map = object(value, at)?;
    if let Some(key) = map
        .keys()
        .find(|k| !STATEMENT_PROPERTIES.contains(&k.as_str()))
    {
        return Err(Error::invalid(
            format!("{at}.{key}"),
            "is not a statement property",
        ));
    }
    if let Some(version) = opt_str(map, at, "version")? {
        let known = ["1.0", "2.0"].iter().any(|v| {
            version == *v
                || version
                    .strip_prefix(v)
                    .and_then(|p| p.strip_prefix('.'))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
        if !known {
            return Err(Error::invalid(
                format!("{at}.version"),
                format!("'{version}' is not a 1.0.x or 2.0.x version"),
            ));
        }
    }
    let given_id = opt_str(map, at, "id")?
        .map(|id| uuid(&format!("{at}.id"), id))
        .transpose()?;
    let actor = actor(required(map, at, "actor")?, &format!("{at}.actor"))?;
    let verb_at = format!("{at}.verb");
    let verb = object(required(map, at, "verb")?, &verb_at)?;
    let verb_id = iri(&format!("{verb_at}.id"), req_str(verb, &verb_at, "id")?)?;
    let object = statement_object(required(map, at, "object")?, &format!("{at}.object"))?;
    if verb_id == super::verbs::VOIDED && !matches!(object, Object::StatementRef { .. }) {
        return Err(Error::invalid(
            format!("{at}.object.objectType"),
            "a voiding statement's object must be a StatementRef",
        ));
    }
    let result = map
        .get("result")
        .map(|r| outcome(r, &format!("{at}.result")))
        .transpose()?;
    let context = map
        .get("context")
        .map(|c| context(c, &format!("{at}.context")))
        .transpose()?;
    if let Some(list) = map.get("attachments") {
        attachments(list, &format!("{at}.attachments"))?;
    }
    let timestamp = opt_str(map, at, "timestamp")?
        .map(|t| timestamp(&format!("{at}.timestamp"), t, now))
        .transpose()?;

    let hash = content_hash(map, timestamp);
    // Without an id the LRS assigns one. A statement that carries its own
    // timestamp gets one derived from its content, so that a resend is a
    // duplicate; one without a timestamp gets a random one: the same answer
    // given twice (no id, no time) is two answers, as the specification
    // has it.
    let id = given_id.unwrap_or_else(|| {
        let mut seed = hash;
        if timestamp.is_none() {
            rand::Rng::fill(&mut rand::rng(), &mut seed[..16]);
        }
        uuid_from_hash(&seed)
    });
    let received = timestamp.is_none().then(|| format_micros(now));
    let mut extra = vec![("id", id.as_str())];
    if let Some(received) = &received {
        extra.push(("timestamp", received.as_str()));
    }
    let raw = serde_json::to_string(&Without {
        map,
        skip: &["id"],
        extra: &extra,
    })
    .expect("json of a json value");
    Ok(Parsed {
        statement: Statement {
            id,
            actor,
            verb_id,
            object,
            result,
            context,
            timestamp: timestamp.unwrap_or(now),
        },
        hash,
        raw,
        timestamp_filled: received.is_some(),
    })
}

/// SHA-256 of the canonical form, so that two statements the xAPI
/// specification calls equal (1.0.3 part 2 section 2.3.1, IEEE 9274.1.1
/// alike) hash alike: keys sorted (serde_json's map is ordered), no
/// whitespace; the LRS-set properties (`id`, `stored`, `authority`,
/// `version`), the verb's `display` and every activity `definition` (object
/// and context) left out; the timestamp written as its UTC instant; a
/// single context activity taken as a one-element list; ids that are UUIDs
/// (registration, statement references) in lowercase. Streamed into the
/// hasher ([`Canonical`]), without a copy of the statement.
fn content_hash(map: &Map<String, Value>, timestamp: Option<Micros>) -> [u8; 32] {
    let instant = timestamp.map(format_instant);
    let canonical = Canonical {
        value: &Value::Null,
        map: Some(map),
        rule: Rule::Statement,
        instant: instant.as_deref(),
    };
    let mut hasher = HashWriter(Sha256::new());
    serde_json::to_writer(&mut hasher, &canonical).expect("json of a json value");
    hasher.0.finalize().into()
}

/// What the canonical form changes in a part of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Written as it is.
    Verbatim,
    /// The statement: LRS-set properties dropped, parts by their rules.
    Statement,
    /// The verb: without `display`.
    Verb,
    /// An object or context activity: without `definition`; a statement
    /// reference's id in lowercase; a sub-statement's verb and object
    /// canonical in turn.
    Object,
    /// The context: registration in lowercase, activity lists canonical.
    Context,
    /// `contextActivities`: each list (or single activity) as a list of
    /// canonical activities.
    Lists,
}

/// A part of a statement written in canonical form.
struct Canonical<'a> {
    value: &'a Value,
    /// The object to write instead of `value` (the top-level statement).
    map: Option<&'a Map<String, Value>>,
    rule: Rule,
    /// The statement's instant, written for its `timestamp`.
    instant: Option<&'a str>,
}

impl<'a> Canonical<'a> {
    fn part(value: &'a Value, rule: Rule) -> Self {
        Self {
            value,
            map: None,
            rule,
            instant: None,
        }
    }
}

impl Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let map = match (self.map, self.value) {
            (Some(map), _) => map,
            (None, Value::Object(map)) if self.rule != Rule::Verbatim => map,
            (None, value) => return value.serialize(serializer),
        };
        let lowercase_id = self.rule == Rule::Object
            && map.get("objectType").and_then(Value::as_str) == Some("StatementRef");
        let sub_statement = self.rule == Rule::Object
            && map.get("objectType").and_then(Value::as_str) == Some("SubStatement");
        let mut out = serializer.serialize_map(None)?;
        for (key, value) in map {
            let key = key.as_str();
            let rule = match (self.rule, key) {
                (Rule::Statement, "id" | "stored" | "authority" | "version") => continue,
                (Rule::Statement, "timestamp") if self.instant.is_some() => {
                    out.serialize_entry(key, &self.instant)?;
                    continue;
                }
                (Rule::Statement, "verb") => Rule::Verb,
                (Rule::Statement, "object") => Rule::Object,
                (Rule::Statement, "context") => Rule::Context,
                (Rule::Verb, "display") | (Rule::Object, "definition") => continue,
                (Rule::Object, "verb") if sub_statement => Rule::Verb,
                (Rule::Object, "object") if sub_statement => Rule::Object,
                (Rule::Object, "id") if lowercase_id => {
                    out.serialize_entry(key, &lowercase(value))?;
                    continue;
                }
                (Rule::Context, "registration") => {
                    out.serialize_entry(key, &lowercase(value))?;
                    continue;
                }
                (Rule::Context, "contextActivities") => Rule::Lists,
                (Rule::Lists, _) => {
                    let list = ActivityList(value);
                    out.serialize_entry(key, &list)?;
                    continue;
                }
                _ => Rule::Verbatim,
            };
            out.serialize_entry(key, &Canonical::part(value, rule))?;
        }
        out.end()
    }
}

/// One `contextActivities` list: a single activity counts as a list of one.
struct ActivityList<'a>(&'a Value);

impl Serialize for ActivityList<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let items: &[Value] = match self.0 {
            Value::Array(items) => items,
            single => std::slice::from_ref(single),
        };
        let mut out = serializer.serialize_seq(Some(items.len()))?;
        for item in items {
            out.serialize_element(&Canonical::part(item, Rule::Object))?;
        }
        out.end()
    }
}

/// A string value in lowercase (other values as they are).
fn lowercase(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(text.to_ascii_lowercase()),
        other => other.clone(),
    }
}

/// An instant as RFC 3339 UTC with microseconds: one spelling per instant.
fn format_instant(micros: Micros) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| format!("{t:.6}"))
        .unwrap_or_default()
}

/// A JSON object written without some of its keys and with extra ones.
struct Without<'a> {
    map: &'a Map<String, Value>,
    skip: &'a [&'a str],
    extra: &'a [(&'a str, &'a str)],
}

impl Serialize for Without<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut out = serializer.serialize_map(None)?;
        for (key, value) in self.map {
            if !self.skip.contains(&key.as_str()) {
                out.serialize_entry(key, value)?;
            }
        }
        for (key, value) in self.extra {
            out.serialize_entry(key, value)?;
        }
        out.end()
    }
}

/// Feeds written bytes to a hasher.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A UUID in the version 4 layout (RFC 9562) whose 122 free bits come from
/// a content hash, for statements sent without an id: resending the same
/// statement then finds the same id, so it stays idempotent, and clients
/// that accept only versions 1 to 5 (TinCanPython) take it.
fn uuid_from_hash(hash: &[u8; 32]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A UUID in its 8-4-4-4-12 hex form, returned lowercase.
pub fn uuid(field: &str, text: &str) -> Result<String> {
    let ok = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(Error::invalid(
            field,
            format!("'{text}' is not a UUID such as '3f2b8c1e-0d4a-4e8b-9c1d-2a7f5e6b8c90'"),
        ))
    }
}

/// An absolute IRI: a scheme, a colon, no spaces or control characters.
fn iri(field: &str, text: &str) -> Result<String> {
    let scheme_ok = text.split_once(':').is_some_and(|(scheme, _)| {
        let mut chars = scheme.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            field,
            format!("'{text}' is not an absolute IRI"),
        ));
    }
    Ok(text.to_string())
}

fn actor(value: &Value, at: &str) -> Result<Actor> {
    let map = object(value, at)?;
    let group = match opt_str(map, at, "objectType")? {
        None | Some("Agent") => false,
        Some("Group") => true,
        Some(other) => {
            return Err(Error::invalid(
                format!("{at}.objectType"),
                format!("'{other}' is not Agent or Group"),
            ));
        }
    };
    let name = opt_str(map, at, "name")?.map(str::to_string);
    let present: Vec<&str> = ["mbox", "mbox_sha1sum", "openid", "account"]
        .into_iter()
        .filter(|k| map.contains_key(*k))
        .collect();
    let ifi = match present.as_slice() {
        [] if group && map.contains_key("member") => None,
        [one] => Some(ifi(map, at, one)?),
        _ => {
            return Err(Error::invalid(
                at,
                "must have exactly one of mbox, mbox_sha1sum, openid, account",
            ));
        }
    };
    Ok(Actor { ifi, name, group })
}

fn ifi(map: &Map<String, Value>, at: &str, key: &str) -> Result<Ifi> {
    let field = format!("{at}.{key}");
    Ok(match key {
        "mbox" => {
            let text = req_str(map, at, key)?;
            match text.strip_prefix("mailto:") {
                Some(address) if address.contains('@') => Ifi::Mbox(address.to_string()),
                _ => return Err(Error::invalid(field, "must be a 'mailto:' IRI")),
            }
        }
        "mbox_sha1sum" => {
            let text = req_str(map, at, key)?;
            if text.len() != 40 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::invalid(field, "must be 40 hex digits"));
            }
            Ifi::MboxSha1(text.to_ascii_lowercase())
        }
        "openid" => Ifi::OpenId(iri(&field, req_str(map, at, key)?)?),
        _ => {
            let account = object(&map[key], &field)?;
            let home_page = iri(
                &format!("{field}.homePage"),
                req_str(account, &field, "homePage")?,
            )?;
            let name = req_str(account, &field, "name")?;
            if name.is_empty() {
                return Err(Error::invalid(format!("{field}.name"), "must not be empty"));
            }
            Ifi::Account {
                home_page,
                name: name.to_string(),
            }
        }
    })
}

fn statement_object(value: &Value, at: &str) -> Result<Object> {
    let map = object(value, at)?;
    match opt_str(map, at, "objectType")? {
        None | Some("Activity") => {
            let id = iri(&format!("{at}.id"), req_str(map, at, "id")?)?;
            let definition = map
                .get("definition")
                .map(|d| definition(d, &format!("{at}.definition")))
                .transpose()?;
            Ok(Object::Activity { id, definition })
        }
        Some("StatementRef") => Ok(Object::StatementRef {
            id: uuid(&format!("{at}.id"), req_str(map, at, "id")?)?,
        }),
        Some(kind @ ("Agent" | "Group" | "SubStatement")) => Ok(Object::Other {
            object_type: kind.to_string(),
        }),
        // Outside the specification, but sent by real emitters (Open edX's
        // `GroupActivity`): kept, without effect, rather than refusing the
        // batch it came in.
        Some(other) if map.contains_key("id") => Ok(Object::Other {
            object_type: other.to_string(),
        }),
        Some(other) => Err(Error::invalid(
            format!("{at}.objectType"),
            format!("'{other}' is not Activity, Agent, Group, StatementRef or SubStatement"),
        )),
    }
}

/// The `attachments` array (xAPI 1.0.3 part 2, section 2.4.11): objects
/// with `usageType` (an IRI), `contentType` and `sha2`; `display` (a
/// language map), `length` (a whole number of bytes) and `fileUrl` checked
/// when given. The payloads themselves are the HTTP edge's business
/// (multipart).
fn attachments(value: &Value, at: &str) -> Result<()> {
    let Value::Array(list) = value else {
        return Err(Error::invalid(at, "must be an array of attachments"));
    };
    for (j, attachment) in list.iter().enumerate() {
        let at = format!("{at}[{j}]");
        let map = object(attachment, &at)?;
        iri(&format!("{at}.usageType"), req_str(map, &at, "usageType")?)?;
        req_str(map, &at, "contentType")?;
        req_str(map, &at, "sha2")?;
        // `display` and `length` are required by the specification, but
        // TinCanJS sends attachments without `length`: checked when given.
        if let Some(display) = map.get("display") {
            object(display, &format!("{at}.display"))?;
        }
        if map.get("length").is_some_and(|l| !l.is_u64()) {
            return Err(Error::invalid(
                format!("{at}.length"),
                "must be a whole number of bytes",
            ));
        }
        if let Some(url) = opt_str(map, &at, "fileUrl")? {
            iri(&format!("{at}.fileUrl"), url)?;
        }
    }
    Ok(())
}

/// An activity definition, read leniently (see [`Definition`]); it must
/// be a JSON object.
fn definition(value: &Value, at: &str) -> Result<Definition> {
    let map = object(value, at)?;
    let text = |key: &str| {
        map.get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(Definition {
        name: language_map(map.get("name")),
        description: language_map(map.get("description")),
        kind: text("type"),
        interaction_type: text("interactionType"),
        correct_responses: map
            .get("correctResponsesPattern")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// The English entry of a language map, else its first entry.
fn language_map(value: Option<&Value>) -> String {
    let Some(Value::Object(map)) = value else {
        return String::new();
    };
    ["en", "en-US", "en-GB", "und"]
        .iter()
        .find_map(|tag| map.get(*tag))
        .or_else(|| map.values().next())
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn outcome(value: &Value, at: &str) -> Result<Outcome> {
    let map = object(value, at)?;
    let success = opt_bool(map, at, "success")?;
    let completion = opt_bool(map, at, "completion")?;
    let duration_ms = opt_str(map, at, "duration")?
        .map(|d| duration::parse_ms(d).map_err(|why| Error::invalid(format!("{at}.duration"), why)))
        .transpose()?;
    let scaled = match map.get("score") {
        None => None,
        Some(score) => score_scaled(score, &format!("{at}.score"))?,
    };
    // Any JSON is allowed in extensions: a segment list that does not
    // parse is only not counted.
    let played_ms = map
        .get("extensions")
        .and_then(|e| e.get(PLAYED_SEGMENTS))
        .and_then(Value::as_str)
        .and_then(duration::played_segments_ms);
    Ok(Outcome {
        success,
        completion,
        scaled,
        duration_played: duration_ms.is_none() && played_ms.is_some(),
        duration_ms: duration_ms.or(played_ms),
        response: opt_str(map, at, "response")?.map(str::to_string),
    })
}

/// The xAPI video profile's result extension listing the segments played
/// (`0[.]12.5[,]30[.]45`): Open edX and video players send it, and it is the
/// time watched when no `result.duration` is given.
pub const PLAYED_SEGMENTS: &str = "https://w3id.org/xapi/video/extensions/played-segments";

/// The scaled score, or one derived from raw, min and max.
///
/// Open edX sends `max` 0 (with `min` and `raw` 0) for ungraded problems,
/// against the specification: a range with `max <= min` is accepted and
/// gives no score (the statement is not refused for it), and `raw` is
/// only checked against a range that has room.
fn score_scaled(value: &Value, at: &str) -> Result<Option<f64>> {
    let map = object(value, at)?;
    let num = |key: &str| -> Result<Option<f64>> {
        match map.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| Error::invalid(format!("{at}.{key}"), "must be a number")),
        }
    };
    let (scaled, raw, min, max) = (num("scaled")?, num("raw")?, num("min")?, num("max")?);
    if let Some(s) = scaled {
        if !(-1.0..=1.0).contains(&s) {
            return Err(Error::invalid(
                format!("{at}.scaled"),
                format!("must be in [-1, 1], got {s}"),
            ));
        }
    }
    let empty_range = matches!((min, max), (Some(min), Some(max)) if min >= max);
    if let (Some(raw), false) = (raw, empty_range) {
        if min.is_some_and(|m| raw < m) || max.is_some_and(|m| raw > m) {
            return Err(Error::invalid(
                format!("{at}.raw"),
                format!("must lie between min and max, got {raw}"),
            ));
        }
    }
    Ok(scaled.or(match (raw, min, max) {
        (Some(raw), Some(min), Some(max)) if !empty_range => Some((raw - min) / (max - min)),
        _ => None,
    }))
}

fn context(value: &Value, at: &str) -> Result<Context> {
    let map = object(value, at)?;
    let registration = opt_str(map, at, "registration")?
        .map(|r| uuid(&format!("{at}.registration"), r))
        .transpose()?;
    let mut program = None;
    if let Some(extensions) = map.get("extensions") {
        let extensions = object(extensions, &format!("{at}.extensions"))?;
        if let Some(named) = extensions.get(PROGRAM_EXTENSION) {
            let named = named.as_str().ok_or_else(|| {
                Error::invalid(
                    format!("{at}.extensions[\"{PROGRAM_EXTENSION}\"]"),
                    "must be a string (a program id)",
                )
            })?;
            program = Some(named.to_string());
        }
    }
    let mut context_activities = Vec::new();
    if let Some(activities) = map.get("contextActivities") {
        let ca_at = format!("{at}.contextActivities");
        let activities = object(activities, &ca_at)?;
        for (key, list) in [
            ("parent", ContextList::Parent),
            ("grouping", ContextList::Grouping),
            ("category", ContextList::Category),
            ("other", ContextList::Other),
        ] {
            let Some(values) = activities.get(key) else {
                continue;
            };
            let list_at = format!("{ca_at}.{key}");
            // A single object is allowed and means a one-element array.
            let items: Vec<(String, &Value)> = match values {
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{list_at}[{i}]"), v))
                    .collect(),
                single => vec![(list_at.clone(), single)],
            };
            for (item_at, item) in items {
                let item_map = object(item, &item_at)?;
                let id = iri(&format!("{item_at}.id"), req_str(item_map, &item_at, "id")?)?;
                let definition = item_map
                    .get("definition")
                    .map(|d| definition(d, &format!("{item_at}.definition")))
                    .transpose()?;
                context_activities.push(ContextActivity {
                    id,
                    list,
                    definition,
                });
            }
        }
    }
    let language = match map.get("language") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) => {
            crate::domain::validate::language(format!("{at}.language"), tag, false)
                .ok()
                .filter(|t| !t.is_empty())
        }
        Some(_) => {
            return Err(Error::invalid(
                format!("{at}.language"),
                "must be a string (a BCP 47 language tag)",
            ));
        }
    };
    Ok(Context {
        registration,
        program,
        activities: context_activities,
        language,
    })
}

/// An ISO 8601 timestamp; one without an offset is taken as UTC.
fn timestamp(field: &str, text: &str, now: Micros) -> Result<Micros> {
    let parsed = text
        .parse::<jiff::Timestamp>()
        .or_else(|_| {
            text.parse::<jiff::civil::DateTime>()
                .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
                .map(|z| z.timestamp())
        })
        .map_err(|_| {
            Error::invalid(
                field,
                format!("'{text}' is not an ISO 8601 timestamp such as '2026-11-20T09:00:00Z'"),
            )
        })?;
    event_micros(field, parsed.as_microsecond(), now)
}

/// A time as RFC 3339 UTC with milliseconds.
pub fn format_micros(micros: Micros) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| format!("{t:.3}"))
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

fn object<'v>(value: &'v Value, at: &str) -> Result<&'v Map<String, Value>> {
    value
        .as_object()
        .ok_or_else(|| Error::invalid(at, "must be a JSON object"))
}

fn required<'v>(map: &'v Map<String, Value>, at: &str, key: &str) -> Result<&'v Value> {
    map.get(key)
        .ok_or_else(|| Error::invalid(format!("{at}.{key}"), "is required"))
}

fn req_str<'v>(map: &'v Map<String, Value>, at: &str, key: &str) -> Result<&'v str> {
    opt_str(map, at, key)?.ok_or_else(|| Error::invalid(format!("{at}.{key}"), "is required"))
}

fn opt_str<'v>(map: &'v Map<String, Value>, at: &str, key: &str) -> Result<Option<&'v str>> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(format!("{at}.{key}"), "must be a string")),
    }
}

fn opt_bool(map: &Map<String, Value>, at: &str, key: &str) -> Result<Option<bool>> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(Error::invalid(
            format!("{at}.{key}"),
            "must be true or false",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Micros = 1_796_000_000_000_000;

    fn answered() -> Value {
        json!({
            "id": "6F1C2B9A-7E3D-4C5B-8A9F-0E1D2C3B4A59",
            "actor": {"objectType": "Agent", "name": "Alice",
                      "account": {"homePage": "https://moodle.example.com", "name": "42"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en": "answered"}},
            "object": {"id": "https://moodle.example.com/question/7",
                       "definition": {"interactionType": "choice"}},
            "result": {"success": true, "score": {"raw": 3, "min": 0, "max": 4},
                       "duration": "PT45S"},
            "context": {"registration": "ec531277-b57b-4c15-8d91-d292c5b2b8f7",
                        "contextActivities": {"grouping": [{"id": "https://lms.example.com/course/excel"}]}},
            "timestamp": "2026-11-20T09:00:00+01:00"
        })
    }

    #[test]
    fn a_moodle_like_answer_parses() {
        let parsed = parse_one(&answered(), "statement", NOW).unwrap();
        let s = &parsed.statement;
        assert_eq!(s.id, "6f1c2b9a-7e3d-4c5b-8a9f-0e1d2c3b4a59");
        assert_eq!(
            s.actor.ifi,
            Some(Ifi::Account {
                home_page: "https://moodle.example.com".into(),
                name: "42".into()
            })
        );
        let result = s.result.as_ref().unwrap();
        assert_eq!(result.scaled, Some(0.75));
        assert_eq!(result.duration_ms, Some(45_000));
        assert_eq!(s.timestamp, 1_795_161_600_000_000);
        let context = s.context.as_ref().unwrap();
        assert_eq!(context.activities.len(), 1);
        assert_eq!(
            context.activities[0].id,
            "https://lms.example.com/course/excel"
        );
        assert_eq!(context.activities[0].list, ContextList::Grouping);
    }

    /// Sets the property at `pointer`, adding it when absent.
    fn set(value: &mut Value, pointer: &str, new: Value) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = value.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        parent.insert(key.into(), new);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "/result/score/scaled",
                json!(1.5),
                "statement[1].result.score.scaled",
            ),
            (
                "/result/duration",
                json!("45 seconds"),
                "statement[1].result.duration",
            ),
            ("/timestamp", json!("yesterday"), "statement[1].timestamp"),
            ("/id", json!("not-a-uuid"), "statement[1].id"),
            ("/verb/id", json!("answered"), "statement[1].verb.id"),
            (
                "/object/objectType",
                json!(5),
                "statement[1].object.objectType",
            ),
            (
                "/context/registration",
                json!("r1"),
                "statement[1].context.registration",
            ),
            (
                "/actor/mbox",
                json!("alice@example.com"),
                "statement[1].actor",
            ),
        ];
        for (pointer, bad, field) in cases {
            let mut value = answered();
            set(&mut value, pointer, bad.clone());
            let body = json!([answered(), value]);
            match parse_body(&body, NOW) {
                Err(Error::InvalidArgument { field: got, .. }) => {
                    assert_eq!(got, field, "{pointer} = {bad}")
                }
                other => panic!("{pointer} = {bad}: expected an error, got {other:?}"),
            }
        }
    }

    #[test]
    fn same_content_same_hash_and_derived_id() {
        let mut a = answered();
        a.as_object_mut().unwrap().remove("id");
        let first = parse_one(&a, "statement", NOW).unwrap();
        let again = parse_one(&a, "statement", NOW + 5).unwrap();
        assert_eq!(first.statement.id, again.statement.id);
        assert_eq!(first.hash, again.hash);
        assert!(uuid("f", &first.statement.id).is_ok());
        // Authority and stored are LRS-set: they do not change the content.
        a["authority"] = json!({"mbox": "mailto:lrs@example.com"});
        assert_eq!(parse_one(&a, "statement", NOW).unwrap().hash, first.hash);
        a["result"]["success"] = json!(false);
        assert_ne!(parse_one(&a, "statement", NOW).unwrap().hash, first.hash);
    }

    /// Two identical statements without id and timestamp are two
    /// statements (the same answer given twice); with a timestamp, the
    /// content names the statement, so a resend is one.
    #[test]
    fn ids_made_for_statements_without_one() {
        let mut a = answered();
        a.as_object_mut().unwrap().remove("id");
        let timed = parse_one(&a, "statement", NOW).unwrap().statement.id;
        assert_eq!(parse_one(&a, "statement", NOW).unwrap().statement.id, timed);
        a.as_object_mut().unwrap().remove("timestamp");
        let first = parse_one(&a, "statement", NOW).unwrap().statement.id;
        let second = parse_one(&a, "statement", NOW).unwrap().statement.id;
        assert_ne!(first, second);
        for id in [timed, first] {
            assert_eq!(&id[14..15], "4", "{id}");
        }
    }

    #[test]
    fn missing_timestamp_is_filled_and_stored() {
        let mut a = answered();
        a.as_object_mut().unwrap().remove("timestamp");
        let parsed = parse_one(&a, "statement", NOW).unwrap();
        assert_eq!(parsed.statement.timestamp, NOW);
        let stored: Value = serde_json::from_str(&parsed.raw).unwrap();
        assert!(stored["timestamp"].as_str().unwrap().starts_with("2026-"));
        let again = parse_one(&stored, "statement", NOW + 1_000_000).unwrap();
        assert_eq!(again.statement.timestamp, NOW - NOW % 1000);
    }

    #[test]
    fn voiding_needs_a_statement_ref_and_unknown_properties_are_refused() {
        let void = json!({
            "actor": {"mbox": "mailto:admin@example.com"},
            "verb": {"id": super::super::verbs::VOIDED},
            "object": {"id": "https://example.com/activity"}
        });
        let err = parse_one(&void, "statement", NOW).unwrap_err().to_string();
        assert!(err.contains("statement.object.objectType"), "{err}");
        let mut odd = answered();
        odd["colour"] = json!("blue");
        let err = parse_one(&odd, "statement", NOW).unwrap_err().to_string();
        assert!(err.contains("statement.colour"), "{err}");
        assert!(parse_body(&json!([]), NOW).is_err());
    }

    /// Equality as the specification defines it: the verb's display,
    /// activity definitions, the notation of the same instant and the
    /// case of UUIDs do not make two statements differ.
    #[test]
    fn statement_equality_ignores_what_the_specification_ignores() {
        let base = parse_one(&answered(), "statement", NOW).unwrap().hash;
        let mut other = answered();
        other["verb"]["display"] = json!({"fr-FR": "a répondu"});
        other["object"]["definition"] = json!({"name": {"en": "Q7"}, "interactionType": "choice"});
        other["timestamp"] = json!("2026-11-20T08:00:00.000Z");
        other["context"]["registration"] = json!("EC531277-B57B-4C15-8D91-D292C5B2B8F7");
        other["context"]["contextActivities"]["grouping"] = json!({"id": "https://lms.example.com/course/excel", "definition": {"name": {"en": "Excel"}}});
        other["version"] = json!("2.0.0");
        assert_eq!(parse_one(&other, "statement", NOW).unwrap().hash, base);
        other["timestamp"] = json!("2026-11-20T08:00:01Z");
        assert_ne!(parse_one(&other, "statement", NOW).unwrap().hash, base);
        // A statement reference's id in either case; a sub-statement's verb
        // display and object definition do not count either.
        let reference = |id: &str| {
            let mut v = answered();
            v["object"] = json!({"objectType": "StatementRef", "id": id});
            parse_one(&v, "statement", NOW).unwrap().hash
        };
        assert_eq!(
            reference("6F1C2B9A-7E3D-4C5B-8A9F-0E1D2C3B4A59"),
            reference("6f1c2b9a-7e3d-4c5b-8a9f-0e1d2c3b4a59")
        );
        let sub = |display: &str| {
            let mut v = answered();
            v["object"] = json!({"objectType": "SubStatement",
                "actor": {"mbox": "mailto:b@example.com"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en": display}},
                "object": {"id": "https://q/1", "definition": {"name": {"en": display}}}});
            parse_one(&v, "statement", NOW).unwrap().hash
        };
        assert_eq!(sub("a"), sub("b"));
    }

    /// What real emitters send against the specification is stored, not
    /// refused: Open edX's `max` 0 (no score then) and `GroupActivity`.
    #[test]
    fn off_specification_emitters_are_accepted() {
        let mut edx = answered();
        edx["result"]["score"] = json!({"raw": 0, "min": 0, "max": 0});
        let parsed = parse_one(&edx, "statement", NOW).unwrap();
        assert_eq!(parsed.statement.result.unwrap().scaled, None);
        let mut group = answered();
        group["object"] = json!({"objectType": "GroupActivity", "id": "https://edx/team/1"});
        let parsed = parse_one(&group, "statement", NOW).unwrap();
        assert!(matches!(parsed.statement.object, Object::Other { .. }));
        for bad in ["3.0.0", "1.0.abc", "2.0."] {
            let mut v = answered();
            v["version"] = json!(bad);
            assert!(parse_one(&v, "statement", NOW).is_err(), "{bad}");
        }
    }

    #[test]
    fn attachments_are_checked_naming_the_field() {
        let good = json!({"usageType": "http://adlnet.gov/expapi/attachments/signature",
            "display": {"en": "sig"}, "contentType": "application/octet-stream",
            "length": 12, "sha2": "abc"});
        let mut a = answered();
        a["attachments"] = json!([good.clone()]);
        assert!(parse_one(&a, "statement", NOW).is_ok());
        for (key, bad, field) in [
            ("length", json!(-1), "statement.attachments[1].length"),
            (
                "usageType",
                json!("sig"),
                "statement.attachments[1].usageType",
            ),
            ("sha2", Value::Null, "statement.attachments[1].sha2"),
            ("display", json!("sig"), "statement.attachments[1].display"),
        ] {
            let mut broken = good.clone();
            if bad.is_null() {
                broken.as_object_mut().unwrap().remove(key);
            } else {
                broken[key] = bad;
            }
            a["attachments"] = json!([good.clone(), broken]);
            match parse_one(&a, "statement", NOW) {
                Err(Error::InvalidArgument { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    /// A record stored under the older hash is still found equal.
    #[test]
    fn the_legacy_hash_matches_what_older_releases_stored() {
        let parsed = parse_one(&answered(), "statement", NOW).unwrap();
        let map = answered().as_object().unwrap().clone();
        let mut hasher = HashWriter(Sha256::new());
        let old = Without {
            map: &map,
            skip: &["id", "stored", "authority", "version"],
            extra: &[],
        };
        serde_json::to_writer(&mut hasher, &old).unwrap();
        let old: [u8; 32] = hasher.0.finalize().into();
        assert_eq!(legacy_hash(&parsed), Some(old));
        assert_ne!(parsed.hash, old);
    }
}

//! Console sessions: sign-in with an API key, a session cookie, CSRF
//! tokens, sign-out.
//!
//! A key typed into a browser must not travel with every request nor sit
//! in JavaScript's reach, so the console trades it once for a session: a
//! random id (256 bits) in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when the deployment is under TLS), the principal held on the
//! server with an idle and an absolute expiry. Every POST carries a CSRF
//! token of its session (checked by [`csrf_guard`] before any handler
//! runs, 403 otherwise); the sign-in form, before any session exists,
//! carries a token that must equal the one of a short-lived sign-in
//! cookie (double submit). A key revoked after sign-in ends its sessions
//! at their next request.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use parking_lot::Mutex;
use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;

use super::ConsoleState;
use crate::domain::access::{Principal, Role};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "spoc_console";
/// Name of the sign-in form's cookie (double-submit CSRF token).
pub const SIGNIN_COOKIE: &str = "spoc_console_signin";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after sign-in, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(12 * 3600);
/// Most sessions held at once: beyond, sign-in is refused (503) until some
/// expire, so that sign-ins cannot grow the server's memory without bound.
pub const MAX_SESSIONS: usize = 10_000;

/// Live sessions one key may hold: a new sign-in beyond it closes the
/// key's oldest session, so one key holder cannot fill [`MAX_SESSIONS`]
/// and lock everyone else out.
pub const MAX_SESSIONS_PER_KEY: usize = 16;
/// Live event streams one session may hold (a cohort page in a few tabs):
/// beyond, a stream is refused (429), so that one session cannot hold the
/// server's connections and alert watchers without bound.
pub const MAX_STREAMS_PER_SESSION: usize = 4;
/// Random bytes in a session id and in a CSRF token (256 bits).
const TOKEN_BYTES: usize = 32;
/// Largest form body a console POST may send.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// A signed-in browser, as handlers see it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The session id (the cookie's value).
    pub id: String,
    /// Who signed in, with the role and scope of their key.
    pub principal: Arc<Principal>,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
}

struct Session {
    principal: Arc<Principal>,
    csrf: String,
    created: Instant,
    last_seen: Instant,
    /// Event streams open, shared with their [`StreamSlot`]s.
    streams: Arc<AtomicUsize>,
}

/// One of a session's event streams; dropping it (the stream ends, the
/// browser goes away) gives the slot back.
#[derive(Debug)]
pub struct StreamSlot(Arc<AtomicUsize>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) > IDLE_TIMEOUT
            || now.duration_since(self.created) > ABSOLUTE_TIMEOUT
    }
}

/// The sessions of this process (a restart signs everyone out).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `principal`: its id and CSRF token (closing the
    /// key's oldest beyond [`MAX_SESSIONS_PER_KEY`]). `None` when
    /// [`MAX_SESSIONS`] live sessions exist already.
    pub fn open(&self, principal: Arc<Principal>) -> Option<(String, String)> {
        let (id, csrf) = (random_token()?, random_token()?);
        let now = Instant::now();
        let mut map = self.map.lock();
        let mut own: Vec<(Instant, String)> = map
            .iter()
            .filter(|(_, s)| s.principal.key_id == principal.key_id)
            .map(|(id, s)| (s.created, id.clone()))
            .collect();
        if own.len() >= MAX_SESSIONS_PER_KEY {
            own.sort();
            for (_, id) in &own[..=own.len() - MAX_SESSIONS_PER_KEY] {
                map.remove(id);
            }
        }
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !s.expired(now));
            if map.len() >= MAX_SESSIONS {
                return None;
            }
        }
        map.insert(
            id.clone(),
            Session {
                principal,
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
                streams: Arc::default(),
            },
        );
        Some((id, csrf))
    }

    /// A slot for one more event stream of session `id`; `None` when it
    /// holds [`MAX_STREAMS_PER_SESSION`] already (or is gone).
    pub fn open_stream(&self, id: &str) -> Option<StreamSlot> {
        let map = self.map.lock();
        let streams = &map.get(id)?.streams;
        streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_STREAMS_PER_SESSION).then_some(n + 1)
            })
            .ok()?;
        Some(StreamSlot(streams.clone()))
    }

    /// The live session `id`, its idle clock restarted; an expired one is
    /// dropped.
    pub fn get(&self, id: &str) -> Option<Signed> {
        let now = Instant::now();
        let mut map = self.map.lock();
        let session = map.get_mut(id)?;
        if session.expired(now) {
            map.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(Signed {
            id: id.to_string(),
            principal: session.principal.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends session `id` (sign-out, revoked key).
    pub fn close(&self, id: &str) {
        self.map.lock().remove(id);
    }

    /// Live sessions, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 32 random bytes from the system's generator, as hex; `None` if the
/// generator fails (nothing is handed out then).
pub fn random_token() -> Option<String> {
    let mut buf = [0u8; TOKEN_BYTES];
    ring::rand::SystemRandom::new().fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether two tokens are equal, in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether a proxy in front says the request came over HTTPS: the first
/// `X-Forwarded-Proto` value, or a `proto=` of the first `Forwarded`
/// element (RFC 7239), is `https`.
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
    };
    let https = |proto: &str| proto.trim_matches('"').eq_ignore_ascii_case("https");
    first("x-forwarded-proto").is_some_and(https)
        || first("forwarded").is_some_and(|element| {
            element.split(';').any(|pair| {
                pair.split_once('=')
                    .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("proto") && https(v.trim()))
            })
        })
}

/// A `Set-Cookie` value for the console: `HttpOnly`, `SameSite=Strict`,
/// path `/console`, `Secure` when `secure`; `max_age` 0 deletes it, `None`
/// makes a browser-session cookie.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&text).expect("cookie names and hex values are header-safe")
}

/// Whether a key of `role` may use the console: trainers, managers and
/// admins (the LMS and company keys have nothing to do there).
pub fn console_role(role: Role) -> bool {
    matches!(role, Role::Trainer | Role::Manager | Role::Admin)
}

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    /// The request's live session, or a redirect to the sign-in page (a
    /// session whose key was revoked is closed on the way).
    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let signin = || Redirect::to("/console/signin").into_response();
        let id = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(signin)?;
        let signed = state.sessions.get(&id).ok_or_else(signin)?;
        if !state.engine.key_is_active(&signed.principal.key_id) {
            state.sessions.close(&id);
            return Err(signin());
        }
        Ok(signed)
    }
}

/// The CSRF check of every console POST, before its handler: the form's
/// `csrf` field must equal the session's token (the sign-in cookie's, for
/// the sign-in form); 403 otherwise, with nothing done. The body is read
/// here (at most [`MAX_FORM_BYTES`], 413 beyond) and handed on.
pub async fn csrf_guard(
    State(state): State<ConsoleState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let expected = if request.uri().path() == "/console/signin" {
        cookie(request.headers(), SIGNIN_COOKIE)
    } else {
        cookie(request.headers(), SESSION_COOKIE)
            .and_then(|id| state.sessions.get(&id))
            .map(|s| s.csrf)
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let sent = form_field(&bytes, "csrf");
    let valid = match (&expected, &sent) {
        (Some(expected), Some(sent)) => same_token(expected, sent),
        _ => false,
    };
    if !valid {
        let lang = super::i18n::Lang::from_headers(&parts.headers);
        return super::error_page(
            &state,
            lang,
            StatusCode::FORBIDDEN,
            lang.text("csrf_refused"),
        );
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_a_bounded_number_of_streams() {
        let sessions = Sessions::default();
        let (id, _) = sessions.open(principal()).unwrap();
        let slots: Vec<StreamSlot> = (0..MAX_STREAMS_PER_SESSION)
            .map(|_| sessions.open_stream(&id).expect("a free slot"))
            .collect();
        assert!(sessions.open_stream(&id).is_none(), "one too many");
        drop(slots);
        assert!(sessions.open_stream(&id).is_some(), "slots come back");
        assert!(sessions.open_stream("no-such-session").is_none());
    }

    #[test]
    fn a_proxy_saying_https_makes_cookies_secure() {
        let with = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            forwarded_https(&h)
        };
        assert!(with(&[("x-forwarded-proto", "https")]));
        assert!(with(&[("x-forwarded-proto", "HTTPS, http")]));
        assert!(with(&[(
            "forwarded",
            "for=192.0.2.60;proto=https;by=203.0.113.43"
        )]));
        assert!(with(&[("forwarded", "Proto=\"https\"")]));
        assert!(!with(&[]));
        assert!(!with(&[("x-forwarded-proto", "http")]));
        assert!(!with(&[("x-forwarded-proto", "http, https")]));
        assert!(!with(&[("forwarded", "proto=http, proto=https")]));
        assert!(!with(&[("forwarded", "for=httpsproxy")]));
    }
    use crate::domain::access::Scope;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal {
            key_id: "k".into(),
            name: "n".into(),
            role: Role::Trainer,
            scope: Scope::All,
        })
    }

    #[test]
    fn ids_are_random_256_bit_hex() {
        let sessions = Sessions::default();
        let (a, csrf_a) = sessions.open(principal()).unwrap();
        let (b, _) = sessions.open(principal()).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_ne!(a, csrf_a);
        assert_eq!(sessions.get(&a).unwrap().csrf, csrf_a);
        sessions.close(&a);
        assert!(sessions.get(&a).is_none());
        assert!(sessions.get(&b).is_some());
    }

    #[test]
    fn one_key_cannot_fill_the_sessions() {
        let sessions = Sessions::default();
        let first = sessions.open(principal()).unwrap().0;
        let later: Vec<String> = (0..MAX_SESSIONS_PER_KEY)
            .map(|_| sessions.open(principal()).unwrap().0)
            .collect();
        assert!(sessions.get(&first).is_none(), "the oldest is closed");
        assert!(later.iter().all(|id| sessions.get(id).is_some()));
        let other = Arc::new(Principal {
            key_id: "other".into(),
            ..(*principal()).clone()
        });
        let theirs = sessions.open(other).unwrap().0;
        assert!(sessions.get(&theirs).is_some());
        assert_eq!(sessions.map.lock().len(), MAX_SESSIONS_PER_KEY + 1);
    }

    #[test]
    fn cookies_are_found_among_others_and_flags_set() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; spoc_console=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, SIGNIN_COOKIE), None);
        let plain = set_cookie(SESSION_COOKIE, "x", false, None);
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        assert!(
            set_cookie(SESSION_COOKIE, "x", true, Some(0))
                .to_str()
                .unwrap()
                .ends_with("; Secure; Max-Age=0")
        );
    }

    #[test]
    fn tokens_compare_whole_and_never_empty() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", ""));
        assert_eq!(
            form_field(b"a=1&csrf=t%20x&b=2", "csrf").as_deref(),
            Some("t x")
        );
    }
}

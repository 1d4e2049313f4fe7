//! The web console under `/console/`: trainers follow their cohorts and act
//! on alerts, managers form cohorts and read reports, in a browser.
//!
//! Server-rendered pages (minijinja templates, [`templates`]) in English or
//! French ([`i18n`]), a few lines of plain script for live alerts (server-
//! sent events) and nothing to build. Sign-in trades an API key for a
//! session ([`session`]); the key's role and scope decide what the console
//! shows and does, with the same checks as gRPC (`domain::access`: the
//! role against the method a page stands for, the scope against every
//! cohort, learner, program or alert named). Handlers call the engine
//! directly, never gRPC, and know no protobuf type.
//!
//! | route | does |
//! |---|---|
//! | `GET /console/` | home: my cohorts (trainers), programs (managers) |
//! | `GET, POST /console/signin`, `POST /console/signout` | session |
//! | `GET /console/cohort?id=` | learners, mastery heat map, open alerts ([`trainer`]) |
//! | `GET /console/cohort/events?id=&after=` | alert changes, server-sent events |
//! | `POST /console/alert/acknowledge`, `/console/alert/resolve` | trainer actions |
//! | `GET /console/learner?id=&program=` | one learner's mastery, answers, modules, next modules |
//! | `GET /console/cohort/report?id=`, `/console/program/report?id=` | the HTML reports |
//! | `GET /console/program?id=` | cohorts, lock, move, formation ([`manager`]) |
//! | `POST /console/program/form` | formation preview (dry run) or commit |
//! | `POST /console/program/move`, `/console/cohort/lock` | move a learner, lock a cohort |

pub mod i18n;
pub mod manager;
pub mod page;
pub mod session;
pub mod templates;
pub mod trainer;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Value, context};
use serde::Deserialize;

use crate::domain::access::{Principal, Role, Scope};
use crate::engine::Engine;
use crate::error::Error;
use crate::offload::Panicked;
use i18n::Lang;
use session::{SESSION_COOKIE, SIGNIN_COOKIE, Sessions, Signed};

/// How the console is deployed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsoleOptions {
    /// Mark cookies `Secure`: the service runs under TLS (`spoc serve
    /// --tls-cert`), its HTTP listener behind a TLS-terminating proxy.
    pub secure_cookies: bool,
}

impl ConsoleOptions {
    /// Whether this request's cookies are `Secure`: always under TLS, and
    /// when a proxy says it took the request over HTTPS (`X-Forwarded-Proto:
    /// https` or `Forwarded: proto=https`). Trusting the header is safe
    /// here: it can only add the flag, which a forger would set against
    /// their own session.
    pub fn secure_for(&self, headers: &HeaderMap) -> bool {
        self.secure_cookies || session::forwarded_https(headers)
    }
}

/// What every console handler shares.
#[derive(Clone)]
pub struct ConsoleState {
    /// The engine the pages read and act on.
    pub engine: Arc<Engine>,
    /// Signed-in browsers.
    pub sessions: Arc<Sessions>,
    /// Deployment options.
    pub options: ConsoleOptions,
}

impl ConsoleState {
    /// A console over `engine`, no session open.
    pub fn new(engine: Arc<Engine>, options: ConsoleOptions) -> Self {
        Self {
            engine,
            sessions: Arc::new(Sessions::default()),
            options,
        }
    }
}

/// The console's routes, to merge into the HTTP listener's router.
pub fn routes(engine: Arc<Engine>, options: ConsoleOptions) -> Router {
    let state = ConsoleState::new(engine, options);
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route("/console/signin", get(signin_page).post(signin))
        .route("/console/signout", post(signout))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(script))
        .route("/console/cohort", get(trainer::cohort))
        .route("/console/cohort/events", get(trainer::events))
        .route("/console/cohort/report", get(trainer::cohort_report))
        .route("/console/alert/acknowledge", post(trainer::acknowledge))
        .route("/console/alert/resolve", post(trainer::resolve))
        .route("/console/learner", get(trainer::learner))
        .route("/console/program", get(manager::program))
        .route("/console/program/form", post(manager::form))
        .route("/console/program/move", post(manager::move_learner))
        .route("/console/program/report", get(manager::program_report))
        .route("/console/cohort/lock", post(manager::lock))
        // Route layers: the merged router's fallback (other paths, the
        // Connect bridge's) stays untouched.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::csrf_guard,
        ))
        .route_layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers of every console reply: no caching of pages with learners'
/// data, no framing, no sniffing, scripts and styles from the console
/// only (the reports' inline styles get their own policy).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A page that could not be shown: its status and a message for people.
#[derive(Debug)]
pub struct PageError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, in the page's language where the console words it.
    pub message: String,
}

impl PageError {
    /// A refusal of the key's role (403).
    pub fn forbidden(lang: Lang) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            message: lang.text("forbidden").to_string(),
        }
    }
}

impl From<Error> for PageError {
    fn from(err: Error) -> Self {
        let status = match &err {
            Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::AlreadyExists { .. } | Error::FailedPrecondition(_) => StatusCode::CONFLICT,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Corrupt { .. } | Error::Storage(_) => {
                tracing::error!(error = %err, "console page failed in storage");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self {
            status,
            message: err.to_string(),
        }
    }
}

/// Page work off the runtime ([`crate::offload::blocking`]): a panic and
/// the work's own error both come back as the page's error.
pub(crate) async fn off_runtime<T, E>(
    work: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, PageError>
where
    T: Send + 'static,
    E: Into<PageError> + Send + 'static,
{
    crate::offload::blocking(work)
        .await
        .map_err(PageError::from)
        .and_then(|r| r.map_err(Into::into))
}

impl From<Panicked> for PageError {
    fn from(err: Panicked) -> Self {
        tracing::error!(error = %err, "a console task failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: err.to_string(),
        }
    }
}

/// What a page handler returns.
pub type PageResult = Result<Response, (Lang, PageError)>;

/// Renders `template` with the context every page gets (messages,
/// language, who is signed in, the CSRF token) and `extra`.
pub fn render(
    lang: Lang,
    signed: Option<&Signed>,
    template: &str,
    extra: Value,
) -> Result<String, PageError> {
    let user = signed.map(|s| {
        context! {
            name => s.principal.name.clone(),
            role => lang.text(role_key(s.principal.role)),
            trainer => trainer::is_trainer(&s.principal),
            manager => manager::is_manager(&s.principal),
        }
    });
    let ctx = context! {
        t => Value::from_serialize(lang.catalogue()),
        lang => lang.tag(),
        user => user,
        csrf => signed.map(|s| s.csrf.clone()),
        ..extra
    };
    templates::environment()
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("console template {template}: {e}"),
        })
}

/// [`render`] as an HTML reply.
pub fn html(lang: Lang, signed: Option<&Signed>, template: &str, extra: Value) -> PageResult {
    render(lang, signed, template, extra)
        .map(|page| Html(page).into_response())
        .map_err(|e| (lang, e))
}

/// The error page with `status` and `message` (plain text if even that
/// page fails).
pub fn error_page(
    _state: &ConsoleState,
    lang: Lang,
    status: StatusCode,
    message: &str,
) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => lang.text("not_found"),
        StatusCode::FORBIDDEN => lang.text("forbidden"),
        _ => lang.text("error"),
    };
    match render(
        lang,
        None,
        "error.html",
        context! { title => title, message => message },
    ) {
        Ok(page) => (status, Html(page)).into_response(),
        Err(_) => (status, message.to_string()).into_response(),
    }
}

/// Turns a handler's outcome into the reply.
pub fn reply(state: &ConsoleState, result: PageResult) -> Response {
    match result {
        Ok(response) => response,
        Err((lang, err)) => error_page(state, lang, err.status, &err.message),
    }
}

fn role_key(role: Role) -> &'static str {
    match role {
        Role::Trainer => "role_trainer",
        Role::Manager => "role_manager",
        _ => "role_admin",
    }
}

/// Whether `who` may call the gRPC method `method` (the console's pages and
/// actions stand for the methods they use: the same role table).
pub fn may(who: &Principal, method: &str) -> bool {
    who.may_call(method)
}

/// `GET /console/`: my cohorts and programs, as the role allows.
async fn home(page: page::Page) -> Response {
    let (engine, who) = (page.engine(), page.who());
    let lists = off_runtime(async move {
        let cohorts = if trainer::is_trainer(&who) {
            trainer::my_cohorts(&engine, &who)?
        } else {
            Vec::new()
        };
        let programs = if manager::is_manager(&who) {
            manager::programs(&engine)?
        } else {
            Vec::new()
        };
        Ok::<_, Error>((cohorts, programs))
    })
    .await;
    page.render(
        "home.html",
        lists.map(|(cohorts, programs)| context! { cohorts => cohorts, programs => programs }),
    )
}

/// `GET /console/signin`: the form, with a fresh double-submit token in
/// its cookie.
async fn signin_page(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    signin_form(&state, &headers, StatusCode::OK, None)
}

/// The sign-in form in the browser's language, `status` and the reason of
/// a refusal.
fn signin_form(
    state: &ConsoleState,
    headers: &HeaderMap,
    status: StatusCode,
    problem: Option<&str>,
) -> Response {
    let lang = Lang::from_headers(headers);
    let secure = state.options.secure_for(headers);
    let Some(token) = session::random_token() else {
        return error_page(
            state,
            lang,
            StatusCode::SERVICE_UNAVAILABLE,
            "random generator failed",
        );
    };
    let page = render(
        lang,
        None,
        "signin.html",
        context! { signin_csrf => token.clone(), problem => problem },
    );
    match page {
        Ok(page) => {
            let mut response = (status, Html(page)).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(SIGNIN_COOKIE, &token, secure, Some(600)),
            );
            response
        }
        Err(err) => error_page(state, lang, err.status, &err.message),
    }
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct SigninForm {
    /// The API key.
    #[serde(default)]
    key: String,
}

/// `POST /console/signin` (CSRF checked by the guard): a valid key of a
/// console role opens a session and goes home; anything else gets the form
/// again with the reason (401, 403).
async fn signin(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let Ok(principal) = state.engine.authenticate_shared(form.key.trim()) else {
        return signin_form(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(lang.text("bad_key")),
        );
    };
    if !session::console_role(principal.role) {
        return signin_form(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            Some(lang.text("role_refused")),
        );
    }
    // A fresh id at every sign-in: an id planted before it is worthless.
    if let Some(old) = session::cookie(&headers, SESSION_COOKIE) {
        state.sessions.close(&old);
    }
    let Some((id, _)) = state.sessions.open(principal) else {
        return signin_form(
            &state,
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(lang.text("too_many_sessions")),
        );
    };
    let secure = state.options.secure_for(&headers);
    let mut response = Redirect::to("/console/").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, &id, secure, None),
    );
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(SIGNIN_COOKIE, "", secure, Some(0)),
    );
    response
}

/// `POST /console/signout`: ends the session, deletes the cookie.
async fn signout(
    State(state): State<ConsoleState>,
    signed: Signed,
    headers: HeaderMap,
) -> Response {
    state.sessions.close(&signed.id);
    let secure = state.options.secure_for(&headers);
    let mut response = Redirect::to("/console/signin").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(SESSION_COOKIE, "", secure, Some(0)),
    );
    response
}

async fn css() -> Response {
    asset("text/css", include_str!("assets/console.css"))
}

async fn script() -> Response {
    asset("text/javascript", include_str!("assets/console.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A time in microseconds as `YYYY-MM-DD HH:MM UTC`.
pub fn when(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// Whether the scope names cohorts (a trainer's key).
pub fn scoped_cohorts(who: &Principal) -> Option<&std::collections::BTreeSet<String>> {
    match &who.scope {
        Scope::Cohorts(c) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    /// The console calls the engine: no gRPC, no Connect bridge, no
    /// protobuf type, no store (ARCHITECTURE.md, `http/console/`).
    #[test]
    fn the_console_calls_the_engine_only() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/console");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.lines().take_while(|l| !l.starts_with("#[cfg(test)]"));
            for line in code.filter(|l| !l.trim_start().starts_with("//")) {
                for banned in [
                    "crate::api",
                    "crate::server",
                    "crate::store",
                    "super::connect",
                    "tonic",
                    "prost",
                    ".store()",
                ] {
                    assert!(
                        !line.contains(banned),
                        "{} names {banned}: {line}",
                        path.display()
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 5);
    }
}

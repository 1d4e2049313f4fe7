//! The web console (`/console/`): its security over plain HTTP (sign-in,
//! cookies, CSRF, scopes), then a real browser (headless Chromium driven by
//! chromedriver through WebDriver) signing in as a trainer, seeing an alert
//! arrive live, acknowledging it, and as a manager previewing and
//! committing a formation, with axe-core run on every page and a
//! screenshot of each kept under `target/console-screenshots/`.
//!
//! The browser test needs `chromedriver` and `chromium` (Debian's
//! `chromium-driver` and `chromium`; `.ci/run` installs them) and axe-core
//! from npm (installed into `tests/clients/axe` with the download cache
//! under `target/`). Without the browser it passes with a note, unless
//! `SPOC_CONSOLE_BROWSER=required` (as in CI); without npm, the pages are
//! not checked with axe (a note says so), as the other outside-client
//! tests do without node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use spoc_engine::api::pb;
use spoc_engine::http::console::ConsoleOptions;
use tokio::sync::oneshot;

/// A test server with the HTTP listener (console included), two programs
/// of one cohort each, and keys: a trainer of each cohort, a manager, an
/// LMS key.
struct Console {
    server: TestServer,
    http: SocketAddr,
    cohort: String,
    other_cohort: String,
    trainer: String,
    other_trainer: String,
    manager: String,
    lms: String,
    _stop: oneshot::Sender<()>,
}

impl Console {
    async fn start(options: ConsoleOptions) -> Self {
        let server = TestServer::start().await;
        let cohort = one_cohort(&server, "excel", "l").await;
        let other_cohort = one_cohort(&server, "stats", "m").await;
        let trainer = server
            .key(pb::ApiKeyRole::Trainer, &[cohort.as_str()], "")
            .await;
        let other_trainer = server
            .key(pb::ApiKeyRole::Trainer, &[other_cohort.as_str()], "")
            .await;
        let manager = server.key(pb::ApiKeyRole::Manager, &[], "").await;
        let lms = server.key(pb::ApiKeyRole::Lms, &[], "").await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let stack = spoc_engine::server::ApiStack::new(server.engine.clone(), 64);
        tokio::spawn(spoc_engine::http::serve_with_options(
            stack,
            listener,
            async {
                let _ = stopped.await;
            },
            options,
        ));
        // The alert evaluator caches who is in which cohort for a second:
        // alerts raised from now on name the cohorts just formed.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Self {
            server,
            http,
            cohort,
            other_cohort,
            trainer,
            other_trainer,
            manager,
            lms,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Three failed answers of `learner` on skill `a`: a blocking point;
    /// returns its alert once listed.
    async fn blocking_point(&self, learner: &str, tag: &str) -> pb::Alert {
        let attempts = (0..3)
            .map(|k| attempt(&format!("{tag}-{k}"), learner, &["a"], false, t0() + k))
            .collect();
        self.server.record(attempts).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let alerts = self
                .server
                .list_alerts(pb::ListAlertsRequest {
                    learner_id: learner.into(),
                    ..Default::default()
                })
                .await;
            if let Some(a) = alerts
                .into_iter()
                .find(|a| a.kind == pb::AlertKind::BlockingPoint as i32)
            {
                return a;
            }
            assert!(Instant::now() < deadline, "no blocking point for {learner}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn alert(&self, id: &str) -> pb::Alert {
        self.server
            .alerts()
            .await
            .get_alert(pb::GetAlertRequest {
                alert_id: id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn cohort_version(&self, program: &str) -> u64 {
        self.server.program_cohorts(program).await.version
    }
}

/// Sixteen learners `{prefix}00..15` of five companies in `program`, one
/// cohort formed; its id.
async fn one_cohort(server: &TestServer, program: &str, prefix: &str) -> String {
    let people: Vec<pb::Learner> = staff(prefix, 16, "co", 5);
    seed_cohort_program(server, program, None, &people).await;
    server.form_one_cohort(program).await
}

/// Posts the manager's move form with a session's `cookie` and `csrf`
/// token: `learner` of program "big" into cohort `target`.
async fn post_move(
    console: &Console,
    cookie: &str,
    csrf: &str,
    learner: &str,
    target: &str,
) -> reqwest::Response {
    client()
        .post(console.url("/console/program/move"))
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf),
            ("program", "big"),
            ("learner", learner),
            ("target", target),
        ])
        .send()
        .await
        .unwrap()
}

/// An HTTP client that does not follow redirects nor keep cookies: the
/// test carries them by hand, to see each one.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The `Set-Cookie` header of `response` for cookie `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The value of a cookie in a `Set-Cookie` header.
fn cookie_value(set_cookie: &str) -> String {
    let first = set_cookie.split(';').next().unwrap();
    first.split_once('=').unwrap().1.to_string()
}

/// `text` as the templates escape it in HTML (`/` included).
fn escaped(text: &str) -> String {
    text.replace('/', "&#x2f;")
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_field(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a csrf field in the page");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Signs in with `key`: the session cookie (`name=value`) and the page's
/// CSRF token.
async fn sign_in(console: &Console, key: &str) -> (String, String) {
    let http = client();
    let form = http
        .get(console.url("/console/signin"))
        .send()
        .await
        .unwrap();
    let token = cookie_value(&set_cookie(&form, "spoc_console_signin").unwrap());
    let signed = http
        .post(console.url("/console/signin"))
        .header("cookie", format!("spoc_console_signin={token}"))
        .form(&[("csrf", token.as_str()), ("key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303, "sign-in with a valid key");
    let session = cookie_value(&set_cookie(&signed, "spoc_console").unwrap());
    let cookie = format!("spoc_console={session}");
    let home = http
        .get(console.url("/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 200);
    let csrf = csrf_field(&home.text().await.unwrap());
    (cookie, csrf)
}

#[tokio::test]
async fn sign_in_cookies_csrf_and_scopes_hold_over_plain_http() {
    let console = Console::start(ConsoleOptions::default()).await;
    let http = client();

    // No session: every page sends the browser to sign in.
    for path in [
        "/console/",
        &format!("/console/cohort?id={}", console.cohort),
    ] {
        let r = http.get(console.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/console/signin");
    }

    // The sign-in form: a double-submit token, in French for a French
    // browser.
    let form = http
        .get(console.url("/console/signin"))
        .header("accept-language", "fr-FR,fr;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let signin_cookie = set_cookie(&form, "spoc_console_signin").unwrap();
    assert!(signin_cookie.contains("HttpOnly"), "{signin_cookie}");
    assert!(signin_cookie.contains("SameSite=Strict"), "{signin_cookie}");
    assert!(!signin_cookie.contains("Secure"), "{signin_cookie}");
    let token = cookie_value(&signin_cookie);
    let page = form.text().await.unwrap();
    assert!(page.contains("<html lang=\"fr\">"), "{page}");
    assert!(page.contains("Clé d’API"), "{page}");
    assert_eq!(csrf_field(&page), token);
    let with_token = format!("spoc_console_signin={token}");

    // The sign-in POST without the token, or with another, is refused.
    for sent in [None, Some("0".repeat(64))] {
        let mut fields = vec![("key", console.trainer.clone())];
        if let Some(sent) = sent {
            fields.push(("csrf", sent));
        }
        let r = http
            .post(console.url("/console/signin"))
            .header("cookie", &with_token)
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(set_cookie(&r, "spoc_console").is_none());
    }
    // A bad key, and a key whose role has no console.
    for (key, status) in [
        ("spoc_0123456789abcdef_".to_string() + &"ab".repeat(32), 401),
        (console.lms.clone(), 403),
    ] {
        let r = http
            .post(console.url("/console/signin"))
            .header("cookie", &with_token)
            .form(&[("csrf", token.as_str()), ("key", key.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        assert!(set_cookie(&r, "spoc_console").is_none());
    }

    // A trainer signs in: a random session id in a strict cookie.
    let signed = http
        .post(console.url("/console/signin"))
        .header("cookie", &with_token)
        .form(&[("csrf", token.as_str()), ("key", console.trainer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    assert_eq!(signed.headers()["location"], "/console/");
    let session_cookie = set_cookie(&signed, "spoc_console").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session_cookie.contains(flag), "{session_cookie}");
    }
    assert!(!session_cookie.contains("Secure"));
    let session = cookie_value(&session_cookie);
    assert_eq!(session.len(), 64, "256 random bits as hex");
    assert!(session.bytes().all(|b| b.is_ascii_hexdigit()));
    let cookie = format!("spoc_console={session}");
    let get = |path: String| {
        let http = http.clone();
        let cookie = cookie.clone();
        async move {
            http.get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };

    // Home lists the trainer's cohort, not the other.
    let home = get(console.url("/console/")).await;
    let status = home.status();
    assert_eq!(status, 200, "{}", home.text().await.unwrap());
    let home = get(console.url("/console/")).await;
    assert!(
        home.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let home = home.text().await.unwrap();
    assert!(home.contains(&escaped(&console.cohort)), "{home}");
    assert!(!home.contains(&escaped(&console.other_cohort)), "{home}");
    let csrf = csrf_field(&home);
    assert_ne!(csrf, session);

    // Another scope's cohort does not exist for this key; a manager page
    // is not for a trainer.
    let other = get(console.url(&format!("/console/cohort?id={}", console.other_cohort))).await;
    assert_eq!(other.status(), 404);
    let own = get(console.url(&format!("/console/cohort?id={}", console.cohort))).await;
    assert_eq!(own.status(), 200);
    let events = get(console.url(&format!(
        "/console/cohort/events?id={}",
        console.other_cohort
    )))
    .await;
    assert_eq!(events.status(), 404);
    assert_eq!(
        get(console.url("/console/program?id=excel")).await.status(),
        403
    );

    // The cohort's HTML report, not another's.
    let report = get(console.url(&format!("/console/cohort/report?id={}", console.cohort))).await;
    assert_eq!(report.status(), 200);
    assert!(report.text().await.unwrap().contains("Cohort report"));
    let report = get(console.url(&format!(
        "/console/cohort/report?id={}",
        console.other_cohort
    )))
    .await;
    assert_eq!(report.status(), 404);

    // An alert in each cohort.
    let mine = console.blocking_point("l01", "mine").await;
    let theirs = console.blocking_point("m01", "theirs").await;
    assert_eq!(mine.cohort_id, console.cohort);
    let page = get(console.url(&format!("/console/cohort?id={}", console.cohort)))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&mine.id) && !page.contains(&theirs.id),
        "{page}"
    );

    // POSTs without the session's token, or with another, change nothing.
    let post = |path: &str, fields: Vec<(&str, String)>| {
        http.post(console.url(path))
            .header("cookie", &cookie)
            .form(&fields)
            .send()
    };
    let r = post(
        "/console/alert/acknowledge",
        vec![("alert", mine.id.clone())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let r = post(
        "/console/alert/acknowledge",
        vec![("alert", mine.id.clone()), ("csrf", token.clone())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 403, "the sign-in token is not the session's");
    assert_eq!(
        console.alert(&mine.id).await.status,
        pb::AlertStatus::Open as i32
    );
    // Nor does a session's token without its cookie.
    let r = http
        .post(console.url("/console/alert/acknowledge"))
        .form(&[("alert", mine.id.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Out of scope: not found, untouched.
    let r = post(
        "/console/alert/acknowledge",
        vec![("alert", theirs.id.clone()), ("csrf", csrf.clone())],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        console.alert(&theirs.id).await.status,
        pb::AlertStatus::Open as i32
    );

    // With the token: done, back to the cohort.
    let r = post(
        "/console/alert/acknowledge",
        vec![
            ("alert", mine.id.clone()),
            ("csrf", csrf.clone()),
            ("note", "called them".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 303);
    let acknowledged = console.alert(&mine.id).await;
    assert_eq!(acknowledged.status, pb::AlertStatus::Acknowledged as i32);
    assert_eq!(acknowledged.note, "called them");

    // The learner page of one's own learner; another's is not found.
    let learner = get(console.url("/console/learner?id=l01&program=excel")).await;
    assert_eq!(learner.status(), 200);
    let learner = learner.text().await.unwrap();
    assert!(learner.contains("l01"), "{learner}");
    assert_eq!(
        get(console.url("/console/learner?id=m01&program=stats"))
            .await
            .status(),
        404
    );

    // Sign-out ends the session on the server.
    let out = post("/console/signout", vec![("csrf", csrf.clone())])
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(
        set_cookie(&out, "spoc_console")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(get(console.url("/console/")).await.status(), 303);

    // A revoked key ends its sessions.
    let (cookie, _) = sign_in(&console, &console.other_trainer).await;
    let key_id = console.other_trainer.split('_').nth(1).unwrap().to_string();
    console.server.engine.revoke_api_key(&key_id).await.unwrap();
    let r = http
        .get(console.url("/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // A manager forms cohorts: preview stores nothing, commit does.
    let (cookie, csrf) = sign_in(&console, &console.manager).await;
    let before = console.cohort_version("excel").await;
    let form = |action: &str| {
        http.post(console.url("/console/program/form"))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("program", "excel"),
                ("objective", "balanced"),
                ("seed", "7"),
                ("action", action),
            ])
            .send()
    };
    let preview = form("preview").await.unwrap();
    assert_eq!(preview.status(), 200);
    let preview = preview.text().await.unwrap();
    assert!(preview.contains("id=\"balance\""), "{preview}");
    assert_eq!(console.cohort_version("excel").await, before);
    let commit = form("commit").await.unwrap();
    assert_eq!(commit.status(), 303);
    assert_eq!(console.cohort_version("excel").await, before + 1);
    let bad = http
        .post(console.url("/console/program/form"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("program", "excel"),
            ("action", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("action"));

    // Lock the new cohort; the program's HTML report.
    let cohort = console
        .server
        .program_cohorts("excel")
        .await
        .cohorts
        .remove(0);
    assert!(!cohort.locked);
    let locked = http
        .post(console.url("/console/cohort/lock"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("cohort", cohort.id.as_str()),
            ("locked", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(locked.status(), 303);
    let now = console.server.cohort(&cohort.id).await;
    assert!(now.locked);
    let report = http
        .get(console.url("/console/program/report?id=excel"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(report.status(), 200);
    assert!(
        report.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(report.text().await.unwrap().contains("Program report"));
}

#[tokio::test]
async fn cookies_are_secure_under_tls() {
    let console = Console::start(ConsoleOptions {
        secure_cookies: true,
    })
    .await;
    let form = client()
        .get(console.url("/console/signin"))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie(&form, "spoc_console_signin")
            .unwrap()
            .contains("; Secure")
    );
    let token = cookie_value(&set_cookie(&form, "spoc_console_signin").unwrap());
    let signed = client()
        .post(console.url("/console/signin"))
        .header("cookie", format!("spoc_console_signin={token}"))
        .form(&[("csrf", token.as_str()), ("key", console.trainer.as_str())])
        .send()
        .await
        .unwrap();
    assert!(
        set_cookie(&signed, "spoc_console")
            .unwrap()
            .contains("; Secure")
    );
}

/// One session holds a bounded number of live event streams: past it a
/// stream is refused with 429 and a page saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_a_bounded_number_of_live_streams() {
    let console = Console::start(ConsoleOptions::default()).await;
    let (cookie, _) = sign_in(&console, &console.trainer).await;
    let url = console.url(&format!("/console/cohort/events?id={}", console.cohort));
    let open = || async {
        client()
            .get(&url)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..spoc_engine::http::console::session::MAX_STREAMS_PER_SESSION {
        let stream = open().await;
        assert_eq!(stream.status(), 200);
        held.push(stream);
    }
    let refused = open().await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("too many live pages")
    );
    // Another session of the same key has its own streams.
    let (other, _) = sign_in(&console, &console.trainer).await;
    let stream = client()
        .get(&url)
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
}

/// Behind a TLS-terminating proxy that says so, the cookies of a plain
/// HTTP listener are `Secure` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_behind_an_https_proxy() {
    let console = Console::start(ConsoleOptions::default()).await;
    let form = client()
        .get(console.url("/console/signin"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let signin = set_cookie(&form, "spoc_console_signin").unwrap();
    assert!(signin.contains("; Secure"), "{signin}");
    let token = cookie_value(&signin);
    let signed = client()
        .post(console.url("/console/signin"))
        .header("forwarded", "for=192.0.2.60;proto=https")
        .header("cookie", format!("spoc_console_signin={token}"))
        .form(&[("csrf", token.as_str()), ("key", console.trainer.as_str())])
        .send()
        .await
        .unwrap();
    let session = set_cookie(&signed, "spoc_console").unwrap();
    assert!(session.contains("; Secure"), "{session}");
}

// ---- The real browser ----

/// Whether a missing browser or axe fails the test instead of skipping it.
fn required() -> bool {
    std::env::var("SPOC_CONSOLE_BROWSER").is_ok_and(|v| v == "required")
}

/// chromedriver, stopped with the test.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port; `None` (with a note) when it or
/// chromium is not installed.
async fn chromedriver() -> Option<Driver> {
    let installed = Command::new("chromedriver")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(!required(), "chromedriver is not installed");
        eprintln!(
            "chromedriver not found: the browser test is skipped (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = free_addr().port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver { child, port };
    outside::wait_for_listener(SocketAddr::from(([127, 0, 0, 1], port))).await;
    Some(driver)
}

/// axe-core's script, installed with npm (`npm ci` in
/// `tests/clients/axe`, redone when the lock file changes; downloads
/// cached under `target/`); `None` (with a note) without npm.
fn axe_source() -> Option<String> {
    if !outside::have("npm") {
        eprintln!("npm not found: the console pages are not checked with axe-core");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/axe");
    let lock = std::fs::read(dir.join("package-lock.json")).unwrap();
    let stamp = dir.join("node_modules/.spoc-installed-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        outside::install_step(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--cache"])
                .arg(outside::cache("npm-cache"))
                .current_dir(&dir),
            Duration::from_secs(300),
        );
        std::fs::write(&stamp, &lock).unwrap();
    }
    Some(std::fs::read_to_string(dir.join("node_modules/axe-core/axe.min.js")).unwrap())
}

/// Where the screenshots go: `target/console-screenshots/`.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A browser session and what each page gets: axe, a screenshot.
struct Browser {
    client: fantoccini::Client,
    axe: Option<String>,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Driver, lang: &str) -> Self {
        let mut caps = serde_json::Map::new();
        let mut args = vec![
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        let profile = tempfile::tempdir().unwrap();
        let profile_path = profile.path().to_path_buf();
        args.push(format!("--user-data-dir={}", profile_path.display()));
        args.push(format!("--lang={lang}"));
        let mut options = serde_json::json!({ "args": args });
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = "/usr/bin/chromium".into();
        }
        caps.insert("goog:chromeOptions".into(), options);
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session through chromedriver");
        Self {
            client,
            axe: axe_source(),
            shots: screenshots(),
            _profile: profile,
        }
    }

    /// Runs axe-core on the page (no serious or critical violation) and
    /// saves a screenshot as `name.png`.
    async fn check(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        let Some(axe) = &self.axe else { return };
        self.client.execute(axe, vec![]).await.unwrap();
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document)
                   .then(r => done({
                     passes: r.passes.length,
                     bad: r.violations
                       .filter(v => v.impact === 'serious' || v.impact === 'critical')
                       .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' at '
                         + v.nodes.map(n => n.target.join(' ')).join(', '))
                   }))
                   .catch(e => done({ passes: 0, bad: ['axe failed: ' + e] }));",
                vec![],
            )
            .await
            .unwrap();
        let bad: Vec<String> = serde_json::from_value(found["bad"].clone()).unwrap();
        assert!(bad.is_empty(), "axe on the {name} page: {bad:#?}");
        // axe ran its rules: a page it could not read would pass none.
        assert!(found["passes"].as_u64().unwrap() > 10, "{found}");
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Clicks the element `css` finds (once it is there).
    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn sign_in(&self, console: &Console, key: &str) {
        self.client.goto(&console.url("/console/")).await.unwrap();
        assert!(
            self.client
                .current_url()
                .await
                .unwrap()
                .path()
                .ends_with("/console/signin")
        );
        self.find("#key").await.send_keys(key).await.unwrap();
        self.click("#signin").await;
        self.find("nav .who").await;
    }
}

#[tokio::test]
async fn a_trainer_and_a_manager_work_in_a_real_browser() {
    let Some(driver) = chromedriver().await else {
        return;
    };
    let console = Console::start(ConsoleOptions::default()).await;
    let browser = Browser::open(&driver, "en-US").await;

    // The sign-in page, then the trainer's home.
    browser
        .client
        .goto(&console.url("/console/"))
        .await
        .unwrap();
    browser.find("#key").await;
    browser.check("signin").await;
    browser.sign_in(&console, &console.trainer).await;
    browser.check("trainer-home").await;

    // The cohort page, its event stream open.
    browser.click("a[href^=\"/console/cohort?id=\"]").await;
    browser.find("body[data-live=\"on\"]").await;
    browser.find("table.heat").await;
    browser
        .client
        .execute("window.spocSamePage = true;", vec![])
        .await
        .unwrap();

    // An alert raised now appears without a reload, and the heat map's
    // count of open alerts for its learner follows.
    let count = async || -> u32 {
        let cell = browser.find("td[data-alerts-of=\"l02\"]").await;
        cell.text().await.unwrap().parse().unwrap()
    };
    let before = count().await;
    let alert = console.blocking_point("l02", "live").await;
    let row = browser
        .find(&format!("tr[data-alert=\"{}\"]", alert.id))
        .await;
    assert!(row.text().await.unwrap().contains("l02"));
    let after = count().await;
    assert_eq!(
        after,
        before + 1,
        "the heat map's alert count did not follow"
    );
    let same = browser
        .client
        .execute("return window.spocSamePage === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same, serde_json::Value::Bool(true), "the page was reloaded");
    browser.check("cohort").await;

    // Acknowledge it from its row.
    row.find(fantoccini::Locator::Css("button.ack"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.find("body[data-live=\"on\"]").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while console.alert(&alert.id).await.status != pb::AlertStatus::Acknowledged as i32 {
        assert!(Instant::now() < deadline, "the alert was not acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = browser
        .find(&format!("tr[data-alert=\"{}\"]", alert.id))
        .await;
    assert!(
        row.find(fantoccini::Locator::Css("button.ack"))
            .await
            .is_err()
    );

    // The learner's page.
    browser.click("tr[data-alert] td a").await;
    browser.find("#mastery-h").await;
    browser.check("learner").await;

    // Sign out; a manager previews a formation, then commits it.
    browser.click("nav form button").await;
    browser.find("#key").await;
    browser.sign_in(&console, &console.manager).await;
    browser.check("manager-home").await;
    browser.click("a[href=\"/console/program?id=excel\"]").await;
    browser.find("#preview").await;
    browser.check("program").await;
    let before = console.cohort_version("excel").await;
    browser.click("#preview").await;
    browser.find("#balance").await;
    browser.check("formation-preview").await;
    assert_eq!(console.cohort_version("excel").await, before);
    browser.click("#commit").await;
    browser.find("#preview").await;
    browser.find(".flash").await;
    assert_eq!(console.cohort_version("excel").await, before + 1);
    let shown = browser.find("#version").await.text().await.unwrap();
    assert_eq!(shown, (before + 1).to_string());
    browser.check("program-committed").await;

    browser.client.close().await.unwrap();
    drop(driver);
}

#[tokio::test]
async fn a_manager_moves_a_learner_between_cohorts() {
    let console = Console::start(ConsoleOptions::default()).await;
    let people: Vec<pb::Learner> = staff("b", 32, "co", 8);
    let rules = pb::CohortRules {
        min_size: Some(15),
        max_size: Some(20),
        ..Default::default()
    };
    seed_cohort_program(&console.server, "big", Some(rules), &people).await;
    let formed = console.server.form_cohorts("big").await;
    assert_eq!(formed.cohorts.len(), 2);
    let (from, to) = (&formed.cohorts[0], &formed.cohorts[1]);
    let learner = from.learner_ids[0].clone();

    let (cookie, csrf) = sign_in(&console, &console.manager).await;
    let page = client()
        .get(console.url("/console/program?id=big"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"move-learner\""), "{page}");
    let moved = post_move(&console, &cookie, &csrf, learner.as_str(), to.id.as_str()).await;
    assert_eq!(moved.status(), 303);
    let target = console.server.cohort(&to.id).await;
    assert!(target.learner_ids.contains(&learner), "{target:?}");

    // Ids are checked as over gRPC: an oversized one is a 400 naming it.
    let long = "x".repeat(300);
    let refused = post_move(&console, &cookie, &csrf, long.as_str(), from.id.as_str()).await;
    assert_eq!(refused.status(), 400);
    let page = refused.text().await.unwrap();
    assert!(page.contains("learner"), "{page}");

    // A trainer key has no manager pages.
    let (cookie, csrf) = sign_in(&console, &console.trainer).await;
    let refused = post_move(&console, &cookie, &csrf, learner.as_str(), from.id.as_str()).await;
    assert_eq!(refused.status(), 403);
}

/// A learner whose skills all look mastered, with no answer since their
/// latest module, is asked questions of the bank before certification:
/// the learner page names those questions where a module would be.
#[tokio::test]
async fn a_learner_page_names_the_questions_a_check_asks() {
    let console = Console::start(ConsoleOptions::default()).await;
    let mut catalog = console.server.catalog().await;
    catalog
        .upsert_module(pb::UpsertModuleRequest {
            module: Some(module("m-a", &["a"], pb::ModuleFormat::Video, 10)),
        })
        .await
        .unwrap();
    add_items(&console.server, &["a", "b", "c"]).await;
    let start = t0() - 3_600;
    let answers: Vec<pb::Attempt> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            (0..8).map(move |i| {
                attempt(
                    &format!("{s}{i}"),
                    "l01",
                    &[s],
                    true,
                    start + (k * 10 + i) as i64,
                )
            })
        })
        .collect();
    console
        .server
        .mastery()
        .await
        .record_attempts(pb::RecordAttemptsRequest { attempts: answers })
        .await
        .unwrap();
    console
        .server
        .remediation()
        .await
        .record_activity(pb::RecordActivityRequest {
            activities: vec![activity("done", "l01", "m-a", true, start + 100, 10)],
        })
        .await
        .unwrap();

    let (cookie, _) = sign_in(&console, &console.trainer).await;
    let page = client()
        .get(console.url("/console/learner?id=l01&program=excel"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let questions = page
        .split("<td>Questions: ")
        .skip(1)
        .map(|row| row.split("</td>").next().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(!questions.is_empty(), "no questions on the page:\n{page}");
    for asked in &questions {
        assert!(
            asked
                .split(", ")
                .all(|id| ["a-q", "b-q", "c-q"].iter().any(|p| id.starts_with(p))),
            "questions of the bank: {asked}"
        );
    }
    assert!(
        page.contains("before the program is certified"),
        "the reason is shown:\n{page}"
    );
}

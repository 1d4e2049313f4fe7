//! Authentication and role check of every call, in one tower layer.
//!
//! The layer wraps all routes of the server. Health checking and server
//! reflection pass without a key; every other path needs an
//! `authorization: Bearer <token>` header naming an active key
//! (UNAUTHENTICATED otherwise) whose role may call that method
//! (PERMISSION_DENIED otherwise; an unknown method is for admins only). The
//! caller's [`Principal`] then travels in the request extensions, where
//! the scope check of trainer and company keys ([`super::scope`]) and the
//! filtering of listed results find it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::codegen::Service;
use tonic::codegen::http;

use super::admission::{Admission, is_expensive};
use crate::domain::access::{Principal, is_public};
use crate::engine::Engine;
use crate::error::Error;

/// Builds [`Authenticated`] around the server's routes.
#[derive(Clone)]
pub struct AuthLayer {
    engine: Arc<Engine>,
    admission: Admission,
}

impl AuthLayer {
    /// A layer checking keys against `engine`'s key cache, admitting
    /// expensive calls through `admission` (shared by every listener).
    pub fn new(engine: Arc<Engine>, admission: Admission) -> Self {
        Self { engine, admission }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            engine: self.engine.clone(),
            admission: self.admission.clone(),
        }
    }
}

/// The routes, behind authentication and the role check.
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    engine: Arc<Engine>,
    admission: Admission,
}

/// The token of an `authorization` header value `Bearer <token>` (scheme
/// case-insensitive, as RFC 7235 has it).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl<S> Authenticated<S> {
    /// The caller of a request, if its key may call `method`.
    fn authorize<B>(
        &self,
        request: &http::Request<B>,
        method: &str,
    ) -> Result<Arc<Principal>, Error> {
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                Error::Unauthenticated("send an API key as 'authorization: Bearer <key>'".into())
            })?;
        let principal = self.engine.authenticate_shared(token)?;
        if !principal.may_call(method) {
            return Err(Error::PermissionDenied(format!(
                "a {} key may not call {method}",
                principal.role.name()
            )));
        }
        Ok(principal)
    }
}

impl<S, B, R> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>, Error = Infallible>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = http::Response<R>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = request.uri().path();
        let expensive = is_expensive(method).then(|| method.to_string());
        if !is_public(method) {
            match self.authorize(&request, method) {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                }
                Err(err) => {
                    if let Some(suppressed) = REFUSALS.admit() {
                        tracing::info!(
                            method,
                            error = %err,
                            suppressed,
                            "call refused (at most one line a second; `suppressed`: \
                             refusals not logged since the last line)"
                        );
                    }
                    let response = Status::from(err).into_http();
                    return Box::pin(std::future::ready(Ok(response)));
                }
            }
        }
        if let Some(method) = expensive {
            let admission = self.admission.clone();
            let call = self.inner.call(request);
            return Box::pin(async move {
                match admission.enter(&method).await {
                    Ok(_turn) => call.await,
                    Err(status) => Ok(status.into_http()),
                }
            });
        }
        Box::pin(self.inner.call(request))
    }
}

/// Refused calls are logged at most once a second: a flood of calls
/// without a valid key must not flood the log.
static REFUSALS: LogLimit = LogLimit::new();

/// One log line a second at most, counting the lines left out.
pub struct LogLimit {
    /// Seconds (since the process's first refusal) of the last line.
    last: std::sync::atomic::AtomicU64,
    /// Refusals since that line.
    suppressed: std::sync::atomic::AtomicU64,
}

impl LogLimit {
    /// A limit that lets the first line through.
    pub const fn new() -> Self {
        Self {
            last: std::sync::atomic::AtomicU64::new(u64::MAX),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines left out since the last one)` when a line may be
    /// written now, `None` otherwise (counted).
    pub fn admit(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs();
        let last = self.last.load(Ordering::Relaxed);
        if (last == u64::MAX || now > last)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for LogLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// The client side: adds `authorization: Bearer <key>` to every call of a
/// tonic client (`XClient::with_interceptor(channel, BearerKey::new(key)?)`).
/// Used by tests, benches and command-line clients.
#[derive(Clone, Default)]
pub struct BearerKey(Option<tonic::metadata::AsciiMetadataValue>);

impl BearerKey {
    /// Sends `key` (a `spoc_..._...` token).
    pub fn new(key: &str) -> Result<Self, tonic::metadata::errors::InvalidMetadataValue> {
        Ok(Self(Some(format!("Bearer {}", key.trim()).parse()?)))
    }

    /// Sends no key (to check refusals).
    pub fn none() -> Self {
        Self(None)
    }
}

/// Never prints the key: a client struct that derives `Debug` must not
/// leak it into logs.
impl std::fmt::Debug for BearerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "BearerKey(<redacted>)",
            None => "BearerKey(none)",
        })
    }
}

impl tonic::service::Interceptor for BearerKey {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The caller the layer put in a request; UNAUTHENTICATED if none (a
/// handler reached without the layer fails closed).
pub(crate) fn principal<T>(request: &tonic::Request<T>) -> Result<Arc<Principal>, Status> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_leniently_but_not_guessed() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}

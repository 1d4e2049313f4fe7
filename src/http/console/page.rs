//! What every signed-in page handler starts from ([`Page`]: the console's
//! state, the session and the language the browser asks for) and how it
//! answers: the rendered template, or the error page in that language.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use minijinja::Value;

use super::i18n::Lang;
use super::session::Signed;
use super::{ConsoleState, PageError, html, reply};
use crate::domain::access::Principal;
use crate::engine::Engine;

/// A signed-in request, as page handlers take it. Extracted before the
/// query or form, as the session alone was: a request without a live
/// session is sent to the sign-in page first.
pub struct Page {
    /// The console's shared state.
    pub state: ConsoleState,
    /// The session.
    pub signed: Signed,
    /// The language the browser asks for.
    pub lang: Lang,
}

impl FromRequestParts<ConsoleState> for Page {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ConsoleState,
    ) -> Result<Self, Self::Rejection> {
        let signed = Signed::from_request_parts(parts, state).await?;
        Ok(Self {
            state: state.clone(),
            signed,
            lang: Lang::from_headers(&parts.headers),
        })
    }
}

impl Page {
    /// The engine, for work moved off the runtime.
    pub fn engine(&self) -> Arc<Engine> {
        self.state.engine.clone()
    }

    /// Who is signed in, for work moved off the runtime.
    pub fn who(&self) -> Arc<Principal> {
        self.signed.principal.clone()
    }

    /// The error page for `err`.
    pub fn fail(&self, err: impl Into<PageError>) -> Response {
        reply(&self.state, Err((self.lang, err.into())))
    }

    /// The refusal of the key's role (403).
    pub fn forbidden(&self) -> Response {
        self.fail(PageError::forbidden(self.lang))
    }

    /// `template` rendered with `ctx`, or the error page.
    pub fn render(&self, template: &str, ctx: Result<Value, PageError>) -> Response {
        let result = ctx
            .map_err(|e| (self.lang, e))
            .and_then(|ctx| html(self.lang, Some(&self.signed), template, ctx));
        reply(&self.state, result)
    }
}

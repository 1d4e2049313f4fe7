//! Who is calling: the API key of an `Authorization` header, the same keys
//! as the gRPC API.
//!
//! Accepted forms: `Bearer <key>`, and `Basic base64(<anything>:<key>)` or
//! `Basic base64(<key>:)`, since xAPI forwarders (Moodle's log store, Open
//! edX's event routing) are configured with a Basic user and password.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::HttpError;
use crate::domain::access::Principal;
use crate::engine::Engine;

/// The key carried by the request: 401 when the header is missing or is
/// not one of the accepted forms.
pub fn token(headers: &HeaderMap) -> Result<String, HttpError> {
    let unauthorized = |why: &str| HttpError::new(StatusCode::UNAUTHORIZED, why);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization header (Basic or Bearer API key)"))?
        .to_str()
        .map_err(|_| unauthorized("Authorization header is not ASCII"))?;
    let (scheme, rest) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| unauthorized("Authorization header must be 'Basic ...' or 'Bearer ...'"))?;
    let rest = rest.trim();
    let key = if scheme.eq_ignore_ascii_case("bearer") {
        rest.to_string()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| unauthorized("Basic credentials are not base64 of 'user:key'"))?;
        match decoded.split_once(':') {
            Some((_, password)) if !password.is_empty() => password.to_string(),
            Some((user, _)) => user.to_string(),
            None => return Err(unauthorized("Basic credentials must hold a ':'")),
        }
    } else {
        return Err(unauthorized(
            "Authorization header must be 'Basic ...' or 'Bearer ...'",
        ));
    };
    if key.is_empty() {
        return Err(unauthorized("the API key is empty"));
    }
    Ok(key)
}

/// Checks a key against the service's API keys: 401 when unknown or
/// revoked.
pub fn check_key(engine: &Engine, token: &str) -> Result<Arc<Principal>, HttpError> {
    engine
        .authenticate_shared(token)
        .map_err(|_| HttpError::new(StatusCode::UNAUTHORIZED, "unknown or revoked API key"))
}

/// Authenticates the request and checks that it may call `method`:
/// 401 without a valid key, 403 when the key may not call it.
pub fn authorize(
    engine: &Engine,
    headers: &HeaderMap,
    method: &str,
) -> Result<Arc<Principal>, HttpError> {
    let caller = check_key(engine, &token(headers)?)?;
    if !caller.may_call(method) {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            format!("this API key may not call {method}"),
        ));
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_and_basic_forms() {
        assert_eq!(token(&with("Bearer k-123")).unwrap(), "k-123");
        let basic = |s: &str| format!("Basic {}", STANDARD.encode(s));
        assert_eq!(token(&with(&basic("moodle:k-123"))).unwrap(), "k-123");
        assert_eq!(token(&with(&basic("k-123:"))).unwrap(), "k-123");
    }

    #[test]
    fn missing_or_malformed_is_401() {
        for headers in [
            HeaderMap::new(),
            with("Token abc"),
            with("Basic !!!"),
            with(&format!("Basic {}", STANDARD.encode("nocolon"))),
            with(&format!("Basic {}", STANDARD.encode(":"))),
            with("Bearer"),
        ] {
            assert_eq!(
                token(&headers).unwrap_err().status,
                StatusCode::UNAUTHORIZED
            );
        }
    }
}

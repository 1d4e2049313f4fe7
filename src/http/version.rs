//! The `X-Experience-API-Version` header: xAPI 1.0.x and 2.0.x (IEEE
//! 9274.1.1) are spoken, and every xAPI reply names the family of its
//! request (`1.0.3` or `2.0.0`).
//!
//! A statements request without the header is taken as 1.0.3: LRSs that
//! forward statements (Ralph) send none, and a request that reaches this
//! endpoint has already been checked by the LRS in front of it.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::error::HttpError;

/// The header's name.
pub const HEADER: &str = "x-experience-api-version";
/// The versions this endpoint speaks, as `GET /xapi/about` lists them.
pub const SPOKEN: [&str; 2] = [Version::V1.as_str(), Version::V2.as_str()];

/// An xAPI version family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// xAPI 1.0.x, answered as 1.0.3.
    V1,
    /// xAPI 2.0.x (IEEE 9274.1.1), answered as 2.0.0.
    V2,
}

impl Version {
    /// The version a reply in this family announces.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "1.0.3",
            Version::V2 => "2.0.0",
        }
    }

    /// The family of a header value: `1.0`, `1.0.N`, `2.0` or `2.0.N`.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let in_family = |minor: &str| {
            value == minor
                || value
                    .strip_prefix(minor)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|patch| {
                        !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit())
                    })
        };
        if in_family("1.0") {
            Some(Version::V1)
        } else if in_family("2.0") {
            Some(Version::V2)
        } else {
            None
        }
    }
}

/// The version of a statements request: the header's family, 1.0.3 when
/// it is absent, 400 naming the header when it is not one spoken here.
pub fn check(headers: &HeaderMap) -> Result<Version, HttpError> {
    let field = "X-Experience-API-Version";
    let Some(value) = headers.get(HEADER) else {
        return Ok(Version::V1);
    };
    let value = value
        .to_str()
        .map_err(|_| HttpError::bad_field(field, "header is not ASCII"))?;
    Version::parse(value).ok_or_else(|| {
        HttpError::bad_field(
            field,
            format!(
                "version '{}' is not supported; this endpoint speaks 1.0.x and 2.0.x",
                value.trim()
            ),
        )
    })
}

/// Answers every request in its own version (a middleware): the reply's
/// header is `2.0.0` for a 2.0.x request and `1.0.3` otherwise (1.0.x, no
/// header, or one refused by [`check`]).
pub async fn answer(request: Request, next: Next) -> Response {
    let version = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(Version::parse)
        .unwrap_or(Version::V1);
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(HEADER, HeaderValue::from_static(version.as_str()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let mut headers = HeaderMap::new();
        assert_eq!(check(&headers).unwrap(), Version::V1, "absent: 1.0.3");
        for (good, family) in [
            ("1.0", Version::V1),
            ("1.0.0", Version::V1),
            ("1.0.3", Version::V1),
            (" 1.0.3 ", Version::V1),
            ("2.0", Version::V2),
            ("2.0.0", Version::V2),
            ("2.0.12", Version::V2),
        ] {
            headers.insert(HEADER, HeaderValue::from_static(good));
            assert_eq!(check(&headers).unwrap(), family, "{good}");
        }
        for bad in ["2.1.0", "1.1", "1.0.x", "0.95", "1.0.", "2", "", "1.0.3.1"] {
            headers.insert(HEADER, HeaderValue::from_static(bad));
            let err = check(&headers).unwrap_err();
            assert_eq!(
                err.field.as_deref(),
                Some("X-Experience-API-Version"),
                "{bad}"
            );
        }
    }

    #[test]
    fn spoken_lists_both_families() {
        assert_eq!(SPOKEN, ["1.0.3", "2.0.0"]);
    }
}

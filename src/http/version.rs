//! The `X-Experience-API-Version` header: required on every statements
//! request (1.0.x), and sent on every xAPI response.

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;

use super::error::HttpError;

/// The header's name.
pub const HEADER: &str = "x-experience-api-version";
/// The version this endpoint speaks and announces.
pub const SPOKEN: &str = "1.0.3";

/// Checks that the request speaks xAPI 1.0.x: 400 naming the header
/// otherwise.
pub fn check(headers: &HeaderMap) -> Result<(), HttpError> {
    let field = "X-Experience-API-Version";
    let value = headers
        .get(HEADER)
        .ok_or_else(|| HttpError::bad_field(field, "header is required (e.g. 1.0.3)"))?
        .to_str()
        .map_err(|_| HttpError::bad_field(field, "header is not ASCII"))?
        .trim();
    let minor_ok = value == "1.0"
        || value
            .strip_prefix("1.0.")
            .is_some_and(|patch| !patch.is_empty() && patch.chars().all(|c| c.is_ascii_digit()));
    if minor_ok {
        Ok(())
    } else {
        Err(HttpError::bad_field(
            field,
            format!("version '{value}' is not supported; this endpoint speaks 1.0.x"),
        ))
    }
}

/// Adds the version header to a response (a `map_response` layer).
pub async fn announce(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(HEADER, HeaderValue::from_static(SPOKEN));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let mut headers = HeaderMap::new();
        assert!(check(&headers).is_err());
        for good in ["1.0", "1.0.0", "1.0.3"] {
            headers.insert(HEADER, HeaderValue::from_static(good));
            assert!(check(&headers).is_ok(), "{good}");
        }
        for bad in ["2.0.0", "1.1", "1.0.x", "0.95"] {
            headers.insert(HEADER, HeaderValue::from_static(bad));
            let err = check(&headers).unwrap_err();
            assert_eq!(
                err.field.as_deref(),
                Some("X-Experience-API-Version"),
                "{bad}"
            );
        }
    }
}

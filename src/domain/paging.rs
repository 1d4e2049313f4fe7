//! Paging (AIP-158): page sizes and the opaque page tokens every list
//! issues, gRPC's and the HTTP edge's alike.

use std::fmt::Display;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::error::{Error, Result};

/// An [`Error::InvalidArgument`] for `field`, written out only here.
fn invalid(field: impl Display, reason: impl Into<String>) -> Error {
    Error::invalid(field.to_string(), reason)
}

/// AIP-158 page size: negative is an error, 0 the default, large coerced.
pub fn page_size(field: impl Display, value: i32) -> Result<usize> {
    match value {
        v if v < 0 => Err(invalid(&field, "must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        v => Ok((v as usize).min(MAX_PAGE_SIZE)),
    }
}

/// Format version of the page tokens this server issues (their first byte).
const PAGE_TOKEN_VERSION: u8 = 1;
/// Bytes of a page token that bind it to its list and filter.
const PAGE_SCOPE_BYTES: usize = 8;
/// Longest last key a page token may carry. The longest key a list pages
/// over is a cohort's (program id, NUL, cohort id: under 600 bytes); this
/// bound leaves ample room for longer keys without letting a caller make
/// the server decode an arbitrarily long string.
pub const MAX_PAGE_KEY_BYTES: usize = 8 * 1024;
/// Longest page token accepted: the encoding of the longest key.
const MAX_PAGE_TOKEN_CHARS: usize =
    (4 * (1 + PAGE_SCOPE_BYTES + MAX_PAGE_KEY_BYTES + 4)).div_ceil(3);

/// The binding of a page token to `scope`: the first bytes of its SHA-256.
fn page_scope(scope: &str) -> [u8; PAGE_SCOPE_BYTES] {
    let mut binding = [0; PAGE_SCOPE_BYTES];
    binding.copy_from_slice(&Sha256::digest(scope.as_bytes())[..PAGE_SCOPE_BYTES]);
    binding
}

/// Decodes a page token made by [`next_page_token`] for the same `scope`.
///
/// Page tokens are opaque and bound to the request that issued them
/// (AIP-158: a token sent with other parameters than the call that returned
/// it, `page_size` aside, is INVALID_ARGUMENT). A token is the URL-safe
/// base64, without padding, of
///
/// ```text
/// version (1 byte, 1) | binding (8 bytes) | last key (0 to MAX_PAGE_KEY_BYTES) | CRC32 (4 bytes, big-endian)
/// ```
///
/// where the binding is the first 8 bytes of the SHA-256 of `scope`, a
/// string naming the list and its filter, built by each list handler from
/// its RPC name and filter fields joined by NUL (ids never hold one), e.g.
/// `"ListEnrolments\0program\0excel"`; the CRC32 covers everything before
/// it, so a string the server did not make is refused. The last key is
/// where the next page starts after; a forged one only moves the start
/// within the same list, since the store pages within the list's prefix.
/// An empty `value` is the first page (`None`).
pub fn page_token(field: impl Display, value: &str, scope: &str) -> Result<Option<Vec<u8>>> {
    if value.is_empty() {
        return Ok(None);
    }
    let bad = || invalid(&field, "is not a token returned by a previous call");
    if value.len() > MAX_PAGE_TOKEN_CHARS {
        return Err(bad());
    }
    let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| bad())?;
    let Some((body, check)) = bytes.split_last_chunk::<4>() else {
        return Err(bad());
    };
    if crc32fast::hash(body).to_be_bytes() != *check {
        return Err(bad());
    }
    let Some((&version, rest)) = body.split_first() else {
        return Err(bad());
    };
    if version != PAGE_TOKEN_VERSION {
        return Err(invalid(
            &field,
            format!(
                "is a version {version} token, which this server does not read: list again from the first page"
            ),
        ));
    }
    let Some((binding, key)) = rest.split_first_chunk::<PAGE_SCOPE_BYTES>() else {
        return Err(bad());
    };
    if *binding != page_scope(scope) {
        return Err(invalid(
            &field,
            "was issued for another list or filter: send the same filters as the call that returned it",
        ));
    }
    if key.len() > MAX_PAGE_KEY_BYTES {
        return Err(bad());
    }
    Ok(Some(key.to_vec()))
}

/// Encodes the key to continue after as an opaque token bound to `scope`
/// (format in [`page_token`]); `None`, the last page, is the empty token.
pub fn next_page_token(next: Option<Vec<u8>>, scope: &str) -> String {
    let Some(key) = next else {
        return String::new();
    };
    debug_assert!(
        key.len() <= MAX_PAGE_KEY_BYTES,
        "page key of {} bytes",
        key.len()
    );
    let mut bytes = Vec::with_capacity(1 + PAGE_SCOPE_BYTES + key.len() + 4);
    bytes.push(PAGE_TOKEN_VERSION);
    bytes.extend_from_slice(&page_scope(scope));
    bytes.extend_from_slice(&key);
    let check = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&check.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::limits::MAX_IRI_BYTES;

    #[test]
    fn a_long_key_fits_a_token() {
        let token = next_page_token(Some("x".repeat(MAX_IRI_BYTES).into_bytes()), "s");
        assert!(page_token("t", &token, "s").is_ok());
    }

    /// The message of a refused page token, checking it names the field.
    fn token_error(value: &str, scope: &str) -> String {
        let err = page_token("page_token", value, scope)
            .expect_err(value)
            .to_string();
        assert!(err.contains("invalid page_token"), "{err}");
        err
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let scope = "ListEnrolments\0program\0excel";
        let token = next_page_token(Some(b"abc\0d".to_vec()), scope);
        assert_eq!(page_token("t", &token, scope).unwrap().unwrap(), b"abc\0d");
        assert_eq!(page_token("t", "", scope).unwrap(), None);
        assert_eq!(next_page_token(None, scope), "");
        // Keys longer than the old 512-byte cap come back, up to the bound.
        for len in [0, 1, 513, 600, 4096, MAX_PAGE_KEY_BYTES] {
            let key: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let token = next_page_token(Some(key.clone()), scope);
            assert_eq!(page_token("t", &token, scope).unwrap(), Some(key), "{len}");
        }
        // Tokens of the old format (hex of the key) and random strings.
        for garbage in [
            "zz",
            "abc",
            "00",
            "ffff",
            "00ff",
            "not-a-token",
            "====",
            "a b",
        ] {
            let err = token_error(garbage, scope);
            assert!(
                err.contains("is not a token returned by a previous call"),
                "{err}"
            );
        }
        // Longer than any token the server makes.
        token_error(&"A".repeat(MAX_PAGE_TOKEN_CHARS + 1), scope);
        // Every truncation, and every single-bit change, is refused.
        for cut in 1..token.len() {
            token_error(&token[..cut], scope);
        }
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut tampered = bytes.clone();
                tampered[i] ^= 1 << bit;
                token_error(&URL_SAFE_NO_PAD.encode(&tampered), scope);
            }
        }
        // A well-formed token of another version is refused as such.
        let mut other = bytes[..bytes.len() - 4].to_vec();
        other[0] = 2;
        let check = crc32fast::hash(&other).to_be_bytes();
        other.extend_from_slice(&check);
        let err = token_error(&URL_SAFE_NO_PAD.encode(&other), scope);
        assert!(err.contains("version 2"), "{err}");
        assert_eq!(page_size("p", 5000).unwrap(), MAX_PAGE_SIZE);
        assert!(page_size("p", -1).is_err());
    }

    #[test]
    fn page_tokens_are_refused_in_another_list_or_filter() {
        let key = Some(b"acme\0alice".to_vec());
        let scopes = [
            "ListSkills",
            "ListModules",
            "ListLearners\0company\0",
            "ListLearners\0company\0acme",
            "ListLearners\0company\0co",
            "ListEnrolments\0program\0alice",
            "ListEnrolments\0learner\0alice",
        ];
        for issued in scopes {
            let token = next_page_token(key.clone(), issued);
            for used in scopes {
                let got = page_token("page_token", &token, used);
                if used == issued {
                    assert_eq!(got.unwrap(), key);
                } else {
                    let err = token_error(&token, used);
                    assert!(
                        err.contains("was issued for another list or filter"),
                        "{err}"
                    );
                }
            }
        }
    }
}

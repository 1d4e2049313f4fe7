//! Message signatures as the Standard Webhooks specification defines them.
//!
//! A secret reads `whsec_` then the base64 of its bytes. Each attempt
//! sends `webhook-id` (the message id, the same on every attempt),
//! `webhook-timestamp` (Unix seconds of the attempt) and
//! `webhook-signature`: `v1,` then the base64 HMAC-SHA256, keyed with the
//! secret's bytes, of `<id>.<timestamp>.<body>`. A receiver recomputes it,
//! compares in constant time, and refuses timestamps far from its clock
//! (replays).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// Prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of a secret the server makes (the specification asks for 24 to
/// 64).
pub const SECRET_BYTES: usize = 32;

/// Header carrying the message id (the same on every attempt).
pub const ID_HEADER: &str = "webhook-id";

/// Header carrying the attempt's Unix seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";

/// Header carrying the signatures ([`sign`]).
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The text form of a secret: `whsec_` then base64.
pub fn encode_secret(secret: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(secret))
}

/// The bytes of a secret's text form (the prefix is optional, as receivers'
/// libraries accept it); `None` if it is not base64.
pub fn decode_secret(text: &str) -> Option<Vec<u8>> {
    let body = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    STANDARD.decode(body).ok()
}

/// The `webhook-signature` value of one attempt: `v1,<base64 HMAC>`.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

/// Whether a `webhook-signature` header (space-separated `version,sig`
/// entries) holds a valid `v1` signature of the message; what a receiver
/// checks (tests use it as one).
pub fn verify(secret: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    header.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|sig| STANDARD.decode(sig).ok())
            .is_some_and(|sig| hmac::verify(&key, &signed, &sig).is_ok())
    })
}

/// The three signature headers of one request, as a receiver reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    /// `webhook-id`; empty when missing.
    pub id: String,
    /// `webhook-timestamp`; 0 when missing or not a number.
    pub timestamp: i64,
    /// `webhook-signature`; empty when missing.
    pub signature: String,
}

impl Headers {
    /// Reads the headers through `header`, a lookup by name in whatever
    /// HTTP library the receiver runs (`None` for a missing or non-text
    /// value), so that this module needs none.
    pub fn read<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Self {
        Self {
            id: header(ID_HEADER).unwrap_or_default().to_string(),
            timestamp: header(TIMESTAMP_HEADER)
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
            signature: header(SIGNATURE_HEADER).unwrap_or_default().to_string(),
        }
    }

    /// Whether `body` came signed with `secret` under these headers
    /// ([`verify`]; the timestamp's distance from the clock is the
    /// receiver's to judge).
    pub fn verify(&self, secret: &[u8], body: &[u8]) -> bool {
        verify(secret, &self.id, self.timestamp, body, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn matches_the_specification_example() {
        let secret = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bm90IGl0 {signature}")
        ));
        assert!(!verify(&secret, "msg_other", 1614265330, body, &signature));
        assert!(!verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &signature
        ));
    }

    #[test]
    fn headers_read_through_a_lookup_and_verify() {
        let secret = [7u8; SECRET_BYTES];
        let body = b"{}";
        let sent = [
            (ID_HEADER, "msg_1".to_string()),
            (TIMESTAMP_HEADER, "1700000000".to_string()),
            (
                SIGNATURE_HEADER,
                sign(&secret, "msg_1", 1_700_000_000, body),
            ),
        ];
        let lookup = |name: &str| {
            sent.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let read = Headers::read(lookup);
        assert_eq!((read.id.as_str(), read.timestamp), ("msg_1", 1_700_000_000));
        assert!(read.verify(&secret, body));
        assert!(!read.verify(&secret, b"{ }"));
        assert!(!read.verify(&[8; SECRET_BYTES], body));
        let missing = Headers::read(|_| None);
        assert_eq!(missing, Headers::default());
        assert!(!missing.verify(&secret, body));
    }

    #[test]
    fn secrets_round_trip() {
        let bytes = [7u8; SECRET_BYTES];
        let text = encode_secret(&bytes);
        assert!(text.starts_with("whsec_"));
        assert_eq!(decode_secret(&text).unwrap(), bytes);
        assert!(decode_secret("whsec_***").is_none());
    }
}

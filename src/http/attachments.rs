//! Statements with attachments, sent as `multipart/mixed` (xAPI 1.0.3 part
//! 3 section 1.5.2, the same in 2.0): the first part holds the statements
//! (`application/json`), each further part one attachment's raw data,
//! named by its SHA-2 in `X-Experience-API-Hash`.
//!
//! The engine keeps no attachment data: each part's hash is checked
//! against its bytes, each attachment of the statements without a
//! `fileUrl` must have a part, and then the payloads are dropped. The
//! statements keep their `attachments` arrays (with `sha2`) verbatim, as
//! stored.

use std::collections::HashSet;

use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::error::HttpError;
use super::multipart::{self, MediaType};

/// The hash header of an attachment part.
pub const HASH_HEADER: &str = "x-experience-api-hash";

/// The statements JSON of a `multipart/mixed` body split at `boundary`,
/// whose every attachment is accounted for.
pub fn statements(boundary: &str, body: &[u8]) -> Result<Value, HttpError> {
    multipart::check_boundary(boundary).map_err(|why| HttpError::bad_field("Content-Type", why))?;
    let parts =
        multipart::parse(body, boundary).map_err(|why| HttpError::bad_field("multipart", why))?;
    let Some((first, attachments)) = parts.split_first() else {
        return Err(HttpError::bad_field(
            "multipart[0]",
            "the first part must hold the statements (application/json); the body has no part",
        ));
    };
    let first_kind = first.header("content-type").and_then(MediaType::parse);
    if first_kind.as_ref().map(|k| k.essence.as_str()) != Some("application/json") {
        return Err(HttpError::bad_field(
            "multipart[0].Content-Type",
            format!(
                "the first part holds the statements and must be application/json, got '{}'",
                first.header("content-type").unwrap_or("(none)")
            ),
        ));
    }
    let statements: Value = serde_json::from_slice(first.body).map_err(|e| {
        HttpError::bad_field(
            "statement",
            format!("the first part is not valid JSON: {e}"),
        )
    })?;
    let mut received = HashSet::new();
    for (i, part) in attachments.iter().enumerate() {
        received.insert(check_part(part, i + 1)?);
    }
    let used = match_attachments(&statements, &received)?;
    if let Some((i, _)) = attachments
        .iter()
        .enumerate()
        .find(|(_, part)| !used.contains(&hash_of(part)))
    {
        return Err(HttpError::bad_field(
            format!("multipart[{}]", i + 1),
            "this part's hash matches no attachment of the statements",
        ));
    }
    Ok(statements)
}

/// The lowercase hash a part declares (as [`check_part`] accepted it).
fn hash_of(part: &multipart::Part<'_>) -> String {
    part.header(HASH_HEADER)
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Checks one attachment part (index `i` in the body): its hash header is
/// a SHA-256, -384 or -512 hex digest of its bytes, and its transfer
/// encoding, if given, is `binary`. Returns the hash, lowercase.
fn check_part(part: &multipart::Part<'_>, i: usize) -> Result<String, HttpError> {
    let field = |name: &str| format!("multipart[{i}].{name}");
    if let Some(encoding) = part.header("content-transfer-encoding") {
        if !encoding.eq_ignore_ascii_case("binary") {
            return Err(HttpError::bad_field(
                field("Content-Transfer-Encoding"),
                format!("must be binary, got '{encoding}'"),
            ));
        }
    }
    let declared = part.header(HASH_HEADER).ok_or_else(|| {
        HttpError::bad_field(
            field("X-Experience-API-Hash"),
            "an attachment part must name its SHA-2 hash",
        )
    })?;
    let declared = declared.to_ascii_lowercase();
    let actual = match declared.len() {
        64 => hex(&Sha256::digest(part.body)),
        96 => hex(&Sha384::digest(part.body)),
        128 => hex(&Sha512::digest(part.body)),
        _ => String::new(),
    };
    if actual.is_empty() || !declared.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(HttpError::bad_field(
            field("X-Experience-API-Hash"),
            format!("'{declared}' is not a SHA-256, SHA-384 or SHA-512 hex digest"),
        ));
    }
    if actual != declared {
        return Err(HttpError::bad_field(
            field("X-Experience-API-Hash"),
            format!(
                "the part's {} bytes do not hash to '{declared}'",
                part.body.len()
            ),
        ));
    }
    Ok(declared)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every attachment without a `fileUrl`, of every statement (and
/// sub-statement), must have its `sha2` among the parts received: 400
/// naming the statement and the attachment otherwise. Returns the hashes
/// the statements use.
fn match_attachments(
    statements: &Value,
    received: &HashSet<String>,
) -> Result<HashSet<String>, HttpError> {
    let mut used = HashSet::new();
    let listed: Vec<(String, &Value)> = match statements {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("statement[{i}]"), s))
            .collect(),
        single => vec![("statement".to_string(), single)],
    };
    for (at, statement) in listed {
        check_statement(statement, &at, received, &mut used)?;
        let object = statement.get("object");
        if object
            .and_then(|o| o.get("objectType"))
            .and_then(Value::as_str)
            == Some("SubStatement")
        {
            let object = object.expect("checked above");
            check_statement(object, &format!("{at}.object"), received, &mut used)?;
        }
    }
    Ok(used)
}

fn check_statement(
    statement: &Value,
    at: &str,
    received: &HashSet<String>,
    used: &mut HashSet<String>,
) -> Result<(), HttpError> {
    let Some(list) = statement.get("attachments") else {
        return Ok(());
    };
    let list = list
        .as_array()
        .ok_or_else(|| HttpError::bad_field(format!("{at}.attachments"), "must be an array"))?;
    for (j, attachment) in list.iter().enumerate() {
        let here = format!("{at}.attachments[{j}]");
        let attachment = attachment
            .as_object()
            .ok_or_else(|| HttpError::bad_field(&here, "must be a JSON object"))?;
        let sha2 = attachment
            .get("sha2")
            .and_then(Value::as_str)
            .ok_or_else(|| HttpError::bad_field(format!("{here}.sha2"), "is required (a string)"))?
            .to_ascii_lowercase();
        if received.contains(&sha2) {
            used.insert(sha2);
        } else if !attachment.contains_key("fileUrl") {
            return Err(HttpError::bad_field(
                format!("{here}.sha2"),
                format!(
                    "no part of the body carries data with hash '{sha2}', and the attachment has no fileUrl"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    const BOUNDARY: &str = "xapi-boundary";

    fn sha256(data: &[u8]) -> String {
        hex(&Sha256::digest(data))
    }

    fn statement(attachments: Value) -> Value {
        json!({
            "actor": {"mbox": "mailto:a@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
            "object": {"id": "https://example.com/q/1"},
            "attachments": attachments
        })
    }

    fn attachment(sha2: &str, file_url: Option<&str>) -> Value {
        let mut a = json!({
            "usageType": "http://id.tincanapi.com/attachment/supporting_media",
            "display": {"en-US": "notes"},
            "contentType": "text/plain",
            "length": 5,
            "sha2": sha2
        });
        if let Some(url) = file_url {
            a["fileUrl"] = json!(url);
        }
        a
    }

    /// A body of the statements part and `(headers, data)` parts.
    fn body(statements: &Value, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out =
            format!("--{BOUNDARY}\r\nContent-Type: application/json\r\n\r\n{statements}\r\n")
                .into_bytes();
        for (headers, data) in parts {
            out.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        out
    }

    fn part_headers(hash: &str) -> String {
        format!(
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {hash}"
        )
    }

    #[test]
    fn a_batch_with_parts_and_file_urls_is_accepted_and_kept_verbatim() {
        let notes = b"notes";
        let hash = sha256(notes);
        let batch = json!([
            statement(json!([attachment(&hash, None)])),
            statement(json!([attachment("ab", Some("https://example.com/f.pdf"))])),
            // The same data used twice, sent once.
            statement(json!([attachment(&hash.to_uppercase(), None)])),
        ]);
        let headers = part_headers(&hash);
        let got = statements(BOUNDARY, &body(&batch, &[(&headers, notes)])).unwrap();
        assert_eq!(got, batch);
    }

    #[test]
    fn sha384_and_sha512_parts_are_checked_too() {
        let data = b"\0\x01binary\r\n";
        for hash in [hex(&Sha384::digest(data)), hex(&Sha512::digest(data))] {
            let one = statement(json!([attachment(&hash, None)]));
            let headers = part_headers(&hash);
            assert!(statements(BOUNDARY, &body(&one, &[(&headers, data)])).is_ok());
        }
    }

    #[test]
    fn every_refusal_names_its_field() {
        let data: &[u8] = b"notes";
        let hash = sha256(data);
        let good = json!([
            statement(json!([])),
            statement(json!([attachment(&hash, None)]))
        ]);
        let with = |headers: &str| body(&good, &[(headers, data)]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // Statement 1's attachment has no part.
            (body(&good, &[]), "statement[1].attachments[0].sha2"),
            (
                with(&part_headers(&sha256(b"other"))),
                "multipart[1].X-Experience-API-Hash",
            ),
            (
                with("Content-Type: text/plain"),
                "multipart[1].X-Experience-API-Hash",
            ),
            (
                with(&format!(
                    "Content-Transfer-Encoding: base64\r\nX-Experience-API-Hash: {hash}"
                )),
                "multipart[1].Content-Transfer-Encoding",
            ),
            (
                with("X-Experience-API-Hash: 1234"),
                "multipart[1].X-Experience-API-Hash",
            ),
            (
                body(&json!(statement(json!({"sha2": hash}))), &[]),
                "statement.attachments",
            ),
            (
                body(
                    &json!([statement(json!([{"contentType": "text/plain"}]))]),
                    &[],
                ),
                "statement[0].attachments[0].sha2",
            ),
            (
                format!("--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\n{good}\r\n--{BOUNDARY}--")
                    .into_bytes(),
                "multipart[0].Content-Type",
            ),
            (format!("--{BOUNDARY}--").into_bytes(), "multipart[0]"),
            (b"not multipart".to_vec(), "multipart"),
        ];
        for (bytes, field) in cases {
            let err = statements(BOUNDARY, &bytes).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert_eq!(err.field.as_deref(), Some(field), "{}", err.message);
        }
        // A part no attachment uses.
        let none = json!([statement(json!([]))]);
        let err = statements(BOUNDARY, &body(&none, &[(&part_headers(&hash), data)])).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("multipart[1]"));
        // A sub-statement's attachment needs its part as well.
        let sub = json!({
            "actor": {"mbox": "mailto:a@example.com"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
            "object": statement(json!([attachment(&hash, None)])),
        });
        let mut sub = sub;
        sub["object"]["objectType"] = json!("SubStatement");
        let err = statements(BOUNDARY, &body(&sub, &[])).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("statement.object.attachments[0].sha2")
        );
        assert!(statements(BOUNDARY, &body(&sub, &[(&part_headers(&hash), data)])).is_ok());
    }

    #[test]
    fn a_bad_boundary_names_the_content_type() {
        for boundary in ["", "semi;colon"] {
            let err = statements(boundary, b"").unwrap_err();
            assert_eq!(err.field.as_deref(), Some("Content-Type"), "{boundary}");
        }
    }
}

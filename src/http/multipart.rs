//! `multipart/mixed` bodies (RFC 2046, section 5.1) and media types (RFC
//! 2045), parsed in memory: a statements body is already read whole and
//! bounded (`MAX_BODY_BYTES`), so a streaming parser buys nothing. The
//! multipart crates of the field (`multer`) parse `multipart/form-data`
//! (their boundary helper refuses other types, parts are named fields),
//! and xAPI's rules on parts live in `attachments.rs` anyway.

use memchr::memmem;

/// A media type: `type/subtype` lowercased, and its parameters (names
/// lowercased, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `type/subtype`, lowercase (`application/json`).
    pub essence: String,
    /// `(name, value)` pairs, in order.
    pub params: Vec<(String, String)>,
}

impl MediaType {
    /// Parses a `Content-Type` value; `None` when it is not
    /// `type/subtype *(; name=value)`.
    pub fn parse(value: &str) -> Option<Self> {
        let (essence, mut rest) = value.split_once(';').unwrap_or((value, ""));
        let essence = essence.trim().to_ascii_lowercase();
        let (kind, sub) = essence.split_once('/')?;
        if kind.is_empty() || sub.is_empty() || essence.contains(char::is_whitespace) {
            return None;
        }
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let (name, after) = rest.split_once('=')?;
            let name = name.trim().to_ascii_lowercase();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return None;
            }
            let after = after.trim_start();
            let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
                unquote(quoted)?
            } else {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            };
            params.push((name, value));
            let next = next.trim_start();
            rest = match next.strip_prefix(';') {
                Some(more) => more,
                None if next.is_empty() => "",
                None => return None,
            };
        }
        Some(Self { essence, params })
    }

    /// The value of parameter `name` (lowercase).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The body of a quoted string (after its opening quote) and what follows
/// its closing quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

/// One part: its headers (names lowercased) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// `(name, value)` pairs, names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The part's content, untouched.
    pub body: &'a [u8],
}

impl Part<'_> {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Most headers one part may carry.
const MAX_PART_HEADERS: usize = 16;

/// Checks a boundary parameter (RFC 2046: 1 to 70 characters of a small
/// set, not ending in a space).
pub fn check_boundary(boundary: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(format!(
            "boundary must have 1 to 70 characters, got {}",
            boundary.len()
        ));
    }
    if !boundary.chars().all(allowed) || boundary.ends_with(' ') {
        return Err(format!(
            "boundary '{boundary}' has a character RFC 2046 does not allow"
        ));
    }
    Ok(())
}

/// The boundary of a body that opens with a boundary line (`--B` CRLF),
/// for a multipart body sent under another media type: xAPI.js in Node
/// sends its `multipart/mixed` statements through axios, which labels a
/// Blob body `application/octet-stream`. A JSON body never opens so.
pub fn opening_boundary(body: &[u8]) -> Option<&str> {
    let line_end = memmem::find(body, b"\r\n")?;
    let line = std::str::from_utf8(body[..line_end].strip_prefix(b"--")?).ok()?;
    let boundary = line.trim_end_matches([' ', '\t']);
    check_boundary(boundary).ok().map(|()| boundary)
}

/// Splits `body` into its parts at `boundary` (already checked with
/// [`check_boundary`]). A preamble before the first boundary line and an
/// epilogue after the closing one are ignored; a missing closing boundary
/// is an error (the body was cut).
///
/// RFC 2046 puts a CRLF before every boundary line (and counts it as part
/// of the delimiter). xAPI.js 3 leaves it out between attachment parts, so
/// a boundary line is also recognised where no CRLF precedes it: the
/// boundary must not occur in any part's content anyway, and an attachment
/// part cut in the wrong place would fail its hash check.
pub fn parse<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, String> {
    let dashed = format!("--{boundary}");
    let finder = memmem::Finder::new(dashed.as_bytes());
    // The next boundary line at or after `from`: (where the content before
    // it ends, where what follows it starts, whether it closes the body).
    let next_delimiter = |mut from: usize| -> Option<(usize, usize, bool)> {
        loop {
            let at = from + finder.find(&body[from..])?;
            if let Some((after, closes)) = line_end(body, at + dashed.len()) {
                let end = if body[..at].ends_with(b"\r\n") {
                    at - 2
                } else {
                    at
                };
                return Some((end.max(from), after, closes));
            }
            from = at + 1;
        }
    };
    let Some((_, mut at, mut closed)) = next_delimiter(0) else {
        return Err(format!("no boundary line '--{boundary}' in the body"));
    };
    let mut parts = Vec::new();
    while !closed {
        let (end, after, closes) = next_delimiter(at).ok_or_else(|| {
            format!(
                "part {} is not followed by a boundary line (the body ends without '--{boundary}--')",
                parts.len()
            )
        })?;
        parts.push(part(&body[at..end], parts.len())?);
        (at, closed) = (after, closes);
    }
    Ok(parts)
}

/// After a boundary at `at`: `--` closes the body; else optional spaces
/// and tabs, then CRLF. `None`: not a boundary line (the boundary text
/// only starts a longer line).
fn line_end(body: &[u8], at: usize) -> Option<(usize, bool)> {
    let rest = &body[at..];
    if rest.starts_with(b"--") {
        return Some((at + 2, true));
    }
    let blanks = rest
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    rest[blanks..]
        .starts_with(b"\r\n")
        .then_some(at + blanks + 2)
        .map(|after| (after, false))
}

/// One part's headers (up to a blank line) and content.
fn part(bytes: &[u8], index: usize) -> Result<Part<'_>, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
    let (length, parsed) = match httparse::parse_headers(bytes, &mut slots) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => {
            return Err(format!(
                "part {index} has no blank line between its headers and its content"
            ));
        }
        Err(e) => return Err(format!("part {index} has malformed headers: {e}")),
    };
    let headers = parsed
        .iter()
        .map(|h| {
            let value = std::str::from_utf8(h.value)
                .map_err(|_| format!("part {index}: header {} is not UTF-8", h.name))?;
            Ok((h.name.to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Part {
        headers,
        body: &bytes[length..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        let json = MediaType::parse("Application/JSON; charset=UTF-8").unwrap();
        assert_eq!(json.essence, "application/json");
        assert_eq!(json.param("charset"), Some("UTF-8"));
        let mixed =
            MediaType::parse(r#"multipart/mixed; boundary="abcABC0123'()+_,-./:=?""#).unwrap();
        assert_eq!(mixed.essence, "multipart/mixed");
        assert_eq!(mixed.param("boundary"), Some("abcABC0123'()+_,-./:=?"));
        let escaped = MediaType::parse(r#"multipart/mixed;boundary="a\"b" ; x=1;"#).unwrap();
        assert_eq!(escaped.param("boundary"), Some("a\"b"));
        assert_eq!(escaped.param("x"), Some("1"));
        for bad in [
            "",
            "json",
            "application/",
            "/json",
            "text/plain; charset",
            "multipart/mixed; boundary=\"open",
            "multipart/mixed; boundary=\"a\" junk",
        ] {
            assert_eq!(MediaType::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_body_may_name_its_boundary_in_its_first_line() {
        assert_eq!(opening_boundary(b"--ab'c \r\nX: 1\r\n"), Some("ab'c"));
        assert_eq!(opening_boundary(b"{\"--a\": 1}\r\n"), None);
        assert_eq!(opening_boundary(b"--no line end"), None);
        assert_eq!(opening_boundary(b"--semi;colon\r\n"), None);
        assert_eq!(opening_boundary(b"--\r\n"), None);
    }

    #[test]
    fn boundaries() {
        assert!(check_boundary("abcABC0123'()+_,-./:=?").is_ok());
        assert!(check_boundary("").is_err());
        assert!(check_boundary(&"x".repeat(71)).is_err());
        assert!(check_boundary("ends with space ").is_err());
        assert!(check_boundary("semi;colon").is_err());
    }

    #[test]
    fn the_spec_example_splits_in_two_parts() {
        let body = "--abc'()+_,-./:=?\r\nContent-Type:application/json\r\n\r\n{\"a\":1}\r\n\
             --abc'()+_,-./:=?\r\nContent-Type:text/plain\r\nContent-Transfer-Encoding:binary\r\n\
             X-Experience-API-Hash:00ff\r\n\r\nhere is a simple attachment\r\n\
             --abc'()+_,-./:=?--";
        let parts = parse(body.as_bytes(), "abc'()+_,-./:=?").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].header("content-type"), Some("application/json"));
        assert_eq!(parts[0].body, b"{\"a\":1}");
        assert_eq!(parts[1].header("x-experience-api-hash"), Some("00ff"));
        assert_eq!(parts[1].body, b"here is a simple attachment");
    }

    #[test]
    fn preamble_epilogue_padding_and_binary_content() {
        let mut body = b"preamble\r\n--b \t\r\n\r\nno headers\r\n--b\r\nX: 1\r\n\r\n".to_vec();
        // Binary content holding CR, LF, NUL and the boundary text not
        // at a line start.
        let binary = b"\0\r\n--bx\r\n-b\xff";
        body.extend_from_slice(binary);
        body.extend_from_slice(b"\r\n--b--\r\nepilogue\r\n--b\r\nignored");
        let parts = parse(&body, "b").unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts[0].headers.is_empty());
        assert_eq!(parts[0].body, b"no headers");
        assert_eq!(parts[1].header("x"), Some("1"));
        assert_eq!(parts[1].body, binary);
    }

    #[test]
    fn a_boundary_line_without_its_crlf_still_splits() {
        // As xAPI.js 3 writes two attachment parts.
        let body = b"--b\r\nContent-Type: application/json\r\n\r\n[]\r\n\
            --b\r\nX-Experience-API-Hash: 1\r\n\r\nfirst\n--b\r\n\
            X-Experience-API-Hash: 2\r\n\r\nsecond\r\n--b--\r\n";
        let parts = parse(body, "b").unwrap();
        let bodies: Vec<&[u8]> = parts.iter().map(|p| p.body).collect();
        assert_eq!(bodies, [&b"[]"[..], b"first\n", b"second"]);
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let cases: [(&[u8], &str); 4] = [
            (b"no boundary at all", "no boundary line"),
            (b"--b\r\nA: 1\r\n\r\ncut here", "part 0 is not followed"),
            (b"--b\r\nA: 1\r\nno blank line\r\n--b--", "part 0 has"),
            (
                b"--b\r\n\r\nfine\r\n--b\r\nBad Header\r\n\r\nx\r\n--b--",
                "part 1",
            ),
        ];
        for (body, why) in cases {
            let err = parse(body, "b").unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        assert_eq!(parse(b"--b--", "b").unwrap(), vec![]);
    }
}

//! Scoring `result.response` against an activity's
//! `correctResponsesPattern`, for the interaction types whose patterns
//! the xAPI specification defines exactly (1.0.3 part 2, section 2.4.4.1,
//! "Response patterns"). Emitters that send no `result.success` and no
//! score still say what was answered and what was right.
//!
//! | interactionType | response / pattern | right when |
//! |---|---|---|
//! | `true-false` | `true` or `false` | equal |
//! | `choice`, `multiple-choice` | choice ids joined by `[,]` | the same set |
//! | `sequencing` | choice ids joined by `[,]` | the same order |
//! | `fill-in`, `long-fill-in` | answers joined by `[,]`, an optional `{case_matters=..}{order_matters=..}{lang=..}` prefix on the pattern | equal answer by answer; case ignored unless `case_matters=true`, order kept unless `order_matters=false` |
//! | `matching` | `source[.]target` pairs joined by `[,]` | the same set of pairs |
//! | `numeric` | a number; the pattern a number or a range `min[:]max` (either end open) | within the range |
//!
//! Other types (`likert`, `performance`, `other`) have no right answer here.

/// Whether `response` matches one of `patterns` for `interaction_type`;
/// `None` when the type has no comparable patterns or none is given.
pub fn is_correct(interaction_type: &str, patterns: &[String], response: &str) -> Option<bool> {
    if patterns.is_empty() {
        return None;
    }
    let matches = |pattern: &str| -> Option<bool> {
        Some(match interaction_type {
            "true-false" => pattern.trim() == response.trim(),
            "choice" | "multiple-choice" => same_set(pattern, response, |s| s.to_string()),
            "sequencing" => split(pattern) == split(response),
            "matching" => same_set(pattern, response, |s| s.to_string()),
            "fill-in" | "long-fill-in" => fill_in(pattern, response),
            "numeric" => numeric(pattern, response)?,
            _ => return None,
        })
    };
    let mut any = None;
    for pattern in patterns {
        match matches(pattern) {
            Some(true) => return Some(true),
            Some(false) => any = Some(false),
            None => {}
        }
    }
    any
}

fn split(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split("[,]").map(str::trim).collect()
}

fn same_set(a: &str, b: &str, key: impl Fn(&str) -> String) -> bool {
    let mut a: Vec<String> = split(a).into_iter().map(&key).collect();
    let mut b: Vec<String> = split(b).into_iter().map(&key).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// Fill-in: the pattern may start with `{case_matters=true}`,
/// `{order_matters=false}` or `{lang=xx}` parameters.
fn fill_in(pattern: &str, response: &str) -> bool {
    let mut rest = pattern;
    let mut case_matters = false;
    let mut order_matters = true;
    while let Some(body) = rest.strip_prefix('{') {
        let Some((parameter, after)) = body.split_once('}') else {
            break;
        };
        match parameter {
            "case_matters=true" => case_matters = true,
            "case_matters=false" => case_matters = false,
            "order_matters=true" => order_matters = true,
            "order_matters=false" => order_matters = false,
            p if p.starts_with("lang=") => {}
            _ => break,
        }
        rest = after;
    }
    let fold = |s: &str| {
        if case_matters {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    if order_matters {
        let (a, b) = (split(rest), split(response));
        a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| fold(x) == fold(y))
    } else {
        same_set(rest, response, fold)
    }
}

/// Numeric: an exact number or a range `min[:]max`.
fn numeric(pattern: &str, response: &str) -> Option<bool> {
    let value: f64 = response.trim().parse().ok()?;
    let bound = |s: &str| -> Option<Option<f64>> {
        let s = s.trim();
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    Some(match pattern.split_once("[:]") {
        Some((low, high)) => {
            let (low, high) = (bound(low)?, bound(high)?);
            low.is_none_or(|l| value >= l) && high.is_none_or(|h| value <= h)
        }
        None => (value - pattern.trim().parse::<f64>().ok()?).abs() < 1e-9,
    })
}

#[cfg(test)]
mod tests {
    use super::is_correct;

    fn p(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_interaction_type() {
        assert_eq!(is_correct("true-false", &p(&["true"]), "true"), Some(true));
        assert_eq!(
            is_correct("true-false", &p(&["true"]), "false"),
            Some(false)
        );
        assert_eq!(is_correct("choice", &p(&["a[,]b"]), "b[,]a"), Some(true));
        assert_eq!(is_correct("choice", &p(&["a[,]b"]), "a"), Some(false));
        assert_eq!(is_correct("choice", &p(&["a", "c"]), "c"), Some(true));
        assert_eq!(
            is_correct("sequencing", &p(&["a[,]b[,]c"]), "a[,]c[,]b"),
            Some(false)
        );
        assert_eq!(
            is_correct("sequencing", &p(&["a[,]b[,]c"]), "a[,]b[,]c"),
            Some(true)
        );
        assert_eq!(is_correct("fill-in", &p(&["Paris"]), "paris"), Some(true));
        assert_eq!(
            is_correct("fill-in", &p(&["{case_matters=true}Paris"]), "paris"),
            Some(false)
        );
        assert_eq!(
            is_correct(
                "fill-in",
                &p(&["{order_matters=false}{lang=en}a[,]b"]),
                "B[,]a"
            ),
            Some(true)
        );
        assert_eq!(
            is_correct("matching", &p(&["1[.]a[,]2[.]b"]), "2[.]b[,]1[.]a"),
            Some(true)
        );
        assert_eq!(
            is_correct("matching", &p(&["1[.]a[,]2[.]b"]), "1[.]b[,]2[.]a"),
            Some(false)
        );
        assert_eq!(is_correct("numeric", &p(&["4[:]6"]), "5.5"), Some(true));
        assert_eq!(is_correct("numeric", &p(&["[:]6"]), "7"), Some(false));
        assert_eq!(is_correct("numeric", &p(&["42"]), "42"), Some(true));
        assert_eq!(is_correct("numeric", &p(&["42"]), "forty"), None);
        assert_eq!(is_correct("likert", &p(&["x"]), "x"), None);
        assert_eq!(is_correct("choice", &[], "x"), None);
    }
}

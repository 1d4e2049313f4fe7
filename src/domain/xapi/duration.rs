//! ISO 8601 durations as xAPI writes them in `result.duration`
//! (`PT1M30S`, `PT0.5S`, `P1DT2H`, `P2W`).

/// Parses an ISO 8601 duration into milliseconds.
///
/// Accepts `P[nY][nM][nW][nD][T[nH][nM][n.nS]]` with a fraction on the last
/// (or any) component. Years and months have no fixed length; as most LRSs
/// do, a year counts 365 days and a month 30. Returns a reason on failure.
pub fn parse_ms(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("'{text}' is not an ISO 8601 duration such as 'PT1M30S': {why}");
    let rest = text
        .strip_prefix('P')
        .ok_or_else(|| bad("must start with 'P'"))?;
    if rest.is_empty() || rest == "T" {
        return Err(bad("has no component"));
    }
    let mut ms = 0f64;
    let mut in_time = false;
    let mut number = String::new();
    let mut components = 0;
    for c in rest.chars() {
        match c {
            'T' if !in_time && number.is_empty() => in_time = true,
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            unit => {
                let value: f64 = number
                    .parse()
                    .map_err(|_| bad(&format!("no number before '{unit}'")))?;
                number.clear();
                let unit_ms = match (in_time, unit) {
                    (false, 'Y') => 365.0 * 86_400_000.0,
                    (false, 'M') => 30.0 * 86_400_000.0,
                    (false, 'W') => 7.0 * 86_400_000.0,
                    (false, 'D') => 86_400_000.0,
                    (true, 'H') => 3_600_000.0,
                    (true, 'M') => 60_000.0,
                    (true, 'S') => 1000.0,
                    _ => return Err(bad(&format!("unexpected '{unit}'"))),
                };
                ms += value * unit_ms;
                components += 1;
            }
        }
    }
    if !number.is_empty() {
        return Err(bad("a number has no unit"));
    }
    if components == 0 {
        return Err(bad("has no component"));
    }
    if !ms.is_finite() || ms >= u64::MAX as f64 {
        return Err(bad("is out of range"));
    }
    Ok(ms.round() as u64)
}

/// The time a video profile's `played-segments` extension says was
/// watched, in milliseconds: segments `start[.]end` (seconds) joined by
/// `[,]`; an open or malformed segment is skipped, and `None` means
/// nothing could be read.
pub fn played_segments_ms(text: &str) -> Option<u64> {
    let mut seconds = 0.0;
    let mut any = false;
    for segment in text.split("[,]") {
        let Some((start, end)) = segment.split_once("[.]") else {
            continue;
        };
        if let (Ok(start), Ok(end)) = (start.trim().parse::<f64>(), end.trim().parse::<f64>()) {
            if start.is_finite() && end.is_finite() && end >= start && start >= 0.0 {
                seconds += end - start;
                any = true;
            }
        }
    }
    (any && seconds < 1e12).then(|| (seconds * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::{parse_ms, played_segments_ms};

    #[test]
    fn played_segments() {
        assert_eq!(played_segments_ms("0[.]12.5[,]30[.]45"), Some(27_500));
        assert_eq!(played_segments_ms("0[.]5[,]7[.]"), Some(5_000));
        assert_eq!(played_segments_ms(""), None);
        assert_eq!(played_segments_ms("10[.]2"), None);
    }

    #[test]
    fn common_forms() {
        assert_eq!(parse_ms("PT1M30S").unwrap(), 90_000);
        assert_eq!(parse_ms("PT0.5S").unwrap(), 500);
        assert_eq!(parse_ms("PT1,25S").unwrap(), 1250);
        assert_eq!(parse_ms("P1DT2H").unwrap(), 93_600_000);
        assert_eq!(parse_ms("P2W").unwrap(), 14 * 86_400_000);
        assert_eq!(parse_ms("PT2H3M4.56S").unwrap(), 7_384_560);
        assert_eq!(parse_ms("P1M").unwrap(), 30 * 86_400_000);
    }

    #[test]
    fn malformed_forms_are_refused_with_a_reason() {
        for bad in [
            "", "P", "PT", "1M", "PT1", "PTS", "P1H", "PT1D", "PT-1S", "PT1.2.3S",
        ] {
            let err = parse_ms(bad).unwrap_err();
            assert!(err.contains("ISO 8601"), "{bad}: {err}");
        }
    }
}

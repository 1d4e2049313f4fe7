//! When daily digests go out: at a local hour in the subscriber's time
//! zone, so that "8 o'clock in Paris" stays 8 o'clock across daylight
//! saving time.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;

use super::super::learner::Micros;
use crate::error::{Error, Result};

/// The latest digest time at or before `now`: `hour`:00 in `time_zone`
/// today, or yesterday if that is still ahead. A local time skipped by a
/// daylight-saving change falls on the instant after the gap.
pub fn last_slot(now: Micros, hour: u8, time_zone: &str) -> Result<Micros> {
    let zone = TimeZone::get(time_zone)
        .map_err(|e| Error::invalid("digest_time_zone", format!("'{time_zone}': {e}")))?;
    let time =
        Time::new(hour as i8, 0, 0, 0).map_err(|e| Error::invalid("digest_hour", e.to_string()))?;
    let now_ts =
        Timestamp::from_microsecond(now).map_err(|e| Error::invalid("now", e.to_string()))?;
    let today = now_ts.to_zoned(zone.clone()).date();
    let at = |date: jiff::civil::Date| -> Result<Micros> {
        let zoned = date
            .to_datetime(time)
            .to_zoned(zone.clone())
            .map_err(|e| Error::invalid("digest_hour", e.to_string()))?;
        Ok(zoned.timestamp().as_microsecond())
    };
    let slot = at(today)?;
    if slot <= now {
        return Ok(slot);
    }
    let yesterday = today
        .yesterday()
        .map_err(|e| Error::invalid("now", e.to_string()))?;
    at(yesterday)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(text: &str) -> Micros {
        text.parse::<Timestamp>().unwrap().as_microsecond()
    }

    #[test]
    fn the_slot_is_today_once_the_hour_passed_else_yesterday() {
        // 2026-03-10: Paris is UTC+1.
        let now = micros("2026-03-10T09:30:00Z");
        assert_eq!(
            last_slot(now, 8, "Europe/Paris").unwrap(),
            micros("2026-03-10T07:00:00Z")
        );
        assert_eq!(
            last_slot(now, 11, "Europe/Paris").unwrap(),
            micros("2026-03-09T10:00:00Z")
        );
        assert_eq!(
            last_slot(now, 9, "UTC").unwrap(),
            micros("2026-03-10T09:00:00Z")
        );
        assert_eq!(
            last_slot(micros("2026-03-10T09:00:00Z"), 9, "UTC").unwrap(),
            micros("2026-03-10T09:00:00Z")
        );
    }

    #[test]
    fn daylight_saving_keeps_the_local_hour() {
        // Summer: Paris is UTC+2.
        let now = micros("2026-07-01T12:00:00Z");
        assert_eq!(
            last_slot(now, 8, "Europe/Paris").unwrap(),
            micros("2026-07-01T06:00:00Z")
        );
        // 2026-03-29 02:00 does not exist in Paris: the instant after the gap.
        let now = micros("2026-03-29T12:00:00Z");
        assert_eq!(
            last_slot(now, 2, "Europe/Paris").unwrap(),
            micros("2026-03-29T01:00:00Z")
        );
    }

    #[test]
    fn bad_zones_name_the_field() {
        let err = last_slot(0, 8, "Mars/Olympus").unwrap_err();
        assert!(err.to_string().contains("digest_time_zone"), "{err}");
    }
}

//! Time as the programs record it: seconds or milliseconds since the Unix
//! epoch in manifests, segments and orders, and the UTC stamp object keys
//! carry. The rules take the time as an argument; the `now_*` helpers are
//! where a program reads the clock for them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the epoch; 0 before it (no clock of ours is set that far back).
pub fn unix_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch; 0 before it.
pub fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The instant `ms` milliseconds after the epoch (the epoch for negative values).
pub fn from_unix_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// [`unix_seconds`] of now.
pub fn now_unix_seconds() -> i64 {
    unix_seconds(SystemTime::now())
}

/// [`unix_millis`] of now.
pub fn now_unix_millis() -> i64 {
    unix_millis(SystemTime::now())
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch (proleptic Gregorian, UTC).
pub fn utc_stamp(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let seconds = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); H. Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamp_formats_known_instants() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_825_600), "20000229T120000Z");
        assert_eq!(utc_stamp(1_795_580_367), "20261125T041927Z");
    }

    #[test]
    fn instants_convert_to_and_from_the_epoch() {
        let at = from_unix_millis(1_795_580_367_250);
        assert_eq!(unix_millis(at), 1_795_580_367_250);
        assert_eq!(unix_seconds(at), 1_795_580_367);
    }

    #[test]
    fn instants_before_the_epoch_read_as_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(unix_seconds(before), 0);
        assert_eq!(from_unix_millis(-5), UNIX_EPOCH);
    }
}

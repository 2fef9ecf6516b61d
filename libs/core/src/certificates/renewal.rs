//! When a certificate is renewed while its holder runs.
//!
//! A certificate is renewed at about two thirds of its life, so that a failed
//! attempt leaves a third of it to try again in. The exact point moves with
//! the renewer's name by up to a twelfth of the life either way: the nodes of a
//! new stack issue their first certificates within minutes of each other, and
//! without the spread they would renew (and, were renewal broken, expire) in
//! the same hour, year after year. For the functions' certificate, which every
//! node renews, the spread also means one node renews it first and the others,
//! reading it again when their turn comes, find it new.

use std::time::{Duration, SystemTime};

/// The part of a certificate's life after which it is renewed, at the middle
/// of the spread.
const RENEW_AT: f64 = 2.0 / 3.0;
/// How far the holder's name moves the renewal, either way, as a part of the life.
const SPREAD: f64 = 1.0 / 12.0;
/// Bounds of the wait after a failed renewal: often enough that a short
/// outage of the CA's secret costs little of the life left, rarely enough not
/// to hammer Secrets Manager.
const RETRY_AT_MOST: Duration = Duration::from_secs(5 * 60);
const RETRY_AT_LEAST: Duration = Duration::from_secs(1);

/// A certificate's life as its holder saw it begin: from when it was issued
/// (not its `notBefore`, which is back-dated for clock skew) to its `notAfter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub issued_at: SystemTime,
    pub not_after: SystemTime,
}

impl Lifetime {
    fn length(&self) -> Duration {
        self.not_after
            .duration_since(self.issued_at)
            .unwrap_or_default()
    }

    /// When the holder named `holder` renews it.
    pub fn renewal_time(&self, holder: &str) -> SystemTime {
        let part = RENEW_AT + SPREAD * (2.0 * spread_of(holder) - 1.0);
        self.issued_at + self.length().mul_f64(part)
    }
}

/// How long to wait before trying again after a renewal failed at `now`: a
/// tenth of the life left, within [`RETRY_AT_LEAST`] and [`RETRY_AT_MOST`].
pub fn retry_after_failure(now: SystemTime, not_after: SystemTime) -> Duration {
    let left = not_after.duration_since(now).unwrap_or_default();
    (left / 10).clamp(RETRY_AT_LEAST, RETRY_AT_MOST)
}

/// A number in [0, 1) that depends on `holder` only, the same in every build
/// (FNV-1a: std's hasher may change between releases).
fn spread_of(holder: &str) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in holder.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // The top 53 bits, exactly representable in an f64.
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const DAY: Duration = Duration::from_secs(86_400);

    fn year_from(start: SystemTime) -> Lifetime {
        Lifetime {
            issued_at: start,
            not_after: start + 365 * DAY,
        }
    }

    #[test]
    fn a_certificate_is_renewed_between_seven_and_nine_twelfths_of_its_life() {
        let start = UNIX_EPOCH + 20_000 * DAY;
        let life = year_from(start);
        for holder in [
            "i-0a1b2c3d4e5f60718",
            "i-1",
            "i-2",
            "",
            "a much longer name",
        ] {
            let at = life.renewal_time(holder).duration_since(start).unwrap();
            assert!(
                at >= (365 * DAY).mul_f64(7.0 / 12.0) && at <= (365 * DAY).mul_f64(9.0 / 12.0),
                "{holder}: {at:?}"
            );
        }
    }

    #[test]
    fn a_holder_renews_at_the_same_point_of_every_certificate() {
        let first = year_from(UNIX_EPOCH + 20_000 * DAY);
        let second = year_from(UNIX_EPOCH + 20_300 * DAY);
        let holder = "i-0a1b2c3d4e5f60718";
        let into_life = |life: Lifetime| {
            life.renewal_time(holder)
                .duration_since(life.issued_at)
                .ok()
        };
        assert_eq!(into_life(first), into_life(second));
    }

    #[test]
    fn nodes_issued_together_renew_days_apart() {
        let start = UNIX_EPOCH + 20_000 * DAY;
        let life = year_from(start);
        let mut times: Vec<SystemTime> = ["i-0aa1", "i-0bb2", "i-0cc3"]
            .iter()
            .map(|holder| life.renewal_time(holder))
            .collect();
        times.sort();
        for pair in times.windows(2) {
            let apart = pair[1].duration_since(pair[0]).unwrap();
            assert!(apart >= DAY, "{times:?}");
        }
    }

    #[test]
    fn the_spread_does_not_depend_on_the_build() {
        // FNV-1a of "a" is 0xaf63dc4c8601ec8c: a renewal point that moved
        // between builds would bunch nodes again after an upgrade.
        let expected = (0xaf63_dc4c_8601_ec8c_u64 >> 11) as f64 / (1u64 << 53) as f64;
        assert_eq!(spread_of("a"), expected);
        assert_ne!(spread_of("i-1"), spread_of("i-2"));
    }

    #[test]
    fn a_lifetime_that_ends_before_it_begins_is_renewed_at_once() {
        let start = UNIX_EPOCH + 20_000 * DAY;
        let life = Lifetime {
            issued_at: start,
            not_after: start - DAY,
        };
        assert_eq!(life.renewal_time("i-1"), start);
    }

    #[test]
    fn a_failed_renewal_is_retried_within_a_tenth_of_the_life_left() {
        let now = UNIX_EPOCH + 20_000 * DAY;
        let cases = [
            // (life left, wait)
            (120 * DAY, RETRY_AT_MOST),
            (Duration::from_secs(600), Duration::from_secs(60)),
            (Duration::from_secs(30), RETRY_AT_LEAST * 3),
            (Duration::from_secs(5), RETRY_AT_LEAST),
            (Duration::ZERO, RETRY_AT_LEAST),
        ];
        for (left, wait) in cases {
            assert_eq!(retry_after_failure(now, now + left), wait, "{left:?} left");
        }
        assert_eq!(retry_after_failure(now, now - DAY), RETRY_AT_LEAST);
    }
}

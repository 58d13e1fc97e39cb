//! The range every duration, count and size setting must lie within,
//! checked at start with the key named (exit 64): a value outside it is a
//! mistake (`header_read_timeout = "0s"` closes every connection,
//! `retention_days = 4294967295` overflows a date), never a wish.

use std::time::Duration;

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const H: Duration = Duration::from_secs(3600);
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Each duration setting: (key, least, most).
pub const DURATIONS: &[(&str, Duration, Duration)] = &[
    ("config_refresh", MS.saturating_mul(100), H),
    ("limits.upstream_timeout", MS.saturating_mul(100), H),
    ("limits.header_read_timeout", MS.saturating_mul(100), MIN.saturating_mul(10)),
    ("limits.idle_timeout", MS.saturating_mul(100), H),
    ("limits.body_timeout", MS.saturating_mul(100), H),
    ("limits.upstream_read_timeout", MS.saturating_mul(100), H),
    ("limits.shutdown_timeout", Duration::ZERO, H),
    ("snapshot.timeout", MS.saturating_mul(10), MIN.saturating_mul(10)),
    ("recorder.flush_interval", Duration::ZERO, S.saturating_mul(10)),
];

/// Each count or size setting: (key, least, most).
pub const NUMBERS: &[(&str, u64, u64)] = &[
    ("limits.max_header_bytes", KIB, 16 * MIB),
    ("limits.max_body_bytes", 1, GIB),
    ("limits.body_min_rate", 0, GIB),
    ("limits.max_connections", 1, 1_000_000),
    ("snapshot.max_bytes", 1, 256 * MIB),
    ("recorder.queue", 1, 1_000_000),
    ("recorder.batch", 1, 10_000),
    ("recorder.max_pending", 1, 1_000_000),
    ("retention_days", 0, 36_500),
    ("worker_threads", 0, 1_024),
    ("query.max_streams", 1, 10_000),
];

/// `value` of the duration setting `key`, or why it is out of range.
pub fn duration(key: &str, value: Duration) -> Result<Duration, String> {
    let (_, least, most) = DURATIONS.iter().find(|(k, ..)| *k == key).unwrap_or_else(|| unknown(key));
    if (*least..=*most).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{key}: {} is not between {} and {}", show(value), show(*least), show(*most)))
    }
}

/// `value` of the count or size setting `key`, or why it is out of range.
pub fn number(key: &str, value: u64) -> Result<u64, String> {
    let (_, least, most) = NUMBERS.iter().find(|(k, ..)| *k == key).unwrap_or_else(|| unknown(key));
    if (*least..=*most).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{key}: {value} is not between {least} and {most}"))
    }
}

fn unknown(key: &str) -> ! {
    unreachable!("no bounds are written for `{key}`")
}

/// A duration the way a configuration writes it.
fn show(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_is_inclusive_and_a_value_past_it_names_its_key() {
        for (key, least, most) in DURATIONS {
            assert_eq!(duration(key, *least), Ok(*least), "{key}");
            assert_eq!(duration(key, *most), Ok(*most), "{key}");
            let over = duration(key, *most + MS).unwrap_err();
            assert!(over.starts_with(&format!("{key}: ")), "{over}");
            if let Some(under) = least.checked_sub(MS) {
                assert!(duration(key, under).is_err(), "{key}");
            }
        }
        for (key, least, most) in NUMBERS {
            assert_eq!(number(key, *least), Ok(*least), "{key}");
            assert_eq!(number(key, *most), Ok(*most), "{key}");
            assert!(number(key, most + 1).unwrap_err().starts_with(&format!("{key}: ")));
            if let Some(under) = least.checked_sub(1) {
                assert!(number(key, under).is_err(), "{key}");
            }
        }
    }

    #[test]
    fn the_probes_values_are_refused() {
        assert_eq!(
            duration("limits.header_read_timeout", Duration::ZERO),
            Err("limits.header_read_timeout: 0s is not between 100ms and 10m".into())
        );
        let forever = Duration::from_secs(99_999_999_999_999);
        assert!(duration("recorder.flush_interval", forever).unwrap_err().contains("between 0s and 10s"));
        assert_eq!(
            number("retention_days", u64::from(u32::MAX)),
            Err("retention_days: 4294967295 is not between 0 and 36500".into())
        );
        assert!(number("worker_threads", 100_000).is_err());
    }

    #[test]
    fn durations_show_as_written() {
        for (d, text) in
            [(Duration::ZERO, "0s"), (MS * 250, "250ms"), (S * 90, "90s"), (MIN * 10, "10m"), (H * 2, "2h")]
        {
            assert_eq!(show(d), text);
        }
    }
}

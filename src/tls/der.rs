//! The one field of an X.509 certificate auditgate reads itself: the end
//! of its validity (RFC 5280 4.1.2.5), so an expired certificate stops
//! start-up with a message instead of failing every handshake.

/// Seconds since the Unix epoch at which `cert` (DER) stops being valid;
/// `None` when it is not a certificate this reader understands.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let (tag, certificate, _) = element(cert)?;
    expect(tag, SEQUENCE)?;
    let (tag, tbs, _) = element(certificate)?;
    expect(tag, SEQUENCE)?;
    let mut rest = tbs;
    // version [0] EXPLICIT, optional; serialNumber; signature; issuer.
    let (tag, _, after) = element(rest)?;
    if tag == VERSION {
        rest = after;
    }
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (tag, validity, _) = element(rest)?;
    expect(tag, SEQUENCE)?;
    let not_before_rest = element(validity)?.2;
    let (tag, time, _) = element(not_before_rest)?;
    time_of(tag, time)
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

fn expect(tag: u8, want: u8) -> Option<()> {
    (tag == want).then_some(())
}

/// One DER element: its tag, its contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (bytes, after) = rest.split_at(octets);
        rest = after;
        bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b))
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A `Time` (UTCTime `YYMMDDHHMMSSZ`, years 1950–2049, or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`) as seconds since the epoch.
fn time_of(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |n, b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')))
    };
    let (year, rest) = match tag {
        UTC_TIME if text.len() == 13 => {
            let yy = digits(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        GENERALIZED_TIME if text.len() == 15 => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day, hour, minute, second) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn both_time_forms_are_read_and_bad_ones_refused() {
        // 2026-11-30T12:34:56Z
        let at = 1_796_042_096;
        assert_eq!(time_of(UTC_TIME, b"261130123456Z"), Some(at));
        assert_eq!(time_of(GENERALIZED_TIME, b"20261130123456Z"), Some(at));
        // UTCTime years 50–99 are 1950–1999.
        assert_eq!(time_of(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time_of(UTC_TIME, b"261130123456+"), None);
        assert_eq!(time_of(UTC_TIME, b"261330123456Z"), None);
        assert_eq!(time_of(UTC_TIME, b"2611301234Z"), None);
        assert_eq!(time_of(GENERALIZED_TIME, b"261130123456Z"), None);
        assert_eq!(time_of(0x04, b"261130123456Z"), None);
        // The century turns between UTCTime 49 and 50.
        let last = time_of(UTC_TIME, b"491231235959Z");
        assert!(last.is_some(), "hour 23, minute 59 and second 59 are read");
        assert_eq!(last, time_of(GENERALIZED_TIME, b"20491231235959Z"));
        assert_eq!(time_of(UTC_TIME, b"500101000000Z"), time_of(GENERALIZED_TIME, b"19500101000000Z"));
        assert!(time_of(UTC_TIME, b"500101000000Z").unwrap() < 0);
        // Each field out of range alone is refused; a leap second is read.
        for bad in [b"261100123456Z", b"261132123456Z", b"261130243456Z", b"261130126056Z", b"261130123461Z"] {
            assert_eq!(time_of(UTC_TIME, bad), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(time_of(UTC_TIME, b"261130123460Z"), Some(at + 4));
    }

    #[test]
    fn long_lengths_and_truncation() {
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend(vec![7u8; 256]);
        long.push(9);
        let (tag, body, rest) = element(&long).unwrap();
        assert_eq!((tag, body.len(), rest), (0x04, 256, &[9u8][..]));
        assert!(element(&long[..100]).is_none());
        assert!(element(&[0x04, 0x80]).is_none());
        assert!(element(&[0x04]).is_none());
        // Indefinite length (0x80) is not DER, even with bytes enough behind it.
        assert!(element(&[&[0x04, 0x80][..], &[0u8; 200]].concat()).is_none());
        // Four length octets are read, five are refused.
        assert_eq!(element(&[0x04, 0x84, 0, 0, 0, 1, 7]), Some((0x04, &[7u8][..], &[][..])));
        assert!(element(&[0x04, 0x85, 0, 0, 0, 0, 1, 7]).is_none());
        // Length octets: exactly as many as announced, or fewer.
        assert_eq!(element(&[0x04, 0x82, 0, 0]), Some((0x04, &[][..], &[][..])));
        assert!(element(&[0x04, 0x82, 0]).is_none());
    }

    #[test]
    fn the_end_of_validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 4);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(not_after(cert.der()), Some(days_from_civil(2031, 7, 4) * 86_400));
        assert_eq!(not_after(b"not a certificate"), None);
        assert_eq!(not_after(&cert.der()[..40]), None);
        // The same bytes under another outer tag are not a certificate.
        let mut retagged = cert.der().to_vec();
        retagged[0] = 0x31;
        assert_eq!(not_after(&retagged), None);
    }
}

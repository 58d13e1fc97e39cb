//! Query filters of `GET /api/v1/audit-logs` (docs/query-api.md), parsed and validated
//! into values the store binds; a bad value names its field.

use std::net::IpAddr;

use ipnet::IpNet;

/// A filter value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct FilterError {
    pub field: &'static str,
    pub reason: String,
}

/// Validated filters; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub actor: Option<String>,
    /// Inclusive range of `client_ip_key`.
    pub client_ip: Option<([u8; 16], [u8; 16])>,
    pub outcome: Option<String>,
    pub status: Option<u16>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
    pub configuration: Option<String>,
    pub instance: Option<String>,
    /// Entries with (true) or without (false) fields asked for but not applied.
    pub unapplied: Option<bool>,
    /// Ids up to this one only: not a query parameter; a reader bounding
    /// how far one read goes (the event stream's windows).
    pub ids_upto: Option<String>,
}

/// The filters' names, as the query string gives them.
pub const FIELDS: [&str; 13] = [
    "action",
    "resource_type",
    "resource_id",
    "actor",
    "configuration",
    "instance",
    "q",
    "outcome",
    "unapplied",
    "status",
    "client_ip",
    "since",
    "until",
];

/// The longest value a filter takes, in characters: longer is no real name,
/// id or search, and would cost the store (a LIKE pattern's work grows with
/// its length).
pub const MAX_VALUE_CHARS: usize = 1024;

impl Filter {
    /// Sets one filter from its query-string name; unknown names are errors.
    pub fn set(&mut self, field: &str, value: &str) -> Result<(), FilterError> {
        let err = |field: &'static str, reason: String| FilterError { field, reason };
        if value.chars().count() > MAX_VALUE_CHARS {
            let name = FIELDS.iter().find(|f| **f == field).copied().unwrap_or("query");
            return Err(err(name, format!("longer than {MAX_VALUE_CHARS} characters")));
        }
        let s = Some(value.to_string());
        match field {
            "action" => self.action = s,
            "resource_type" => self.resource_type = s,
            "resource_id" => self.resource_id = s,
            "actor" => self.actor = s,
            "configuration" => self.configuration = s,
            "instance" => self.instance = s,
            "q" => self.q = s,
            "outcome" => match value {
                "success" | "failure" | "error" => self.outcome = s,
                _ => return Err(err("outcome", format!("`{value}` is not success, failure or error"))),
            },
            "unapplied" => match value {
                "true" => self.unapplied = Some(true),
                "false" => self.unapplied = Some(false),
                _ => return Err(err("unapplied", format!("`{value}` is not true or false"))),
            },
            "status" => {
                let n: u16 = value
                    .parse()
                    .ok()
                    .filter(|n| (100..=599).contains(n))
                    .ok_or_else(|| err("status", format!("`{value}` is not an HTTP status")))?;
                self.status = Some(n);
            }
            "client_ip" => {
                let net = value
                    .parse::<IpNet>()
                    .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| err("client_ip", format!("`{value}` is not an address or CIDR range")))?;
                let (lo, hi) = (ip_key(net.network()), ip_key(net.broadcast()));
                self.client_ip = Some((lo, hi));
            }
            "since" | "until" => {
                let t = crate::entry::query_time(value).ok_or_else(|| {
                    err(if field == "since" { "since" } else { "until" }, format!("`{value}` is not an RFC 3339 time"))
                })?;
                if field == "since" {
                    self.since = Some(t);
                } else {
                    self.until = Some(t);
                }
            }
            _ => return Err(FilterError { field: "query", reason: format!("unknown filter `{field}`") }),
        }
        Ok(())
    }
}

impl Filter {
    /// One filter selecting the entries both select; `None` when none can
    /// be (a field asked two different values, address ranges or times
    /// apart). Two different `q` searches cannot be one: the first is kept,
    /// so the result may then select more (what the hold checks want: a
    /// conflict is never missed).
    pub fn and(&self, other: &Filter) -> Option<Filter> {
        fn same<T: Clone + PartialEq>(a: &Option<T>, b: &Option<T>) -> Result<Option<T>, ()> {
            match (a, b) {
                (Some(x), Some(y)) if x != y => Err(()),
                _ => Ok(a.clone().or_else(|| b.clone())),
            }
        }
        let client_ip = match (self.client_ip, other.client_ip) {
            (Some((a_lo, a_hi)), Some((b_lo, b_hi))) => {
                let (lo, hi) = (a_lo.max(b_lo), a_hi.min(b_hi));
                if lo > hi {
                    return None;
                }
                Some((lo, hi))
            }
            (a, b) => a.or(b),
        };
        let since = self.since.clone().max(other.since.clone());
        fn lower(a: &Option<String>, b: &Option<String>) -> Option<String> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b).clone()),
                (a, b) => a.clone().or_else(|| b.clone()),
            }
        }
        let until = lower(&self.until, &other.until);
        if let (Some(s), Some(u)) = (&since, &until)
            && s > u
        {
            return None;
        }
        let both = || -> Result<Filter, ()> {
            Ok(Filter {
                action: same(&self.action, &other.action)?,
                resource_type: same(&self.resource_type, &other.resource_type)?,
                resource_id: same(&self.resource_id, &other.resource_id)?,
                actor: same(&self.actor, &other.actor)?,
                client_ip,
                outcome: same(&self.outcome, &other.outcome)?,
                status: same(&self.status, &other.status)?,
                since,
                until,
                q: self.q.clone().or_else(|| other.q.clone()),
                configuration: same(&self.configuration, &other.configuration)?,
                instance: same(&self.instance, &other.instance)?,
                unapplied: same(&self.unapplied, &other.unapplied)?,
                ids_upto: lower(&self.ids_upto, &other.ids_upto),
            })
        };
        both().ok()
    }
}

/// The smallest id an entry answered at `since` (RFC 3339) can have: an
/// entry is sealed, and its id made, after its answer, so its id's time is
/// never before its `timestamp`. An hour of slack covers a wall clock
/// stepped back in between. Lets `since` bound a walk in id
/// order (both stores index `id`).
pub(crate) fn id_floor(since: &str) -> Option<String> {
    let at = chrono::DateTime::parse_from_rfc3339(since).ok()?.with_timezone(&chrono::Utc);
    let ms = (at - chrono::Duration::hours(1)).timestamp_millis();
    Some(ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(0), 0).to_string())
}

/// The LIKE pattern (escape `\`) of a `q` search: `search` anywhere, its
/// `\`, `%` and `_` taken literally.
pub(crate) fn like(search: &str) -> String {
    format!("%{}%", search.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"))
}

/// An id past every id of an entry answered at or before `at`, but for
/// one sealed over an hour after its answer (`sealed_late`): where a walk
/// down a resource's ids for its state as of `at` begins (`state_at`), and
/// PostgreSQL's bound for `until`.
pub(crate) fn id_ceiling(at: &str) -> Option<String> {
    let at = chrono::DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&chrono::Utc);
    let ms = (at + chrono::Duration::hours(1)).timestamp_millis();
    Some(ulid::Ulid::from_parts(u64::try_from(ms).unwrap_or(0), u128::MAX).to_string())
}

/// Whether an entry was sealed more than an hour after its answer: its id
/// lies past `id_ceiling(timestamp)`, where a walk bounded by an `until`
/// would not find it (PostgreSQL keeps these in `audit_late`).
pub(crate) fn sealed_late(id: &str, timestamp: &str) -> bool {
    id_ceiling(timestamp).is_some_and(|ceiling| id > ceiling.as_str())
}

/// Sort key of an address: 16 bytes, IPv4 mapped into IPv6.
pub fn ip_key(ip: std::net::IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor keeps every entry answered at or after `since` (its id is
    /// made later still) and leaves out what was sealed over an hour before.
    #[test]
    fn the_id_floor_keeps_what_since_keeps() {
        let since = "2026-11-23T11:02:03.000000Z";
        let at = chrono::DateTime::parse_from_rfc3339(since).unwrap().timestamp_millis() as u64;
        let floor = id_floor(since).unwrap();
        assert!(ulid::Ulid::from_parts(at, 0).to_string() >= floor);
        assert!(ulid::Ulid::from_parts(at - 3_600_000, 0).to_string() >= floor, "an hour of slack");
        assert!(ulid::Ulid::from_parts(at - 3_600_001, u128::MAX).to_string() < floor);
        assert_eq!(id_floor("yesterday"), None);
    }

    #[test]
    fn an_entry_sealed_over_an_hour_after_its_answer_is_late() {
        let at = "2026-11-20T10:00:00.000500Z";
        let id = |ms: i64| {
            let t = chrono::DateTime::parse_from_rfc3339(at).unwrap().timestamp_millis() + ms;
            ulid::Ulid::from_parts(u64::try_from(t).unwrap(), u128::MAX).to_string()
        };
        assert!(!sealed_late(&id(0), at));
        assert!(!sealed_late(&id(3_600_000), at), "an hour after: the ceiling itself");
        assert!(sealed_late(&id(3_600_001), at));
        assert!(!sealed_late(&id(-5_000), at), "sealed before its answer (a clock stepped back)");
        assert!(!sealed_late(&id(9_000_000), "not a time"));
    }

    #[test]
    fn the_id_ceiling_is_an_hour_past_at() {
        let at = "2026-11-23T11:02:03.000000Z";
        let ms = chrono::DateTime::parse_from_rfc3339(at).unwrap().timestamp_millis() as u64;
        let ceiling = id_ceiling(at).unwrap();
        assert!(ulid::Ulid::from_parts(ms + 3_600_000, u128::MAX).to_string() <= ceiling, "an hour of slack");
        assert!(ulid::Ulid::from_parts(ms + 3_600_001, 0).to_string() > ceiling);
        assert_eq!(id_ceiling("now"), None);
    }

    #[test]
    fn two_filters_make_one_selecting_what_both_select() {
        let of = |pairs: &[(&str, &str)]| {
            let mut f = Filter::default();
            for (k, v) in pairs {
                f.set(k, v).unwrap();
            }
            f
        };
        let both = of(&[("actor", "alice")]).and(&of(&[("resource_type", "user"), ("resource_id", "7")])).unwrap();
        assert_eq!(both, of(&[("actor", "alice"), ("resource_type", "user"), ("resource_id", "7")]));
        assert_eq!(of(&[("actor", "alice")]).and(&of(&[("actor", "bob")])), None);
        assert_eq!(of(&[("actor", "alice")]).and(&of(&[("actor", "alice")])), Some(of(&[("actor", "alice")])));
        // Address ranges: the overlap, or nothing.
        let wide = of(&[("client_ip", "10.0.0.0/8")]);
        assert_eq!(wide.and(&of(&[("client_ip", "10.1.2.3")])), Some(of(&[("client_ip", "10.1.2.3")])));
        assert_eq!(of(&[("client_ip", "10.1.2.3")]).and(&wide), Some(of(&[("client_ip", "10.1.2.3")])));
        assert_eq!(wide.and(&of(&[("client_ip", "11.0.0.1")])), None);
        assert_eq!(wide.and(&of(&[("client_ip", "10.255.255.255")])), Some(of(&[("client_ip", "10.255.255.255")])));
        // Times: the later since, the earlier until; apart is nothing.
        let range = of(&[("since", "2026-01-01T00:00:00Z"), ("until", "2026-06-01T00:00:00Z")]);
        let later = of(&[("since", "2026-03-01T00:00:00Z"), ("until", "2026-09-01T00:00:00Z")]);
        let overlap = of(&[("since", "2026-03-01T00:00:00Z"), ("until", "2026-06-01T00:00:00Z")]);
        assert_eq!(range.and(&later), Some(overlap.clone()));
        assert_eq!(later.and(&range), Some(overlap));
        assert_eq!(range.and(&of(&[("since", "2026-07-01T00:00:00Z")])), None);
        assert_eq!(
            of(&[("until", "2026-01-01T00:00:00Z")]).and(&of(&[("since", "2026-01-01T00:00:00Z")])),
            Some(of(&[("since", "2026-01-01T00:00:00Z"), ("until", "2026-01-01T00:00:00Z")]))
        );
        for field in ["action", "outcome", "configuration", "instance", "status", "unapplied"] {
            let value = if field == "status" {
                "200"
            } else if field == "outcome" {
                "success"
            } else {
                "true"
            };
            let other = if field == "status" {
                "201"
            } else if field == "outcome" {
                "failure"
            } else {
                "false"
            };
            let a = of(&[(field, value)]);
            assert_eq!(a.and(&of(&[(field, other)])), None, "{field}");
            assert_eq!(a.and(&Filter::default()), Some(a.clone()), "{field}");
            assert_eq!(Filter::default().and(&a), Some(a.clone()), "{field}");
        }
        assert_eq!(of(&[("q", "x")]).and(&of(&[("q", "y")])), Some(of(&[("q", "x")])));
        assert_eq!(Filter::default().and(&of(&[("q", "y")])), Some(of(&[("q", "y")])));
    }

    #[test]
    fn parses_and_refuses() {
        let mut f = Filter::default();
        f.set("client_ip", "10.0.0.0/8").unwrap();
        let (lo, hi) = f.client_ip.unwrap();
        assert!(lo <= ip_key("10.2.3.4".parse().unwrap()) && ip_key("10.2.3.4".parse().unwrap()) <= hi);
        assert!(ip_key("11.0.0.0".parse().unwrap()) > hi);
        f.set("since", "2026-11-23T11:02:03+01:00").unwrap();
        assert_eq!(f.since.as_deref(), Some("2026-11-23T10:02:03.000000Z"));
        for (k, v) in [
            ("configuration", "payroll"),
            ("instance", "eu-1"),
            ("q", "alice"),
            ("actor", "bob"),
            ("action", "update"),
            ("resource_type", "user"),
            ("resource_id", "7"),
        ] {
            let mut f = Filter::default();
            f.set(k, v).unwrap();
            let got = [f.configuration, f.instance, f.q, f.actor, f.action, f.resource_type, f.resource_id];
            assert_eq!(got.iter().flatten().collect::<Vec<_>>(), [v], "{k} sets its own field and no other");
        }
        let mut f = Filter::default();
        f.set("outcome", "failure").unwrap();
        f.set("unapplied", "true").unwrap();
        assert_eq!(f.unapplied, Some(true));
        f.set("unapplied", "false").unwrap();
        f.set("status", "599").unwrap();
        assert_eq!((f.outcome.as_deref(), f.unapplied, f.status), (Some("failure"), Some(false), Some(599)));
        let long = "x".repeat(MAX_VALUE_CHARS + 1);
        for field in ["q", "actor", "resource_id", "client_ip", "since"] {
            assert_eq!(Filter::default().set(field, &long).unwrap_err().field, field);
        }
        assert_eq!(Filter::default().set("bogus", &long).unwrap_err().field, "query");
        Filter::default().set("q", &long[1..]).unwrap();
        // Characters, not bytes: 1,024 three-byte characters are within bounds.
        Filter::default().set("q", &"€".repeat(MAX_VALUE_CHARS)).unwrap();
        for (k, v, field) in [
            ("status", "abc", "status"),
            ("status", "99", "status"),
            ("status", "1000", "status"),
            ("client_ip", "' OR 1=1 --", "client_ip"),
            ("since", "yesterday", "since"),
            ("until", "2026-13-01T00:00:00Z", "until"),
            ("outcome", "maybe", "outcome"),
            ("unapplied", "yes", "unapplied"),
            ("bogus", "1", "query"),
        ] {
            assert_eq!(Filter::default().set(k, v).unwrap_err().field, field, "{k}={v}");
        }
    }
}

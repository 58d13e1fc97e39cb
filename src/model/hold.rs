//! A legal hold as stored and served, and a new one checked: the entries
//! it covers (a selector, optionally within a time range) and why.

use serde::Serialize;
use serde_json::Value;

use super::filter::Filter;
use super::selector::{Selector, SelectorError};

/// A hold's entries' `resource_type`.
pub const RESOURCE_TYPE: &str = "legal_hold";

/// A hold as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Hold {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub reason: String,
    pub created_at: String,
    pub created_by: String,
    pub released_at: Option<String>,
    pub released_by: Option<String>,
}

/// A hold asked for: a selector, an optional time range and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub selector: Selector,
    pub since: Option<String>,
    pub until: Option<String>,
    pub reason: String,
}

impl NewHold {
    /// Checks the time range and the reason (the selector is parsed).
    pub fn new(
        selector: Selector,
        since: Option<&str>,
        until: Option<&str>,
        reason: &str,
    ) -> Result<NewHold, SelectorError> {
        if reason.trim().is_empty() {
            return Err(SelectorError { field: "reason", reason: "a hold needs a reason".into() });
        }
        let hold = NewHold {
            selector,
            since: since.map(str::to_string),
            until: until.map(str::to_string),
            reason: reason.to_string(),
        };
        hold.filter()?;
        Ok(hold)
    }

    fn filter(&self) -> Result<Filter, SelectorError> {
        let mut filter = self.selector.filter()?;
        for (field, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(v) = value {
                filter.set(field, v).map_err(|e| SelectorError { field, reason: e.reason })?;
            }
        }
        Ok(filter)
    }

    /// The stored hold's selector columns.
    pub fn columns(&self) -> [Option<&str>; 4] {
        match &self.selector {
            Selector::Actor(a) => [Some(a.as_str()), None, None, None],
            Selector::Resource { kind, id } => [None, Some(kind.as_str()), Some(id.as_str()), None],
            Selector::ClientIp(ip) => [None, None, None, Some(ip.as_str())],
        }
    }
}

impl Hold {
    /// The entries it covers, as a listing filter.
    pub fn filter(&self) -> Filter {
        let mut filter = Filter::default();
        let fields = [
            ("actor", &self.actor),
            ("resource_type", &self.resource_type),
            ("resource_id", &self.resource_id),
            ("client_ip", &self.client_ip),
            ("since", &self.since),
            ("until", &self.until),
        ];
        for (field, value) in fields {
            if let Some(v) = value {
                // Checked when the hold was made.
                let _ = filter.set(field, v);
            }
        }
        filter
    }

    /// The hold as a trail entry's state (`before`/`after`).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a hold serialises")
    }

    /// How an error names it.
    pub fn describe(&self) -> String {
        format!("legal hold {} ({})", self.id, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(new: &NewHold) -> Hold {
        let [actor, kind, id, ip] = new.columns().map(|c| c.map(str::to_string));
        Hold {
            id: 4,
            actor,
            resource_type: kind,
            resource_id: id,
            client_ip: ip,
            since: new.since.clone(),
            until: new.until.clone(),
            reason: new.reason.clone(),
            created_at: "2026-12-01T00:00:00.000000Z".into(),
            created_by: "ops".into(),
            released_at: None,
            released_by: None,
        }
    }

    #[test]
    fn a_hold_covers_what_its_selector_and_time_range_select() {
        let actor =
            NewHold::new(Selector::Actor("alice".into()), Some("2026-01-01T00:00:00Z"), None, "case 1").unwrap();
        assert_eq!(actor.columns(), [Some("alice"), None, None, None]);
        let held = stored(&actor);
        let filter = held.filter();
        assert_eq!(filter.actor.as_deref(), Some("alice"));
        assert_eq!(filter.since.as_deref(), Some("2026-01-01T00:00:00.000000Z"));
        assert_eq!(filter.until, None);
        assert_eq!(held.describe(), "legal hold 4 (case 1)");
        assert_eq!(held.to_json()["actor"], "alice");
        assert!(held.to_json().get("resource_type").is_none());

        let resource = Selector::Resource { kind: "user".into(), id: "7".into() };
        let resource = NewHold::new(resource, None, Some("2026-02-01T00:00:00Z"), "case 2").unwrap();
        assert_eq!(resource.columns(), [None, Some("user"), Some("7"), None]);
        let filter = stored(&resource).filter();
        assert_eq!((filter.resource_type.as_deref(), filter.resource_id.as_deref()), (Some("user"), Some("7")));
        assert!(filter.until.is_some() && filter.actor.is_none());

        let ip = NewHold::new(Selector::ClientIp("10.0.0.0/8".into()), None, None, "case 3").unwrap();
        assert_eq!(ip.columns(), [None, None, None, Some("10.0.0.0/8")]);
        assert!(stored(&ip).filter().client_ip.is_some());

        let bad = |since, reason| NewHold::new(Selector::Actor("a".into()), since, None, reason).unwrap_err().field;
        assert_eq!(bad(Some("yesterday"), "r"), "since");
        assert_eq!(bad(None, " "), "reason");
    }
}

//! The audit configuration as stored and served (docs/rules.md), and the checking
//! of what a client or `rules/audit.toml` sends: every error names its field.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `include` records what it matches; `exclude` stops what it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Include,
    Exclude,
}

/// How much of a request an entry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Capture {
    /// No snapshots, no bodies.
    Metadata,
    /// Snapshots and changes.
    #[default]
    Diff,
    /// Also the request body (redacted, bounded).
    Full,
}

/// Where a configuration came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Api,
    File,
}

/// One audit configuration; the JSON names are docs/rules.md's. An `audit_all_*`
/// flag that was never given is `null` and follows its list (true when the
/// list is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AuditConfiguration {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub configuration_type: Kind,
    pub is_active: bool,
    pub priority: i64,
    pub audit_actions: Vec<String>,
    pub audit_all_actions: Option<bool>,
    pub audit_resource_types: Vec<String>,
    pub audit_all_resource_types: Option<bool>,
    pub audit_users: Vec<String>,
    pub audit_all_users: Option<bool>,
    pub audit_ips: Vec<String>,
    pub audit_all_ips: Option<bool>,
    pub exclude_actions: Vec<String>,
    pub exclude_resource_types: Vec<String>,
    pub exclude_users: Vec<String>,
    pub exclude_ips: Vec<String>,
    pub capture: Capture,
    pub source: Source,
    pub created_at: String,
    pub updated_at: String,
}

/// A field that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), reason: reason.into() }
}

/// The built-in action names; custom actions come from `resources.toml`.
pub const BUILTIN_ACTIONS: [&str; 5] = ["create", "read", "update", "delete", "login"];

/// Fields the server sets; a client may send them back (a GET's body
/// PUT again) and they are ignored.
const READ_ONLY: [&str; 4] = ["id", "source", "created_at", "updated_at"];

impl AuditConfiguration {
    /// A new configuration with docs/rules.md's defaults.
    pub fn new() -> AuditConfiguration {
        AuditConfiguration { is_active: true, ..AuditConfiguration::default() }
    }

    /// Applies the fields of a JSON object (a POST or PUT body on top of
    /// `new()`, a PATCH body on top of the stored configuration).
    /// `actions` is every action name a configuration may use.
    pub fn apply(&mut self, body: &Value, actions: &HashSet<String>) -> Result<(), FieldError> {
        self.apply_fields(body, actions)?;
        if self.name.is_empty() {
            return Err(bad("name", "is required"));
        }
        Ok(())
    }

    /// `apply` without requiring a name (the seed file checks it per table).
    pub fn apply_fields(&mut self, body: &Value, actions: &HashSet<String>) -> Result<(), FieldError> {
        let Value::Object(fields) = body else { return Err(bad("body", "must be a JSON object")) };
        for (key, value) in fields {
            self.set(key, value, actions)?;
        }
        Ok(())
    }

    fn set(&mut self, key: &str, v: &Value, actions: &HashSet<String>) -> Result<(), FieldError> {
        match key {
            "name" => {
                let name = string(key, v)?;
                if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
                    return Err(bad(key, "must be 1 to 200 characters, none of them a control character"));
                }
                self.name = name.trim().to_string();
            }
            "description" => self.description = if v.is_null() { String::new() } else { string(key, v)? },
            "configuration_type" => {
                self.configuration_type = match v.as_str() {
                    Some("include") => Kind::Include,
                    Some("exclude") => Kind::Exclude,
                    _ => return Err(bad(key, "must be \"include\" or \"exclude\"")),
                }
            }
            "capture" => {
                self.capture = match v.as_str() {
                    Some("metadata") => Capture::Metadata,
                    Some("diff") => Capture::Diff,
                    Some("full") => Capture::Full,
                    _ => return Err(bad(key, "must be \"metadata\", \"diff\" or \"full\"")),
                }
            }
            "is_active" => self.is_active = v.as_bool().ok_or_else(|| bad(key, "must be true or false"))?,
            "priority" => self.priority = integer(v).ok_or_else(|| bad(key, "must be an integer"))?,
            "audit_actions" => self.audit_actions = action_list(key, v, actions)?,
            "exclude_actions" => self.exclude_actions = action_list(key, v, actions)?,
            "audit_resource_types" => self.audit_resource_types = name_list(key, v)?,
            "exclude_resource_types" => self.exclude_resource_types = name_list(key, v)?,
            "audit_users" => self.audit_users = name_list(key, v)?,
            "exclude_users" => self.exclude_users = name_list(key, v)?,
            "audit_ips" => self.audit_ips = ip_list(key, v)?,
            "exclude_ips" => self.exclude_ips = ip_list(key, v)?,
            "audit_all_actions" => self.audit_all_actions = flag(key, v)?,
            "audit_all_resource_types" => self.audit_all_resource_types = flag(key, v)?,
            "audit_all_users" => self.audit_all_users = flag(key, v)?,
            "audit_all_ips" => self.audit_all_ips = flag(key, v)?,
            _ if READ_ONLY.contains(&key) => {}
            _ => return Err(bad(key, "is not a field of an audit configuration")),
        }
        Ok(())
    }

    /// The configuration as JSON (what the API serves and the trail records).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a configuration serialises")
    }
}

fn string(field: &str, v: &Value) -> Result<String, FieldError> {
    v.as_str().map(str::to_string).ok_or_else(|| bad(field, "must be a string"))
}

/// An integer as JSON Schema counts them: `3`, and also `3.0` or `3e2`.
fn integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let f = v.as_f64()?;
        // Both bounds are ±2^63 as floats: 2^63 is out of range, and a
        // float of -2^63 may be a rounded -2^63 - 1 (the exact -2^63 is
        // read by `as_i64`).
        (f.fract() == 0.0 && f > i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
    })
}

fn flag(field: &str, v: &Value) -> Result<Option<bool>, FieldError> {
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err(bad(field, "must be true, false or null")),
    }
}

fn strings(field: &str, v: &Value) -> Result<Vec<String>, FieldError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|i| match i.as_str() {
                Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(bad(field, "must be a list of non-empty strings")),
            })
            .collect(),
        _ => Err(bad(field, "must be a list of strings")),
    }
}

fn name_list(field: &str, v: &Value) -> Result<Vec<String>, FieldError> {
    let mut seen = HashSet::new();
    Ok(strings(field, v)?.into_iter().filter(|s| seen.insert(s.clone())).collect())
}

fn action_list(field: &str, v: &Value, actions: &HashSet<String>) -> Result<Vec<String>, FieldError> {
    let list = name_list(field, v)?;
    match list.iter().find(|a| !actions.contains(a.as_str())) {
        Some(a) => {
            let mut known: Vec<&str> = actions.iter().map(String::as_str).collect();
            known.sort_unstable();
            Err(bad(field, format!("`{a}` is not an action (known: {})", known.join(", "))))
        }
        None => Ok(list),
    }
}

fn ip_list(field: &str, v: &Value) -> Result<Vec<String>, FieldError> {
    let list = name_list(field, v)?;
    for item in &list {
        parse_net(item).ok_or_else(|| bad(field, format!("`{item}` is not an IP address or CIDR block")))?;
    }
    Ok(list)
}

/// An address or CIDR block (`10.0.0.0/8`, `2001:db8::/32`, `192.168.1.7`).
pub fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Every action name a configuration may use: the built-ins and `custom`.
pub fn known_actions<'a>(custom: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
    BUILTIN_ACTIONS.iter().copied().chain(custom).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integral_number_is_an_integer_however_written() {
        let of = |text: &str| integer(&serde_json::from_str(text).unwrap());
        assert_eq!(of("3"), Some(3));
        assert_eq!(of("-37573474.0"), Some(-37_573_474));
        assert_eq!(of("3e2"), Some(300));
        assert_eq!(of("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(of("2.5"), None);
        assert_eq!(of("9223372036854775808"), None);
        assert_eq!(of("9.3e18"), None);
        assert_eq!(of("-9223372036854775809"), None);
        assert_eq!(of("-9.3e18"), None);
        assert_eq!(of("\"3\""), None);
    }
}

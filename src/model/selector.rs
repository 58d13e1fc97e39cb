//! What an erasure or a legal hold names: an actor, a resource or a client
//! address (a range within bounds unless forced), parsed and checked.

use ipnet::IpNet;
use serde_json::{Value, json};

use super::filter::Filter;
use super::hold::Hold;
use crate::entry::erasure_record;

/// The resource types of auditgate's own entries (configurations, legal
/// holds, erasures, retention passes): the evidence of how the trail was
/// kept, which no erasure selects.
pub const OWN_TYPES: [&str; 4] =
    ["audit_configuration", super::hold::RESOURCE_TYPE, erasure_record::RESOURCE_TYPE, "audit_log"];

/// The widest address ranges erased without `force`: a /16 of IPv4, a /48
/// of IPv6 (one site); wider ones take in whole networks of people.
const WIDEST_V4: u8 = 16;
const WIDEST_V6: u8 = 48;

/// The keys that name a selector, in a body or on the command line.
pub const SELECTORS: [&str; 3] = ["actor", "resource", "client_ip"];

/// The entries an erasure names: exactly one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Entries whose `actor` is this name.
    Actor(String),
    /// Entries of this resource (`TYPE/ID`).
    Resource { kind: String, id: String },
    /// Entries whose client address is this one, or within this CIDR.
    ClientIp(String),
}

/// A selector that cannot be used, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SelectorError {
    pub field: &'static str,
    pub reason: String,
}

impl Selector {
    /// The one selector given; none or several is an error.
    pub fn parse(
        actor: Option<&str>,
        resource: Option<&str>,
        client_ip: Option<&str>,
    ) -> Result<Selector, SelectorError> {
        let err = |field, reason: &str| SelectorError { field, reason: reason.to_string() };
        for (field, value) in [("actor", actor), ("resource", resource), ("client_ip", client_ip)] {
            if value == Some("") {
                return Err(err(field, "empty"));
            }
        }
        let selector = match (actor, resource, client_ip) {
            (Some(actor), None, None) => Selector::Actor(actor.to_string()),
            (None, Some(resource), None) => match resource.split_once('/') {
                Some((kind, _)) if OWN_TYPES.contains(&kind) => {
                    return Err(err("resource", "entries of auditgate's own resources are never erased"));
                }
                Some((kind, id)) if !kind.is_empty() && !id.is_empty() => {
                    Selector::Resource { kind: kind.to_string(), id: id.to_string() }
                }
                _ => return Err(err("resource", "expected TYPE/ID, e.g. user/123")),
            },
            (None, None, Some(ip)) => Selector::ClientIp(ip.to_string()),
            (None, None, None) => return Err(err("selector", "give one of actor, resource or client_ip")),
            _ => return Err(err("selector", "give only one of actor, resource or client_ip")),
        };
        // The same checks the listing's filters make (length, a bad address).
        selector.filter()?;
        Ok(selector)
    }

    /// Refuses an address range wider than a /16 (IPv4) or a /48 (IPv6)
    /// unless `force` asks for it.
    pub fn check_width(&self, force: bool) -> Result<(), SelectorError> {
        match self.prefix_len() {
            Some(len) if !force && len < self.widest() => Err(SelectorError {
                field: "force",
                reason: format!(
                    "a range wider than a /{} erases the entries of whole networks; send \"force\": true to mean it",
                    self.widest()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The widest prefix erased without `force` for this address's family.
    fn widest(&self) -> u8 {
        match self.network() {
            Some(IpNet::V6(_)) => WIDEST_V6,
            _ => WIDEST_V4,
        }
    }

    /// An address selector's network (one address: /32 or /128).
    fn network(&self) -> Option<IpNet> {
        let Selector::ClientIp(ip) = self else { return None };
        ip.parse::<IpNet>().ok().or_else(|| ip.parse::<std::net::IpAddr>().ok().map(IpNet::from))
    }

    /// An address selector's prefix length.
    pub fn prefix_len(&self) -> Option<u8> {
        self.network().map(|net| net.prefix_len())
    }

    /// Whether a released hold's selector names what this erasure erases:
    /// the same actor or resource, or an address within its range. Such a
    /// hold's reason and selector are erased with the entries.
    pub fn names_hold(&self, hold: &Hold) -> bool {
        match self {
            Selector::Actor(name) => hold.actor.as_deref() == Some(name.as_str()),
            Selector::Resource { kind, id } => {
                hold.resource_type.as_deref() == Some(kind.as_str()) && hold.resource_id.as_deref() == Some(id.as_str())
            }
            Selector::ClientIp(_) => {
                let held = Selector::ClientIp(hold.client_ip.clone().unwrap_or_default()).network();
                match (self.network(), held) {
                    (Some(range), Some(held)) => range.contains(&held),
                    _ => false,
                }
            }
        }
    }

    /// The listing filter that finds the selected entries.
    pub fn filter(&self) -> Result<Filter, SelectorError> {
        let mut filter = Filter::default();
        let set = |filter: &mut Filter, field: &'static str, value: &str| {
            filter.set(field, value).map_err(|e| SelectorError { field, reason: e.reason })
        };
        match self {
            Selector::Actor(name) => set(&mut filter, "actor", name)?,
            Selector::Resource { kind, id } => {
                set(&mut filter, "resource_type", kind)?;
                set(&mut filter, "resource_id", id)?;
            }
            Selector::ClientIp(ip) => set(&mut filter, "client_ip", ip)?,
        }
        Ok(filter)
    }

    /// What the erasure's own entry says it selected: the kind, the value
    /// only for a resource (its type and id stay in the entries; a name or
    /// an address is what was erased), and an address range's prefix
    /// length.
    pub fn recorded(&self) -> Value {
        match self {
            Selector::Actor(_) => json!({"actor": "[erased]"}),
            Selector::Resource { kind, id } => json!({"resource": format!("{kind}/{id}")}),
            Selector::ClientIp(_) => json!({"client_ip": "[erased]", "prefix_len": self.prefix_len()}),
        }
    }

    /// The kind's name, as a body or the command line names it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Selector::Actor(_) => "actor",
            Selector::Resource { .. } => "resource",
            Selector::ClientIp(_) => "client_ip",
        }
    }
}

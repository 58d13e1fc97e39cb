//! Erasure of personal data (SPEC 7, "Erasure"): which entries a request
//! names (an actor, a resource, a client address), erasing them batch by
//! batch, and the trail entry that records the erasure without the values
//! it erased.

use serde_json::{Value, json};

use crate::entry::Chain;
use crate::hold::Hold;
use crate::identity::ActorSource;
use crate::policy::Change;
use crate::store::{Filter, Store, StoreError};

/// Entries one erasing transaction takes: writers wait for one such at most.
const BATCH: u32 = 500;

/// An erasure's own entry: its `action`, `resource_type` and `path` (the
/// query port's, also for the command line).
pub const ACTION: &str = "erase";
pub const RESOURCE_TYPE: &str = "erasure";
pub const PATH: &str = "/api/v1/erasures";

/// Whether `e` is an erasure's own entry, and so how many entries it
/// erases counts toward those `verify` allows to be erased.
pub fn is_record(e: &crate::entry::AuditEntry) -> bool {
    e.action == ACTION && e.resource_type == RESOURCE_TYPE && e.path == PATH
}

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

    /// What the erasure's own entry says it selected: the kind, and the
    /// value only for a resource (its type and id stay in the entries; a
    /// name or an address is what was erased).
    pub fn recorded(&self) -> Value {
        match self {
            Selector::Actor(_) => json!({"actor": "[erased]"}),
            Selector::Resource { kind, id } => json!({"resource": format!("{kind}/{id}")}),
            Selector::ClientIp(_) => json!({"client_ip": "[erased]"}),
        }
    }
}

/// What an erasure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Entries whose personal content was removed.
    pub erased: u64,
    /// Entries of chain version 1, left as they are: their hash covers
    /// their personal content.
    pub not_erasable: u64,
    /// Whether the store's files hold no earlier copy of what was erased
    /// (false: SQLite's WAL could not be emptied yet; its next checkpoints
    /// overwrite it).
    pub scrubbed: bool,
}

impl Report {
    /// One line for people.
    pub fn summary(&self) -> String {
        let mut line = format!("{} entries erased", self.erased);
        if self.not_erasable > 0 {
            line += &format!(
                "; {} written before chain version 2 kept their content (their hash covers it)",
                self.not_erasable
            );
        }
        if !self.scrubbed {
            line += "; the WAL still holds earlier copies until a checkpoint can empty it (readers kept it)";
        }
        line
    }
}

/// Why an erasure did not run.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("{} covers entries this erasure selects; nothing was erased (release the hold first)", .0.describe())]
    Held(Box<Hold>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an erasure will touch, found before anything is erased: the ids of
/// the selected entries still to erase, and how many of chain version 1
/// it must leave. Erasures' own entries are never erased (they hold no
/// erased value, and `verify` counts on them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ids: Vec<String>,
    pub not_erasable: u64,
}

/// The entries `selector` names that are not erased yet, oldest first.
/// Refused when an active legal hold covers any entry it names.
pub async fn plan(store: &Store, selector: &Selector) -> Result<Plan, EraseError> {
    let filter = selector.filter().expect("a parsed selector makes a filter");
    if let Some(hold) = crate::hold::covering(store, &filter).await? {
        return Err(EraseError::Held(Box::new(hold)));
    }
    let (mut cursor, mut plan) = (None::<String>, Plan::default());
    loop {
        let (page, more) = store.newer(&filter, cursor.as_deref(), BATCH).await?;
        for e in &page {
            if e.erased || e.resource_type == RESOURCE_TYPE {
                continue;
            }
            if e.chain_version.is_none() {
                plan.not_erasable += 1;
            } else {
                plan.ids.push(e.id.clone());
            }
        }
        match page.last() {
            Some(last) if more => cursor = Some(last.id.clone()),
            _ => break,
        }
    }
    Ok(plan)
}

/// Erases what `plan` names, `BATCH` entries a transaction, then scrubs
/// the store's files. Its entry (`entry`) must be in the store first:
/// `verify` fails when more entries are erased than erasures recorded.
pub async fn carry_out(store: &Store, plan: &Plan) -> Result<Report, StoreError> {
    let mut erased = 0;
    for ids in plan.ids.chunks(BATCH as usize) {
        erased += store.erase_entries(ids).await?;
    }
    let scrubbed = store.scrub().await?;
    Ok(Report { erased, not_erasable: plan.not_erasable, scrubbed })
}

/// The entry that records an erasure, written before it: who asked, what
/// kind of selector, how many entries (never the erased values).
pub fn entry(change: &Change<'_>, selector: &Selector, plan: &Plan, reason: Option<&str>) -> crate::entry::AuditEntry {
    let after = json!({
        "selector": selector.recorded(),
        "erased": plan.ids.len(),
        "not_erasable": plan.not_erasable,
        "reason": reason,
    });
    change.entry_of(RESOURCE_TYPE, None, None, Some(after))
}

/// `auditgate erase`: records the erasure in a chain of its own,
/// `<instance>-cli`, so that it never interleaves with a running
/// instance's (on a shared store the name is claimed as an instance's
/// is), then erases.
pub async fn erase_here(
    store: &Store,
    instance: &str,
    selector: &Selector,
    reason: Option<&str>,
    asked_by: &str,
) -> Result<Report, EraseError> {
    let chain_name = format!("{instance}-cli");
    let _claim = store.claim_instance(&chain_name).await?;
    let plan = plan(store, selector).await?;
    let change = Change {
        action: ACTION,
        actor: asked_by,
        actor_source: ActorSource::Anonymous,
        client_ip: "127.0.0.1".into(),
        method: "ERASE",
        path: PATH,
        status: 200,
        instance: &chain_name,
    };
    let mut chain = Chain::resume(store.last_hash(&chain_name).await?);
    store.insert_batch(&[chain.seal(entry(&change, selector, &plan, reason))]).await?;
    Ok(carry_out(store, &plan).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_selector_is_taken() {
        assert_eq!(Selector::parse(Some("alice"), None, None), Ok(Selector::Actor("alice".into())));
        assert_eq!(
            Selector::parse(None, Some("user/12/3"), None),
            Ok(Selector::Resource { kind: "user".into(), id: "12/3".into() })
        );
        assert_eq!(Selector::parse(None, None, Some("10.0.0.0/8")), Ok(Selector::ClientIp("10.0.0.0/8".into())));
        for (a, r, c, field) in [
            (None, None, None, "selector"),
            (Some("a"), Some("user/1"), None, "selector"),
            (None, Some("user"), None, "resource"),
            (None, Some("/1"), None, "resource"),
            (None, Some("user/"), None, "resource"),
            (None, None, Some("not an address"), "client_ip"),
            (Some(""), None, None, "actor"),
            (None, Some(""), None, "resource"),
            (None, None, Some(""), "client_ip"),
        ] {
            assert_eq!(Selector::parse(a, r, c).unwrap_err().field, field, "{a:?} {r:?} {c:?}");
        }
        // None and several are told apart.
        assert_eq!(Selector::parse(None, None, None).unwrap_err().reason, "give one of actor, resource or client_ip");
        let several = Selector::parse(Some("a"), None, Some("10.0.0.1")).unwrap_err().reason;
        assert_eq!(several, "give only one of actor, resource or client_ip");
        let long = "x".repeat(crate::store::MAX_FILTER_CHARS + 1);
        assert_eq!(Selector::parse(Some(&long), None, None).unwrap_err().field, "actor");
    }

    #[test]
    fn a_summary_says_what_was_left_and_why() {
        let report = |erased, not_erasable, scrubbed| Report { erased, not_erasable, scrubbed };
        assert_eq!(report(3, 0, true).summary(), "3 entries erased");
        assert_eq!(
            report(0, 2, true).summary(),
            "0 entries erased; 2 written before chain version 2 kept their content (their hash covers it)"
        );
        assert_eq!(
            report(1, 0, false).summary(),
            "1 entries erased; the WAL still holds earlier copies until a checkpoint can empty it (readers kept it)"
        );
        let json = serde_json::to_value(report(1, 2, false)).unwrap();
        assert_eq!(json, json!({"erased": 1, "not_erasable": 2, "scrubbed": false}));
    }

    #[test]
    fn the_recorded_selector_never_holds_an_erased_value() {
        let f = Selector::parse(Some("alice"), None, None).unwrap();
        assert_eq!(f.filter().unwrap().actor.as_deref(), Some("alice"));
        assert!(!f.recorded().to_string().contains("alice"));
        let ip = Selector::parse(None, None, Some("203.0.113.9")).unwrap();
        assert!(ip.filter().unwrap().client_ip.is_some());
        assert!(!ip.recorded().to_string().contains("203.0.113.9"));
        let r = Selector::parse(None, Some("user/7"), None).unwrap();
        let filter = r.filter().unwrap();
        assert_eq!((filter.resource_type.as_deref(), filter.resource_id.as_deref()), (Some("user"), Some("7")));
        assert_eq!(r.recorded(), json!({"resource": "user/7"}));
    }
}

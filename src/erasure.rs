//! Erasure of personal data (docs/personal-data.md): which entries a request
//! names (an actor, a resource, a client address), erasing them batch by
//! batch, and the trail entry that records the erasure without the values
//! it erased.

use serde_json::json;

use crate::entry::{Chain, ErasureSeal};
use crate::hold::Hold;
use crate::identity::ActorSource;
use crate::policy::Change;
use crate::store::{Filter, Store, StoreError};

/// Entries one erasing transaction takes: writers wait for one such at most.
const BATCH: u32 = 500;

pub use crate::entry::erasure_record::{ACTION, PATH, RESOURCE_TYPE, is_record};

pub use crate::model::selector::{OWN_TYPES, SELECTORS, Selector, SelectorError};

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
/// the selected entries still to erase, how many of chain version 1 it
/// must leave, and the released holds whose selector names what it erases
/// (their reason and selector are erased, and so are their entries).
/// Entries of auditgate's own resources are never selected (they are the
/// evidence of how the trail was kept, and `verify` counts on erasures').
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ids: Vec<String>,
    pub not_erasable: u64,
    pub holds: Vec<i64>,
}

impl Plan {
    /// Adds the entries `filter` selects that are not erased yet, skipping
    /// auditgate's own unless `own` (a named hold's entries).
    async fn add(&mut self, store: &Store, filter: &Filter, own: bool) -> Result<(), StoreError> {
        let mut cursor = None::<String>;
        loop {
            let (page, more) = store.newer(filter, cursor.as_deref(), BATCH).await?;
            for e in &page {
                if e.erased || is_record(e) || (!own && OWN_TYPES.contains(&e.resource_type.as_str())) {
                    continue;
                }
                if e.chain_version.is_none() {
                    self.not_erasable += 1;
                } else {
                    self.ids.push(e.id.clone());
                }
            }
            match page.last() {
                Some(last) if more => cursor = Some(last.id.clone()),
                _ => return Ok(()),
            }
        }
    }
}

/// The entries `selector` names that are not erased yet, oldest first,
/// then the entries of the released holds that name it. Refused when an
/// active legal hold covers any entry it names.
pub async fn plan(store: &Store, selector: &Selector) -> Result<Plan, EraseError> {
    let filter = selector.filter().expect("a parsed selector makes a filter");
    if let Some(hold) = crate::hold::covering(store, &filter).await? {
        return Err(EraseError::Held(Box::new(hold)));
    }
    let mut plan = Plan::default();
    plan.add(store, &filter, false).await?;
    for hold in store.holds(false).await? {
        if hold.released_at.is_none() || !selector.names_hold(&hold) {
            continue;
        }
        let mut entries = Filter::default();
        entries.set("resource_type", crate::hold::RESOURCE_TYPE).expect("a short value");
        entries.set("resource_id", &hold.id.to_string()).expect("a short value");
        plan.add(store, &entries, true).await?;
        plan.holds.push(hold.id);
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
    for hold in &plan.holds {
        store.erase_hold(*hold).await?;
    }
    let scrubbed = store.scrub().await?;
    Ok(Report { erased, not_erasable: plan.not_erasable, scrubbed })
}

/// The entry that records an erasure, written before it: who asked, what
/// kind of selector, how many entries (never the erased values). What
/// `verify` counts on (the selector's kind, an address range's prefix
/// length, the counts) is sealed in `erasure`, outside the personal
/// fields; `after` shows the same with the reason.
pub fn entry(
    change: &Change<'_>,
    selector: &Selector,
    plan: &Plan,
    reason: Option<&str>,
    forced: bool,
) -> crate::entry::AuditEntry {
    let after = json!({
        "selector": selector.recorded(),
        "erased": plan.ids.len(),
        "not_erasable": plan.not_erasable,
        "reason": reason,
    });
    let mut entry = change.entry_of(RESOURCE_TYPE, None, None, Some(after));
    entry.erasure = Some(ErasureSeal {
        erased: plan.ids.len() as u64,
        forced: forced && selector.prefix_len().is_some(),
        not_erasable: plan.not_erasable,
        prefix_len: selector.prefix_len(),
        resource: match selector {
            Selector::Resource { kind, id } => Some(format!("{kind}/{id}")),
            _ => None,
        },
        selector: selector.kind().to_string(),
    });
    entry
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
    force: bool,
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
    store.insert_batch(&[chain.seal(entry(&change, selector, &plan, reason, force))]).await?;
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
    fn a_range_wider_than_a_16_or_a_48_needs_force() {
        let ip = |v: &str| Selector::ClientIp(v.into());
        for (range, len) in [("10.1.0.0/16", 16), ("10.1.2.3", 32), ("2001:db8:1::/48", 48), ("::1", 128)] {
            assert_eq!(ip(range).check_width(false), Ok(()), "{range}");
            assert_eq!(ip(range).prefix_len(), Some(len));
        }
        for range in ["10.0.0.0/15", "0.0.0.0/0", "2001:db8::/47", "::/0"] {
            assert_eq!(ip(range).check_width(false).unwrap_err().field, "force", "{range}");
            assert_eq!(ip(range).check_width(true), Ok(()), "{range}");
        }
        let wide = ip("2001:db8::/47").check_width(false).unwrap_err().reason;
        assert!(wide.contains("/48"), "{wide}");
        assert!(ip("10.0.0.0/15").check_width(false).unwrap_err().reason.contains("/16"));
        assert_eq!(Selector::Actor("a".into()).check_width(false), Ok(()));
        assert_eq!(Selector::Actor("a".into()).prefix_len(), None);
    }

    #[test]
    fn auditgates_own_resources_are_never_selected_by_resource() {
        for kind in OWN_TYPES {
            let e = Selector::parse(None, Some(&format!("{kind}/1")), None).unwrap_err();
            assert_eq!(e.field, "resource", "{kind}");
        }
        assert!(Selector::parse(None, Some("audit_configurations/1"), None).is_ok());
    }

    #[test]
    fn a_hold_is_named_by_the_same_actor_or_resource_or_an_address_in_range() {
        let hold = |actor: Option<&str>, resource: Option<(&str, &str)>, ip: Option<&str>| Hold {
            id: 1,
            actor: actor.map(str::to_string),
            resource_type: resource.map(|r| r.0.to_string()),
            resource_id: resource.map(|r| r.1.to_string()),
            client_ip: ip.map(str::to_string),
            since: None,
            until: None,
            reason: "case".into(),
            created_at: String::new(),
            created_by: "ops".into(),
            released_at: None,
            released_by: None,
        };
        let zoe = Selector::Actor("zoe".into());
        assert!(zoe.names_hold(&hold(Some("zoe"), None, None)));
        assert!(!zoe.names_hold(&hold(Some("zoey"), None, None)));
        assert!(!zoe.names_hold(&hold(None, None, Some("10.0.0.1"))));
        let user = Selector::Resource { kind: "user".into(), id: "7".into() };
        assert!(user.names_hold(&hold(None, Some(("user", "7")), None)));
        assert!(!user.names_hold(&hold(None, Some(("user", "70")), None)));
        assert!(!user.names_hold(&hold(None, Some(("order", "7")), None)));
        let range = Selector::ClientIp("10.1.0.0/16".into());
        assert!(range.names_hold(&hold(None, None, Some("10.1.2.3"))));
        assert!(range.names_hold(&hold(None, None, Some("10.1.2.0/24"))));
        assert!(!range.names_hold(&hold(None, None, Some("10.0.0.0/8"))), "a wider hold is not within");
        assert!(!range.names_hold(&hold(None, None, Some("10.2.0.1"))));
        assert!(!range.names_hold(&hold(None, None, Some("[erased]"))));
        assert!(!range.names_hold(&hold(Some("zoe"), None, None)));
    }

    #[test]
    fn the_erasures_entry_seals_its_selector_and_counts() {
        let change = Change {
            action: ACTION,
            actor: "ops",
            actor_source: ActorSource::Token,
            client_ip: "127.0.0.1".into(),
            method: "POST",
            path: PATH,
            status: 200,
            instance: "gw-1",
        };
        let plan = Plan { ids: vec!["a".into(), "b".into()], not_erasable: 3, holds: vec![] };
        let range = Selector::ClientIp("10.0.0.0/8".into());
        let e = entry(&change, &range, &plan, Some("ticket 9"), true);
        let seal = e.erasure.clone().unwrap();
        let expected = ErasureSeal {
            erased: 2,
            forced: true,
            not_erasable: 3,
            prefix_len: Some(8),
            resource: None,
            selector: "client_ip".into(),
        };
        assert_eq!(seal, expected);
        assert!(is_record(&e));
        assert_eq!(e.after.as_ref().unwrap()["selector"], json!({"client_ip": "[erased]", "prefix_len": 8}));
        // `force` is only said of a range.
        let user = Selector::Resource { kind: "user".into(), id: "7".into() };
        let seal = entry(&change, &user, &plan, None, true).erasure.unwrap();
        assert_eq!(
            (seal.forced, seal.resource.as_deref(), seal.selector.as_str()),
            (false, Some("user/7"), "resource")
        );
        let seal = entry(&change, &Selector::Actor("zoe".into()), &plan, None, false).erasure.unwrap();
        assert_eq!((seal.selector.as_str(), seal.prefix_len, seal.resource.clone()), ("actor", None, None));
        assert!(!serde_json::to_string(&seal).unwrap().contains("zoe"));
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

//! The audit decision (SPEC 5) from an immutable, compiled set of active
//! configurations: no lock, no I/O, no allocation per request. Candidates
//! are found through a per-resource-type index, in rank order (priority,
//! then age), so a request looks only at configurations that can match it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::model::{AuditConfiguration, Capture, Kind, parse_net};

/// What the decision is about.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub action: &'a str,
    /// Mutations and custom actions; not `read` or `login`.
    pub is_mutation: bool,
    pub resource_type: &'a str,
    pub actor: &'a str,
    pub ip: IpAddr,
}

/// Whether and how a request is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Skip,
    Audit {
        capture: Capture,
        /// The include configuration that decided; `None` when no include
        /// configuration is active and every mutation is audited.
        configuration: Option<Arc<str>>,
    },
}

/// One dimension of a configuration.
#[derive(Debug)]
enum Dim<T> {
    All,
    Listed(T),
    Nothing,
}

impl<T> Dim<T> {
    fn new(all: Option<bool>, list: T, empty: bool) -> Dim<T> {
        match (all, empty) {
            (Some(true), _) | (None, true) => Dim::All,
            (Some(false), true) => Dim::Nothing,
            (_, false) => Dim::Listed(list),
        }
    }
}

#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    kind: Kind,
    capture: Capture,
    actions: Dim<HashSet<String>>,
    types: Dim<HashSet<String>>,
    users: Dim<HashSet<String>>,
    ips: Dim<Vec<IpNet>>,
    exclude_actions: HashSet<String>,
    exclude_types: HashSet<String>,
    exclude_users: HashSet<String>,
    exclude_ips: Vec<IpNet>,
}

impl Rule {
    fn new(c: &AuditConfiguration) -> Rule {
        let set = |v: &[String]| v.iter().cloned().collect::<HashSet<_>>();
        let nets = |v: &[String]| v.iter().filter_map(|s| parse_net(s)).collect::<Vec<_>>();
        Rule {
            name: c.name.as_str().into(),
            kind: c.configuration_type,
            capture: c.capture,
            actions: Dim::new(c.audit_all_actions, set(&c.audit_actions), c.audit_actions.is_empty()),
            types: Dim::new(
                c.audit_all_resource_types,
                set(&c.audit_resource_types),
                c.audit_resource_types.is_empty(),
            ),
            users: Dim::new(c.audit_all_users, set(&c.audit_users), c.audit_users.is_empty()),
            ips: Dim::new(c.audit_all_ips, nets(&c.audit_ips), c.audit_ips.is_empty()),
            exclude_actions: set(&c.exclude_actions),
            exclude_types: set(&c.exclude_resource_types),
            exclude_users: set(&c.exclude_users),
            exclude_ips: nets(&c.exclude_ips),
        }
    }

    /// All four dimensions match.
    fn matches(&self, q: &Question<'_>) -> bool {
        let action = match &self.actions {
            Dim::All => q.is_mutation,
            Dim::Listed(names) => names.contains(q.action),
            Dim::Nothing => false,
        };
        action
            && match &self.types {
                Dim::All => true,
                Dim::Listed(types) => types.contains(q.resource_type),
                Dim::Nothing => false,
            }
            && match &self.users {
                Dim::All => true,
                Dim::Listed(users) => users.contains(q.actor),
                Dim::Nothing => false,
            }
            && match &self.ips {
                Dim::All => true,
                Dim::Listed(nets) => nets.iter().any(|n| n.contains(&q.ip)),
                Dim::Nothing => false,
            }
    }

    fn has_exclusions(&self) -> bool {
        !(self.exclude_actions.is_empty()
            && self.exclude_types.is_empty()
            && self.exclude_users.is_empty()
            && self.exclude_ips.is_empty())
    }

    /// One of the `exclude_*` lists hits.
    fn excludes(&self, q: &Question<'_>) -> bool {
        self.exclude_actions.contains(q.action)
            || self.exclude_types.contains(q.resource_type)
            || self.exclude_users.contains(q.actor)
            || self.exclude_ips.iter().any(|n| n.contains(&q.ip))
    }
}

/// Rule indexes in rank order, by resource type and for any type.
#[derive(Debug, Default)]
struct Index {
    by_type: HashMap<String, Vec<u32>>,
    any_type: Vec<u32>,
}

impl Index {
    fn add(&mut self, rank: u32, rule: &Rule) {
        match &rule.types {
            Dim::All => self.any_type.push(rank),
            Dim::Listed(types) => {
                for t in types {
                    self.by_type.entry(t.clone()).or_default().push(rank);
                }
            }
            Dim::Nothing => {}
        }
    }

    /// The candidates for `resource_type`, in rank order.
    fn candidates<'a>(&'a self, resource_type: &str) -> impl Iterator<Item = u32> + 'a {
        let typed = self.by_type.get(resource_type).map_or(&[][..], Vec::as_slice);
        Merge { a: typed, b: &self.any_type }
    }

    fn is_empty(&self) -> bool {
        self.by_type.is_empty() && self.any_type.is_empty()
    }
}

/// Two ascending lists merged.
struct Merge<'a> {
    a: &'a [u32],
    b: &'a [u32],
}

impl Iterator for Merge<'_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        let take_a = match (self.a.first(), self.b.first()) {
            (Some(x), Some(y)) => x < y,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        let list = if take_a { &mut self.a } else { &mut self.b };
        let (first, rest) = list.split_first()?;
        *list = rest;
        Some(*first)
    }
}

/// The active configurations, compiled.
#[derive(Debug, Default)]
pub struct Compiled {
    rules: Vec<Rule>,
    /// Exclude configurations and includes with `exclude_*` lists.
    guards: Index,
    includes: Index,
    any_include: bool,
    /// Some active configuration names `read` / `login`.
    reads: bool,
    logins: bool,
}

impl Compiled {
    /// Compiles the active configurations among `configs`.
    pub fn new(configs: &[AuditConfiguration]) -> Compiled {
        let mut active: Vec<&AuditConfiguration> = configs.iter().filter(|c| c.is_active).collect();
        // Highest priority first; ties go to the oldest.
        active.sort_by(|a, b| {
            b.priority.cmp(&a.priority).then_with(|| a.created_at.cmp(&b.created_at)).then(a.id.cmp(&b.id))
        });
        let mut compiled = Compiled::default();
        for (rank, c) in active.into_iter().enumerate() {
            let rule = Rule::new(c);
            let rank = u32::try_from(rank).expect("fewer than 2^32 configurations");
            compiled.reads |= c.audit_actions.iter().any(|a| a == "read");
            compiled.logins |= c.audit_actions.iter().any(|a| a == "login");
            if rule.kind == Kind::Exclude || rule.has_exclusions() {
                compiled.guards.add(rank, &rule);
            }
            if rule.kind == Kind::Include {
                compiled.any_include = true;
                compiled.includes.add(rank, &rule);
            }
            compiled.rules.push(rule);
        }
        compiled
    }

    /// The decision for one request (SPEC 5, steps 1–5).
    pub fn decide(&self, q: &Question<'_>) -> Decision {
        if !self.guards.is_empty() {
            for rank in self.guards.candidates(q.resource_type) {
                let rule = &self.rules[rank as usize];
                if rule.matches(q) && (rule.kind == Kind::Exclude || rule.excludes(q)) {
                    return Decision::Skip;
                }
            }
        }
        if !self.any_include {
            return if q.is_mutation {
                Decision::Audit { capture: Capture::Diff, configuration: None }
            } else {
                Decision::Skip
            };
        }
        for rank in self.includes.candidates(q.resource_type) {
            let rule = &self.rules[rank as usize];
            if rule.matches(q) {
                return Decision::Audit { capture: rule.capture, configuration: Some(rule.name.clone()) };
            }
        }
        Decision::Skip
    }

    /// Whether any read can be recorded (else reads skip classification).
    pub fn audits_reads(&self) -> bool {
        self.reads
    }

    /// Whether any login can be recorded.
    pub fn audits_logins(&self) -> bool {
        self.logins
    }

    /// How many active configurations were compiled.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

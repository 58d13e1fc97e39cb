//! The audit decision (docs/rules.md) from an immutable, compiled set of active
//! configurations: no lock, no I/O, and no allocation per request up to
//! 4,096 configurations.
//!
//! Configurations are ranked (priority, then age) and each dimension is
//! compiled into bitsets over ranks: for every value named in a list, the
//! configurations naming it, and the configurations that take every value.
//! A decision looks up the request's action, type and actor once each and
//! combines the sets a word (64 configurations) at a time, so its cost grows
//! with the number of configurations / 64, whatever their shape.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::identity::Actor;
use crate::model::configuration::{AuditConfiguration, Capture, Kind, parse_net};
use crate::resource::Action;

/// What the decision is about.
#[derive(Debug, Clone, Copy)]
pub struct Question<'a> {
    pub action: &'a str,
    /// Mutations and custom actions; not `read` or `login`.
    pub is_mutation: bool,
    pub resource_type: &'a str,
    pub actor: &'a str,
    /// Whether something vouched for `actor` (`actor_verified`): only a
    /// verified name can match an exclusion (docs/rules.md).
    pub verified: bool,
    pub ip: IpAddr,
}

impl<'a> Question<'a> {
    /// The question for a classified request by `actor`.
    pub fn new(action: &'a Action, resource_type: &'a str, actor: &'a Actor, ip: IpAddr) -> Question<'a> {
        Question {
            action: action.as_str(),
            is_mutation: action.is_mutation(),
            resource_type,
            actor: &actor.name,
            verified: actor.verified,
            ip,
        }
    }
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

/// A set of configuration ranks.
#[derive(Debug, Clone, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn with_len(words: usize) -> Bits {
        Bits(vec![0; words])
    }

    fn set(&mut self, rank: usize) {
        self.0[rank / 64] |= 1 << (rank % 64);
    }

    fn word(&self, w: usize) -> u64 {
        self.0.get(w).copied().unwrap_or(0)
    }
}

/// One dimension of every configuration: who takes all values, and for
/// each named value who names it.
#[derive(Debug, Default)]
struct Dimension {
    all: Bits,
    named: HashMap<String, Bits>,
}

impl Dimension {
    fn with_len(words: usize) -> Dimension {
        Dimension { all: Bits::with_len(words), named: HashMap::new() }
    }

    /// Adds configuration `rank`: `all` (flag and list per docs/rules.md) or the
    /// values of `list`.
    fn add(&mut self, rank: usize, flag: Option<bool>, list: &[String], words: usize) {
        match scope(flag, list) {
            Scope::All => self.all.set(rank),
            Scope::Nothing => {}
            Scope::Listed => self.name(rank, list, words),
        }
    }

    fn name(&mut self, rank: usize, list: &[String], words: usize) {
        for value in list {
            self.named.entry(value.clone()).or_insert_with(|| Bits::with_len(words)).set(rank);
        }
    }

    fn lookup(&self, value: &str) -> Option<&Bits> {
        self.named.get(value)
    }
}

/// What an `audit_*` list and its `audit_all_*` flag take (docs/rules.md): an
/// explicit `true` everything; an absent flag everything when the list is
/// empty; an explicit `false` with an empty list nothing; else the list.
enum Scope {
    All,
    Nothing,
    Listed,
}

fn scope(flag: Option<bool>, list: &[String]) -> Scope {
    match (flag, list.is_empty()) {
        (Some(true), _) | (None, true) => Scope::All,
        (Some(false), true) => Scope::Nothing,
        (_, false) => Scope::Listed,
    }
}

/// Address lists: for each distinct block, the configurations naming it.
#[derive(Debug, Default)]
struct Addresses {
    all: Bits,
    nets: Vec<(IpNet, Bits)>,
}

impl Addresses {
    /// Adds configuration `rank`, like `Dimension::add`.
    fn add(&mut self, rank: usize, flag: Option<bool>, list: &[String], words: usize) {
        match scope(flag, list) {
            Scope::All => self.all.set(rank),
            Scope::Nothing => {}
            Scope::Listed => self.name(rank, list, words),
        }
    }

    fn name(&mut self, rank: usize, list: &[String], words: usize) {
        for net in list.iter().filter_map(|s| parse_net(s)) {
            let at = match self.nets.iter().position(|(n, _)| *n == net) {
                Some(i) => i,
                None => {
                    self.nets.push((net, Bits::with_len(words)));
                    self.nets.len() - 1
                }
            };
            self.nets[at].1.set(rank);
        }
    }

    /// Writes the set of configurations taking `ip` into `out`.
    fn fill(&self, ip: &IpAddr, out: &mut [u64]) {
        for (w, o) in out.iter_mut().enumerate() {
            *o = self.all.word(w);
        }
        for (net, bits) in &self.nets {
            if net.contains(ip) {
                for (o, b) in out.iter_mut().zip(&bits.0) {
                    *o |= b;
                }
            }
        }
    }
}

/// Configurations a decision can combine on the stack (64 words).
const STACK_WORDS: usize = 64;

/// The active configurations, compiled.
#[derive(Debug, Default)]
pub struct Compiled {
    /// By rank: name and capture of each configuration.
    names: Vec<Arc<str>>,
    captures: Vec<Capture>,
    words: usize,
    /// Its `all`: who takes every mutation and custom action.
    actions: Dimension,
    types: Dimension,
    users: Dimension,
    ips: Addresses,
    /// `exclude` configurations.
    excluders: Bits,
    include: Bits,
    exclude_actions: Dimension,
    exclude_types: Dimension,
    exclude_users: Dimension,
    exclude_ips: Addresses,
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
        let words = active.len().div_ceil(64);
        let mut c = Compiled {
            words,
            actions: Dimension::with_len(words),
            types: Dimension::with_len(words),
            users: Dimension::with_len(words),
            ips: Addresses { all: Bits::with_len(words), nets: Vec::new() },
            excluders: Bits::with_len(words),
            include: Bits::with_len(words),
            exclude_actions: Dimension::with_len(words),
            exclude_types: Dimension::with_len(words),
            exclude_users: Dimension::with_len(words),
            exclude_ips: Addresses { all: Bits::with_len(words), nets: Vec::new() },
            ..Compiled::default()
        };
        for (rank, cfg) in active.into_iter().enumerate() {
            c.names.push(cfg.name.as_str().into());
            c.captures.push(cfg.capture);
            c.reads |= cfg.audit_actions.iter().any(|a| a == "read");
            c.logins |= cfg.audit_actions.iter().any(|a| a == "login");
            // `all` of the action dimension means every mutation and custom
            // action; `read` and `login` only ever match by name.
            c.actions.add(rank, cfg.audit_all_actions, &cfg.audit_actions, words);
            c.types.add(rank, cfg.audit_all_resource_types, &cfg.audit_resource_types, words);
            c.users.add(rank, cfg.audit_all_users, &cfg.audit_users, words);
            c.ips.add(rank, cfg.audit_all_ips, &cfg.audit_ips, words);
            match cfg.configuration_type {
                Kind::Exclude => c.excluders.set(rank),
                Kind::Include => c.include.set(rank),
            }
            c.exclude_actions.name(rank, &cfg.exclude_actions, words);
            c.exclude_types.name(rank, &cfg.exclude_resource_types, words);
            c.exclude_users.name(rank, &cfg.exclude_users, words);
            c.exclude_ips.name(rank, &cfg.exclude_ips, words);
        }
        c
    }

    /// The decision for one request (docs/rules.md, steps 1–5).
    pub fn decide(&self, q: &Question<'_>) -> Decision {
        self.explain(q).0
    }

    /// The decision, and the exclude configuration (or include with a
    /// hitting `exclude_*` list) that stopped the request, if one did.
    ///
    /// An unverified actor's name can add entries, never remove them: for
    /// the exclusion step a user list counts only a verified name (an
    /// `all` still matches anyone), and `exclude_users` never hits an
    /// unverified one.
    pub fn explain(&self, q: &Question<'_>) -> (Decision, Option<Arc<str>>) {
        let empty = Bits::default();
        let action = self.actions.lookup(q.action).unwrap_or(&empty);
        let kind = self.types.lookup(q.resource_type).unwrap_or(&empty);
        let user = self.users.lookup(q.actor).unwrap_or(&empty);
        let (vouched_user, x_user) =
            if q.verified { (user, self.exclude_users.lookup(q.actor).unwrap_or(&empty)) } else { (&empty, &empty) };
        let x_action = self.exclude_actions.lookup(q.action).unwrap_or(&empty);
        let x_type = self.exclude_types.lookup(q.resource_type).unwrap_or(&empty);
        let mutations = if q.is_mutation { u64::MAX } else { 0 };
        let (mut ips_stack, mut x_ips_stack) = ([0u64; STACK_WORDS], [0u64; STACK_WORDS]);
        let (mut ips_heap, mut x_ips_heap) = (Vec::new(), Vec::new());
        let (ips, x_ips) = if self.words <= STACK_WORDS {
            (&mut ips_stack[..self.words], &mut x_ips_stack[..self.words])
        } else {
            ips_heap.resize(self.words, 0);
            x_ips_heap.resize(self.words, 0);
            (&mut ips_heap[..], &mut x_ips_heap[..])
        };
        self.ips.fill(&q.ip, ips);
        self.exclude_ips.fill(&q.ip, x_ips);
        let mut first_include = None;
        let mut any_include = false;
        for w in 0..self.words {
            let others = (self.actions.all.word(w) & mutations | action.word(w))
                & (self.types.all.word(w) | kind.word(w))
                & ips[w];
            let matching = others & (self.users.all.word(w) | user.word(w));
            let vouched = others & (self.users.all.word(w) | vouched_user.word(w));
            let excluded = self.excluders.word(w) | x_action.word(w) | x_type.word(w) | x_user.word(w) | x_ips[w];
            // Step 2: a matching configuration that excludes wins.
            let stopped = vouched & excluded;
            if stopped != 0 {
                let rank = w * 64 + stopped.trailing_zeros() as usize;
                return (Decision::Skip, Some(self.names[rank].clone()));
            }
            any_include |= self.include.word(w) != 0;
            let included = matching & self.include.word(w);
            if first_include.is_none() && included != 0 {
                first_include = Some(w * 64 + included.trailing_zeros() as usize);
            }
        }
        // Step 3: no include configuration at all.
        if !any_include {
            let default = Decision::Audit { capture: Capture::Diff, configuration: None };
            return (if q.is_mutation { default } else { Decision::Skip }, None);
        }
        // Step 4: the highest-ranked matching include, or nothing.
        let decision = match first_include {
            Some(rank) => {
                Decision::Audit { capture: self.captures[rank], configuration: Some(self.names[rank].clone()) }
            }
            None => Decision::Skip,
        };
        (decision, None)
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
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

use std::collections::HashSet;
use std::net::IpAddr;

use proptest::prelude::*;
use serde_json::json;

use super::*;

fn actions() -> HashSet<String> {
    known_actions(["approve"])
}

fn config(body: serde_json::Value) -> AuditConfiguration {
    let mut c = AuditConfiguration::new();
    c.apply(&body, &actions()).unwrap();
    c
}

/// A question about a verified actor.
fn ask<'a>(action: &'a str, resource_type: &'a str, actor: &'a str, ip: &str) -> Question<'a> {
    Question {
        action,
        is_mutation: !matches!(action, "read" | "login"),
        resource_type,
        actor,
        verified: true,
        ip: ip.parse().unwrap(),
    }
}

/// The same question about an actor nothing vouched for.
fn unverified(q: Question<'_>) -> Question<'_> {
    Question { verified: false, ..q }
}

fn credited(d: &Decision) -> Option<&str> {
    match d {
        Decision::Audit { configuration, .. } => configuration.as_deref(),
        Decision::Skip => None,
    }
}

#[test]
fn the_four_examples_of_spec_5_do_what_their_names_say() {
    let user_changes =
        Compiled::new(&[config(json!({"name": "Audit All User Changes", "configuration_type": "include",
        "is_active": true, "audit_actions": ["create", "update", "delete"], "audit_resource_types": ["user"],
        "audit_all_users": true, "audit_all_ips": true}))]);
    assert_eq!(
        credited(&user_changes.decide(&ask("update", "user", "bob", "10.1.1.1"))),
        Some("Audit All User Changes")
    );
    assert_eq!(user_changes.decide(&ask("update", "order", "bob", "10.1.1.1")), Decision::Skip);
    assert_eq!(user_changes.decide(&ask("read", "user", "bob", "10.1.1.1")), Decision::Skip);

    let admin = Compiled::new(&[config(json!({"name": "Admin Actions Only", "audit_actions": ["create", "update",
        "delete"], "audit_all_users": false, "audit_users": ["admin-user-id"], "audit_all_resource_types": true}))]);
    assert_eq!(credited(&admin.decide(&ask("delete", "order", "admin-user-id", "::1"))), Some("Admin Actions Only"));
    assert_eq!(admin.decide(&ask("delete", "order", "bob", "::1")), Decision::Skip);
    assert_eq!(admin.decide(&ask("delete", "order", "anonymous", "::1")), Decision::Skip);

    let system =
        Compiled::new(&[config(json!({"name": "Exclude System Models", "exclude_resource_types": ["session",
        "logentry"], "audit_all_actions": true, "audit_all_users": true}))]);
    assert_eq!(system.decide(&ask("create", "session", "bob", "10.0.0.1")), Decision::Skip);
    assert_eq!(system.decide(&ask("delete", "logentry", "bob", "10.0.0.1")), Decision::Skip);
    assert_eq!(credited(&system.decide(&ask("create", "user", "bob", "10.0.0.1"))), Some("Exclude System Models"));

    let office = Compiled::new(&[config(json!({"name": "Office IPs Only", "audit_all_ips": false,
        "audit_ips": ["192.168.1.0/24", "10.0.0.0/8"], "audit_all_actions": true}))]);
    assert_eq!(credited(&office.decide(&ask("update", "user", "x", "192.168.1.77"))), Some("Office IPs Only"));
    assert_eq!(credited(&office.decide(&ask("approve", "user", "x", "10.200.0.1"))), Some("Office IPs Only"));
    assert_eq!(office.decide(&ask("update", "user", "x", "192.168.2.1")), Decision::Skip);
    assert_eq!(office.decide(&ask("update", "user", "x", "::ffff:172.16.0.1")), Decision::Skip);
}

#[test]
fn a_reload_that_read_an_older_version_never_replaces_a_newer_one() {
    let policy = Policy::empty();
    let users = config(json!({"name": "Users", "audit_resource_types": ["user"]}));
    let orders = config(json!({"name": "Orders", "audit_resource_types": ["order"]}));
    assert!(policy.install(1, std::slice::from_ref(&users)));
    assert!(policy.install(2, &[users.clone(), orders]));
    // The refresh timer read version 1 before the change; it finishes last.
    assert!(!policy.install(1, std::slice::from_ref(&users)));
    assert_eq!(policy.version(), 2);
    assert_eq!(policy.current().len(), 2);
    assert_eq!(credited(&policy.current().decide(&ask("create", "order", "bob", "::1"))), Some("Orders"));
    // The same version again (a refresh racing a reload) is taken as it is.
    assert!(policy.install(2, &[users]));
    assert_eq!(policy.current().len(), 1);
}

#[test]
fn an_unverified_name_cannot_switch_auditing_off() {
    // The reproduction of issue 8: an exclusion for the sync service.
    let by_config = Compiled::new(&[config(json!({"name": "Not the sync job", "configuration_type": "exclude",
        "audit_all_users": false, "audit_users": ["svc-sync"]}))]);
    let by_list = Compiled::new(&[config(json!({"name": "All but sync", "exclude_users": ["svc-sync"]}))]);
    for compiled in [&by_config, &by_list] {
        let q = ask("update", "user", "svc-sync", "10.0.0.1");
        assert_eq!(compiled.decide(&q), Decision::Skip);
        assert!(matches!(compiled.decide(&unverified(q)), Decision::Audit { .. }));
    }
    // An exclusion that names no user still stops anyone, verified or not.
    let sessions = Compiled::new(&[config(json!({"name": "s", "exclude_resource_types": ["session"]}))]);
    assert_eq!(sessions.decide(&unverified(ask("update", "session", "bob", "10.0.0.1"))), Decision::Skip);
    let (decision, by) = by_config.explain(&ask("update", "user", "svc-sync", "10.0.0.1"));
    assert_eq!((decision, by.as_deref()), (Decision::Skip, Some("Not the sync job")));
    // An include naming a user still takes an unverified name (it adds entries).
    let admin = Compiled::new(&[config(json!({"name": "Admins", "audit_users": ["root"]}))]);
    assert_eq!(credited(&admin.decide(&unverified(ask("delete", "order", "root", "::1")))), Some("Admins"));
}

#[test]
fn flags_follow_their_lists_unless_given() {
    // Absent flag, empty list: everything. Explicit false, empty list: nothing.
    let everything = Compiled::new(&[config(json!({"name": "a"}))]);
    assert!(matches!(everything.decide(&ask("update", "t", "u", "1.2.3.4")), Decision::Audit { .. }));
    let nothing = Compiled::new(&[config(json!({"name": "a", "audit_all_users": false}))]);
    assert_eq!(nothing.decide(&ask("update", "t", "u", "1.2.3.4")), Decision::Skip);
    // Explicit true ignores the list.
    let all = Compiled::new(&[config(json!({"name": "a", "audit_all_users": true, "audit_users": ["x"]}))]);
    assert!(matches!(all.decide(&ask("update", "t", "u", "1.2.3.4")), Decision::Audit { .. }));
}

#[test]
fn reads_and_logins_need_naming_and_inactive_configurations_are_ignored() {
    let all = Compiled::new(&[config(json!({"name": "all", "audit_all_actions": true}))]);
    assert_eq!(all.decide(&ask("read", "user", "u", "1.1.1.1")), Decision::Skip);
    assert_eq!(all.decide(&ask("login", "session", "u", "1.1.1.1")), Decision::Skip);
    assert!(!all.audits_reads());
    let reads =
        Compiled::new(&[config(json!({"name": "reads", "audit_actions": ["read", "login"], "capture": "metadata"}))]);
    assert!(reads.audits_reads() && reads.audits_logins());
    assert_eq!(
        reads.decide(&ask("read", "user", "u", "1.1.1.1")),
        Decision::Audit { capture: Capture::Metadata, configuration: Some("reads".into()) }
    );
    let inactive = Compiled::new(&[config(json!({"name": "off", "is_active": false, "audit_resource_types": ["x"]}))]);
    assert_eq!(
        inactive.decide(&ask("update", "user", "u", "1.1.1.1")),
        Decision::Audit { capture: Capture::Diff, configuration: None }
    );
    let exclude_everything = Compiled::new(&[config(json!({"name": "stop", "configuration_type": "exclude"}))]);
    assert_eq!(exclude_everything.decide(&ask("update", "user", "u", "1.1.1.1")), Decision::Skip);
}

#[test]
fn validation_names_the_field() {
    let err = |body: serde_json::Value| AuditConfiguration::new().apply(&body, &actions()).unwrap_err().field;
    assert_eq!(err(json!({"name": "a", "colour": "red"})), "colour");
    assert_eq!(err(json!({"name": "a", "audit_actions": ["update", "frobnicate"]})), "audit_actions");
    assert_eq!(err(json!({"name": "a", "exclude_actions": "update"})), "exclude_actions");
    assert_eq!(err(json!({"name": "a", "audit_ips": ["10.0.0.0/33"]})), "audit_ips");
    assert_eq!(err(json!({"name": "a", "exclude_ips": ["not-an-ip"]})), "exclude_ips");
    assert_eq!(err(json!({"name": "a", "priority": "high"})), "priority");
    assert_eq!(err(json!({"name": "a", "is_active": 1})), "is_active");
    assert_eq!(err(json!({"name": "a", "capture": "everything"})), "capture");
    assert_eq!(err(json!({"name": "a", "configuration_type": "maybe"})), "configuration_type");
    assert_eq!(err(json!({"name": ""})), "name");
    assert_eq!(err(json!({"description": "no name"})), "name");
    assert_eq!(err(json!(["not", "an", "object"])), "body");
    // Custom actions from the rules are actions; read-only fields are ignored.
    let c = config(json!({"name": "a", "audit_actions": ["approve"], "id": 9, "created_at": "x", "source": "file"}));
    assert_eq!((c.id, c.source, c.created_at.as_str()), (0, Source::Api, ""));
}

#[test]
fn the_seed_file_names_file_line_and_field() {
    let file = std::path::Path::new("rules/audit.toml");
    let good = "[[configuration]]\nname = \"Audit All User Changes\"\naudit_actions = [\"create\", \"update\", \"delete\"]\naudit_resource_types = [\"user\"]\n";
    let seeded = parse_seed(file, good, &actions()).unwrap();
    assert_eq!(seeded.len(), 1);
    assert_eq!((seeded[0].source, seeded[0].audit_resource_types.clone()), (Source::File, vec!["user".to_string()]));
    let bad = "[[configuration]]\nname = \"x\"\n\naudit_ips = [\"10.0.0.0/40\"]\n";
    let e = parse_seed(file, bad, &actions()).unwrap_err();
    assert_eq!(e.line, 4);
    assert!(e.to_string().starts_with("rules/audit.toml:4: audit_ips:"), "{e}");
    let unknown = "[[configuration]]\nname = \"x\"\nwho = 1\n";
    assert!(parse_seed(file, unknown, &actions()).unwrap_err().to_string().contains(":3: who:"));
    let twice = "[[configuration]]\nname = \"x\"\n[[configuration]]\nname = \"x\"\n";
    assert_eq!(parse_seed(file, twice, &actions()).unwrap_err().line, 3);
    for (wrong, expected) in [
        ("[[configuration]]\nname = \"x\"\npriority = \"high\"\n", "rules/audit.toml:3: priority:"),
        ("[[configuration]]\nname = \"x\"\n\naudit_actions = \"update\"\n", "rules/audit.toml:4: audit_actions:"),
        ("configuration = 3\n", "rules/audit.toml:1: configuration: invalid type: integer"),
    ] {
        let e = parse_seed(file, wrong, &actions()).unwrap_err().to_string();
        assert!(e.starts_with(expected), "{e} should start with {expected}");
    }
    let nameless = "[[configuration]]\npriority = 2\n";
    assert!(parse_seed(file, nameless, &actions()).unwrap_err().to_string().contains("name: is required"));
}

// Property tests over small random worlds, so that matches are frequent.

const ACTIONS: [&str; 5] = ["create", "update", "delete", "read", "login"];
const TYPES: [&str; 3] = ["user", "order", "session"];
const USERS: [&str; 3] = ["alice", "bob", "anonymous"];
const IPS: [&str; 3] = ["10.0.0.1", "192.168.1.5", "2001:db8::1"];
const NETS: [&str; 3] = ["10.0.0.0/8", "192.168.1.5", "2001:db8::/32"];

fn subset(all: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(all, 0..=all.len()).prop_map(|v| v.into_iter().map(str::to_string).collect())
}

fn flag() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![Just(None), Just(Some(true)), Just(Some(false))]
}

prop_compose! {
    fn arb_config(n: usize)(
        exclude in prop::bool::weighted(0.2),
        active in prop::bool::weighted(0.85),
        priority in 0i64..4,
        lists in (subset(&ACTIONS), subset(&TYPES), subset(&USERS), subset(&NETS)),
        flags in (flag(), flag(), flag(), flag()),
        excludes in (subset(&ACTIONS[..2]), subset(&TYPES[2..]), subset(&USERS[..1]), subset(&NETS[1..2])),
        with_excludes in prop::bool::weighted(0.3),
    ) -> AuditConfiguration {
        let mut c = AuditConfiguration::new();
        c.id = n as i64 + 1;
        c.name = format!("c{n}");
        c.created_at = format!("2026-01-01T00:00:{n:02}Z");
        c.configuration_type = if exclude { Kind::Exclude } else { Kind::Include };
        c.is_active = active;
        c.priority = priority;
        (c.audit_actions, c.audit_resource_types, c.audit_users, c.audit_ips) = lists;
        (c.audit_all_actions, c.audit_all_resource_types, c.audit_all_users, c.audit_all_ips) = flags;
        if with_excludes {
            (c.exclude_actions, c.exclude_resource_types, c.exclude_users, c.exclude_ips) = excludes;
        }
        c
    }
}

fn arb_configs() -> impl Strategy<Value = Vec<AuditConfiguration>> {
    (0usize..6).prop_flat_map(|n| (0..n).map(arb_config).collect::<Vec<_>>())
}

/// Enough configurations to span several 64-bit words of the bitsets.
fn many_configs() -> impl Strategy<Value = Vec<AuditConfiguration>> {
    (60usize..200).prop_flat_map(|n| (0..n).map(arb_config).collect::<Vec<_>>())
}

fn every_question() -> Vec<Question<'static>> {
    let mut out = Vec::new();
    for a in ACTIONS {
        for t in TYPES {
            for u in USERS {
                for ip in IPS {
                    out.push(ask(a, t, u, ip));
                    out.push(unverified(ask(a, t, u, ip)));
                }
            }
        }
    }
    out
}

/// The definition, written the slow and obvious way.
fn matches(c: &AuditConfiguration, q: &Question<'_>) -> bool {
    matches_naming(c, q, true)
}

/// Whether `c` matches `q`; with `by_name` false, a user list matches no
/// name (only an `all`).
fn matches_naming(c: &AuditConfiguration, q: &Question<'_>, by_name: bool) -> bool {
    fn dim(all: Option<bool>, list: &[String], hit: impl Fn(&String) -> bool) -> bool {
        match (all, list.is_empty()) {
            (Some(true), _) | (None, true) => true,
            (Some(false), true) => false,
            (_, false) => list.iter().any(hit),
        }
    }
    let action = match (c.audit_all_actions, c.audit_actions.is_empty()) {
        (Some(true), _) | (None, true) => q.is_mutation,
        (Some(false), true) => false,
        (_, false) => c.audit_actions.iter().any(|a| a == q.action),
    };
    let ip: IpAddr = q.ip;
    action
        && dim(c.audit_all_resource_types, &c.audit_resource_types, |t| t == q.resource_type)
        && dim(c.audit_all_users, &c.audit_users, |u| by_name && u == q.actor)
        && dim(c.audit_all_ips, &c.audit_ips, |n| parse_net(n).unwrap().contains(&ip))
}

/// docs/rules.md: only a verified actor's name can match an exclusion.
fn excluded_by(c: &AuditConfiguration, q: &Question<'_>) -> bool {
    c.is_active
        && matches_naming(c, q, q.verified)
        && (c.configuration_type == Kind::Exclude
            || c.exclude_actions.iter().any(|a| a == q.action)
            || c.exclude_resource_types.iter().any(|t| t == q.resource_type)
            || (q.verified && c.exclude_users.iter().any(|u| u == q.actor))
            || c.exclude_ips.iter().any(|n| parse_net(n).unwrap().contains(&q.ip)))
}

proptest! {
    #[test]
    fn exclusions_always_win(configs in prop_oneof![arb_configs(), many_configs()]) {
        let compiled = Compiled::new(&configs);
        for q in every_question() {
            if configs.iter().any(|c| excluded_by(c, &q)) {
                prop_assert_eq!(compiled.decide(&q), Decision::Skip);
            }
        }
    }

    #[test]
    fn with_no_configurations_every_mutation_is_audited_and_no_read(
        inactive in proptest::collection::vec(arb_config(0), 0..3)
    ) {
        let inactive: Vec<_> = inactive.into_iter().map(|c| AuditConfiguration { is_active: false, ..c }).collect();
        let compiled = Compiled::new(&inactive);
        for q in every_question() {
            let expected = if q.is_mutation {
                Decision::Audit { capture: Capture::Diff, configuration: None }
            } else {
                Decision::Skip
            };
            prop_assert_eq!(compiled.decide(&q), expected);
        }
    }

    #[test]
    fn adding_an_include_never_removes_an_entry(configs in arb_configs(), extra in arb_config(9)) {
        // Once some include is active (so not everything is audited by
        // default), another include without exclude lists only adds.
        let has_include = configs.iter().any(|c| c.is_active && c.configuration_type == Kind::Include);
        let extra = AuditConfiguration {
            configuration_type: Kind::Include,
            exclude_actions: vec![],
            exclude_resource_types: vec![],
            exclude_users: vec![],
            exclude_ips: vec![],
            ..extra
        };
        prop_assume!(has_include);
        let before = Compiled::new(&configs);
        let mut more = configs.clone();
        more.push(extra);
        let after = Compiled::new(&more);
        for q in every_question() {
            if matches!(before.decide(&q), Decision::Audit { .. }) {
                prop_assert!(matches!(after.decide(&q), Decision::Audit { .. }), "{:?} lost its entry", q);
            }
        }
    }

    #[test]
    fn the_credited_configuration_is_the_highest_priority_match(configs in prop_oneof![arb_configs(), many_configs()]) {
        let compiled = Compiled::new(&configs);
        for q in every_question() {
            let Decision::Audit { configuration: Some(name), .. } = compiled.decide(&q) else { continue };
            let winner = configs.iter().find(|c| *c.name == *name).unwrap();
            prop_assert!(winner.configuration_type == Kind::Include && winner.is_active && matches(winner, &q));
            for other in configs.iter().filter(|c| c.is_active && c.configuration_type == Kind::Include && matches(c, &q)) {
                prop_assert!(
                    other.priority < winner.priority
                        || (other.priority == winner.priority && other.created_at >= winner.created_at),
                    "{} outranks {}", other.name, winner.name
                );
            }
        }
    }

    #[test]
    fn an_unverified_name_adds_entries_and_never_removes_one(
        configs in prop_oneof![arb_configs(), many_configs()]
    ) {
        // Whatever name an unverified actor claims, it is recorded at least
        // whenever a name no configuration lists would be.
        let compiled = Compiled::new(&configs);
        for q in every_question().into_iter().filter(|q| !q.verified) {
            let nobody = Question { actor: "nobody-listed", ..q };
            if matches!(compiled.decide(&nobody), Decision::Audit { .. }) {
                prop_assert!(matches!(compiled.decide(&q), Decision::Audit { .. }), "{:?} lost its entry", q);
            }
        }
    }

    #[test]
    fn the_decision_is_the_definition(configs in prop_oneof![arb_configs(), many_configs()]) {
        let compiled = Compiled::new(&configs);
        let includes: Vec<&AuditConfiguration> =
            configs.iter().filter(|c| c.is_active && c.configuration_type == Kind::Include).collect();
        for q in every_question() {
            let audited = if configs.iter().any(|c| excluded_by(c, &q)) {
                false
            } else if includes.is_empty() {
                q.is_mutation
            } else {
                includes.iter().any(|c| matches(c, &q))
            };
            prop_assert_eq!(matches!(compiled.decide(&q), Decision::Audit { .. }), audited, "{:?}", q);
        }
    }
}

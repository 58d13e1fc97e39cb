//! The audit decision (docs/rules.md) with 1,000 active configurations, in
//! nanoseconds: what every candidate request pays before any snapshot.
//!
//! `cargo bench --bench decide`

use std::hint::black_box;

use auditgate::policy::{AuditConfiguration, Compiled, Kind, Question};
use criterion::{Criterion, criterion_group, criterion_main};

fn config(n: usize) -> AuditConfiguration {
    AuditConfiguration {
        id: n as i64,
        name: format!("configuration {n}"),
        priority: (n % 7) as i64,
        created_at: format!("2026-11-23T00:00:00.{n:06}Z"),
        ..AuditConfiguration::new()
    }
}

/// 1,000 includes, each for its own resource type and a few users, plus ten
/// exclusions: the shape of a real deployment with many configurations.
fn typed() -> Vec<AuditConfiguration> {
    let mut out: Vec<AuditConfiguration> = (0..1000)
        .map(|n| AuditConfiguration {
            audit_actions: vec!["create".into(), "update".into(), "delete".into()],
            audit_resource_types: vec![format!("type{n}")],
            audit_users: vec![format!("user{n}"), "alice".into()],
            audit_ips: vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()],
            ..config(n)
        })
        .collect();
    for n in 0..10 {
        out.push(AuditConfiguration {
            configuration_type: Kind::Exclude,
            audit_resource_types: vec![format!("type{}", n * 100)],
            audit_users: vec!["robot".into()],
            ..config(1000 + n)
        });
    }
    out
}

/// 1,000 includes for every resource type, none matching but the last:
/// every one is looked at.
fn worst() -> Vec<AuditConfiguration> {
    (0..1000)
        .map(|n| AuditConfiguration {
            audit_users: vec![if n == 999 { "alice".into() } else { format!("user{n}") }],
            exclude_users: vec![format!("banned{n}")],
            ..config(n)
        })
        .collect()
}

fn decide(c: &mut Criterion) {
    let question = |resource_type| Question {
        action: "update",
        is_mutation: true,
        resource_type,
        actor: "alice",
        verified: true,
        ip: "10.1.2.3".parse().unwrap(),
    };
    let mut group = c.benchmark_group("decide");
    let none = Compiled::new(&[]);
    group.bench_function("no configurations", |b| b.iter(|| none.decide(black_box(&question("type500")))));
    let typed = Compiled::new(&typed());
    assert_eq!(typed.len(), 1010);
    group.bench_function("1,000 typed configurations, match", |b| {
        b.iter(|| typed.decide(black_box(&question("type500"))))
    });
    group.bench_function("1,000 typed configurations, no match", |b| {
        b.iter(|| typed.decide(black_box(&question("invoice"))))
    });
    let worst = Compiled::new(&worst());
    group.bench_function("1,000 any-type configurations, last matches (worst case)", |b| {
        b.iter(|| worst.decide(black_box(&question("type500"))))
    });
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);

//! Per-request work on the data path, in nanoseconds: classifying a request
//! (heuristic and configured rules), the effective method, the actor and the
//! client address.

use std::hint::black_box;
use std::path::Path;

use auditgate::identity::{ActorRules, TrustedProxies, client_addr};
use auditgate::resource::{Classifier, OverridePolicy, RulesFile, effective_method};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Method};

const RULES: &str = r#"
[[resource]]
pattern = "/static/{rest*}"
ignore = true

[[resource]]
pattern = "/api/v1/projects/{project}/members/{id}/"
type = "membership"

[[resource]]
regex = '^/legacy/user_save\.php$'
method = ["POST"]
type = "user"
id_from = "form:user_id"

[[resource]]
pattern = "/api/v1/{type}/{id}/"
"#;

fn classify(c: &mut Criterion) {
    let heuristic = Classifier::default();
    let configured = Classifier::new(RulesFile::parse(Path::new("bench.toml"), RULES).unwrap());
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("classify");
    group.bench_function("heuristic PATCH /api/v1/users/123/", |b| {
        b.iter(|| heuristic.classify(black_box(&Method::PATCH), black_box("/api/v1/users/123/"), None, &headers))
    });
    group.bench_function("heuristic DELETE nested /v2/projects/7/tasks/9", |b| {
        b.iter(|| heuristic.classify(black_box(&Method::DELETE), black_box("/v2/projects/7/tasks/9"), None, &headers))
    });
    group.bench_function("rules PATCH /api/v1/projects/7/members/3/", |b| {
        b.iter(|| {
            configured.classify(black_box(&Method::PATCH), black_box("/api/v1/projects/7/members/3/"), None, &headers)
        })
    });
    group.bench_function("rules miss → heuristic PUT /orders/42", |b| {
        b.iter(|| configured.classify(black_box(&Method::PUT), black_box("/orders/42"), None, &headers))
    });
    group.finish();
}

fn identity(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"));
    headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 10.0.0.2"));
    headers.insert("x-http-method-override", HeaderValue::from_static("DELETE"));
    let trusted = TrustedProxies::new(vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]);
    let rules = ActorRules::default();
    let peer = "127.0.0.1".parse().unwrap();
    let mut group = c.benchmark_group("identity");
    group.bench_function("actor from bearer JWT", |b| b.iter(|| rules.resolve(black_box(&headers), false)));
    group.bench_function("client address via trusted X-Forwarded-For", |b| {
        b.iter(|| client_addr(&trusted, black_box(peer), black_box(&headers)))
    });
    group.bench_function("effective method with override", |b| {
        b.iter(|| effective_method(black_box(&Method::POST), black_box(&headers), OverridePolicy::Honour))
    });
    group.finish();
}

criterion_group!(benches, classify, identity);
criterion_main!(benches);

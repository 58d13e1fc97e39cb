//! What reading a change costs auditgate when the app answers HTML forms
//! instead of JSON (docs/server-rendered-apps.md), side by side for the same
//! resource: the before- and after-snapshots read into states, their diff,
//! the request body read into fields and compared (`unapplied`). The rest of
//! an audited request (proxying, the resource's turn, the recorder) is the
//! same code for both. Also a 1 MiB page read, against `snapshot.timeout`.
//!
//! `cargo bench --bench reading`

use std::hint::black_box;

use auditgate::audit::requested::Requested;
use auditgate::diff::diff;
use auditgate::snapshot::{Reading, reading};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

const FIELDS: usize = 20;

/// A customer of `FIELDS` text fields, `renamed` changing the first.
fn state(renamed: bool) -> Map<String, Value> {
    (0..FIELDS)
        .map(|i| {
            let value = if i == 0 && renamed { "Ann Smith".to_string() } else { format!("value of field {i}") };
            (format!("field_{i}"), json!(value))
        })
        .collect()
}

/// The customer as its edit page: a layout around the form, as a
/// server-rendered app sends it.
fn page(state: &Map<String, Value>, filler_rows: usize) -> String {
    let mut html = String::from(
        "<!DOCTYPE html><html><head><title>Edit customer</title><link rel=stylesheet href=/s.css></head><body>\
         <nav><a href=/>Home</a> <a href=/customers/>Customers</a></nav>\
         <form method=get action=/search/><input name=q></form><table>",
    );
    for r in 0..filler_rows {
        html.push_str(&format!("<tr><td>row {r}</td><td>some text in a cell of the page</td></tr>"));
    }
    html.push_str("</table><form method=post action=/customers/1/edit/>");
    html.push_str("<input type=hidden name=csrfmiddlewaretoken value=abcdef0123456789>");
    for (name, value) in state {
        html.push_str(&format!(
            "<p><label for=id_{name}>{name}</label><input type=text name={name} id=id_{name} value=\"{}\"></p>",
            value.as_str().unwrap()
        ));
    }
    html.push_str("<input type=submit value=Save></form><footer>© the app</footer></body></html>");
    html
}

fn urlencoded(state: &Map<String, Value>) -> String {
    let mut pairs = vec!["csrfmiddlewaretoken=abcdef0123456789".to_string()];
    pairs.extend(state.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap().replace(' ', "+"))));
    pairs.join("&")
}

fn bench(c: &mut Criterion) {
    let volatile = vec!["csrfmiddlewaretoken".to_string()];
    let reading = Reading { rule: None, volatile: &volatile, action: "/customers/1/edit/" };
    let (before, after) = (state(false), state(true));
    let json_before = serde_json::to_vec(&before).unwrap();
    let json_after = serde_json::to_vec(&after).unwrap();
    let json_body = serde_json::to_vec(&after).unwrap();
    let (page_before, page_after) = (page(&before, 0), page(&after, 0));
    let form_body = urlencoded(&after);
    eprintln!(
        "sizes: JSON state {} B, body {} B; page {} B, form body {} B",
        json_before.len(),
        json_body.len(),
        page_before.len(),
        form_body.len()
    );

    let mut group = c.benchmark_group("a change read");
    group.bench_function("JSON PATCH", |b| {
        b.iter(|| {
            let ty = Some("application/json");
            let (old, _) = reading::read(black_box(&json_before), ty, "/customers/1/", &reading).unwrap();
            let (new, _) = reading::read(black_box(&json_after), ty, "/customers/1/", &reading).unwrap();
            let changes = diff(Some(&old), Some(&new));
            let asked = Requested::read(black_box(&json_body), ty, &volatile).unwrap();
            black_box((changes, asked.unapplied(&new)))
        })
    });
    group.bench_function("form post", |b| {
        b.iter(|| {
            let ty = Some("text/html; charset=utf-8");
            let page = "/customers/1/edit/";
            let (old, _) = reading::read(black_box(page_before.as_bytes()), ty, page, &reading).unwrap();
            let (new, _) = reading::read(black_box(page_after.as_bytes()), ty, page, &reading).unwrap();
            let changes = diff(Some(&old), Some(&new));
            let form = Some("application/x-www-form-urlencoded");
            let asked = Requested::read(black_box(form_body.as_bytes()), form, &volatile).unwrap();
            black_box((changes, asked.unapplied(&new)))
        })
    });
    group.bench_function("the page parsed, nothing read", |b| {
        b.iter(|| scraper::Html::parse_document(black_box(&page_before)))
    });
    group.finish();

    // A 1 MiB page: a long table above the form.
    let big = page(&before, 14_000);
    eprintln!("large page: {} B", big.len());
    let mut group = c.benchmark_group("a large page");
    group.sample_size(20);
    group.bench_function("1 MiB page read", |b| {
        b.iter(|| reading::read(black_box(big.as_bytes()), Some("text/html"), "/customers/1/edit/", &reading).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

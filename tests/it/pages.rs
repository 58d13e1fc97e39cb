//! End to end against server-rendered apps (docs/server-rendered-apps.md): a
//! PHP app on PHP's built-in server (`tests/php/customers.php`) and a Django
//! app with Django's CSRF middleware and session login (`tests/django/app.py`,
//! Django from PyPI, installed by scripts/test.sh). A customer's state is
//! its edit page's form; a change is a form post answered 302.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use auditgate::entry::{AuditEntry, SnapshotFormat};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::audit::wait_entries;
use crate::helpers::*;
use crate::php::spawn_php;

/// A client that keeps its cookies and never follows redirects, as a
/// browser's form posts look on the wire.
struct Browser {
    base: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(base: String) -> Browser {
        Browser { base, cookies: BTreeMap::new() }
    }

    async fn send(&mut self, req: http::request::Builder, body: Bytes) -> Response<Bytes> {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = req.header("cookie", cookie.join("; ")).body(Full::new(body)).unwrap();
        let res = send(&client(), req).await;
        for set in res.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_string(), value.to_string());
        }
        res
    }

    async fn get(&mut self, path: &str) -> String {
        let res = self.send(Request::get(format!("{}{path}", self.base)), Bytes::new()).await;
        assert_eq!(res.status(), 200, "GET {path}");
        String::from_utf8(res.body().to_vec()).unwrap()
    }

    /// Posts `fields` urlencoded; the answer's status and `Location`.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let body = form_urlencoded(fields);
        let req = Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "pages-test");
        let res = self.send(req, Bytes::from(body)).await;
        let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (res.status().as_u16(), location)
    }

    /// Posts `fields` and one file as `multipart/form-data`.
    async fn post_multipart(&mut self, path: &str, fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> u16 {
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend(
                format!("--B0und\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
            );
        }
        let (name, filename, bytes) = file;
        body.extend(
            format!("--B0und\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n--B0und--\r\n");
        let req =
            Request::post(format!("{}{path}", self.base)).header("content-type", "multipart/form-data; boundary=B0und");
        self.send(req, Bytes::from(body)).await.status().as_u16()
    }
}

fn form_urlencoded(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// The fields of `base` with the values `set` gives (a name `base` lacks
/// added at the end, a name given twice in `set` kept twice) and the names
/// in `dropped` left out: the next post of a form.
fn edited<'a>(base: &[(&'a str, &'a str)], set: &[(&'a str, &'a str)], dropped: &[&str]) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = base
        .iter()
        .filter(|(k, _)| !dropped.contains(k))
        .map(|&(k, v)| (k, set.iter().find(|(s, _)| *s == k).map_or(v, |(_, w)| *w)))
        .collect();
    out.extend(set.iter().filter(|(k, _)| !base.iter().any(|(b, _)| b == k)));
    out
}

/// The value of the hidden input `name` in `page`.
fn hidden(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("{name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The customers' entries, oldest first (the seeded configuration's left out).
async fn customer_entries(app: &TestApp, n: usize) -> Vec<AuditEntry> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = wait_entries(&app.store, 1).await;
        let mine: Vec<AuditEntry> = all.into_iter().filter(|e| e.resource_type != "audit_configuration").collect();
        if mine.len() >= n {
            return mine;
        }
        assert!(Instant::now() < deadline, "only {} of {n} entries: {mine:#?}", mine.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn changes(e: &AuditEntry) -> Vec<(String, Value, Value)> {
    e.changes.iter().map(|c| (c.path.clone(), c.old.clone(), c.new.clone())).collect()
}

fn change(path: &str, old: Value, new: Value) -> (String, Value, Value) {
    (path.to_string(), old, new)
}

fn unapplied(e: &AuditEntry) -> Vec<(String, Value, Value)> {
    let listed = e.unapplied.clone().flatten().unwrap_or_else(|| panic!("unapplied compared: {e:#?}"));
    listed.into_iter().map(|u| (u.path, u.requested, u.applied)).collect()
}

/// Asserts no part of `e` holds `text`.
fn nowhere(e: &AuditEntry, text: &str) {
    let whole = serde_json::to_string(e).unwrap();
    assert!(!whole.contains(text), "{text} in {whole}");
}

const AUDITED: &str = r#"
[[configuration]]
name = "forms"
audit_actions = ["create", "update", "delete", "login"]
capture = "full"
"#;

fn whoami(path: &'static str) -> [(&'static str, &'static str); 2] {
    [("AUDITGATE_ACTOR__WHOAMI_URL", path), ("AUDITGATE_ACTOR__WHOAMI_FIELD", "/username")]
}

const PHP_RULES: &str = include_str!("../php/customers.toml");

#[tokio::test]
async fn a_php_apps_form_posts_are_recorded_field_by_field() {
    let php = spawn_php("customers.php");
    let files = [("resources.toml", PHP_RULES), ("audit.toml", AUDITED)];
    let app = spawn_app_files(&php.url(""), &whoami("/whoami"), &files).await;
    let mut alice = Browser::new(app.url(""));
    alice.get("/login/").await;
    assert_eq!(alice.post("/login/", &[("username", "alice"), ("password", "wonder")]).await.0, 302);

    // A create answered 302 to the new customer's edit page.
    let token = hidden(&alice.get("/customers/new/").await, "_token");
    let made = [("_token", token.as_str()), ("name", "  Ann Lee "), ("email", "ANN@Example.COM"), ("plan", "pro")];
    assert_eq!(alice.post("/customers/new/", &made).await, (302, "/customers/1/edit/".to_string()));
    // One field changed, the rest posted as the page holds them.
    let page = alice.get("/customers/1/edit/").await;
    let token = hidden(&page, "_token");
    let as_shown = [
        ("_token", token.as_str()),
        ("name", "Ann Lee"),
        ("email", "ann@example.com"),
        ("active", "1"),
        ("plan", "pro"),
        ("notes", ""),
        ("password", ""),
        ("save", "1"),
    ];
    let renamed = edited(&as_shown, &[("name", "Ann Smith")], &[]);
    assert_eq!(alice.post("/customers/1/edit/", &renamed).await, (302, "/customers/1/edit/".to_string()));
    // A checkbox unchecked, a select changed, a multiple select and a
    // textarea filled, a new password set.
    let set = [
        ("plan", "team"),
        ("tags[]", "vip"),
        ("tags[]", "eu"),
        ("notes", "Call <before> noon & \"late\""),
        ("password", "hunter22-secret"),
    ];
    let changed = edited(&renamed, &set, &["active"]);
    assert_eq!(alice.post("/customers/1/edit/", &changed).await.0, 302);
    // A file uploaded in a multipart post.
    let fields = edited(&changed, &[], &["notes", "password", "save"]);
    assert_eq!(alice.post_multipart("/customers/1/edit/", &fields, ("avatar", "me.png", b"\x89PNG-bytes")).await, 302);
    // A delete by a form's `_method`.
    let gone = [("_token", token.as_str()), ("_method", "DELETE")];
    assert_eq!(alice.post("/customers/1/edit/", &gone).await, (302, "/customers/".to_string()));
    // A post with a stale token: refused by the app, recorded as failed.
    assert_eq!(alice.post("/customers/new/", &[("_token", "stale"), ("name", "X")]).await.0, 403);

    let e = customer_entries(&app, 7).await;
    let login = &e[0];
    assert_eq!((login.action.as_str(), login.actor.as_str()), ("login", "alice"));
    assert_eq!(login.request_body, None, "a login is recorded without its body");

    let create = &e[1];
    assert_eq!((create.action.as_str(), create.resource_type.as_str()), ("create", "customer"));
    assert_eq!((create.resource_id.as_deref(), create.actor.as_str()), (Some("1"), "alice"));
    assert_eq!(create.actor_source, auditgate::identity::ActorSource::Whoami);
    assert_eq!(create.snapshot_format, Some(SnapshotFormat::Form));
    assert_eq!(create.snapshot_error, None);
    assert_eq!(
        create.after,
        Some(json!({
            "name": "Ann Lee", "email": "ann@example.com", "active": "1", "plan": "pro",
            "tags[]": [], "notes": "", "avatar_file": "", "customer[api_key]": "[REDACTED]",
            "rendered_at": create.after.as_ref().unwrap()["rendered_at"],
        })),
        "the edit page's form, without the token, the disabled id, the password, the file and the button; \
         a secret's value redacted"
    );
    assert_eq!(
        unapplied(create),
        [
            change("/email", json!("ANN@Example.COM"), json!("ann@example.com")),
            change("/name", json!("  Ann Lee "), json!("Ann Lee")),
        ],
        "what the app normalised"
    );

    let one = &e[2];
    assert_eq!((one.action.as_str(), one.resource_id.as_deref()), ("update", Some("1")));
    assert_eq!(changes(one), [change("/name", json!("Ann Lee"), json!("Ann Smith"))], "exactly the one field");
    let rendered = |state: &Option<Value>| state.as_ref().unwrap()["rendered_at"].clone();
    assert_ne!(rendered(&one.before), rendered(&one.after), "the ignored field did change");
    assert_eq!(unapplied(one), [], "everything applied as asked");
    assert_eq!(one.request_body.as_ref().unwrap()["password"], "[REDACTED]");
    assert!(one.request_body.as_ref().unwrap().get("_token").is_none(), "the token is volatile");

    let many = &e[3];
    assert_eq!(
        changes(many),
        [
            change("/active", json!("1"), Value::Null),
            change("/notes", json!(""), json!("Call <before> noon & \"late\"")),
            change("/plan", json!("pro"), json!("team")),
            change("/tags[]", json!([]), json!(["vip", "eu"])),
        ]
    );
    assert_eq!(unapplied(many), []);

    let upload = &e[4];
    assert_eq!(changes(upload), [change("/avatar_file", json!(""), json!("me.png (10 bytes)"))]);
    let avatar = &upload.request_body.as_ref().unwrap()["avatar"];
    assert_eq!((avatar["filename"].as_str(), avatar["bytes"].as_u64()), (Some("me.png"), Some(10)));
    assert_eq!(avatar["sha256"].as_str().map(str::len), Some(64));

    let delete = &e[5];
    assert_eq!((delete.action.as_str(), delete.resource_id.as_deref()), ("delete", Some("1")));
    assert_eq!(delete.before.as_ref().unwrap()["name"], "Ann Smith", "a delete keeps its before-state");
    assert_eq!(delete.after, None);

    let refused = &e[6];
    assert_eq!((refused.action.as_str(), refused.status), ("create", 403));

    for entry in &e {
        nowhere(entry, "hunter22");
        nowhere(entry, &token);
        nowhere(entry, "PNG-bytes");
    }
    assert!(app.store.verify().await.unwrap().ok);
}

/// `python tests/django/app.py` on a free port.
fn spawn_django() -> AppServer {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django");
    let port = AppServer::free_port();
    let mut django = Command::new(dir.join(".venv/bin/python"));
    django.arg(dir.join("app.py")).arg(format!("127.0.0.1:{port}"));
    AppServer::start(&mut django, port, "the Django app", "run scripts/test.sh: it installs Django from PyPI")
}

const DJANGO_RULES: &str = r##"
[[resource]]
pattern = "/login/"
type = "session"
action = "login"
username_from = "form:username"

[[resource]]
pattern = "/customers/add/"
type = "customer"
action = "create"

[[resource]]
pattern = "/customers/{id}/delete/"
type = "customer"
action = "delete"
snapshot = "/customers/{id}/"
form = "#customer-form"

[[resource]]
pattern = "/customers/{id}/"
type = "customer"
form = "#customer-form"
"##;

#[tokio::test]
async fn a_django_apps_form_posts_are_recorded_with_its_csrf_token_left_out() {
    let django = spawn_django();
    let files = [("resources.toml", DJANGO_RULES), ("audit.toml", AUDITED)];
    let app = spawn_app_files(&django.url(""), &whoami("/whoami/"), &files).await;
    let mut bob = Browser::new(app.url(""));
    let token = hidden(&bob.get("/login/").await, "csrfmiddlewaretoken");
    let signing_in = [("csrfmiddlewaretoken", token.as_str()), ("username", "bob"), ("password", "builder")];
    assert_eq!(bob.post("/login/", &signing_in).await, (302, "/customers/".to_string()));

    let token = hidden(&bob.get("/customers/add/").await, "csrfmiddlewaretoken");
    let made = [
        ("csrfmiddlewaretoken", token.as_str()),
        ("name", "  Bo Diddley  "),
        ("email", "BO@Example.org"),
        ("active", "on"),
        ("plan", "basic"),
        ("notes", "first"),
    ];
    assert_eq!(bob.post("/customers/add/", &made).await, (302, "/customers/1/".to_string()));
    // Each page masks the CSRF token anew; only the name changes.
    let token = hidden(&bob.get("/customers/1/").await, "csrfmiddlewaretoken");
    let set = [
        ("csrfmiddlewaretoken", token.as_str()),
        ("name", "Bo Jangles"),
        ("email", "bo@example.org"),
        ("new_password", ""),
    ];
    let renamed = edited(&made, &set, &[]);
    assert_eq!(bob.post("/customers/1/", &renamed).await, (302, "/customers/".to_string()));
    let token = hidden(&bob.get("/customers/1/").await, "csrfmiddlewaretoken");
    let set = [
        ("csrfmiddlewaretoken", token.as_str()),
        ("plan", "pro"),
        ("tags", "late"),
        ("notes", "first\r\nsecond"),
        ("new_password", "s3cret-pass-77"),
    ];
    let changed = edited(&renamed, &set, &["active"]);
    assert_eq!(bob.post("/customers/1/", &changed).await.0, 302);
    let token = hidden(&bob.get("/customers/1/delete/").await, "csrfmiddlewaretoken");
    assert_eq!(bob.post("/customers/1/delete/", &[("csrfmiddlewaretoken", &token)]).await.0, 302);
    // Without its token Django refuses the post.
    assert_eq!(bob.post("/customers/add/", &[("name", "X")]).await.0, 403);

    let e = customer_entries(&app, 6).await;
    assert_eq!((e[0].action.as_str(), e[0].actor.as_str()), ("login", "bob"));
    let create = &e[1];
    assert_eq!((create.action.as_str(), create.resource_id.as_deref()), ("create", Some("1")));
    assert_eq!((create.actor.as_str(), create.snapshot_format), ("bob", Some(SnapshotFormat::Form)));
    assert_eq!(
        create.after,
        Some(json!({
            "name": "Bo Diddley", "email": "bo@example.org", "active": "on", "plan": "basic",
            "tags": [], "notes": "first",
        })),
        "the customer form, not the sign-out form above it; no token, no password"
    );
    assert_eq!(
        unapplied(create),
        [
            change("/email", json!("BO@Example.org"), json!("bo@example.org")),
            change("/name", json!("  Bo Diddley  "), json!("Bo Diddley")),
        ]
    );
    let renamed = &e[2];
    assert_eq!(changes(renamed), [change("/name", json!("Bo Diddley"), json!("Bo Jangles"))]);
    let changed = &e[3];
    assert_eq!(
        changes(changed),
        [
            change("/active", json!("on"), Value::Null),
            change("/notes", json!("first"), json!("first\nsecond")),
            change("/plan", json!("basic"), json!("pro")),
            change("/tags", json!([]), json!(["late"])),
        ]
    );
    assert_eq!(changed.request_body.as_ref().unwrap()["new_password"], "[REDACTED]");
    assert_eq!(unapplied(changed), [], "a textarea's CR LF is its LF");
    let delete = &e[4];
    assert_eq!((delete.action.as_str(), delete.resource_id.as_deref()), ("delete", Some("1")));
    assert_eq!(delete.before.as_ref().unwrap()["name"], "Bo Jangles");
    assert_eq!((e[5].action.as_str(), e[5].status), ("create", 403));
    for entry in &e {
        nowhere(entry, "s3cret-pass-77");
        nowhere(entry, "csrfmiddlewaretoken");
    }
    assert!(app.store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn the_console_shows_a_form_read_entry_like_a_json_one() {
    let php = spawn_php("customers.php");
    let files = [("resources.toml", PHP_RULES), ("audit.toml", AUDITED)];
    let app = spawn_app_files(&php.url(""), &whoami("/whoami"), &files).await;
    let mut alice = Browser::new(app.url(""));
    alice.post("/login/", &[("username", "alice"), ("password", "wonder")]).await;
    let token = hidden(&alice.get("/customers/new/").await, "_token");
    alice.post("/customers/new/", &[("_token", &token), ("name", "Ann"), ("email", "ann@x.io")]).await;
    let edit = [("_token", token.as_str()), ("name", "Ann <b>Lee</b>"), ("email", "ann@x.io"), ("plan", "team")];
    assert_eq!(alice.post("/customers/1/edit/", &edit).await.0, 302);
    let update = customer_entries(&app, 3).await.pop().unwrap();
    assert_eq!(update.action, "update");

    let browser = crate::webdriver::Browser::start(1280, 1000).await;
    browser.goto(&app.query(&format!("/entries/{}", update.id))).await;
    let mut rows = Vec::new();
    for row in browser.wait_count("table.diff tbody tr", 3).await {
        rows.push((browser.attribute(&row, "className").await.unwrap(), browser.text(&row).await));
    }
    let row = |field: &str| rows.iter().find(|(_, t)| t.starts_with(field)).cloned();
    let (kind, text) = row("/name").unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(kind, "changed");
    assert!(text.contains("Ann <b>Lee</b>"), "the value as its characters: {text}");
    assert_eq!(row("/plan").map(|r| r.0).as_deref(), Some("changed"));
    assert_eq!(row("/active").map(|r| r.0).as_deref(), Some("changed"));
    let main = browser.text(&browser.find("main").await).await;
    assert!(main.contains("State read as\nthe form on the page (HTML)"), "{main}");
    assert!(main.contains("Who\nalice (whoami"), "{main}");
    assert!(main.contains("POST /customers/1/edit/"), "{main}");
    browser.assert_no_console_errors(|_| false).await;
}

/// Signs in, creates a customer and changes its name, plan and tags; the
/// customer's entries.
async fn customer_changed_under(rules: &str) -> Vec<AuditEntry> {
    let php = spawn_php("customers.php");
    let files = [("resources.toml", rules), ("audit.toml", AUDITED)];
    let app = spawn_app_files(&php.url(""), &whoami("/whoami"), &files).await;
    let mut alice = Browser::new(app.url(""));
    alice.post("/login/", &[("username", "alice"), ("password", "wonder")]).await;
    let token = hidden(&alice.get("/customers/new/").await, "_token");
    alice.post("/customers/new/", &[("_token", &token), ("name", "Ann"), ("email", "ann@x.io")]).await;
    let edit = [
        ("_token", token.as_str()),
        ("name", "Ann & Bo"),
        ("email", "bo@x.io"),
        ("plan", "team"),
        ("tags[]", "vip"),
        ("tags[]", "eu"),
    ];
    assert_eq!(alice.post("/customers/1/edit/", &edit).await.0, 302);
    let entries = customer_entries(&app, 3).await;
    assert!(app.store.verify().await.unwrap().ok);
    entries
}

#[tokio::test]
async fn a_page_without_a_form_is_read_by_named_elements_and_an_xml_answer_by_its_tree() {
    let by_fields = r#"
[[resource]]
pattern = "/customers/new/"
type = "customer"
action = "create"

[[resource]]
pattern = "/customers/{id}/edit/"
type = "customer"
snapshot = "/customers/{id}/card/"
snapshot_format = "html"
fields = { name = "h2.name", email = "a.email@href", tags = "li.tag", phone = ".phone" }
"#;
    let e = customer_changed_under(by_fields).await;
    let update = &e[2];
    assert_eq!(update.snapshot_format, Some(SnapshotFormat::Html));
    assert_eq!(
        update.after,
        Some(json!({"name": "Ann & Bo", "email": "mailto:bo@x.io", "tags": ["vip", "eu"], "phone": null}))
    );
    assert_eq!(
        changes(update),
        [
            change("/email", json!("mailto:ann@x.io"), json!("mailto:bo@x.io")),
            change("/name", json!("Ann"), json!("Ann & Bo")),
            change("/tags", Value::Null, json!(["vip", "eu"])),
        ]
    );
    assert_eq!(unapplied(update), [change("/email", json!("bo@x.io"), json!("mailto:bo@x.io"))]);

    let by_xml = r#"
[[resource]]
pattern = "/customers/new/"
type = "customer"
action = "create"

[[resource]]
pattern = "/customers/{id}/edit/"
type = "customer"
snapshot = "/customers/{id}.xml"
"#;
    let e = customer_changed_under(by_xml).await;
    let update = &e[2];
    assert_eq!(update.snapshot_format, Some(SnapshotFormat::Xml), "auto, by the answer's media type");
    assert_eq!(
        update.after,
        Some(
            json!({"@id": "1", "name": "Ann & Bo", "email": "bo@x.io", "plan": "team", "tags": {"tag": ["vip", "eu"]}})
        )
    );
    assert_eq!(
        changes(update),
        [
            change("/email", json!("ann@x.io"), json!("bo@x.io")),
            change("/name", json!("Ann"), json!("Ann & Bo")),
            change("/plan", json!("basic"), json!("team")),
            change("/tags", json!(""), json!({"tag": ["vip", "eu"]})),
        ]
    );
}

/// A page beyond 64 KiB is parsed in `block_in_place`, which needs the
/// multi-threaded runtime `serve` runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_page_is_read_off_the_workers_other_tasks() {
    let php = spawn_php("customers.php");
    let files = [("resources.toml", PHP_RULES), ("audit.toml", AUDITED)];
    let app = spawn_app_files(&php.url(""), &whoami("/whoami"), &files).await;
    let mut alice = Browser::new(app.url(""));
    alice.post("/login/", &[("username", "alice"), ("password", "wonder")]).await;
    let token = hidden(&alice.get("/customers/new/").await, "_token");
    alice.post("/customers/new/", &[("_token", &token), ("name", "Ann"), ("email", "ann@x.io")]).await;
    let notes = "a line of notes\n".repeat(10_000);
    let edit = [("_token", token.as_str()), ("name", "Ann"), ("email", "ann@x.io"), ("notes", notes.as_str())];
    assert_eq!(alice.post("/customers/1/edit/", &edit).await.0, 302);
    assert!(alice.get("/customers/1/edit/").await.len() > 160_000);
    let update = customer_entries(&app, 3).await.pop().unwrap();
    assert_eq!(update.snapshot_error, None);
    let notes_change = update.changes.iter().find(|c| c.path == "/notes").expect("the notes changed");
    assert_eq!(notes_change.new.as_str().map(str::len), Some(notes.len()));
}

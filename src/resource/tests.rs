//! Inference tests: every example of docs/rules.md, configured patterns, and
//! properties of the heuristic.

use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

use super::*;

fn classify(c: &Classifier, method: &str, target: &str) -> Classification {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    c.classify(&Method::from_bytes(method.as_bytes()).unwrap(), path, query, &HeaderMap::new())
}

fn resource(c: &Classifier, method: &str, target: &str) -> Classified {
    match classify(c, method, target) {
        Classification::Resource(r) => r,
        other => panic!("{method} {target}: {other:?}"),
    }
}

/// (method, path, action, type, id, parents as "type:id,...")
type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>, &'a str);

fn check(c: &Classifier, cases: &[Case<'_>]) {
    for (method, path, action, kind, id, parents) in cases {
        let r = resource(c, method, path);
        let got_parents: Vec<String> = r.resource.parents.iter().map(|p| format!("{}:{}", p.kind, p.id)).collect();
        assert_eq!(
            (r.action.as_str(), r.resource.kind.as_str(), r.resource.id.as_deref(), got_parents.join(",").as_str()),
            (*action, *kind, *id, *parents),
            "{method} {path}"
        );
    }
}

#[test]
fn spec_examples() {
    let c = Classifier::default();
    let uuid = "0b9e6f3c-8d2a-4c1b-9f00-5e6d7c8b9a01";
    let put_order = format!("/orders/{uuid}");
    check(
        &c,
        &[
            ("POST", "/api/v1/users/", "create", "user", None, ""),
            ("PATCH", "/api/v1/users/123/", "update", "user", Some("123"), ""),
            ("DELETE", "/v2/projects/7/tasks/9", "delete", "task", Some("9"), "project:7"),
            ("POST", "/api/users/5/activate/", "activate", "user", Some("5"), ""),
            ("PUT", &put_order, "update", "order", Some(uuid), ""),
            ("GET", "/api/v1/categories/3", "read", "category", Some("3"), ""),
            ("POST", "/API/V3/Addresses", "create", "address", None, ""),
            ("PUT", "/people/1", "update", "person", Some("1"), ""),
            ("PATCH", "/statuses/4/", "update", "status", Some("4"), ""),
            ("POST", "/projects/7/tasks/", "create", "task", None, "project:7"),
            ("POST", "/orgs/1/projects/2/tasks/3/comments", "create", "comment", None, "org:1,project:2,task:3"),
            ("POST", "/users/5", "update", "user", Some("5"), ""),
            ("PUT", "/users/5/password", "update", "user", Some("5"), ""),
            ("MOVE", "/files/5", "move", "file", Some("5"), ""),
        ],
    );
}

#[test]
fn snapshots_keep_the_trailing_slash_style() {
    let c = Classifier::default();
    assert_eq!(resource(&c, "PATCH", "/api/v1/users/123/").snapshot.as_deref(), Some("/api/v1/users/123/"));
    assert_eq!(resource(&c, "POST", "/api/v1/users/").snapshot.as_deref(), Some("/api/v1/users/{id}/"));
    assert_eq!(resource(&c, "POST", "/api/v1/users").snapshot.as_deref(), Some("/api/v1/users/{id}"));
    assert_eq!(resource(&c, "POST", "/api/users/5/activate/").snapshot.as_deref(), Some("/api/users/5/"));
}

#[test]
fn evasive_spellings_name_the_same_resource() {
    let c = Classifier::default();
    for path in
        ["/api/v1/users/5", "/api//v1/users//5/", "/api/v1/x/../users/5", "/api/v1/users;a=b/5", "/api/v1/%75sers/5"]
    {
        let r = resource(&c, "DELETE", path);
        assert_eq!((r.resource.kind.as_str(), r.resource.id.as_deref()), ("user", Some("5")), "{path}");
    }
}

#[test]
fn options_is_never_audited() {
    let c = Classifier::default();
    assert_eq!(classify(&c, "OPTIONS", "/api/v1/users/5"), Classification::Ignored { rule: None });
}

const RULES: &str = r#"
[[resource]]
pattern = "/api/v1/projects/{project}/members/{id}/"
type = "membership"

[[resource]]
regex = '^/legacy/user_save\.php$'
method = ["POST"]
type = "user"
id_from = "form:user_id"
action = "update"
snapshot = "/legacy/user_get.php?id={id}"

[[resource]]
regex = '^/legacy/user_get\.php$'
type = "user"
id_from = "query:id"

[[resource]]
pattern = "/static/{rest*}"
ignore = true

[[resource]]
pattern = "/api/v1/{type}/{id}/"

[[resource]]
pattern = "/api/v1/users/{id}/"
type = "never-reached"

[[resource]]
regex = '^/login$'
method = ["POST"]
type = "session"
action = "login"
username_from = "form:username"
"#;

fn configured() -> Classifier {
    Classifier::new(RulesFile::parse(Path::new("rules/resources.toml"), RULES).unwrap())
}

#[test]
fn configured_patterns() {
    let c = configured();
    check(
        &c,
        &[
            ("PATCH", "/api/v1/projects/7/members/3/", "update", "membership", Some("3"), "project:7"),
            ("POST", "/api/v1/projects/7/members/", "create", "membership", None, "project:7"),
            ("GET", "/legacy/user_get.php?id=9", "read", "user", Some("9"), ""),
            ("PUT", "/api/v1/users/12/", "update", "user", Some("12"), ""),
            ("POST", "/api/v1/users/", "create", "user", None, ""),
        ],
    );
    let legacy = resource(&c, "POST", "/legacy/user_save.php");
    assert_eq!(legacy.resource.id, None);
    assert_eq!(legacy.pending_id, Some(Extractor::Form("user_id".into())));
    assert_eq!(legacy.snapshot.as_deref(), Some("/legacy/user_get.php?id={id}"));
    assert_eq!(legacy.rule, Some(1));
    // The method filter: a GET of the save URL falls through to the heuristic.
    assert_eq!(resource(&c, "GET", "/legacy/user_save.php").rule, None);
    // First match wins: rule 4, not the later, more specific rule 5.
    assert_eq!(resource(&c, "PUT", "/api/v1/users/12/").rule, Some(4));
    assert_eq!(classify(&c, "GET", "/static/css/site.css"), Classification::Ignored { rule: Some(3) });
    let login = resource(&c, "POST", "/login");
    assert_eq!((login.action, login.snapshot), (Action::Login, None));
}

#[test]
fn id_from_header() {
    let rules = "[[resource]]\nregex = '^/rpc$'\ntype = \"user\"\nid_from = \"header:x-user-id\"\n";
    let c = Classifier::new(RulesFile::parse(Path::new("r.toml"), rules).unwrap());
    let mut headers = HeaderMap::new();
    headers.insert("x-user-id", HeaderValue::from_static("44"));
    let Classification::Resource(r) = c.classify(&Method::PUT, "/rpc", None, &headers) else { panic!() };
    assert_eq!(r.resource.id.as_deref(), Some("44"));
}

#[test]
fn an_id_pattern_reads_the_id_as_a_loose_app_does() {
    let rules = "[[resource]]\npattern = \"/users/{id}\"\ntype = \"user\"\nid_pattern = '^0*([0-9]+)'\n\n\
                 [[resource]]\nregex = '^/rpc$'\ntype = \"job\"\nid_from = \"header:x-id\"\nid_pattern = '^([a-z]+)-'\n";
    let c = Classifier::new(RulesFile::parse(Path::new("r.toml"), rules).unwrap());
    for (path, id) in [("/users/1.json", "1"), ("/users/007abc", "7"), ("/users/0", "0"), ("/users/x1", "x1")] {
        let r = resource(&c, "PATCH", path);
        assert_eq!(r.resource.id.as_deref(), Some(id), "{path}");
        assert_eq!(r.snapshot.as_deref(), Some(path), "the snapshot reads the path as the client wrote it");
    }
    let mut headers = HeaderMap::new();
    headers.insert("x-id", HeaderValue::from_static("nightly-2"));
    let Classification::Resource(r) = c.classify(&Method::PUT, "/rpc", None, &headers) else { panic!() };
    assert_eq!(r.resource.id.as_deref(), Some("nightly"));
    // A group that matches nothing leaves the id as it stands.
    let rules = "[[resource]]\npattern = \"/u/{id}\"\ntype = \"u\"\nid_pattern = '^([0-9]*)'\n";
    let c = Classifier::new(RulesFile::parse(Path::new("r.toml"), rules).unwrap());
    assert_eq!(resource(&c, "PATCH", "/u/abc").resource.id.as_deref(), Some("abc"));
    assert_eq!(c.rules()[0].shape_id("12x".into()), "12");
}

#[test]
fn bad_rules_name_file_and_line() {
    let cases = [
        ("[[resource]]\npattern = \"/x/{id}\"\nbogus = 1\n", 3, "unknown field"),
        ("\n[[resource]]\npattern = \"/x/{id}\"\n", 2, "gives no type"),
        ("[[resource]]\npattern = \"/a\"\ntype = \"a\"\n\n[[resource]]\nregex = '('\ntype = \"b\"\n", 5, "bad regex"),
        ("[[resource]]\npattern = \"x\"\ntype = \"a\"\n", 1, "must start with"),
        ("[[resource]]\npattern = \"/x\"\ntype = \"a\"\nid_from = \"cookie:a\"\n", 1, "unknown source"),
        ("[[resource]]\npattern = \"/x\"\ntype = \"a\"\naction = \"login\"\n", 1, "username_from"),
        ("[[resource]]\npattern = \"/x\"\ntype = \"a\"\nmethod = [\"G T\"]\n", 1, "not an HTTP method"),
        ("[[resource]]\npattern = \"/x/{a-b}\"\ntype = \"a\"\n", 1, "placeholder"),
        ("[[resource]]\npattern = 5\n", 2, "resource.pattern: invalid type: integer"),
        (
            "[[resource]]\npattern = \"/x\"\ntype = \"a\"\nmethod = \"POST\"\n",
            4,
            "resource.method: invalid type: string",
        ),
        ("[[resource]]\npattern = \"/x\"\nignore = \"yes\"\n", 3, "resource.ignore: invalid type"),
        ("[[resource]]\npattern = \"/x/{id}\"\ntype = \"a\"\nid_pattern = '^[0-9]+'\n", 1, "needs a group"),
        ("[[resource]]\npattern = \"/x/{id}\"\ntype = \"a\"\nid_pattern = '('\n", 1, "id_pattern `(`"),
    ];
    for (text, line, needle) in cases {
        let err = RulesFile::parse(Path::new("rules/resources.toml"), text).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.line, line, "{shown}");
        assert!(shown.starts_with(&format!("rules/resources.toml:{line}: ")), "{shown}");
        assert!(shown.contains(needle), "{shown} lacks {needle}");
    }
}

#[test]
fn the_shipped_example_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = RulesFile::load_dir(&dir).unwrap();
    assert!(!rules.rules().is_empty());
}

fn collection() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["users", "projects", "tasks", "categories", "orders", "comments", "people"])
        .prop_map(str::to_string)
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..u64::MAX).prop_map(|n| n.to_string()),
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
    ]
}

proptest! {
    #[test]
    fn nested_items_keep_every_parent(
        pairs in prop::collection::vec((collection(), id()), 1..5),
        prefix in prop::sample::select(vec!["", "/api", "/api/v1", "/v2", "/API/V10"]),
        slash in any::<bool>(),
    ) {
        let mut path = prefix.to_string();
        for (c, i) in &pairs {
            path.push_str(&format!("/{c}/{i}"));
        }
        if slash { path.push('/'); }
        let r = resource(&Classifier::default(), "PATCH", &path);
        let (last_c, last_id) = pairs.last().unwrap();
        prop_assert_eq!(r.action, Action::Update);
        prop_assert_eq!(r.resource.kind, singularize(last_c));
        prop_assert_eq!(r.resource.id.as_deref(), Some(last_id.as_str()));
        let parents: Vec<(String, String)> = r.resource.parents.into_iter().map(|p| (p.kind, p.id)).collect();
        let expected: Vec<(String, String)> = pairs[..pairs.len() - 1].iter().map(|(c, i)| (singularize(c), i.clone())).collect();
        prop_assert_eq!(parents, expected);
        let normal = NormalPath::parse(&path).to_path();
        prop_assert_eq!(r.snapshot.as_deref(), Some(normal.as_str()));
    }

    #[test]
    fn classification_never_panics(path in "(/[a-zA-Z0-9%.;_~-]{0,6}){0,8}/?", method in prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"])) {
        let _ = classify(&Classifier::default(), method, &path);
        let _ = classify(&configured(), method, &path);
    }

    #[test]
    fn classification_never_panics_on_any_text(path in "/\\PC{0,60}", method in "[A-Z]{1,8}") {
        let _ = classify(&Classifier::default(), &method, &path);
        let _ = classify(&configured(), &method, &path);
    }
}

//! End to end against PHP apps on PHP's built-in server (`php -S`, Debian
//! php-cli, installed by scripts/test.sh): `tests/php/users.php` reads ids
//! the way legacy PHP does, with `(int)`, so `1.json` and `1abc` are user 1.

use std::process::Command;

use http::Method;
use serde_json::{Value, json};

use crate::audit::wait_entries;
use crate::helpers::*;

/// Serves `tests/php/<script>` on `php -S` as the router of every request,
/// its rows in a file of its own.
pub(crate) fn spawn_php(script: &str) -> AppServer {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/php").join(script);
    let dir = tempfile::tempdir().unwrap();
    let port = AppServer::free_port();
    let mut php = Command::new("php");
    php.args(["-S", &format!("127.0.0.1:{port}"), script.to_str().unwrap()])
        .env("APP_DB", dir.path().join("rows.json"));
    AppServer::start(&mut php, port, "php -S", "run scripts/test.sh: it installs Debian's php-cli").keeping(dir)
}

async fn query(app: &TestApp, path: &str) -> Value {
    serde_json::from_slice(get(&app.query(path)).await.body()).unwrap()
}

#[tokio::test]
async fn an_id_the_app_reads_loosely_files_under_the_resource_the_app_changed() {
    let php = spawn_php("users.php");
    let app = spawn_app_to(&php.url(""), &[], None).await;
    let ann = json!({"name": "Ann", "role": "user"});
    let (status, made) = as_user(&app, "alice", Method::POST, "/api/v1/users/", Some(&ann)).await;
    assert_eq!((status, made["id"].as_u64()), (201, Some(1)));
    // The probe: the app takes `1.json` and `1abc` as user 1.
    let (status, changed) =
        as_user(&app, "mallory", Method::PATCH, "/api/v1/users/1.json", Some(&json!({"role": "admin"}))).await;
    assert_eq!((status, changed["id"].as_u64(), changed["role"].as_str()), (200, Some(1), Some("admin")));
    let (status, _) =
        as_user(&app, "mallory", Method::PATCH, "/api/v1/users/1abc", Some(&json!({"name": "Mal"}))).await;
    assert_eq!(status, 200);
    let entries = wait_entries(&app.store, 3).await;
    for (e, path_id) in entries[1..].iter().zip(["1.json", "1abc"]) {
        assert_eq!((e.resource_type.as_str(), e.resource_id.as_deref()), ("user", Some("1")), "{e:?}");
        assert_eq!(e.path_resource_id.as_deref(), Some(path_id));
    }
    assert_eq!(entries[1].changes.len(), 1);
    assert_eq!((entries[1].changes[0].path.as_str(), &entries[1].changes[0].new), ("/role", &json!("admin")));
    assert_eq!(entries[0].path_resource_id, None, "a create's id is the app's own");
    // User 1's history, state and filters find both changes.
    let history = query(&app, "/api/v1/resources/user/1/history").await;
    let actors: Vec<&str> = history["items"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["alice", "mallory", "mallory"]);
    assert_eq!(history["items"][1]["path_resource_id"], "1.json");
    let state = query(&app, "/api/v1/resources/user/1/state").await;
    assert_eq!((state["state"]["role"].as_str(), state["state"]["name"].as_str()), (Some("admin"), Some("Mal")));
    let filtered = query(&app, "/api/v1/audit-logs?resource_type=user&resource_id=1").await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 3);
    assert_eq!(query(&app, "/api/v1/audit-logs?resource_id=1.json").await["items"], json!([]));
    assert!(app.store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn a_rules_id_pattern_reads_the_id_as_the_app_does() {
    let php = spawn_php("users.php");
    let rules = "[[resource]]\npattern = \"/api/v1/users/{id}\"\ntype = \"user\"\nid_pattern = '^0*(\\d+)'\n";
    let app = spawn_app_to(&php.url(""), &[], Some(rules)).await;
    as_user(&app, "alice", Method::POST, "/api/v1/users/", Some(&json!({"name": "Ann"}))).await;
    let (status, _) = as_user(&app, "bob", Method::PATCH, "/api/v1/users/1.json", Some(&json!({"name": "Bo"}))).await;
    assert_eq!(status, 200);
    let (status, _) = as_user(&app, "bob", Method::DELETE, "/api/v1/users/01", None).await;
    assert_eq!(status, 204);
    let entries = wait_entries(&app.store, 3).await;
    for e in &entries[1..] {
        // Read as 1 from the start: one resource, one lock, no other id to keep.
        assert_eq!((e.resource_id.as_deref(), e.path_resource_id.as_deref()), (Some("1"), None), "{e:?}");
    }
    assert_eq!(entries[1].before.as_ref().unwrap()["name"], "Ann");
    assert_eq!(entries[2].before.as_ref().unwrap()["name"], "Bo");
    assert_eq!(entries[2].action, "delete");
}

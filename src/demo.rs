//! The sample app of `auditgate demo` (also the tests' REST upstream): an
//! in-memory JSON store under `/api/…/{collection}/` with numeric ids. POST
//! creates (201 + `Location`), GET/PUT/PATCH/DELETE act on
//! `/{collection}/{id}/`; trailing slashes optional.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};

/// Collections by name; rows by id.
#[derive(Debug, Default)]
struct Data {
    next: u64,
    rows: BTreeMap<String, BTreeMap<u64, Value>>,
}

/// The sample app's routes, with fresh empty data.
pub fn router() -> Router {
    Router::new().route("/api/{*rest}", any(handle)).with_state(Arc::new(Mutex::new(Data::default())))
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut res = (status, v.to_string()).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, &json!({"detail": "not found"}))
}

async fn handle(
    State(data): State<Arc<Mutex<Data>>>,
    Path(rest): Path<String>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    // `/api/v1/users/3/` → ["users", "3"], skipping a version segment.
    let mut parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if parts.first().is_some_and(|p| p.len() > 1 && p.starts_with('v') && p[1..].bytes().all(|b| b.is_ascii_digit())) {
        parts.remove(0);
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let mut data = data.lock().unwrap_or_else(|e| e.into_inner());
    match (method, parts.as_slice()) {
        (Method::GET, [collection]) => {
            let rows: Vec<Value> =
                data.rows.get(*collection).map(|r| r.values().cloned().collect()).unwrap_or_default();
            json_response(StatusCode::OK, &Value::Array(rows))
        }
        (Method::POST, [collection]) => {
            let Some(Value::Object(mut obj)) = parsed else {
                return json_response(StatusCode::BAD_REQUEST, &json!({"detail": "send a JSON object"}));
            };
            data.next += 1;
            let id = data.next;
            obj.insert("id".into(), id.into());
            let row = Value::Object(obj);
            data.rows.entry((*collection).to_string()).or_default().insert(id, row.clone());
            let mut res = json_response(StatusCode::CREATED, &row);
            let base = uri.path().trim_end_matches('/');
            let location = format!("{base}/{id}/");
            res.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_str(&location).expect("a path is a header value"));
            res
        }
        (method, [collection, id]) => {
            let Ok(id) = id.parse::<u64>() else { return not_found() };
            let Some(rows) = data.rows.get_mut(*collection) else { return not_found() };
            match method {
                Method::GET => rows.get(&id).map_or_else(not_found, |v| json_response(StatusCode::OK, v)),
                Method::PATCH => {
                    let (Some(Value::Object(row)), Some(Value::Object(patch))) = (rows.get_mut(&id), parsed) else {
                        return not_found();
                    };
                    for (k, v) in patch {
                        if k != "id" {
                            row.insert(k, v);
                        }
                    }
                    json_response(StatusCode::OK, &Value::Object(row.clone()))
                }
                Method::PUT => {
                    let (true, Some(Value::Object(mut obj))) = (rows.contains_key(&id), parsed) else {
                        return not_found();
                    };
                    obj.insert("id".into(), id.into());
                    let row = Value::Object(obj);
                    rows.insert(id, row.clone());
                    json_response(StatusCode::OK, &row)
                }
                Method::DELETE => match rows.remove(&id) {
                    Some(_) => StatusCode::NO_CONTENT.into_response(),
                    None => not_found(),
                },
                _ => json_response(StatusCode::METHOD_NOT_ALLOWED, &json!({"detail": "method not allowed"})),
            }
        }
        _ => not_found(),
    }
}

/// Serves the sample app on `127.0.0.1` (port chosen by the OS) in the
/// background and returns its address.
pub async fn spawn_sample_app() -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router()).await {
            tracing::error!(error = %e, "sample app stopped");
        }
    });
    Ok(addr)
}

/// What `auditgate demo` prints: where things are and what to paste (with
/// `ca`, the CA file curl needs for the demo's HTTPS ports).
pub fn instructions(
    proxy: std::net::SocketAddr,
    query: std::net::SocketAddr,
    app: std::net::SocketAddr,
    ca: Option<&std::path::Path>,
) -> String {
    let (s, curl) = match ca {
        Some(ca) => ("https", format!("curl -s --cacert {}", ca.display())),
        None => ("http", "curl -s".to_string()),
    };
    format!(
        "auditgate demo
  sample app  http://{app}  (an in-memory REST API under /api/v1/<collection>/)
  proxy       {s}://{proxy}  (send your requests here)
  query port  {s}://{query}  (read the trail here)
  console     {s}://{query}/  (the same in a browser: the trail, each entry's diff, live tail)

Paste these in another terminal:

  {curl} -u alice:pw -H 'content-type: application/json' -d '{{\"name\": \"Alice\", \"email\": \"alice@example.com\", \"password\": \"s3cret\"}}' {s}://{proxy}/api/v1/users/
  {curl} -u bob:pw -X PATCH -H 'content-type: application/json' -d '{{\"email\": \"alice@corp.example\"}}' {s}://{proxy}/api/v1/users/1/
  {curl} -u bob:pw -X DELETE {s}://{proxy}/api/v1/users/1/

  {curl} {s}://{query}/api/v1/audit-logs
  {curl} {s}://{query}/api/v1/resources/user/1/history
  {curl} {s}://{query}/api/v1/verify

Record only user changes from now on (an audit configuration; the change
itself is in the trail), then see an order go unrecorded:

  {curl} -H 'content-type: application/json' -d '{{\"name\": \"Users only\", \"audit_resource_types\": [\"user\"]}}' {s}://{query}/api/v1/audit-configurations
  {curl} -u bob:pw -H 'content-type: application/json' -d '{{\"total\": 5}}' {s}://{proxy}/api/v1/orders/
  {curl} '{s}://{query}/api/v1/audit-logs?resource_type=order'

Ctrl-C stops everything.
"
    )
}

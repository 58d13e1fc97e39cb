//! An app with opinions about what it is sent, for `unapplied`: under
//! `/accounts/`, `POST` creates and `PATCH /accounts/{id}/` merges, but `role`
//! is read-only (always `"user"`), `email` is trimmed and lower-cased,
//! `address.city` capitalised, `secret` trimmed, and `password` is stored and
//! never shown. `GET /accounts/{id}/` reads one; `POST
//! /accounts/{id}/activate/` sets `active`, whatever it is sent.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::{Body, full};

/// The last id given, and the rows by id.
type Accounts = (u64, HashMap<u64, Map<String, Value>>);

fn accounts() -> &'static Mutex<Accounts> {
    static ACCOUNTS: OnceLock<Mutex<Accounts>> = OnceLock::new();
    ACCOUNTS.get_or_init(Default::default)
}

pub async fn handle(req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    let sent = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let mut guard = accounts().lock().unwrap();
    let (next, rows) = &mut *guard;
    match (method, segments.as_slice()) {
        (Method::POST, ["accounts"]) => {
            let Ok(Value::Object(fields)) = serde_json::from_slice(&sent) else { return answer(400, &Value::Null) };
            *next += 1;
            let mut row = Map::new();
            row.insert("id".into(), (*next).into());
            row.insert("role".into(), "user".into());
            apply(&mut row, fields);
            rows.insert(*next, row.clone());
            answer(201, &shown(&row))
        }
        (Method::POST, ["accounts", id, "activate"]) => {
            let Some(row) = id.parse().ok().and_then(|id: u64| rows.get_mut(&id)) else {
                return answer(404, &Value::Null);
            };
            row.insert("active".into(), true.into());
            answer(200, &shown(row))
        }
        (method, ["accounts", id]) => {
            let Some(row) = id.parse().ok().and_then(|id: u64| rows.get_mut(&id)) else {
                return answer(404, &Value::Null);
            };
            match method {
                Method::GET => answer(200, &shown(row)),
                Method::PATCH => match serde_json::from_slice(&sent) {
                    Ok(Value::Object(fields)) => {
                        apply(row, fields);
                        answer(200, &shown(row))
                    }
                    _ => answer(400, &Value::Null),
                },
                _ => answer(405, &Value::Null),
            }
        }
        _ => answer(404, &Value::Null),
    }
}

/// Stores what the app accepts, the way it stores it.
fn apply(row: &mut Map<String, Value>, fields: Map<String, Value>) {
    for (key, value) in fields {
        let value = match (key.as_str(), value) {
            ("id" | "role", _) => continue,
            ("email", Value::String(s)) => s.trim().to_lowercase().into(),
            ("secret", Value::String(s)) => s.trim().into(),
            ("address", Value::Object(mut address)) => {
                if let Some(Value::String(city)) = address.get("city") {
                    let mut chars = city.chars();
                    let capital: String =
                        chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
                    address.insert("city".into(), capital.into());
                }
                Value::Object(address)
            }
            (_, value) => value,
        };
        row.insert(key, value);
    }
}

/// A row as the app shows it: never its password.
fn shown(row: &Map<String, Value>) -> Value {
    Value::Object(row.iter().filter(|(k, _)| *k != "password").map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn answer(status: u16, body: &Value) -> Response<Body> {
    let mut res = Response::new(full(body.to_string()));
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    res.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    res
}

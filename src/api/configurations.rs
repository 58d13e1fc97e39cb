//! `/api/v1/audit-configurations` (docs/rules.md, docs/query-api.md): CRUD with validation that
//! names the field; writes need an admin token (when tokens exist), are
//! recorded in the trail, and take effect on this instance at once.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{ApiError, ApiState, Caller};
use crate::policy::{AuditConfiguration, Change, Source};
use crate::recorder::Recorder;

/// `GET /api/v1/audit-configurations`: every configuration, oldest first.
pub(super) async fn list(State(s): State<Arc<ApiState>>) -> Result<Json<Value>, ApiError> {
    let (_, configs) = s.store.configurations().await?;
    Ok(Json(json!({"items": configs})))
}

/// `GET /api/v1/audit-configurations/{id}`.
pub(super) async fn one(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let config = s.store.configuration(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(config.to_json()))
}

/// `POST /api/v1/audit-configurations`: 201 with the stored configuration.
pub(super) async fn create(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.must_be_admin()?;
    let trail = s.trail()?;
    let mut config = AuditConfiguration::new();
    config.apply(&parse_body(&body)?, &s.actions)?;
    let stored = s.store.insert_configuration(&config).await?;
    s.changed(&trail, caller.change("create", "POST", uri.path(), 201, &s.instance), None, Some(&stored)).await;
    let location = format!("{}/{}", uri.path().trim_end_matches('/'), stored.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(stored.to_json())).into_response())
}

/// `PUT` (replace: absent fields take their defaults) and `PATCH` (merge).
pub(super) async fn update(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.must_be_admin()?;
    let trail = s.trail()?;
    let id = parse_id(&id)?;
    let body = parse_body(&body)?;
    let old = s.store.configuration(id).await?.ok_or(ApiError::NotFound)?;
    let mut config = if method == Method::PATCH { old.clone() } else { AuditConfiguration::new() };
    config.apply(&body, &s.actions)?;
    config.id = id;
    config.source = Source::Api;
    let stored = s.store.update_configuration(&config).await?.ok_or(ApiError::NotFound)?;
    let change = caller.change("update", method.as_str(), uri.path(), 200, &s.instance);
    s.changed(&trail, change, Some(&old), Some(&stored)).await;
    Ok(Json(stored.to_json()))
}

/// `DELETE /api/v1/audit-configurations/{id}`: 204.
pub(super) async fn delete(
    State(s): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    caller.must_be_admin()?;
    empty_body(&body)?;
    let trail = s.trail()?;
    let old = s.store.delete_configuration(parse_id(&id)?).await?.ok_or(ApiError::NotFound)?;
    s.changed(&trail, caller.change("delete", "DELETE", uri.path(), 204, &s.instance), Some(&old), None).await;
    Ok(StatusCode::NO_CONTENT)
}

impl Caller {
    pub(super) fn change<'a>(
        &'a self,
        action: &'static str,
        method: &'a str,
        path: &'a str,
        status: u16,
        instance: &'a str,
    ) -> Change<'a> {
        Change {
            action,
            actor: &self.name,
            actor_source: self.source,
            client_ip: self.ip.to_string(),
            method,
            path,
            status,
            instance,
        }
    }
}

impl ApiState {
    /// The trail, held for the whole change so that it is recorded; gone
    /// (503) once shutdown has begun.
    pub(super) fn trail(&self) -> Result<Recorder, ApiError> {
        if self.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ApiError::ShuttingDown);
        }
        self.recorder.upgrade().ok_or(ApiError::ShuttingDown)
    }

    /// Records a configuration change and makes this instance obey it now
    /// (others reload within `config_refresh`).
    async fn changed(
        &self,
        trail: &Recorder,
        change: Change<'_>,
        before: Option<&AuditConfiguration>,
        after: Option<&AuditConfiguration>,
    ) {
        if trail.record(change.entry(before, after), None).await.is_err() {
            tracing::error!(action = change.action, path = change.path, "configuration change not recorded");
        }
        if let Err(e) = self.policy.reload(&self.store).await {
            tracing::warn!(error = %e, "audit configurations not reloaded; the refresh will retry");
        }
    }
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// The JSON of a configuration body; one larger than `MAX_BODY` is 413.
/// A DELETE's body: none, or the empty object `{}`.
pub(super) fn empty_body(body: &Result<Bytes, BytesRejection>) -> Result<(), ApiError> {
    if body.as_ref().is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace)) {
        return Ok(());
    }
    match parse_body(body)? {
        Value::Object(members) if members.is_empty() => Ok(()),
        _ => Err(ApiError::BadField { field: "body", reason: "expected no body or {}".into() }),
    }
}

pub(super) fn parse_body(body: &Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let body = body.as_ref().map_err(|e| {
        let mut causes = std::iter::successors(Some(e as &dyn std::error::Error), |e| e.source());
        let too_slow = causes.any(|c| matches!(c.downcast_ref(), Some(crate::inbound::ClientBodyError::TooSlow)));
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
            _ if too_slow => ApiError::TooSlow,
            _ => ApiError::BadField { field: "body", reason: e.body_text() },
        }
    })?;
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadField { field: "body", reason: format!("not valid JSON: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_takes_no_body_or_the_empty_object() {
        let body = |text: &'static str| Ok(Bytes::from_static(text.as_bytes()));
        for ok in ["", " \r\n", "{}", " { } "] {
            assert!(empty_body(&body(ok)).is_ok(), "{ok:?}");
        }
        for bad in ["x", "[]", "null", r#"{"id": 1}"#, "{"] {
            match empty_body(&body(bad)) {
                Err(ApiError::BadField { field: "body", .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}

//! The query port (SPEC 9): its own listener, JSON in and out, bearer tokens
//! when configured. `router(state)` is pure and tested without sockets.

mod body;
mod error;
mod logs;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

pub use error::ApiError;

use crate::recorder::RecorderStats;
use crate::store::SqliteStore;

/// A query-port token (`[query] tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub token: String,
    /// `read` or `admin`.
    pub role: String,
}

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub store: SqliteStore,
    pub recorder: Arc<RecorderStats>,
    pub tokens: Vec<Token>,
    /// Set at shutdown: `/readyz` answers 503 while the proxy drains.
    pub draining: std::sync::atomic::AtomicBool,
}

/// The query-port routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .route("/api/v1/audit-logs", get(logs::list))
        .route("/api/v1/audit-logs/export", get(logs::export))
        .route("/api/v1/audit-logs/{id}", get(logs::one))
        .route("/api/v1/resources/{kind}/{id}/history", get(logs::history))
        .route("/api/v1/verify", get(ops::verify))
        .route("/api/v1/stats", get(ops::stats))
        .route("/metrics", get(ops::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(api)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
}

/// With tokens configured, every route but health needs `Bearer <token>`.
async fn authorize(State(state): State<Arc<ApiState>>, req: Request, next: Next) -> Result<Response, ApiError> {
    if state.tokens.is_empty() {
        return Ok(next.run(req).await);
    }
    let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if state.tokens.iter().any(|k| constant_time_eq(k.token.as_bytes(), t.trim().as_bytes())) => {
            Ok(next.run(req).await)
        }
        _ => Err(ApiError::Unauthorized),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the router on a bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await {
        tracing::error!(error = %e, "query port stopped");
    }
}

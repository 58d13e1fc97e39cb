//! The query port (docs/query-api.md): its own listener, JSON in and out, bearer tokens
//! when configured. `router(state)` is pure and tested without sockets.

mod body;
mod configurations;
mod console;
mod erasures;
mod error;
mod guard;
mod holds;
mod logs;
mod openapi;
mod ops;
mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;

pub use error::ApiError;
pub use stream::Streams;

use crate::identity::ActorSource;
use crate::policy::Policy;
use crate::recorder::WeakRecorder;
use crate::store::Store;

pub use crate::config::Token;

/// What the handlers share.
#[derive(Debug)]
pub struct ApiState {
    pub store: Store,
    /// Configuration changes are recorded through it (weak: it does not
    /// hold the writer open at shutdown); its counters feed `/metrics`.
    pub recorder: WeakRecorder,
    pub policy: Arc<Policy>,
    /// Every action name a configuration may use.
    pub actions: std::collections::HashSet<String>,
    pub instance: String,
    pub tokens: Vec<Token>,
    /// `https` with `[tls]`, else `http`: the scheme of this port's own origin.
    pub scheme: &'static str,
    /// Open event streams by caller (token name, or `local`), each at most
    /// `[query] max_streams`.
    pub streams: Arc<stream::Streams>,
    /// Set at shutdown: `/readyz` answers 503 while the proxy drains.
    pub draining: std::sync::atomic::AtomicBool,
    /// The OpenAPI document, made on first request.
    pub openapi: std::sync::OnceLock<String>,
    /// Resource turns taken without the store's lock (it failed).
    pub shared_lock_errors: Arc<std::sync::atomic::AtomicU64>,
    /// TLS handshakes on both listeners (with `[tls]` only).
    pub tls_handshakes: Option<Arc<crate::tls::HandshakeStats>>,
    /// `[[sink]]`'s counters.
    pub sinks: Vec<Arc<crate::sink::SinkStats>>,
}

/// The query-port routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let api = Router::new()
        .route("/api/v1/audit-logs", get(logs::list))
        .route("/api/v1/audit-logs/export", get(logs::export))
        .route("/api/v1/audit-logs/{id}", get(logs::one))
        .route("/api/v1/audit-logs/stream", get(stream::stream))
        .route("/api/v1/resources/{kind}/{id}/history", get(logs::history))
        .route("/api/v1/resources/{kind}/{id}/state", get(logs::state))
        .route("/api/v1/audit-configurations", get(configurations::list).post(configurations::create))
        .route(
            "/api/v1/audit-configurations/{id}",
            get(configurations::one)
                .put(configurations::update)
                .patch(configurations::update)
                .delete(configurations::delete),
        )
        .route("/api/v1/erasures", axum::routing::post(erasures::create))
        .route("/api/v1/holds", get(holds::list).post(holds::create))
        .route("/api/v1/holds/{id}", axum::routing::delete(holds::release))
        .route("/api/v1/verify", get(ops::verify))
        .route("/api/v1/stats", get(ops::stats))
        .route("/api/v1/openapi.json", get(ops::openapi))
        .route("/metrics", get(ops::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .route_layer(middleware::from_fn(guard::json_changes));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(console::router())
        .merge(api)
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), guard::browsers))
        .layer(middleware::map_response(error::json_answers))
        .with_state(state)
}

/// Who is calling the query port: a token's name and role, or `local`
/// (every caller, an administrator) when no tokens are configured.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub source: ActorSource,
    pub admin: bool,
    pub ip: std::net::IpAddr,
}

impl Caller {
    /// Writes need the `admin` role.
    pub fn must_be_admin(&self) -> Result<(), ApiError> {
        if self.admin { Ok(()) } else { Err(ApiError::Forbidden) }
    }
}

/// With tokens configured, every route but health needs `Bearer <token>`;
/// the caller is attached to the request for the handlers.
async fn authorize(State(state): State<Arc<ApiState>>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    let ip = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::Ipv4Addr::LOCALHOST.into(), |c| c.0.ip().to_canonical());
    let caller = if state.tokens.is_empty() {
        Caller { name: "local".into(), source: ActorSource::Anonymous, admin: true, ip }
    } else {
        let given =
            req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let token = given
            .and_then(|t| state.tokens.iter().find(|k| constant_time_eq(k.token.as_bytes(), t.trim().as_bytes())))
            .ok_or(ApiError::Unauthorized)?;
        Caller { name: token.name.clone(), source: ActorSource::Token, admin: token.role == "admin", ip }
    };
    req.extensions_mut().insert(caller);
    Ok(next.run(req).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What serves one connection of the query port.
#[derive(Debug)]
struct ApiConn {
    app: Router,
    peer: std::net::SocketAddr,
    body_rate: crate::inbound::BodyRate,
}

impl crate::conn::Serve for ApiConn {
    type Body = axum::body::Body;

    fn call(
        self: Arc<Self>,
        mut req: http::Request<hyper::body::Incoming>,
    ) -> impl Future<Output = http::Response<axum::body::Body>> + Send + 'static {
        use tower::ServiceExt;
        req.extensions_mut().insert(ConnectInfo(self.peer));
        // The proxy port's minimum body rate holds here too.
        let req = req.map(|body| axum::body::Body::new(crate::inbound::Inbound::new(body, self.body_rate)));
        let app = self.app.clone();
        async move { app.oneshot(req).await.unwrap_or_else(|e| match e {}) }
    }
}

/// Serves the router on a bound listener until `shutdown` resolves, with
/// the proxy port's connection deadlines and cap (`crate::conn`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    limits: crate::conn::ConnLimits,
    body_rate: crate::inbound::BodyRate,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = router(state);
    let handler = |peer: std::net::SocketAddr| ApiConn { app: app.clone(), peer, body_rate };
    crate::conn::serve(listener, limits, handler, shutdown).await;
}

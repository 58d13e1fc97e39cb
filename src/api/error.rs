//! Query-port errors: a status and `{"error": "…", "field": "…"}`; causes
//! are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::policy::FieldError;
use crate::store::{FilterError, StoreError};

/// An answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{field}: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("missing or unknown bearer token")]
    Unauthorized,
    #[error("this token may only read")]
    Forbidden,
    #[error("shutting down")]
    ShuttingDown,
    #[error("request body too large")]
    TooLarge,
    #[error("request body too slow")]
    TooSlow,
    #[error("{0}")]
    Config(#[from] FieldError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A legal hold stands in the way (409).
    #[error("{why}")]
    Held { hold: i64, why: String },
    /// A tokenless port named by a host that is not this machine's
    /// loopback (421): DNS rebinding.
    #[error("this port answers only to a loopback host name")]
    MisdirectedHost,
    /// A request from a web page of another origin (403).
    #[error("requests from another origin are refused")]
    ForeignOrigin,
    /// A state change whose body is not declared JSON (415).
    #[error("a change needs Content-Type: application/json")]
    NotJson,
    /// This caller holds `[query] max_streams` open streams already (429).
    #[error("too many open streams")]
    TooManyStreams(usize),
    /// The request cannot be served yet (503), with why.
    #[error("{0}")]
    NotYet(String),
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        ApiError::BadField { field: e.field, reason: e.reason }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::BadField { field, reason } => (StatusCode::BAD_REQUEST, json!({"error": reason, "field": field})),
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, json!({"error": "method not allowed"})),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, json!({"error": "missing or unknown bearer token"})),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, json!({"error": "this token may only read"})),
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "shutting down"})),
            ApiError::TooSlow => {
                (StatusCode::REQUEST_TIMEOUT, json!({"error": "request body too slow", "field": "body"}))
            }
            ApiError::TooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "request body too large", "field": "body"}))
            }
            ApiError::Config(e) => (StatusCode::BAD_REQUEST, json!({"error": e.reason, "field": e.field})),
            ApiError::Held { hold, why } => (StatusCode::CONFLICT, json!({"error": why, "hold": hold})),
            ApiError::MisdirectedHost => (
                StatusCode::MISDIRECTED_REQUEST,
                json!({"error": "this port answers only to a loopback host name (it has no tokens)", "field": "host"}),
            ),
            ApiError::ForeignOrigin => {
                (StatusCode::FORBIDDEN, json!({"error": "requests from another origin are refused", "field": "origin"}))
            }
            ApiError::NotJson => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "a change needs Content-Type: application/json", "field": "content-type"}),
            ),
            ApiError::TooManyStreams(max) => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": format!("this token holds {max} open streams, the most [query] max_streams allows; \
                    close one first")}),
            ),
            ApiError::NotYet(why) => (StatusCode::SERVICE_UNAVAILABLE, json!({"error": why})),
            ApiError::Store(StoreError::DuplicateName(name)) => (
                StatusCode::CONFLICT,
                json!({"error": format!("a configuration named `{name}` already exists"), "field": "name"}),
            ),
            ApiError::Store(e) if e.is_caused_by_query() => {
                tracing::debug!(error = %e, "query refused by the store");
                (StatusCode::BAD_REQUEST, json!({"error": "the store cannot run this query", "field": "query"}))
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "query failed");
                (StatusCode::SERVICE_UNAVAILABLE, json!({"error": "store unavailable"}))
            }
        };
        let mut res = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            res.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The largest body an error answer is read back from to be rewritten.
const ERROR_TEXT: usize = 64 * 1024;

/// Every answer of the port in its JSON shape, ending in a newline (a
/// shell prompt after `curl` starts on a line of its own): an error that
/// is not JSON (axum's own refusals of a path or a query, plain text) is
/// put into `{"error": "…"}`; any other JSON answer gets its newline.
/// Event streams, exports and the console's files pass as they are.
pub(super) async fn json_answers(res: Response) -> Response {
    let json = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json"));
    let failed = res.status().is_client_error() || res.status().is_server_error();
    if !json && !failed {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, if json { usize::MAX } else { ERROR_TEXT }).await.unwrap_or_default();
    let mut text = if json {
        bytes.to_vec()
    } else {
        let said = String::from_utf8_lossy(&bytes).trim().to_string();
        let said = if said.is_empty() { parts.status.canonical_reason().unwrap_or("error").to_string() } else { said };
        parts
            .headers
            .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
        json!({ "error": said }).to_string().into_bytes()
    };
    if text.last() != Some(&b'\n') {
        text.push(b'\n');
    }
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(text))
}

impl From<crate::erasure::EraseError> for ApiError {
    fn from(e: crate::erasure::EraseError) -> Self {
        match e {
            crate::erasure::EraseError::Held(ref hold) => ApiError::Held { hold: hold.id, why: e.to_string() },
            crate::erasure::EraseError::Store(e) => ApiError::Store(e),
        }
    }
}

//! Errors of the data path, tagged with their source; the source picks the
//! status and the log level, and clients see a fixed message only.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::body::ResponseBody;

/// Why the proxy answered instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client sent something the proxy will not forward.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("method not allowed: {0}")]
    MethodNotAllowed(&'static str),
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    #[error("request body larger than max_body_bytes")]
    BodyTooLarge,
    /// The client's body broke off or was malformed (e.g. bad chunking).
    #[error("client body: {0}")]
    ClientBody(Box<dyn std::error::Error + Send + Sync>),
    /// The client sent its body slower than `body_min_rate`.
    #[error("the client sent its body slower than limits.body_min_rate")]
    ClientTimeout,
    #[error("upstream unreachable: {0}")]
    Upstream(#[source] super::UpstreamError),
    #[error("upstream did not answer within upstream_timeout")]
    UpstreamTimeout,
    /// `fail_mode = "closed"` and the change's entry could not be recorded:
    /// not forwarded.
    #[error(transparent)]
    TrailUnavailable(#[from] crate::recorder::Unrecordable),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) | ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ProxyError::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TrailUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The fixed message a client sees.
    fn public_message(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(why) | ProxyError::MethodNotAllowed(why) | ProxyError::NotImplemented(why) => why,
            ProxyError::BodyTooLarge => "request body too large",
            ProxyError::ClientBody(_) => "malformed request body",
            ProxyError::ClientTimeout => "request body too slow",
            ProxyError::Upstream(_) => "upstream unreachable",
            ProxyError::UpstreamTimeout => "upstream timed out",
            ProxyError::TrailUnavailable(_) => "the audit trail cannot record this change now",
        }
    }

    /// Logs by source (upstream: warn; client: debug) and builds the answer.
    pub fn into_response(self) -> Response<ResponseBody> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, status = status.as_u16(), "request not served");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "refused request");
        }
        json_error(status, self.public_message())
    }
}

/// A JSON error body `{"error": "..."}` with the given status.
pub fn json_error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut res = Response::new(ResponseBody::made(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

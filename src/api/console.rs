//! The web console (docs/query-api.md, `GET /`): its files, embedded at build time and
//! served without a token (they hold no data; the page asks for one and
//! sends it on its API calls), under a Content-Security-Policy that allows
//! scripts, styles and requests from this origin only.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");
const ICON: &str = include_str!("console/icon.svg");

/// No inline script or style, nothing from another origin, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page's paths (each serves the same page, which routes on its own
/// path) and its files.
pub fn router() -> Router<Arc<ApiState>> {
    let page = || get(|| async { file(PAGE, "text/html; charset=utf-8") });
    Router::new()
        .route("/", page())
        .route("/entries/{id}", page())
        .route("/resources/{kind}/{id}", page())
        .route("/configurations", page())
        .route("/status", page())
        .route("/console/app.js", get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }))
        .route("/console/app.css", get(|| async { file(STYLE, "text/css; charset=utf-8") }))
        .route("/console/icon.svg", get(|| async { file(ICON, "image/svg+xml") }))
}

fn file(body: &'static str, content_type: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Small files: revalidated each time, so an upgrade shows at once.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

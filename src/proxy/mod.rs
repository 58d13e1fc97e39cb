//! The data path: every client request goes through `Proxy::handle`, which
//! classifies it, streams it to the upstream untouched unless it is audited,
//! and returns the upstream's answer minus hop-by-hop headers.

mod body;
mod error;
mod headers;
mod server;
mod upgrade;
mod upstream;

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, request};
use http_body_util::{BodyExt, Either, Limited};
use hyper::body::Incoming;

pub use body::{ResponseBody, UpstreamBody};
pub use error::{ProxyError, json_error};
pub use headers::{X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID, strip_hop_by_hop};
pub use server::{ConnInfo, serve};
pub use upstream::{Affinity, UpstreamClient, UpstreamError};

use crate::config::{Config, Limits};
use crate::identity::{ActorRules, TrustedProxies, client_addr};
use crate::resource::{
    Classification, Classified, Classifier, OVERRIDE_HEADERS, OverrideError, OverridePolicy, effective_method,
    form_method_override,
};

/// Everything a request needs, built once at start and shared.
#[derive(Debug)]
pub struct Proxy {
    /// A path prefix the upstream is mounted under (`""` for none).
    base_path: String,
    /// `Host` for a request that named none (HTTP/1.0).
    upstream_host: HeaderValue,
    upstream: UpstreamClient,
    classifier: Classifier,
    trusted: TrustedProxies,
    actor: ActorRules,
    method_override: OverridePolicy,
    limits: Limits,
}

impl Proxy {
    /// Builds the data path; `config.upstream` must be set.
    pub fn new(config: &Config, classifier: Classifier) -> Option<Proxy> {
        let upstream = config.upstream.as_ref()?;
        Some(Proxy {
            base_path: upstream.base_path.clone(),
            upstream_host: HeaderValue::from_str(upstream.authority.as_str()).ok()?,
            upstream: UpstreamClient::new(upstream, config.limits.upstream_timeout),
            classifier,
            trusted: config.trusted_proxies.clone(),
            actor: config.actor.clone(),
            method_override: config.method_override,
            limits: config.limits.clone(),
        })
    }

    /// Whether a TCP peer's forwarding headers are believed.
    pub fn trusts(&self, peer: SocketAddr) -> bool {
        self.trusted.contains(peer.ip())
    }

    /// Serves one request; every failure becomes the right HTTP answer.
    pub async fn handle(&self, conn: &ConnInfo, req: Request<Incoming>) -> Response<ResponseBody> {
        self.forward(conn, req).await.unwrap_or_else(ProxyError::into_response)
    }

    async fn forward(&self, conn: &ConnInfo, mut req: Request<Incoming>) -> Result<Response<ResponseBody>, ProxyError> {
        let upgrade = (req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers()))
            .then(|| hyper::upgrade::on(&mut req));
        let version = req.version();
        let (mut parts, body) = req.into_parts();
        let method = self.effective_method(&mut parts)?;
        let audited = self.audited(&method, &parts);
        let body = match audited {
            None => UpstreamBody::stream(body),
            Some(classified) => {
                let bytes = self.read_body(&parts, body).await?;
                let classified = self.reclassify_form(&parts, &bytes, classified)?;
                self.note_audited(conn, &parts, &classified);
                UpstreamBody::buffered(bytes)
            }
        };
        let request = self.upstream_request(conn, parts, body, upgrade.is_some());
        let affinity = (version != Version::HTTP_2).then_some(&conn.affinity);
        let response = tokio::time::timeout(self.limits.upstream_timeout, self.upstream.send(affinity, request))
            .await
            .map_err(|_| ProxyError::UpstreamTimeout)?
            .map_err(ProxyError::Upstream)?;
        Ok(self.client_response(response, upgrade))
    }

    /// The method the request acts as; applies `method_override`.
    fn effective_method(&self, parts: &mut request::Parts) -> Result<Method, ProxyError> {
        if parts.method != Method::POST && self.method_override == OverridePolicy::Honour {
            return Ok(parts.method.clone());
        }
        let method = effective_method(&parts.method, &parts.headers, self.method_override).map_err(|e| match e {
            OverrideError::Conflicting => ProxyError::BadRequest("conflicting method override headers"),
            OverrideError::Invalid => ProxyError::BadRequest("invalid method override"),
            OverrideError::Rejected => ProxyError::BadRequest("method override not allowed"),
        })?;
        if self.method_override == OverridePolicy::Strip {
            for name in &OVERRIDE_HEADERS {
                parts.headers.remove(name);
            }
        }
        Ok(method)
    }

    /// The classification of a request that will be audited; `None` streams it.
    /// Decided from the method before anything else: reads pass straight through.
    fn audited(&self, method: &Method, parts: &request::Parts) -> Option<Classified> {
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::CONNECT) {
            return None;
        }
        match self.classifier.classify(method, parts.uri.path(), parts.uri.query(), &parts.headers) {
            Classification::Resource(c) if c.action.is_mutation() => Some(c),
            _ => None,
        }
    }

    /// Reads an audited request's body whole, within `max_body_bytes`.
    async fn read_body(&self, parts: &request::Parts, body: Incoming) -> Result<Bytes, ProxyError> {
        let max = self.limits.max_body_bytes;
        let declared =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(ProxyError::BodyTooLarge);
        }
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => match e.downcast::<hyper::Error>() {
                Ok(e) => Err(ProxyError::ClientBody(*e)),
                Err(_) => Err(ProxyError::BodyTooLarge),
            },
        }
    }

    /// Applies a `_method` field of a urlencoded `POST` form (SPEC 2).
    fn reclassify_form(
        &self,
        parts: &request::Parts,
        body: &[u8],
        classified: Classified,
    ) -> Result<Classified, ProxyError> {
        let is_form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
        if parts.method != Method::POST || !is_form {
            return Ok(classified);
        }
        let Some(method) = form_method_override(body) else { return Ok(classified) };
        match self.method_override {
            OverridePolicy::Reject => Err(ProxyError::BadRequest("method override not allowed")),
            OverridePolicy::Strip => Ok(classified),
            OverridePolicy::Honour => {
                match self.classifier.classify(&method, parts.uri.path(), parts.uri.query(), &parts.headers) {
                    Classification::Resource(c) => Ok(c),
                    Classification::Ignored { .. } => Ok(classified),
                }
            }
        }
    }

    /// Logs the audit decision; the recorder takes this over in the audit-trail work.
    fn note_audited(&self, conn: &ConnInfo, parts: &request::Parts, c: &Classified) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let actor = self.actor.resolve(&parts.headers, conn.peer_trusted);
        let addr = client_addr(&self.trusted, conn.peer.ip(), &parts.headers);
        tracing::debug!(
            action = %c.action,
            resource_type = %c.resource.kind,
            resource_id = c.resource.id.as_deref().unwrap_or(""),
            actor = %actor.name,
            actor_source = ?actor.source,
            client_ip = %addr.client,
            "audited request"
        );
    }

    /// The request as the upstream receives it.
    fn upstream_request(
        &self,
        conn: &ConnInfo,
        mut parts: request::Parts,
        body: UpstreamBody,
        upgrade: bool,
    ) -> Request<UpstreamBody> {
        let host = parts
            .headers
            .get(HOST)
            .cloned()
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        if !parts.headers.contains_key(HOST) {
            let value = host.clone().unwrap_or_else(|| self.upstream_host.clone());
            parts.headers.insert(HOST, value);
        }
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        if !conn.peer_trusted {
            parts.headers.remove(&self.actor.header);
        }
        headers::set_forwarding(
            &mut parts.headers,
            headers::Hop { peer: &conn.peer_value, peer_trusted: conn.peer_trusted, proto: conn.proto, host },
        );
        if !parts.headers.contains_key(&X_REQUEST_ID) {
            let mut id = [0u8; ulid::ULID_LEN];
            let id = ulid::Ulid::new().array_to_str(&mut id);
            parts.headers.insert(X_REQUEST_ID, HeaderValue::from_str(id).expect("a ULID is a header value"));
        }
        parts.uri = self.origin_form(&parts.uri);
        parts.version = Version::HTTP_11;
        Request::from_parts(parts, body)
    }

    /// The request target toward the upstream: the client's path and query
    /// (never its scheme or authority), under the upstream's base path.
    fn origin_form(&self, uri: &Uri) -> Uri {
        let pq = uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        let pq = if self.base_path.is_empty() {
            pq
        } else {
            format!("{}{}", self.base_path, pq.as_str()).parse().unwrap_or_else(|_| PathAndQuery::from_static("/"))
        };
        Uri::from(pq)
    }

    /// The upstream's answer as the client receives it.
    fn client_response(
        &self,
        mut response: Response<Incoming>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match client_upgrade {
            Some(client) if switching => upgrade::tunnel(client, hyper::upgrade::on(&mut response)),
            _ => {}
        }
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, switching);
        Response::from_parts(parts, Either::Left(body))
    }
}

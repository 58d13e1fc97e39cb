//! The data path: every client request goes through `Proxy::handle`, which
//! classifies it, streams it to the upstream untouched unless it is audited,
//! and returns the upstream's answer minus hop-by-hop headers.

mod answer;
mod body;
mod error;
mod forward;
mod headers;
mod server;
mod tee;
mod upgrade;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version, request};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use answer::{AnswerBody, AnswerError};
pub use body::ResponseBody;
pub use error::ProxyError;
pub use headers::strip_hop_by_hop;
use headers::{Refusal, X_REQUEST_ID};
pub use server::{ConnInfo, serve};
pub use tee::{EndHook, Tee};

use crate::audit::{Answered, Auditor, Pending, Recording, RequestFacts};
use crate::config::{Config, Limits};
use crate::identity::{Actor, ActorRules, ActorSource, TrustedProxies, client_addr};
use crate::inbound::{BodyRate, ClientBodyError, ClientFault, Inbound, Progress};
use crate::policy::{Capture, Compiled, Decision, Policy, Question};
use crate::recorder::Recorder;
use crate::resource::{
    Action, Classification, Classified, Classifier, OVERRIDE_HEADERS, OverrideError, OverridePolicy, Rule,
    changes_state, effective_method, form_method_override,
};
use crate::snapshot::{ResourceGuard, ResourceLocks, Snapshotter};
use crate::upstream::{Affinity, RawBody, RequestHead, UpstreamBody, UpstreamClient, UpstreamError};
use crate::whoami::Whoami;

/// The longest header name the `http` types take.
const MAX_NAME: usize = u16::MAX as usize;

/// Whether a path holds `%2F` or `%5C` (any case).
fn has_encoded_slash(path: &str) -> bool {
    path.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && matches!((w[1], w[2].to_ascii_uppercase()), (b'2', b'F') | (b'5', b'C')))
}

/// Everything a request needs, built once at start and shared.
#[derive(Debug)]
pub struct Proxy {
    /// A path prefix the upstream is mounted under (`""` for none).
    base_path: String,
    /// `Host` for a request that named none (HTTP/1.0).
    upstream_host: HeaderValue,
    upstream: Arc<UpstreamClient>,
    auditor: Arc<Auditor>,
    classifier: Arc<Classifier>,
    trusted: TrustedProxies,
    actor: ActorRules,
    method_override: OverridePolicy,
    reject_encoded_slashes: bool,
    limits: Limits,
    /// How slowly a client may send its body.
    body_rate: BodyRate,
    /// The audit configurations in force (swapped on change).
    policy: Arc<Policy>,
    /// The whoami actor source, when `actor.whoami_url` is set.
    whoami: Option<Whoami>,
}

impl Proxy {
    /// Builds the data path; `config.upstream` must be set, and
    /// `upstream_tls` for an `https://` upstream.
    pub fn new(
        config: &Config,
        classifier: Classifier,
        recorder: Recorder,
        locks: ResourceLocks,
        policy: Arc<Policy>,
        upstream_tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Option<Proxy> {
        let upstream = config.upstream.as_ref()?;
        let client = Arc::new(UpstreamClient::new(upstream, config.limits.upstream_timeout, upstream_tls));
        let snapshots = Snapshotter::new(client.clone(), upstream.base_path.clone(), &config.snapshot);
        let classifier = Arc::new(classifier);
        let auditor =
            Auditor::new(snapshots, recorder, locks, &config.snapshot, classifier.clone(), config.instance.clone());
        Some(Proxy {
            base_path: upstream.base_path.clone(),
            upstream_host: HeaderValue::from_str(upstream.authority.as_str()).ok()?,
            upstream: client,
            auditor: Arc::new(auditor),
            classifier,
            trusted: config.trusted_proxies.clone(),
            actor: config.actor.clone(),
            method_override: config.method_override,
            reject_encoded_slashes: config.reject_encoded_slashes,
            limits: config.limits.clone(),
            body_rate: BodyRate::new(&config.limits),
            policy,
            whoami: config.actor.whoami_url.clone().map(|url| Whoami::new(url, config.actor.whoami_field.clone())),
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
        let (method, policy) = self.prepare(version, &mut parts, upgrade.is_some())?;
        let body = Inbound::new(body, self.body_rate);
        let Some(classified) = self.candidate(&method, &parts, &policy) else {
            if self.goes_lean(version, &upgrade) && http_body::Body::is_end_stream(&body) {
                return self.pass_bodiless(conn, parts).await;
            }
            // Boxed like the audit: a streamed body is the exception, and its
            // client's state would make every request's future larger.
            let response = Box::pin(self.send(conn, version, parts, UpstreamBody::stream(body))).await?;
            return Ok(self.streamed(response, upgrade));
        };
        // Routers disagree on `%2F` (a separator to some, part of a segment
        // to others): the trail could name another resource.
        if self.reject_encoded_slashes && classified.action.is_mutation() && has_encoded_slash(parts.uri.path()) {
            return Err(ProxyError::BadRequest("encoded slash in the path of a change"));
        }
        // Boxed: the audit's state is kilobytes, and a future that holds it
        // inline would be moved whole for every request, passed through or not.
        Box::pin(self.forward_candidate(conn, version, parts, body, classified, &policy, upgrade)).await
    }

    /// What every request goes through first: its framing checked, the
    /// hop-by-hop headers dropped (so it is classified exactly as
    /// forwarded, docs/rules.md), its effective method, and the configurations in
    /// force.
    fn prepare(
        &self,
        version: Version,
        parts: &mut request::Parts,
        upgrade: bool,
    ) -> Result<(Method, arc_swap::Guard<Arc<Compiled>>), ProxyError> {
        headers::check_framing(&parts.method, version, &mut parts.headers).map_err(|r| match r {
            Refusal::Malformed(why) => ProxyError::BadRequest(why),
            Refusal::Method => ProxyError::MethodNotAllowed("CONNECT is not served by a reverse proxy"),
            Refusal::Coding => ProxyError::NotImplemented("only the chunked transfer coding is accepted"),
        })?;
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        let method = self.effective_method(parts)?;
        Ok((method, self.policy.current()))
    }

    /// Whether connections' lean lanes may serve requests: they pass
    /// through on the lean upstream connection, which a TLS upstream lacks.
    pub fn serves_lean(&self) -> bool {
        self.upstream.speaks_raw()
    }

    /// A bodiless HTTP/1.1 request a connection's lean lane read: answered
    /// here when it passes through, `None` when it may be recorded (the
    /// connection's hyper server then serves it, from its first byte). A
    /// plain read goes out as the client wrote it (`RawForward`); anything
    /// else through the `http` types, as hyper's requests do.
    pub async fn handle_lean(&self, conn: &ConnInfo, head: crate::conn::Head<'_>) -> Option<Response<ResponseBody>> {
        if let Some(forward) = self.plain_read(conn, &head) {
            return Some(self.pass_head(conn, &forward).await.unwrap_or_else(ProxyError::into_response));
        }
        let mut parts = head.parts()?;
        let (method, policy) = match self.prepare(Version::HTTP_11, &mut parts, false) {
            Ok(prepared) => prepared,
            Err(e) => return Some(e.into_response()),
        };
        if self.candidate(&method, &parts, &policy).is_some() {
            return None;
        }
        drop(policy);
        Some(self.pass_bodiless(conn, parts).await.unwrap_or_else(ProxyError::into_response))
    }

    /// A read that is never recorded, in the plainest form (an origin-form
    /// target, one `Host`, no method override header), ready to go out as
    /// written; `None` for any other request.
    fn plain_read<'a>(
        &'a self,
        conn: &'a ConnInfo,
        head: &crate::conn::Head<'a>,
    ) -> Option<forward::RawForward<'a, impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone + use<'a>>> {
        let method = head.method();
        let read = matches!(method, b"GET" | b"HEAD");
        if !(read || matches!(method, b"OPTIONS" | b"TRACE")) || (read && self.policy.current().audits_reads()) {
            return None;
        }
        // The target exactly as the `http` types would keep it (they drop a
        // fragment, and refuse some bytes httparse lets through).
        let target = head.target();
        let kept = PathAndQuery::from_maybe_shared(head.target_shared()).ok()?;
        if target.first() != Some(&b'/') || kept.as_str().as_bytes() != target {
            return None;
        }
        let mut hosts = 0;
        for (name, _) in head.fields() {
            if name.len() > MAX_NAME {
                return None;
            } else if name.eq_ignore_ascii_case(b"host") {
                hosts += 1;
            } else if OVERRIDE_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h.as_str().as_bytes())) {
                return None;
            }
        }
        (hosts == 1).then(|| forward::RawForward {
            method,
            base_path: &self.base_path,
            target,
            fields: head.fields(),
            peer: &conn.peer_value,
            peer_trusted: conn.peer_trusted,
            proto: conn.proto,
            actor: &self.actor.header,
            request_id: forward::new_id(),
        })
    }

    /// A request that may be recorded: its entry begun, sent, and completed
    /// behind its answer; or, not recorded, sent within its resource's turn.
    #[allow(clippy::too_many_arguments)]
    async fn forward_candidate(
        &self,
        conn: &ConnInfo,
        version: Version,
        mut parts: request::Parts,
        body: Inbound,
        classified: Classified,
        policy: &Compiled,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let (body, audit) = self.begin_audit(conn, &mut parts, body, classified, policy).await?;
        match audit {
            Audit::Recorded(pending) => {
                let sent = match body {
                    ClientBody::Read(whole) if self.goes_lean(version, &upgrade) => {
                        self.send_lean(conn, parts, &whole).await.map(|r| r.map(Sent::Raw))
                    }
                    body => self.send(conn, version, parts, body.into_upstream()).await.map(|r| r.map(Sent::Hyper)),
                };
                match sent {
                    Ok(response) => Ok(self.finish_audit(*pending, response).await),
                    Err(e) => {
                        self.auditor.fail(*pending, e.status().as_u16()).await;
                        Err(e)
                    }
                }
            }
            // The change is made (or failed): the resource's turn ends here.
            Audit::Unrecorded(turn) => {
                let sent = self.send(conn, version, parts, body.into_upstream()).await;
                drop(turn);
                Ok(self.streamed(sent?, upgrade))
            }
        }
    }

    /// Whether a request can go on the client connection's lean upstream
    /// connection: HTTP/1.x, no upgrade, a cleartext upstream.
    fn goes_lean(&self, version: Version, upgrade: &Option<hyper::upgrade::OnUpgrade>) -> bool {
        upgrade.is_none() && version != Version::HTTP_2 && self.upstream.speaks_raw()
    }

    /// A bodiless HTTP/1.x request passed through on the client connection's
    /// lean upstream connection (the common case: most reads).
    async fn pass_bodiless(
        &self,
        conn: &ConnInfo,
        parts: request::Parts,
    ) -> Result<Response<ResponseBody>, ProxyError> {
        self.pass_head(conn, &self.upstream_parts(conn, parts, false)).await
    }

    /// A bodiless request's head, as the upstream receives it, passed
    /// through on the lean upstream connection; the answer as the client
    /// receives it.
    async fn pass_head(
        &self,
        conn: &ConnInfo,
        head: &(impl RequestHead + Sync),
    ) -> Result<Response<ResponseBody>, ProxyError> {
        let (parts, body) = self.send_head(conn, head, b"").await?.into_parts();
        Ok(self.client_response(parts, ResponseBody::raw(body), None))
    }

    /// Sends a request with its whole `body` (an audited request's, read) on
    /// the client connection's lean upstream connection, where hyper's
    /// client connection would add its task and channel.
    async fn send_lean(
        &self,
        conn: &ConnInfo,
        parts: request::Parts,
        body: &[u8],
    ) -> Result<Response<RawBody>, ProxyError> {
        let mut parts = self.upstream_parts(conn, parts, false);
        // The body goes whole: its length frames it (a chunked client body
        // lost its Transfer-Encoding with the hop-by-hop headers).
        if !body.is_empty() {
            parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        self.send_head(conn, &parts, body).await
    }

    /// Sends a head as the upstream receives it, and `body`, on the client
    /// connection's lean upstream connection.
    async fn send_head(
        &self,
        conn: &ConnInfo,
        head: &(impl RequestHead + Sync),
        body: &[u8],
    ) -> Result<Response<RawBody>, ProxyError> {
        let sending = self.upstream.send_raw(&conn.affinity, head, body, self.limits.upstream_read_timeout);
        // With the body already whole, `upstream_timeout` runs from now.
        match tokio::time::timeout(self.limits.upstream_timeout, sending).await {
            Ok(sent) => sent.map_err(ProxyError::Upstream),
            Err(_) => Err(ProxyError::UpstreamTimeout),
        }
    }

    /// The upstream's answer, streamed to the client.
    fn streamed(
        &self,
        response: Response<Incoming>,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        let (parts, body) = response.into_parts();
        self.client_response(parts, ResponseBody::stream(self.answer_body(body)), upgrade)
    }

    /// Sends a request on the client connection's own upstream connection
    /// (HTTP/1.x) or through the pool (HTTP/2) and waits for the answer's head.
    async fn send(
        &self,
        conn: &ConnInfo,
        version: Version,
        parts: request::Parts,
        body: UpstreamBody,
    ) -> Result<Response<Incoming>, ProxyError> {
        let progress = body.progress();
        // A body of unknown length goes on chunked. Told nothing, the
        // upstream's client sends a GET, HEAD or CONNECT as bodiless and the
        // client's body would be lost (and a broken one never noticed).
        let chunked = !http_body::Body::is_end_stream(&body) && http_body::Body::size_hint(&body).exact().is_none();
        let request = Request::from_parts(self.upstream_parts(conn, parts, chunked), body);
        let affinity = (version != Version::HTTP_2).then_some(&conn.affinity);
        self.within(self.upstream.send(affinity, request), progress).await
    }

    /// The upstream's answer body, cut when silent for `upstream_read_timeout`.
    fn answer_body(&self, body: Incoming) -> AnswerBody {
        AnswerBody::new(body, self.limits.upstream_read_timeout)
    }

    /// Sends the request and waits for the answer's head: at most
    /// `upstream_timeout` from the last byte of the client's body that
    /// went out (or from now, with no body to stream). A failure the
    /// client's body caused is the client's, not the upstream's.
    async fn within<T>(
        &self,
        sending: impl Future<Output = Result<T, UpstreamError>>,
        progress: Option<Arc<Progress>>,
    ) -> Result<T, ProxyError> {
        let timeout = self.limits.upstream_timeout;
        let due = |p: Option<&Progress>| p.map_or_else(Instant::now, Progress::last_moved) + timeout;
        let mut deadline = due(progress.as_deref());
        tokio::pin!(sending);
        loop {
            tokio::select! {
                sent = &mut sending => {
                    return sent.map_err(|e| match progress.as_ref().and_then(|p| p.fault()) {
                        Some(ClientFault::TooSlow) => ProxyError::ClientTimeout,
                        Some(ClientFault::Broken) => ProxyError::ClientBody(e.into()),
                        None => ProxyError::Upstream(e),
                    });
                }
                () = tokio::time::sleep_until(deadline.into()) => {
                    match progress.as_deref() {
                        Some(p) if due(Some(p)) > deadline => deadline = due(Some(p)),
                        _ => return Err(ProxyError::UpstreamTimeout),
                    }
                }
            }
        }
    }

    /// Decides whether a candidate is recorded (docs/rules.md) and, if so, reads
    /// what the entry needs and takes the resource's before-state. The body
    /// is read first only when the decision depends on it (a form's
    /// `_method`, a login's user name); a request not recorded, or recorded
    /// as metadata, streams. A mutation not recorded still takes its
    /// resource's turn, so it never falls inside another request's
    /// before/after window.
    async fn begin_audit(
        &self,
        conn: &ConnInfo,
        parts: &mut request::Parts,
        body: Inbound,
        classified: Classified,
        policy: &Compiled,
    ) -> Result<(ClientBody, Audit), ProxyError> {
        let started = Instant::now();
        let body_first = classified.action == Action::Login || Self::may_override_by_form(parts);
        let mut body =
            if body_first { ClientBody::Read(self.read_body(parts, body).await?) } else { ClientBody::Unread(body) };
        let mut classified = match body.bytes() {
            Some(b) => self.reclassify_form(parts, b, classified)?,
            None => classified,
        };
        let rule = classified.rule.map(|i| &self.classifier.rules()[i]);
        let actor = match (&classified.action, body.bytes()) {
            (Action::Login, Some(b)) => login_actor(rule, b, parts),
            _ => self.actor_of(conn, parts).await,
        };
        let addr = client_addr(&self.trusted, conn.peer.ip(), &parts.headers);
        let question = Question::new(&classified.action, &classified.resource.kind, &actor, addr.client);
        let Decision::Audit { capture, configuration } = policy.decide(&question) else {
            let turn = self.auditor.turn(&classified).await;
            return Ok((body, Audit::Unrecorded(turn)));
        };
        // Reads and logins are recorded without snapshots or bodies.
        let capture = if classified.action.is_mutation() { capture } else { Capture::Metadata };
        if capture != Capture::Metadata
            && let ClientBody::Unread(stream) = body
        {
            body = ClientBody::Read(self.read_body(parts, stream).await?);
        }
        if let (Some(from), Some(b)) = (classified.pending_id.take(), body.bytes()) {
            classified.resource.id = from.from_body(b).map(|id| match rule {
                Some(rule) => rule.shape_id(id),
                None => id,
            });
        }
        headers::set_request_id(&mut parts.headers);
        let request_id = parts.headers.get(&X_REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let carried = self.auditor.carried(&parts.headers);
        let facts = RequestFacts::new(parts, actor, addr, request_id, carried, started);
        let content_type =
            parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let recording = Recording { capture, configuration, body: body.bytes().cloned(), content_type };
        let pending = self.auditor.begin(classified, rule, facts, recording).await?;
        Ok((body, Audit::Recorded(Box::new(pending))))
    }

    /// Hands the answer to the client and completes the entry behind it
    /// (the resource stays locked until the after-state is taken). When the
    /// entry needs the answer's body (a created id), the answer streams
    /// through the tee, which keeps a copy within `snapshot.max_bytes`; the
    /// entry is completed once the answer has ended, or broken off.
    async fn finish_audit(&self, pending: Pending, response: Response<Sent>) -> Response<ResponseBody> {
        let (parts, body) = response.into_parts();
        let answered = Answered::now(&pending, parts.status.as_u16(), parts.headers.clone());
        let auditor = self.auditor.clone();
        if !pending.reads_answer(answered.status) {
            // `durability = "sync"`: the answer waits for its durable entry.
            if auditor.waits_for_entries() {
                auditor.finish(pending, answered, None).await;
            } else {
                // Boxed: a task's state is written whole as it moves from
                // running to finished, and this future is kilobytes.
                tokio::spawn(Box::pin(async move { auditor.finish(pending, answered, None).await }));
            }
            let body = match body {
                Sent::Hyper(body) => ResponseBody::stream(self.answer_body(body)),
                Sent::Raw(body) => ResponseBody::raw(body),
            };
            return self.client_response(parts, body, None);
        }
        let (hook, read) = auditor.answer_hook(&pending, &parts.headers);
        let body: tee::Answer = match body {
            Sent::Hyper(body) => Box::pin(self.answer_body(body)),
            Sent::Raw(body) => Box::pin(body.map_err(AnswerError::from)),
        };
        let body = Tee::new(body, auditor.copy_limit(), hook);
        tokio::spawn(Box::pin(async move { auditor.finish(pending, answered, read.await.ok()).await }));
        self.client_response(parts, ResponseBody::tee(body), None)
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

    /// The actor of a request: the sources of `actor.order`, the whoami
    /// URL among them (the app's answer, cached per credential, vouches for
    /// the name: `actor_verified`).
    async fn actor_of(&self, conn: &ConnInfo, parts: &request::Parts) -> Actor {
        if let Some(whoami) = &self.whoami
            && self.actor.asks_whoami(&parts.headers, conn.peer_trusted)
            && let Some(name) = self.auditor.who_am_i(whoami, &parts.headers).await
        {
            return Actor { name, source: ActorSource::Whoami, verified: true };
        }
        self.actor.resolve(&parts.headers, conn.peer_trusted)
    }

    /// The classification of a request that may be recorded; `None`
    /// streams it. Reads are looked at only when a configuration names
    /// `read`, logins only when one names `login`.
    fn candidate(&self, method: &Method, parts: &request::Parts, policy: &Compiled) -> Option<Classified> {
        let read = matches!(*method, Method::GET | Method::HEAD);
        if (read && !policy.audits_reads()) || matches!(*method, Method::OPTIONS | Method::TRACE | Method::CONNECT) {
            return None;
        }
        match self.classifier.classify(method, parts.uri.path(), parts.uri.query(), &parts.headers) {
            Classification::Resource(c) => match c.action {
                Action::Read if policy.audits_reads() => Some(c),
                Action::Login if policy.audits_logins() => Some(c),
                Action::Read | Action::Login => None,
                _ => Some(c),
            },
            Classification::Ignored { .. } => None,
        }
    }

    /// A urlencoded `POST`, whose `_method` field may change the action.
    fn may_override_by_form(parts: &request::Parts) -> bool {
        parts.method == Method::POST
            && parts
                .headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
    }

    /// Reads an audited request's body whole, within `max_body_bytes`.
    async fn read_body(&self, parts: &request::Parts, body: Inbound) -> Result<Bytes, ProxyError> {
        let max = self.limits.max_body_bytes;
        let declared =
            parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(ProxyError::BodyTooLarge);
        }
        let limit = usize::try_from(max).unwrap_or(usize::MAX);
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) => match e.downcast::<ClientBodyError>() {
                Ok(e) if matches!(*e, ClientBodyError::TooSlow) => Err(ProxyError::ClientTimeout),
                Ok(e) => Err(ProxyError::ClientBody(e)),
                Err(_) => Err(ProxyError::BodyTooLarge),
            },
        }
    }

    /// Applies a `_method` field of a urlencoded `POST` form (docs/rules.md).
    fn reclassify_form(
        &self,
        parts: &request::Parts,
        body: &[u8],
        classified: Classified,
    ) -> Result<Classified, ProxyError> {
        if !Self::may_override_by_form(parts) {
            return Ok(classified);
        }
        let Some(method) = form_method_override(body) else { return Ok(classified) };
        // `strip` removes override headers only: the field reaches the app,
        // so it classifies the request as under `honour`.
        if self.method_override == OverridePolicy::Reject {
            return Err(ProxyError::BadRequest("method override not allowed"));
        }
        if !changes_state(&method) {
            return Ok(classified);
        }
        match self.classifier.classify(&method, parts.uri.path(), parts.uri.query(), &parts.headers) {
            Classification::Resource(c) => Ok(c),
            Classification::Ignored { .. } => Ok(classified),
        }
    }

    /// The request head as the upstream receives it (`chunked`: its body
    /// goes chunked); its hop-by-hop headers are already gone.
    fn upstream_parts(&self, conn: &ConnInfo, mut parts: request::Parts, chunked: bool) -> request::Parts {
        // Room for the headers added below, made once (growing the map a
        // header at a time reallocates it twice for a small request).
        parts.headers.reserve(8);
        let host = parts
            .headers
            .get(HOST)
            .cloned()
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        if !parts.headers.contains_key(HOST) {
            let value = host.clone().unwrap_or_else(|| self.upstream_host.clone());
            parts.headers.insert(HOST, value);
        }
        headers::forward(
            &mut parts.headers,
            headers::Hop { peer: &conn.peer_value, peer_trusted: conn.peer_trusted, proto: conn.proto, host },
            &self.actor.header,
        );
        if chunked {
            parts.headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        }
        parts.uri = self.origin_form(&parts.uri);
        parts.version = Version::HTTP_11;
        parts
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
        mut parts: http::response::Parts,
        body: ResponseBody,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ResponseBody> {
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
        if let Some(client) = client_upgrade.filter(|_| switching)
            && let Some(upstream) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        {
            upgrade::tunnel(client, upstream);
        }
        headers::strip_hop_by_hop(&mut parts.headers, switching);
        Response::from_parts(parts, body)
    }
}

/// The actor of a login: the user name its rule's `username_from` reads
/// from the body (or head); never the password.
fn login_actor(rule: Option<&Rule>, body: &[u8], parts: &request::Parts) -> Actor {
    let name = rule.and_then(|r| r.username_from.as_ref()).and_then(|from| {
        if from.needs_body() { from.from_body(body) } else { from.from_head(parts.uri.query(), &parts.headers) }
    });
    match name {
        Some(name) if !name.is_empty() => Actor { name, source: ActorSource::Login, verified: false },
        _ => Actor { name: "anonymous".into(), source: ActorSource::Login, verified: false },
    }
}

/// What goes to the upstream with a request: its entry in progress, or, for
/// a mutation not recorded, its resource's turn until the upstream answers.
enum Audit {
    Recorded(Box<Pending>),
    Unrecorded(Option<ResourceGuard>),
}

/// An audited request's answer body, from the connection that carried it.
/// Unboxed: it is moved once, into the client's answer body, and a box
/// would be an allocation per audited request.
#[allow(clippy::large_enum_variant)]
enum Sent {
    Hyper(Incoming),
    Raw(RawBody),
}

/// A client's request body: read whole, or still to be streamed.
enum ClientBody {
    Read(Bytes),
    Unread(Inbound),
}

impl ClientBody {
    fn bytes(&self) -> Option<&Bytes> {
        match self {
            ClientBody::Read(b) => Some(b),
            ClientBody::Unread(_) => None,
        }
    }

    fn into_upstream(self) -> UpstreamBody {
        match self {
            ClientBody::Read(b) => UpstreamBody::buffered(b),
            ClientBody::Unread(s) => UpstreamBody::stream(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::has_encoded_slash;

    #[test]
    fn encoded_slashes_are_found_in_any_case() {
        for path in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%5c", "%2F"] {
            assert!(has_encoded_slash(path), "{path}");
        }
        for path in ["/a/b", "/a%25/2F", "/a%2Eb", "/a%5Db", "/a%2", "/%F2"] {
            assert!(!has_encoded_slash(path), "{path}");
        }
    }
}

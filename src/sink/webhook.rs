//! `kind = "webhook"`: each batch POSTed as NDJSON (one entry a line) over
//! HTTP/1.1 on a kept-alive connection, signed with HMAC-SHA256 of the body
//! under the sink's `secret` (`X-Auditgate-Signature: sha256=<hex>`).
//! Delivered means answered 2xx; anything else is tried again.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::Sha256;

use super::{Connector, SendError};

/// How long a batch's POST may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The signature header.
pub use crate::config::sink::SIGNATURE;

/// A collector and the connection to it, made when needed.
#[derive(Debug)]
pub(super) struct Webhook {
    connector: Connector,
    url: Uri,
    secret: Option<Secret>,
    headers: http::HeaderMap,
    conn: Option<SendRequest<Full<Bytes>>>,
}

/// The signing key, never shown.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Webhook {
    pub fn new(connector: Connector, url: Uri, secret: Option<String>, headers: http::HeaderMap) -> Webhook {
        Webhook { connector, url, secret: secret.map(Secret), headers, conn: None }
    }

    /// POSTs the lines as one NDJSON body; Ok once answered 2xx.
    pub async fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), SendError> {
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            body.extend_from_slice(line);
            body.push(b'\n');
        }
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.post(body)).await.unwrap_or(Err(SendError::Timeout));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn post(&mut self, body: Vec<u8>) -> Result<(), SendError> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.path_and_query().map_or("/", |p| p.as_str()))
            .header(header::HOST, self.url.authority().map_or("", |a| a.as_str()))
            .header(header::CONTENT_TYPE, "application/x-ndjson");
        if let Some(secret) = &self.secret {
            req = req.header(SIGNATURE, signature(secret.0.as_bytes(), &body));
        }
        if let Some(h) = req.headers_mut() {
            h.extend(self.headers.clone());
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("a POST from a validated URL is a request");
        if let Some(conn) = &mut self.conn
            && conn.ready().await.is_err()
        {
            self.conn = None;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let io = self.connector.connect().await?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(SendError::Http)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                self.conn.insert(sender)
            }
        };
        let res = conn.send_request(req).await.map_err(SendError::Http)?;
        let status = res.status();
        // Read the answer to its end, so the connection can carry the next.
        res.into_body().collect().await.map_err(SendError::Http)?;
        if status.is_success() { Ok(()) } else { Err(SendError::Status(status.as_u16())) }
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

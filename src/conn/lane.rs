//! The lean lane of an HTTP/1.1 connection: request heads read and parsed
//! here (`httparse`, as hyper does), the bodiless ones the handler takes
//! served without hyper's dispatcher, and the connection handed to hyper,
//! the unread bytes replayed, at the first request it does not take.
//!
//! The lane only narrows: anything it is not sure of (another version, a
//! body, an upgrade, an expectation, a head it cannot parse or that is too
//! large) goes to hyper whole, which answers it as it answers everything.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, request};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::Serve;
use super::watch::Clock;
use super::write::write_answer;

/// The most headers a lean request carries (hyper's limit too).
const MAX_HEADERS: usize = 100;

/// What a read asks for at least.
const READ_SIZE: usize = 8192;

/// Headers a request's map has room for beyond its own.
const ROOM: usize = 8;

/// The longest request target hyper takes.
const MAX_TARGET: usize = u16::MAX as usize - 1;

/// How the lane left its connection.
pub(super) enum End<IO> {
    /// Closed: the client went, a write failed, or `Connection: close`.
    Closed,
    /// For hyper, from the request the lane did not serve on.
    HandOver(Replay<IO>),
}

/// Serves the connection's requests while they are lean; `stop` (true)
/// asks it to close once the request in hand is answered.
pub(super) async fn serve<IO, S>(
    mut io: IO,
    service: &S,
    clock: &Arc<Clock>,
    max_head: usize,
    stop: &mut watch::Receiver<bool>,
) -> End<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: Serve,
{
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::with_capacity(1024);
    // Where each header of the head in hand lies, kept for its allocation.
    let mut fields = Vec::new();
    loop {
        let shape = loop {
            if !buf.is_empty() {
                match parse(&buf, &mut fields) {
                    Parsed::Lean(shape) => break shape,
                    Parsed::Partial if buf.len() < max_head => {}
                    Parsed::Partial | Parsed::NotLean => return End::HandOver(Replay::new(buf.freeze(), io)),
                }
            }
            buf.reserve(READ_SIZE);
            let read = if buf.is_empty() {
                // Between requests: a shutdown closes an idle connection.
                tokio::select! {
                    read = io.read_buf(&mut buf) => read,
                    _ = stop.wait_for(|stopping| *stopping) => return End::Closed,
                }
            } else {
                io.read_buf(&mut buf).await
            };
            match read {
                Ok(0) | Err(_) if buf.is_empty() => return End::Closed,
                // A head cut short: hyper answers it as it would.
                Ok(0) | Err(_) => return End::HandOver(Replay::new(buf.freeze(), io)),
                Ok(_) => {}
            }
        };
        let head = buf.split_to(shape.len).freeze();
        let busy = clock.begin();
        let head_only = &head[shape.method.clone()] == b"HEAD";
        let Some(response) = service.call_lean(Head { bytes: &head, shape: &shape, fields: &fields }).await else {
            drop(busy);
            return End::HandOver(Replay::new(rejoin(head, buf), io));
        };
        drop(head);
        let close = shape.close || *stop.borrow();
        let written = write_answer(&mut io, &mut out, head_only, close, response).await;
        drop(busy);
        if !matches!(written, Ok(false)) {
            return End::Closed;
        }
    }
}

/// A head and the bytes read after it, as one.
fn rejoin(head: Bytes, rest: BytesMut) -> Bytes {
    let mut whole = BytesMut::with_capacity(head.len() + rest.len());
    whole.extend_from_slice(&head);
    whole.extend_from_slice(&rest);
    whole.freeze()
}

/// What a look at the buffer found.
#[derive(Debug)]
enum Parsed {
    /// No whole head yet.
    Partial,
    /// A head the lane serves.
    Lean(Shape),
    /// One for hyper (or nothing HTTP/1.1 the lane can read).
    NotLean,
}

/// Where the parts of a lean head lie in the buffer (its headers' names
/// and values in the `fields` `parse` fills).
#[derive(Debug)]
pub(super) struct Shape {
    len: usize,
    method: Range<usize>,
    target: Range<usize>,
    /// `Connection: close`.
    close: bool,
}

/// A header's name and value, as ranges of the head.
type Field = (Range<usize>, Range<usize>);

fn parse(buf: &[u8], fields: &mut Vec<Field>) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::NotLean,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::NotLean;
    };
    if target.len() > MAX_TARGET {
        return Parsed::NotLean;
    }
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + s.len()
    };
    let mut close = false;
    let mut length_seen = false;
    fields.clear();
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let is = |known: &str| name.len() == known.len() && name.eq_ignore_ascii_case(known.as_bytes());
        if is("transfer-encoding") || is("expect") || is("upgrade") {
            return Parsed::NotLean;
        }
        if is("content-length") {
            if length_seen || h.value != b"0" {
                return Parsed::NotLean;
            }
            length_seen = true;
        } else if is("connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::NotLean;
                }
                close |= token.eq_ignore_ascii_case(b"close");
            }
        }
        fields.push((at(name), at(h.value)));
    }
    Parsed::Lean(Shape { len, method: at(method.as_bytes()), target: at(target.as_bytes()), close })
}

/// A request head the lane read: HTTP/1.1, no body, no upgrade, no
/// expectation; its parts as the client sent them.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    bytes: &'a Bytes,
    shape: &'a Shape,
    fields: &'a [Field],
}

impl<'a> Head<'a> {
    pub fn method(&self) -> &'a [u8] {
        &self.bytes[self.shape.method.clone()]
    }

    /// The request target as sent (any form).
    pub fn target(&self) -> &'a [u8] {
        &self.bytes[self.shape.target.clone()]
    }

    /// The same, sharing the head's bytes.
    pub fn target_shared(&self) -> Bytes {
        self.bytes.slice(self.shape.target.clone())
    }

    /// The headers as sent, names in the client's case, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone + use<'a> {
        let bytes: &'a [u8] = self.bytes;
        self.fields.iter().map(move |(name, value)| (&bytes[name.clone()], &bytes[value.clone()]))
    }

    /// The request head in the `http` types, its values sharing the head's
    /// bytes; `None` for one hyper should judge (a method, target or name
    /// those types refuse).
    pub fn parts(&self) -> Option<request::Parts> {
        let head = self.bytes;
        let method = Method::from_bytes(self.method()).ok()?;
        let uri = Uri::from_maybe_shared(self.target_shared()).ok()?;
        // Room for the few a proxy adds (forwarding headers, a request id).
        let mut headers = HeaderMap::with_capacity(self.fields.len() + ROOM);
        for (name, value) in self.fields {
            let name = HeaderName::from_bytes(&head[name.clone()]).ok()?;
            let value = HeaderValue::from_maybe_shared(head.slice(value.clone())).ok()?;
            headers.append(name, value);
        }
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        parts.headers = headers;
        Some(parts)
    }
}

/// A connection with bytes already read put back in front of it.
#[derive(Debug)]
pub(super) struct Replay<IO> {
    prefix: Bytes,
    io: IO,
}

impl<IO> Replay<IO> {
    pub(super) fn new(prefix: Bytes, io: IO) -> Replay<IO> {
        Replay { prefix, io }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Replay<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Replay<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(head: &str) -> Parsed {
        parse(head.as_bytes(), &mut Vec::new())
    }

    fn lean(head: &str) -> Option<bool> {
        match look(head) {
            Parsed::Lean(shape) => Some(shape.close),
            _ => None,
        }
    }

    #[test]
    fn the_lane_takes_only_plain_http_1_1_heads() {
        let get = |extra: &str| format!("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        assert_eq!(lean(&get("")), Some(false));
        assert_eq!(lean(&get("Connection: close\r\n")), Some(true));
        assert_eq!(lean(&get("connection: keep-alive, Close\r\n")), Some(true));
        assert_eq!(lean(&get("Connection: keep-alive\r\n")), Some(false));
        assert_eq!(lean(&get("Content-Length: 0\r\n")), Some(false));
        for refused in [
            "Connection: keep-alive, Upgrade\r\n",
            "Upgrade: h2c\r\n",
            "Transfer-Encoding: chunked\r\n",
            "transfer-encoding: identity\r\n",
            "Content-Length: 1\r\n",
            "Content-Length: 00\r\n",
            "Content-Length: 0\r\nContent-Length: 0\r\n",
            "Expect: 100-continue\r\n",
        ] {
            assert!(matches!(look(&get(refused)), Parsed::NotLean), "{refused}");
        }
        assert!(matches!(look("GET / HTTP/1.0\r\n\r\n"), Parsed::NotLean));
        assert!(matches!(look("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Parsed::NotLean));
        assert!(matches!(look("GET / HTTP/1.1\r\nHo st: x\r\n\r\n"), Parsed::NotLean));
        assert!(matches!(look("GET / HTTP/1.1\r\nHost: x\r\n"), Parsed::Partial));
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(MAX_TARGET));
        assert!(matches!(look(&long), Parsed::NotLean));
        let longest = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(MAX_TARGET - 1));
        assert!(matches!(look(&longest), Parsed::Lean(_)));
    }

    #[test]
    fn a_head_gives_its_parts_as_sent() {
        let text = "GET /items/1?x=2 HTTP/1.1\r\nHost: app\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next";
        let mut fields = Vec::new();
        let Parsed::Lean(shape) = parse(text.as_bytes(), &mut fields) else { panic!("not lean") };
        assert_eq!(shape.len, text.len() - "GET /next".len());
        let bytes = Bytes::copy_from_slice(text.as_bytes());
        let head = Head { bytes: &bytes, shape: &shape, fields: &fields };
        assert_eq!((head.method(), head.target()), (&b"GET"[..], &b"/items/1?x=2"[..]));
        assert_eq!(head.target_shared(), "/items/1?x=2");
        let sent: Vec<(&[u8], &[u8])> = head.fields().collect();
        assert_eq!(sent, [(&b"Host"[..], &b"app"[..]), (b"X-A", b"1"), (b"x-a", b"2")]);
        let parts = head.parts().unwrap();
        assert_eq!(
            (parts.method, parts.uri.to_string(), parts.version),
            (Method::GET, "/items/1?x=2".into(), Version::HTTP_11)
        );
        let values: Vec<_> = parts.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(parts.headers.get("host").unwrap(), "app");
    }

    #[test]
    fn a_head_handed_over_goes_back_in_front_of_what_followed_it() {
        let mut rest = BytesMut::new();
        rest.extend_from_slice(b"GET /next");
        assert_eq!(
            rejoin(Bytes::from_static(b"PATCH /x HTTP/1.1\r\n\r\n"), rest),
            "PATCH /x HTTP/1.1\r\n\r\nGET /next"
        );
    }

    #[tokio::test]
    async fn a_replay_gives_the_bytes_read_first_then_the_connection() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b" world").await.unwrap();
        drop(client);
        let mut replay = Replay::new(Bytes::from_static(b"hello"), server);
        let mut all = String::new();
        replay.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}

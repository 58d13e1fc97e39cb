//! A lean HTTP/1.1 exchange for bodiless requests passed through to a
//! cleartext upstream, driven in the client connection's own task: the head
//! written from the request's parts in one write, the answer's head parsed
//! with `httparse` into the `HeaderMap` the client receives, its body read
//! from the same socket by the body the client's connection polls (no
//! connection task, no channels). The connection goes back to its client
//! connection once its answer has been read to the end, and is dropped
//! otherwise. Framing follows RFC 9112 §6.3; anything it does not allow is
//! an error (502), never a guess.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, request};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The most headers an answer may carry (hyper's default too).
const MAX_HEADERS: usize = 100;
/// The largest answer head read (nginx refuses more than 4–8 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size line (size and extensions) or trailer section.
const MAX_CHUNK_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;
/// How much is read at a time.
const READ_SIZE: usize = 16 * 1024;
/// The largest request body written together with its head.
const WRITE_WITH_HEAD: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("upstream connection: {0}")]
    Io(#[from] io::Error),
    /// The connection closed before the answer ended; `answered`: whether any
    /// byte of the answer had arrived.
    #[error("the upstream closed the connection before its answer ended (answer begun: {answered})")]
    Closed { answered: bool },
    #[error("malformed answer from the upstream: {0}")]
    Malformed(&'static str),
}

/// An idle upstream connection and what was read past the last answer
/// (nothing, or it would not have been kept).
#[derive(Debug)]
pub struct RawConn {
    io: TcpStream,
    buf: BytesMut,
    /// The request head being written, kept for its allocation.
    out: Vec<u8>,
}

/// Where a client connection keeps its idle upstream connection.
pub type Home = Arc<Mutex<Option<RawConn>>>;

fn put_home(home: &Home, conn: RawConn) {
    *home.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
}

/// Takes the idle connection of `home`, if any.
pub fn take_home(home: &Home) -> Option<RawConn> {
    home.lock().unwrap_or_else(|e| e.into_inner()).take()
}

impl RawConn {
    pub fn new(io: TcpStream) -> RawConn {
        RawConn { io, buf: BytesMut::with_capacity(READ_SIZE), out: Vec::with_capacity(1024) }
    }

    /// Whether the upstream closed this idle connection (or sent bytes nobody
    /// asked for), so that a request written on it would be lost. Free while
    /// nothing has arrived since the last answer (the reactor says so, no
    /// system call); otherwise one non-blocking read tells.
    pub fn closed_while_idle(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                !matches!(self.io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends a request (`body`: all of it, framed by the head's
    /// `Content-Length`; empty for a bodiless one) and reads its answer's
    /// head. `home` receives the connection back once the answer's body has
    /// been read.
    pub async fn exchange(
        mut self,
        head: &(impl RequestHead + ?Sized),
        body: &[u8],
        home: &Home,
        read_timeout: Duration,
    ) -> Result<Response<RawBody>, RawError> {
        head.write_into(&mut self.out);
        // A small body goes out with the head in one write; a large one on
        // its own, so the connection's buffer does not keep its size.
        if body.len() <= WRITE_WITH_HEAD {
            self.out.extend_from_slice(body);
            self.io.write_all(&self.out).await?;
        } else {
            self.io.write_all(&self.out).await?;
            self.io.write_all(body).await?;
        }
        let head_only = head.is_head();
        loop {
            match parse_head(&mut self.buf, head_only)? {
                Some(Parsed::Interim) => continue,
                Some(Parsed::Final(head)) => return Ok(head.into_response(self, home, read_timeout)),
                None if self.buf.len() >= MAX_HEAD => return Err(RawError::Malformed("answer head too large")),
                None => {}
            }
            let answered = !self.buf.is_empty();
            self.buf.reserve(READ_SIZE);
            if tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.buf).await? == 0 {
                return Err(RawError::Closed { answered });
            }
        }
    }
}

/// A request head as the upstream receives it.
pub trait RequestHead {
    /// Writes it into `out` (cleared first): the request line, the headers
    /// and the empty line.
    fn write_into(&self, out: &mut Vec<u8>);

    /// Whether it is a `HEAD`, whose answer has no body whatever it says.
    fn is_head(&self) -> bool;
}

impl RequestHead for request::Parts {
    fn write_into(&self, out: &mut Vec<u8>) {
        write_head(out, self);
    }

    fn is_head(&self) -> bool {
        self.method == Method::HEAD
    }
}

/// Serialises a request head: `METHOD target HTTP/1.1`, the headers as they
/// are (names are lower case in a `HeaderMap`), an empty line.
fn write_head(out: &mut Vec<u8>, parts: &request::Parts) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(parts.uri.path_and_query().map_or("/", |pq| pq.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How an answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// To a `HEAD`, or a 204/304: no body whatever the headers say.
    Empty,
    Length(u64),
    Chunked(Chunk),
    /// Neither length nor chunking: the body ends when the connection does.
    Close,
}

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data, this much left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
    Done,
}

/// A parsed answer head.
#[derive(Debug)]
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    reason: Option<hyper::ext::ReasonPhrase>,
    framing: Framing,
    /// Whether the connection may carry another request after this answer.
    keep_alive: bool,
}

#[derive(Debug)]
enum Parsed {
    /// A 1xx other than 101, consumed and skipped.
    Interim,
    Final(Head),
}

/// Parses an answer head at the start of `buf`, consuming it; `None` until
/// the whole head is there.
fn parse_head(buf: &mut BytesMut, head_only: bool) -> Result<Option<Parsed>, RawError> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Uninitialised slots: zeroing a hundred of them costs more than parsing.
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut answer, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(RawError::Malformed("too many headers")),
        Err(_) => return Err(RawError::Malformed("invalid answer head")),
    };
    let code = answer.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| RawError::Malformed("invalid status code"))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(RawError::Malformed("a protocol switch nobody asked for"));
    }
    if status.is_informational() {
        let _ = buf.split_to(len);
        return Ok(Some(Parsed::Interim));
    }
    let version = if answer.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    let reason = answer
        .reason
        .filter(|r| Some(*r) != status.canonical_reason())
        .and_then(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes().to_vec()).ok());
    // Where each name and value lies in the head, so that the values can be
    // slices of it once it is split off (no copy).
    let base = buf.as_ptr() as usize;
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let count = answer.headers.len();
    for (span, h) in spans.iter_mut().zip(answer.headers.iter()) {
        // Offsets within a head of at most MAX_HEAD bytes fit.
        let at = |p: *const u8, len: usize| ((p as usize - base) as u32, (p as usize - base + len) as u32);
        let ((n0, n1), (v0, v1)) = (at(h.name.as_ptr(), h.name.len()), at(h.value.as_ptr(), h.value.len()));
        *span = (n0, n1, v0, v1);
    }
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(count);
    for &(n0, n1, v0, v1) in &spans[..count] {
        let (n0, n1, v0, v1) = (n0 as usize, n1 as usize, v0 as usize, v1 as usize);
        let name = HeaderName::from_bytes(&head[n0..n1]).map_err(|_| RawError::Malformed("invalid header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(v0..v1))
            .map_err(|_| RawError::Malformed("invalid header value"))?;
        headers.append(name, value);
    }
    let (framing, keep_alive) = framing(&mut headers, status, version, head_only)?;
    Ok(Some(Parsed::Final(Head { status, version, headers, reason, framing, keep_alive })))
}

/// The body's framing and whether the connection stays open after it.
fn framing(
    headers: &mut HeaderMap,
    status: StatusCode,
    version: Version,
    head_only: bool,
) -> Result<(Framing, bool), RawError> {
    let mut keep_alive = version == Version::HTTP_11;
    for value in headers.get_all(CONNECTION) {
        let value = value.to_str().map_err(|_| RawError::Malformed("invalid Connection"))?;
        if value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")) {
            keep_alive = false;
        }
    }
    if head_only || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, keep_alive));
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        // The final coding decides; a length beside it is not to be trusted,
        // nor the connection after it (RFC 9112 §6.3, item 3).
        let mut last = "";
        for value in headers.get_all(TRANSFER_ENCODING) {
            let value = value.to_str().map_err(|_| RawError::Malformed("invalid Transfer-Encoding"))?;
            if let Some(c) = value.split(',').map(str::trim).rfind(|c| !c.is_empty()) {
                last = c;
            }
        }
        let chunked = last.eq_ignore_ascii_case("chunked");
        if headers.remove(CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
        return Ok(if chunked { (Framing::Chunked(Chunk::Size), keep_alive) } else { (Framing::Close, false) });
    }
    Ok(match content_length(headers).map_err(RawError::Malformed)? {
        Some(n) => (Framing::Length(n), keep_alive),
        None => (Framing::Close, false),
    })
}

/// The length all `Content-Length` values of a message agree on (`None`
/// without one); the error names what is wrong (RFC 9112 §6.3: digits only,
/// equal values are one value).
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let n = std::str::from_utf8(value.as_bytes())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("invalid Content-Length")?;
        if length.is_some_and(|m| m != n) {
            return Err("conflicting Content-Length values");
        }
        length = Some(n);
    }
    Ok(length)
}

impl Head {
    fn into_response(self, conn: RawConn, home: &Home, read_timeout: Duration) -> Response<RawBody> {
        let mut body = RawBody {
            conn: Some(conn),
            framing: self.framing,
            keep_alive: self.keep_alive,
            home: home.clone(),
            limit: read_timeout,
            deadline: None,
            moved: false,
            handed: false,
            held: None,
        };
        release_if_ended(body.framing, &mut body.conn, body.keep_alive, &body.home);
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.version_mut() = self.version;
        *response.headers_mut() = self.headers;
        if let Some(reason) = self.reason {
            response.extensions_mut().insert(reason);
        }
        response
    }
}

/// What one step of a chunked body's decoder found.
enum Step {
    /// Data of the current chunk is buffered.
    Data,
    /// More bytes are needed.
    More,
    Done,
}

/// Consumes chunked framing from `buf` until data, the end, or the end of
/// what is buffered.
fn advance_chunked(state: &mut Chunk, buf: &mut BytesMut) -> Result<Step, RawError> {
    loop {
        match *state {
            Chunk::Done => return Ok(Step::Done),
            Chunk::Data(0) => *state = Chunk::DataEnd,
            Chunk::Data(_) => return Ok(if buf.is_empty() { Step::More } else { Step::Data }),
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(RawError::Malformed("chunk data not followed by CRLF"));
                }
                let _ = buf.split_to(2);
                *state = Chunk::Size;
            }
            Chunk::Size => {
                let Some(end) = line_end(buf, MAX_CHUNK_LINE, "chunk size line too long")? else {
                    return Ok(Step::More);
                };
                let size = chunk_size(&buf[..end])?;
                let _ = buf.split_to(end + 2);
                *state = if size == 0 { Chunk::Trailers } else { Chunk::Data(size) };
            }
            Chunk::Trailers => {
                let Some(end) = line_end(buf, MAX_TRAILERS, "trailers too long")? else {
                    return Ok(Step::More);
                };
                // Trailer fields are read and dropped; an empty line ends them.
                let _ = buf.split_to(end + 2);
                if end == 0 {
                    *state = Chunk::Done;
                }
            }
        }
    }
}

/// The position of the CRLF ending the line at the start of `buf`; a bare
/// LF or CR inside the line is an error.
fn line_end(buf: &[u8], max: usize, too_long: &'static str) -> Result<Option<usize>, RawError> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(0) => Err(RawError::Malformed("bare LF in chunked framing")),
        Some(lf) if buf[lf - 1] != b'\r' || buf[..lf - 1].contains(&b'\r') => {
            Err(RawError::Malformed("bare CR or LF in chunked framing"))
        }
        Some(lf) => Ok(Some(lf - 1)),
        None if buf.len() > max => Err(RawError::Malformed(too_long)),
        None => Ok(None),
    }
}

/// A chunk-size line's size: hex digits, then optional whitespace and
/// extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, RawError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(RawError::Malformed("invalid chunk size"));
    }
    let rest = &line[digits..];
    let rest = &rest[rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count()..];
    if !rest.is_empty() && rest[0] != b';' {
        return Err(RawError::Malformed("invalid chunk size"));
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| RawError::Malformed("invalid chunk size"))?;
    u64::from_str_radix(hex, 16).map_err(|_| RawError::Malformed("invalid chunk size"))
}

pin_project_lite::pin_project! {
    /// An answer's body read from its upstream connection, with
    /// `upstream_read_timeout` between reads.
    pub struct RawBody {
        conn: Option<RawConn>,
        framing: Framing,
        keep_alive: bool,
        home: Home,
        limit: Duration,
        #[pin]
        deadline: Option<Sleep>,
        moved: bool,
        // Data was handed out since the body last waited for the socket.
        handed: bool,
        // An error not given yet: found while looking past the data just
        // handed out, or held back one wait (see `poll_frame`).
        held: Option<RawBodyError>,
    }
}

impl std::fmt::Debug for RawBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBody").field("framing", &self.framing).finish_non_exhaustive()
    }
}

/// Why a raw answer's body did not reach its end.
#[derive(Debug, thiserror::Error)]
pub enum RawBodyError {
    #[error(transparent)]
    Raw(#[from] RawError),
    #[error("the upstream sent nothing for limits.upstream_read_timeout")]
    Stalled,
}

impl Framing {
    /// Whether the whole body has been read from the connection.
    fn ended(self) -> bool {
        matches!(self, Framing::Empty | Framing::Length(0) | Framing::Chunked(Chunk::Done))
    }
}

/// Once the body has been read to its end, the connection goes home (kept
/// alive, and nothing read past the answer) or is closed.
fn release_if_ended(framing: Framing, conn: &mut Option<RawConn>, keep_alive: bool, home: &Home) {
    if framing.ended()
        && let Some(conn) = conn.take()
        && keep_alive
        && conn.buf.is_empty()
    {
        put_home(home, conn);
    }
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = RawBodyError;

    /// An error that follows data without a wait in between (an answer
    /// that breaks off right after its last bytes came) is given after one
    /// `Pending`: the server then writes what it was handed, the answer's
    /// head included, before the error makes it drop the connection. The
    /// client sees the status and the bytes that came, as when the answer
    /// comes through hyper's client connection.
    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, RawBodyError>>> {
        let mut this = self;
        let polled = match this.as_mut().project().held.take() {
            Some(e) => Poll::Ready(Some(Err(e))),
            None => this.as_mut().poll_next(cx),
        };
        let p = this.project();
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                *p.handed = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) if std::mem::take(p.handed) => {
                *p.held = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => {
                *p.handed = false;
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && (self.framing.ended() || self.conn.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

impl RawBody {
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, RawBodyError>>> {
        let mut this = self.project();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let data = match this.framing {
                Framing::Empty | Framing::Length(0) | Framing::Chunked(Chunk::Done) => None,
                Framing::Length(left) if !conn.buf.is_empty() => {
                    let take = usize::try_from(*left).unwrap_or(usize::MAX).min(conn.buf.len());
                    *left -= take as u64;
                    Some(conn.buf.split_to(take).freeze())
                }
                Framing::Close if !conn.buf.is_empty() => Some(conn.buf.split().freeze()),
                Framing::Chunked(state) => match advance_chunked(state, &mut conn.buf) {
                    Err(e) => {
                        *this.conn = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Ok(Step::Done) => None,
                    Ok(Step::Data) => {
                        let Chunk::Data(left) = state else { unreachable!("data is only found inside a chunk") };
                        let take = usize::try_from(*left).unwrap_or(usize::MAX).min(conn.buf.len());
                        *left -= take as u64;
                        let data = conn.buf.split_to(take).freeze();
                        // Look past the data: the end may be buffered already.
                        if let Err(e) = advance_chunked(state, &mut conn.buf) {
                            *this.held = Some(e.into());
                        }
                        Some(data)
                    }
                    Ok(Step::More) => {
                        ready!(read_more(conn, this.deadline.as_mut(), this.moved, *this.limit, cx, true))?;
                        continue;
                    }
                },
                Framing::Length(_) | Framing::Close => {
                    let close = matches!(this.framing, Framing::Close);
                    match read_more(conn, this.deadline.as_mut(), this.moved, *this.limit, cx, !close) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(true)) => continue,
                        Poll::Ready(Ok(false)) => {
                            // End of a close-delimited body.
                            *this.conn = None;
                            return Poll::Ready(None);
                        }
                        Poll::Ready(Err(e)) => {
                            *this.conn = None;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
            };
            release_if_ended(*this.framing, this.conn, *this.keep_alive, this.home);
            return Poll::Ready(data.map(|d| Ok(Frame::data(d))));
        }
    }
}

/// Reads more of the body into the connection's buffer: `Ok(true)` when
/// bytes came, `Ok(false)` at the end of the connection (an error when
/// `eof_is_error`). The read deadline starts on the first wait and moves on
/// after each read that brought something.
fn read_more(
    conn: &mut RawConn,
    mut deadline: Pin<&mut Option<Sleep>>,
    moved: &mut bool,
    limit: Duration,
    cx: &mut Context<'_>,
    eof_is_error: bool,
) -> Poll<Result<bool, RawBodyError>> {
    conn.buf.reserve(READ_SIZE);
    match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
        Poll::Ready(Ok(0)) if eof_is_error => Poll::Ready(Err(RawError::Closed { answered: true }.into())),
        Poll::Ready(Ok(0)) => Poll::Ready(Ok(false)),
        Poll::Ready(Ok(_)) => {
            *moved = true;
            Poll::Ready(Ok(true))
        }
        Poll::Ready(Err(e)) => Poll::Ready(Err(RawError::from(e).into())),
        Poll::Pending => {
            match deadline.as_mut().as_pin_mut() {
                Some(sleep) if std::mem::take(moved) => sleep.reset(tokio::time::Instant::now() + limit),
                Some(_) => {}
                None => deadline.set(Some(tokio::time::sleep(limit))),
            }
            let sleep = deadline.as_pin_mut().expect("set above");
            match std::future::Future::poll(sleep, cx) {
                Poll::Ready(()) => Poll::Ready(Err(RawBodyError::Stalled)),
                Poll::Pending => Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn head(text: &str, head_only: bool) -> Result<Option<Parsed>, RawError> {
        parse_head(&mut BytesMut::from(text), head_only)
    }

    fn final_head(text: &str) -> Head {
        match head(text, false) {
            Ok(Some(Parsed::Final(h))) => h,
            other => panic!("{text:?}: {other:?}"),
        }
    }

    fn refused(text: &str) -> &'static str {
        match head(text, false) {
            Err(RawError::Malformed(why)) => why,
            other => panic!("{text:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn an_answer_head_is_parsed_into_the_headers_the_client_receives() {
        let mut buf = BytesMut::from("HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\n\r\nok");
        let Ok(Some(Parsed::Final(h))) = parse_head(&mut buf, false) else { panic!("not parsed") };
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.framing, Framing::Length(2));
        assert!(h.keep_alive);
        assert!(h.reason.is_none(), "a canonical reason needs no extension");
        let values: Vec<_> = h.headers.get_all("x-a").iter().map(|v| v.to_str().unwrap()).collect();
        assert_eq!(values, ["1", "2"]);
        assert_eq!(&buf[..], b"ok", "the head is consumed, the body left");
        let h = final_head("HTTP/1.1 200 Fine Thanks\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(h.reason.as_ref().map(|r| r.as_bytes()), Some(&b"Fine Thanks"[..]));
    }

    #[test]
    fn a_partial_head_waits_and_consumes_nothing() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(matches!(parse_head(&mut buf, false), Ok(None)));
        assert_eq!(buf.len(), 27);
        assert!(matches!(parse_head(&mut BytesMut::new(), false), Ok(None)));
    }

    #[test]
    fn interim_answers_are_skipped_and_a_switch_nobody_asked_for_is_refused() {
        let mut buf = BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        assert!(matches!(parse_head(&mut buf, false), Ok(Some(Parsed::Interim))));
        let Ok(Some(Parsed::Final(h))) = parse_head(&mut buf, false) else { panic!("no final answer") };
        assert_eq!(h.status, StatusCode::NO_CONTENT);
        assert_eq!(
            refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
            "a protocol switch nobody asked for"
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        // No body to HEAD, 204 and 304, whatever the headers say.
        assert!(matches!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true),
            Ok(Some(Parsed::Final(Head { framing: Framing::Empty, .. })))
        ));
        for status in ["204 No Content", "304 Not Modified"] {
            let h = final_head(&format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n"));
            assert_eq!(h.framing, Framing::Empty, "{status}");
        }
        // Chunked wins over a length, which is dropped, and so is the connection.
        let h = final_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked(Chunk::Size));
        assert!(!h.headers.contains_key(CONTENT_LENGTH) && !h.keep_alive);
        let h = final_head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked(Chunk::Size), true));
        // Another final coding, or no framing at all: until the connection closes.
        for text in ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"] {
            let h = final_head(text);
            assert_eq!((h.framing, h.keep_alive), (Framing::Close, false), "{text:?}");
        }
        // Equal lengths are one length; anything else about a length is refused.
        assert_eq!(
            final_head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n").framing,
            Framing::Length(3)
        );
        assert_eq!(
            refused("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            "conflicting Content-Length values"
        );
        for bad in ["+3", "3 4", "0x3", "", "99999999999999999999999"] {
            assert_eq!(
                refused(&format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n")),
                "invalid Content-Length",
                "{bad:?}"
            );
        }
        // The connection is kept only for HTTP/1.1 without `close`.
        assert!(!final_head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
        assert!(
            !final_head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n").keep_alive
        );
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert_eq!(refused("HTTP/1.1 2000 OK\r\n\r\n"), "invalid answer head");
        assert_eq!(refused("HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"), "invalid answer head");
        assert_eq!(refused("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), "invalid answer head");
        let many: String = (0..=MAX_HEADERS).map(|i| format!("h{i}: v\r\n")).collect();
        assert_eq!(refused(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")), "too many headers");
    }

    /// Decodes `wire` fed `step` bytes at a time: the data, or the error.
    fn dechunk(wire: &[u8], step: usize) -> Result<Vec<u8>, &'static str> {
        let (mut state, mut buf, mut data) = (Chunk::Size, BytesMut::new(), Vec::new());
        let mut fed = 0;
        loop {
            match advance_chunked(&mut state, &mut buf) {
                Err(RawError::Malformed(why)) => return Err(why),
                Err(e) => panic!("{e}"),
                Ok(Step::Done) => return Ok(data),
                Ok(Step::Data) => {
                    let Chunk::Data(left) = &mut state else { panic!("data outside a chunk") };
                    let take = (*left as usize).min(buf.len());
                    *left -= take as u64;
                    data.extend_from_slice(&buf.split_to(take));
                }
                Ok(Step::More) if fed == wire.len() => return Err("ran out"),
                Ok(Step::More) => {
                    let end = (fed + step).min(wire.len());
                    buf.extend_from_slice(&wire[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let wire = b"5;name=value\r\nhello\r\n6 \r\n world\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n";
        for step in 1..=wire.len() {
            assert_eq!(dechunk(wire, step).as_deref(), Ok(&b"hello world0123456789"[..]), "step {step}");
        }
        assert_eq!(dechunk(b"0\r\n\r\n", 1), Ok(Vec::new()));
    }

    #[test]
    fn malformed_chunking_is_refused() {
        let cases: [(&[u8], &str); 8] = [
            (b"zz\r\n", "invalid chunk size"),
            (b"\r\n", "invalid chunk size"),
            (b"5x\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            (b"10000000000000000\r\n", "invalid chunk size"),
            (b"5\r\nhelloXX0\r\n\r\n", "chunk data not followed by CRLF"),
            (b"5\nhello\r\n", "bare CR or LF in chunked framing"),
            (b"5\r\nhello\r\n0\r\nx\n\r\n", "bare CR or LF in chunked framing"),
            (b"5\r\nhello\r\n0\r\n\n", "bare LF in chunked framing"),
        ];
        for (wire, why) in cases {
            for step in [1, wire.len()] {
                assert_eq!(dechunk(wire, step), Err(why), "{:?} by {step}", String::from_utf8_lossy(wire));
            }
        }
        let long = [b"1;".as_slice(), &[b'x'; MAX_CHUNK_LINE]].concat();
        assert_eq!(dechunk(&long, long.len()), Err("chunk size line too long"));
        // At the limit a line may still end; one byte more may not.
        let mut state = Chunk::Size;
        assert!(matches!(advance_chunked(&mut state, &mut BytesMut::from(&long[..MAX_CHUNK_LINE])), Ok(Step::More)));
        // Sixteen hex digits are a size; seventeen are refused, leading zeros or not.
        assert_eq!(dechunk(b"0000000000000002\r\nhi\r\n0\r\n\r\n", 1).as_deref(), Ok(&b"hi"[..]));
        assert_eq!(dechunk(b"00000000000000002\r\nhi\r\n0\r\n\r\n", 1), Err("invalid chunk size"));
        assert_eq!(dechunk(b";ext\r\n", 1), Err("invalid chunk size"));
    }

    #[test]
    fn a_request_head_is_written_as_the_parts_say() {
        let mut req = http::Request::get("/a/b?c=d").header("host", "up").header("x-twice", "1").body(()).unwrap();
        req.headers_mut().append("x-twice", HeaderValue::from_static("2"));
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        write_head(&mut out, &parts);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nhost: up\r\nx-twice: 1\r\nx-twice: 2\r\n\r\n"
        );
    }

    /// A request over a real socket to a peer that answers `answer` and then
    /// closes if `close`: the answer's body (or error) and whether the
    /// connection came home.
    async fn exchange(answer: &'static [u8], close: bool, head_only: bool) -> (Result<Vec<u8>, String>, bool) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            while !seen.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 256];
                let n = s.read(&mut b).await.unwrap();
                seen.extend_from_slice(&b[..n]);
            }
            s.write_all(answer).await.unwrap();
            if !close {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
        let conn = RawConn::new(TcpStream::connect(addr).await.unwrap());
        let method = if head_only { Method::HEAD } else { Method::GET };
        let (parts, ()) = http::Request::builder().method(method).uri("/").body(()).unwrap().into_parts();
        let home = Home::default();
        let body = match conn.exchange(&parts, b"", &home, Duration::from_millis(300)).await {
            Ok(response) => {
                response.into_body().collect().await.map(|b| b.to_bytes().to_vec()).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        peer.abort();
        (body, take_home(&home).is_some())
    }

    /// A connected pair: the lean connection and the upstream's end.
    async fn pair() -> (RawConn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let conn = RawConn::new(TcpStream::connect(listener.local_addr().unwrap()).await.unwrap());
        (conn, listener.accept().await.unwrap().0)
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_or_wrote_to_is_seen_before_writing() {
        let settle = || tokio::time::sleep(Duration::from_millis(50));
        let (conn, mut peer) = pair().await;
        settle().await;
        assert!(!conn.closed_while_idle(), "quiet: kept");
        peer.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        settle().await;
        assert!(conn.closed_while_idle(), "bytes nobody asked for");
        let (conn, peer) = pair().await;
        drop(peer);
        settle().await;
        assert!(conn.closed_while_idle(), "closed by the upstream");
    }

    /// The answer's head read over a real socket from `answer`.
    async fn answered(answer: &'static [u8], method: Method) -> (Response<RawBody>, Home, TcpStream) {
        let (conn, mut peer) = pair().await;
        peer.write_all(answer).await.unwrap();
        let (parts, ()) = http::Request::builder().method(method).uri("/").body(()).unwrap().into_parts();
        let home = Home::default();
        let response = conn.exchange(&parts, b"", &home, Duration::from_secs(5)).await.unwrap();
        (response, home, peer)
    }

    #[tokio::test]
    async fn a_body_that_is_over_before_it_is_read_sends_its_connection_home_at_once() {
        // hyper never polls a body that says it has ended.
        for (answer, method) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..], Method::HEAD),
            (b"HTTP/1.1 204 No Content\r\n\r\n", Method::GET),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", Method::GET),
        ] {
            let (response, home, _peer) = answered(answer, method).await;
            assert!(response.body().is_end_stream());
            assert!(take_home(&home).is_some(), "{:?}", String::from_utf8_lossy(answer));
        }
    }

    #[tokio::test]
    async fn a_body_says_it_has_ended_exactly_when_it_has() {
        let (response, home, _peer) = answered(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Method::GET).await;
        let mut body = std::pin::pin!(response.into_body());
        assert!(!body.is_end_stream());
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "hello");
        assert!(body.is_end_stream(), "the last bytes handed out end it, no further poll needed");
        assert!(take_home(&home).is_some());
        // A body to the close has ended once the close was read.
        let (response, _, peer) = answered(b"HTTP/1.1 200 OK\r\n\r\nbye", Method::GET).await;
        drop(peer);
        let mut body = std::pin::pin!(response.into_body());
        while body.frame().await.is_some() {}
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn a_connection_comes_home_only_after_a_whole_answer_that_keeps_it() {
        let (body, home) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, false).await;
        assert_eq!((body.as_deref(), home), (Ok(&b"hello"[..]), true));
        let (body, home) =
            exchange(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", false, false).await;
        assert_eq!((body.as_deref(), home), (Ok(&b"hi"[..]), true));
        let (body, home) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, true).await;
        assert_eq!((body.as_deref(), home), (Ok(&b""[..]), true));
        // Not kept: asked to close, bytes past the answer, a body to the end of the connection.
        let (_, home) =
            exchange(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", false, false).await;
        assert!(!home);
        let (_, home) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy", false, false).await;
        assert!(!home);
        let (body, home) = exchange(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true, false).await;
        assert_eq!((body.as_deref(), home), (Ok(&b"until the end"[..]), false));
    }

    #[tokio::test]
    async fn an_answer_cut_short_or_stalled_is_an_error() {
        let (body, home) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhalf", true, false).await;
        assert!(body.unwrap_err().contains("closed the connection"));
        assert!(!home);
        let (body, _) =
            exchange(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n", true, false).await;
        assert!(body.unwrap_err().contains("closed the connection"));
        let (body, _) = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhalf", false, false).await;
        assert!(body.unwrap_err().contains("upstream_read_timeout"));
        let (body, _) = exchange(b"HTTP/1.1 200 OK\r\nContent-Le", true, false).await;
        assert!(body.unwrap_err().contains("closed the connection"));
    }
}

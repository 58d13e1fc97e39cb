//! An answer written by the lean lane as hyper's server would write it: the
//! status line with its canonical reason, the headers, `Date` when the
//! answer has none, the framing (a length, chunks, or nothing for `HEAD`,
//! 204 and 304), and the body, small parts in one write with the head.

use std::cell::RefCell;
use std::io::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE};
use http::{Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::BoxError;

/// Body data up to this size is copied behind the head (one write); larger
/// data is written from where it lies.
const COPY_MAX: usize = 16 * 1024;

/// How the body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// None is sent (`HEAD`, 204, 304, or an empty body).
    Nothing,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked, ended by a last chunk.
    Chunked,
}

/// Writes `response` (to a `HEAD` request when `head_only`), with
/// `Connection: close` when `close`; true when the connection must close
/// after it (asked, or the answer says so). An error leaves the connection
/// unusable.
pub(super) async fn write_answer<IO, B>(
    io: &mut IO,
    out: &mut Vec<u8>,
    head_only: bool,
    close: bool,
    response: Response<B>,
) -> io::Result<bool>
where
    IO: AsyncWrite + Unpin,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    out.clear();
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>().map(hyper::ext::ReasonPhrase::as_bytes);
    let length = body_length(&body, &parts.headers);
    let (framing, close) =
        encode_head(out, Status { code: parts.status, reason }, &parts.headers, length, head_only, close);
    let mut body = std::pin::pin!(body);
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    loop {
        // The head waits for data that is already there, not for more.
        let frame = match std::future::poll_fn(|cx| std::task::Poll::Ready(body.as_mut().poll_frame(cx))).await {
            std::task::Poll::Ready(frame) => frame,
            std::task::Poll::Pending => {
                flush(io, out).await?;
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => {
                let e = io::Error::other(e.into());
                flush(io, out).await?;
                return Err(e);
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue,
            },
        };
        match framing {
            Framing::Nothing => continue,
            Framing::Length(_) => {
                let n = data.len() as u64;
                if n > left {
                    return Err(io::Error::other("the body is longer than its length"));
                }
                left -= n;
                put(io, out, &data).await?;
            }
            Framing::Chunked if data.is_empty() => {}
            Framing::Chunked => {
                chunk_size(out, data.len());
                put(io, out, &data).await?;
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if left > 0 {
        flush(io, out).await?;
        return Err(io::Error::other("the body ended before its length"));
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    flush(io, out).await?;
    Ok(close)
}

/// The body's length as hyper tells it: none for a body already ended, its
/// exact size, or else the answer's `Content-Length`.
fn body_length<B: Body>(body: &B, headers: &http::HeaderMap) -> Option<u64> {
    if body.is_end_stream() {
        return Some(0);
    }
    body.size_hint().exact().or_else(|| {
        let value = headers.get(CONTENT_LENGTH)?;
        value.to_str().ok()?.parse().ok()
    })
}

/// An answer's status and the reason phrase it carries when not the
/// canonical one (`hyper::ext::ReasonPhrase`, the upstream's own).
#[derive(Debug, Clone, Copy)]
struct Status<'a> {
    code: StatusCode,
    reason: Option<&'a [u8]>,
}

/// Encodes the head into `out` and says how the body follows, and whether
/// the connection closes after it.
fn encode_head(
    out: &mut Vec<u8>,
    Status { code: status, reason }: Status<'_>,
    headers: &http::HeaderMap,
    length: Option<u64>,
    head_only: bool,
    mut close: bool,
) -> (Framing, bool) {
    if status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        let canonical = status.canonical_reason().unwrap_or("<none>").as_bytes();
        out.extend_from_slice(reason.unwrap_or(canonical));
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = status.is_informational() || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let mut dated = false;
    let mut declared = None;
    let mut said_close = false;
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            declared.get_or_insert(value);
            continue;
        }
        dated |= name == DATE;
        if name == CONNECTION {
            said_close |= value.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framing = if bodiless {
        Framing::Nothing
    } else if head_only {
        // The length a GET would have had, as the upstream declared it.
        if let Some(value) = declared {
            header_line(out, b"content-length: ", value.as_bytes());
        } else if let Some(n) = length.filter(|&n| n > 0) {
            header_line(out, b"content-length: ", itoa::Buffer::new().format(n).as_bytes());
        }
        Framing::Nothing
    } else {
        match length {
            Some(n) => {
                header_line(out, b"content-length: ", itoa::Buffer::new().format(n).as_bytes());
                if n == 0 { Framing::Nothing } else { Framing::Length(n) }
            }
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
        }
    };
    if !dated {
        date(out);
    }
    if close && !said_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    close |= said_close;
    out.extend_from_slice(b"\r\n");
    (framing, close)
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A chunk's size line (hexadecimal).
fn chunk_size(out: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 16];
    let (mut i, mut n) = (digits.len(), n);
    loop {
        i -= 1;
        digits[i] = b"0123456789ABCDEF"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// `date: …` for this second, formatted once a second per thread (into
/// a fixed buffer: no allocation).
fn date(out: &mut Vec<u8>) {
    const LEN: usize = 29;
    thread_local! {
        static CACHED: RefCell<(u64, [u8; LEN])> = const { RefCell::new((u64::MAX, [0; LEN])) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            let mut cursor = io::Cursor::new(&mut text[..]);
            // An HTTP date is always 29 bytes.
            let _ = write!(cursor, "{}", httpdate::HttpDate::from(now));
        }
        header_line(out, b"date: ", &text[..]);
    });
}

/// Data after what `out` holds: copied when small, else both written.
async fn put<IO: AsyncWrite + Unpin>(io: &mut IO, out: &mut Vec<u8>, data: &[u8]) -> io::Result<()> {
    if out.len() + data.len() <= COPY_MAX {
        out.extend_from_slice(data);
        return Ok(());
    }
    flush(io, out).await?;
    io.write_all(data).await
}

async fn flush<IO: AsyncWrite + Unpin>(io: &mut IO, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn head(
        status: u16,
        reason: Option<&str>,
        pairs: &[(&str, &str)],
        length: Option<u64>,
        head_only: bool,
        close: bool,
    ) -> (String, Framing, bool) {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let mut out = Vec::new();
        let status = Status { code: StatusCode::from_u16(status).unwrap(), reason: reason.map(str::as_bytes) };
        let (framing, closes) = encode_head(&mut out, status, &headers, length, head_only, close);
        (String::from_utf8(out).unwrap(), framing, closes)
    }

    const DATED: (&str, &str) = ("date", "Sun, 06 Nov 1994 08:49:37 GMT");

    #[test]
    fn heads_are_framed_as_hyper_frames_them() {
        let (text, framing, closes) = head(200, None, &[("x-a", "1"), DATED], Some(5), false, false);
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 5\r\n\r\n"
        );
        assert_eq!((framing, closes), (Framing::Length(5), false));
        // The upstream's own reason; a status without a canonical one.
        assert!(
            head(200, Some("Fine Thanks"), &[DATED], Some(0), false, false)
                .0
                .starts_with("HTTP/1.1 200 Fine Thanks\r\n")
        );
        assert!(
            head(203, None, &[DATED], Some(0), false, false)
                .0
                .starts_with("HTTP/1.1 203 Non Authoritative Information\r\n")
        );
        assert!(head(599, None, &[DATED], Some(0), false, false).0.starts_with("HTTP/1.1 599 <none>\r\n"));
        // Unknown length: chunked; an empty body: a zero length.
        let (text, framing, _) = head(200, None, &[DATED], None, false, false);
        assert!(text.contains("\r\ntransfer-encoding: chunked\r\n") && !text.contains("content-length"), "{text}");
        assert_eq!(framing, Framing::Chunked);
        let (text, framing, _) = head(200, None, &[DATED, ("content-length", "9")], Some(0), false, false);
        assert!(text.contains("\r\ncontent-length: 0\r\n") && !text.contains(": 9"), "{text}");
        assert_eq!(framing, Framing::Nothing);
        // 204 and 304 carry no length and no body.
        for status in [204, 304] {
            let (text, framing, _) = head(status, None, &[DATED, ("content-length", "9")], Some(0), false, false);
            assert!(!text.contains("content-length") && !text.contains("chunked"), "{text}");
            assert_eq!(framing, Framing::Nothing);
        }
        // HEAD: the length the upstream declared, else the body's, no body.
        let (text, framing, _) = head(200, None, &[DATED, ("content-length", "20")], Some(0), true, false);
        assert!(text.contains("\r\ncontent-length: 20\r\n"), "{text}");
        assert_eq!(framing, Framing::Nothing);
        let (text, _, _) = head(200, None, &[DATED], Some(7), true, false);
        assert!(text.contains("\r\ncontent-length: 7\r\n"), "{text}");
        let (text, _, _) = head(200, None, &[DATED], Some(0), true, false);
        assert!(!text.contains("content-length"), "{text}");
    }

    #[test]
    fn a_date_is_added_once_and_close_is_said_once() {
        let (text, _, closes) = head(200, None, &[], Some(0), false, false);
        assert_eq!(text.matches("\r\ndate: ").count(), 1, "{text}");
        let (others, _, _) = head(200, None, &[("x-a", "1")], Some(0), false, false);
        assert_eq!(others.matches("\r\ndate: ").count(), 1, "a header other than Date is not one: {others}");
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");
        assert!(!closes && !text.contains("connection"));
        let (text, _, closes) = head(200, None, &[DATED], Some(0), false, true);
        assert!(closes && text.contains("\r\nconnection: close\r\n"), "{text}");
        // An answer that says close is closed after, and not said twice.
        let (text, _, closes) = head(200, None, &[DATED, ("connection", "x, Close")], Some(0), false, false);
        assert!(closes, "{text}");
        let (text, _, _) = head(200, None, &[DATED, ("connection", "close")], Some(0), false, true);
        assert_eq!(text.matches("close").count(), 1, "{text}");
        let (_, _, closes) = head(200, None, &[DATED, ("connection", "keep-alive, closed")], Some(0), false, false);
        assert!(!closes);
    }

    #[test]
    fn chunk_sizes_are_hexadecimal() {
        for (n, line) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (10, "A\r\n"),
            (255, "FF\r\n"),
            (4096, "1000\r\n"),
            (usize::MAX, "FFFFFFFFFFFFFFFF\r\n"),
        ] {
            let mut out = Vec::new();
            chunk_size(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), line);
        }
    }

    #[test]
    fn a_body_length_is_the_bodys_when_it_knows_it_else_the_declared_one() {
        let mut declared = HeaderMap::new();
        declared.insert(CONTENT_LENGTH, "12".parse().unwrap());
        let empty = http_body_util::Empty::<Bytes>::new();
        assert_eq!(body_length(&empty, &declared), Some(0));
        let full = http_body_util::Full::new(Bytes::from_static(b"abc"));
        assert_eq!(body_length(&full, &declared), Some(3));
        let unknown = http_body_util::StreamBody::new(futures_stream());
        assert_eq!(body_length(&unknown, &declared), Some(12));
        assert_eq!(body_length(&http_body_util::StreamBody::new(futures_stream()), &HeaderMap::new()), None);
    }

    fn stream_of(parts: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + use<> {
        let frames: Vec<_> = parts.iter().map(|p| Ok(http_body::Frame::data(Bytes::from_static(p)))).collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn written<B>(response: Response<B>, head_only: bool) -> (io::Result<bool>, String)
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (mut io, mut out) = (Vec::new(), Vec::new());
        let result = write_answer(&mut io, &mut out, head_only, false, response).await;
        let text = String::from_utf8(io).unwrap();
        (result, text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or(text))
    }

    #[tokio::test]
    async fn bodies_are_written_as_framed_and_a_wrong_length_is_an_error() {
        let (result, body) = written(Response::new(stream_of(&[b"ab", b"", b"cde"])), false).await;
        assert_eq!((result.unwrap(), body.as_str()), (false, "2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"));
        let declared = |n: &str, parts: &[&'static [u8]]| {
            let mut res = Response::new(stream_of(parts));
            res.headers_mut().insert(CONTENT_LENGTH, n.parse().unwrap());
            res
        };
        let (result, body) = written(declared("5", &[b"ab", b"cde"]), false).await;
        assert_eq!((result.unwrap(), body.as_str()), (false, "abcde"));
        assert!(written(declared("4", &[b"ab", b"cde"]), false).await.0.is_err(), "longer than its length");
        let (result, body) = written(declared("6", &[b"ab", b"cde"]), false).await;
        assert!(result.is_err(), "shorter than its length");
        assert_eq!(body, "abcde", "what came is written before the connection is given up");
        let (result, body) = written(declared("5", &[b"ab", b"cde"]), true).await;
        assert_eq!((result.unwrap(), body.as_str()), (false, ""), "a HEAD's answer has no body");
        // Large data is written from where it lies, after the head.
        let big: &'static [u8] = Box::leak(vec![b'x'; COPY_MAX + 1].into_boxed_slice());
        let (result, body) = written(Response::new(http_body_util::Full::new(Bytes::from_static(big))), false).await;
        assert_eq!((result.unwrap(), body.len()), (false, COPY_MAX + 1));
    }

    /// A stream of one frame, whose length a body cannot know.
    fn futures_stream() -> impl futures_util::Stream<Item = Result<http_body::Frame<Bytes>, std::convert::Infallible>> {
        futures_util::stream::iter([Ok(http_body::Frame::data(Bytes::from_static(b"x")))])
    }
}

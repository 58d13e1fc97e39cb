//! An answer written by the lean lane as hyper's server would write it: the
//! status line with its canonical reason, the headers, `Date` when the
//! answer has none, the framing (a length, chunks, or nothing for `HEAD`,
//! 204 and 304), and the body, small parts in one write with the head.

use std::cell::RefCell;
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, DATE};
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
/// `Connection: close` when `close`. An error leaves the connection unusable.
pub(super) async fn write_answer<IO, B>(
    io: &mut IO,
    out: &mut Vec<u8>,
    head_only: bool,
    close: bool,
    response: Response<B>,
) -> io::Result<()>
where
    IO: AsyncWrite + Unpin,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    out.clear();
    let framing = encode_head(out, parts.status, &parts.headers, body_length(&body, &parts.headers), head_only, close);
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
    flush(io, out).await
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

/// Encodes the head into `out` and says how the body follows.
fn encode_head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &http::HeaderMap,
    length: Option<u64>,
    head_only: bool,
    close: bool,
) -> Framing {
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = status.is_informational() || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let mut dated = false;
    let mut declared = None;
    for (name, value) in headers {
        if name == CONTENT_LENGTH {
            declared.get_or_insert(value);
            continue;
        }
        dated |= name == DATE;
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
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    framing
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

/// `date: …` for this second, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with_borrow_mut(|(at, text)| {
        if *at != second {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        header_line(out, b"date: ", text.as_bytes());
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

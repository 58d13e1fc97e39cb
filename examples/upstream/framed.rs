//! Creates answered in every framing and coding a real app may use, for the
//! tee's tests: `POST /framed/{mode}/items/` stores the JSON object it is
//! sent with a new `id` and answers 201 with the stored item, without
//! `Location` unless `?location=1`; `GET /framed/{mode}/items/{id}/` reads it.
//! Modes: `length` (declared length), `chunked` (7-byte chunks), `gzip`,
//! `deflate`, `br` (encoded, then chunked), `trickle` (5-byte chunks 10 ms
//! apart, the last one held until `POST /framed/release`), `bigid` (ids past
//! 64 bits), `huge` (a 70,000-byte `pad` field), `same` (every create
//! answers id 1, and reading it takes 1 ms: after-snapshots queue up on one
//! resource, the create storm of `scripts/bench-storm.sh`). `POST /framed/reset` starts
//! the ids over, so that two runs answer the same bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use crate::{Body, BoxError, full};

static NEXT: AtomicU64 = AtomicU64::new(0);

fn items() -> &'static Mutex<HashMap<String, serde_json::Value>> {
    static ITEMS: OnceLock<Mutex<HashMap<String, serde_json::Value>>> = OnceLock::new();
    ITEMS.get_or_init(Default::default)
}

/// Lets the held last chunk of a `trickle` answer go.
fn release() -> &'static tokio::sync::Notify {
    static RELEASE: OnceLock<tokio::sync::Notify> = OnceLock::new();
    RELEASE.get_or_init(tokio::sync::Notify::new)
}

pub async fn handle(req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::POST, ["framed", "release"]) => {
            release().notify_one();
            Response::new(full("released"))
        }
        (Method::POST, ["framed", "reset"]) => {
            NEXT.store(0, Ordering::SeqCst);
            items().lock().unwrap().clear();
            Response::new(full("reset"))
        }
        (Method::POST, ["framed", mode, "items"]) => {
            let mode = mode.to_string();
            let location = req.uri().query().is_some_and(|q| q.contains("location=1"));
            let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            create(&mode, &body, location)
        }
        (Method::GET, ["framed", mode, "items", id]) => {
            if *mode == "same" {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            match items().lock().unwrap().get(&format!("{mode}/{id}")) {
                Some(item) => Response::new(full(item.to_string())),
                None => status(StatusCode::NOT_FOUND, "no such item"),
            }
        }
        _ => status(StatusCode::NOT_FOUND, "not found"),
    }
}

fn status(code: StatusCode, text: &'static str) -> Response<Body> {
    let mut res = Response::new(full(text));
    *res.status_mut() = code;
    res
}

fn create(mode: &str, body: &[u8], location: bool) -> Response<Body> {
    let Ok(serde_json::Value::Object(mut item)) = serde_json::from_slice(body) else {
        return status(StatusCode::BAD_REQUEST, "send a JSON object");
    };
    let n = NEXT.fetch_add(1, Ordering::SeqCst) + 1;
    let id = match mode {
        "bigid" => format!("12345678901234567890123456789{n}"),
        "same" => "1".to_string(),
        _ => n.to_string(),
    };
    // The id is written as a JSON number with all its digits.
    item.insert("id".into(), serde_json::from_str(&id).unwrap());
    if mode == "huge" {
        item.insert("pad".into(), "x".repeat(70_000).into());
    }
    let text = serde_json::Value::Object(item.clone()).to_string();
    items().lock().unwrap().insert(format!("{mode}/{id}"), serde_json::Value::Object(item));
    let (bytes, coding) = match mode {
        "gzip" => (encode_gzip(text.as_bytes()), Some("gzip")),
        "deflate" => (encode_deflate(text.as_bytes()), Some("deflate")),
        "br" => (encode_brotli(text.as_bytes()), Some("br")),
        _ => (text.into_bytes(), None),
    };
    let mut res = match mode {
        "length" => Response::new(full(bytes)),
        "trickle" => Response::new(trickle(bytes)),
        _ => Response::new(chunks(bytes, 7)),
    };
    *res.status_mut() = StatusCode::CREATED;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    if let Some(coding) = coding {
        h.insert(header::CONTENT_ENCODING, coding.parse().unwrap());
    }
    if location {
        h.insert(header::LOCATION, format!("/framed/{mode}/items/{id}/").parse().unwrap());
    }
    res
}

/// `bytes` sent in pieces of `size`, with no declared length (chunked).
fn chunks(bytes: Vec<u8>, size: usize) -> Body {
    let pieces: Vec<Result<Frame<Bytes>, BoxError>> =
        bytes.chunks(size).map(|c| Ok(Frame::data(Bytes::copy_from_slice(c)))).collect();
    StreamBody::new(futures_util::stream::iter(pieces)).boxed_unsync()
}

/// `bytes` in 5-byte pieces 10 ms apart; the last waits for `release()`.
fn trickle(bytes: Vec<u8>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    tokio::spawn(async move {
        let pieces: Vec<Bytes> = bytes.chunks(5).map(Bytes::copy_from_slice).collect();
        let last = pieces.len() - 1;
        for (i, piece) in pieces.into_iter().enumerate() {
            if i == last {
                release().notified().await;
            } else if i > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if tx.send(Ok(Frame::data(piece))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    StreamBody::new(stream).boxed_unsync()
}

fn encode_gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn encode_deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn encode_brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
    out
}

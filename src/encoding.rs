//! Content codings (RFC 9110 §8.4) of the bodies auditgate reads for the
//! trail: a snapshot, or the copy of an audited answer. Only those copies are
//! decoded, each held to a bound after decompression; what the client
//! receives is never touched.

use std::io::Read;

use http::HeaderMap;
use http::header::CONTENT_ENCODING;

/// A coding auditgate can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// zlib-wrapped, as RFC 9110 says; raw deflate, which some servers send, is accepted too.
    Deflate,
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{0}-encoded, which auditgate cannot decode")]
    Unsupported(String),
    #[error("bad {0} data")]
    Bad(&'static str),
    #[error("larger than {0} bytes once decoded")]
    TooLarge(usize),
}

/// The coding a message's `Content-Encoding` names: `None` for none or
/// `identity`. Several codings (`gzip, br`) are not supported.
pub fn coding_of(headers: &HeaderMap) -> Result<Option<Coding>, DecodeError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else { return Ok(None) };
    let name = value.to_str().map_err(|_| DecodeError::Unsupported("non-ASCII".into()))?.trim();
    let coding = match name.to_ascii_lowercase().as_str() {
        "" | "identity" => None,
        "gzip" | "x-gzip" => Some(Coding::Gzip),
        "deflate" => Some(Coding::Deflate),
        "br" => Some(Coding::Brotli),
        _ => return Err(DecodeError::Unsupported(name.to_string())),
    };
    Ok(coding)
}

/// Decodes `body`, refusing output beyond `max` bytes (a decompression bomb
/// stays bounded).
pub fn decode(body: &[u8], coding: Coding, max: usize) -> Result<Vec<u8>, DecodeError> {
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    let read = match coding {
        Coding::Gzip => flate2::read::MultiGzDecoder::new(body).take(limit).read_to_end(&mut out),
        Coding::Deflate => {
            let zlib = flate2::read::ZlibDecoder::new(body).take(limit).read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body).take(limit).read_to_end(&mut out)
            } else {
                zlib
            }
        }
        Coding::Brotli => brotli_decompressor::Decompressor::new(body, 4096).take(limit).read_to_end(&mut out),
    };
    read.map_err(|_| DecodeError::Bad(coding.name()))?;
    if out.len() > max {
        return Err(DecodeError::TooLarge(max));
    }
    Ok(out)
}

/// A body as sent, decoded when its headers name a coding.
pub fn decoded(body: &[u8], headers: &HeaderMap, max: usize) -> Result<Vec<u8>, DecodeError> {
    match coding_of(headers)? {
        None => Ok(body.to_vec()),
        Some(coding) => decode(body, coding, max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const JSON: &[u8] = br#"{"name": "a", "tags": [1, 2]}"#;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
        out
    }

    fn headers(coding: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, http::HeaderValue::from_static(coding));
        h
    }

    #[test]
    fn decodes_every_coding_within_the_bound() {
        assert_eq!(decode(&gzip(JSON), Coding::Gzip, 1024).unwrap(), JSON);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(JSON).unwrap();
        assert_eq!(decode(&z.finish().unwrap(), Coding::Deflate, 1024).unwrap(), JSON);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(JSON).unwrap();
        assert_eq!(decode(&raw.finish().unwrap(), Coding::Deflate, 1024).unwrap(), JSON);
        assert_eq!(decode(&brotli(JSON), Coding::Brotli, 1024).unwrap(), JSON);
        // Exactly at the bound is allowed; one byte less is not.
        assert_eq!(decode(&gzip(JSON), Coding::Gzip, JSON.len()).unwrap(), JSON);
        assert_eq!(decode(&gzip(JSON), Coding::Gzip, JSON.len() - 1), Err(DecodeError::TooLarge(JSON.len() - 1)));
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        // 10 MiB of zeros compress to ~10 KiB: the output bound holds.
        let zeros = vec![0u8; 10 << 20];
        for (bomb, coding) in [(gzip(&zeros), Coding::Gzip), (brotli(&zeros), Coding::Brotli)] {
            assert!(bomb.len() < 64 << 10);
            assert_eq!(decode(&bomb, coding, 1 << 20), Err(DecodeError::TooLarge(1 << 20)));
        }
        assert_eq!(decode(b"not gzip", Coding::Gzip, 1024), Err(DecodeError::Bad("gzip")));
        assert_eq!(decode(b"\xff\xff\xff", Coding::Brotli, 1024), Err(DecodeError::Bad("br")));
    }

    #[test]
    fn the_headers_name_the_coding() {
        assert_eq!(coding_of(&HeaderMap::new()), Ok(None));
        assert_eq!(coding_of(&headers("identity")), Ok(None));
        assert_eq!(coding_of(&headers(" GZIP ")), Ok(Some(Coding::Gzip)));
        assert_eq!(coding_of(&headers("x-gzip")), Ok(Some(Coding::Gzip)));
        assert_eq!(coding_of(&headers("deflate")), Ok(Some(Coding::Deflate)));
        assert_eq!(coding_of(&headers("br")), Ok(Some(Coding::Brotli)));
        assert_eq!(coding_of(&headers("zstd")), Err(DecodeError::Unsupported("zstd".into())));
        assert_eq!(coding_of(&headers("gzip, br")), Err(DecodeError::Unsupported("gzip, br".into())));
        assert_eq!(decoded(&gzip(JSON), &headers("gzip"), 1024).unwrap(), JSON);
        assert_eq!(decoded(JSON, &HeaderMap::new(), 1024).unwrap(), JSON);
    }
}

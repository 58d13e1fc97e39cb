//! What a request body asks for (docs/server-rendered-apps.md):
//! JSON as it stands; an urlencoded or multipart form as an object of its
//! fields (a repeated name: an array in order; a file part as its name, size
//! and SHA-256, never its bytes), the `volatile_fields` left out. Compared
//! with the after-state (`unapplied`) and kept under `capture = "full"`.

use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::unapplied::{Unapplied, unapplied, unapplied_text};

/// A request body's fields, and whether they came from a form (whose
/// values are text, compared with the applied value's text).
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub fields: Value,
    pub form: bool,
}

impl Requested {
    /// The body `body` of type `content_type` read into fields; `None` when
    /// it is neither a form nor JSON.
    pub fn read(body: &[u8], content_type: Option<&str>, volatile: &[String]) -> Option<Requested> {
        let media = content_type.map(crate::snapshot::reading::media_type);
        let pairs = match media.as_deref() {
            Some("application/x-www-form-urlencoded") => urlencoded(body, content_type),
            Some("multipart/form-data") => multipart(body, content_type?)?,
            _ => return serde_json::from_slice(body).ok().map(|fields| Requested { fields, form: false }),
        };
        Some(Requested { fields: gathered(pairs, volatile), form: true })
    }

    /// The fields `after` does not hold as asked.
    pub fn unapplied(&self, after: &Value) -> Option<Vec<Unapplied>> {
        if self.form { unapplied_text(&self.fields, after) } else { unapplied(&self.fields, after) }
    }
}

/// The body as the entry keeps it (`capture = "full"`): its fields when
/// they can be read (a body without a type that looks like an urlencoded
/// form is read as one), other UTF-8 text as a string; anything else, or
/// beyond `max` bytes, as a note of its size.
pub fn kept(body: &[u8], content_type: Option<&str>, volatile: &[String], max: usize) -> Value {
    if body.len() > max {
        return json!({"omitted": "larger than snapshot.max_bytes", "bytes": body.len()});
    }
    if let Some(requested) = Requested::read(body, content_type, volatile) {
        return requested.fields;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return json!({"omitted": "not text", "bytes": body.len()});
    };
    let looks_like_form = content_type.is_none()
        && !text.is_empty()
        && text.split('&').all(|pair| pair.contains('=') && !pair.contains(' '));
    if looks_like_form {
        return gathered(urlencoded(body, None), volatile);
    }
    Value::String(text.to_string())
}

/// An urlencoded body's pairs. Each name and value is read in the
/// `charset` the type names, else as UTF-8, else (bytes that are not
/// UTF-8: a form on a legacy page) as windows-1252, as browsers send a
/// Latin-1 page's forms.
fn urlencoded(body: &[u8], content_type: Option<&str>) -> Vec<(String, Value)> {
    let labelled = content_type.and_then(crate::snapshot::reading::charset);
    let text = |raw: &[u8]| {
        let plus: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
        let bytes = crate::resource::percent_decode_bytes(&plus);
        match labelled {
            Some(encoding) => encoding.decode_without_bom_handling(&bytes).0.into_owned(),
            None => String::from_utf8(bytes)
                .unwrap_or_else(|e| encoding_rs::WINDOWS_1252.decode_without_bom_handling(e.as_bytes()).0.into_owned()),
        }
    };
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|b| *b == b'=') {
            Some(i) => (text(&pair[..i]), Value::String(text(&pair[i + 1..]))),
            None => (text(pair), Value::String(String::new())),
        })
        .collect()
}

/// A `multipart/form-data` body's parts; `None` when it is not one.
fn multipart(body: &[u8], content_type: &str) -> Option<Vec<(String, Value)>> {
    let boundary = multer::parse_boundary(content_type).ok()?;
    let whole = Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(whole) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut pairs = Vec::new();
    // The body is all here: every step is ready at once.
    while let Some(field) = parts.next_field().now_or_never()?.ok()? {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let bytes = field.bytes().now_or_never()?.ok()?;
        let value = match filename {
            Some(filename) => json!({
                "filename": filename,
                "bytes": bytes.len(),
                "sha256": crate::entry::hex(&Sha256::digest(&bytes)),
            }),
            None => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        };
        pairs.push((name, value));
    }
    Some(pairs)
}

/// Pairs as an object: a name given again makes an array of its values in
/// order; volatile names are left out.
fn gathered(pairs: Vec<(String, Value)>, volatile: &[String]) -> Value {
    let mut out = Map::new();
    for (name, value) in pairs {
        if volatile.contains(&name) {
            continue;
        }
        match out.get_mut(&name) {
            None => {
                out.insert(name, value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;

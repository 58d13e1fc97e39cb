//! Value extractors for `id_from` and `username_from`: `form:<field>`,
//! `json:<pointer>`, `query:<name>`, `header:<name>`.

use std::fmt;

use http::{HeaderMap, HeaderName};

use super::path::percent_decode;

/// Where a value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extractor {
    Form(String),
    Json(String),
    Query(String),
    Header(HeaderName),
}

impl Extractor {
    /// Parses `kind:name`; the error says what is accepted.
    pub fn parse(spec: &str) -> Result<Extractor, String> {
        let (kind, name) = spec
            .split_once(':')
            .ok_or_else(|| format!("`{spec}` must be form:<field>, json:<pointer>, query:<name> or header:<name>"))?;
        if name.is_empty() {
            return Err(format!("`{spec}` names no field"));
        }
        match kind {
            "form" => Ok(Extractor::Form(name.to_string())),
            "json" if name.starts_with('/') => Ok(Extractor::Json(name.to_string())),
            "json" => Err(format!("`{spec}`: a JSON pointer starts with `/`")),
            "query" => Ok(Extractor::Query(name.to_string())),
            "header" => HeaderName::from_bytes(name.as_bytes())
                .map(Extractor::Header)
                .map_err(|_| format!("`{spec}`: `{name}` is not a header name")),
            _ => Err(format!("`{spec}`: unknown source `{kind}` (form, json, query, header)")),
        }
    }

    /// True when the value is in the body, which must be read first.
    pub fn needs_body(&self) -> bool {
        matches!(self, Extractor::Form(_) | Extractor::Json(_))
    }

    /// Reads the value from the parts available before the body.
    pub fn from_head(&self, query: Option<&str>, headers: &HeaderMap) -> Option<String> {
        match self {
            Extractor::Query(name) => form_value(query?.as_bytes(), name),
            Extractor::Header(name) => headers.get(name)?.to_str().ok().map(str::to_string),
            Extractor::Form(_) | Extractor::Json(_) => None,
        }
    }

    /// Reads the value from a request body.
    pub fn from_body(&self, body: &[u8]) -> Option<String> {
        match self {
            Extractor::Form(name) => form_value(body, name),
            Extractor::Json(pointer) => {
                let value: serde_json::Value = serde_json::from_slice(body).ok()?;
                match value.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Null => None,
                    other => Some(other.to_string()),
                }
            }
            Extractor::Query(_) | Extractor::Header(_) => None,
        }
    }
}

impl fmt::Display for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Extractor::Form(n) => write!(f, "form:{n}"),
            Extractor::Json(p) => write!(f, "json:{p}"),
            Extractor::Query(n) => write!(f, "query:{n}"),
            Extractor::Header(h) => write!(f, "header:{h}"),
        }
    }
}

/// The first value of `name` in an `application/x-www-form-urlencoded` string.
pub(crate) fn form_value(encoded: &[u8], name: &str) -> Option<String> {
    form_pairs(encoded).find_map(|(k, v)| (k == name).then_some(v))
}

/// The decoded `name=value` pairs of a urlencoded form, in order.
fn form_pairs(encoded: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    encoded.split(|b| *b == b'&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        (form_decode(k), form_decode(v))
    })
}

fn form_decode(raw: &[u8]) -> String {
    let plus: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
    percent_decode(&String::from_utf8_lossy(&plus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reads() {
        let form = Extractor::parse("form:user_id").unwrap();
        assert_eq!(form.from_body(b"a=1&user_id=42+x"), Some("42 x".into()));
        let json = Extractor::parse("json:/user/id").unwrap();
        assert_eq!(json.from_body(br#"{"user":{"id":7}}"#), Some("7".into()));
        let query = Extractor::parse("query:id").unwrap();
        assert_eq!(query.from_head(Some("x=1&id=a%2Fb"), &HeaderMap::new()), Some("a/b".into()));
        assert!(Extractor::parse("json:id").is_err());
        assert!(Extractor::parse("cookie:x").is_err());
        assert!(Extractor::parse("form:").is_err());
        assert!(Extractor::parse("header:bad header").is_err());
    }
}

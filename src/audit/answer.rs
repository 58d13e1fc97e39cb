//! What an audited answer tells the entry: the id of the resource it created
//! (the JSON body's `id_field`, else the `Location` read through the
//! resource rules), read from the tee's bounded copy once the answer has
//! ended, whatever its framing and content coding. Ids keep the app's own
//! digits.

use std::borrow::Cow;

use crate::snapshot::ResourceGuard;
use http::HeaderMap;
use http::header::LOCATION;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::diff::pointer_tokens;
use crate::encoding::decoded;

/// The answer as far as the entry is concerned.
#[derive(Debug, Default)]
pub struct Answer {
    /// The id it names, if any.
    pub id: Option<String>,
    /// Where and how the new resource's state is read, when its `Location`
    /// named it.
    pub located: Option<Located>,
    /// The new resource's turn, taken before the client saw the answer end.
    pub guard: Option<ResourceGuard>,
    /// Why the body could not be read for the id (kept when none was found).
    pub note: Option<String>,
    /// With `durability = "sync"`: told once the entry is durable, which
    /// the answer's end waits for.
    pub durable: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Answer {
    /// The answer when its body was not read (or broke off): what its
    /// `Location` names, `located`.
    pub fn from_location(located: Option<Located>) -> Answer {
        Answer { id: located.as_ref().map(|l| l.id.clone()), located, guard: None, note: None, durable: None }
    }

    /// The answer from the copy of its body (`None`: larger than `max` bytes),
    /// decoded by its `Content-Encoding` within `max`; else what `locate`
    /// finds in its `Location`.
    pub fn from_copy(
        headers: &HeaderMap,
        copy: Option<&[u8]>,
        id_field: &str,
        max: usize,
        locate: impl FnOnce() -> Option<Located>,
    ) -> Answer {
        let (from_body, note) = match copy.map(|bytes| decoded(bytes, headers, max)) {
            None => (None, Some(format!("the answer is larger than snapshot.max_bytes ({max})"))),
            Some(Ok(body)) => (id_in_body(&body, id_field), None),
            Some(Err(e)) => (None, Some(format!("the answer is {e}"))),
        };
        match from_body {
            Some(id) => Answer { id: Some(id), located: None, guard: None, note: None, durable: None },
            None => {
                let located = Answer::from_location(locate());
                Answer { note: note.filter(|_| located.id.is_none()), ..located }
            }
        }
    }
}

/// The value at `pointer` in a JSON body, as the app wrote it: a string's
/// text, a number's own digits (no rounding through a float). The body is
/// checked whole, but only the value found is built: everything else is
/// skipped as it is read (a duplicate key: the last one wins, as in a
/// `serde_json::Value`).
pub fn id_in_body(body: &[u8], pointer: &str) -> Option<String> {
    if pointer.is_empty() {
        return None;
    }
    let tokens: Vec<Cow<'_, str>> = pointer_tokens(pointer).collect();
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = Find(&tokens).deserialize(&mut de).ok()?;
    de.end().ok()?;
    match found? {
        Value::String(s) if !s.is_empty() => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the value at the remaining tokens of a pointer.
struct Find<'t>(&'t [Cow<'t, str>]);

impl<'de> DeserializeSeed<'de> for Find<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        match self.0.split_first() {
            None => Value::deserialize(d).map(Some),
            Some((token, rest)) => d.deserialize_any(Step { token, rest }),
        }
    }
}

/// One step down: the member or item `token` names, the rest skipped.
/// (With `arbitrary_precision` a number arrives as a one-key map, whose key
/// is never a token sought.)
struct Step<'t> {
    token: &'t str,
    rest: &'t [Cow<'t, str>],
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(self.token))? {
            if hit {
                found = map.next_value_seed(Find(self.rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Value>, A::Error> {
        let wanted = self.token.parse::<usize>().ok();
        let mut found = None;
        for i in 0.. {
            if Some(i) == wanted {
                match seq.next_element_seed(Find(self.rest))? {
                    Some(value) => found = value,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
        }
        Ok(found)
    }

    // A scalar has no members: the default visits fail, which the caller
    // reads as "not found".
}

/// Whether an object's key is the token sought, read without allocating.
struct KeyIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// The resource a `Location` names, read through the resource rules.
#[derive(Debug, Clone)]
pub struct Located {
    pub id: String,
    /// The path it names (the page whose form is its state).
    pub path: String,
    /// The GET that reads its state (the rule's `snapshot`, else the path).
    pub snapshot: Option<String>,
    /// How the rule that matched it reads its pages.
    pub page: Option<std::sync::Arc<crate::snapshot::PageRule>>,
}

/// The path (without query or fragment) an answer's `Location` points at,
/// resolved against the request's `path` when relative; `None` without one.
pub fn location_path(headers: &HeaderMap, path: &str) -> Option<String> {
    let location = headers.get(LOCATION)?.to_str().ok()?;
    let target = location.split(['?', '#']).next()?.trim();
    (!target.is_empty()).then(|| crate::snapshot::form::resolve(path, location))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http::header::CONTENT_ENCODING;

    fn located(at: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::from_static(at));
        h
    }

    #[test]
    fn ids_keep_the_apps_digits() {
        assert_eq!(id_in_body(br#"{"id": 5}"#, "/id").as_deref(), Some("5"));
        assert_eq!(
            id_in_body(br#"{"id": 123456789012345678901234567890}"#, "/id").as_deref(),
            Some("123456789012345678901234567890")
        );
        assert_eq!(id_in_body(br#"{"id": 18446744073709551616}"#, "/id").as_deref(), Some("18446744073709551616"));
        assert_eq!(id_in_body(br#"{"id": -7}"#, "/id").as_deref(), Some("-7"));
        assert_eq!(id_in_body(br#"{"data": {"pk": "a-b"}}"#, "/data/pk").as_deref(), Some("a-b"));
        assert_eq!(id_in_body(br#" {"items": [{"id": 4}, {"id": 9}]} "#, "/items/1/id").as_deref(), Some("9"));
        assert_eq!(id_in_body(br#"{"a~b": {"c/d": "x"}}"#, "/a~0b/c~1d").as_deref(), Some("x"));
        assert_eq!(id_in_body(br#"{"id": "caf\u00e9"}"#, "/id").as_deref(), Some("café"));
        assert_eq!(id_in_body(br#"{"k\u0065y": 1}"#, "/key").as_deref(), Some("1"));
        assert_eq!(id_in_body(br#"[7]"#, "/0").as_deref(), Some("7"));
        assert_eq!(id_in_body(br#"[7]"#, "/x"), None);
        assert_eq!(id_in_body(br#"{"id": 5} trailing"#, "/id"), None);
        assert_eq!(id_in_body(br#"{"id": {"nested": 1}}"#, "/id/nested/deeper"), None);
        assert_eq!(id_in_body(br#"{"id": 5}"#, ""), None);
        assert_eq!(id_in_body(br#"{"id": 1, "id": 2}"#, "/id").as_deref(), Some("2"));
        assert_eq!(id_in_body(br#"{"id": 1, "x": [1, {"y": null}], "z": "s"}"#, "/id").as_deref(), Some("1"));
        for scalar in ["1.5e3", "true", "null", "\"s\"", "-2"] {
            let body = format!(r#"{{"a": {scalar}, "id": 1}}"#);
            assert_eq!(id_in_body(body.as_bytes(), "/a/b"), None, "{scalar}");
            assert_eq!(id_in_body(body.as_bytes(), "/id").as_deref(), Some("1"), "{scalar}");
        }
        assert_eq!(id_in_body(br#"{"a": [1, 2], "id": 3"#, "/id"), None);
        assert_eq!(id_in_body(br#"[[1, 2], [3, 4]]"#, "/1/0").as_deref(), Some("3"));
        assert_eq!(id_in_body(br#"[1]"#, "/5"), None);
        assert_eq!(id_in_body(br#"{"id": ""}"#, "/id"), None);
        assert_eq!(id_in_body(br#"{"id": null}"#, "/id"), None);
        assert_eq!(id_in_body(br#"{"id": [1]}"#, "/id"), None);
        assert_eq!(id_in_body(b"not json", "/id"), None);
    }

    #[test]
    fn a_location_is_resolved_to_a_path() {
        let at = |location: &'static str, path: &str| location_path(&located(location), path);
        assert_eq!(at("http://x/api/users/77/", "/api/users/").as_deref(), Some("/api/users/77/"));
        assert_eq!(at("https://x:8443", "/a/").as_deref(), Some("/"));
        assert_eq!(at("//x/c/3?y=1", "/a/").as_deref(), Some("/c/3"));
        assert_eq!(at("/users/a%20b?x=1#f", "/users/").as_deref(), Some("/users/a%20b"));
        assert_eq!(at("3/edit/", "/customers/new").as_deref(), Some("/customers/3/edit/"), "relative to the request");
        assert_eq!(at("3/", "nothing").as_deref(), Some("/3/"));
        assert_eq!(at("a/b://c", "/x/").as_deref(), Some("/x/a/b://c"), "a path with a colon is not a scheme");
        assert_eq!(at("?page=2", "/x/"), None);
        assert_eq!(location_path(&HeaderMap::new(), "/x/"), None);
    }

    #[test]
    fn the_body_wins_then_location_then_a_note() {
        let h = HeaderMap::new();
        let at_77 = || {
            let snapshot = Some("/users/77/edit".into());
            Some(Located { id: "77".into(), path: "/users/77/".into(), snapshot, page: None })
        };
        let body = Answer::from_copy(&h, Some(br#"{"id": 5}"#), "/id", 100, at_77);
        assert_eq!((body.id.as_deref(), body.located.is_none()), (Some("5"), true));
        let other = Answer::from_copy(&h, Some(br#"{"pk": 5}"#), "/id", 100, at_77);
        let snapshot = other.located.and_then(|l| l.snapshot);
        assert_eq!((other.id.as_deref(), snapshot.as_deref()), (Some("77"), Some("/users/77/edit")));
        let big = Answer::from_copy(&h, None, "/id", 100, || None);
        assert_eq!((big.id, big.note.as_deref()), (None, Some("the answer is larger than snapshot.max_bytes (100)")));
        // A note is kept only when no id was found.
        let located = Answer::from_copy(&h, None, "/id", 100, at_77);
        assert_eq!((located.id.as_deref(), located.note), (Some("77"), None));
        let mut zipped = HeaderMap::new();
        zipped.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let bad = Answer::from_copy(&zipped, Some(b"not gzip"), "/id", 100, || None);
        assert_eq!(bad.note.as_deref(), Some("the answer is bad gzip data"));
    }
}

//! What an audited answer tells the entry: the id of the resource it created
//! (the JSON body's `id_field`, else the last segment of `Location`), read
//! from the tee's bounded copy once the answer has ended, whatever its
//! framing and content coding. Ids keep the app's own digits.

use http::HeaderMap;
use http::header::LOCATION;
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;

use crate::encoding::decoded;

/// The answer as far as the entry is concerned.
#[derive(Debug, Default)]
pub struct Answer {
    /// The id it names, if any.
    pub id: Option<String>,
    /// The new resource's turn, taken before the client saw the answer end.
    pub guard: Option<OwnedMutexGuard<()>>,
    /// Why the body could not be read for the id (kept when none was found).
    pub note: Option<String>,
}

impl Answer {
    /// The answer when its body was not read (or broke off): `Location` only.
    pub fn from_location(headers: &HeaderMap) -> Answer {
        Answer { id: id_in_location(headers), guard: None, note: None }
    }

    /// The answer from the copy of its body (`None`: larger than `max` bytes),
    /// decoded by its `Content-Encoding` within `max`.
    pub fn from_copy(headers: &HeaderMap, copy: Option<&[u8]>, id_field: &str, max: usize) -> Answer {
        let (from_body, note) = match copy.map(|bytes| decoded(bytes, headers, max)) {
            None => (None, Some(format!("the answer is larger than snapshot.max_bytes ({max})"))),
            Some(Ok(body)) => (id_in_body(&body, id_field), None),
            Some(Err(e)) => (None, Some(format!("the answer is {e}"))),
        };
        match from_body {
            Some(id) => Answer { id: Some(id), guard: None, note: None },
            None => {
                let located = Answer::from_location(headers);
                Answer { note: note.filter(|_| located.id.is_none()), ..located }
            }
        }
    }
}

/// The value at `pointer` in a JSON body, as the app wrote it: a string's
/// text, a number's own digits (no rounding through a float).
pub fn id_in_body(body: &[u8], pointer: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    match value.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The last path segment of `Location`, percent-decoded.
pub fn id_in_location(headers: &HeaderMap) -> Option<String> {
    let location = headers.get(LOCATION)?.to_str().ok()?;
    let path = location.split(['?', '#']).next()?;
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    (!last.is_empty()).then(|| crate::resource::percent_decode(last))
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
        assert_eq!(id_in_body(br#"{"id": ""}"#, "/id"), None);
        assert_eq!(id_in_body(br#"{"id": null}"#, "/id"), None);
        assert_eq!(id_in_body(br#"{"id": [1]}"#, "/id"), None);
        assert_eq!(id_in_body(b"not json", "/id"), None);
    }

    #[test]
    fn location_names_the_last_segment() {
        assert_eq!(id_in_location(&located("http://x/api/users/77/")).as_deref(), Some("77"));
        assert_eq!(id_in_location(&located("/users/a%20b?x=1#f")).as_deref(), Some("a b"));
        assert_eq!(id_in_location(&located("/")), None);
        assert_eq!(id_in_location(&HeaderMap::new()), None);
    }

    #[test]
    fn the_body_wins_then_location_then_a_note() {
        let h = located("/api/users/77/");
        assert_eq!(Answer::from_copy(&h, Some(br#"{"id": 5}"#), "/id", 100).id.as_deref(), Some("5"));
        assert_eq!(Answer::from_copy(&h, Some(br#"{"pk": 5}"#), "/id", 100).id.as_deref(), Some("77"));
        let big = Answer::from_copy(&HeaderMap::new(), None, "/id", 100);
        assert_eq!((big.id, big.note.as_deref()), (None, Some("the answer is larger than snapshot.max_bytes (100)")));
        // A note is kept only when no id was found.
        let located = Answer::from_copy(&h, None, "/id", 100);
        assert_eq!((located.id.as_deref(), located.note), (Some("77"), None));
        let mut zipped = HeaderMap::new();
        zipped.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let bad = Answer::from_copy(&zipped, Some(b"not gzip"), "/id", 100);
        assert_eq!(bad.note.as_deref(), Some("the answer is bad gzip data"));
    }
}

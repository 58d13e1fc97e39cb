//! Field-level diff of two JSON states and redaction (docs/trail.md). Pure.
//!
//! Objects are compared key by key at any depth; arrays and scalars as whole
//! values. A key added has `old: null`, a key removed `new: null`. Paths are
//! JSON Pointers (RFC 6901).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub old: Value,
    pub new: Value,
}

/// The changes from `before` to `after`. An absent state (a create's before,
/// a delete's after) counts as an empty object when the other is an object,
/// so every field shows as added or removed.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<Change> {
    let empty = Value::Object(Map::new());
    let (b, a) = match (before, after) {
        (None, None) => return Vec::new(),
        (Some(b), None) if b.is_object() => (b, &empty),
        (None, Some(a)) if a.is_object() => (&empty, a),
        (Some(b), Some(a)) => (b, a),
        (b, a) => {
            return vec![Change {
                path: String::new(),
                old: b.cloned().unwrap_or(Value::Null),
                new: a.cloned().unwrap_or(Value::Null),
            }];
        }
    };
    let mut out = Vec::new();
    walk(&mut String::new(), b, a, &mut out);
    out
}

fn walk(path: &mut String, before: &Value, after: &Value, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            // serde_json's Map is ordered by key: both sides are walked in one merge.
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                let len = path.len();
                push_token(path, key);
                match (b.get(key), a.get(key)) {
                    (Some(old), Some(new)) => walk(path, old, new, out),
                    (Some(old), None) => out.push(Change { path: path.clone(), old: old.clone(), new: Value::Null }),
                    (None, Some(new)) => out.push(Change { path: path.clone(), old: Value::Null, new: new.clone() }),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        (b, a) if b != a => out.push(Change { path: path.clone(), old: b.clone(), new: a.clone() }),
        _ => {}
    }
}

/// Appends `/token` with `~` and `/` escaped (RFC 6901 §3).
pub fn push_token(path: &mut String, token: &str) {
    path.push('/');
    for c in token.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// The unescaped tokens of a JSON Pointer (borrowed unless escaped).
pub fn pointer_tokens(pointer: &str) -> impl Iterator<Item = Cow<'_, str>> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|t| if t.contains('~') { Cow::Owned(t.replace("~1", "/").replace("~0", "~")) } else { Cow::Borrowed(t) })
}

/// Keys whose values are secret, compared without regard to case: a key
/// named so, or whose words hold one in a row (`new_password`,
/// `user[password]`, `password1`, `apiKey` under `api_key`).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    keys: Vec<String>,
    /// Each key's words.
    words: Vec<Vec<String>>,
}

impl Redactor {
    pub fn new(keys: &[String]) -> Self {
        Redactor {
            keys: keys.iter().map(|k| k.to_ascii_lowercase()).collect(),
            words: keys.iter().map(|k| words(k)).collect(),
        }
    }

    fn is_secret(&self, key: &str) -> bool {
        if self.keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return true;
        }
        // Split the key into words only when one of the names' first words
        // is in it at all: most keys name no secret, and this allocates nothing.
        let hay = key.as_bytes();
        let candidate = self
            .words
            .iter()
            .filter_map(|w| w.first())
            .any(|first| hay.windows(first.len()).any(|run| run.eq_ignore_ascii_case(first.as_bytes())));
        if !candidate {
            return false;
        }
        let named = words(key);
        self.words.iter().any(|w| !w.is_empty() && named.windows(w.len()).any(|run| run == w.as_slice()))
    }

    /// Replaces every secret key's value, at any depth (also inside arrays).
    pub fn redact(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.is_secret(k) {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.redact(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact(v)),
            _ => {}
        }
    }

    /// Redacts a list of changes: a change under a secret key keeps its path
    /// and shows `[REDACTED]` for each side that had a value; values that
    /// contain secret keys further down are redacted inside.
    pub fn redact_changes(&self, changes: &mut [Change]) {
        for change in changes {
            self.redact_at(&change.path, [&mut change.old, &mut change.new]);
        }
    }

    /// Redacts the values found at `path` (a JSON Pointer; both sides of a
    /// change): all of each when the path goes through a secret key (unless
    /// it is null: nothing there), otherwise the secret keys inside them.
    pub fn redact_at(&self, path: &str, values: [&mut Value; 2]) {
        let secret = pointer_tokens(path).any(|t| self.is_secret(&t));
        for value in values {
            if !secret {
                self.redact(value);
            } else if !value.is_null() {
                *value = Value::String(REDACTED.into());
            }
        }
    }
}

/// A name's words, lower case: split at anything not a letter or digit,
/// where a lower-case letter meets an upper-case one, and between letters
/// and digits (`userPassword2` gives `user`, `password`, `2`).
fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut last: Option<char> = None;
    for c in name.chars() {
        if !c.is_alphanumeric() {
            out.extend((!word.is_empty()).then(|| std::mem::take(&mut word)));
            last = None;
            continue;
        }
        let breaks = last.is_some_and(|l| (l.is_lowercase() && c.is_uppercase()) || (l.is_numeric() != c.is_numeric()));
        if breaks && !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        word.extend(c.to_lowercase());
        last = Some(c);
    }
    out.extend((!word.is_empty()).then_some(word));
    out
}

/// Drops changes at or under any of the `ignored` pointers.
pub fn without_ignored(changes: Vec<Change>, ignored: &[String]) -> Vec<Change> {
    if ignored.is_empty() {
        return changes;
    }
    changes
        .into_iter()
        .filter(|c| {
            !ignored.iter().any(|p| {
                c.path == *p || (c.path.starts_with(p.as_str()) && c.path.as_bytes().get(p.len()) == Some(&b'/'))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;

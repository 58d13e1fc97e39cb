//! The default inference with no configuration: strip an API prefix, then read
//! the path as `collection/id/collection/id/...` (docs/rules.md).

use http::Method;

use super::path::{NormalPath, join, percent_decode};
use super::singular::{looks_plural, singularize};
use super::{Action, Classification, Classified, Parent, Resource, action_for};

/// Number of leading segments that form an API prefix (`/api`, `/api/v2`, `/v1`).
fn prefix_len(segments: &[String]) -> usize {
    let is_version = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 2 && (b[0] == b'v' || b[0] == b'V') && b[1..].iter().all(u8::is_ascii_digit)
    };
    match segments.first() {
        Some(first) if first.eq_ignore_ascii_case("api") => {
            if segments.get(1).is_some_and(|s| is_version(s)) {
                2
            } else {
                1
            }
        }
        Some(first) if is_version(first) => 1,
        _ => 0,
    }
}

fn type_name(collection: &str) -> String {
    singularize(&percent_decode(collection).to_ascii_lowercase())
}

pub(super) fn classify(method: &Method, path: &NormalPath) -> Classification {
    let all = &path.segments;
    let start = prefix_len(all);
    let rest = &all[start..];
    let parents_of = |pairs: &[String]| -> Vec<Parent> {
        pairs.chunks_exact(2).map(|p| Parent { kind: type_name(&p[0]), id: percent_decode(&p[1]) }).collect()
    };
    let resource = |kind: String, id: Option<String>, parents: Vec<Parent>| Resource { kind, id, parents };

    let n = rest.len();
    let classified = if n == 0 {
        Classified {
            action: action_for(method, false),
            resource: resource("root".into(), None, Vec::new()),
            rule: None,
            pending_id: None,
            snapshot: Some(path.to_path()),
        }
    } else if n.is_multiple_of(2) {
        // collection/id: an item.
        Classified {
            action: action_for(method, true),
            resource: resource(type_name(&rest[n - 2]), Some(percent_decode(&rest[n - 1])), parents_of(&rest[..n - 2])),
            rule: None,
            pending_id: None,
            snapshot: Some(path.to_path()),
        }
    } else if n >= 3 && !looks_plural(&rest[n - 1]) {
        // collection/id/verb: a custom action on the item, or another
        // mutation of one of its parts, which changes the item.
        let action = match *method {
            Method::POST => Action::Custom(percent_decode(&rest[n - 1]).to_ascii_lowercase()),
            Method::GET | Method::HEAD => Action::Read,
            _ => Action::Update,
        };
        Classified {
            action,
            resource: resource(type_name(&rest[n - 3]), Some(percent_decode(&rest[n - 2])), parents_of(&rest[..n - 3])),
            rule: None,
            pending_id: None,
            snapshot: Some(join(&all[..all.len() - 1], path.trailing_slash)),
        }
    } else {
        // A collection, possibly nested: a create learns its id from the response.
        let mut template: Vec<&str> = all.iter().map(String::as_str).collect();
        template.push("{id}");
        Classified {
            action: action_for(method, false),
            resource: resource(type_name(&rest[n - 1]), None, parents_of(&rest[..n - 1])),
            rule: None,
            pending_id: None,
            snapshot: Some(join(&template, path.trailing_slash)),
        }
    };
    Classification::Resource(classified)
}

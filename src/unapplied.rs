//! Requested versus applied (docs/trail.md `unapplied`): the leaves of a JSON
//! request body whose value in the after-state differs from the value the
//! client asked for. Pure; computed from what the entry already holds.
//!
//! Objects are followed key by key; arrays and scalars are leaves compared
//! whole, numbers by value (`1` and `1.0` are the same value). A field
//! absent from the after-state (a write-only password) is not listed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::diff::push_token;

/// A field the app did not apply as asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unapplied {
    /// JSON Pointer (RFC 6901) into the request body and the resource.
    pub path: String,
    pub requested: Value,
    pub applied: Value,
}

/// The fields of `requested` that `after` does not hold as asked; `None`
/// when there is nothing to compare (the request body is not a JSON object).
pub fn unapplied(requested: &Value, after: &Value) -> Option<Vec<Unapplied>> {
    listed(requested, after, same)
}

/// As [`unapplied`] for the fields of a form, whose values are text: each
/// is compared with the applied value's text ([`same_text`]).
pub fn unapplied_text(requested: &Value, after: &Value) -> Option<Vec<Unapplied>> {
    listed(requested, after, same_text)
}

type Same = fn(&Value, &Value) -> bool;

fn listed(requested: &Value, after: &Value, same: Same) -> Option<Vec<Unapplied>> {
    let requested = requested.as_object()?;
    let mut out = Vec::new();
    walk(&mut String::new(), requested, after, same, &mut out);
    Some(out)
}

fn walk(path: &mut String, requested: &Map<String, Value>, after: &Value, same: Same, out: &mut Vec<Unapplied>) {
    for (key, asked) in requested {
        let Some(applied) = after.get(key) else { continue };
        let len = path.len();
        push_token(path, key);
        match asked {
            Value::Object(inner) if !inner.is_empty() && applied.is_object() => walk(path, inner, applied, same, out),
            _ if same(asked, applied) => {}
            _ => out.push(Unapplied { path: path.clone(), requested: asked.clone(), applied: applied.clone() }),
        }
        path.truncate(len);
    }
}

/// JSON equality with numbers compared by value, whatever their spelling.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => decimal(&x.to_string()) == decimal(&y.to_string()),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A form's value `asked` (text, or several texts) against the applied
/// value: equal text; a number by its value; a boolean as a checkbox or
/// choice spells it (`on`, `true`, `1`, `yes` / `off`, `false`, `0`, `no`,
/// empty); `null` as empty text; one text against a list of one (a
/// `multiple` select with one choice). A browser sends a textarea's line
/// breaks as CR LF, which a page's text holds as LF: they are the same.
pub fn same_text(asked: &Value, applied: &Value) -> bool {
    match (asked, applied) {
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_text(a, b)),
        (Value::String(_), Value::Array(y)) => y.len() == 1 && same_text(asked, &y[0]),
        (Value::String(a), Value::String(b)) => a == b || a.replace("\r\n", "\n") == b.replace("\r\n", "\n"),
        (Value::String(a), Value::Number(n)) => {
            a.trim().parse::<f64>().is_ok() && decimal(a.trim()) == decimal(&n.to_string())
        }
        (Value::String(a), Value::Bool(b)) => {
            let a = a.to_ascii_lowercase();
            match b {
                true => ["on", "true", "1", "yes"].contains(&a.as_str()),
                false => ["off", "false", "0", "no", ""].contains(&a.as_str()),
            }
        }
        (Value::String(a), Value::Null) => a.is_empty(),
        _ => same(asked, applied),
    }
}

/// A JSON number's value as (negative, significant digits, power of ten):
/// `-1.50e2` and `-150` both give (true, "15", 1). Exact at any size.
fn decimal(text: &str) -> (bool, String, i64) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    let mut power = exponent - frac.len() as i64;
    let trailing = digits.len() - digits.trim_end_matches('0').len();
    digits.truncate(digits.len() - trailing);
    power += trailing as i64;
    let digits = digits.trim_start_matches('0').to_string();
    if digits.is_empty() {
        return (false, String::new(), 0);
    }
    (negative, digits, power)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(requested: Value, after: Value) -> Vec<(String, Value, Value)> {
        unapplied(&requested, &after).unwrap().into_iter().map(|u| (u.path, u.requested, u.applied)).collect()
    }

    #[test]
    fn lists_what_the_app_ignored_or_normalised() {
        let after = json!({"id": 3, "name": "Ann", "email": "ann@x.io", "role": "user", "tags": ["a"]});
        let asked = json!({"name": "Ann", "email": "ANN@X.IO", "role": "admin", "tags": ["a"]});
        assert_eq!(
            listed(asked, after),
            [("/email".into(), json!("ANN@X.IO"), json!("ann@x.io")), ("/role".into(), json!("admin"), json!("user"))]
        );
    }

    #[test]
    fn follows_objects_compares_arrays_whole_and_skips_what_is_not_shown() {
        let after = json!({"address": {"city": "Lyon", "zip": "69001"}, "tags": ["b", "a"], "n": 2});
        let asked = json!({"address": {"city": "lyon", "zip": "69001"}, "tags": ["a", "b"], "password": "pw", "n": 2});
        assert_eq!(
            listed(asked, after.clone()),
            [
                ("/address/city".into(), json!("lyon"), json!("Lyon")),
                ("/tags".into(), json!(["a", "b"]), json!(["b", "a"])),
            ]
        );
        // An object asked where the app keeps a scalar is one leaf; so is `{}`.
        assert_eq!(listed(json!({"n": {"x": 1}}), after.clone()), [("/n".into(), json!({"x": 1}), json!(2))]);
        assert_eq!(listed(json!({"address": {}}), after.clone()).len(), 1);
        // A key in the path is escaped as a JSON Pointer token.
        assert_eq!(listed(json!({"a/b": 1}), json!({"a/b": 2}))[0].0, "/a~1b");
        assert_eq!(listed(json!({}), after.clone()), []);
        assert_eq!(unapplied(&json!([1]), &after), None);
        assert_eq!(unapplied(&json!("text"), &after), None);
    }

    #[test]
    fn numbers_are_compared_by_value() {
        for (a, b) in [("1", "1.0"), ("1.50", "1.5"), ("-150", "-1.5e2"), ("0", "-0.0"), ("1E3", "1000")] {
            let (a, b): (Value, Value) = (serde_json::from_str(a).unwrap(), serde_json::from_str(b).unwrap());
            assert!(same(&a, &b), "{a} {b}");
        }
        for (a, b) in [("1", "2"), ("1.5", "15"), ("-1", "1"), ("123456789012345678901", "123456789012345678902")] {
            let (a, b): (Value, Value) = (serde_json::from_str(a).unwrap(), serde_json::from_str(b).unwrap());
            assert!(!same(&a, &b), "{a} {b}");
        }
        assert!(same(&json!({"a": [1, {"b": 2}]}), &json!({"a": [1, {"b": 2}]})));
        let by_value = |a: &str, b: &str| same(&serde_json::from_str(a).unwrap(), &serde_json::from_str(b).unwrap());
        assert!(by_value("[1, 2.50]", "[1.0, 2.5]"));
        assert!(by_value(r#"{"a": 1, "b": [1e2]}"#, r#"{"b": [100], "a": 1.0}"#));
        assert!(!same(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!same(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!same(&json!([1]), &json!([1, 2])));
        assert!(!same(&json!("1"), &json!(1)));
    }

    #[test]
    fn a_forms_text_is_compared_with_the_applied_values_text() {
        let text = |a: Value, b: Value| same_text(&a, &b);
        assert!(text(json!("Ann"), json!("Ann")));
        assert!(!text(json!("ann"), json!("Ann")));
        assert!(text(json!("a\r\nb"), json!("a\nb")) && text(json!("a\nb"), json!("a\r\nb")));
        assert!(!text(json!("a\r\nb"), json!("a b")) && !text(json!("a\rb"), json!("a\nb")));
        assert!(text(json!("42"), json!(42)) && text(json!("1.50"), json!(1.5)) && text(json!(" 7 "), json!(7)));
        assert!(!text(json!("43"), json!(42)) && !text(json!(""), json!(0)) && !text(json!("x"), json!(1)));
        for yes in ["on", "true", "1", "yes", "ON"] {
            assert!(text(json!(yes), json!(true)) && !text(json!(yes), json!(false)), "{yes}");
        }
        for no in ["off", "false", "0", "no", ""] {
            assert!(text(json!(no), json!(false)) && !text(json!(no), json!(true)), "{no}");
        }
        assert!(text(json!(""), json!(null)) && !text(json!("x"), json!(null)));
        assert!(
            text(json!("a"), json!(["a"])) && !text(json!("a"), json!(["a", "b"])) && !text(json!("a"), json!(["b"]))
        );
        assert!(text(json!(["a", "2"]), json!(["a", 2])) && !text(json!(["a", "b"]), json!(["b", "a"])));
        assert!(!text(json!(["a"]), json!(["a", "b"])));
        assert!(!text(json!("{}"), json!({})), "an object is not text");
        assert!(text(json!({"a": 1}), json!({"a": 1})), "anything else as JSON");
    }
}

//! Diff tests: table cases from docs/trail.md and properties.

use proptest::prelude::*;
use serde_json::json;

use super::*;

#[test]
fn a_missing_state_against_a_non_object_is_one_change_of_the_whole() {
    assert_eq!(diff(None, Some(&json!([1]))), vec![Change { path: String::new(), old: Value::Null, new: json!([1]) }]);
    assert_eq!(diff(Some(&json!("x")), None), vec![Change { path: String::new(), old: json!("x"), new: Value::Null }]);
    assert_eq!(diff(None, None), vec![]);
}

fn changes(before: Value, after: Value) -> Vec<(String, Value, Value)> {
    diff(Some(&before), Some(&after)).into_iter().map(|c| (c.path, c.old, c.new)).collect()
}

#[test]
fn spec_cases() {
    // PATCH: only the changed field.
    assert_eq!(
        changes(json!({"id": 1, "email": "a@x.io", "name": "A"}), json!({"id": 1, "email": "b@x.io", "name": "A"})),
        vec![("/email".into(), json!("a@x.io"), json!("b@x.io"))]
    );
    // PUT dropping a field; a new key.
    assert_eq!(
        changes(json!({"a": 1, "b": 2}), json!({"a": 1, "c": 3})),
        vec![("/b".into(), json!(2), Value::Null), ("/c".into(), Value::Null, json!(3))]
    );
    // Nested objects recurse; arrays are whole values.
    assert_eq!(
        changes(
            json!({"addr": {"city": "X", "zip": "1"}, "tags": [1, 2]}),
            json!({"addr": {"city": "Y", "zip": "1"}, "tags": [1, 3]})
        ),
        vec![("/addr/city".into(), json!("X"), json!("Y")), ("/tags".into(), json!([1, 2]), json!([1, 3]))]
    );
    // A type change is a whole-value change; pointer escaping.
    assert_eq!(
        changes(json!({"a/b~c": {"x": 1}}), json!({"a/b~c": 5})),
        vec![("/a~1b~0c".into(), json!({"x": 1}), json!(5))]
    );
    assert!(changes(json!({"a": [1, {"b": 2}]}), json!({"a": [1, {"b": 2}]})).is_empty());
}

#[test]
fn create_and_delete_list_every_field() {
    let state = json!({"id": 7, "name": "n"});
    let created: Vec<_> = diff(None, Some(&state)).into_iter().map(|c| (c.path, c.old, c.new)).collect();
    assert_eq!(created, vec![("/id".into(), Value::Null, json!(7)), ("/name".into(), Value::Null, json!("n"))]);
    let deleted = diff(Some(&state), None);
    assert!(deleted.iter().all(|c| c.new.is_null() && !c.old.is_null()) && deleted.len() == 2);
    assert_eq!(diff(Some(&json!([1])), None), vec![Change { path: String::new(), old: json!([1]), new: Value::Null }]);
}

#[test]
fn redaction_at_any_depth_keeps_the_change() {
    let r = Redactor::new(&["password".into(), "Token".into()]);
    let mut state = json!({"user": {"Password": "hunter2", "name": "a"}, "items": [{"token": "t"}], "x": 1});
    r.redact(&mut state);
    assert_eq!(state, json!({"user": {"Password": REDACTED, "name": "a"}, "items": [{"token": REDACTED}], "x": 1}));
    let mut c = diff(
        Some(&json!({"password": "pw-before", "p": {"token": "tok-a"}})),
        Some(&json!({"password": "pw-after", "p": {"token": "tok-b"}, "k": {"token": "tok-c"}})),
    );
    r.redact_changes(&mut c);
    let shown = serde_json::to_string(&c).unwrap();
    for secret in ["pw-before", "pw-after", "tok-a", "tok-b", "tok-c"] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
    }
    assert_eq!(c.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/k", "/p/token", "/password"]);
    assert_eq!(c[2].old, json!(REDACTED));
    assert_eq!(c[0].new, json!({"token": REDACTED}));
}

#[test]
fn a_key_whose_words_name_a_secret_is_one() {
    let r = Redactor::new(&["password".into(), "api_key".into(), "token".into()]);
    let mut state = json!({
        "new_password": "a", "user[password]": "b", "password1": "c", "userPassword2": "d",
        "customer[api_key]": "e", "apiKey": "f", "_token": "g", "API-KEY": "h", "Password": "i",
        "passwords_left": 3, "passwordless": true, "api": 1, "key": 2, "keyApi": 3, "tokens": 4, "name": "n",
    });
    r.redact(&mut state);
    for secret in [
        "new_password",
        "user[password]",
        "password1",
        "userPassword2",
        "customer[api_key]",
        "apiKey",
        "_token",
        "API-KEY",
        "Password",
    ] {
        assert_eq!(state[secret], REDACTED, "{secret}");
    }
    for plain in ["passwords_left", "passwordless", "api", "key", "keyApi", "tokens", "name"] {
        assert_ne!(state[plain], REDACTED, "{plain}");
    }
    assert_eq!(words("userPassword2 x[y]__Z9z"), ["user", "password", "2", "x", "y", "z", "9", "z"]);
    assert_eq!(words("ÉtéMot"), ["été", "mot"]);
    assert_eq!(words(""), Vec::<String>::new());
    assert!(!Redactor::new(&["".into()]).is_secret("a"), "an empty key names nothing");
}

#[test]
fn ignored_fields_are_left_out() {
    let c = diff(
        Some(&json!({"updated_at": 1, "meta": {"v": 1}, "metadata": 1, "a": 1})),
        Some(&json!({"updated_at": 2, "meta": {"v": 2}, "metadata": 2, "a": 2})),
    );
    let kept = without_ignored(c, &["/updated_at".into(), "/meta".into()]);
    assert_eq!(kept.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/a", "/metadata"]);
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-z~/]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-c~/]{1,2}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Applies changes to `state`: set each path to `new`, or remove it when the
/// key is gone from `after`.
fn apply(state: &mut Value, changes: &[Change], after: &Value) {
    for c in changes {
        if c.path.is_empty() {
            *state = c.new.clone();
            continue;
        }
        let tokens: Vec<String> = pointer_tokens(&c.path).map(String::from).collect();
        let (last, parents) = tokens.split_last().unwrap();
        let mut at = &mut *state;
        for t in parents {
            at = at.as_object_mut().unwrap().entry(t.clone()).or_insert_with(|| json!({}));
        }
        if after.pointer(&c.path).is_some() {
            at.as_object_mut().unwrap().insert(last.clone(), c.new.clone());
        } else {
            at.as_object_mut().unwrap().remove(last);
        }
    }
}

proptest! {
    #[test]
    fn a_value_against_itself_has_no_changes(v in json_value()) {
        prop_assert!(diff(Some(&v), Some(&v)).is_empty());
    }

    #[test]
    fn applying_the_changes_turns_before_into_after(
        b in prop::collection::btree_map("[a-c~/]{1,2}", json_value(), 0..5),
        a in prop::collection::btree_map("[a-c~/]{1,2}", json_value(), 0..5),
    ) {
        let before = Value::Object(b.into_iter().collect());
        let after = Value::Object(a.into_iter().collect());
        let changes = diff(Some(&before), Some(&after));
        let mut state = before.clone();
        apply(&mut state, &changes, &after);
        prop_assert_eq!(state, after);
    }
}

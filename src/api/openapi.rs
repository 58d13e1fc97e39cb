//! The OpenAPI 3.1 document of the query API (`openapi.json`, written by
//! `scripts/openapi.py`; a test checks that it and the routes name the same
//! paths),
//! with this instance's action names filled in.

use std::collections::HashSet;

use serde_json::Value;

const TEMPLATE: &str = include_str!("openapi.json");

/// The document, its `Action` schema listing exactly the actions a
/// configuration may name here (the built-ins and resources.toml's own).
pub fn document(actions: &HashSet<String>) -> String {
    let mut doc: Value = serde_json::from_str(TEMPLATE).expect("openapi.json is JSON");
    let mut names: Vec<&str> = actions.iter().map(String::as_str).collect();
    names.sort_unstable();
    doc["components"]["schemas"]["Action"]["enum"] = names.into();
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_action_schema_lists_this_instances_actions() {
        let actions = crate::policy::known_actions(["approve"]);
        let doc: Value = serde_json::from_str(&document(&actions)).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let listed = &doc["components"]["schemas"]["Action"]["enum"];
        assert_eq!(listed, &serde_json::json!(["approve", "create", "delete", "login", "read", "update"]));
    }
}

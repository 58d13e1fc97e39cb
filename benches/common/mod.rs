//! What the store benchmarks share: an audit entry of about 1 KiB.

use auditgate::diff::Change;
use auditgate::entry::{AuditEntry, Outcome};
use auditgate::identity::ActorSource;
use serde_json::json;

/// Entry `i`: an update of user `i`, about 1.1 KiB once sealed.
pub fn entry(i: usize) -> AuditEntry {
    AuditEntry {
        id: String::new(),
        timestamp: "2026-11-23T11:02:03.123456Z".into(),
        request_id: format!("01JD3ZZZZZZZZZZZZZZZZ{i:05}"),
        action: "update".into(),
        outcome: Outcome::Success,
        method: "PATCH".into(),
        path: format!("/api/v1/users/{i}/"),
        query: String::new(),
        status: 200,
        duration_ms: 3.2,
        resource_type: "user".into(),
        resource_id: Some(i.to_string()),
        path_resource_id: None,
        parents: Vec::new(),
        actor: "alice".into(),
        actor_source: ActorSource::Jwt,
        actor_verified: false,
        client_ip: "203.0.113.9".into(),
        peer_ip: "127.0.0.1".into(),
        forwarded_for: vec!["203.0.113.9".into()],
        user_agent: Some("curl/8.5.0".into()),
        configuration: None,
        before: Some(
            json!({"id": i, "name": "Alice Example", "email": "alice@example.com", "address": {"street": "1 Long Road", "city": "Paris", "zip": "75001"}, "bio": "x".repeat(120)}),
        ),
        after: Some(
            json!({"id": i, "name": "Alice Example", "email": "alice@corp.example", "address": {"street": "1 Long Road", "city": "Paris", "zip": "75001"}, "bio": "x".repeat(120)}),
        ),
        changes: vec![Change {
            path: "/email".into(),
            old: json!("alice@example.com"),
            new: json!("alice@corp.example"),
        }],
        unapplied: Some(None),
        request_body: None,
        snapshot_error: None,
        snapshot_format: None,
        instance: "bench".into(),
        chain_version: None,
        content_digest: None,
        erased: false,
        erasure: None,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

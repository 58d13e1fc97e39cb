//! An entry as an OCSF event of the API Activity class (class_uid 6003,
//! category 6, Application Activity; schema 1.3.0), for SIEMs that speak
//! OCSF. What OCSF has no attribute for (the diff, the snapshots, the
//! chain's hashes) goes under `unmapped`, so nothing of the entry is lost.

use serde_json::{Value, json};

use crate::entry::{AuditEntry, Outcome};

/// The OCSF schema version the events follow.
pub const VERSION: &str = "1.3.0";
const CLASS_UID: u32 = 6003;
const CATEGORY_UID: u32 = 6;

/// OCSF's activity for an action: Create 1, Read 2, Update 3, Delete 4,
/// Other 99 (a custom action, a login; its name is `activity_name`).
fn activity(action: &str) -> (u32, &str) {
    match action {
        "create" => (1, "Create"),
        "read" => (2, "Read"),
        "update" => (3, "Update"),
        "delete" => (4, "Delete"),
        other => (99, other),
    }
}

/// The entry as an OCSF API Activity event.
pub fn event(e: &AuditEntry) -> Value {
    let (activity_id, activity_name) = activity(&e.action);
    let (status_id, status) = match e.outcome {
        Outcome::Success => (1, "Success"),
        Outcome::Failure | Outcome::Error => (2, "Failure"),
    };
    let time = chrono::DateTime::parse_from_rfc3339(&e.timestamp).map_or(0, |t| t.timestamp_millis());
    let mut resources = vec![json!({ "type": e.resource_type, "uid": e.resource_id })];
    resources.extend(e.parents.iter().map(|p| json!({ "type": p.kind, "uid": p.id })));
    json!({
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": 1,
        "severity": "Informational",
        "time": time,
        "duration": e.duration_ms.round() as i64,
        "status_id": status_id,
        "status": status,
        "status_code": e.status.to_string(),
        "status_detail": e.snapshot_error,
        "metadata": {
            "version": VERSION,
            "uid": e.id,
            "correlation_uid": e.request_id,
            "original_time": e.timestamp,
            "log_name": e.instance,
            "product": { "name": "auditgate", "vendor_name": "auditgate", "version": env!("CARGO_PKG_VERSION") },
        },
        "actor": { "user": { "name": e.actor, "uid": e.actor } },
        "api": {
            "operation": e.action,
            "request": { "uid": e.request_id },
            "response": { "code": e.status },
            "service": { "name": e.resource_type },
        },
        "cloud": { "provider": "on-premises" },
        "src_endpoint": { "ip": e.client_ip },
        "http_request": {
            "http_method": e.method,
            "url": { "path": e.path, "query_string": e.query },
            "user_agent": e.user_agent,
            "x_forwarded_for": e.forwarded_for,
        },
        "resources": resources,
        "unmapped": {
            "outcome": e.outcome.as_str(),
            "actor_source": e.actor_source,
            "actor_verified": e.actor_verified,
            "peer_ip": e.peer_ip,
            "configuration": e.configuration,
            "before": e.before,
            "after": e.after,
            "changes": e.changes,
            "unapplied": e.unapplied,
            "request_body": e.request_body,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        },
    })
}

/// The event of a stored entry that does not decode: its text as
/// `raw_data`, its id, the rest unknown.
pub fn undecoded(id: &str, text: &str) -> Value {
    json!({
        "class_uid": CLASS_UID,
        "category_uid": CATEGORY_UID,
        "activity_id": 0,
        "type_uid": CLASS_UID * 100,
        "severity_id": 0,
        "status_id": 0,
        "metadata": {
            "version": VERSION,
            "uid": id,
            "product": { "name": "auditgate", "vendor_name": "auditgate", "version": env!("CARGO_PKG_VERSION") },
        },
        "raw_data": text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, status: u16) -> AuditEntry {
        let mut e = crate::entry::tests::sample(1);
        e.id = "01KB0000000000000000000000".into();
        e.hash = "ab".repeat(32);
        e.action = action.into();
        e.status = status;
        e.outcome = Outcome::from_status(status);
        e
    }

    #[test]
    fn an_update_is_api_activity_3_with_its_actor_address_and_resource() {
        let e = entry("update", 200);
        let v = event(&e);
        assert_eq!(v["class_uid"], 6003);
        assert_eq!(v["category_uid"], 6);
        assert_eq!(v["activity_id"], 3);
        assert_eq!(v["type_uid"], 600_303);
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["status_code"], "200");
        assert_eq!(v["actor"]["user"]["name"], e.actor.as_str());
        assert_eq!(v["src_endpoint"]["ip"], e.client_ip.as_str());
        assert_eq!(v["resources"][0]["type"], e.resource_type.as_str());
        assert_eq!(v["resources"][0]["uid"], e.resource_id.as_deref().unwrap());
        assert_eq!(v["metadata"]["uid"], e.id.as_str());
        assert_eq!(v["http_request"]["http_method"], e.method.as_str());
        assert_eq!(v["unmapped"]["hash"], e.hash.as_str());
        let at = chrono::DateTime::parse_from_rfc3339(&e.timestamp).unwrap().timestamp_millis();
        assert_eq!(v["time"], at);
    }

    #[test]
    fn each_action_has_its_activity_and_a_failure_its_status() {
        for (action, id) in [("create", 1), ("read", 2), ("update", 3), ("delete", 4), ("approve", 99)] {
            let v = event(&entry(action, 403));
            assert_eq!(v["activity_id"], id, "{action}");
            assert_eq!(v["type_uid"], 600_300 + id, "{action}");
            assert_eq!(v["status_id"], 2, "{action}");
            assert_eq!(v["status"], "Failure");
        }
        assert_eq!(event(&entry("approve", 200))["activity_name"], "approve");
    }
}

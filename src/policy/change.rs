//! The trail entry of a change auditgate itself makes or serves: every
//! create, update and delete of a configuration (docs/rules.md), never excluded,
//! and each retention pass.

use serde_json::Value;

use super::AuditConfiguration;
use crate::diff::diff;
use crate::entry::{AuditEntry, Outcome};
use crate::identity::ActorSource;

/// Who changed a configuration, from where, through which call.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub action: &'static str,
    pub actor: &'a str,
    pub actor_source: ActorSource,
    pub client_ip: String,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub instance: &'a str,
}

impl Change<'_> {
    /// The entry for a configuration's change from `before` to `after`.
    pub fn entry(&self, before: Option<&AuditConfiguration>, after: Option<&AuditConfiguration>) -> AuditEntry {
        let (before, after) = (before.map(AuditConfiguration::to_json), after.map(AuditConfiguration::to_json));
        let id = after.as_ref().or(before.as_ref()).and_then(|c| c.get("id")).map(Value::to_string);
        self.entry_of("audit_configuration", id, before, after)
    }

    /// The entry for a change of any resource from `before` to `after`.
    pub fn entry_of(
        &self,
        resource_type: &str,
        resource_id: Option<String>,
        before: Option<Value>,
        after: Option<Value>,
    ) -> AuditEntry {
        AuditEntry {
            id: String::new(),
            timestamp: crate::entry::format_time(chrono::Utc::now()),
            request_id: ulid::Ulid::new().to_string(),
            action: self.action.to_string(),
            outcome: Outcome::Success,
            method: self.method.to_string(),
            path: self.path.to_string(),
            query: String::new(),
            status: self.status,
            duration_ms: 0.0,
            resource_type: resource_type.into(),
            resource_id,
            path_resource_id: None,
            parents: Vec::new(),
            actor: self.actor.to_string(),
            actor_source: self.actor_source,
            actor_verified: self.actor_source == ActorSource::Token,
            client_ip: self.client_ip.clone(),
            peer_ip: self.client_ip.clone(),
            forwarded_for: Vec::new(),
            user_agent: None,
            configuration: None,
            changes: diff(before.as_ref(), after.as_ref()),
            before,
            after,
            unapplied: Some(None),
            request_body: None,
            snapshot_error: None,
            snapshot_format: None,
            instance: self.instance.to_string(),
            chain_version: None,
            content_digest: None,
            erased: false,
            erasure: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

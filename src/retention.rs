//! Retention (docs/trail.md): with `retention_days` set, entries sealed longer ago
//! than that are deleted in the background, in short batches, from the
//! start of each chain; the store keeps each chain's checkpoint (its newest
//! deleted entry), so what stays still verifies. Each pass that deletes
//! something is itself an entry in the trail. Entries an active legal hold
//! covers stay, and so (the chain being cut from its start only) does
//! everything sealed after the oldest of them.

use std::time::Duration;

use serde_json::json;

use crate::entry::AuditEntry;
use crate::identity::ActorSource;
use crate::policy::Change;
use crate::recorder::WeakRecorder;
use crate::store::{Store, StoreError};

/// Rows a deleting transaction takes: writers wait for one such at most.
const BATCH: u32 = 1_000;

/// Deletes entries older than `days` now and then every `every`, until
/// the task is dropped.
pub async fn run(store: Store, trail: WeakRecorder, instance: String, days: u32, every: Duration) {
    loop {
        if let Err(e) = pass(&store, &trail, &instance, days, chrono::Utc::now()).await {
            tracing::error!(error = %e, "retention pass failed; the next one retries");
        }
        tokio::time::sleep(every).await;
    }
}

/// One pass as of `now`: answers how many entries it deleted.
pub async fn pass(
    store: &Store,
    trail: &WeakRecorder,
    instance: &str,
    days: u32,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<u64, StoreError> {
    let cutoff = now - chrono::Duration::days(i64::from(days));
    let ms = u64::try_from(cutoff.timestamp_millis()).unwrap_or(0);
    // The smallest id sealed at the cutoff's millisecond: every id below it is older.
    let mut before = ulid::Ulid::from_parts(ms, 0).to_string();
    // A chain is deleted from its start only (its checkpoint is its newest
    // deleted entry): nothing from the oldest held entry on.
    if let Some((held, hold)) = crate::hold::oldest_held(store).await?
        && held < before
    {
        tracing::warn!(
            hold = hold.id,
            reason = %hold.reason,
            from = %held,
            "retention stops at entries a legal hold covers"
        );
        before = held;
    }
    let (deleted, through) = store.delete_before(&before, BATCH).await?;
    if deleted > 0 {
        tracing::info!(deleted, through = through.as_deref().unwrap_or(""), "retention deleted old entries");
        let entry = deletion(instance, deleted, &crate::entry::format_time(cutoff), through.as_deref());
        match trail.upgrade() {
            Some(recorder) => {
                let _ = recorder.record(entry, None).await;
            }
            None => tracing::error!(deleted, "retention deletion not recorded: shutting down"),
        }
    }
    Ok(deleted)
}

/// The entry that records a retention pass.
fn deletion(instance: &str, deleted: u64, older_than: &str, through: Option<&str>) -> AuditEntry {
    let change = Change {
        action: "delete",
        actor: "auditgate",
        actor_source: ActorSource::Anonymous,
        client_ip: "127.0.0.1".into(),
        method: "RETENTION",
        path: "/api/v1/audit-logs",
        status: 200,
        instance,
    };
    let before = json!({"entries": deleted, "older_than": older_than, "through_id": through});
    change.entry_of("audit_log", None, Some(before), None)
}

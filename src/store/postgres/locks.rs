//! Resource locks across instances (docs/trail.md): a PostgreSQL session advisory
//! lock per (type, id), held on a connection of its own from a pool kept
//! apart from the one entries are written through, so locks held while
//! requests wait on their upstream never starve the recorder.
//!
//! A lock is let go by giving its connection back: every connection
//! releases all its advisory locks as it returns to the pool. That also
//! covers a wait given up halfway (the client left while
//! `pg_advisory_lock` waited): the server grants the lock later to a
//! session no one holds, and the return releases it, where an explicit
//! unlock would never run.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Postgres;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::StoreError;

/// Resources locked at once by one instance, at most; more wait their
/// turn for a connection, as long as it takes.
const LOCK_TURNS: usize = 64;
/// Connections: the turns, and room for those on their way back.
const LOCK_CONNECTIONS: u32 = LOCK_TURNS as u32 + 8;

/// The pool locks are held on, connected on first use (the commands that
/// only read the trail never open it). Turns are taken first (a semaphore,
/// waited for without limit), so the pool's timeout bounds only
/// connecting: with the server down, a lock fails within a second.
#[derive(Debug, Clone)]
pub(super) struct Locks {
    pool: PgPool,
    turns: Arc<Semaphore>,
}

impl Locks {
    pub fn new(options: PgConnectOptions) -> Locks {
        let pool = PgPoolOptions::new()
            .max_connections(LOCK_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(1))
            .after_release(|conn, _| {
                Box::pin(async move {
                    sqlx::query("SELECT pg_advisory_unlock_all()").execute(&mut *conn).await?;
                    Ok(true)
                })
            })
            .connect_lazy_with(options.application_name("auditgate-locks"));
        Locks { pool, turns: Arc::new(Semaphore::new(LOCK_TURNS)) }
    }

    /// Waits until no other session holds `(kind, id)`, then holds it.
    pub async fn lock(&self, kind: &str, id: &str) -> Result<SharedLock, StoreError> {
        let turn = self.turns.clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(key(kind, id)).execute(&mut *conn).await?;
        Ok(SharedLock { _conn: conn, _turn: turn })
    }

    /// Holds `name` as a running instance's, unless another session does
    /// (`None`). Kept in PostgreSQL's two-key space, apart from resources.
    pub async fn claim_instance(&self, name: &str) -> Result<Option<SharedLock>, StoreError> {
        self.claim(INSTANCE_CLASS, "instance", name).await
    }

    /// Holds `name` as the one instance forwarding to that sink, unless
    /// another session does (`None`).
    pub async fn claim_sink(&self, name: &str) -> Result<Option<SharedLock>, StoreError> {
        self.claim(SINK_CLASS, "sink", name).await
    }

    async fn claim(&self, class: i32, kind: &str, name: &str) -> Result<Option<SharedLock>, StoreError> {
        let turn = self.turns.clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(class)
            .bind((key(kind, name) >> 32) as i32)
            .fetch_one(&mut *conn)
            .await?;
        Ok(held.then_some(SharedLock { _conn: conn, _turn: turn }))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The first key of instance claims (two-key advisory locks, which never
/// meet the one-key resource locks): "audi".
const INSTANCE_CLASS: i32 = 0x6175_6469;
/// The first key of sink claims: "sink".
const SINK_CLASS: i32 = 0x7369_6e6b;

/// The advisory lock key of a resource: the first 8 bytes of a SHA-256 of
/// its type and id, the same in every instance and every version.
fn key(kind: &str, id: &str) -> i64 {
    let digest = Sha256::new().chain_update(kind).chain_update([0]).chain_update(id).finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 8 bytes"))
}

/// A resource held across instances until dropped: its connection goes
/// back to the pool, which releases the lock (or, if it cannot, closes the
/// session, which ends the lock too).
#[derive(Debug)]
pub struct SharedLock {
    _conn: PoolConnection<Postgres>,
    _turn: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys are stable (every instance and version must agree) and the
    /// separator keeps ("ab", "c") apart from ("a", "bc").
    #[test]
    fn keys_are_fixed_and_distinct() {
        assert_eq!(key("user", "1"), key("user", "1"));
        assert_ne!(key("ab", "c"), key("a", "bc"));
        assert_ne!(key("user", "1"), key("user", "2"));
        // sha256("user\01")[..8], big-endian: pinned, as instances of
        // different versions must agree.
        assert_eq!(key("user", "1"), 745_269_841_701_482_825);
    }
}

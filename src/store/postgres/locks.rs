//! Resource locks across instances (SPEC 4): a PostgreSQL session advisory
//! lock per (type, id), held on a connection of its own from a pool kept
//! apart from the one entries are written through, so locks held while
//! requests wait on their upstream never starve the recorder.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::StoreError;

/// Resources locked at once by one instance, at most; more wait their
/// turn for a connection, as long as it takes.
const LOCK_CONNECTIONS: usize = 64;

/// The pool locks are held on, connected on first use (the commands that
/// only read the trail never open it). Turns for a connection are taken
/// first (a semaphore, waited for without limit), so the pool's timeout
/// bounds only connecting: with the server down, a lock fails in seconds.
#[derive(Debug, Clone)]
pub(super) struct Locks {
    pool: PgPool,
    turns: Arc<Semaphore>,
}

impl Locks {
    pub fn new(options: PgConnectOptions) -> Locks {
        let pool = PgPoolOptions::new()
            .max_connections(LOCK_CONNECTIONS as u32)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy_with(options.application_name("auditgate-locks"));
        Locks { pool, turns: Arc::new(Semaphore::new(LOCK_CONNECTIONS)) }
    }

    /// Waits until no other session holds `(kind, id)`, then holds it.
    pub async fn lock(&self, kind: &str, id: &str) -> Result<SharedLock, StoreError> {
        let key = key(kind, id);
        let turn = self.turns.clone().acquire_owned().await.expect("the semaphore is never closed");
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)").bind(key).execute(&mut *conn).await?;
        Ok(SharedLock { conn: Some(conn), key, turn: Some(turn) })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The advisory lock key of a resource: the first 8 bytes of a SHA-256 of
/// its type and id, the same in every instance and every version.
fn key(kind: &str, id: &str) -> i64 {
    let digest = Sha256::new().chain_update(kind).chain_update([0]).chain_update(id).finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 has 8 bytes"))
}

/// A resource held across instances; released when dropped (on a task: a
/// lock that cannot be released is dropped with its connection, which ends
/// the session and so the lock).
#[derive(Debug)]
pub struct SharedLock {
    conn: Option<PoolConnection<Postgres>>,
    key: i64,
    /// Given back once the lock is released and its connection returned.
    turn: Option<OwnedSemaphorePermit>,
}

impl Drop for SharedLock {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let (key, turn) = (self.key, self.turn.take());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            conn.close_on_drop();
            return;
        };
        runtime.spawn(async move {
            let released: Result<bool, _> =
                sqlx::query_scalar("SELECT pg_advisory_unlock($1)").bind(key).fetch_one(&mut *conn).await;
            match released {
                Ok(true) => drop(conn),
                other => {
                    tracing::warn!(key, error = ?other.err(), "advisory lock not released; closing its session");
                    let _ = conn.detach().close().await;
                }
            }
            drop(turn);
        });
    }
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

//! Snapshots (docs/trail.md): the GET of a resource's state before and after an
//! audited mutation, bounded in size and time, and the per-resource lock
//! that makes concurrent mutations of one resource take turns. The answer
//! is read by its media type: JSON, an HTML page's form (`form`) or named
//! elements (`fields`), or XML (`xml`).

pub mod fields;
pub mod form;
pub mod reading;
pub mod xml;

pub use reading::{Asked, PageRule, Reading, SnapshotFormat};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::header::{ACCEPT, ACCEPT_ENCODING, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tokio::sync::OwnedMutexGuard;

use crate::store::{SharedLock, Store};

use crate::encoding::{DecodeError, decoded};
use crate::upstream::{UpstreamBody, UpstreamClient};

/// The header that tells the app a request is auditgate's own snapshot.
pub const X_AUDITGATE_SNAPSHOT: HeaderName = HeaderName::from_static("x-auditgate-snapshot");

/// Why a snapshot was not stored; the text goes into `snapshot_error`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    #[error("snapshot GET {0} timed out")]
    Timeout(String),
    #[error("snapshot GET {0} failed: {1}")]
    Upstream(String, String),
    #[error("snapshot GET {0} answered {1}")]
    Status(String, u16),
    #[error("snapshot GET {0} is larger than snapshot.max_bytes")]
    TooLarge(String),
    #[error("snapshot GET {0} is not JSON")]
    NotJson(String),
    #[error("snapshot GET {0} is {1}")]
    NotXml(String, String),
    #[error("snapshot GET {0} is {1}")]
    Decode(String, DecodeError),
    #[error("snapshot URL {0} is not a valid path")]
    BadPath(String),
}

/// Fetches snapshots through the upstream client.
#[derive(Debug)]
pub struct Snapshotter {
    upstream: Arc<UpstreamClient>,
    base_path: String,
    forward_headers: Vec<HeaderName>,
    timeout: Duration,
    max_bytes: usize,
}

impl Snapshotter {
    pub fn new(upstream: Arc<UpstreamClient>, base_path: String, config: &crate::config::SnapshotConfig) -> Self {
        Snapshotter {
            upstream,
            base_path,
            forward_headers: config.forward_headers.clone(),
            timeout: config.timeout,
            max_bytes: usize::try_from(config.max_bytes).unwrap_or(usize::MAX),
        }
    }

    /// `snapshot.max_bytes`, which also bounds a recorded request body.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The client headers a snapshot carries: `snapshot.forward_headers`
    /// (credentials) and `Host`, so the app answers as it would the client.
    pub fn carried(&self, client: &HeaderMap) -> HeaderMap {
        let mut carried = HeaderMap::new();
        for name in self.forward_headers.iter().chain(std::iter::once(&HOST)) {
            for value in client.get_all(name) {
                carried.append(name.clone(), value.clone());
            }
        }
        carried
    }

    /// GETs `path` (path and query) with the `carried` client headers,
    /// asking for an unencoded body of the type `reading` reads (JSON
    /// first when it does not say), and reads it into a state.
    pub async fn fetch(
        &self,
        path: &str,
        carried: &HeaderMap,
        reading: &Reading<'_>,
    ) -> Result<Snapshot, SnapshotError> {
        let target = format!("{}{path}", self.base_path);
        let uri: Uri = target.parse().map_err(|_| SnapshotError::BadPath(path.to_string()))?;
        let mut req = Request::new(UpstreamBody::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.extend(carried.iter().map(|(k, v)| (k.clone(), v.clone())));
        h.insert(X_AUDITGATE_SNAPSHOT, HeaderValue::from_static("1"));
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        h.insert(ACCEPT, HeaderValue::from_static(reading.asked().accept()));
        tokio::time::timeout(self.timeout, self.get(path, req, reading))
            .await
            .map_err(|_| SnapshotError::Timeout(path.to_string()))?
    }

    async fn get(
        &self,
        path: &str,
        req: Request<UpstreamBody>,
        reading: &Reading<'_>,
    ) -> Result<Snapshot, SnapshotError> {
        let unreachable = |e: crate::upstream::UpstreamError| SnapshotError::Upstream(path.to_string(), e.to_string());
        if self.upstream.speaks_raw() {
            let res = self.upstream.send_own(req).await.map_err(unreachable)?;
            return self.read(path, res, reading).await;
        }
        let res = self.upstream.send(None, req).await.map_err(unreachable)?;
        self.read(path, res, reading).await
    }

    /// The answer's body, decoded within `max_bytes`, read as `reading` says.
    async fn read<B>(
        &self,
        path: &str,
        res: http::Response<B>,
        reading: &Reading<'_>,
    ) -> Result<Snapshot, SnapshotError>
    where
        B: http_body::Body<Data = bytes::Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let status = res.status();
        if !status.is_success() {
            return Err(SnapshotError::Status(path.to_string(), status.as_u16()));
        }
        let headers = res.headers().clone();
        let bytes = Limited::new(res.into_body(), self.max_bytes).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                SnapshotError::TooLarge(path.to_string())
            } else {
                SnapshotError::Upstream(path.to_string(), e.to_string())
            }
        })?;
        let bytes = decoded(&bytes.to_bytes(), &headers, self.max_bytes).map_err(|e| match e {
            DecodeError::TooLarge(_) => SnapshotError::TooLarge(path.to_string()),
            e => SnapshotError::Decode(path.to_string(), e),
        })?;
        let content_type = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let read = || reading::read(&bytes, content_type, path, reading);
        // A large page takes milliseconds to parse (32 ms a MiB): off the
        // worker's other tasks, which the runtime moves to another thread.
        let multi_thread =
            tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        let read = if bytes.len() > BLOCKING_READ && multi_thread { tokio::task::block_in_place(read) } else { read() };
        let (state, format) = read.map_err(|e| match e {
            reading::Unreadable::NotJson => SnapshotError::NotJson(path.to_string()),
            reading::Unreadable::Xml(why) => SnapshotError::NotXml(path.to_string(), why),
        })?;
        Ok(Snapshot { state, format })
    }
}

/// Answers larger than this are read in `block_in_place`.
const BLOCKING_READ: usize = 64 * 1024;

/// A resource's state as a snapshot read it, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub state: Value,
    pub format: SnapshotFormat,
}

/// One lock per (type, id): audited mutations of the same resource through
/// this instance run one after another; others never wait. With a store
/// shared by several instances (PostgreSQL), the turn is also taken in the
/// store, so mutations of one resource through any instance take turns.
#[derive(Debug, Default)]
pub struct ResourceLocks {
    locks: Mutex<HashMap<ResourceKey, Weak<tokio::sync::Mutex<()>>>>,
    shared: Option<Store>,
    /// Turns taken without the store's lock, because it failed.
    shared_errors: Arc<AtomicU64>,
}

/// (type, id).
type ResourceKey = (String, String);

/// A resource's turn: this instance's, and the store's when shared. The
/// store's is let go first (its connection starts back to the pool, which
/// releases it), then the next waiter here is woken; that one may wait a
/// moment in the store for the release.
#[derive(Debug)]
pub struct ResourceGuard {
    _shared: Option<SharedLock>,
    _local: OwnedMutexGuard<()>,
}

impl ResourceLocks {
    /// Locks taken in `store` too when other instances can share it;
    /// `shared_errors` counts turns taken without it because it failed.
    pub fn new(store: Store, shared_errors: Arc<AtomicU64>) -> ResourceLocks {
        let shared = store.is_shared().then_some(store);
        ResourceLocks { locks: Mutex::default(), shared, shared_errors }
    }

    /// Waits for the resource's turn; the turn ends when the guard drops.
    /// When the store cannot lock (it is down), the turn is this
    /// instance's only: logged and counted, not refused (the entry is
    /// spooled as usual; only a mutation of the same resource through
    /// another instance at that moment could blur its diff).
    pub async fn lock(&self, kind: &str, id: &str) -> ResourceGuard {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            let key = (kind.to_string(), id.to_string());
            match map.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    if map.len() >= 1024 && map.len().is_power_of_two() {
                        map.retain(|_, weak| weak.strong_count() > 0);
                    }
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    map.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        let local = lock.lock_owned().await;
        let shared = match &self.shared {
            None => None,
            // Boxed: the store's lock future (pool, query) is large, and
            // inline it would grow every request's future, copied as it moves.
            Some(store) => match Box::pin(store.lock_resource(kind, id)).await {
                Ok(shared) => shared,
                Err(e) => {
                    self.shared_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, kind, id, "resource not locked in the store; this instance's turn only");
                    None
                }
            },
        };
        ResourceGuard { _shared: shared, _local: local }
    }

    /// Entries in the map, alive or not yet pruned.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Entries whose lock is still alive (tests check that none leak).
    pub fn live(&self) -> usize {
        self.locks.lock().unwrap_or_else(|e| e.into_inner()).values().filter(|w| w.strong_count() > 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_resource_takes_turns_others_do_not_wait() {
        let locks = Arc::new(ResourceLocks::default());
        let first = locks.lock("user", "1").await;
        // Another resource is not blocked.
        let other = tokio::time::timeout(Duration::from_millis(100), locks.lock("user", "2")).await;
        assert!(other.is_ok());
        // The same resource waits until the first guard drops.
        let l2 = locks.clone();
        let waiter = tokio::spawn(async move { l2.lock("user", "1").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(1), waiter).await.unwrap().unwrap();
        assert_eq!(locks.live(), 2);
        drop(second);
        drop(other);
        assert_eq!(locks.live(), 0);
    }

    #[tokio::test]
    async fn the_map_forgets_resources_no_one_holds() {
        let locks = ResourceLocks::default();
        let held = locks.lock("user", "held").await;
        for i in 0..1100 {
            drop(locks.lock("user", &i.to_string()).await);
        }
        // Pruned once, as the 1024th key came in: the held lock is left,
        // with that key and the 76 after it.
        assert_eq!(locks.tracked(), 78);
        assert_eq!(locks.live(), 1);
        drop(held);
    }
}

//! The whoami actor source (docs/trail.md): for session-cookie apps, a GET of the
//! app's own who-am-I URL with the client's credentials, whose JSON field
//! names the user. Answers (including "nobody") are cached per credential
//! for `TTL`, so a client's session costs one call per `TTL`.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};

use crate::snapshot::Snapshotter;

/// How long an answer is believed.
pub const TTL: Duration = Duration::from_secs(30);
/// Credentials remembered at most; the cache starts over when full.
const CAPACITY: usize = 10_000;

/// `actor.whoami_url` and `actor.whoami_field`.
#[derive(Debug)]
pub struct Whoami {
    url: String,
    field: String,
    /// Keyed by a keyed hash of the credentials, never the credentials.
    cache: Mutex<HashMap<u64, (Option<String>, Instant)>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Whoami {
    pub fn new(url: String, field: String) -> Whoami {
        Whoami { url, field, cache: Mutex::new(HashMap::new()), hasher: Default::default() }
    }

    /// The user the app says `carried` (the client's forwarded credentials)
    /// belongs to; `None` when it names nobody or cannot be asked.
    pub async fn lookup(&self, snapshots: &Snapshotter, carried: &HeaderMap) -> Option<String> {
        let key = self.hasher.hash_one(
            carried
                .get_all(COOKIE)
                .iter()
                .chain(carried.get_all(AUTHORIZATION))
                .map(|v| v.as_bytes())
                .collect::<Vec<_>>(),
        );
        if let Some((name, at)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            && at.elapsed() < TTL
        {
            return name.clone();
        }
        let name = match snapshots.fetch(&self.url, carried, &crate::snapshot::Reading::JSON).await {
            Ok(snapshot) => match snapshot.state.pointer(&self.field) {
                Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                _ => None,
            },
            Err(e) => {
                tracing::debug!(error = %e, "whoami did not name a user");
                None
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.insert(key, (name.clone(), Instant::now()));
        name
    }
}

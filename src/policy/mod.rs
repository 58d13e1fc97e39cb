//! Audit configurations (docs/rules.md): the model and its validation (`model`),
//! the compiled decision (`compiled`), the seed file (`seed`), and `Policy`,
//! the handle the data path reads: an atomically swapped `Arc<Compiled>`,
//! reloaded from the store when its version moves.

mod change;
mod compiled;
mod seed;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;

pub use crate::model::configuration::{
    AuditConfiguration, BUILTIN_ACTIONS, Capture, FieldError, Kind, Source, known_actions, parse_net,
};
pub use change::Change;
pub use compiled::{Compiled, Decision, Question};
pub use seed::{load_dir as load_seed_dir, parse as parse_seed};

use crate::store::{Store, StoreError};

/// The configurations in force, shared by the proxy and the query port.
#[derive(Debug)]
pub struct Policy {
    compiled: ArcSwap<Compiled>,
    /// The store's configuration version the snapshot was built from;
    /// held while a snapshot is swapped in, so that versions only go up.
    version: Mutex<i64>,
}

impl Policy {
    /// A policy with no configurations (every mutation audited).
    pub fn empty() -> Policy {
        Policy { compiled: ArcSwap::from_pointee(Compiled::default()), version: Mutex::new(-1) }
    }

    /// The snapshot in force; a request decides from it without a lock.
    pub fn current(&self) -> arc_swap::Guard<Arc<Compiled>> {
        self.compiled.load()
    }

    /// Reloads from the store if its version moved; true when it swapped.
    pub async fn refresh(&self, store: &Store) -> Result<bool, StoreError> {
        if store.configuration_version().await? == self.version() {
            return Ok(false);
        }
        self.reload(store).await
    }

    /// Reloads from the store whatever the version; true when it swapped.
    pub async fn reload(&self, store: &Store) -> Result<bool, StoreError> {
        let (version, configs) = store.configurations().await?;
        let swapped = self.install(version, &configs);
        if swapped {
            tracing::debug!(version, active = self.current().len(), "audit configurations loaded");
        }
        Ok(swapped)
    }

    fn version(&self) -> i64 {
        *self.version.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts the configurations of `version` in force unless a newer version
    /// already is: two reloads overlap (the refresh timer's and a change's
    /// through this instance), and the one that read first may finish last.
    /// Answers whether it swapped.
    fn install(&self, version: i64, configs: &[AuditConfiguration]) -> bool {
        let compiled = Arc::new(Compiled::new(configs));
        let mut current = self.version.lock().unwrap_or_else(PoisonError::into_inner);
        if version < *current {
            return false;
        }
        self.compiled.store(compiled);
        *current = version;
        true
    }

    /// Polls the store every `every` until the pool closes, so changes made
    /// through any instance take effect here within `config_refresh`.
    pub async fn watch(self: Arc<Self>, store: Store, every: Duration) {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if store.is_closed() {
                return;
            }
            if let Err(e) = self.refresh(&store).await {
                if store.is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "audit configurations not refreshed");
            }
        }
    }
}

//! Legal holds at work: the checks that keep erasure and retention off
//! the entries an active hold covers (the hold itself is `model::hold`).

pub use crate::model::hold::{Hold, NewHold, RESOURCE_TYPE};
use crate::store::{Filter, Store, StoreError};

/// An active hold covering some of the entries `filter` selects, if any.
pub async fn covering(store: &Store, filter: &Filter) -> Result<Option<Hold>, StoreError> {
    for hold in store.holds(true).await? {
        let Some(both) = filter.and(&hold.filter()) else { continue };
        if !store.list(&both, None, 1).await?.0.is_empty() {
            return Ok(Some(hold));
        }
    }
    Ok(None)
}

/// The oldest entry an active hold covers, with that hold: retention
/// deletes nothing from there on.
pub async fn oldest_held(store: &Store) -> Result<Option<(String, Hold)>, StoreError> {
    let mut oldest: Option<(String, Hold)> = None;
    for hold in store.holds(true).await? {
        if let Some(first) = store.newer(&hold.filter(), None, 1).await?.0.into_iter().next()
            && oldest.as_ref().is_none_or(|(id, _)| first.id < *id)
        {
            oldest = Some((first.id, hold));
        }
    }
    Ok(oldest)
}

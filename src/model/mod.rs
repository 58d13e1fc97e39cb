//! The model below the store: audit configurations, legal holds, erasure
//! selectors and the trail's query filter. Plain values and their
//! validation, no I/O; the store keeps them, the services above use them.

pub mod configuration;
pub mod filter;
pub mod hold;
pub mod selector;

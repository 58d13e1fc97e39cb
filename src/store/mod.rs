//! The store: the only module with SQL. SQLite today (one file, WAL).

mod configurations;
mod filter;
mod sqlite;

pub use filter::{Filter, FilterError};
pub use sqlite::SqliteStore;

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL `{0}` is not supported (sqlite://PATH)")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a configuration named `{0}` already exists")]
    DuplicateName(String),
    #[error("stored entry {id} is not valid JSON: {source}")]
    Corrupt { id: String, source: serde_json::Error },
}

impl StoreError {
    /// Whether the query itself was refused (too complex, too big), not
    /// the store being unavailable.
    pub fn is_caused_by_query(&self) -> bool {
        let StoreError::Sql(sqlx::Error::Database(e)) = self else { return false };
        let message = e.message();
        message.contains("too complex") || message.contains("too big") || message.contains("too many")
    }
}

/// Sort key of an address: 16 bytes, IPv4 mapped into IPv6.
pub fn ip_key(ip: std::net::IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store's own refusal of a query is told apart from the store
    /// being unavailable.
    #[tokio::test]
    async fn a_query_the_store_refuses_is_the_querys_fault() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let pattern = "%_".repeat(30_000);
        let refused = sqlx::query("SELECT 'a' LIKE ?").bind(&pattern).execute(&pool).await.unwrap_err();
        assert!(StoreError::Sql(refused).is_caused_by_query());
        let missing = sqlx::query("SELECT * FROM nowhere").execute(&pool).await.unwrap_err();
        assert!(!StoreError::Sql(missing).is_caused_by_query());
        pool.close().await;
        let closed = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
        assert!(!StoreError::Sql(closed).is_caused_by_query());
        assert!(!StoreError::UnsupportedUrl("x".into()).is_caused_by_query());
    }
}

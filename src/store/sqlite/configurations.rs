//! Audit configurations in the store: read whole (they are few and small),
//! written one at a time, each write moving `configuration_version` in the
//! same transaction.

use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::model::configuration::AuditConfiguration;
use crate::store::StoreError;
use crate::store::rows::{ConfigurationRow, duplicate, now, same_settings, source_name};

const SELECT: &str = "SELECT id, name, source, body, created_at, updated_at FROM audit_configuration";

impl SqliteStore {
    /// The version that moves with every configuration change.
    pub async fn configuration_version(&self) -> Result<i64, StoreError> {
        let version = sqlx::query_scalar("SELECT version FROM configuration_version WHERE singleton = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(version)
    }

    /// Every configuration (active or not), oldest first, with the version
    /// they were read at (read first: a change in between reloads again).
    pub async fn configurations(&self) -> Result<(i64, Vec<AuditConfiguration>), StoreError> {
        let version = self.configuration_version().await?;
        let rows: Vec<ConfigurationRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY id"))).fetch_all(self.pool()).await?;
        let configs = rows.into_iter().map(ConfigurationRow::decode).collect::<Result<_, _>>()?;
        Ok((version, configs))
    }

    /// One configuration by id.
    pub async fn configuration(&self, id: i64) -> Result<Option<AuditConfiguration>, StoreError> {
        let row: Option<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(ConfigurationRow::decode).transpose()
    }

    /// Stores a new configuration; answers it with its id and times.
    pub async fn insert_configuration(&self, config: &AuditConfiguration) -> Result<AuditConfiguration, StoreError> {
        let mut tx = self.write_transaction().await?;
        let stored = insert(&mut tx, config).await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Replaces configuration `config.id`; `None` when there is none.
    pub async fn update_configuration(
        &self,
        config: &AuditConfiguration,
    ) -> Result<Option<AuditConfiguration>, StoreError> {
        let mut tx = self.write_transaction().await?;
        let stored = update(&mut tx, config).await?;
        if stored.is_some() {
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Deletes a configuration; answers what was deleted.
    pub async fn delete_configuration(&self, id: i64) -> Result<Option<AuditConfiguration>, StoreError> {
        let mut tx = self.write_transaction().await?;
        let row: Option<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE id = ?")))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let deleted = row.decode()?;
        sqlx::query("DELETE FROM audit_configuration WHERE id = ?").bind(id).execute(&mut *tx).await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(deleted))
    }

    /// Writes the seed file's configurations, each replacing a stored one of
    /// the same name (the file wins). Answers the changes made, as
    /// (before, after) pairs; unchanged ones are left alone.
    pub async fn seed_configurations(
        &self,
        seeds: &[AuditConfiguration],
    ) -> Result<Vec<(Option<AuditConfiguration>, AuditConfiguration)>, StoreError> {
        let mut tx = self.write_transaction().await?;
        let mut changes = Vec::new();
        for seed in seeds {
            let row: Option<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE name = ?")))
                .bind(&seed.name)
                .fetch_optional(&mut *tx)
                .await?;
            match row.map(ConfigurationRow::decode).transpose()? {
                Some(old) if same_settings(&old, seed) => {}
                Some(old) => {
                    let new = AuditConfiguration { id: old.id, ..seed.clone() };
                    let stored = update(&mut tx, &new).await?.expect("the row was just read");
                    changes.push((Some(old), stored));
                }
                None => changes.push((None, insert(&mut tx, seed).await?)),
            }
        }
        if !changes.is_empty() {
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changes)
    }
}

async fn insert(tx: &mut SqliteConnection, config: &AuditConfiguration) -> Result<AuditConfiguration, StoreError> {
    let at = now();
    let mut stored = AuditConfiguration { id: 0, created_at: at.clone(), updated_at: at, ..config.clone() };
    let result = sqlx::query(
        "INSERT INTO audit_configuration (name, source, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&stored.name)
    .bind(source_name(stored.source))
    .bind(stored.to_json().to_string())
    .bind(&stored.created_at)
    .bind(&stored.updated_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| duplicate(e, &stored.name))?;
    stored.id = result.last_insert_rowid();
    Ok(stored)
}

async fn update(
    tx: &mut SqliteConnection,
    config: &AuditConfiguration,
) -> Result<Option<AuditConfiguration>, StoreError> {
    let created: Option<String> = sqlx::query_scalar("SELECT created_at FROM audit_configuration WHERE id = ?")
        .bind(config.id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(created_at) = created else { return Ok(None) };
    let stored = AuditConfiguration { created_at, updated_at: now(), ..config.clone() };
    sqlx::query("UPDATE audit_configuration SET name = ?, source = ?, body = ?, updated_at = ? WHERE id = ?")
        .bind(&stored.name)
        .bind(source_name(stored.source))
        .bind(stored.to_json().to_string())
        .bind(&stored.updated_at)
        .bind(stored.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| duplicate(e, &stored.name))?;
    Ok(Some(stored))
}

async fn bump(tx: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query("UPDATE configuration_version SET version = version + 1 WHERE singleton = 1").execute(&mut *tx).await?;
    Ok(())
}

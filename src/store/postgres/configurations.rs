//! Audit configurations in PostgreSQL: as in SQLite, each write moving
//! `configuration_version` in its transaction; every write first locks the
//! version row, so writes from several instances take turns (two starting
//! with the same seed file do not both insert it).

use sqlx::{Postgres, Transaction};

use super::PgStore;
use crate::model::configuration::AuditConfiguration;
use crate::store::StoreError;
use crate::store::rows::{CONFIGURATION_COLUMNS, ConfigurationRow, duplicate, now, same_settings, source_name};

impl PgStore {
    /// The version that moves with every configuration change.
    pub async fn configuration_version(&self) -> Result<i64, StoreError> {
        let version = sqlx::query_scalar("SELECT version FROM configuration_version WHERE singleton = 1")
            .fetch_one(self.pool())
            .await?;
        Ok(version)
    }

    /// Every configuration (active or not), oldest first, with the version
    /// they were read at (one snapshot: both in one statement).
    pub async fn configurations(&self) -> Result<(i64, Vec<AuditConfiguration>), StoreError> {
        let mut tx = self.pool().begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let version = sqlx::query_scalar("SELECT version FROM configuration_version WHERE singleton = 1")
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM audit_configuration ORDER BY id"
        )))
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await?;
        let configs = rows.into_iter().map(ConfigurationRow::decode).collect::<Result<_, _>>()?;
        Ok((version, configs))
    }

    /// One configuration by id.
    pub async fn configuration(&self, id: i64) -> Result<Option<AuditConfiguration>, StoreError> {
        let row: Option<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM audit_configuration WHERE id = $1"
        )))
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
        let row: Option<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "DELETE FROM audit_configuration WHERE id = $1 RETURNING {CONFIGURATION_COLUMNS}"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(row.decode()?))
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
            let row: Option<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CONFIGURATION_COLUMNS} FROM audit_configuration WHERE name = $1"
            )))
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

    /// A transaction holding the version row: configuration writes of every
    /// instance take turns on it.
    async fn write_transaction(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT version FROM configuration_version WHERE singleton = 1 FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    config: &AuditConfiguration,
) -> Result<AuditConfiguration, StoreError> {
    let at = now();
    let mut stored = AuditConfiguration { id: 0, created_at: at.clone(), updated_at: at, ..config.clone() };
    stored.id = sqlx::query_scalar(
        "INSERT INTO audit_configuration (name, source, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(&stored.name)
    .bind(source_name(stored.source))
    .bind(stored.to_json().to_string())
    .bind(&stored.created_at)
    .bind(&stored.updated_at)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| duplicate(e, &stored.name))?;
    Ok(stored)
}

async fn update(
    tx: &mut Transaction<'_, Postgres>,
    config: &AuditConfiguration,
) -> Result<Option<AuditConfiguration>, StoreError> {
    let updated_at = now();
    let created: Option<String> = sqlx::query_scalar(
        "UPDATE audit_configuration SET name = $1, source = $2, body = $3, updated_at = $4 WHERE id = $5 \
         RETURNING created_at",
    )
    .bind(&config.name)
    .bind(source_name(config.source))
    .bind(config.to_json().to_string())
    .bind(&updated_at)
    .bind(config.id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| duplicate(e, &config.name))?;
    Ok(created.map(|created_at| AuditConfiguration { created_at, updated_at, ..config.clone() }))
}

async fn bump(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("UPDATE configuration_version SET version = version + 1 WHERE singleton = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

//! Audit configurations, for every backend: read whole (they are few and
//! small), written one at a time, each write moving `configuration_version`
//! in its transaction. Every write first locks the version row, so writes
//! from several instances sharing a store take turns (two starting with the
//! same seed file do not both insert it).

use super::dialect::Dialect;
use super::rows::{CONFIGURATION_COLUMNS, ConfigurationRow, duplicate, now, same_settings, source_name};
use super::{Store, StoreError};
use crate::model::configuration::AuditConfiguration;

const VERSION: &str = "SELECT version FROM configuration_version WHERE singleton = 1";
const BUMP: &str = "UPDATE configuration_version SET version = version + 1 WHERE singleton = 1";
const INSERT: &str = "INSERT INTO audit_configuration (name, source, body, created_at, updated_at) \
                      VALUES ($1, $2, $3, $4, $5) RETURNING id";
const UPDATE: &str = "UPDATE audit_configuration SET name = $1, source = $2, body = $3, updated_at = $4 \
                      WHERE id = $5 RETURNING created_at";

/// A write transaction of `$s` holding the version row.
macro_rules! write_transaction {
    ($s:expr) => {{
        let mut tx = $s.begin_write().await?;
        let lock = format!("{VERSION}{}", $s.for_update());
        sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *tx).await?;
        tx
    }};
}

/// Stores `$config` as a new configuration in `$tx`; answers it stored.
macro_rules! insert {
    ($tx:expr, $config:expr) => {{
        let at = now();
        let mut stored = AuditConfiguration { id: 0, created_at: at.clone(), updated_at: at, ..$config.clone() };
        stored.id = sqlx::query_scalar(INSERT)
            .bind(&stored.name)
            .bind(source_name(stored.source))
            .bind(stored.to_json().to_string())
            .bind(&stored.created_at)
            .bind(&stored.updated_at)
            .fetch_one(&mut *$tx)
            .await
            .map_err(|e| duplicate(e, &stored.name))?;
        stored
    }};
}

/// Replaces `$config` in `$tx`; `None` when there is no such id.
macro_rules! update {
    ($tx:expr, $config:expr) => {{
        let config: &AuditConfiguration = $config;
        let updated_at = now();
        let created: Option<String> = sqlx::query_scalar(UPDATE)
            .bind(&config.name)
            .bind(source_name(config.source))
            .bind(config.to_json().to_string())
            .bind(&updated_at)
            .bind(config.id)
            .fetch_optional(&mut *$tx)
            .await
            .map_err(|e| duplicate(e, &config.name))?;
        created.map(|created_at| AuditConfiguration { created_at, updated_at, ..config.clone() })
    }};
}

impl Store {
    /// The version that moves with every configuration change.
    pub async fn configuration_version(&self) -> Result<i64, StoreError> {
        each!(self, s => Ok(sqlx::query_scalar(VERSION).fetch_one(s.pool()).await?))
    }

    /// Every configuration (active or not), oldest first, with the version
    /// they were read at (one snapshot: both in one read transaction).
    pub async fn configurations(&self) -> Result<(i64, Vec<AuditConfiguration>), StoreError> {
        let sql = format!("SELECT {CONFIGURATION_COLUMNS} FROM audit_configuration ORDER BY id");
        let (version, rows): (i64, Vec<ConfigurationRow>) = each!(self, s => {
            let mut tx = s.begin_read().await?;
            let version = sqlx::query_scalar(VERSION).fetch_one(&mut *tx).await?;
            let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *tx).await?;
            tx.rollback().await?;
            (version, rows)
        });
        let configs = rows.into_iter().map(ConfigurationRow::decode).collect::<Result<_, _>>()?;
        Ok((version, configs))
    }

    /// One configuration by id.
    pub async fn configuration(&self, id: i64) -> Result<Option<AuditConfiguration>, StoreError> {
        let sql = format!("SELECT {CONFIGURATION_COLUMNS} FROM audit_configuration WHERE id = $1");
        let row: Option<ConfigurationRow> =
            each!(self, s => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(s.pool()).await?);
        row.map(ConfigurationRow::decode).transpose()
    }

    /// Stores a new configuration; answers it with its id and times.
    pub async fn insert_configuration(&self, config: &AuditConfiguration) -> Result<AuditConfiguration, StoreError> {
        each!(self, s => {
            let mut tx = write_transaction!(s);
            let stored = insert!(tx, config);
            sqlx::query(BUMP).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(stored)
        })
    }

    /// Replaces configuration `config.id`; `None` when there is none.
    pub async fn update_configuration(
        &self,
        config: &AuditConfiguration,
    ) -> Result<Option<AuditConfiguration>, StoreError> {
        each!(self, s => {
            let mut tx = write_transaction!(s);
            let stored = update!(tx, config);
            if stored.is_some() {
                sqlx::query(BUMP).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(stored)
        })
    }

    /// Deletes a configuration; answers what was deleted.
    pub async fn delete_configuration(&self, id: i64) -> Result<Option<AuditConfiguration>, StoreError> {
        let sql = format!("DELETE FROM audit_configuration WHERE id = $1 RETURNING {CONFIGURATION_COLUMNS}");
        each!(self, s => {
            let mut tx = write_transaction!(s);
            let row: Option<ConfigurationRow> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *tx).await?;
            let Some(row) = row else { return Ok(None) };
            sqlx::query(BUMP).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Some(row.decode()?))
        })
    }

    /// Writes the seed file's configurations, each replacing a stored one of
    /// the same name (the file wins). Answers the changes made, as
    /// (before, after) pairs; unchanged ones are left alone.
    pub async fn seed_configurations(
        &self,
        seeds: &[AuditConfiguration],
    ) -> Result<Vec<(Option<AuditConfiguration>, AuditConfiguration)>, StoreError> {
        let by_name = format!("SELECT {CONFIGURATION_COLUMNS} FROM audit_configuration WHERE name = $1");
        each!(self, s => {
            let mut tx = write_transaction!(s);
            let mut changes = Vec::new();
            for seed in seeds {
                let row: Option<ConfigurationRow> = sqlx::query_as(sqlx::AssertSqlSafe(by_name.clone()))
                    .bind(&seed.name)
                    .fetch_optional(&mut *tx)
                    .await?;
                match row.map(ConfigurationRow::decode).transpose()? {
                    Some(old) if same_settings(&old, seed) => {}
                    Some(old) => {
                        let new = AuditConfiguration { id: old.id, ..seed.clone() };
                        let stored = update!(tx, &new).expect("the row was just read");
                        changes.push((Some(old), stored));
                    }
                    None => changes.push((None, insert!(tx, seed))),
                }
            }
            if !changes.is_empty() {
                sqlx::query(BUMP).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(changes)
        })
    }
}

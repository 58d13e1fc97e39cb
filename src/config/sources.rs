//! Where configuration comes from, in rising precedence: the TOML file,
//! `AUDITGATE_*` environment variables (`__` for nesting), then flags.
//! Each source is checked on its own so an error names the file and line or
//! the variable or flag at fault.

use std::path::Path;

use toml::{Table, Value};

use super::ConfigError;
use super::raw::RawConfig;

/// Command-line values that override the other sources, as config keys.
pub type Overrides = Vec<(&'static str, String)>;

/// Reads the file (if any), applies the environment and the flags, and
/// deserialises the result.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &Overrides,
) -> Result<RawConfig, ConfigError> {
    let mut table = match file {
        Some(path) => read_file(path)?,
        None => Table::new(),
    };
    for (var, value) in env {
        let Some(key) = var.strip_prefix("AUDITGATE_") else { continue };
        let keys: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
        let typed = env_value(&keys, &value)
            .map_err(|reason| ConfigError::Source { source_name: format!("environment variable {var}"), reason })?;
        set(&mut table, &keys, typed);
    }
    for (key, value) in flags {
        let keys = [key.to_string()];
        check_alone(&keys, Value::String(value.clone()))
            .map_err(|reason| ConfigError::Source { source_name: format!("--{}", key.replace('_', "-")), reason })?;
        set(&mut table, &keys, Value::String(value.clone()));
    }
    RawConfig::deserialize_table(table)
        .map_err(|reason| ConfigError::Source { source_name: "configuration".into(), reason })
}

impl RawConfig {
    fn deserialize_table(table: Table) -> Result<RawConfig, String> {
        serde::Deserialize::deserialize(Value::Table(table)).map_err(|e: toml::de::Error| e.message().to_string())
    }
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Source {
        source_name: path.display().to_string(),
        reason: format!("cannot read: {e}"),
    })?;
    // Deserialising the file alone gives the line and key of an unknown key
    // or a wrong type.
    crate::toml_file::parse::<RawConfig>(path, &text).map_err(ConfigError::File)?;
    toml::from_str::<Table>(&text)
        .map_err(|e| ConfigError::Source { source_name: path.display().to_string(), reason: e.message().to_string() })
}

/// An environment value typed as TOML when that fits the key, else a string.
fn env_value(keys: &[String], value: &str) -> Result<Value, String> {
    let as_toml = toml::from_str::<Table>(&format!("v = {value}")).ok().and_then(|mut t| t.remove("v"));
    if let Some(v) = as_toml
        && check_alone(keys, v.clone()).is_ok()
    {
        return Ok(v);
    }
    let s = Value::String(value.to_string());
    check_alone(keys, s.clone()).map(|()| s)
}

/// Deserialises a table holding only this key, so its error is its own.
fn check_alone(keys: &[String], value: Value) -> Result<(), String> {
    let mut table = Table::new();
    set(&mut table, keys, value);
    RawConfig::deserialize_table(table).map(drop)
}

fn set(table: &mut Table, keys: &[String], value: Value) {
    let (last, parents) = keys.split_last().expect("a key has at least one part");
    let mut at = table;
    for k in parents {
        let entry = at.entry(k.clone()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        at = entry.as_table_mut().expect("made a table above");
    }
    at.insert(last.clone(), value);
}

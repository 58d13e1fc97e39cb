//! `rules/audit.toml`: configurations seeded at start (`source: "file"`).
//! A bad file stops start-up naming file, line and field (a `RulesError`,
//! like `resources.toml`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::model::configuration::{AuditConfiguration, Source};
use crate::toml_file::{RulesError, line_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    configuration: Vec<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
}

/// Loads `audit.toml` from a rules directory; a missing file seeds nothing.
pub fn load_dir(dir: &Path, actions: &HashSet<String>) -> Result<Vec<AuditConfiguration>, RulesError> {
    let file = dir.join("audit.toml");
    match std::fs::read_to_string(&file) {
        Ok(text) => parse(&file, &text, actions),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(RulesError { file, line: 0, message: format!("cannot read: {e}") }),
    }
}

/// Parses seed configurations; `file` names the source in errors.
pub fn parse(file: &Path, text: &str, actions: &HashSet<String>) -> Result<Vec<AuditConfiguration>, RulesError> {
    let err = |line: usize, message: String| RulesError { file: file.to_path_buf(), line, message };
    let raw: RawFile = crate::toml_file::parse(file, text)?;
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.configuration.len());
    for table in raw.configuration {
        let table_line = line_of(text, table.span().start);
        let mut config = AuditConfiguration::new();
        for (key, value) in table.get_ref() {
            let line = line_of(text, value.span().start);
            let json = serde_json::to_value(value.get_ref()).map_err(|e| err(line, format!("{key}: {e}")))?;
            let body = serde_json::Value::Object([(key.clone(), json)].into_iter().collect());
            config.apply_fields(&body, actions).map_err(|e| err(line, e.to_string()))?;
        }
        if config.name.is_empty() {
            return Err(err(table_line, "name: is required".into()));
        }
        if !seen.insert(config.name.clone()) {
            return Err(err(table_line, format!("name: `{}` is given twice", config.name)));
        }
        config.source = Source::File;
        out.push(config);
    }
    Ok(out)
}

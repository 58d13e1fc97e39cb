//! TOML files read with errors that name the file, the line and the key at
//! fault (`auditgate.toml:2: listen: invalid type: …`): the configuration,
//! `resources.toml` and `audit.toml` all go through `parse`.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A file that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct RulesError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Deserialises `text`, read from `file`; an error names the line and, when
/// serde knows it, the dotted path of the key (`limits.max_body_bytes`).
pub fn parse<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, RulesError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| error(file, text, &e, String::new()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = key_of(e.path());
        error(file, text, e.inner(), key)
    })
}

fn error(file: &Path, text: &str, e: &toml::de::Error, key: String) -> RulesError {
    let line = e.span().map_or(0, |s| line_of(text, s.start));
    let reason = e.message().trim();
    let message = if key.is_empty() || reason.contains(&format!("`{key}`")) {
        reason.to_string()
    } else {
        format!("{key}: {reason}")
    };
    RulesError { file: file.to_path_buf(), line, message }
}

/// The path of a key as a user writes it: `limits.max_body_bytes`,
/// `resource[2].method` becomes `resource.method` (the line says which).
fn key_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let keys: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            // `toml::Spanned` wraps a value in a private field.
            Segment::Map { key } if key.starts_with("$__serde_spanned") => None,
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Seq { .. } | Segment::Unknown => None,
        })
        .collect();
    keys.join(".")
}

/// 1-based line number of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        listen: Option<String>,
        #[serde(default)]
        limits: Limits,
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        max_body_bytes: Option<u64>,
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let file = Path::new("auditgate.toml");
        let check = |text: &str, expected: &str| {
            let e = parse::<Sample>(file, text).unwrap_err().to_string();
            assert!(e.starts_with(expected), "{e} should start with {expected}");
        };
        check("\nlisten = 2\n", "auditgate.toml:2: listen: invalid type: integer");
        check(
            "[limits]\n\nmax_body_bytes = \"lots\"\n",
            "auditgate.toml:3: limits.max_body_bytes: invalid type: string",
        );
        check("listen = \"x\"\nbogus = 1\n", "auditgate.toml:2: unknown field `bogus`");
        check("listen = \n", "auditgate.toml:1: ");
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb", 99), 2);
    }
}

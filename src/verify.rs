//! `auditgate verify`: the chains checked, and heads kept elsewhere checked
//! against them, turned into what the command prints and its verdict.

use std::path::Path;

use crate::entry::{Head, Verification};
use crate::store::{Store, StoreError};

/// What `verify` found.
#[derive(Debug)]
pub struct Report {
    pub verification: Verification,
    /// One line per kept head the chains no longer reach.
    pub cut: Vec<String>,
    pub kept: usize,
}

impl Report {
    /// Checks every chain, and that each head in `kept` is still reached.
    pub async fn of(store: &Store, kept: &[Head]) -> Result<Report, StoreError> {
        Ok(Report { verification: store.verify().await?, cut: store.missing_heads(kept).await?, kept: kept.len() })
    }

    /// Whether the trail is intact.
    pub fn ok(&self) -> bool {
        self.verification.ok && self.cut.is_empty()
    }

    /// The JSON printed on stdout (with each instance's head, to keep).
    pub fn printed(&self) -> String {
        serde_json::to_string(&self.verification).expect("a verification serialises")
    }

    /// The lines for stderr: each problem, or the all-clear.
    pub fn verdict(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.cut.iter().map(|p| format!("TAMPERED: {p}")).collect();
        if let Some(first) = &self.verification.first_bad {
            lines.push(format!("TAMPERED: entry {first} was altered, or one before it removed"));
        }
        if self.verification.erased_unrecorded > 0 {
            lines.push(format!(
                "TAMPERED: {} erased entries more than the trail's erasures recorded (content removed behind its back)",
                self.verification.erased_unrecorded
            ));
        }
        if lines.is_empty() {
            let against =
                if self.kept == 0 { String::new() } else { format!(", each reaching its {} kept head(s)", self.kept) };
            let erased = match self.verification.erased {
                0 => String::new(),
                n => format!(" ({n} erased, their digests intact)"),
            };
            lines.push(format!("{} entries checked{erased}, every chain intact{against}", self.verification.checked));
        }
        lines
    }
}

/// The heads in a file `auditgate verify` printed earlier (its JSON).
pub fn read_heads(path: &Path) -> Result<Vec<Head>, String> {
    #[derive(serde::Deserialize)]
    struct Printed {
        heads: Vec<Head>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let printed: Printed = serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}: not the output of `auditgate verify`: {e}", path.display(), e.line()))?;
    Ok(printed.heads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(first_bad: Option<&str>, erased: u64, erased_unrecorded: u64, cut: &[&str], kept: usize) -> Report {
        Report {
            verification: Verification {
                ok: first_bad.is_none() && erased_unrecorded == 0,
                checked: 7,
                erased,
                erased_unrecorded,
                first_bad: first_bad.map(str::to_string),
                heads: Vec::new(),
            },
            cut: cut.iter().map(|c| c.to_string()).collect(),
            kept,
        }
    }

    #[test]
    fn the_verdict_names_every_problem_or_says_what_was_checked() {
        assert_eq!(report(None, 0, 0, &[], 0).verdict(), ["7 entries checked, every chain intact"]);
        assert_eq!(
            report(None, 2, 0, &[], 1).verdict(),
            [
                "7 entries checked (2 erased, their digests intact), every chain intact, each reaching its 1 kept head(s)"
            ]
        );
        assert!(report(None, 0, 0, &[], 0).ok());
        let bad = report(Some("01X"), 3, 1, &["instance a: kept head 9 is gone"], 1);
        assert!(!bad.ok());
        assert_eq!(
            bad.verdict(),
            [
                "TAMPERED: instance a: kept head 9 is gone",
                "TAMPERED: entry 01X was altered, or one before it removed",
                "TAMPERED: 1 erased entries more than the trail's erasures recorded (content removed behind its back)",
            ]
        );
        assert!(!report(None, 1, 1, &[], 0).ok());
        assert!(!report(None, 0, 0, &["x"], 0).ok());
        let printed: serde_json::Value = serde_json::from_str(&report(None, 2, 0, &[], 0).printed()).unwrap();
        assert_eq!((printed["erased"].as_u64(), printed.get("erased_unrecorded")), (Some(2), None));
        let printed: serde_json::Value = serde_json::from_str(&bad.printed()).unwrap();
        assert_eq!(printed["erased_unrecorded"], 1);
    }
}

//! Singular forms of collection names (`users` → `user`), for resource types.
//!
//! A small rule set plus irregulars, enough for REST collection names; a
//! configured pattern with a literal `type` covers anything it gets wrong.

/// Irregular plurals checked before the suffix rules.
const IRREGULAR: &[(&str, &str)] = &[
    ("people", "person"),
    ("children", "child"),
    ("men", "man"),
    ("women", "woman"),
    ("mice", "mouse"),
    ("geese", "goose"),
    ("teeth", "tooth"),
    ("feet", "foot"),
    ("oxen", "ox"),
    ("indices", "index"),
    ("matrices", "matrix"),
    ("vertices", "vertex"),
    ("analyses", "analysis"),
    ("crises", "crisis"),
    ("theses", "thesis"),
    ("criteria", "criterion"),
    ("phenomena", "phenomenon"),
    ("movies", "movie"),
    ("cookies", "cookie"),
    ("series", "series"),
    ("species", "species"),
    ("news", "news"),
    ("data", "data"),
    ("metadata", "metadata"),
    ("media", "media"),
    ("status", "status"),
    ("address", "address"),
    ("access", "access"),
    ("process", "process"),
];

/// Words that end in `s` but are singular already.
const SINGULAR_S: &[&str] = &["us", "is", "ss", "os"];

/// Returns the singular of an ASCII-lowercase collection name.
pub fn singularize(word: &str) -> String {
    if let Some((_, one)) = IRREGULAR.iter().find(|(many, _)| *many == word) {
        return (*one).to_string();
    }
    let strip = |n: usize| word[..word.len() - n].to_string();
    let len = word.len();
    if len > 3 && word.ends_with("ies") && !word.ends_with("eies") {
        return format!("{}y", &word[..len - 3]);
    }
    if len > 4 && word.ends_with("sses") {
        return strip(2);
    }
    if len > 3
        && (word.ends_with("uses")
            || word.ends_with("xes")
            || word.ends_with("zes")
            || word.ends_with("ches")
            || word.ends_with("shes"))
    {
        return strip(2);
    }
    if len > 1 && word.ends_with('s') && !SINGULAR_S.iter().any(|s| word.ends_with(s)) {
        return strip(1);
    }
    word.to_string()
}

/// True when `word` reads as a plural collection name rather than a verb such
/// as `activate`: its singular differs from it.
pub fn looks_plural(word: &str) -> bool {
    singularize(word) != word || word == "series" || word == "data"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("users", "user"),
            ("categories", "category"),
            ("addresses", "address"),
            ("people", "person"),
            ("statuses", "status"),
            ("status", "status"),
            ("tasks", "task"),
            ("projects", "project"),
            ("boxes", "box"),
            ("branches", "branch"),
            ("wishes", "wish"),
            ("buses", "bus"),
            ("classes", "class"),
            ("orders", "order"),
            ("user", "user"),
            ("news", "news"),
            ("activate", "activate"),
            ("keys", "key"),
            ("logentries", "logentry"),
            ("sessions", "session"),
        ];
        for (many, one) in cases {
            assert_eq!(singularize(many), one, "{many}");
        }
    }

    #[test]
    fn verbs_are_not_plural() {
        for verb in ["activate", "publish", "reset_password", "approve", "process"] {
            assert!(!looks_plural(verb), "{verb}");
        }
        for noun in ["tasks", "members", "comments", "people"] {
            assert!(looks_plural(noun), "{noun}");
        }
    }
}

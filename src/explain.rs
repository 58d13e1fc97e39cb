//! `auditgate explain`: how one request would be classified, printed for a
//! person; no network, no database.

use std::fmt::Write as _;
use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::resource::{Classification, Classifier, OverridePolicy, effective_method};

/// A request that cannot be explained (bad method, header or override).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExplainError(String);

/// Classifies `method target` and describes the result.
pub fn explain(
    classifier: &Classifier,
    rules_file: &Path,
    policy: OverridePolicy,
    method: &str,
    target: &str,
    headers: &[String],
) -> Result<String, ExplainError> {
    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ExplainError(format!("`{method}` is not an HTTP method")))?;
    let mut map = HeaderMap::new();
    for h in headers {
        let (name, value) =
            h.split_once(':').ok_or_else(|| ExplainError(format!("header `{h}` is not `Name: value`")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ExplainError(format!("`{name}` is not a header name")))?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| ExplainError(format!("bad value in `{h}`")))?;
        map.append(name, value);
    }
    if !target.starts_with('/') {
        return Err(ExplainError(format!("`{target}` must be a path starting with `/`")));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let effective = effective_method(&method, &map, policy).map_err(|e| ExplainError(e.to_string()))?;
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: &str| writeln!(out, "{k:<10}{v}").expect("writing to a String");
    line(&mut out, "request", &format!("{method} {target}"));
    if effective != method {
        line(&mut out, "acts as", &format!("{effective} (method override)"));
    }
    let rule_name = |i: usize| {
        let rule = &classifier.rules()[i];
        format!("{}:{} `{}`", rules_file.display(), rule.line, rule.source)
    };
    match classifier.classify(&effective, path, query, &map) {
        Classification::Ignored { rule } => {
            line(&mut out, "ignored", &rule.map_or("OPTIONS/TRACE are never audited".to_string(), rule_name));
            line(&mut out, "audited", "no");
        }
        Classification::Resource(c) => {
            line(&mut out, "action", c.action.as_str());
            line(&mut out, "type", &c.resource.kind);
            let id = match (&c.resource.id, &c.pending_id) {
                (Some(id), _) => id.clone(),
                (None, Some(from)) => format!("(read from {from})"),
                (None, None) if c.action == crate::resource::Action::Create => "(from the response)".into(),
                (None, None) => "(none)".into(),
            };
            line(&mut out, "id", &id);
            let parents: Vec<String> = c.resource.parents.iter().map(|p| format!("{} {}", p.kind, p.id)).collect();
            let parents = if parents.is_empty() { "(none)".to_string() } else { parents.join(", ") };
            line(&mut out, "parents", &parents);
            line(&mut out, "matched", &c.rule.map_or("default heuristic".to_string(), rule_name));
            line(&mut out, "snapshot", c.snapshot.as_deref().unwrap_or("(none)"));
            let audited = if c.action.is_mutation() {
                "yes (every mutation is audited; reads and logins only when a configuration names them)"
            } else {
                "no (reads and logins only when a configuration names them)"
            };
            line(&mut out, "audited", audited);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(method: &str, target: &str, headers: &[&str]) -> String {
        let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        explain(
            &Classifier::default(),
            Path::new("rules/resources.toml"),
            OverridePolicy::Honour,
            method,
            target,
            &headers,
        )
        .unwrap()
    }

    #[test]
    fn describes_a_nested_delete() {
        let out = run("delete", "/v2/projects/7/tasks/9", &[]);
        assert!(out.contains("action    delete\n"), "{out}");
        assert!(out.contains("type      task\n"), "{out}");
        assert!(out.contains("id        9\n"), "{out}");
        assert!(out.contains("parents   project 7\n"), "{out}");
        assert!(out.contains("matched   default heuristic\n"), "{out}");
    }

    #[test]
    fn follows_method_override() {
        let out = run("POST", "/users/2", &["X-HTTP-Method-Override: DELETE"]);
        assert!(out.contains("acts as   DELETE (method override)"), "{out}");
        assert!(out.contains("action    delete\n"), "{out}");
    }

    #[test]
    fn refuses_nonsense() {
        let c = Classifier::default();
        let p = Path::new("r");
        assert!(explain(&c, p, OverridePolicy::Honour, "G T", "/x", &[]).is_err());
        assert!(explain(&c, p, OverridePolicy::Honour, "GET", "x", &[]).is_err());
        assert!(explain(&c, p, OverridePolicy::Honour, "GET", "/x", &["nocolon".into()]).is_err());
    }
}

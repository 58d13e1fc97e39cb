//! `auditgate explain`: how one request would be classified and whether it
//! would be recorded (and by which configuration), printed for a person; no
//! network. The configurations come from the seed file or a database.

use std::fmt::Write as _;
use std::path::Path;

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::identity::{ActorRules, ActorSource, TrustedProxies, client_addr};
use crate::policy::{Compiled, Decision, Question};
use crate::resource::{Classification, Classifier, OverridePolicy, effective_method};

/// A request that cannot be explained (bad method, header or override).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExplainError(String);

/// What a request is explained against.
#[derive(Debug)]
pub struct Explainer<'a> {
    pub classifier: &'a Classifier,
    pub rules_file: &'a Path,
    pub method_override: OverridePolicy,
    pub actor: &'a ActorRules,
    pub trusted: &'a TrustedProxies,
    pub policy: &'a Compiled,
    /// Where the configurations came from (a file or a database URL).
    pub policy_source: &'a str,
}

impl Explainer<'_> {
    /// Classifies `method target`, sent from `from` with `headers`, and
    /// describes the result and the audit decision.
    pub fn explain(
        &self,
        method: &str,
        target: &str,
        headers: &[String],
        from: IpAddr,
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
        // Classified as forwarded: without the headers `Connection` names.
        crate::proxy::strip_hop_by_hop(&mut map, false);
        let effective =
            effective_method(&method, &map, self.method_override).map_err(|e| ExplainError(e.to_string()))?;
        let mut out = String::new();
        let line = |out: &mut String, k: &str, v: &str| writeln!(out, "{k:<10}{v}").expect("writing to a String");
        line(&mut out, "request", &format!("{method} {target}"));
        if effective != method {
            line(&mut out, "acts as", &format!("{effective} (method override)"));
        }
        let rule_name = |i: usize| {
            let rule = &self.classifier.rules()[i];
            format!("{}:{} `{}`", self.rules_file.display(), rule.line, rule.source)
        };
        let c = match self.classifier.classify(&effective, path, query, &map) {
            Classification::Ignored { rule } => {
                line(&mut out, "ignored", &rule.map_or("OPTIONS/TRACE are never audited".to_string(), rule_name));
                line(&mut out, "audited", "no");
                return Ok(out);
            }
            Classification::Resource(c) => c,
        };
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
        if c.snapshot.is_some() {
            let page = c.rule.map(|i| self.classifier.rules()[i].page.clone()).unwrap_or_default();
            line(&mut out, "reading", &page.describe(path));
        }
        let peer_trusted = self.trusted.contains(from);
        let actor = self.actor.resolve(&map, peer_trusted);
        let addr = client_addr(self.trusted, from, &map);
        let login = c.action == crate::resource::Action::Login;
        let actor_note = if login { " (a login's actor is read from its body)" } else { "" };
        let source = serde_json::json!(actor.source);
        let trust = match actor.source {
            ActorSource::Anonymous => "",
            _ if actor.verified => ", verified",
            _ => ", unverified",
        };
        line(&mut out, "actor", &format!("{} ({}{trust}){actor_note}", actor.name, source.as_str().unwrap_or("")));
        line(&mut out, "client", &addr.client.to_string());
        let question = Question::new(&c.action, &c.resource.kind, &actor, addr.client);
        let audited = match self.policy.explain(&question) {
            (Decision::Audit { capture, configuration: Some(name) }, _) => {
                format!("yes, by `{name}` (capture {})", serde_json::json!(capture).as_str().unwrap_or(""))
            }
            (Decision::Audit { .. }, _) => {
                "yes (no include configuration is active: every mutation, capture diff)".into()
            }
            (Decision::Skip, Some(name)) => format!("no, excluded by `{name}`"),
            (Decision::Skip, None) if !c.action.is_mutation() && self.policy.is_empty() => {
                "no (reads and logins only when a configuration names them)".into()
            }
            (Decision::Skip, None) => "no (no include configuration matches)".into(),
        };
        line(&mut out, "audited", &audited);
        line(&mut out, "from", &format!("{} active configuration(s) in {}", self.policy.len(), self.policy_source));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AuditConfiguration;

    fn with(policy: &Compiled, method: &str, target: &str, headers: &[&str]) -> Result<String, ExplainError> {
        by(&Classifier::default(), policy, method, target, headers)
    }

    fn by(
        classifier: &Classifier,
        policy: &Compiled,
        method: &str,
        target: &str,
        headers: &[&str],
    ) -> Result<String, ExplainError> {
        let headers: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
        let actor = ActorRules::default();
        let explainer = Explainer {
            classifier,
            rules_file: Path::new("rules/resources.toml"),
            method_override: OverridePolicy::Honour,
            actor: &actor,
            trusted: &TrustedProxies::default(),
            policy,
            policy_source: "rules/audit.toml",
        };
        explainer.explain(method, target, &headers, "198.51.100.4".parse().unwrap())
    }

    fn run(method: &str, target: &str, headers: &[&str]) -> String {
        with(&Compiled::default(), method, target, headers).unwrap()
    }

    #[test]
    fn names_the_configuration_that_decides() {
        let configs: Vec<AuditConfiguration> = [
            serde_json::json!({"name": "users", "audit_resource_types": ["user"], "capture": "full"}),
            serde_json::json!({"name": "no bots", "configuration_type": "exclude", "audit_users": ["bot"]}),
            serde_json::json!({"name": "no sessions", "configuration_type": "exclude", "audit_resource_types": ["session"]}),
        ]
        .iter()
        .map(|body| {
            let mut c = AuditConfiguration::new();
            c.apply(body, &crate::policy::known_actions([])).unwrap();
            c
        })
        .collect();
        let policy = Compiled::new(&configs);
        let alice = "Authorization: Basic YWxpY2U6cHc="; // alice:pw
        let bot = "Authorization: Basic Ym90OnB3"; // bot:pw
        let out = with(&policy, "PATCH", "/api/v1/users/1/", &[alice]).unwrap();
        assert!(out.contains("actor     alice (basic, unverified)\n"), "{out}");
        assert!(out.contains("client    198.51.100.4\n"), "{out}");
        assert!(out.contains("audited   yes, by `users` (capture full)\n"), "{out}");
        assert!(out.contains("from      3 active configuration(s) in rules/audit.toml"), "{out}");
        // An unverified name cannot exclude itself (docs/rules.md).
        let out = with(&policy, "PATCH", "/api/v1/users/1/", &[bot]).unwrap();
        assert!(out.contains("actor     bot (basic, unverified)\n"), "{out}");
        assert!(out.contains("audited   yes, by `users` (capture full)\n"), "{out}");
        let out = with(&policy, "PATCH", "/api/v1/sessions/1/", &[bot]).unwrap();
        assert!(out.contains("audited   no, excluded by `no sessions`\n"), "{out}");
        let out = with(&policy, "PATCH", "/api/v1/orders/1/", &[alice]).unwrap();
        assert!(out.contains("audited   no (no include configuration matches)\n"), "{out}");
        let out = run("DELETE", "/api/v1/orders/1/", &[]);
        assert!(out.contains("audited   yes (no include configuration is active"), "{out}");
        let out = run("GET", "/api/v1/orders/1/", &[]);
        assert!(out.contains("audited   no (reads and logins only when"), "{out}");
    }

    #[test]
    fn says_how_a_rules_pages_are_read() {
        let rules = r##"
[[resource]]
pattern = "/customers/{id}/edit/"
type = "customer"
snapshot_format = "form"
form = "#edit"

[[resource]]
pattern = "/notes/{id}/"
type = "note"

[[resource]]
pattern = "/login/"
type = "session"
action = "login"
username_from = "form:username"
"##;
        let classifier = Classifier::new(crate::resource::RulesFile::parse(Path::new("r.toml"), rules).unwrap());
        let out = |method: &str, target: &str| by(&classifier, &Compiled::default(), method, target, &[]).unwrap();
        assert!(
            out("POST", "/customers/3/edit/").contains("reading   form (the form `#edit`)\n"),
            "{}",
            out("POST", "/customers/3/edit/")
        );
        let notes = out("PATCH", "/notes/3/");
        assert!(notes.contains("reading   auto (JSON as JSON, HTML by the form posting to /notes/3/"), "{notes}");
        let heuristic = out("PATCH", "/api/users/3/");
        assert!(heuristic.contains("reading   auto (JSON as JSON"), "{heuristic}");
        let login = out("POST", "/login/");
        assert!(!login.contains("reading"), "no snapshot, no reading: {login}");
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
        // As forwarded: a dropped override, or one naming a read, does not count.
        let out = run("POST", "/users/2", &["X-HTTP-Method-Override: DELETE", "Connection: X-HTTP-Method-Override"]);
        assert!(!out.contains("acts as") && out.contains("action    update\n"), "{out}");
        let out = run("POST", "/users/", &["X-HTTP-Method: GET"]);
        assert!(!out.contains("acts as") && out.contains("action    create\n"), "{out}");
    }

    #[test]
    fn says_whether_the_actor_is_vouched_for() {
        let out = run("PATCH", "/api/v1/users/1/", &[]);
        assert!(out.contains("actor     anonymous (anonymous)\n"), "{out}");
        // The actor header counts only from a trusted proxy, and is then vouched for.
        let trusted = TrustedProxies::new(vec!["198.51.100.0/24".parse().unwrap()]);
        let (classifier, actor) = (Classifier::default(), ActorRules::default());
        let explainer = Explainer {
            classifier: &classifier,
            rules_file: Path::new("rules/resources.toml"),
            method_override: OverridePolicy::Honour,
            actor: &actor,
            trusted: &trusted,
            policy: &Compiled::default(),
            policy_source: "rules/audit.toml",
        };
        let headers = ["X-Remote-User: carol".to_string()];
        let out = explainer.explain("PATCH", "/api/v1/users/1/", &headers, "198.51.100.4".parse().unwrap()).unwrap();
        assert!(out.contains("actor     carol (header, verified)\n"), "{out}");
    }

    #[test]
    fn refuses_nonsense() {
        let none = Compiled::default();
        assert!(with(&none, "G T", "/x", &[]).is_err());
        assert!(with(&none, "GET", "x", &[]).is_err());
        assert!(with(&none, "GET", "/x", &["nocolon"]).is_err());
    }
}

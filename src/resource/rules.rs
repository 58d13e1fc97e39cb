//! `rules/resources.toml`: configured resource patterns, compiled once at start
//! into one `RegexSet`; the first matching rule wins (docs/rules.md).

use std::path::Path;

use http::{HeaderMap, Method};
use regex::{Regex, RegexSet};
use serde::Deserialize;

use super::extract::Extractor;
use super::path::percent_decode;
use super::singular::singularize;
use super::{Action, Classification, Classified, Parent, Resource, action_for};
pub use crate::toml_file::RulesError;
use crate::toml_file::line_of;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    resource: Vec<toml::Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pattern: Option<String>,
    regex: Option<String>,
    method: Option<Vec<String>>,
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    id_from: Option<String>,
    action: Option<String>,
    snapshot: Option<String>,
    #[serde(default)]
    ignore: bool,
    id_field: Option<String>,
    id_pattern: Option<String>,
    #[serde(default)]
    ignore_fields: Vec<String>,
    username_from: Option<String>,
    snapshot_format: Option<String>,
    form: Option<String>,
    fields: Option<std::collections::BTreeMap<String, String>>,
}

/// One compiled `[[resource]]`.
#[derive(Debug)]
pub struct Rule {
    /// Line of the rule in its file, for `explain`.
    pub line: usize,
    /// The `pattern` or `regex` as written.
    pub source: String,
    regex: Regex,
    methods: Vec<Method>,
    kind: Option<String>,
    id: Option<String>,
    id_from: Option<Extractor>,
    action: Option<Action>,
    snapshot: Option<String>,
    pub ignore: bool,
    /// JSON pointer of the id in a create's response and in the
    /// resource's state (default `/id`).
    pub id_field: Option<String>,
    /// The shape of an id (`id_pattern`): its first group is the id, so
    /// that `1.json` reads as `1` for an app that reads ids loosely.
    id_pattern: Option<Regex>,
    /// JSON pointers left out of `changes` for this resource.
    pub ignore_fields: Vec<String>,
    /// How its snapshots' pages are read (`snapshot_format`, `form`, `fields`).
    pub page: std::sync::Arc<crate::snapshot::PageRule>,
    pub username_from: Option<Extractor>,
    /// Capture groups that name parents, in path order.
    parent_groups: Vec<String>,
}

/// The compiled rules of one file.
#[derive(Debug)]
pub struct RulesFile {
    rules: Vec<Rule>,
    set: RegexSet,
}

impl Default for RulesFile {
    fn default() -> Self {
        RulesFile { rules: Vec::new(), set: RegexSet::empty() }
    }
}

impl RulesFile {
    /// Loads `resources.toml` from a rules directory; a missing file means no rules.
    pub fn load_dir(dir: &Path) -> Result<RulesFile, RulesError> {
        let file = dir.join("resources.toml");
        match std::fs::read_to_string(&file) {
            Ok(text) => RulesFile::parse(&file, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RulesFile::default()),
            Err(e) => Err(RulesError { file, line: 0, message: format!("cannot read: {e}") }),
        }
    }

    /// Parses and compiles rules; `file` names the source in errors.
    pub fn parse(file: &Path, text: &str) -> Result<RulesFile, RulesError> {
        let err = |line: usize, message: String| RulesError { file: file.to_path_buf(), line, message };
        let raw: RawFile = crate::toml_file::parse(file, text)?;
        let mut rules = Vec::with_capacity(raw.resource.len());
        for spanned in raw.resource {
            let line = line_of(text, spanned.span().start);
            let rule = compile(spanned.into_inner(), line).map_err(|m| err(line, m))?;
            rules.push(rule);
        }
        let set = RegexSet::new(rules.iter().map(|r| r.regex.as_str())).map_err(|e| err(0, e.to_string()))?;
        Ok(RulesFile { rules, set })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule matching the normalised path and method, applied.
    pub(super) fn classify(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Option<Classification> {
        if self.rules.is_empty() {
            return None;
        }
        let (index, rule) = self
            .set
            .matches(path)
            .into_iter()
            .map(|i| (i, &self.rules[i]))
            .find(|(_, r)| r.methods.is_empty() || r.methods.contains(method))?;
        if rule.ignore {
            return Some(Classification::Ignored { rule: Some(index) });
        }
        Some(Classification::Resource(rule.apply(index, method, path, query, headers)))
    }
}

impl Rule {
    /// An id as the rule's `id_pattern` reads it: its first group where the
    /// pattern matches, else the id as it stands.
    pub fn shape_id(&self, id: String) -> String {
        let Some(pattern) = &self.id_pattern else { return id };
        match pattern.captures(&id).and_then(|c| c.get(1)) {
            Some(m) if !m.as_str().is_empty() => m.as_str().to_string(),
            _ => id,
        }
    }

    /// The rule's `action` when it is not a built-in one.
    pub fn custom_action(&self) -> Option<&str> {
        match &self.action {
            Some(Action::Custom(name)) => Some(name),
            _ => None,
        }
    }

    fn apply(&self, index: usize, method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> Classified {
        let caps = self.regex.captures(path).expect("the set said this rule matches");
        let kind = match (&self.kind, caps.name("type")) {
            (Some(k), _) => k.clone(),
            (None, Some(t)) => singularize(&percent_decode(t.as_str()).to_ascii_lowercase()),
            (None, None) => unreachable!("compile requires a type"),
        };
        let mut id = caps.name("id").map(|m| self.shape_id(percent_decode(m.as_str()))).or_else(|| self.id.clone());
        let mut pending_id = None;
        if id.is_none()
            && let Some(from) = &self.id_from
        {
            id = from.from_head(query, headers).map(|i| self.shape_id(i));
            if id.is_none() && from.needs_body() {
                pending_id = Some(from.clone());
            }
        }
        let on_item = id.is_some() || pending_id.is_some();
        let action = self.action.clone().unwrap_or_else(|| action_for(method, on_item));
        let parents = self
            .parent_groups
            .iter()
            .filter_map(|g| caps.name(g).map(|m| Parent { kind: g.clone(), id: percent_decode(m.as_str()) }))
            .collect();
        let snapshot = if action == Action::Login {
            None
        } else if let Some(template) = &self.snapshot {
            Some(fill(template, &caps, id.as_deref()))
        } else if caps.name("id").is_some() || (id.is_some() && self.id_from.is_none()) {
            // The request's own path, the id as the client wrote it.
            Some(path.to_string())
        } else if on_item {
            None
        } else {
            let slash = if path.ends_with('/') { "/" } else { "" };
            Some(format!("{}/{{id}}{slash}", path.trim_end_matches('/')))
        };
        Classified { action, resource: Resource { kind, id, parents }, rule: Some(index), pending_id, snapshot }
    }
}

/// Fills `{name}` placeholders from captures; `{id}` from the id when known.
fn fill(template: &str, caps: &regex::Captures<'_>, id: Option<&str>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        out.push_str(&rest[..open]);
        let name = &rest[open + 1..open + close];
        match (name, id, caps.name(name)) {
            // The id as read (decoded), escaped again for the URL.
            ("id", Some(id), _) => out.push_str(&super::path::encode_segment(id)),
            (_, _, Some(m)) => out.push_str(m.as_str()),
            _ => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

fn compile(raw: RawRule, line: usize) -> Result<Rule, String> {
    let (source, regex, star_groups) = match (&raw.pattern, &raw.regex) {
        (Some(p), None) => {
            let (re, stars) = template_regex(p)?;
            (p.clone(), re, stars)
        }
        (None, Some(r)) => (r.clone(), r.clone(), Vec::new()),
        (Some(_), Some(_)) => return Err("a rule has either `pattern` or `regex`, not both".into()),
        (None, None) => return Err("a rule needs `pattern` or `regex`".into()),
    };
    let regex = Regex::new(&regex).map_err(|e| format!("bad regex `{source}`: {e}"))?;
    let groups: Vec<String> = regex.capture_names().flatten().map(str::to_string).collect();
    if !raw.ignore && raw.kind.is_none() && !groups.iter().any(|g| g == "type") {
        return Err(format!("`{source}` gives no type: add `type = \"…\"` or a {{type}} placeholder"));
    }
    let methods = raw
        .method
        .unwrap_or_default()
        .iter()
        .map(|m| {
            Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| format!("`{m}` is not an HTTP method"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let parse = |s: &Option<String>, key: &str| {
        s.as_deref().map(Extractor::parse).transpose().map_err(|e| format!("{key}: {e}"))
    };
    let id_from = parse(&raw.id_from, "id_from")?;
    let username_from = parse(&raw.username_from, "username_from")?;
    let action = raw.action.as_deref().map(|a| {
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-') {
            Err(format!("action `{a}` must be lowercase letters, `_` or `-`"))
        } else {
            Ok(Action::from_name(a))
        }
    });
    let action = action.transpose()?;
    if action == Some(Action::Login) && username_from.is_none() {
        return Err("a login rule needs `username_from` (form:<field>, json:<pointer>, …)".into());
    }
    for pointer in raw.ignore_fields.iter().chain(raw.id_field.iter()) {
        if !pointer.starts_with('/') {
            return Err(format!("`{pointer}` is not a JSON pointer (it starts with `/`)"));
        }
    }
    let id_pattern = raw
        .id_pattern
        .as_deref()
        .map(|p| {
            let re = Regex::new(p).map_err(|e| format!("id_pattern `{p}`: {e}"))?;
            if re.captures_len() < 2 {
                return Err(format!("id_pattern `{p}` needs a group: its first group is the id, e.g. '^(\\d+)'"));
            }
            Ok(re)
        })
        .transpose()?;
    let asked = match raw.snapshot_format.as_deref() {
        None => crate::snapshot::Asked::Auto,
        Some(name) => crate::snapshot::Asked::parse(name)
            .ok_or_else(|| format!("snapshot_format `{name}` is not auto, json, form, html or xml"))?,
    };
    let form = raw
        .form
        .as_deref()
        .map(|css| match scraper::Selector::parse(css) {
            Ok(selector) => Ok((css.to_string(), selector)),
            Err(e) => Err(format!("form: `{css}` is not a CSS selector: {e}")),
        })
        .transpose()?;
    let fields = raw
        .fields
        .iter()
        .flatten()
        .map(|(name, spec)| crate::snapshot::fields::Field::parse(name, spec))
        .collect::<Result<Vec<_>, _>>()?;
    let page = std::sync::Arc::new(crate::snapshot::PageRule { asked, form, fields });
    let parent_groups = groups.into_iter().filter(|g| g != "type" && g != "id" && !star_groups.contains(g)).collect();
    Ok(Rule {
        line,
        source,
        regex,
        methods,
        kind: raw.kind,
        id: raw.id,
        id_from,
        action,
        snapshot: raw.snapshot,
        ignore: raw.ignore,
        id_field: raw.id_field,
        id_pattern,
        ignore_fields: raw.ignore_fields,
        page,
        username_from,
        parent_groups,
    })
}

/// Turns `/api/v1/projects/{project}/members/{id}/` into an anchored regex.
/// `{name}` matches one segment, `{name*}` the rest of the path; a final `{id}`
/// is optional so the collection URL (a create) matches too; the trailing
/// slash is optional. Returns the regex and the names of `*` groups.
fn template_regex(template: &str) -> Result<(String, Vec<String>), String> {
    if !template.starts_with('/') {
        return Err(format!("pattern `{template}` must start with `/`"));
    }
    let body = template.trim_end_matches('/');
    let segments: Vec<&str> = body.split('/').skip(1).collect();
    let mut re = String::from("^");
    let mut stars = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, star) = match name.strip_suffix('*') {
                Some(n) => (n, true),
                None => (name, false),
            };
            if name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || name.as_bytes()[0].is_ascii_digit()
            {
                return Err(format!("pattern `{template}`: `{{{name}}}` is not a valid placeholder name"));
            }
            if star {
                stars.push(name.to_string());
                re.push_str(&format!("(?:/(?P<{name}>.*))?"));
            } else if last && name == "id" {
                re.push_str("(?:/(?P<id>[^/]+))?");
            } else {
                re.push_str(&format!("/(?P<{name}>[^/]+)"));
            }
        } else if seg.contains('{') || seg.contains('}') {
            return Err(format!("pattern `{template}`: a placeholder must be a whole segment"));
        } else {
            re.push('/');
            re.push_str(&regex::escape(seg));
        }
    }
    re.push_str("/?$");
    Ok((re, stars))
}

//! Resource inference (docs/rules.md): method + path → action and resource
//! (type, id, parents), from configured patterns first and the default
//! heuristic otherwise. Pure: no I/O, built once at start.

mod extract;
mod heuristic;
mod method;
mod path;
mod rules;
mod singular;

use std::fmt;

use http::{HeaderMap, Method};
use serde::Serialize;

pub use extract::Extractor;
pub use method::{
    OVERRIDE_HEADERS, OverrideError, OverridePolicy, changes_state, effective_method, form_method_override,
};
pub use path::{NormalPath, encode_segment, percent_decode, percent_decode_bytes};
pub use rules::{Rule, RulesError, RulesFile};
pub use singular::singularize;

/// What a request does to its resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    Login,
    /// A named action such as `activate` (`POST /users/5/activate/`).
    Custom(String),
}

impl Action {
    /// The name used in entries and configurations.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Login => "login",
            Action::Custom(name) => name,
        }
    }

    /// Parses an action name; anything not built in is a custom action.
    pub fn from_name(name: &str) -> Action {
        match name {
            "create" => Action::Create,
            "read" => Action::Read,
            "update" => Action::Update,
            "delete" => Action::Delete,
            "login" => Action::Login,
            other => Action::Custom(other.to_string()),
        }
    }

    /// Mutations and custom actions change state; reads and logins do not.
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Action::Read | Action::Login)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

pub use crate::entry::Parent;

/// The resource a request acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    /// Absent for a collection (a create learns it from the response) or when
    /// it still has to be read from the body (`id_from = "form:…"`).
    pub id: Option<String>,
    pub parents: Vec<Parent>,
}

/// The result of classifying one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// OPTIONS, or a path a rule marks `ignore = true`: never audited.
    Ignored {
        rule: Option<usize>,
    },
    Resource(Classified),
}

/// A request mapped to its action and resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub action: Action,
    pub resource: Resource,
    /// Index of the `[[resource]]` that matched; `None` for the heuristic.
    pub rule: Option<usize>,
    /// Where the id still has to be read from, when the body holds it.
    pub pending_id: Option<Extractor>,
    /// Path (and query) whose GET returns the resource's state; `{id}` stands
    /// for an id not known yet. `None` for logins.
    pub snapshot: Option<String>,
}

/// Classifies requests with the compiled rules, then the heuristic.
#[derive(Debug, Default)]
pub struct Classifier {
    rules: RulesFile,
}

impl Classifier {
    pub fn new(rules: RulesFile) -> Self {
        Classifier { rules }
    }

    /// The configured rules, for per-rule settings (`id_field`, `ignore_fields`).
    pub fn rules(&self) -> &[Rule] {
        self.rules.rules()
    }

    /// Action names the rules declare beyond the built-in ones.
    pub fn custom_actions(&self) -> impl Iterator<Item = &str> {
        self.rules().iter().filter_map(Rule::custom_action)
    }

    /// Classifies a request by its effective method and target.
    pub fn classify(&self, method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> Classification {
        if method == Method::OPTIONS || method == Method::TRACE || method == Method::CONNECT {
            return Classification::Ignored { rule: None };
        }
        let normal = NormalPath::parse(path);
        let joined = normal.to_path();
        if let Some(found) = self.rules.classify(method, &joined, query, headers) {
            return found;
        }
        heuristic::classify(method, &normal)
    }
}

/// The action a method implies on an item (`on_item`) or a collection.
pub(crate) fn action_for(method: &Method, on_item: bool) -> Action {
    match *method {
        Method::GET | Method::HEAD => Action::Read,
        Method::POST if on_item => Action::Update,
        Method::POST => Action::Create,
        Method::PUT | Method::PATCH => Action::Update,
        Method::DELETE => Action::Delete,
        ref other => Action::Custom(other.as_str().to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests;

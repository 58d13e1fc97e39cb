//! The `form` reading of an HTML page (docs/server-rendered-apps.md): the state
//! is an object of one form's controls keyed by their names, valued as the
//! browser holds them (a checked box's value, the selected options, a text
//! area's text), leaving out what holds no state (passwords, files,
//! buttons, disabled controls, CSRF-style volatile fields).

use scraper::{ElementRef, Html, Selector};
use serde_json::{Map, Value};

/// Which form of a page is the state.
#[derive(Debug, Clone, Copy)]
pub struct FormChoice<'a> {
    /// The rule's `form`: the first element it matches (a form, or any
    /// element whose controls are the state).
    pub selector: Option<&'a Selector>,
    /// The page's own path, which relative `action`s resolve against.
    pub page: &'a str,
    /// The mutation's path: the form posting to it is the state.
    pub action: &'a str,
}

/// Controls that hold no state.
const STATELESS: [&str; 6] = ["password", "file", "submit", "button", "reset", "image"];

/// The state of the chosen form of `doc`: the rule's `form`, else the first
/// form whose `action` resolves to the mutation's path, else the first
/// form with `method="post"`, else every control of the page.
pub fn read(doc: &Html, choice: &FormChoice<'_>, volatile: &[String]) -> Value {
    let container = chosen(doc, choice);
    let controls = selector("input, select, textarea");
    // Each name with its values in document order; a radio group is one
    // value, set by its checked radio.
    let mut named: Vec<(String, Vec<Value>)> = Vec::new();
    let mut radios: Vec<(String, usize)> = Vec::new();
    for control in doc.select(&controls) {
        if !belongs(control, container) || disabled(control) {
            continue;
        }
        let Some(name) = control.value().attr("name").filter(|n| !n.is_empty()) else { continue };
        if volatile.iter().any(|v| v == name) {
            continue;
        }
        let slot = |named: &mut Vec<(String, Vec<Value>)>| match named.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                named.push((name.to_string(), Vec::new()));
                named.len() - 1
            }
        };
        let value = match control.value().name() {
            "select" => select_value(control),
            "textarea" => Value::String(control.text().collect()),
            _ => {
                let kind = control.value().attr("type").unwrap_or("text").to_ascii_lowercase();
                if STATELESS.contains(&kind.as_str()) {
                    continue;
                }
                let checked = control.value().attr("checked").is_some();
                let submitted = || Value::String(control.value().attr("value").unwrap_or("on").to_string());
                match kind.as_str() {
                    "checkbox" if checked => submitted(),
                    "checkbox" => Value::Null,
                    "radio" => {
                        let (i, at) = match radios.iter().find(|(n, _)| n == name) {
                            Some((_, at)) => (slot(&mut named), *at),
                            None => {
                                let i = slot(&mut named);
                                named[i].1.push(Value::Null);
                                let at = named[i].1.len() - 1;
                                radios.push((name.to_string(), at));
                                (i, at)
                            }
                        };
                        if checked {
                            named[i].1[at] = submitted();
                        }
                        continue;
                    }
                    _ => Value::String(control.value().attr("value").unwrap_or_default().to_string()),
                }
            }
        };
        let i = slot(&mut named);
        named[i].1.push(value);
    }
    let object: Map<String, Value> = named
        .into_iter()
        .map(|(name, mut values)| {
            // A name on several controls: an array, in document order.
            let value = if values.len() == 1 { values.remove(0) } else { Value::Array(values) };
            (name, value)
        })
        .collect();
    Value::Object(object)
}

/// The element whose controls are the state; `None`: the whole page.
fn chosen<'a>(doc: &'a Html, choice: &FormChoice<'_>) -> Option<ElementRef<'a>> {
    if let Some(pick) = choice.selector {
        return doc.select(pick).next();
    }
    let forms: Vec<ElementRef<'a>> = doc.select(&selector("form")).collect();
    let posts_to_action = forms.iter().find(|f| {
        let action = f.value().attr("action").unwrap_or("");
        same_path(&resolve(choice.page, action), choice.action)
    });
    let post =
        || forms.iter().find(|f| f.value().attr("method").is_some_and(|m| m.trim().eq_ignore_ascii_case("post")));
    posts_to_action.or_else(post).copied()
}

/// Whether `control` is one of `container`'s: its form owner is the
/// container (a `form="id"` attribute names it, else the nearest form
/// around it), or for a container that is no form, it lies inside it.
fn belongs(control: ElementRef<'_>, container: Option<ElementRef<'_>>) -> bool {
    let Some(container) = container else { return true };
    if container.value().name() != "form" {
        return control.ancestors().any(|a| a.id() == container.id());
    }
    match control.value().attr("form") {
        Some(owner) => container.value().attr("id") == Some(owner),
        None => control
            .ancestors()
            .filter_map(ElementRef::wrap)
            .find(|a| a.value().name() == "form")
            .is_some_and(|form| form.id() == container.id()),
    }
}

/// A control that is disabled, itself or by a disabled `fieldset` around
/// it (but for what lies in that fieldset's first `legend`).
fn disabled(control: ElementRef<'_>) -> bool {
    if control.value().attr("disabled").is_some() {
        return true;
    }
    let mut child = control;
    for ancestor in control.ancestors().filter_map(ElementRef::wrap) {
        if ancestor.value().name() == "fieldset" && ancestor.value().attr("disabled").is_some() {
            let first_legend = ancestor.children().filter_map(ElementRef::wrap).find(|c| c.value().name() == "legend");
            let in_legend = first_legend.is_some_and(|legend| child.id() == legend.id());
            if !in_legend {
                return true;
            }
        }
        child = ancestor;
    }
    false
}

/// A `select`'s value: its selected options' values (an array for
/// `multiple`), else for a single select its first option that is not
/// disabled (as a browser shows it), `null` with no option.
fn select_value(select: ElementRef<'_>) -> Value {
    let options: Vec<ElementRef<'_>> = select.select(&selector("option")).collect();
    let mut selected = options.iter().filter(|o| o.value().attr("selected").is_some());
    if select.value().attr("multiple").is_some() {
        return Value::Array(selected.map(|o| option_value(*o)).collect());
    }
    // Several marked: the last one, as each marking unmarks the others.
    match selected.next_back().or_else(|| options.iter().find(|o| o.value().attr("disabled").is_none())) {
        Some(option) => option_value(*option),
        None => Value::Null,
    }
}

/// An option's `value`, else its text with its whitespace collapsed.
fn option_value(option: ElementRef<'_>) -> Value {
    match option.value().attr("value") {
        Some(v) => Value::String(v.to_string()),
        None => Value::String(collapse(&option.text().collect::<String>())),
    }
}

/// Text with runs of ASCII whitespace made one space, none at the ends.
pub(super) fn collapse(text: &str) -> String {
    text.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// A selector known to parse.
fn selector(css: &str) -> Selector {
    Selector::parse(css).expect("a fixed selector parses")
}

/// The path an `action` (or a `Location`) names, seen from the page at `page`: empty, the
/// page itself; absolute or rooted, its path; relative, merged with the
/// page's directory (RFC 3986 5.2), dot segments removed. Query and
/// fragment dropped.
pub(crate) fn resolve(page: &str, action: &str) -> String {
    let action = action.trim();
    let strip = |p: &str| p.split(['?', '#']).next().unwrap_or_default().to_string();
    let page = strip(page);
    if action.is_empty() || action.starts_with('?') || action.starts_with('#') {
        return page;
    }
    let path = if let Some((scheme, rest)) = action.split_once("://")
        && !scheme.is_empty()
        && !scheme.contains('/')
    {
        format!("/{}", rest.split_once('/').map_or("", |(_, p)| p))
    } else if let Some(rest) = action.strip_prefix("//") {
        format!("/{}", rest.split_once('/').map_or("", |(_, p)| p))
    } else if action.starts_with('/') {
        action.to_string()
    } else {
        let dir = page.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{action}")
    };
    without_dots(&strip(&path))
}

/// A path with its `.` and `..` segments resolved.
fn without_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// Two paths naming the same resource, a trailing slash apart or not.
fn same_path(a: &str, b: &str) -> bool {
    let trim = |p: &str| {
        let t = p.trim_end_matches('/');
        if t.is_empty() { "/".to_string() } else { t.to_string() }
    };
    trim(a) == trim(b)
}

#[cfg(test)]
mod tests;

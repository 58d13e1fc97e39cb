//! The `html` reading of a page (docs/server-rendered-apps.md): the rule's
//! `fields`, each a name and a CSS selector (`"selector@attr"` reads an
//! attribute), give an object of the matched elements' text (whitespace
//! collapsed): `null` when nothing matches, an array when several do.

use scraper::{Html, Selector};
use serde_json::{Map, Value};

use super::form::collapse;

/// One of a rule's `fields`, compiled.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    /// As the rule wrote it.
    pub spec: String,
    pub selector: Selector,
    /// `selector@attr`: the attribute's value instead of the text.
    pub attr: Option<String>,
}

impl Field {
    /// Compiles `name = "selector[@attr]"`; the error names what is wrong.
    pub fn parse(name: &str, spec: &str) -> Result<Field, String> {
        // The last `@` past the selector's own attribute brackets.
        let (css, attr) = match spec.rfind('@') {
            Some(at) if !spec[at..].contains(']') && !spec[at + 1..].is_empty() => {
                (&spec[..at], Some(spec[at + 1..].trim().to_string()))
            }
            _ => (spec, None),
        };
        let selector =
            Selector::parse(css.trim()).map_err(|e| format!("fields.{name}: `{css}` is not a CSS selector: {e}"))?;
        Ok(Field { name: name.to_string(), spec: spec.to_string(), selector, attr })
    }
}

/// The state `fields` read from `doc`.
pub fn read(doc: &Html, fields: &[Field]) -> Value {
    let mut state = Map::new();
    for field in fields {
        let mut found: Vec<Value> = doc
            .select(&field.selector)
            .filter_map(|element| match &field.attr {
                Some(attr) => element.value().attr(attr).map(|v| Value::String(v.to_string())),
                None => Some(Value::String(collapse(&element.text().collect::<String>()))),
            })
            .collect();
        let value = match found.len() {
            0 => Value::Null,
            1 => found.remove(0),
            _ => Value::Array(found),
        };
        state.insert(field.name.clone(), value);
    }
    Value::Object(state)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn named_selectors_give_text_an_attribute_null_or_an_array() {
        let doc = Html::parse_document(
            r#"<h1 class="name">  Ann
                 Lee </h1><a class="mail" href="mailto:ann@x.io">write</a>
               <ul><li class="tag">a</li><li class="tag">b <i>bold</i></li></ul>
               <img id="photo" src="/p/3.png">"#,
        );
        let fields = [
            Field::parse("name", "h1.name").unwrap(),
            Field::parse("email", "a.mail@href").unwrap(),
            Field::parse("tags", "li.tag").unwrap(),
            Field::parse("missing", "p.none").unwrap(),
            Field::parse("photo", "img#photo @ src").unwrap(),
            Field::parse("alt", "img#photo@alt").unwrap(),
            Field::parse("by_attribute", r#"a[href^="mailto:"]"#).unwrap(),
        ];
        assert_eq!(
            read(&doc, &fields),
            json!({
                "name": "Ann Lee",
                "email": "mailto:ann@x.io",
                "tags": ["a", "b bold"],
                "missing": null,
                "photo": "/p/3.png",
                "alt": null,
                "by_attribute": "write",
            })
        );
    }

    #[test]
    fn a_bad_selector_names_its_field() {
        let err = Field::parse("name", "h1[").unwrap_err();
        assert!(err.starts_with("fields.name: `h1[` is not a CSS selector"), "{err}");
        assert!(Field::parse("x", "div@").is_err(), "an @ with no attribute after it");
    }
}

//! How a snapshot's answer becomes a state (docs/server-rendered-apps.md): the
//! rule's `snapshot_format`, or with `auto` the answer's media type, picks
//! JSON, an HTML page's form (`form`) or named elements (`html`), or XML.

use scraper::{Html, Selector};
use serde_json::Value;

pub use crate::entry::SnapshotFormat;

use super::fields::Field;
use super::form::FormChoice;

/// A rule's `snapshot_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Asked {
    /// By the answer's media type.
    #[default]
    Auto,
    Is(SnapshotFormat),
}

impl Asked {
    /// The rule key's value; `None` for a name it does not take.
    pub fn parse(name: &str) -> Option<Asked> {
        Some(match name {
            "auto" => Asked::Auto,
            "json" => Asked::Is(SnapshotFormat::Json),
            "form" => Asked::Is(SnapshotFormat::Form),
            "html" => Asked::Is(SnapshotFormat::Html),
            "xml" => Asked::Is(SnapshotFormat::Xml),
            _ => return None,
        })
    }

    /// The `Accept` a snapshot GET sends: JSON first when the rule does not
    /// say (an app that can answer JSON is read best that way).
    pub fn accept(self) -> &'static str {
        match self {
            Asked::Auto => "application/json, text/html;q=0.9, application/xhtml+xml;q=0.9, application/xml;q=0.8",
            Asked::Is(SnapshotFormat::Json) => "application/json",
            Asked::Is(SnapshotFormat::Form | SnapshotFormat::Html) => "text/html, application/xhtml+xml;q=0.9",
            Asked::Is(SnapshotFormat::Xml) => "application/xml, text/xml;q=0.9",
        }
    }
}

/// What a rule says of reading its resource's pages.
#[derive(Debug, Clone, Default)]
pub struct PageRule {
    pub asked: Asked,
    /// `form`: which element's controls are the state, and the rule's text.
    pub form: Option<(String, Selector)>,
    /// `fields`, for the `html` reading.
    pub fields: Vec<Field>,
}

impl PageRule {
    /// How a snapshot is read under this rule, for `auditgate explain`;
    /// `action` is the path a form must post to.
    pub fn describe(&self, action: &str) -> String {
        let form = || match &self.form {
            Some((css, _)) => format!("the form `{css}`"),
            None => format!("the form posting to {action}, else the first POST form"),
        };
        let fields = || {
            let named: Vec<String> = self.fields.iter().map(|f| format!("{} = `{}`", f.name, f.spec)).collect();
            named.join(", ")
        };
        match self.asked {
            Asked::Auto if self.fields.is_empty() => {
                format!("auto (JSON as JSON, HTML by {}, XML by its elements)", form())
            }
            Asked::Auto => format!("auto (JSON as JSON, HTML by fields {}, XML by its elements)", fields()),
            Asked::Is(SnapshotFormat::Json) => "json".to_string(),
            Asked::Is(SnapshotFormat::Form) => format!("form ({})", form()),
            Asked::Is(SnapshotFormat::Html) if self.fields.is_empty() => format!("html ({})", form()),
            Asked::Is(SnapshotFormat::Html) => format!("html (fields {})", fields()),
            Asked::Is(SnapshotFormat::Xml) => "xml (by its elements)".to_string(),
        }
    }
}

/// Everything a snapshot's reading needs beyond the answer.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub rule: Option<&'a PageRule>,
    /// `[snapshot] volatile_fields`.
    pub volatile: &'a [String],
    /// The mutation's path: the form posting to it is the state.
    pub action: &'a str,
}

impl Reading<'_> {
    /// JSON only: who-am-I answers, and requests no rule reads otherwise.
    pub const JSON: Reading<'static> = Reading { rule: None, volatile: &[], action: "" };

    pub fn asked(&self) -> Asked {
        self.rule.map(|r| r.asked).unwrap_or_default()
    }
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    NotJson,
    Xml(String),
}

/// The state of an answer `bytes` of media type `content_type` for the
/// page at `page`, and how it was read.
pub fn read(
    bytes: &[u8],
    content_type: Option<&str>,
    page: &str,
    reading: &Reading<'_>,
) -> Result<(Value, SnapshotFormat), Unreadable> {
    let fields = reading.rule.map_or(&[][..], |r| &r.fields[..]);
    let format = match reading.asked() {
        Asked::Is(format) => format,
        Asked::Auto => match content_type.map(media_type) {
            Some(t) if t == "text/html" || t == "application/xhtml+xml" => {
                if fields.is_empty() {
                    SnapshotFormat::Form
                } else {
                    SnapshotFormat::Html
                }
            }
            Some(t) if t == "application/xml" || t == "text/xml" || t.ends_with("+xml") => SnapshotFormat::Xml,
            _ => SnapshotFormat::Json,
        },
    };
    let state = match format {
        SnapshotFormat::Json => serde_json::from_slice(bytes).map_err(|_| Unreadable::NotJson)?,
        SnapshotFormat::Xml => {
            let text = decoded(bytes, content_type, xml_declared);
            super::xml::read_text(&text).map_err(|e| Unreadable::Xml(e.to_string()))?
        }
        SnapshotFormat::Form | SnapshotFormat::Html => {
            let doc = Html::parse_document(&decoded(bytes, content_type, meta_declared));
            if format == SnapshotFormat::Html && !fields.is_empty() {
                super::fields::read(&doc, fields)
            } else {
                let selector = reading.rule.and_then(|r| r.form.as_ref()).map(|(_, s)| s);
                let choice = FormChoice { selector, page, action: reading.action };
                super::form::read(&doc, &choice, reading.volatile)
            }
        }
    };
    Ok((state, format))
}

/// `bytes` as text in their charset: a byte order mark's, else the
/// `Content-Type`'s `charset`, else the one the document itself declares
/// (`declared`), else UTF-8; what does not decode becomes U+FFFD.
fn decoded<'a>(
    bytes: &'a [u8],
    content_type: Option<&str>,
    declared: fn(&[u8]) -> Option<&'static encoding_rs::Encoding>,
) -> std::borrow::Cow<'a, str> {
    let labelled = content_type.and_then(charset);
    let encoding = labelled.or_else(|| declared(bytes)).unwrap_or(encoding_rs::UTF_8);
    // `decode` lets a byte order mark override the label.
    encoding.decode(bytes).0
}

/// The encoding a `Content-Type`'s `charset` parameter names.
pub fn charset(content_type: &str) -> Option<&'static encoding_rs::Encoding> {
    let mut params = content_type.split(';').skip(1).filter_map(|p| p.split_once('='));
    let (_, label) = params.find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))?;
    encoding_rs::Encoding::for_label(label.trim().trim_matches('"').as_bytes())
}

/// The charset an HTML page's `<meta>` names within its first 1,024 bytes
/// (`<meta charset="…">` or `content="text/html; charset=…"`).
fn meta_declared(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    head.match_indices("<meta").find_map(|(at, _)| {
        let tag = &head[at..head[at..].find('>').map_or(head.len(), |end| at + end)];
        let value = tag.split("charset=").nth(1)?;
        let label: String = value
            .trim_start_matches(['"', '\''])
            .chars()
            .take_while(|c| !matches!(c, '"' | '\'' | ';' | ' ' | '/' | '>'))
            .collect();
        encoding_rs::Encoding::for_label(label.as_bytes())
    })
}

/// The `encoding` an XML declaration names.
fn xml_declared(bytes: &[u8]) -> Option<&'static encoding_rs::Encoding> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    let declaration = &head[head.find("<?xml")?..];
    let declaration = &declaration[..declaration.find("?>")?];
    let value = declaration.split("encoding=").nth(1)?;
    let quote = value.chars().next()?;
    let label = value[1..].split(quote).next()?;
    encoding_rs::Encoding::for_label(label.as_bytes())
}

/// A `Content-Type`'s media type, lower case, without parameters.
pub fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn auto(bytes: &str, content_type: Option<&str>) -> Result<(Value, SnapshotFormat), Unreadable> {
        let volatile = ["csrf".to_string()];
        let reading = Reading { rule: None, volatile: &volatile, action: "/c/1/" };
        read(bytes.as_bytes(), content_type, "/c/1/", &reading)
    }

    #[test]
    fn auto_reads_an_answer_by_its_media_type() {
        let page = r#"<form method="post"><input name="csrf" value="t"><input name="a" value="1"></form>"#;
        assert_eq!(auto(page, Some("text/html; charset=utf-8")), Ok((json!({"a": "1"}), SnapshotFormat::Form)));
        assert_eq!(auto(page, Some("application/xhtml+xml")).unwrap().1, SnapshotFormat::Form);
        assert_eq!(auto("<a><b>1</b></a>", Some("application/xml")), Ok((json!({"b": "1"}), SnapshotFormat::Xml)));
        assert_eq!(auto("<a/>", Some("TEXT/XML")).unwrap().1, SnapshotFormat::Xml);
        assert_eq!(auto("<a/>", Some("application/atom+xml")).unwrap().1, SnapshotFormat::Xml);
        assert_eq!(auto(r#"{"a": 1}"#, Some("application/json")), Ok((json!({"a": 1}), SnapshotFormat::Json)));
        assert_eq!(auto(r#"{"a": 1}"#, Some("application/vnd.api+json")).unwrap().1, SnapshotFormat::Json);
        assert_eq!(auto(r#"{"a": 1}"#, None).unwrap().1, SnapshotFormat::Json, "no type: JSON, as always");
        assert_eq!(auto(r#"{"a": 1}"#, Some("text/plain")).unwrap().1, SnapshotFormat::Json);
        assert_eq!(auto("<html>", Some("text/plain")), Err(Unreadable::NotJson));
        assert!(matches!(auto("<a>", Some("text/xml")), Err(Unreadable::Xml(_))));
    }

    #[test]
    fn a_rule_says_how_to_read_whatever_the_type_says() {
        let fields = vec![Field::parse("title", "h1").unwrap()];
        let rule = |asked, fields: Vec<Field>| PageRule { asked, form: None, fields };
        let read_as = |rule: &PageRule, body: &str, t: &str| {
            read(body.as_bytes(), Some(t), "/", &Reading { rule: Some(rule), volatile: &[], action: "/" })
        };
        let page = r#"<h1> Ann </h1><form method="post"><input name="a" value="1"></form>"#;
        let html = rule(Asked::Is(SnapshotFormat::Html), fields.clone());
        assert_eq!(read_as(&html, page, "text/plain"), Ok((json!({"title": "Ann"}), SnapshotFormat::Html)));
        let bare = rule(Asked::Is(SnapshotFormat::Html), Vec::new());
        assert_eq!(read_as(&bare, page, "text/html"), Ok((json!({"a": "1"}), SnapshotFormat::Html)), "form values");
        let auto_fields = rule(Asked::Auto, fields);
        assert_eq!(read_as(&auto_fields, page, "text/html").unwrap().1, SnapshotFormat::Html);
        let json = rule(Asked::Is(SnapshotFormat::Json), Vec::new());
        assert_eq!(read_as(&json, page, "text/html"), Err(Unreadable::NotJson));
        let form = rule(Asked::Is(SnapshotFormat::Form), Vec::new());
        assert_eq!(read_as(&form, page, "application/json").unwrap().1, SnapshotFormat::Form);
        let xml = rule(Asked::Is(SnapshotFormat::Xml), Vec::new());
        assert_eq!(read_as(&xml, "<a>x</a>", "text/plain"), Ok((json!("x"), SnapshotFormat::Xml)));
    }

    #[test]
    fn a_rules_reading_is_described_for_explain() {
        let title = vec![Field::parse("title", "h1").unwrap(), Field::parse("link", "a@href").unwrap()];
        let form = Some(("#edit".to_string(), Selector::parse("#edit").unwrap()));
        let described = |asked, form: Option<(String, Selector)>, fields: Vec<Field>| {
            PageRule { asked, form, fields }.describe("/c/1/")
        };
        let is = Asked::Is;
        assert_eq!(
            described(Asked::Auto, None, vec![]),
            "auto (JSON as JSON, HTML by the form posting to /c/1/, else the first POST form, XML by its elements)"
        );
        assert_eq!(
            described(Asked::Auto, None, title.clone()),
            "auto (JSON as JSON, HTML by fields title = `h1`, link = `a@href`, XML by its elements)"
        );
        assert_eq!(described(is(SnapshotFormat::Json), None, vec![]), "json");
        assert_eq!(described(is(SnapshotFormat::Form), form.clone(), vec![]), "form (the form `#edit`)");
        assert_eq!(described(is(SnapshotFormat::Html), form, vec![]), "html (the form `#edit`)");
        assert_eq!(described(is(SnapshotFormat::Html), None, title), "html (fields title = `h1`, link = `a@href`)");
        assert_eq!(described(is(SnapshotFormat::Xml), None, vec![]), "xml (by its elements)");
    }

    #[test]
    fn a_page_is_read_in_the_charset_it_is_sent_or_declared_in() {
        let latin = |text: &str| encoding_rs::WINDOWS_1252.encode(text).0.into_owned();
        let form = |head: &str| {
            latin(&format!(r#"<html><head>{head}</head><form method=post><input name=n value="Café €"></form>"#))
        };
        let reading = Reading { rule: None, volatile: &[], action: "/" };
        let value = |bytes: &[u8], t: &str| read(bytes, Some(t), "/", &reading).unwrap().0["n"].clone();
        let cafe = json!("Café €");
        assert_eq!(value(&form(""), "text/html; charset=ISO-8859-1"), cafe, "the header's charset");
        assert_eq!(value(&form(""), "text/html;charset=\"windows-1252\""), cafe);
        assert_eq!(value(&form(r#"<meta charset="iso-8859-1">"#), "text/html"), cafe, "<meta charset>");
        let http_equiv = r#"<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=latin1">"#;
        assert_eq!(value(&form(http_equiv), "text/html"), cafe);
        assert_eq!(value(&form(r#"<meta name="x">"#), "text/html"), json!("Caf\u{FFFD} \u{FFFD}"), "UTF-8 by default");
        let utf8 = r#"<form method=post><input name=n value="Café €"></form>"#.as_bytes();
        assert_eq!(value(utf8, "text/html"), cafe);
        assert_eq!(
            value(&[b"\xEF\xBB\xBF".as_slice(), utf8].concat(), "text/html; charset=iso-8859-1"),
            cafe,
            "a BOM wins"
        );
        let xml = |decl: &str| latin(&format!("{decl}<c><n>Café €</n></c>"));
        let xml_value = |bytes: &[u8], t: &str| read(bytes, Some(t), "/", &reading).unwrap().0["n"].clone();
        assert_eq!(xml_value(&xml(r#"<?xml version="1.0" encoding="ISO-8859-1"?>"#), "application/xml"), cafe);
        assert_eq!(xml_value(&xml("<?xml version='1.0' encoding='windows-1252'?>"), "text/xml"), cafe);
        assert_eq!(xml_value(&xml(""), "application/xml; charset=latin1"), cafe);
        assert_eq!(xml_value("<c><n>Café €</n></c>".as_bytes(), "application/xml"), cafe);
    }

    #[test]
    fn the_rule_keys_values_and_what_each_asks_for() {
        for (name, asked) in [
            ("auto", Asked::Auto),
            ("json", Asked::Is(SnapshotFormat::Json)),
            ("form", Asked::Is(SnapshotFormat::Form)),
            ("html", Asked::Is(SnapshotFormat::Html)),
            ("xml", Asked::Is(SnapshotFormat::Xml)),
        ] {
            assert_eq!(Asked::parse(name), Some(asked));
        }
        assert_eq!(Asked::parse("yaml"), None);
        assert!(Asked::Auto.accept().starts_with("application/json"));
        assert!(Asked::Is(SnapshotFormat::Form).accept().starts_with("text/html"));
        assert!(Asked::Is(SnapshotFormat::Xml).accept().starts_with("application/xml"));
        assert_eq!(Asked::Is(SnapshotFormat::Json).accept(), "application/json");
    }
}

//! The `xml` reading of a snapshot (docs/server-rendered-apps.md): the root
//! element as JSON: an element is an object of its children by name (a name
//! repeated: an array), its attributes as `@name`, its text as `#text` when
//! it also has children or attributes; otherwise the element is its text.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde_json::{Map, Value};

/// Why an XML snapshot could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("not well-formed XML: {0}")]
    Malformed(String),
    #[error("no root element")]
    Empty,
    #[error("nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
}

/// Elements nested deeper than this are refused (a page of nested tags
/// would otherwise cost a stack frame each).
const MAX_DEPTH: usize = 256;

/// An element being read: its attributes and children so far, its text.
struct Open {
    name: String,
    members: Vec<(String, Value)>,
    text: String,
}

impl Open {
    fn start(e: &BytesStart<'_>) -> Result<Open, XmlError> {
        let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
        let name = e.name().as_ref().to_string();
        let mut members = Vec::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|e| bad(&e))?;
            let value = attr.normalized_value(XmlVersion::Implicit1_0).map_err(|e| bad(&e))?;
            members.push((format!("@{}", attr.key.as_ref()), Value::String(value.into_owned())));
        }
        Ok(Open { name, members, text: String::new() })
    }

    /// The element's value once closed.
    fn close(self) -> Value {
        let text = self.text.trim();
        if self.members.is_empty() {
            return Value::String(text.to_string());
        }
        // Each name with its values in document order.
        let mut named: Vec<(String, Vec<Value>)> = Vec::new();
        for (name, value) in self.members {
            match named.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => named.push((name, vec![value])),
            }
        }
        let mut object: Map<String, Value> = named
            .into_iter()
            .map(|(name, mut values)| {
                let value = if values.len() == 1 { values.remove(0) } else { Value::Array(values) };
                (name, value)
            })
            .collect();
        if !text.is_empty() {
            object.insert("#text".into(), Value::String(text.to_string()));
        }
        Value::Object(object)
    }
}

/// The root element of `bytes` (UTF-8) as JSON.
pub fn read(bytes: &[u8]) -> Result<Value, XmlError> {
    read_text(std::str::from_utf8(bytes).map_err(|e| XmlError::Malformed(e.to_string()))?)
}

/// The root element of a decoded document as JSON (an `encoding` its
/// declaration names was already applied).
pub fn read_text(text: &str) -> Result<Value, XmlError> {
    let bad = |e: &dyn std::fmt::Display| XmlError::Malformed(e.to_string());
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Open> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let open = Open::start(&e)?;
                stack.push(open);
            }
            Event::Empty(e) => {
                let open = Open::start(&e)?;
                let value = open.close_as_child();
                match stack.last_mut() {
                    Some(parent) => parent.add(value),
                    None => return Ok(value.1),
                }
            }
            Event::End(_) => {
                let open = stack.pop().ok_or_else(|| XmlError::Malformed("an end tag without its start".into()))?;
                let value = open.close_as_child();
                match stack.last_mut() {
                    Some(parent) => parent.add(value),
                    None => return Ok(value.1),
                }
            }
            Event::Text(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(open) = stack.last_mut() {
                    let name = r.into_inner();
                    open.text.push_str(&entity(&name).ok_or_else(|| bad(&format!("unknown entity &{name};")))?);
                }
            }
            Event::CData(c) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&c.into_inner());
                }
            }
            Event::Eof => {
                return Err(if stack.is_empty() {
                    XmlError::Empty
                } else {
                    XmlError::Malformed("unclosed element".into())
                });
            }
            _ => {}
        }
    }
}

impl Open {
    /// The element as its parent holds it: its name and value.
    fn close_as_child(self) -> (String, Value) {
        let name = self.name.clone();
        (name, self.close())
    }

    fn add(&mut self, (name, value): (String, Value)) {
        self.members.push((name, value));
    }
}

/// The text an entity reference stands for: XML's five and character
/// references (`&#38;`, `&#x26;`).
fn entity(name: &str) -> Option<String> {
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => name.strip_prefix('#')?.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some(c.to_string())
}

#[cfg(test)]
mod tests;

use serde_json::json;

use super::*;

#[test]
fn an_element_is_its_children_by_name_its_attributes_and_its_text() {
    let xml = br#"<?xml version="1.0"?>
<!-- a customer -->
<customer id="3" active="true">
  <name>Ann &amp; Bob</name>
  <email/>
  <phone kind="home">+33 1</phone>
  <phone kind="work">+33 2</phone>
  <tag>a</tag><tag>b</tag><tag>c</tag>
  <address><city>Paris</city><zip>75001</zip></address>
  <note><![CDATA[<not> markup]]></note>
  <code>&#65;&#x42;</code>
</customer>"#;
    assert_eq!(
        read(xml).unwrap(),
        json!({
            "@id": "3",
            "@active": "true",
            "name": "Ann & Bob",
            "email": "",
            "phone": [{"@kind": "home", "#text": "+33 1"}, {"@kind": "work", "#text": "+33 2"}],
            "tag": ["a", "b", "c"],
            "address": {"city": "Paris", "zip": "75001"},
            "note": "<not> markup",
            "code": "AB",
        })
    );
}

#[test]
fn text_beside_children_is_its_own_member() {
    assert_eq!(read(b"<p>Hello <b>there</b> you</p>").unwrap(), json!({"b": "there", "#text": "Hello  you"}));
    assert_eq!(read(b"<p a='1'/>").unwrap(), json!({"@a": "1"}));
    assert_eq!(read(b"<p>  x  </p>").unwrap(), json!("x"));
}

#[test]
fn what_is_not_xml_says_so() {
    assert!(matches!(read(b"<a><b></a>"), Err(XmlError::Malformed(_))));
    assert!(matches!(read(b"<a>"), Err(XmlError::Malformed(_))));
    assert_eq!(read(b""), Err(XmlError::Empty));
    assert_eq!(read(b"<!-- only -->"), Err(XmlError::Empty));
    assert!(matches!(read(b"<a>&nope;</a>"), Err(XmlError::Malformed(_))));
    let deep = "<a>".repeat(MAX_DEPTH + 1);
    assert_eq!(read(deep.as_bytes()), Err(XmlError::TooDeep));
}

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
fn the_five_entities_and_character_references_are_their_characters() {
    let xml = br#"<a q="&quot;&apos;">&amp;&lt;&gt;&quot;&apos; &#65;&#x42;&#X43;</a>"#;
    assert_eq!(read(xml).unwrap(), json!({"@q": "\"'", "#text": "&<>\"' ABC"}));
    for bad in ["&nbsp;", "&#xZZ;", "&#1114112;"] {
        assert!(matches!(read(format!("<a>{bad}</a>").as_bytes()), Err(XmlError::Malformed(_))), "{bad}");
    }
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

proptest::proptest! {
    #[test]
    fn any_tree_of_texts_reads_back_by_name(
        fields in proptest::collection::btree_map("[a-z][a-z0-9_]{0,7}", "[a-zA-Z0-9<>&\"' ]{1,20}", 1..8)
    ) {
        let escaped = |t: &str| t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let body: String = fields.iter().map(|(k, v)| format!("<{k}>{}</{k}>", escaped(v))).collect();
        let expected: serde_json::Map<String, Value> =
            fields.iter().map(|(k, v)| (k.clone(), json!(v.trim()))).collect();
        proptest::prop_assert_eq!(read(format!("<root>{body}</root>").as_bytes()).unwrap(), Value::Object(expected));
    }

    #[test]
    fn any_bytes_read_or_say_why_without_a_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let _ = read(&bytes);
    }
}

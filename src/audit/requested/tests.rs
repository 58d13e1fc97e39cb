use serde_json::json;

use super::*;

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

fn volatile() -> Vec<String> {
    vec!["csrfmiddlewaretoken".to_string(), "_token".to_string()]
}

fn read(body: &str, content_type: Option<&str>) -> Option<Requested> {
    Requested::read(body.as_bytes(), content_type, &volatile())
}

#[test]
fn an_urlencoded_form_is_an_object_of_its_fields_repeated_names_an_array() {
    let r = read("name=Ann+Lee&tag=a&tag=b&tag=c&csrfmiddlewaretoken=t&note=50%25&empty=&bare", FORM).unwrap();
    assert!(r.form);
    assert_eq!(
        r.fields,
        json!({"name": "Ann Lee", "tag": ["a", "b", "c"], "note": "50%", "empty": "", "bare": ""}),
        "volatile names left out, a repeated name in order"
    );
    let r = read("a=1", Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8")).unwrap();
    assert_eq!(r.fields, json!({"a": "1"}), "the media type is matched without case and parameters");
}

#[test]
fn a_forms_text_is_utf8_else_its_charset_else_what_a_latin1_page_sends() {
    assert_eq!(read("n=Caf%C3%A9+%E2%82%AC", FORM).unwrap().fields, json!({"n": "Café €"}));
    assert_eq!(
        read("n=Caf%E9+%80&%E9=1", FORM).unwrap().fields,
        json!({"n": "Café €", "é": "1"}),
        "not UTF-8: windows-1252"
    );
    let latin1 = Some("application/x-www-form-urlencoded; charset=ISO-8859-1");
    assert_eq!(read("n=Caf%C3%A9", latin1).unwrap().fields, json!({"n": "CafÃ©"}), "the charset named wins");
    let koi8 = Some("application/x-www-form-urlencoded;charset=\"koi8-r\"");
    assert_eq!(read("n=%C1", koi8).unwrap().fields, json!({"n": "а"}));
    assert_eq!(read("n=%ZZ%4", FORM).unwrap().fields, json!({"n": "%ZZ%4"}), "a broken escape as it stands");
}

#[test]
fn json_is_read_as_it_stands_whatever_the_type_and_other_bodies_are_not_read() {
    let r = read(r#"{"a": [1], "_token": "kept"}"#, Some("application/json")).unwrap();
    assert_eq!(r, Requested { fields: json!({"a": [1], "_token": "kept"}), form: false });
    assert_eq!(read(r#"{"a": 1}"#, None).unwrap().fields, json!({"a": 1}));
    assert_eq!(read("a=1", None), None, "a form needs its type to be compared");
    assert_eq!(read("just words", Some("text/plain")), None);
    assert_eq!(read("--x\r\n", Some("multipart/form-data")), None, "a multipart type without a boundary");
}

fn multipart_body() -> String {
    [
        "--XyZ",
        "Content-Disposition: form-data; name=\"name\"",
        "",
        "Ann",
        "--XyZ",
        "Content-Disposition: form-data; name=\"_token\"",
        "",
        "secret-ish",
        "--XyZ",
        "Content-Disposition: form-data; name=\"avatar\"; filename=\"me.png\"",
        "Content-Type: image/png",
        "",
        "abc",
        "--XyZ",
        "Content-Disposition: form-data; name=\"tag\"",
        "",
        "a",
        "--XyZ",
        "Content-Disposition: form-data; name=\"tag\"",
        "",
        "b",
        "--XyZ--",
        "",
    ]
    .join("\r\n")
}

#[test]
fn a_multipart_form_gives_its_fields_and_files_by_name_size_and_digest_never_their_bytes() {
    let r = read(&multipart_body(), Some("multipart/form-data; boundary=XyZ")).unwrap();
    assert!(r.form);
    assert_eq!(
        r.fields,
        json!({
            "name": "Ann",
            "avatar": {
                "filename": "me.png",
                "bytes": 3,
                "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            },
            "tag": ["a", "b"],
        })
    );
    assert_eq!(read(&multipart_body(), Some("multipart/form-data; boundary=other")), None, "a broken multipart body");
    assert_eq!(read("--XyZ\r\nno headers", Some("multipart/form-data; boundary=XyZ")), None);
}

#[test]
fn a_forms_values_are_compared_as_text() {
    let r = read("email=ANN%40X.IO&age=42&price=1.50&active=on&role=admin&tags=a&notes=&missing=1", FORM).unwrap();
    let after = json!({"email": "ann@x.io", "age": 42, "price": 1.5, "active": true, "role": "user", "tags": ["a"], "notes": null});
    let listed: Vec<_> = r.unapplied(&after).unwrap().into_iter().map(|u| (u.path, u.requested, u.applied)).collect();
    assert_eq!(
        listed,
        [
            ("/email".to_string(), json!("ANN@X.IO"), json!("ann@x.io")),
            ("/role".to_string(), json!("admin"), json!("user")),
        ]
    );
    let json = read(r#"{"age": "42"}"#, Some("application/json")).unwrap();
    assert_eq!(json.unapplied(&json!({"age": 42})).unwrap().len(), 1, "JSON keeps its types");
}

#[test]
fn request_bodies_are_kept_as_json_form_fields_or_text() {
    let kept = |body: &[u8], content_type: Option<&str>, max: usize| kept(body, content_type, &volatile(), max);
    assert_eq!(kept(br#"{"a": [1]}"#, None, 100), json!({"a": [1]}));
    assert_eq!(
        kept(b"name=Ann+Lee&password=p%40ss&_token=t", None, 100),
        json!({"name": "Ann Lee", "password": "p@ss"}),
        "an untyped body that looks like a form"
    );
    assert_eq!(kept(b"a=1&a=2", FORM, 100), json!({"a": ["1", "2"]}));
    assert_eq!(kept(b"a=1", Some("text/plain"), 100), json!("a=1"), "typed text is text");
    assert_eq!(kept(b"just words", None, 100), json!("just words"));
    assert_eq!(kept(b"plaintext", None, 100), json!("plaintext"));
    assert_eq!(kept(b"a=b c", None, 100), json!("a=b c"));
    assert_eq!(kept(b"", None, 100), json!(""));
    // Exactly the bound is kept.
    assert_eq!(kept(b"a=1", None, 3), json!({"a": "1"}));
    assert_eq!(kept(&[0xff, 0xfe], None, 100)["omitted"], "not text");
    assert_eq!(kept(&[b'x'; 50], None, 10)["bytes"], 50);
    let multipart = multipart_body();
    let typed = Some("multipart/form-data; boundary=XyZ");
    assert_eq!(kept(multipart.as_bytes(), typed, 1000)["avatar"]["bytes"], 3);
}

proptest::proptest! {
    #[test]
    fn any_urlencoded_form_reads_back_as_its_fields(
        pairs in proptest::collection::vec(("[a-z\\[\\]]{1,4}", "[ -~é\n]{0,10}"), 0..10)
    ) {
        let encode = |s: &str| -> String {
            s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
        };
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let read = Requested::read(body.join("&").as_bytes(), FORM, &[]).unwrap();
        let mut expected = serde_json::Map::new();
        for (k, v) in &pairs {
            let all: Vec<Value> = pairs.iter().filter(|(n, _)| n == k).map(|(_, v)| json!(v)).collect();
            expected.insert(k.clone(), if all.len() == 1 { json!(v) } else { Value::Array(all) });
        }
        proptest::prop_assert_eq!(read.fields, Value::Object(expected));
    }

    #[test]
    fn any_multipart_body_reads_or_is_refused_without_a_panic(body in "[-a-zA-Z\r\n:;=\" ]{0,300}") {
        let _ = Requested::read(body.as_bytes(), Some("multipart/form-data; boundary=a"), &[]);
    }
}

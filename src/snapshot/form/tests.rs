use serde_json::json;

use super::*;

/// The state of `html`'s form chosen for a mutation of `action` on the
/// page `/customers/1/edit/`, CSRF fields left out.
fn state(html: &str, action: &str) -> Value {
    let doc = Html::parse_document(html);
    let choice = FormChoice { selector: None, page: "/customers/1/edit/", action };
    read(&doc, &choice, &["csrfmiddlewaretoken".to_string()])
}

fn edit_page(controls: &str) -> String {
    format!(r#"<!doctype html><title>Edit</title><form method="post" action="">{controls}</form>"#)
}

#[test]
fn each_kind_of_control_gives_what_the_browser_holds() {
    let page = edit_page(
        r#"<input name="csrfmiddlewaretoken" type="hidden" value="t0k3n">
        <input name="name" value="Ann &amp; Bob">
        <input name="code" type="hidden" value="C-1">
        <input name="email" type="email">
        <input name="password" type="password" value="secret">
        <input name="photo" type="file">
        <input name="go" type="submit" value="Save">
        <input name="pic" type="image" src="x.png">
        <button name="act" value="save">Save</button>
        <input name="vip" type="checkbox" checked>
        <input name="news" type="checkbox" value="yes">
        <input name="tier" type="radio" value="gold">
        <input name="tier" type="radio" value="silver" checked>
        <input name="size" type="radio" value="s">
        <input name="pay" type="radio" value="card" checked><input name="pay" type="radio" value="cash">
        <select name="country"><option value="fr">France</option><option value="de" selected>Germany</option></select>
        <select name="lang"><option>  English
          (UK) </option><option>French</option></select>
        <select name="tags" multiple><option value="a" selected>A</option><option value="b">B</option><option selected>C c</option></select>
        <select name="empty"></select>
        <textarea name="notes">
first line
second &lt;line&gt;</textarea>
        <input name="frozen" value="x" disabled>
        <fieldset disabled><input name="locked" value="y"><legend><input name="in-legend" value="z"></legend></fieldset>
        <fieldset disabled><legend><input name="first-legend" value="w"></legend></fieldset>
        <fieldset><input name="open" value="o"></fieldset>
        <input value="nameless">
        <input name="" value="empty name">"#,
    );
    assert_eq!(
        state(&page, "/customers/1/edit/"),
        json!({
            "name": "Ann & Bob",
            "code": "C-1",
            "email": "",
            "vip": "on",
            "news": null,
            "tier": "silver",
            "size": null,
            "pay": "card",
            "country": "de",
            "lang": "English (UK)",
            "tags": ["a", "C c"],
            "empty": null,
            "notes": "first line\nsecond <line>",
            "in-legend": "z",
            "first-legend": "w",
            "open": "o",
        })
    );
}

#[test]
fn a_name_on_several_controls_is_an_array_in_document_order() {
    let page = edit_page(
        r#"<input name="phone" value="1"><input name="phone" value="2">
        <input name="day" type="checkbox" value="mon" checked><input name="day" type="checkbox" value="tue">
        <select name="pick" multiple><option selected>x</option></select><select name="pick" multiple></select>
        <input name="one" type="radio" value="a"><input name="other" value="o"><input name="one" type="radio" value="b" checked>"#,
    );
    assert_eq!(
        state(&page, "/customers/1/edit/"),
        json!({
            "phone": ["1", "2"],
            "day": ["mon", null],
            "pick": [["x"], []],
            "one": "b",
            "other": "o",
        })
    );
}

#[test]
fn names_are_keys_as_they_stand() {
    let page = edit_page(r#"<input name="customer[email]" value="a@x.io"><input name="a/b~c" value="1">"#);
    assert_eq!(state(&page, "/x"), json!({"customer[email]": "a@x.io", "a/b~c": "1"}));
}

#[test]
fn the_form_posting_to_the_mutations_path_is_chosen_else_the_first_post_form_else_the_page() {
    let page = r#"<form action="/search" method="get"><input name="q" value="ann"></form>
        <form action="/newsletter" method="POST"><input name="subscribe" value="yes"></form>
        <form action="../../2/edit/" method="post"><input name="name" value="Two"></form>
        <form action="http://app.example/customers/1/edit/?next=list#top" method="post"><input name="name" value="One"></form>
        <input name="outside" value="o">"#;
    assert_eq!(state(page, "/customers/1/edit/"), json!({"name": "One"}));
    assert_eq!(state(page, "/customers/2/edit"), json!({"name": "Two"}));
    assert_eq!(state(page, "/customers/3/delete/"), json!({"subscribe": "yes"}), "the first POST form");
    let no_post = r#"<form action="/search"><input name="q" value="ann"></form><input name="outside" value="o">"#;
    assert_eq!(state(no_post, "/x"), json!({"q": "ann", "outside": "o"}), "every control of the page");
}

#[test]
fn a_rules_selector_picks_the_form_or_any_element_holding_the_controls() {
    let page = r#"<form id="main" method="post"><input name="a" value="1"></form>
        <div class="card"><input name="b" value="2"><form method="post"><input name="c" value="3"></form></div>
        <input name="d" value="4" form="main">"#;
    let doc = Html::parse_document(page);
    let read_with = |css: &str| {
        let pick = Selector::parse(css).unwrap();
        read(&doc, &FormChoice { selector: Some(&pick), page: "/", action: "/" }, &[])
    };
    assert_eq!(read_with("#main"), json!({"a": "1", "d": "4"}), "a control outside names its form");
    assert_eq!(read_with("div.card"), json!({"b": "2", "c": "3"}));
    assert_eq!(read_with("#nothing"), json!({"a": "1", "b": "2", "c": "3", "d": "4"}), "no match: the page");
}

#[test]
fn broken_and_nested_markup_is_read_as_a_browser_reads_it() {
    // A form inside a form is ignored by the parser: its controls belong to
    // the outer one, and its end tag ends the outer one, so what follows is
    // in no form (a browser would not send it). Unclosed tags and stray end
    // tags are mended.
    let page = r#"<form method="post" action=""><p><input name="a" value="1">
        <form action="/inner" method="post"><input name="b" value="2"></form>
        <input name="c" value="3">"#;
    assert_eq!(state(page, "/customers/1/edit/"), json!({"a": "1", "b": "2"}));
    let unclosed = r#"<form method="post" action=""><input name="c" value="3" <!-- odd -->
        <select name="s"><option value="1">one<option value="2" selected>two</select>
        </div></span><textarea name="t">keep &amp; this"#;
    assert_eq!(state(unclosed, "/customers/1/edit/"), json!({"c": "3", "s": "2", "t": "keep & this"}));
}

#[test]
fn a_control_owned_by_another_form_is_not_this_ones() {
    let page = r#"<form id="one" method="post" action=""><input name="a" value="1"><input name="x" value="9" form="two"></form>
        <form id="two" method="post" action="/other"></form>"#;
    assert_eq!(state(page, "/customers/1/edit/"), json!({"a": "1"}));
}

#[test]
fn actions_resolve_as_a_browser_resolves_them() {
    for (page, action, path) in [
        ("/customers/1/edit/", "", "/customers/1/edit/"),
        ("/customers/1/edit/?tab=2", "?x=1", "/customers/1/edit/"),
        // A page without a trailing slash: the page itself, not its directory.
        ("/customers/1/edit", "", "/customers/1/edit"),
        ("/customers/1/edit", "?x=1", "/customers/1/edit"),
        ("/customers/1/edit", "#top", "/customers/1/edit"),
        ("/customers/1/edit", "  ", "/customers/1/edit"),
        ("/customers/1/edit/", "save", "/customers/1/edit/save"),
        ("/customers/1/edit", "save", "/customers/1/save"),
        ("/customers/1/edit/", "../../2/", "/customers/2/"),
        ("/a/b", "./c/.", "/a/c/"),
        ("/a/b", "../../..", "/"),
        ("/a/", "https://host.example:8443/x/y?z", "/x/y"),
        ("/a/", "//host.example/x", "/x"),
        ("/a/", "https://host.example", "/"),
        ("/a/", "/r#frag", "/r"),
    ] {
        assert_eq!(resolve(page, action), path, "{page} + {action}");
    }
    assert!(same_path("/a/b/", "/a/b"));
    assert!(same_path("/", ""));
    assert!(!same_path("/a/b", "/a/c"));
}

#[test]
fn whitespace_collapses_to_single_spaces() {
    assert_eq!(collapse("  a \t\n b  c "), "a b c");
    assert_eq!(collapse(""), "");
}

/// One control of a generated form, and what reading it must give.
#[derive(Debug, Clone)]
enum Control {
    Text(String),
    Area(String),
    Check(bool, String),
    Select(Vec<String>, usize),
}

fn escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn control() -> impl proptest::strategy::Strategy<Value = Control> {
    use proptest::prelude::*;
    let line = "[ -~éü€]{0,12}";
    prop_oneof![
        line.prop_map(Control::Text),
        "[ -~é\n]{0,16}".prop_map(Control::Area),
        (any::<bool>(), "[a-z0-9&<\"]{1,6}").prop_map(|(on, v)| Control::Check(on, v)),
        (proptest::collection::vec(line, 1..4), any::<prop::sample::Index>()).prop_map(|(options, i)| {
            let at = i.index(options.len());
            Control::Select(options, at)
        }),
    ]
}

impl Control {
    fn html(&self, name: &str) -> String {
        match self {
            Control::Text(v) => format!(r#"<input name="{name}" value="{}">"#, escaped(v)),
            // The newline after `<textarea>` is not part of its text.
            Control::Area(v) => format!("<textarea name=\"{name}\">\n{}</textarea>", escaped(v)),
            Control::Check(on, v) => {
                format!(
                    r#"<input type="checkbox" name="{name}" value="{}"{}>"#,
                    escaped(v),
                    if *on { " checked" } else { "" }
                )
            }
            Control::Select(options, chosen) => {
                let options: String = options
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        format!(
                            r#"<option value="{}"{}>x</option>"#,
                            escaped(o),
                            if i == *chosen { " selected" } else { "" }
                        )
                    })
                    .collect();
                format!(r#"<select name="{name}">{options}</select>"#)
            }
        }
    }

    fn value(&self) -> Value {
        match self {
            Control::Text(v) | Control::Area(v) => json!(v),
            Control::Check(true, v) => json!(v),
            Control::Check(false, _) => Value::Null,
            Control::Select(options, chosen) => json!(options[*chosen]),
        }
    }
}

proptest::proptest! {
    #[test]
    fn any_form_reads_back_as_the_values_it_was_written_with(controls in proptest::collection::vec(control(), 0..8)) {
        let html: String = controls.iter().enumerate().map(|(i, c)| c.html(&format!("f{i}"))).collect();
        let expected: serde_json::Map<String, Value> =
            controls.iter().enumerate().map(|(i, c)| (format!("f{i}"), c.value())).collect();
        proptest::prop_assert_eq!(state(&edit_page(&html), ""), Value::Object(expected));
    }

    #[test]
    fn any_markup_reads_to_an_object_without_a_panic(markup in "[<>/=\"a-z &;#\n-]{0,200}") {
        let page = format!("<form method=post>{markup}");
        proptest::prop_assert!(state(&page, "/x/").is_object());
        proptest::prop_assert!(state(&markup, "/x/").is_object());
    }
}

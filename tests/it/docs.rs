//! The documents are true to the repository: every link leads to a file
//! and heading that exist, nothing cites a document the repository does
//! not hold, every key the configuration and the rules accept is in the
//! reference, and the README stays a page a newcomer reads in minutes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown pages a reader is sent to.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> =
        ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md", "certs/README.md"].iter().map(|p| root().join(p)).collect();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

/// The heading anchors of a Markdown page, as GitHub makes them.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        out.insert(slug);
    }
    out
}

/// `[text](target)` links of a page, outside code.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// Where a link leads, or why it leads nowhere.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let path = if file.is_empty() { page.to_path_buf() } else { page.parent().unwrap().join(file) };
    if !path.exists() {
        return Some(format!("{target}: no such file"));
    }
    if let Some(anchor) = anchor {
        let text = std::fs::read_to_string(&path).unwrap();
        if !anchors(&text).contains(anchor) {
            return Some(format!("{target}: no such heading"));
        }
    }
    None
}

#[test]
fn every_link_in_the_documents_leads_to_a_file_and_heading_that_exist() {
    let mut dead = Vec::new();
    let mut followed = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in links(&text) {
            followed += 1;
            if let Some(why) = broken(&page, &target) {
                dead.push(format!("{}: {why}", page.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(dead.is_empty(), "dead links: {dead:#?}");
    assert!(followed > 40, "the README and docs link their pages ({followed} links)");
}

#[test]
fn the_link_check_finds_a_missing_file_and_a_missing_heading() {
    let readme = root().join("README.md");
    let nowhere = format!("docs/{}.md", "nowhere");
    assert_eq!(broken(&readme, &nowhere), Some(format!("{nowhere}: no such file")));
    assert_eq!(broken(&readme, "docs/rules.md#nowhere"), Some("docs/rules.md#nowhere: no such heading".into()));
    assert_eq!(broken(&readme, "docs/rules.md#audit-configurations"), None);
    assert_eq!(broken(&readme, "https://example.org/x.md"), None);
    assert_eq!(anchors("## `[[resource]]`\n```\n# not a heading\n```\n"), BTreeSet::from(["resource".to_string()]));
}

/// Every text file of the repository a person reads or builds from.
fn repository_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            // Migrations are applied by checksum: a stored database refuses
            // one whose text changed, so their words stay as first written.
            let skipped = name.starts_with('.') && name != ".ci"
                || ["target", "node_modules", "mutants.out", "__pycache__", "migrations"].contains(&name.as_str());
            if !skipped {
                repository_files(&path, out);
            }
        } else if [".rs", ".md", ".sh", ".toml", ".sql", ".py", ".php", ".js", ".html", ".txt", "Dockerfile", "run"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            out.push(path);
        }
    }
}

#[test]
fn nothing_in_the_repository_cites_a_document_it_does_not_hold() {
    let mut files = Vec::new();
    repository_files(&root(), &mut files);
    // Names of documents that live outside the repository, spelled so that
    // this file does not cite them itself.
    let outside =
        [["SP", "EC"].concat(), ["HARDEN", "ING"].concat(), ["PERFORM", "ANCE"].concat(), ["CRA", "TES"].concat()];
    let mut cited = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let shown = file.strip_prefix(root()).unwrap().display().to_string();
        for (n, line) in text.lines().enumerate() {
            for word in line.split(|c: char| !(c.is_alphanumeric() || "._/-".contains(c))) {
                let word = word.trim_end_matches('.');
                if outside.iter().any(|o| word == o || word.starts_with(&format!("{o}."))) {
                    cited.push(format!("{shown}:{}: {word}", n + 1));
                }
                let is_doc = word.ends_with(".md") && word.len() > 3 && !word.starts_with("//");
                let held = root().join(word).exists() || file.parent().unwrap().join(word).exists();
                if is_doc && !held {
                    cited.push(format!("{shown}:{}: {word}", n + 1));
                }
            }
        }
    }
    assert!(files.len() > 100, "the walk finds the repository ({} files)", files.len());
    assert!(cited.is_empty(), "cited but not in the repository: {cited:#?}");
}

/// The keys a table accepts, from the error an unknown key gets (serde
/// names every field it expected).
fn accepted(err: &str) -> Vec<String> {
    // serde says "expected `a`", "expected `a` or `b`" or "expected one of `a`, `b`, …".
    let list = err.split("expected ").nth(1).unwrap_or_else(|| panic!("no key list in {err}"));
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim().trim_matches(|c: char| c == '`' || c.is_whitespace()).to_string())
        .collect()
}

fn config_error(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auditgate.toml");
    std::fs::write(&file, toml).unwrap();
    auditgate::config::load(Some(&file), std::iter::empty(), &Vec::new()).unwrap_err().to_string()
}

/// The text of the section whose heading is `heading`, up to the next
/// heading of the same or a higher level.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading}"));
    let level = heading.split(' ').next().unwrap().len();
    let body = &text[start + heading.len() + 2..];
    let end = body
        .match_indices("\n#")
        .find(|(at, _)| body[at + 1..].chars().take_while(|c| *c == '#').count() <= level)
        .map_or(body.len(), |(at, _)| at);
    &body[..end]
}

fn undocumented(page: &str, heading: &str, keys: &[String]) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(page)).unwrap();
    let section = section(&text, heading);
    // A key is a row of its table's section, or a table with a section of its own.
    let documented = |k: &String| {
        section.contains(&format!("| `{k}` |"))
            || text.contains(&format!("\n### `[{k}]`\n"))
            || text.contains(&format!("\n### `[[{k}]]`\n"))
    };
    keys.iter().filter(|k| !documented(k)).map(|k| format!("{heading}: {k}")).collect()
}

#[test]
fn every_key_the_configuration_accepts_is_in_the_reference() {
    let tables: [(&str, &str); 9] = [
        ("### Top level", "__probe = 1\n"),
        ("### `[actor]`", "[actor]\n__probe = 1\n"),
        ("### `[snapshot]`", "[snapshot]\n__probe = 1\n"),
        ("### `[limits]`", "[limits]\n__probe = 1\n"),
        ("### `[recorder]`", "[recorder]\n__probe = 1\n"),
        ("### `[query]`", "[query]\n__probe = 1\n"),
        ("### `[query] tokens`", "[query]\ntokens = [{ __probe = 1 }]\n"),
        ("### `[tls]`", "[tls]\n__probe = 1\n"),
        ("### `[[sink]]`", "[[sink]]\n__probe = 1\n"),
    ];
    let mut missing = Vec::new();
    let mut seen = 0;
    for (heading, probe) in tables {
        let keys = accepted(&config_error(probe));
        seen += keys.len();
        missing.extend(undocumented("docs/configuration.md", heading, &keys));
    }
    assert!(seen > 60, "the probes found the keys ({seen})");
    assert!(missing.is_empty(), "accepted but not in docs/configuration.md: {missing:#?}");
}

#[test]
fn every_key_a_resource_rule_accepts_is_in_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resources.toml"), "[[resource]]\n__probe = 1\n").unwrap();
    let err = auditgate::resource::RulesFile::load_dir(dir.path()).unwrap_err().to_string();
    let keys = accepted(&err);
    assert!(keys.contains(&"id_pattern".to_string()), "{keys:?}");
    let missing = undocumented("docs/rules.md", "### `[[resource]]`", &keys);
    assert!(missing.is_empty(), "accepted but not in docs/rules.md: {missing:#?}");
}

#[test]
fn the_key_check_finds_a_key_missing_from_its_own_table() {
    let keys = accepted(&config_error("[actor]\n__probe = 1\n"));
    assert!(keys.contains(&"whoami_field".to_string()), "{keys:?}");
    // `listen` is documented, but in another table than `[actor]`.
    let missing = undocumented("docs/configuration.md", "### `[actor]`", &["listen".to_string()]);
    assert_eq!(missing, vec!["### `[actor]`: listen".to_string()]);
    assert!(
        !section(&std::fs::read_to_string(root().join("docs/configuration.md")).unwrap(), "### `[actor]`")
            .contains("max_streams")
    );
}

#[test]
fn the_readme_is_a_page_a_newcomer_reads_in_minutes() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines < 250, "README.md has {lines} lines; the reference belongs in docs/");
    for command in ["cargo run --release -- demo", "scripts/test.sh", "serve --upstream"] {
        assert!(readme.contains(command), "README.md shows `{command}`");
    }
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(ci.contains("scripts/test.sh"), ".ci/run calls the README's test command");
}

#[tokio::test]
async fn every_field_of_an_entry_and_every_route_of_the_query_port_is_in_the_reference() {
    let app = crate::helpers::spawn_app().await;
    let res = crate::helpers::get(&app.query("/api/v1/openapi.json")).await;
    let doc: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    let trail = std::fs::read_to_string(root().join("docs/trail.md")).unwrap();
    let fields: Vec<&String> = doc["components"]["schemas"]["Entry"]["properties"]
        .as_object()
        .expect("the document describes the entry")
        .keys()
        .collect();
    assert!(fields.len() > 25, "{fields:?}");
    let missing: Vec<_> = fields.iter().filter(|f| !trail.contains(&format!("`{f}`"))).collect();
    assert!(missing.is_empty(), "entry fields not in docs/trail.md: {missing:?}");
    let api = std::fs::read_to_string(root().join("docs/query-api.md")).unwrap();
    let documented = documented_routes(&api);
    let mut routes = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            if ["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                routes.push((method.to_uppercase(), any_parameter(path)));
            }
        }
    }
    assert!(routes.len() > 15, "{routes:?}");
    let missing: Vec<_> = routes.iter().filter(|r| !documented.contains(*r)).collect();
    assert!(missing.is_empty(), "routes not in docs/query-api.md: {missing:?}");
}

/// A path with each `{parameter}` written `{}`.
fn any_parameter(path: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in path.chars() {
        match c {
            '{' => {
                inside = true;
                out.push_str("{}");
            }
            '}' => inside = false,
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

/// The routes a page names as `` `GET /path` `` or `` `GET/PUT /path` ``
/// (the path up to its query).
fn documented_routes(text: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for span in text.split('`').skip(1).step_by(2) {
        let Some((methods, path)) = span.split_once(' ') else { continue };
        if !path.starts_with('/')
            || !methods.split('/').all(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_uppercase()))
        {
            continue;
        }
        let path = path.split(['?', ' ']).next().unwrap();
        for method in methods.split('/') {
            out.insert((method.to_string(), any_parameter(path)));
        }
    }
    out
}

#[test]
fn documented_routes_are_read_with_every_method_they_name() {
    let routes = documented_routes("| `GET/PUT /api/v1/x/{id}` | y |\n`POST /api/v1/x?a=1` and `not /a route`");
    let expected = [("GET", "/api/v1/x/{}"), ("PUT", "/api/v1/x/{}"), ("POST", "/api/v1/x")]
        .map(|(m, p)| (m.to_string(), p.to_string()));
    assert_eq!(routes, BTreeSet::from(expected));
}

#[test]
fn every_page_of_the_manual_is_linked_from_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let linked: BTreeSet<String> =
        links(&readme).into_iter().map(|l| l.split('#').next().unwrap().to_string()).collect();
    let mut unlinked = Vec::new();
    for page in pages().iter().filter(|p| p.starts_with(root().join("docs"))) {
        let relative = page.strip_prefix(root()).unwrap().display().to_string();
        if !linked.contains(&relative) {
            unlinked.push(relative);
        }
    }
    assert!(unlinked.is_empty(), "pages of docs/ the README does not link: {unlinked:?}");
}

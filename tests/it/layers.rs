//! Floors without circles: no module of the crate uses one that uses it
//! back, directly or through others. Read from the source: every
//! `crate::<module>` path (and `use crate::{…}` group) outside tests,
//! between the crate's top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The crate's top-level modules: `src/x.rs` and `src/x/`.
fn modules() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if (path.is_dir() || path.extension().is_some_and(|e| e == "rs")) && name != "lib" && name != "main" {
            out.insert(name);
        }
    }
    out
}

/// The text of a source file without its `#[cfg(test)] mod tests` and
/// without comments.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// The modules `code` names by `crate::<module>`.
fn used(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let names: Vec<String> = match rest.strip_prefix('{') {
            // `use crate::{a, b::c}`: the first name of each part.
            Some(group) => {
                group[..group.find('}').unwrap_or(group.len())].split(',').map(|part| ident(part.trim())).collect()
            }
            None => vec![ident(rest)],
        };
        out.extend(names.into_iter().filter(|n| modules.contains(n)));
    }
    out
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Which top-level module uses which.
fn graph() -> Graph {
    let modules = modules();
    let mut graph = Graph::new();
    let mut all = Vec::new();
    files(&src(), &mut all);
    for file in all {
        let relative = file.strip_prefix(src()).unwrap();
        let top = relative.components().next().unwrap().as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        let is_test = relative.file_name().is_some_and(|n| n == "tests.rs")
            || relative.components().any(|c| c.as_os_str() == "tests");
        if !modules.contains(&top) || is_test {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let mut uses = used(&code(&text), &modules);
        uses.remove(&top);
        graph.entry(top).or_default().extend(uses);
    }
    graph
}

/// The circles of `graph`: each a path `a -> b -> … -> a` found from its
/// smallest module.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in graph.keys() {
        // Depth first from `start`, through modules after it only, so each
        // circle is reported once, from its smallest module.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    let mut circle = path.clone();
                    circle.push(start.clone());
                    found.push(circle);
                } else if next > start && seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    found
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let graph = graph();
    assert!(graph.len() > 25, "the walk finds the crate's modules: {:?}", graph.keys());
    assert!(graph["api"].contains("store") && graph["store"].contains("entry"), "the walk reads the uses");
    let found = circles(&graph);
    let shown: Vec<String> = found.iter().map(|c| c.join(" -> ")).collect();
    assert!(found.is_empty(), "modules in a circle: {shown:#?}");
}

#[test]
fn a_circle_through_several_modules_is_found() {
    let text = "use crate::{store, entry::Sealed};\nuse std::x; // crate::api\nfn f() { crate::hold::covering(); }";
    let modules: BTreeSet<String> = ["store", "entry", "hold", "api"].map(String::from).into();
    assert_eq!(used(&code(text), &modules), ["store", "entry", "hold"].map(String::from).into());
    let graph: Graph =
        [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")].iter().fold(Graph::new(), |mut g, (from, to)| {
            g.entry(from.to_string()).or_default().insert(to.to_string());
            g
        });
    assert_eq!(circles(&graph), vec![["a", "b", "c", "a"].map(String::from).to_vec()]);
    let mut floors = graph.clone();
    floors.get_mut("c").unwrap().remove("a");
    assert!(circles(&floors).is_empty());
}

#[test]
fn no_code_outside_the_store_names_a_backend() {
    let mut all = Vec::new();
    files(&src(), &mut all);
    let mut named = Vec::new();
    for file in all.iter().filter(|f| !f.starts_with(src().join("store"))) {
        let text = code(&std::fs::read_to_string(file).unwrap());
        for backend in ["Store::Sqlite", "Store::Postgres", "SqliteStore", "PgStore"] {
            if text.contains(backend) {
                named.push(format!("{}: {backend}", file.strip_prefix(src()).unwrap().display()));
            }
        }
    }
    assert!(all.len() > 100, "the walk finds the sources");
    assert!(named.is_empty(), "backends named outside src/store: {named:#?}");
}

//! The server's modules import each other without a cycle: handlers
//! (`api`, `kimina`, `remote`) use `submit`, `completion`, `body`, `auth`,
//! `error`; only `routes` names the handlers. Read from the source: every
//! `crate::module` path in a module is an edge.
//!
//! The crate root (`lib.rs`) is left out: it declares every module and holds
//! `AppState`, which every module uses and which holds `auth`'s rate limiter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the modules it names through `crate::`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "rs") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            files.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let modules: BTreeSet<String> = files
        .keys()
        .filter(|name| *name != "lib")
        .cloned()
        .collect();
    let mut graph = BTreeMap::new();
    for (name, text) in &files {
        if name == "lib" {
            continue;
        }
        let code: String = text
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap()]
                    .split(',')
                    .map(|part| part.trim().split("::").next().unwrap().trim())
                    .collect(),
                None => vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap()],
            };
            for used in names {
                if modules.contains(used) && used != name {
                    named.insert(used.to_string());
                }
            }
        }
        graph.insert(name.clone(), named);
    }
    graph
}

/// A cycle through the graph, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|step| step == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_server_modules_import_each_other_without_a_cycle() {
    let graph = module_graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the server's modules import in a cycle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_graph_is_read_from_the_imports_that_are_there() {
    // The check above would pass on an empty graph; these edges are real.
    let graph = module_graph();
    let edges = |module: &str| graph[module].iter().cloned().collect::<Vec<_>>();
    assert!(edges("kimina").contains(&"submit".to_string()), "{graph:?}");
    assert!(edges("api").contains(&"submit".to_string()), "{graph:?}");
    assert!(
        edges("remote").contains(&"completion".to_string()),
        "{graph:?}"
    );
    assert!(
        edges("in_process_queue").contains(&"completion".to_string()),
        "{graph:?}"
    );
    assert!(edges("routes").contains(&"remote".to_string()), "{graph:?}");
    // Only the routes name the handlers.
    for (module, named) in &graph {
        if module != "routes" {
            for handler in ["api", "batches", "kimina", "remote"] {
                assert!(!named.contains(handler), "{module} imports {handler}");
            }
        }
    }
    // The cycle finder finds a cycle when there is one.
    let mut with_cycle = graph.clone();
    with_cycle
        .get_mut("submit")
        .unwrap()
        .insert("kimina".to_string());
    assert!(find_cycle(&with_cycle).is_some());
}

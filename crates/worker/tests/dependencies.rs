//! The worker crate's promise about what it is built from: no path through
//! its dependencies (normal or build) reaches an HTTP server framework or
//! the server crate, so `leanfarm worker` never links axum.
//!
//! Read from `cargo metadata`'s resolved graph, with the features this
//! workspace really uses.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;

/// Crates a worker must never be built with.
const FORBIDDEN: [&str; 3] = ["axum", "axum-core", "leanfarm-server"];

/// Package name of every resolved node, and its non-dev dependencies.
struct Graph {
    names: BTreeMap<String, String>,
    edges: BTreeMap<String, Vec<String>>,
}

fn resolved_graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is json");
    let names = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            (
                package["id"].as_str().unwrap().to_string(),
                package["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut edges = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().expect("resolve") {
        let id = node["id"].as_str().unwrap().to_string();
        let dependencies = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|dependency| {
                dependency["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|kind| kind["kind"].as_str() != Some("dev"))
            })
            .map(|dependency| dependency["pkg"].as_str().unwrap().to_string())
            .collect();
        edges.insert(id, dependencies);
    }
    Graph { names, edges }
}

impl Graph {
    fn id_of(&self, name: &str) -> &str {
        self.names
            .iter()
            .find(|(_, package)| package.as_str() == name)
            .map(|(id, _)| id.as_str())
            .unwrap_or_else(|| panic!("package {name} is in the workspace graph"))
    }

    /// Every package reachable from `root`, with the path that reaches it.
    fn reachable(&self, root: &str) -> BTreeMap<String, Vec<String>> {
        let mut paths = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([(root.to_string(), vec![self.names[root].clone()])]);
        while let Some((id, path)) = queue.pop_front() {
            if !seen.insert(id.clone()) {
                continue;
            }
            paths.insert(self.names[&id].clone(), path.clone());
            for next in self.edges.get(&id).into_iter().flatten() {
                let mut longer = path.clone();
                longer.push(self.names[next].clone());
                queue.push_back((next.clone(), longer));
            }
        }
        paths
    }
}

#[test]
fn the_worker_crate_has_no_dependency_path_to_axum_or_the_server() {
    let graph = resolved_graph();
    let reachable = graph.reachable(graph.id_of("leanfarm-worker"));
    // The walk is real: the crates the worker needs are found through it.
    for needed in ["leanfarm-driver", "leanfarm-store", "reqwest", "tokio"] {
        assert!(
            reachable.contains_key(needed),
            "{needed} not reached from leanfarm-worker"
        );
    }
    for forbidden in FORBIDDEN {
        assert!(
            !reachable.contains_key(forbidden),
            "leanfarm-worker reaches {forbidden} through {}",
            reachable[forbidden].join(" -> ")
        );
    }
}

#[test]
fn the_same_walk_finds_axum_from_the_server() {
    // The check above would pass vacuously if the walk never found axum.
    let graph = resolved_graph();
    let reachable = graph.reachable(graph.id_of("leanfarm-server"));
    assert!(reachable.contains_key("axum"));
    assert!(reachable.contains_key("leanfarm-worker"));
}

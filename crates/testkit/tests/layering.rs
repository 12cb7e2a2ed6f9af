//! The workspace's layering, as ARCHITECTURE.md states it, checked against
//! the dependency graph `cargo metadata` resolves: each crate's normal and
//! build dependencies (dev-dependencies are left out: tests may use anything),
//! followed transitively through workspace and external crates alike, with
//! the features this workspace really enables.
//!
//! `LAYERING` is the one table of rules, each with the sentence of
//! ARCHITECTURE.md it enforces. The checker is also run on synthetic graphs
//! with a forbidden edge, to show that each kind of rule can fail.

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;

/// Which crates a rule is about.
#[derive(Clone, Copy, Debug)]
enum Subject {
    Crate(&'static str),
    /// Every member of the workspace.
    EveryWorkspaceCrate,
}

/// What a rule demands of its subject's normal and build dependencies.
#[derive(Clone, Copy, Debug)]
enum Constraint {
    /// Its direct dependencies are among these (and so is nothing else).
    DirectlyOnly(&'static [&'static str]),
    /// None of these is reachable, directly or transitively.
    ReachesNone(&'static [&'static str]),
    /// Of the workspace's own crates, only these are reachable.
    WorkspaceCratesOnly(&'static [&'static str]),
}

struct Rule {
    subject: Subject,
    constraint: Constraint,
    /// The sentence of ARCHITECTURE.md this rule enforces.
    architecture: &'static str,
}

/// Crates that do I/O, spawn processes or speak a network protocol.
const IO_CRATES: &[&str] = &[
    "tokio",
    "reqwest",
    "hyper",
    "axum",
    "rusqlite",
    "tokio-postgres",
    "object_store",
    "libc",
];

const LAYERING: &[Rule] = &[
    Rule {
        subject: Subject::Crate("leanfarm-core"),
        constraint: Constraint::DirectlyOnly(&["serde", "lean-syntax"]),
        architecture: "core: no I/O and no dependencies beyond serde and lean-syntax",
    },
    Rule {
        subject: Subject::Crate("leanfarm-core"),
        constraint: Constraint::ReachesNone(IO_CRATES),
        architecture: "core: no I/O and no dependencies beyond serde and lean-syntax",
    },
    Rule {
        subject: Subject::Crate("lean-syntax"),
        constraint: Constraint::DirectlyOnly(&[]),
        architecture: "lean-syntax: no dependencies and no I/O",
    },
    Rule {
        subject: Subject::Crate("lean-protocol"),
        constraint: Constraint::ReachesNone(&[
            "tokio",
            "libc",
            "leanfarm-sandbox",
            "leanfarm-driver",
            "leanfarm-core",
        ]),
        architecture: "lean-protocol: knows nothing of processes or policies; it parses and prints",
    },
    Rule {
        subject: Subject::Crate("leanfarm-sandbox"),
        constraint: Constraint::ReachesNone(&[
            "lean-protocol",
            "lean-syntax",
            "lean-sim",
            "leanfarm-core",
            "leanfarm-driver",
            "leanfarm-store",
            "axum",
            "hyper",
            "reqwest",
        ]),
        architecture: "sandbox: knows nothing about Lean, jobs or HTTP",
    },
    Rule {
        subject: Subject::Crate("leanfarm-driver"),
        constraint: Constraint::ReachesNone(&[
            "axum",
            "hyper",
            "reqwest",
            "rusqlite",
            "tokio-postgres",
            "leanfarm-store",
            "leanfarm-worker",
            "leanfarm-server",
        ]),
        architecture: "driver: knows nothing about HTTP, jobs, tenants or databases",
    },
    Rule {
        subject: Subject::Crate("leanfarm-store"),
        // lean-syntax comes with core (the header grammar a job's header key
        // is computed by); it runs nothing.
        constraint: Constraint::ReachesNone(&[
            "lean-protocol",
            "lean-sim",
            "leanfarm-sandbox",
            "leanfarm-driver",
            "axum",
            "axum-core",
            "leanfarm-server",
        ]),
        // hyper and reqwest come with object_store's S3 and GCS backends:
        // an HTTP client to the buckets, never an HTTP server.
        architecture: "store: knows nothing about serving HTTP or Lean",
    },
    Rule {
        subject: Subject::Crate("leanfarm-worker"),
        constraint: Constraint::ReachesNone(&["axum", "axum-core", "leanfarm-server"]),
        architecture: "worker: knows nothing of HTTP servers (no axum, no leanfarm-server)",
    },
    Rule {
        subject: Subject::Crate("leanfarm-retriever"),
        constraint: Constraint::ReachesNone(&["axum", "hyper", "reqwest", "tokio"]),
        architecture: "retriever: knows nothing of HTTP, async runtimes or the prover",
    },
    Rule {
        subject: Subject::Crate("leanfarm-prove"),
        constraint: Constraint::ReachesNone(&[
            "axum",
            "axum-core",
            "rusqlite",
            "tokio-postgres",
            "leanfarm-store",
            "leanfarm-server",
            "leanfarm-driver",
            "leanfarm-sandbox",
        ]),
        architecture: "prove: knows nothing of HTTP routing or SQL (no axum, store, rusqlite, tokio-postgres, server, driver or sandbox)",
    },
    Rule {
        subject: Subject::Crate("leanfarm-attest"),
        constraint: Constraint::WorkspaceCratesOnly(&["leanfarm-core", "lean-syntax"]),
        architecture:
            "attest: no cryptography of its own, no I/O but reading and writing key files",
    },
    Rule {
        subject: Subject::Crate("leanfarm-attest"),
        constraint: Constraint::ReachesNone(&[
            "tokio",
            "axum",
            "reqwest",
            "rusqlite",
            "tokio-postgres",
        ]),
        architecture:
            "attest: no cryptography of its own, no I/O but reading and writing key files",
    },
    Rule {
        subject: Subject::Crate("lean-sim"),
        constraint: Constraint::WorkspaceCratesOnly(&["lean-protocol", "lean-syntax"]),
        architecture: "lean-sim: depends on no farm crate but lean-protocol and lean-syntax",
    },
    Rule {
        subject: Subject::EveryWorkspaceCrate,
        constraint: Constraint::ReachesNone(&["leanfarm-testkit"]),
        architecture: "testkit: a dev-dependency only, never a normal dependency of any crate",
    },
];

/// The resolved graph: package names, workspace members, and each package's
/// normal and build dependencies (by name).
struct Graph {
    workspace_members: BTreeSet<String>,
    dependencies: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Read from `cargo metadata --format-version 1` output.
    fn from_metadata(metadata: &Value) -> Graph {
        let names: BTreeMap<&str, &str> = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|package| {
                (
                    package["id"].as_str().expect("package id"),
                    package["name"].as_str().expect("package name"),
                )
            })
            .collect();
        let workspace_members = metadata["workspace_members"]
            .as_array()
            .expect("workspace_members")
            .iter()
            .map(|id| names[id.as_str().expect("member id")].to_string())
            .collect();
        let mut dependencies = BTreeMap::new();
        for node in metadata["resolve"]["nodes"].as_array().expect("resolve") {
            let name = names[node["id"].as_str().expect("node id")].to_string();
            let normal_or_build = node["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .filter(|dependency| {
                    dependency["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|kind| kind["kind"].as_str() != Some("dev"))
                })
                .map(|dependency| names[dependency["pkg"].as_str().expect("pkg")].to_string());
            dependencies
                .entry(name)
                .or_insert_with(BTreeSet::new)
                .extend(normal_or_build);
        }
        Graph {
            workspace_members,
            dependencies,
        }
    }

    /// Every package reachable from `root` (itself left out), with the path
    /// that reaches it.
    fn reachable(&self, root: &str) -> BTreeMap<String, Vec<String>> {
        let mut paths = BTreeMap::new();
        let mut queue = VecDeque::from([vec![root.to_string()]]);
        while let Some(path) = queue.pop_front() {
            let last = path.last().expect("a path is never empty");
            for next in self.dependencies.get(last).into_iter().flatten() {
                if next != root && !paths.contains_key(next) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    paths.insert(next.clone(), longer.clone());
                    queue.push_back(longer);
                }
            }
        }
        paths
    }
}

/// Every breach of `rules` in `graph`, one sentence each.
fn violations(graph: &Graph, rules: &[Rule]) -> Vec<String> {
    let mut found = Vec::new();
    for rule in rules {
        let subjects: Vec<&str> = match rule.subject {
            Subject::Crate(name) => vec![name],
            Subject::EveryWorkspaceCrate => {
                graph.workspace_members.iter().map(String::as_str).collect()
            }
        };
        for subject in subjects {
            let Some(direct) = graph.dependencies.get(subject) else {
                found.push(format!(
                    "{subject} is not in the graph, so the rule \"{}\" checks nothing",
                    rule.architecture
                ));
                continue;
            };
            let reachable = graph.reachable(subject);
            let breaches: Vec<String> = match rule.constraint {
                Constraint::DirectlyOnly(allowed) => direct
                    .iter()
                    .filter(|dependency| !allowed.contains(&dependency.as_str()))
                    .map(|dependency| format!("depends on {dependency}"))
                    .collect(),
                Constraint::ReachesNone(forbidden) => forbidden
                    .iter()
                    .filter(|name| **name != subject)
                    .filter_map(|name| reachable.get(*name))
                    .map(|path| format!("reaches {}", path.join(" -> ")))
                    .collect(),
                Constraint::WorkspaceCratesOnly(allowed) => reachable
                    .iter()
                    .filter(|(name, _)| {
                        graph.workspace_members.contains(*name) && !allowed.contains(&name.as_str())
                    })
                    .map(|(_, path)| format!("reaches {}", path.join(" -> ")))
                    .collect(),
            };
            for breach in breaches {
                found.push(format!(
                    "{subject} {breach}, but ARCHITECTURE.md says \"{}\"",
                    rule.architecture
                ));
            }
        }
    }
    found
}

fn workspace_metadata() -> Value {
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
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints json")
}

#[test]
fn every_crate_keeps_to_the_layering_architecture_md_states() {
    let graph = Graph::from_metadata(&workspace_metadata());
    let found = violations(&graph, LAYERING);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn the_walk_over_the_real_graph_finds_what_is_really_there() {
    // The rules above would hold vacuously if the walk found nothing.
    let graph = Graph::from_metadata(&workspace_metadata());
    let server = graph.reachable("leanfarm-server");
    for expected in [
        "axum",
        "leanfarm-worker",
        "leanfarm-driver",
        "tokio",
        "serde",
    ] {
        assert!(server.contains_key(expected), "server reaches {expected}");
    }
    let worker = graph.reachable("leanfarm-worker");
    for expected in ["leanfarm-driver", "leanfarm-store", "reqwest", "tokio"] {
        assert!(worker.contains_key(expected), "worker reaches {expected}");
    }
    assert!(graph.reachable("leanfarm-core").contains_key("serde"));
    assert!(graph.reachable("lean-sim").contains_key("lean-protocol"));
    // Dev-dependencies are left out: the store's tests use testkit, the store does not.
    assert!(!graph
        .reachable("leanfarm-store")
        .contains_key("leanfarm-testkit"));
    for member in ["leanfarm", "leanfarm-testkit", "lean-syntax"] {
        assert!(graph.workspace_members.contains(member), "{member}");
    }
}

/// An edge of a synthetic graph: from, to, and its kind (`normal`, `build`, `dev`).
type Edge = (&'static str, &'static str, &'static str);

/// A small metadata document: `workspace` members and `edges` of kind
/// `normal`, `build` or `dev`, between packages named by their names.
fn synthetic_metadata(workspace: &[&str], edges: &[Edge]) -> Value {
    let mut names: BTreeSet<&str> = workspace.iter().copied().collect();
    for (from, to, _) in edges {
        names.insert(from);
        names.insert(to);
    }
    let id = |name: &str| format!("path+file:///{name}#0.1.0");
    let nodes: Vec<Value> = names
        .iter()
        .map(|name| {
            let deps: Vec<Value> = edges
                .iter()
                .filter(|(from, _, _)| from == name)
                .map(|(_, to, kind)| {
                    let kind = if *kind == "normal" {
                        Value::Null
                    } else {
                        json!(kind)
                    };
                    json!({ "pkg": id(to), "dep_kinds": [{ "kind": kind, "target": null }] })
                })
                .collect();
            json!({ "id": id(name), "deps": deps })
        })
        .collect();
    json!({
        "packages": names.iter().map(|name| json!({ "id": id(name), "name": name })).collect::<Vec<_>>(),
        "workspace_members": workspace.iter().map(|name| id(name)).collect::<Vec<_>>(),
        "resolve": { "nodes": nodes },
    })
}

const SYNTHETIC_WORKSPACE: &[&str] = &[
    "leanfarm-core",
    "lean-syntax",
    "lean-protocol",
    "leanfarm-sandbox",
    "leanfarm-driver",
    "leanfarm-store",
    "leanfarm-worker",
    "leanfarm-server",
    "lean-sim",
    "leanfarm-testkit",
    "leanfarm-attest",
    "leanfarm-retriever",
    "leanfarm-prove",
];

/// A graph that keeps every rule: the workspace's real shape, in short.
const LAWFUL_EDGES: &[Edge] = &[
    ("leanfarm-core", "serde", "normal"),
    ("lean-protocol", "serde_json", "normal"),
    ("leanfarm-sandbox", "tokio", "normal"),
    ("leanfarm-driver", "leanfarm-core", "normal"),
    ("leanfarm-driver", "lean-protocol", "normal"),
    ("leanfarm-driver", "leanfarm-sandbox", "normal"),
    ("leanfarm-driver", "leanfarm-testkit", "dev"),
    ("leanfarm-store", "leanfarm-core", "normal"),
    ("leanfarm-store", "rusqlite", "normal"),
    ("leanfarm-store", "leanfarm-testkit", "dev"),
    ("leanfarm-worker", "leanfarm-driver", "normal"),
    ("leanfarm-worker", "leanfarm-store", "normal"),
    ("leanfarm-worker", "reqwest", "normal"),
    ("leanfarm-worker", "leanfarm-server", "dev"),
    ("leanfarm-server", "leanfarm-worker", "normal"),
    ("leanfarm-server", "axum", "normal"),
    ("lean-sim", "lean-protocol", "normal"),
    ("lean-syntax", "serde_json", "dev"),
    ("leanfarm-testkit", "leanfarm-driver", "normal"),
    ("leanfarm-attest", "leanfarm-core", "normal"),
    ("leanfarm-attest", "ed25519-dalek", "normal"),
    ("leanfarm-prove", "leanfarm-core", "normal"),
    ("leanfarm-prove", "reqwest", "normal"),
    ("leanfarm-server", "leanfarm-prove", "normal"),
    ("leanfarm-worker", "leanfarm-attest", "normal"),
    ("leanfarm-retriever", "rusqlite", "normal"),
    ("leanfarm-retriever", "lean-syntax", "normal"),
];

/// The violations of `LAYERING` in the lawful graph with `extra` edges added.
fn violations_with(extra: &[Edge]) -> Vec<String> {
    let mut edges = LAWFUL_EDGES.to_vec();
    edges.extend_from_slice(extra);
    violations(
        &Graph::from_metadata(&synthetic_metadata(SYNTHETIC_WORKSPACE, &edges)),
        LAYERING,
    )
}

#[test]
fn control_the_lawful_synthetic_graph_passes() {
    assert_eq!(violations_with(&[]), Vec::<String>::new());
}

#[test]
fn control_each_kind_of_forbidden_edge_is_found() {
    let cases: &[(&[Edge], &[&str])] = &[
        // Beyond serde, directly and transitively.
        (
            &[
                ("leanfarm-core", "uuid", "normal"),
                ("uuid", "libc", "normal"),
            ],
            &[
                "leanfarm-core depends on uuid",
                "leanfarm-core reaches leanfarm-core -> uuid -> libc",
            ],
        ),
        // I/O through an external crate, as a build dependency.
        (
            &[("serde", "tokio", "build")],
            &["leanfarm-core reaches leanfarm-core -> serde -> tokio"],
        ),
        (
            &[("lean-syntax", "memchr", "normal")],
            &["lean-syntax depends on memchr"],
        ),
        (
            &[("lean-protocol", "leanfarm-sandbox", "normal")],
            &["lean-protocol reaches lean-protocol -> leanfarm-sandbox"],
        ),
        // Transitively through a workspace crate.
        (
            &[("leanfarm-sandbox", "leanfarm-core", "normal")],
            &["leanfarm-sandbox reaches leanfarm-sandbox -> leanfarm-core"],
        ),
        (
            &[("leanfarm-core", "axum", "normal")],
            &[
                "leanfarm-core depends on axum",
                "leanfarm-core reaches leanfarm-core -> axum",
                "leanfarm-driver reaches leanfarm-driver -> leanfarm-core -> axum",
                "leanfarm-store reaches leanfarm-store -> leanfarm-core -> axum",
            ],
        ),
        (
            &[("leanfarm-driver", "leanfarm-store", "normal")],
            &["leanfarm-driver reaches leanfarm-driver -> leanfarm-store"],
        ),
        (
            &[("leanfarm-store", "lean-protocol", "normal")],
            &["leanfarm-store reaches leanfarm-store -> lean-protocol"],
        ),
        (
            &[("leanfarm-worker", "leanfarm-server", "normal")],
            &["leanfarm-worker reaches leanfarm-worker -> leanfarm-server"],
        ),
        (
            &[("leanfarm-attest", "tokio", "normal")],
            &["leanfarm-attest reaches leanfarm-attest -> tokio"],
        ),
        (
            &[("leanfarm-retriever", "tokio", "normal")],
            &["leanfarm-retriever reaches leanfarm-retriever -> tokio"],
        ),
        (
            &[("leanfarm-attest", "leanfarm-store", "normal")],
            &["leanfarm-attest reaches leanfarm-attest -> leanfarm-store"],
        ),
        (
            &[("lean-sim", "leanfarm-core", "normal")],
            &["lean-sim reaches lean-sim -> leanfarm-core"],
        ),
        (
            &[("leanfarm-server", "leanfarm-testkit", "normal")],
            &["leanfarm-server reaches leanfarm-server -> leanfarm-testkit"],
        ),
    ];
    for (extra, expected) in cases {
        let found = violations_with(extra);
        for wanted in *expected {
            assert!(
                found.iter().any(|violation| violation.starts_with(wanted)),
                "with {extra:?}, expected \"{wanted}\" in {found:#?}"
            );
        }
        assert!(
            found
                .iter()
                .all(|violation| violation.contains("ARCHITECTURE.md says")),
            "{found:#?}"
        );
    }
}

#[test]
fn control_a_rule_about_a_missing_crate_is_a_violation_not_a_pass() {
    let graph = Graph::from_metadata(&synthetic_metadata(&["leanfarm-core"], &[]));
    let found = violations(&graph, LAYERING);
    assert!(
        found
            .iter()
            .any(|violation| violation.starts_with("lean-syntax is not in the graph")),
        "{found:#?}"
    );
}

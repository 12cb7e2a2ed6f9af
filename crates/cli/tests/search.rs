//! `leanfarm index` over the shipped Lean library and `GET /v1/search` on a
//! real `leanfarm serve --search-index`: ranked premises, the caps on `q`
//! and `k`, tokens as on every tenant route, and the errors of a farm
//! without an index or with a file that is not one.

mod common;

use common::Server;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn leanfarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(args)
        .env("LEAN_FARM_LOG", "warn")
        .output()
        .expect("run leanfarm")
}

fn shipped_library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/problems/library")
}

fn build_library_index(dir: &Path) -> PathBuf {
    let index = dir.join("premises.sqlite");
    let output = leanfarm(&[
        "index",
        shipped_library().to_str().unwrap(),
        "--output",
        index.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout.contains("3 .lean files"), "{stdout}");
    index
}

fn names(body: &Value) -> Vec<&str> {
    body["premises"]
        .as_array()
        .unwrap()
        .iter()
        .map(|premise| premise["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn search_serves_the_index_built_from_the_shipped_library() {
    let data = tempfile::tempdir().unwrap();
    let index = build_library_index(data.path());
    let server = Server::start(
        data.path(),
        &["--slots", "1", "--search-index", index.to_str().unwrap()],
    );
    let (status, body) = server.get_json("/v1/search?q=add%20comm&k=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["Farm.Nat.add_comm"]);
    let premise = &body["premises"][0];
    assert_eq!(premise["kind"], "theorem");
    assert_eq!(premise["signature"], "(n m : ℕ) : n + m = m + n");
    assert_eq!(premise["module"], "Farm.Nat");
    assert_eq!(
        premise["docstring"],
        "Addition of natural numbers is commutative."
    );
    assert!(premise["score"].as_f64().unwrap() > 0.0);

    let (_, body) = server.get_json("/v1/search?q=Cauchy-Schwarz").await;
    assert_eq!(names(&body)[0], "Farm.Inequalities.cauchy_schwarz_two");
    // Lean notation is searched by the words of Mathlib's names.
    let (_, body) = server
        .get_json("/v1/search?q=%E2%88%9A(x%5E2)%20%3D%20%7Cx%7C&k=3")
        .await;
    assert_eq!(names(&body)[0], "Farm.Real.sqrt_sq_eq_abs", "{body}");
    // The default is 10 results.
    let (_, body) = server.get_json("/v1/search?q=real").await;
    assert_eq!(names(&body).len(), 10);
    // FTS5's syntax is only words here.
    let (status, body) = server
        .get_json("/v1/search?q=%22add%22%20NEAR(comm)%20name_words%3A*")
        .await;
    assert_eq!(status, 200, "{body}");
    // `+` is the word `add`.
    let (status, body) = server.get_json("/v1/search?q=%2B%2B%2B&k=3").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        names(&body).iter().all(|name| name.contains("add")),
        "{body}"
    );
    let (status, body) = server.get_json("/v1/search?q=").await;
    assert_eq!((status, names(&body).len()), (200, 0), "{body}");
}

#[tokio::test]
async fn bad_search_requests_get_an_error_from_the_table() {
    let data = tempfile::tempdir().unwrap();
    let index = build_library_index(data.path());
    let server = Server::start(
        data.path(),
        &["--slots", "1", "--search-index", index.to_str().unwrap()],
    );
    let long_query = format!("/v1/search?q={}", "a".repeat(1025));
    for path in [
        "/v1/search",
        "/v1/search?k=3",
        "/v1/search?q=add&k=0",
        "/v1/search?q=add&k=101",
        "/v1/search?q=add&k=-1",
        "/v1/search?q=add&k=many",
        "/v1/search?q=add&limit=3",
        "/v1/search?q=%FF",
        long_query.as_str(),
    ] {
        let (status, body) = server.get_json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], "invalid_request", "{path}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    let (status, body) = server.get_json("/v1/search?q=add&k=100").await;
    assert_eq!(status, 200, "{body}");
    // The cap counts characters, as the document's `maxLength` does.
    let accented = format!("/v1/search?q={}", "%C3%A9".repeat(1024));
    let (status, body) = server.get_json(&accented).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn search_needs_a_users_token_where_the_farm_requires_one() {
    let data = tempfile::tempdir().unwrap();
    let index = build_library_index(data.path());
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    assert!(leanfarm(&["tenant", "--store", &store, "set", "acme"])
        .status
        .success());
    let key = leanfarm(&[
        "tenant", "--store", &store, "key", "acme", "--scope", "user",
    ]);
    let user_token = String::from_utf8(key.stdout).unwrap().trim().to_string();
    let worker = leanfarm(&["tenant", "--store", &store, "farm-key", "--scope", "worker"]);
    let worker_token = String::from_utf8(worker.stdout).unwrap().trim().to_string();
    let mut server = Server::start(
        data.path(),
        &[
            "--slots",
            "1",
            "--require-auth",
            "--search-index",
            index.to_str().unwrap(),
        ],
    );
    for (token, expected) in [
        (None, 401),
        (Some("lf_not_a_token".to_string()), 401),
        (Some(worker_token), 403),
    ] {
        server.token = token.clone();
        let (status, body) = server.get_json("/v1/search?q=add").await;
        assert_eq!(status, expected, "{token:?}: {body}");
    }
    server.token = Some(user_token);
    let (status, body) = server.get_json("/v1/search?q=add%20comm&k=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(names(&body), ["Farm.Nat.add_comm"]);
}

#[tokio::test]
async fn a_farm_without_an_index_says_so() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "1"]);
    let (status, body) = server.get_json("/v1/search?q=add").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["code"], "search_not_configured");
}

#[test]
fn a_file_that_is_not_an_index_stops_serve_and_a_bad_dump_stops_index() {
    let data = tempfile::tempdir().unwrap();
    let not_an_index = data.path().join("notes.sqlite");
    std::fs::write(&not_an_index, "not sqlite at all").unwrap();
    let output = leanfarm(&[
        "serve",
        "--simulate",
        "--addr",
        "127.0.0.1:0",
        "--data-dir",
        data.path().to_str().unwrap(),
        "--search-index",
        not_an_index.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is not a declarations index"), "{stderr}");

    let dump = data.path().join("broken.jsonl");
    std::fs::write(&dump, "{\"name\": \"x\"}\n").unwrap();
    let output = leanfarm(&[
        "index",
        dump.to_str().unwrap(),
        "-o",
        data.path().join("out.sqlite").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.jsonl line 1"), "{stderr}");
}

/// A prove job's prompt tokens, with and without premises, on a farm whose
/// index is the shipped library: the premises reach the model's prompt.
#[tokio::test]
async fn prove_jobs_take_their_premises_from_the_index() {
    let data = tempfile::tempdir().unwrap();
    let index = build_library_index(data.path());
    let server = Server::start(
        data.path(),
        &["--slots", "1", "--search-index", index.to_str().unwrap()],
    );
    let mut tokens = Vec::new();
    for premises in [None, Some(5)] {
        let mut body = serde_json::json!({
            "statement": "theorem sum_comm (n m : ℕ) : n + m = m + n",
            "header": "import Mathlib",
            "route": "dummy",
            "strategy": {"kind": "sample", "n": 1, "rounds": 1},
        });
        if let Some(k) = premises {
            body["premises"] = serde_json::json!({ "k": k });
        }
        let (status, job) = server.post("/v1/prove", &body).await;
        assert!(status == 200 || status == 202, "{status}: {job}");
        let id = job["id"].as_str().unwrap().to_string();
        let mut job = job;
        for _ in 0..60 {
            if job["state"] != "running" {
                break;
            }
            job = server.get_json(&format!("/v1/prove/{id}?wait=5")).await.1;
        }
        assert_eq!(job["state"], "proved", "{job}");
        tokens.push(job["usage"]["tokens"].as_u64().unwrap());
    }
    // Five premises (`Farm.Nat.add_comm` first) lengthen the prompt.
    assert!(tokens[1] > tokens[0] + 20, "{tokens:?}");
}

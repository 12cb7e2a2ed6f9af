//! The farm as a fleet, with real processes on a real PostgreSQL: API
//! replicas that only serve (`--slots 0`), `leanfarm worker` processes that
//! lease over HTTP, tenants and their tokens. Parts are killed for real, and
//! each test checks the ledger: every accepted job has exactly one result.

mod common;

use common::{api_replica, leanfarm, snippets, tokens, Server, Worker};
use leanfarm_testkit::postgres::TestDatabase;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A database of its own (`acme` with a user key, `fleet` with a worker
/// token) and one API replica on it that sends the user key: the database,
/// the replica's data directory, the replica, and the worker token.
fn replica_with_tokens(name: &str) -> (TestDatabase, tempfile::TempDir, Server, String) {
    let db = TestDatabase::create(name);
    let (user, worker_token) = tokens(&db.url);
    let data = tempfile::tempdir().unwrap();
    let mut server = api_replica(data.path(), &db.url, &[]);
    server.token = Some(user);
    (db, data, server, worker_token)
}

/// A farm operator token on `store` (what `/metrics` and `/v1/workers`
/// need under `--require-auth`).
fn operator_token(store: &str) -> String {
    leanfarm(&[
        "tenant", "--store", store, "farm-key", "--scope", "operator",
    ])
}

fn ids_of(response: &Value) -> Vec<String> {
    response["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every job of the tenant, read through the API.
async fn ledger(server: &Server) -> Vec<Value> {
    let (status, all) = server.get_json("/v1/checks?limit=1000").await;
    assert_eq!(status, 200, "{all}");
    all["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_remote_worker_checks_jobs_and_tokens_keep_the_sides_apart() {
    let db = TestDatabase::create("sides");
    let (user, worker_token) = tokens(&db.url);
    let data = tempfile::tempdir().unwrap();
    let mut server = api_replica(data.path(), &db.url, &[]);
    let worker_dir = tempfile::tempdir().unwrap();
    let _worker = Worker::start(
        &server.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "2"],
    );

    let body = json!({"snippets": snippets(&["theorem t : True := trivial", "theorem u : 1 = 1 := by sorry"]), "wait": 30});
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(
        (status, response["code"].as_str()),
        (401, Some("unauthorized")),
        "{response}"
    );
    server.token = Some(worker_token.clone());
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(
        (status, response["code"].as_str()),
        (403, Some("forbidden")),
        "{response}"
    );
    server.token = Some("lf_not_a_real_token".into());
    let (status, _) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 401);

    server.token = Some(user.clone());
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 200, "{response}");
    let statuses: Vec<&str> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["verdict"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["valid", "sorry"]);
    // Metrics name tenants: under --require-auth only an operator reads them.
    let (status, _) = server.get("/metrics").await;
    assert_eq!(status, 403);
    server.token = Some(operator_token(&db.url));
    let (_, metrics) = server.get("/metrics").await;
    server.token = Some(user.clone());
    for status in ["valid", "sorry"] {
        let line = format!("lean_farm_tenant_jobs_total{{tenant=\"acme\",status=\"{status}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }

    // `leanfarm check` against the farm, with and without the token.
    let proof = tempfile::Builder::new().suffix(".lean").tempfile().unwrap();
    std::fs::write(proof.path(), "theorem t : True := trivial").unwrap();
    let check = |token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_leanfarm"));
        command
            .args(["check", "--server", &server.url])
            .arg(proof.path());
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        command.output().unwrap()
    };
    let refused = check(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );
    let accepted = check(Some(&user));
    assert!(accepted.status.success(), "{accepted:?}");
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("valid"));

    // A user key cannot lease work.
    let lease = json!({"worker_id": "intruder", "max": 1, "lease_seconds": 10});
    let (status, response) = server.post("/v1/worker/lease", &lease).await;
    assert_eq!(
        (status, response["code"].as_str()),
        (403, Some("forbidden")),
        "{response}"
    );

    // Another tenant sees none of these jobs.
    leanfarm(&["tenant", "--store", &db.url, "set", "other"]);
    let other = leanfarm(&[
        "tenant", "--store", &db.url, "key", "other", "--scope", "user",
    ]);
    server.token = Some(other);
    assert!(ledger(&server).await.is_empty());
    let id = ids_of(&response_ids(&server, &user, &body).await)[0].clone();
    let (status, _) = server.get_json(&format!("/v1/checks/{id}")).await;
    assert_eq!(status, 404);

    // A revoked token is refused.
    let key_id = revoke_target(&db.url);
    leanfarm(&["tenant", "--store", &db.url, "revoke", &key_id.0]);
    server.token = Some(key_id.1);
    let (status, _) = server.get_json("/v1/checks").await;
    assert_eq!(status, 401);
}

/// Submit as `token` and return the response.
async fn response_ids(server: &Server, token: &str, body: &Value) -> Value {
    let client = reqwest::Client::new();
    client
        .post(format!("{}/v1/checks", server.url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A fresh user key: (key id, token).
fn revoke_target(store: &str) -> (String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["tenant", "--store", store, "key", "acme", "--scope", "user"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let key_id = stderr.split_whitespace().nth(1).unwrap().to_string();
    (
        key_id,
        String::from_utf8_lossy(&output.stdout).trim().to_string(),
    )
}

#[tokio::test]
async fn a_worker_killed_mid_job_loses_its_lease_and_the_job_completes_once() {
    let (_db, _data, server, worker_token) = replica_with_tokens("killed_worker");
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = Worker::start(
        &server.url,
        &worker_token,
        first_dir.path(),
        &["--slots", "1", "--lease-seconds", "2"],
    );
    let body = json!({"snippets": snippets(&["-- sim: sleep 1500\ntheorem t : True := trivial"])});
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 202, "{response}");
    let ids = ids_of(&response);
    // Wait until the first worker holds it, then kill it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, view) = server.get_json(&format!("/v1/checks/{}", ids[0])).await;
        if view["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "never leased: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill_hard();
    let second_dir = tempfile::tempdir().unwrap();
    let _second = Worker::start(
        &server.url,
        &worker_token,
        second_dir.path(),
        &["--slots", "1", "--lease-seconds", "2"],
    );
    let views = server.wait_final(&ids, Duration::from_secs(60)).await;
    assert_eq!(views[0]["state"], "done", "{}", views[0]);
    assert_eq!(views[0]["verdict"]["status"], "valid");
    assert_eq!(
        views[0]["attempts"], 2,
        "leased again after the lease expired"
    );
    assert_eq!(ledger(&server).await.len(), 1);
}

#[tokio::test]
async fn a_worker_back_from_a_partition_with_a_stale_lease_is_refused() {
    let (db, _data, mut server, worker_token) = replica_with_tokens("stale_lease");
    let (_, response) = server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&["theorem t : True := trivial"])}),
        )
        .await;
    let id = ids_of(&response)[0].clone();

    // Two workers speaking the protocol by hand: the first leases, goes
    // silent past its lease, the second leases the job again.
    server.token = Some(worker_token);
    let lease =
        |name: &str| json!({"worker_id": name, "max": 1, "lease_seconds": 1, "wait_seconds": 5});
    let (status, first) = server.post("/v1/worker/lease", &lease("partitioned")).await;
    assert_eq!(status, 200, "{first}");
    let first = first["leases"][0].clone();
    assert_eq!(first["job_id"], id.as_str());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, second) = server.post("/v1/worker/lease", &lease("healthy")).await;
    let second = second["leases"][0].clone();
    assert_eq!(
        (second["job_id"].as_str(), second["attempt"].as_u64()),
        (Some(id.as_str()), Some(2))
    );

    let verdict = |status: &str| {
        let mut verdict = json!({"status": status, "messages": [], "axioms": {}, "toolchain": "lean-sim", "project": "simulated",
        "timings": {"queued_ms": 0.0, "header_ms": 0.0, "body_ms": 1.0}, "repl_reused": false});
        if status == "lean_error" {
            verdict["reason"] =
                json!({"code": "lean_error", "message": "line 1: unknown identifier"});
        }
        verdict
    };
    let complete = |lease: &Value, status: &str| json!({"job_id": lease["job_id"], "lease_id": lease["lease_id"], "verdict": verdict(status)});
    let (_, renewed) = server
        .post("/v1/worker/renew", &json!({"leases": [{"job_id": first["job_id"], "lease_id": first["lease_id"]}], "lease_seconds": 5}))
        .await;
    assert_eq!(renewed["held"], json!([false]));
    let (status, late) = server
        .post("/v1/worker/complete", &complete(&first, "lean_error"))
        .await;
    assert_eq!(
        (status, late["outcome"].as_str()),
        (200, Some("stale")),
        "{late}"
    );
    let (_, on_time) = server
        .post("/v1/worker/complete", &complete(&second, "valid"))
        .await;
    assert_eq!(on_time["outcome"], "stored");
    let (_, again) = server
        .post("/v1/worker/complete", &complete(&second, "lean_error"))
        .await;
    assert_eq!(again["outcome"], "stale", "a result is written once");

    let user = leanfarm(&[
        "tenant", "--store", &db.url, "key", "acme", "--scope", "user",
    ]);
    server.token = Some(user);
    let (_, view) = server.get_json(&format!("/v1/checks/{id}")).await;
    assert_eq!(
        (view["state"].as_str(), view["verdict"]["status"].as_str()),
        (Some("done"), Some("valid")),
        "{view}"
    );
}

#[tokio::test]
async fn killing_an_api_replica_loses_nothing_for_clients_that_retry_on_another() {
    let db = TestDatabase::create("replicas");
    let (user, worker_token) = tokens(&db.url);
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = api_replica(data_a.path(), &db.url, &[]);
    let mut b = api_replica(data_b.path(), &db.url, &[]);
    a.token = Some(user.clone());
    b.token = Some(user);
    let worker_dir = tempfile::tempdir().unwrap();
    let _worker = Worker::start(&b.url, &worker_token, worker_dir.path(), &["--slots", "2"]);

    let mut accepted: Vec<String> = Vec::new();
    let mut retried = 0;
    for round in 0..20 {
        if round == 10 {
            a.kill_hard();
        }
        let code = format!("-- sim: sleep 20\ntheorem t{round} : True := trivial");
        let body = json!({"snippets": snippets(&[&code])});
        // The client: replica A first; on a connection failure, replica B.
        let first_try = a
            .client
            .post(format!("{}/v1/checks", a.url))
            .bearer_auth(a.token.as_ref().unwrap())
            .json(&body)
            .send()
            .await;
        let response: Value = match first_try {
            Ok(response) => response.json().await.unwrap(),
            Err(_) => {
                retried += 1;
                let (status, response) = b.post("/v1/checks", &body).await;
                assert_eq!(status, 202, "{response}");
                response
            }
        };
        accepted.extend(ids_of(&response));
    }
    assert_eq!(retried, 10, "the second half went to replica B");
    let views = b.wait_final(&accepted, Duration::from_secs(60)).await;
    assert!(views
        .iter()
        .all(|v| v["state"] == "done" && v["verdict"]["status"] == "valid"));
    let all = ledger(&b).await;
    assert_eq!(
        all.len(),
        accepted.len(),
        "exactly the accepted jobs, each once"
    );
}

#[tokio::test]
async fn tenant_limits_answer_429_with_retry_after() {
    let db = TestDatabase::create("limits");
    let store = db.url.as_str();
    leanfarm(&[
        "tenant",
        "--store",
        store,
        "set",
        "tiny",
        "--max-queued",
        "2",
        "--rps",
        "1000",
    ]);
    leanfarm(&["tenant", "--store", store, "set", "slow", "--rps", "1"]);
    let tiny = leanfarm(&["tenant", "--store", store, "key", "tiny"]);
    let slow = leanfarm(&["tenant", "--store", store, "key", "slow"]);
    let data = tempfile::tempdir().unwrap();
    // No workers: what is accepted stays queued.
    let mut server = api_replica(data.path(), store, &[]);

    server.token = Some(tiny);
    let one = json!({"snippets": snippets(&["theorem a : True := trivial"])});
    let (status, _) = server.post("/v1/checks", &one).await;
    assert_eq!(status, 202);
    let two = json!({"snippets": snippets(&["theorem b : True := trivial", "theorem c : True := trivial"])});
    let (status, response) = server.post("/v1/checks", &two).await;
    assert_eq!(
        (status, response["code"].as_str()),
        (429, Some("tenant_queue_full")),
        "{response}"
    );
    assert_eq!(response["retry_after_header"], true);
    assert_eq!(
        ledger(&server).await.len(),
        1,
        "nothing of the refused batch was queued"
    );

    server.token = Some(slow);
    let (status, _) = server.post("/v1/checks", &one).await;
    assert_eq!(status, 202);
    let (status, response) = server.post("/v1/checks", &one).await;
    assert_eq!(
        (status, response["code"].as_str()),
        (429, Some("rate_limited")),
        "{response}"
    );
    assert_eq!(response["retry_after_header"], true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = server.post("/v1/checks", &one).await;
    assert_eq!(status, 202, "the bucket refills");
}

#[tokio::test]
async fn a_worker_told_to_stop_hands_its_jobs_back_and_another_finishes_them() {
    let (_db, _data, server, worker_token) = replica_with_tokens("worker_sigterm");
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = Worker::start(
        &server.url,
        &worker_token,
        first_dir.path(),
        &["--slots", "2", "--drain-seconds", "0.5"],
    );
    let codes: Vec<String> = (0..2)
        .map(|i| format!("-- sim: sleep 5000\ntheorem t{i} : True := trivial"))
        .collect();
    let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let (_, response) = server
        .post("/v1/checks", &json!({"snippets": snippets(&code_refs)}))
        .await;
    let ids = ids_of(&response);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = server.get_json("/v1/checks?state=running").await;
        if list["results"].as_array().unwrap().len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "never both running: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(first.child.id() as i32, libc::SIGTERM) };
    let stopped = first.child.wait().unwrap();
    assert!(stopped.success(), "{stopped:?}");
    // Handed back at once (not left to expire): queued again, attempt 1 used.
    for id in &ids {
        let (_, view) = server.get_json(&format!("/v1/checks/{id}")).await;
        assert_eq!(
            (view["state"].as_str(), view["attempts"].as_u64()),
            (Some("queued"), Some(1)),
            "{view}"
        );
    }
    let second_dir = tempfile::tempdir().unwrap();
    let _second = Worker::start(
        &server.url,
        &worker_token,
        second_dir.path(),
        &["--slots", "2"],
    );
    let views = server.wait_final(&ids, Duration::from_secs(60)).await;
    for view in &views {
        assert_eq!(
            (
                view["verdict"]["status"].as_str(),
                view["attempts"].as_u64()
            ),
            (Some("valid"), Some(2)),
            "{view}"
        );
    }
}

#[tokio::test]
async fn a_job_naming_a_toolchain_or_project_no_worker_offers_is_refused() {
    let (db, _data, mut server, worker_token) = replica_with_tokens("targets");
    let worker_dir = tempfile::tempdir().unwrap();
    // A --simulate worker offers toolchain `lean-sim`, project `simulated`.
    let _worker = Worker::start(
        &server.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "1"],
    );
    // The worker shows itself with its first claim.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let user_token = server.token.replace(operator_token(&db.url));
    loop {
        let (_, listed) = server.get_json("/v1/workers").await;
        let workers = listed["workers"].as_array().cloned().unwrap_or_default();
        if let Some(worker) = workers.first() {
            assert_eq!(
                (&worker["toolchain"], &worker["project"]),
                (&json!("lean-sim"), &json!("simulated")),
                "{listed}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker listed: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.token = user_token;
    let submit = |toolchain: &str, project: &str| json!({"snippets": snippets(&["theorem t : True := trivial"]), "toolchain": toolchain, "project": project});
    // A job no worker could run is refused, not left queued forever.
    for (toolchain, project) in [
        ("leanprover/lean4:v4.9.0", "simulated"),
        ("lean-sim", "mathlib"),
    ] {
        let (status, refused) = server.post("/v1/checks", &submit(toolchain, project)).await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["code"], "no_worker_for_target", "{refused}");
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.contains(toolchain)
                && message.contains("toolchain `lean-sim` with project `simulated`"),
            "{message}"
        );
    }
    let (status, here) = server
        .post("/v1/checks", &submit("lean-sim", "simulated"))
        .await;
    assert!(status == 200 || status == 202, "{here}");
    let here = ids_of(&here);
    let views = server.wait_final(&here, Duration::from_secs(30)).await;
    assert_eq!(views[0]["verdict"]["status"], "valid");
    assert_eq!(views[0]["verdict"]["toolchain"], "lean-sim");
    let (status, only_toolchain) = server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&["theorem t : True := trivial"]), "toolchain": "lean-sim", "wait": 30}),
        )
        .await;
    assert_eq!(status, 200, "{only_toolchain}");
    assert_eq!(only_toolchain["results"][0]["verdict"]["status"], "valid");
}

//! `leanfarm worker --metrics-addr`: a real worker process serves its own
//! `/healthz`, `/readyz` and `/metrics` (slots, warm REPLs, pool, checks by
//! status, Lean CPU time), and every API replica of a fleet on one
//! PostgreSQL reports the same fleet-wide `lean_farm_active_workers`.

mod common;

use common::{
    api_replica, documented_metrics, free_local_addr, help_texts, leanfarm, sample, snippets,
    tokens, wait_ready_and_scrape, Worker,
};
use leanfarm_testkit::postgres::TestDatabase;
use serde_json::{json, Value};
use std::time::Duration;

async fn get(addr: &str, path: &str) -> (u16, String) {
    let reply = reqwest::get(format!("http://{addr}{path}"))
        .await
        .unwrap_or_else(|error| panic!("GET {path} on the worker: {error}"));
    let status = reply.status().as_u16();
    (status, reply.text().await.unwrap())
}

/// Poll `path` on the worker until it answers (the listener starts with the process).
async fn get_when_listening(addr: &str, path: &str) -> (u16, String) {
    for _ in 0..600 {
        if let Ok(reply) = reqwest::get(format!("http://{addr}{path}")).await {
            let status = reply.status().as_u16();
            return (status, reply.text().await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker never listened on {addr}");
}

#[tokio::test]
async fn a_worker_without_an_api_answer_is_alive_but_not_ready() {
    let unreachable = format!("http://{}", free_local_addr());
    let worker_dir = tempfile::tempdir().unwrap();
    let metrics_addr = free_local_addr();
    let _worker = Worker::start(
        &unreachable,
        "no-such-token",
        worker_dir.path(),
        &["--slots", "1", "--metrics-addr", &metrics_addr],
    );
    let (status, body) = get_when_listening(&metrics_addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    // Give it time to try the API a few times: it never answers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, body) = get(&metrics_addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], false, "{ready}");
    assert_eq!(ready["pool_ready"], true, "{ready}");
    assert_eq!(ready["api_answered"], false, "{ready}");
    let (status, scrape) = get(&metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&scrape, "lean_farm_worker_ready"),
        Some(0.0),
        "{scrape}"
    );
    // It serves nothing else, and says so with the farm's error shape.
    let (status, body) = get(&metrics_addr, "/v1/checks").await;
    assert_eq!(status, 404, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], "not_found", "{error}");
    let reply = reqwest::Client::new()
        .post(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 405);
}

#[tokio::test]
async fn a_worker_exports_its_own_metrics_and_every_replica_counts_the_fleet() {
    let db = TestDatabase::create("worker_probes");
    let (user, worker_token) = tokens(&db.url);
    let operator = leanfarm(&[
        "tenant", "--store", &db.url, "farm-key", "--scope", "operator",
    ]);
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let mut first = api_replica(first_dir.path(), &db.url, &[]);
    let mut second = api_replica(second_dir.path(), &db.url, &[]);
    first.token = Some(operator.clone());
    second.token = Some(operator);

    // No worker yet: the fleet is empty on both replicas.
    for replica in [&first, &second] {
        let (status, scrape) = replica.get("/metrics").await;
        assert_eq!(status, 200, "{scrape}");
        assert_eq!(
            sample(&scrape, "lean_farm_active_workers"),
            Some(0.0),
            "{scrape}"
        );
    }

    let worker_dir = tempfile::tempdir().unwrap();
    let metrics_addr = free_local_addr();
    let _worker = Worker::start(
        &first.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "2", "--metrics-addr", &metrics_addr],
    );
    let scrape = wait_ready_and_scrape(&metrics_addr).await;
    assert_eq!(
        sample(&scrape, "lean_farm_worker_ready"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "lean_farm_worker_slots{state=\"free\"}"),
        Some(2.0),
        "{scrape}"
    );

    // Two checks through the second replica: one valid, one sorry.
    second.token = Some(user);
    let (status, reply) = second
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&[
                "theorem t : 1 + 1 = 2 := by decide",
                "theorem u : 1 = 2 := sorry",
            ]), "wait": 60}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][1]["verdict"]["status"], "sorry", "{reply}");

    let (status, scrape) = get(&metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    for (series, expected) in [
        ("lean_farm_worker_jobs_total{status=\"valid\"}", 1.0),
        ("lean_farm_worker_jobs_total{status=\"sorry\"}", 1.0),
        ("lean_farm_worker_jobs_total{status=\"timeout_error\"}", 0.0),
        ("lean_farm_worker_slots{state=\"busy\"}", 0.0),
        ("lean_farm_worker_slots{state=\"free\"}", 2.0),
    ] {
        assert_eq!(
            sample(&scrape, series),
            Some(expected),
            "{series} in\n{scrape}"
        );
    }
    let misses = sample(&scrape, "lean_farm_repl_pool_misses_total").unwrap();
    let hits = sample(&scrape, "lean_farm_repl_pool_hits_total").unwrap();
    assert_eq!(hits + misses, 2.0, "{scrape}");
    let live = sample(&scrape, "lean_farm_repl_pool_live").unwrap();
    assert!(live >= 1.0, "{scrape}");
    assert_eq!(
        sample(&scrape, "lean_farm_worker_repls_warm"),
        Some(live),
        "every live REPL is idle and warm now:\n{scrape}"
    );
    let cpu = sample(&scrape, "lean_farm_lean_cpu_seconds_total").unwrap();
    assert!(cpu > 0.0, "no Lean CPU time counted:\n{scrape}");
    // The worker's HELP texts are the documented meanings too.
    let documented = documented_metrics();
    for (name, help) in help_texts(&scrape) {
        assert_eq!(Some(&help), documented.get(&name), "HELP of {name}");
    }

    // One worker in the fleet, whichever replica is asked.
    second.token = first.token.clone();
    for replica in [&first, &second] {
        let (status, scrape) = replica.get("/metrics").await;
        assert_eq!(status, 200, "{scrape}");
        assert_eq!(
            sample(&scrape, "lean_farm_active_workers"),
            Some(1.0),
            "{scrape}"
        );
    }
}

#[test]
fn a_metrics_address_in_use_stops_the_worker_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let worker_dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args([
            "worker",
            "--simulate",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "unused",
            "--sandbox",
            &leanfarm_testkit::test_backend_name(),
            "--metrics-addr",
            &addr,
        ])
        .arg("--data-dir")
        .arg(worker_dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--metrics-addr {addr}: cannot listen")),
        "{stderr}"
    );
    common::release_mounts(worker_dir.path());
}

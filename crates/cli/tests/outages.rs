//! Nothing lost in outages, one fault at a time, with real processes: a
//! worker killed while it holds a verdict it could not store reports it
//! from its spool after a restart, without checking the job again; a farm
//! that crashes between a verdict and its artifacts writes them when it
//! starts again; a worker moves to another replica when its replica dies;
//! dead jobs are listed and put back with `leanfarm jobs`.

mod common;

use common::{api_replica, leanfarm, log_events, release_mounts, snippets, tokens, Server, Worker};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn ids_of(response: &Value) -> Vec<String> {
    response["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {response}"))
        .iter()
        .map(|result| result["id"].as_str().unwrap().to_string())
        .collect()
}

async fn submit(server: &Server, codes: &[&str]) -> Vec<String> {
    let (status, response) = server
        .post("/v1/checks", &json!({ "snippets": snippets(codes) }))
        .await;
    assert!(matches!(status, 200 | 202), "{status}: {response}");
    ids_of(&response)
}

async fn wait_for_state(server: &Server, job_id: &str, state: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, view) = server.get_json(&format!("/v1/checks/{job_id}")).await;
        if view["state"] == state {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} never became {state}: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spooled_files(worker_dir: &Path) -> usize {
    std::fs::read_dir(worker_dir.join("spool"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
                .count()
        })
        .unwrap_or(0)
}

async fn until(what: &str, within: Duration, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_killed_worker_reports_its_spooled_verdict_after_a_restart_and_checks_nothing_again() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("farm.db").display());
    let (user, worker_token) = tokens(&store);
    let mut replica = api_replica(data.path(), &store, &[]);
    replica.token = Some(user.clone());
    let worker_dir = tempfile::tempdir().unwrap();
    let log = worker_dir.path().join("worker.log");
    let mut worker = Worker::start_logged(
        &replica.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "1"],
        &log,
    );
    let id = submit(
        &replica,
        &["-- sim: sleep 2500\ntheorem slow : True := trivial"],
    )
    .await
    .remove(0);
    wait_for_state(&replica, &id, "running", Duration::from_secs(30)).await;
    // The farm goes away while the check runs: the verdict cannot be stored.
    replica.kill_hard();
    until("the verdict is spooled", Duration::from_secs(30), || {
        spooled_files(worker_dir.path()) == 1
    })
    .await;
    worker.kill_hard();
    release_mounts(worker_dir.path());
    assert_eq!(
        spooled_files(worker_dir.path()),
        1,
        "the spool survives a kill"
    );

    // The farm comes back (same store, a new address), and so does the worker.
    let mut replica = api_replica(data.path(), &store, &[]);
    replica.token = Some(user);
    let second_log = worker_dir.path().join("worker-restarted.log");
    let _worker = Worker::start_logged(
        &replica.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "1"],
        &second_log,
    );
    let view = wait_for_state(&replica, &id, "done", Duration::from_secs(30)).await;
    assert_eq!(view["verdict"]["status"], "valid", "{view}");
    until("the spool is empty", Duration::from_secs(10), || {
        spooled_files(worker_dir.path()) == 0
    })
    .await;
    let started = log_events(&[&log, &second_log], "check started");
    assert_eq!(
        started.get(&id),
        Some(&1),
        "the job was checked again: {started:?}"
    );
    assert!(log_events(&[&second_log], "check started").is_empty());
    let attempts = replica.get_json(&format!("/v1/checks/{id}")).await.1["attempts"].clone();
    assert!(attempts == 1 || attempts.is_null(), "attempts: {attempts}");
}

#[tokio::test]
async fn a_farm_that_crashes_between_a_verdict_and_its_artifacts_writes_them_when_it_starts() {
    let data = tempfile::tempdir().unwrap();
    let mut farm = Server::start_with_env(
        data.path(),
        &["--slots", "1"],
        &[("LEAN_FARM_FAULT_CRASH_BEFORE_ARTIFACTS", "1")],
    );
    let (status, response) = farm
        .post(
            "/v1/checks",
            &json!({ "snippets": snippets(&["theorem t : True := trivial"]) }),
        )
        .await;
    assert!(matches!(status, 200 | 202), "{status}: {response}");
    let id = ids_of(&response).remove(0);
    // The injected crash: the verdict is committed, the process exits.
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = farm.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the farm did not crash");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(exit.code(), Some(86), "{exit:?}");
    let job_dir = data
        .path()
        .join("artifacts")
        .join("jobs")
        .join(leanfarm_store::artifacts::shard(&id))
        .join(&id);
    assert!(
        !job_dir.join("summary.json").exists(),
        "the artifacts were written before the crash"
    );
    drop(farm);

    let farm = Server::start(data.path(), &["--slots", "1"]);
    let view = wait_for_state(&farm, &id, "done", Duration::from_secs(10)).await;
    assert_eq!(view["verdict"]["status"], "valid");
    until(
        "the start-up sweep writes the artifacts",
        Duration::from_secs(15),
        || {
            ["input.json", "summary.json", "messages.json"]
                .iter()
                .all(|name| job_dir.join(name).exists())
        },
    )
    .await;
    let summary: Value =
        serde_json::from_slice(&std::fs::read(job_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "valid", "{summary}");
}

#[tokio::test]
async fn a_worker_moves_to_another_replica_when_its_replica_dies() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("farm.db").display());
    let (user, worker_token) = tokens(&store);
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let mut first = api_replica(first_dir.path(), &store, &[]);
    first.token = Some(user.clone());
    let mut second = api_replica(second_dir.path(), &store, &[]);
    second.token = Some(user);
    let worker_dir = tempfile::tempdir().unwrap();
    let log = worker_dir.path().join("worker.log");
    let _worker = Worker::start_logged(
        &format!("{},{}", first.url, second.url),
        &worker_token,
        worker_dir.path(),
        &["--slots", "1"],
        &log,
    );
    let before = submit(&first, &["theorem before : True := trivial"])
        .await
        .remove(0);
    wait_for_state(&first, &before, "done", Duration::from_secs(30)).await;

    first.kill_hard();
    let after = submit(&second, &["theorem after : True := trivial"])
        .await
        .remove(0);
    let view = wait_for_state(&second, &after, "done", Duration::from_secs(30)).await;
    assert_eq!(view["verdict"]["status"], "valid");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("moved to another replica"), "{text}");
}

#[tokio::test]
async fn dead_jobs_are_listed_and_put_back_with_a_reason() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("farm.db").display());
    let (user, worker_token) = tokens(&store);
    let mut replica = api_replica(data.path(), &store, &["--max-attempts", "1"]);
    replica.token = Some(user);
    let first_dir = tempfile::tempdir().unwrap();
    let mut first = Worker::start(
        &replica.url,
        &worker_token,
        first_dir.path(),
        &["--slots", "1", "--lease-seconds", "2"],
    );
    let id = submit(
        &replica,
        &["-- sim: sleep 1500\ntheorem t : True := trivial"],
    )
    .await
    .remove(0);
    wait_for_state(&replica, &id, "running", Duration::from_secs(30)).await;
    // Its one attempt ends with the worker: the lease runs out, the job is dead.
    first.kill_hard();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second_dir = tempfile::tempdir().unwrap();
    let _second = Worker::start(
        &replica.url,
        &worker_token,
        second_dir.path(),
        &["--slots", "1"],
    );
    wait_for_state(&replica, &id, "dead", Duration::from_secs(30)).await;

    let listed = leanfarm(&["jobs", "--store", &store, "list", "--state", "dead"]);
    let row = listed
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    assert!(
        row.contains("1/1") && row.contains("lease expired"),
        "{row}"
    );
    let retried = leanfarm(&[
        "jobs",
        "--store",
        &store,
        "retry",
        &id,
        "--reason",
        "worker host replaced",
    ]);
    assert_eq!(retried, id);
    let view = wait_for_state(&replica, &id, "done", Duration::from_secs(30)).await;
    assert_eq!(view["verdict"]["status"], "valid");
    let listed = leanfarm(&["jobs", "--store", &store, "list", "--state", "dead"]);
    assert!(!listed.contains(&id), "{listed}");
    // Nothing dead is left to retry.
    assert_eq!(
        leanfarm(&[
            "jobs",
            "--store",
            &store,
            "retry",
            "--all-dead",
            "--reason",
            "x"
        ]),
        ""
    );
}

//! A chaos run on a private PostgreSQL cluster: two API replicas, three
//! `leanfarm worker` processes (each knowing both replicas), jobs submitted
//! for several seconds. Faults: workers SIGKILLed and restarted (once while
//! the database is down, with verdicts in its spool), one replica
//! SIGKILLed for good, and PostgreSQL stopped for longer than the old
//! 21-second window in which a worker gave up on a verdict.
//!
//! Afterwards every accepted job has exactly one verdict and all its
//! artifacts; none is dead; and no check that had reached its verdict was
//! run again (counted from the workers' logs: `verdict held until stored`
//! appears once per job, whatever was killed). The ledger is printed.

mod common;

use common::private_postgres::PrivatePostgres;
use common::{api_replica, log_events, release_mounts, snippets, tokens, Worker};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long PostgreSQL stays down: longer than the 21 s a worker used to
/// keep a verdict.
const OUTAGE: Duration = Duration::from_secs(35);
/// How long jobs are submitted, from the start.
const SUBMITTING: Duration = Duration::from_secs(9);
const ARTIFACTS: [&str; 3] = ["input.json", "summary.json", "messages.json"];

/// One of the three workers: its data directory, its log, its servers.
struct WorkerSlot {
    dir: tempfile::TempDir,
    log: PathBuf,
    servers: String,
    process: Option<Worker>,
}

impl WorkerSlot {
    fn start(&mut self, token: &str) {
        self.process = Some(Worker::start_logged(
            &self.servers,
            token,
            self.dir.path(),
            &["--slots", "2", "--lease-seconds", "10"],
            &self.log,
        ));
    }

    fn kill(&mut self) {
        if let Some(mut worker) = self.process.take() {
            worker.kill_hard();
            release_mounts(self.dir.path());
        }
    }
}

/// Submit one batch to the first replica that takes it; its job ids.
async fn submit(
    client: &reqwest::Client,
    urls: &[String],
    token: &str,
    codes: &[String],
) -> Vec<String> {
    let codes: Vec<&str> = codes.iter().map(String::as_str).collect();
    for url in urls {
        let Ok(response) = client
            .post(format!("{url}/v1/checks"))
            .bearer_auth(token)
            .json(&json!({ "snippets": snippets(&codes) }))
            .send()
            .await
        else {
            continue;
        };
        if !response.status().is_success() {
            continue;
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if let Some(results) = body["results"].as_array() {
            return results
                .iter()
                .map(|result| result["id"].as_str().unwrap().to_string())
                .collect();
        }
    }
    Vec::new()
}

fn artifacts_complete(artifacts: &Path, job_id: &str) -> bool {
    ARTIFACTS.iter().all(|name| {
        artifacts
            .join("jobs")
            .join(leanfarm_store::artifacts::shard(job_id))
            .join(job_id)
            .join(name)
            .exists()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_workers_a_replica_and_the_database_fail() {
    let mut postgres = PrivatePostgres::init();
    postgres.start();
    let store = postgres.url();
    let (user, worker_token) = tokens(&store);
    let artifacts_dir = tempfile::tempdir().unwrap();
    let artifacts = artifacts_dir.path().to_str().unwrap().to_string();
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let mut first = api_replica(first_dir.path(), &store, &["--artifacts", &artifacts]);
    let mut second = api_replica(second_dir.path(), &store, &["--artifacts", &artifacts]);
    first.token = Some(user.clone());
    second.token = Some(user.clone());
    let urls = vec![first.url.clone(), second.url.clone()];
    let mut workers: Vec<WorkerSlot> = (0..3)
        .map(|index| {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("worker.log");
            let servers = if index == 1 {
                format!("{},{}", second.url, first.url)
            } else {
                format!("{},{}", first.url, second.url)
            };
            WorkerSlot {
                dir,
                log,
                servers,
                process: None,
            }
        })
        .collect();
    for worker in &mut workers {
        worker.start(&worker_token);
    }

    // Submit batches of five for a while, to whichever replica answers:
    // faster than six slots check them, so that work is queued and running
    // when the database goes down.
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let submitter = {
        let (accepted, urls, user) = (Arc::clone(&accepted), urls.clone(), user.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut batch = 0;
            while started.elapsed() < SUBMITTING {
                batch += 1;
                let codes: Vec<String> = (0..5)
                    .map(|index| {
                        format!(
                            "-- sim: sleep 600\ntheorem chaos_{batch}_{index} : True := trivial"
                        )
                    })
                    .collect();
                let ids = submit(&client, &urls, &user, &codes).await;
                accepted.lock().unwrap().extend(ids);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let at = |seconds: u64| async move {
        let target = started + Duration::from_secs(seconds);
        tokio::time::sleep_until(target.into()).await;
    };
    let mut worker_kills = 0;
    at(2).await;
    workers[0].kill();
    worker_kills += 1;
    at(3).await;
    workers[0].start(&worker_token);
    at(4).await;
    workers[1].kill();
    worker_kills += 1;
    at(5).await;
    workers[1].start(&worker_token);
    at(6).await;
    first.kill_hard();
    at(7).await;
    workers[2].kill();
    worker_kills += 1;
    at(8).await;
    workers[2].start(&worker_token);
    submitter.await.unwrap();
    let accepted: Vec<String> = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() >= 50,
        "too few jobs accepted: {}",
        accepted.len()
    );

    // The database goes down while jobs are running and queued.
    postgres.stop();
    let outage_started = Instant::now();
    tokio::time::sleep(OUTAGE / 3).await;
    // Checks that were running when the database went down have finished:
    // their verdicts wait in the spools.
    let spooled_in_outage: usize = workers
        .iter()
        .map(|worker| {
            std::fs::read_dir(worker.dir.path().join("spool"))
                .map(|entries| entries.count())
                .unwrap_or(0)
        })
        .sum();
    workers[0].kill();
    worker_kills += 1;
    workers[0].start(&worker_token);
    tokio::time::sleep(OUTAGE.saturating_sub(outage_started.elapsed())).await;
    postgres.start();
    let outage = outage_started.elapsed();

    // Every accepted job reaches its verdict.
    let views = second.wait_final(&accepted, Duration::from_secs(90)).await;
    let done = views.iter().filter(|view| view["state"] == "done").count();
    let dead: Vec<&Value> = views
        .iter()
        .filter(|view| view["state"] == "dead")
        .collect();
    let not_valid: Vec<&Value> = views
        .iter()
        .filter(|view| view["state"] == "done" && view["verdict"]["status"] != "valid")
        .collect();

    // Every verdict's artifacts, written by whichever replica is alive.
    let deadline = Instant::now() + Duration::from_secs(40);
    let missing_artifacts = loop {
        let missing: Vec<&String> = accepted
            .iter()
            .filter(|id| !artifacts_complete(artifacts_dir.path(), id))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.len();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let logs: Vec<&Path> = workers.iter().map(|worker| worker.log.as_path()).collect();
    let started_runs = log_events(&logs, "check started");
    let held = log_events(&logs, "verdict held until stored");
    let stored = log_events(&logs, "attempt finished");
    let runs: usize = started_runs.values().sum();
    let rerun_after_verdict: Vec<(&String, &usize)> =
        held.iter().filter(|(_, count)| **count > 1).collect();
    let without_held_verdict = accepted.iter().filter(|id| !held.contains_key(*id)).count();
    let restarted_runs = started_runs.values().filter(|count| **count > 1).count();
    println!("chaos ledger:");
    println!("  jobs accepted                      {}", accepted.len());
    println!("  jobs done                          {done}");
    println!("  jobs dead                          {}", dead.len());
    println!("  verdicts not valid                 {}", not_valid.len());
    println!("  checks started                     {runs}");
    println!("  jobs started again (killed runs)   {restarted_runs}");
    println!(
        "  verdicts reached                   {}",
        held.values().sum::<usize>()
    );
    println!(
        "  verdicts stored by their worker    {}",
        stored.values().sum::<usize>()
    );
    println!(
        "  verdicts reached twice             {}",
        rerun_after_verdict.len()
    );
    println!("  jobs missing artifacts             {missing_artifacts}");
    println!("  worker kills                       {worker_kills}");
    println!("  verdicts spooled in the outage     {spooled_in_outage}");
    println!(
        "  database outage                    {:.1} s",
        outage.as_secs_f64()
    );

    assert_eq!(done, accepted.len(), "not every accepted job is done");
    assert!(dead.is_empty(), "dead jobs: {dead:?}");
    assert!(not_valid.is_empty(), "unexpected verdicts: {not_valid:?}");
    assert_eq!(missing_artifacts, 0, "jobs without all their artifacts");
    assert!(
        rerun_after_verdict.is_empty(),
        "checks run again after their verdict was reached: {rerun_after_verdict:?}"
    );
    assert_eq!(
        without_held_verdict, 0,
        "jobs done without a worker's verdict"
    );
    // The outage really was longer than the old window, with verdicts held through it.
    assert!(outage > Duration::from_secs(21));
    assert!(
        spooled_in_outage > 0,
        "no verdict was waiting out the outage"
    );
    drop(second);
    drop(first);
    for worker in &mut workers {
        worker.kill();
    }
}

//! A worker long-polling one API replica is woken by work another replica
//! enqueues (PostgreSQL): the lease answers with the job while its wait
//! still has most of its time left, instead of at the end of the wait.

mod common;

use leanfarm_server::{AppState, Limits};
use leanfarm_store::{ArtifactStore, NewJob, Store};
use leanfarm_testkit::postgres::TestDatabase;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn replica(url: &str) -> Arc<AppState> {
    let store = Store::open(url).await.unwrap();
    let artifacts = ArtifactStore::open("memory://").unwrap();
    AppState::new(store, artifacts, None, Limits::default(), false)
}

#[tokio::test]
async fn a_job_enqueued_on_one_replica_wakes_a_worker_waiting_on_another() {
    let database = TestDatabase::create("server_wakeups");
    let (replica_a, replica_b) = (replica(&database.url).await, replica(&database.url).await);
    let farm_b = common::start_without_workers(&replica_b).await;
    let token = common::farm_worker_token(&replica_b).await;
    const WAIT_SECONDS: f64 = 30.0;
    let started = Instant::now();
    let waiting = tokio::spawn({
        let url = format!("http://{}/v1/worker/lease", farm_b.local_addr);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"worker_id": "w", "max": 4, "lease_seconds": 60.0, "wait_seconds": WAIT_SECONDS}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    // The lease is waiting on an empty queue on replica B.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished(), "the lease answered without work");
    let request = serde_json::from_value(json!({"code": "theorem t : True := trivial"})).unwrap();
    replica_a
        .store
        .enqueue(vec![NewJob {
            id: "from-a".into(),
            tenant: "acme".into(),
            batch_id: None,
            request,
            header_key: String::new(),
            max_attempts: 3,
            toolchain: None,
            project: None,
        }])
        .await
        .unwrap();
    let answer = waiting.await.unwrap();
    assert_eq!(answer["leases"][0]["job_id"], "from-a", "{answer}");
    // Woken, not answered at the end of its wait (which would bring the
    // job too, on its last claim).
    assert!(started.elapsed() < Duration::from_secs_f64(WAIT_SECONDS / 2.0));
    farm_b.stop().await;
}

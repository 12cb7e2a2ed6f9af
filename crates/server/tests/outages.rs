//! What keeps a farm whole through outages, on the server's side: the
//! artifacts outbox (a replica that starts writes the artifacts a crashed
//! replica owed; a completion retried after its answer was lost settles
//! them) and the operator's dead-letter API (list, retry by id, batch or
//! all, with a reason; operator tokens only; the dead-jobs gauge).

mod common;

use leanfarm_core::{CheckRequest, Verdict};
use leanfarm_server::auth::{new_token, token_digest};
use leanfarm_server::AppState;
use leanfarm_store::{
    CompleteOutcome, JobState, Lease, NewJob, ReleaseOutcome, Store, TenantKeyScope, TenantRecord,
    WorkerOffer,
};
use leanfarm_worker::{HttpQueue, JobQueue};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ARTIFACTS: [&str; 3] = ["input.json", "summary.json", "messages.json"];

async fn state() -> Arc<AppState> {
    common::memory_state().await
}

fn new_job(id: &str, batch: &str, max_attempts: u32) -> NewJob {
    let request: CheckRequest =
        serde_json::from_value(json!({ "code": format!("theorem {id} : True := trivial") }))
            .unwrap();
    NewJob {
        id: id.to_string(),
        tenant: "acme".to_string(),
        batch_id: Some(batch.to_string()),
        request,
        header_key: String::new(),
        max_attempts,
        toolchain: None,
        project: None,
    }
}

async fn claim_one(store: &Store) -> Lease {
    let mut leases = store
        .claim("w", 1, Duration::from_secs(60), &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    leases.remove(0)
}

async fn artifacts_present(state: &AppState, job_id: &str) -> Vec<&'static str> {
    let mut present = Vec::new();
    for name in ARTIFACTS {
        if state.artifacts.get(job_id, name).await.unwrap().is_some() {
            present.push(name);
        }
    }
    present
}

#[tokio::test]
async fn a_starting_replica_writes_the_artifacts_a_crashed_replica_owed() {
    let state = state().await;
    state
        .store
        .enqueue(vec![new_job("crashed", "b", 3)])
        .await
        .unwrap();
    let lease = claim_one(&state.store).await;
    // A replica stored the verdict and died before writing the artifacts.
    assert_eq!(
        state
            .store
            .complete("crashed", &lease.lease_id, &Verdict::valid())
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );
    assert!(artifacts_present(&state, "crashed").await.is_empty());
    assert_eq!(
        state
            .store
            .jobs_owing_artifacts(None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let farm = common::start_without_workers(&state).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while artifacts_present(&state, "crashed").await.len() < ARTIFACTS.len() {
        assert!(
            Instant::now() < deadline,
            "the start-up sweep wrote nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = state
        .artifacts
        .get("crashed", "summary.json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Verdict>(&summary).unwrap(),
        Verdict::valid()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !state
        .store
        .jobs_owing_artifacts(None, 10)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the outbox mark was not cleared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    farm.stop().await;
}

#[tokio::test]
async fn a_completion_retried_after_a_lost_answer_settles_the_artifacts() {
    let state = state().await;
    let token = common::farm_worker_token(&state).await;
    let farm = common::start_without_workers(&state).await;
    // Let the start-up sweep pass before the verdict is stored.
    tokio::time::sleep(Duration::from_millis(200)).await;
    state
        .store
        .enqueue(vec![new_job("retried", "b", 3)])
        .await
        .unwrap();
    let queue = HttpQueue::new(&format!("http://{}", farm.local_addr), &token).unwrap();
    let lease = queue
        .lease("w", 1, Duration::from_secs(60), WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    // The first try was committed by a replica that died before answering.
    state
        .store
        .complete("retried", &lease.lease_id, &Verdict::valid())
        .await
        .unwrap();
    let outcome = queue
        .complete(&lease, &Verdict::valid(), Instant::now())
        .await
        .unwrap();
    assert_eq!(outcome, CompleteOutcome::Stale);
    // Settled before the answer, not by a later sweep.
    assert_eq!(artifacts_present(&state, "retried").await, ARTIFACTS);
    assert!(state
        .store
        .jobs_owing_artifacts(None, 10)
        .await
        .unwrap()
        .is_empty());
    farm.stop().await;
}

struct Operator {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Operator {
    async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn retry(&self, body: Value, token: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/v1/operator/jobs/retry", self.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn dead_ids(&self) -> Vec<String> {
        let (status, body) = self.get("/v1/operator/jobs", Some(&self.token)).await;
        assert_eq!(status, 200, "{body}");
        body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn dead_gauge(&self) -> String {
        let text = self
            .client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix("lean_farm_queue_size{state=\"dead\"} "))
            .unwrap_or("absent")
            .to_string()
    }
}

#[tokio::test]
async fn operators_list_dead_jobs_and_put_them_back_with_a_reason() {
    let state = state().await;
    state
        .store
        .upsert_tenant(&TenantRecord {
            name: "acme".into(),
            max_queued: 1000,
            max_running: 100,
            requests_per_second: 0.0,
            created_at: 0,
        })
        .await
        .unwrap();
    let operator_token = new_token();
    state
        .store
        .create_operator_key(&token_digest(&operator_token), None)
        .await
        .unwrap();
    let worker_token = common::farm_worker_token(&state).await;
    let user_token = new_token();
    state
        .store
        .create_tenant_key(
            "acme",
            TenantKeyScope::User,
            &token_digest(&user_token),
            None,
        )
        .await
        .unwrap();
    let jobs = vec![
        new_job("a", "one", 1),
        new_job("b", "two", 1),
        new_job("c", "two", 1),
        new_job("d", "three", 1),
    ];
    state.store.enqueue(jobs).await.unwrap();
    for _ in 0..4 {
        let lease = claim_one(&state.store).await;
        assert_eq!(
            state
                .store
                .release(
                    &lease.job_id,
                    &lease.lease_id,
                    "sandbox broke",
                    Duration::ZERO
                )
                .await
                .unwrap(),
            ReleaseOutcome::DeadLettered
        );
    }
    let farm = common::start_without_workers(&state).await;
    let operator = Operator {
        client: reqwest::Client::new(),
        url: format!("http://{}", farm.local_addr),
        token: operator_token.clone(),
    };
    assert_eq!(operator.dead_gauge().await, "4");

    // Only an operator token.
    assert_eq!(operator.get("/v1/operator/jobs", None).await.0, 401);
    assert_eq!(
        operator
            .get("/v1/operator/jobs", Some(&worker_token))
            .await
            .0,
        403
    );
    assert_eq!(
        operator.get("/v1/operator/jobs", Some(&user_token)).await.0,
        403
    );
    let retry_a = json!({ "job_ids": ["a"], "reason": "sandbox fixed" });
    assert_eq!(operator.retry(retry_a.clone(), &worker_token).await.0, 403);

    let (status, body) = operator
        .get("/v1/operator/jobs", Some(&operator_token))
        .await;
    assert_eq!(status, 200);
    let first = &body["jobs"][0];
    assert_eq!(first["id"], "a");
    assert_eq!(first["state"], "dead");
    assert_eq!(first["last_error"], "sandbox broke");
    assert_eq!(first["attempts"], 1);
    assert_eq!(operator.dead_ids().await, ["a", "b", "c", "d"]);

    // A retry needs a reason and exactly one selection.
    for bad in [
        json!({ "job_ids": ["a"], "reason": " " }),
        json!({ "job_ids": ["a"], "batch_id": "two", "reason": "x" }),
        json!({ "job_ids": [], "reason": "x" }),
        json!({ "reason": "x" }),
    ] {
        let (status, body) = operator.retry(bad.clone(), &operator_token).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    assert_eq!(
        operator.dead_ids().await.len(),
        4,
        "a refused retry changed nothing"
    );

    let (status, body) = operator.retry(retry_a, &operator_token).await;
    assert_eq!((status, body["retried"].clone()), (200, json!(["a"])));
    let a = state.store.get("a").await.unwrap().unwrap();
    assert_eq!(a.state, JobState::Queued);
    assert_eq!(a.last_error.as_deref(), Some("retried: sandbox fixed"));
    let (_, body) = operator
        .retry(
            json!({ "batch_id": "two", "reason": "batch two" }),
            &operator_token,
        )
        .await;
    assert_eq!(body["retried"], json!(["b", "c"]));
    assert_eq!(operator.dead_ids().await, ["d"]);
    assert_eq!(operator.dead_gauge().await, "1");
    let (_, body) = operator
        .retry(
            json!({ "all_dead": true, "reason": "everything" }),
            &operator_token,
        )
        .await;
    assert_eq!(body["retried"], json!(["d"]));
    assert!(operator.dead_ids().await.is_empty());
    assert_eq!(operator.dead_gauge().await, "0");
    let (status, body) = operator
        .get("/v1/operator/jobs?state=queued", Some(&operator_token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 4);
    farm.stop().await;
}

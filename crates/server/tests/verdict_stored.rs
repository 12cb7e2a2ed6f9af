//! What follows a stored verdict happens the same way whichever path stored
//! it: the in-process queue of `leanfarm serve`'s embedded workers, or a
//! remote worker's completion through `/v1/worker/complete`. Both count the
//! job in the metrics, wake the requests waiting for it, and write its
//! artifacts; a stale completion does none of these.

mod common;

use leanfarm_core::{CheckRequest, ReasonCode, Verdict, VerdictReason};
use leanfarm_server::auth::{new_token, token_digest};
use leanfarm_server::{AppState, InProcessQueue};
use leanfarm_store::{CompleteOutcome, Lease, NewJob, WorkerOffer};
use leanfarm_worker::{HttpQueue, JobQueue};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

const TENANT: &str = "acme";

async fn state() -> Arc<AppState> {
    common::memory_state().await
}

async fn enqueue_one(state: &AppState, job_id: &str) {
    let request: CheckRequest =
        serde_json::from_value(serde_json::json!({ "code": "theorem t : True := trivial" }))
            .unwrap();
    state
        .store
        .enqueue(vec![NewJob {
            id: job_id.to_string(),
            tenant: TENANT.to_string(),
            batch_id: None,
            request,
            header_key: String::new(),
            max_attempts: 3,
            toolchain: None,
            project: None,
        }])
        .await
        .unwrap();
}

async fn lease_one(queue: &impl JobQueue) -> Lease {
    let mut leases = queue
        .lease(
            "test-worker",
            1,
            Duration::from_secs(60),
            WorkerOffer::default(),
        )
        .await
        .unwrap();
    assert_eq!(leases.len(), 1, "one job was queued");
    leases.remove(0)
}

fn verdict() -> Verdict {
    Verdict::rejected(VerdictReason::new(
        ReasonCode::LeanError,
        "unknown identifier",
    ))
}

fn tenant_count(state: &AppState) -> String {
    let text = state.metrics.render(None, None, None);
    let wanted =
        format!("lean_farm_tenant_jobs_total{{tenant=\"{TENANT}\",status=\"lean_error\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .unwrap_or("absent")
        .to_string()
}

/// The effects of one stored verdict: counted once, waiters woken, artifacts written.
async fn assert_effects_of_one_verdict(
    state: &AppState,
    job_id: &str,
    completions: &mut broadcast::Receiver<String>,
) {
    let woken = tokio::time::timeout(Duration::from_secs(5), completions.recv())
        .await
        .expect("the waiting requests are woken")
        .unwrap();
    assert_eq!(woken, job_id);
    assert_eq!(tenant_count(state), "1");
    let deadline = Instant::now() + Duration::from_secs(5);
    let summary = loop {
        if let Some(bytes) = state.artifacts.get(job_id, "summary.json").await.unwrap() {
            break bytes;
        }
        assert!(Instant::now() < deadline, "summary.json was never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let summary: Verdict = serde_json::from_slice(&summary).unwrap();
    assert_eq!(summary, verdict());
    for name in ["input.json", "messages.json"] {
        assert!(
            state.artifacts.get(job_id, name).await.unwrap().is_some(),
            "{name} was not written"
        );
    }
}

/// A second completion of the same lease is stale and changes nothing.
async fn assert_stale_completion_has_no_effect(
    state: &AppState,
    outcome: CompleteOutcome,
    completions: &mut broadcast::Receiver<String>,
) {
    assert_eq!(outcome, CompleteOutcome::Stale);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        completions.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
    assert_eq!(tenant_count(state), "1");
}

#[tokio::test]
async fn the_in_process_queue_does_what_follows_a_stored_verdict() {
    let state = state().await;
    enqueue_one(&state, "job-local").await;
    let queue = InProcessQueue::new(Arc::clone(&state));
    let lease = lease_one(&queue).await;
    let mut completions = state.completions.subscribe();
    assert_eq!(tenant_count(&state), "absent");

    let outcome = queue
        .complete(&lease, &verdict(), Instant::now())
        .await
        .unwrap();
    assert_eq!(outcome, CompleteOutcome::Stored);
    assert_effects_of_one_verdict(&state, "job-local", &mut completions).await;

    let again = queue
        .complete(&lease, &verdict(), Instant::now())
        .await
        .unwrap();
    assert_stale_completion_has_no_effect(&state, again, &mut completions).await;
}

#[tokio::test]
async fn a_remote_completion_does_what_follows_a_stored_verdict() {
    let state = state().await;
    let token = common::farm_worker_token(&state).await;
    enqueue_one(&state, "job-remote").await;
    // No driver: this farm has no in-process workers; the job waits for ours.
    let farm = common::start_without_workers(&state).await;
    let queue = HttpQueue::new(&format!("http://{}", farm.local_addr), &token).unwrap();
    let lease = lease_one(&queue).await;
    let mut completions = state.completions.subscribe();
    assert_eq!(tenant_count(&state), "absent");

    let outcome = queue
        .complete(&lease, &verdict(), Instant::now())
        .await
        .unwrap();
    assert_eq!(outcome, CompleteOutcome::Stored);
    assert_effects_of_one_verdict(&state, "job-remote", &mut completions).await;

    let again = queue
        .complete(&lease, &verdict(), Instant::now())
        .await
        .unwrap();
    assert_stale_completion_has_no_effect(&state, again, &mut completions).await;
    farm.stop().await;
}

/// A tenant's worker token leases, renews and completes only its tenant's
/// jobs: another tenant's job is not leased to it, and a lease it learned
/// some other way is refused with 403 and changes nothing.
#[tokio::test]
async fn a_tenant_worker_token_touches_only_its_tenants_jobs() {
    let state = state().await;
    for tenant in [TENANT, "other"] {
        state
            .store
            .upsert_tenant(&leanfarm_store::TenantRecord {
                name: tenant.to_string(),
                max_queued: 1000,
                max_running: 10,
                requests_per_second: 0.0,
                created_at: 0,
            })
            .await
            .unwrap();
    }
    let other_worker = new_token();
    state
        .store
        .create_tenant_key(
            "other",
            leanfarm_store::TenantKeyScope::Worker,
            &token_digest(&other_worker),
            None,
        )
        .await
        .unwrap();
    let farm_worker = common::farm_worker_token(&state).await;
    enqueue_one(&state, "job-acme").await;
    let farm = common::start_without_workers(&state).await;
    let url = format!("http://{}", farm.local_addr);
    let other = HttpQueue::new(&url, &other_worker).unwrap();
    let leases = other
        .lease(
            "other-worker",
            4,
            Duration::from_secs(60),
            WorkerOffer::default(),
        )
        .await
        .unwrap();
    assert!(
        leases.is_empty(),
        "another tenant's job was leased: {leases:?}"
    );

    let lease = lease_one(&HttpQueue::new(&url, &farm_worker).unwrap()).await;
    let forged = other
        .complete(&lease, &Verdict::valid(), Instant::now())
        .await;
    let error = forged.expect_err("a forged completion must be refused");
    assert!(error.to_string().contains("403"), "{error}");
    let record = state.store.get("job-acme").await.unwrap().unwrap();
    assert!(record.result.is_none(), "the forged verdict was stored");
    farm.stop().await;
}

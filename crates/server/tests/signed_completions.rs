//! Signed verdicts on the worker API: a farm that trusts worker keys
//! publishes them at `GET /v1/keys`, stores a completion whose attestation
//! verifies, and refuses (403, naming the failed check) one that is missing,
//! signed with another worker's key, or about another verdict. A farm that
//! trusts no key stores completions without attestations as before.

mod common;

use leanfarm_attest::{KeyEntry, KeyFile, SigningKeys, Statement, TrustedKeys, WorkerIdentity};
use leanfarm_core::{CheckRequest, ReasonCode, Verdict, VerdictReason};
use leanfarm_server::{AppState, Farm};
use leanfarm_store::{CompleteOutcome, Lease, NewJob, WorkerOffer};
use leanfarm_worker::protocol::CompleteRequest;
use leanfarm_worker::{HttpQueue, JobQueue, QueueError, VerdictSigner};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One key file per worker, each key bound to its worker in the farm's trust.
fn worker_keys(worker_id: &str) -> KeyFile {
    let mut entry = KeyEntry::generate(&format!("{worker_id}-key"), 0, None).unwrap();
    entry.worker_id = Some(worker_id.to_string());
    KeyFile { keys: vec![entry] }
}

fn identity(worker_id: &str) -> WorkerIdentity {
    WorkerIdentity {
        worker_id: worker_id.to_string(),
        toolchain_sha256: "unhashed".into(),
        project_sha256: "unhashed".into(),
    }
}

fn signer(keys: &KeyFile, worker_id: &str) -> VerdictSigner {
    VerdictSigner {
        keys: SigningKeys::new(keys).unwrap(),
        identity: identity(worker_id),
    }
}

fn verdict() -> Verdict {
    Verdict::rejected(VerdictReason::new(
        ReasonCode::LeanError,
        "unknown identifier",
    ))
}

struct Setup {
    state: Arc<AppState>,
    farm: Farm,
    url: String,
    token: String,
    one: KeyFile,
    two: KeyFile,
}

/// A farm without in-process workers, trusting worker-1's and worker-2's
/// public keys when `trusting`, with `jobs` queued.
async fn setup(trusting: bool, jobs: usize) -> Setup {
    let state = common::memory_state().await;
    let (one, two) = (worker_keys("worker-1"), worker_keys("worker-2"));
    if trusting {
        let mut public = one.public_only();
        public.keys.extend(two.public_only().keys);
        state
            .trusted_worker_keys
            .set(TrustedKeys::new(&public).unwrap())
            .unwrap();
    }
    let token = common::farm_worker_token(&state).await;
    let request: CheckRequest =
        serde_json::from_value(serde_json::json!({ "code": "theorem t : True := trivial" }))
            .unwrap();
    let jobs = (0..jobs)
        .map(|index| NewJob {
            id: format!("job-{index}"),
            tenant: "acme".to_string(),
            batch_id: None,
            request: request.clone(),
            header_key: String::new(),
            max_attempts: 3,
            toolchain: None,
            project: None,
        })
        .collect();
    state.store.enqueue(jobs).await.unwrap();
    let farm = common::start_without_workers(&state).await;
    let url = format!("http://{}", farm.local_addr);
    Setup {
        state,
        farm,
        url,
        token,
        one,
        two,
    }
}

async fn lease_one(queue: &impl JobQueue) -> Lease {
    let mut leases = queue
        .lease("w", 1, Duration::from_secs(60), WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    leases.remove(0)
}

fn refused_with(outcome: Result<CompleteOutcome, QueueError>) -> String {
    match outcome {
        Err(QueueError::Refused {
            status: 403, body, ..
        }) => body,
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_farm_publishes_the_public_keys_it_trusts() {
    let setup = setup(true, 0).await;
    let body = reqwest::get(format!("{}/v1/keys", setup.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let published = KeyFile::parse(&body).unwrap();
    let ids: Vec<&str> = published
        .keys
        .iter()
        .map(|key| key.key_id.as_str())
        .collect();
    assert_eq!(ids, ["worker-1-key", "worker-2-key"]);
    assert_eq!(published.keys[0].public_key, setup.one.keys[0].public_key);
    assert_eq!(published.keys[0].worker_id.as_deref(), Some("worker-1"));
    assert!(published.keys.iter().all(|key| key.secret_key.is_none()));
    assert!(!body.contains(&setup.one.keys[0].secret_key.clone().unwrap().0));
    setup.farm.stop().await;

    // A farm that trusts no key publishes none.
    let untrusting = setup_untrusting_keys().await;
    assert_eq!(untrusting, r#"{"keys":[]}"#);
}

async fn setup_untrusting_keys() -> String {
    let setup = setup(false, 0).await;
    let body = reqwest::get(format!("{}/v1/keys", setup.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    setup.farm.stop().await;
    body
}

#[tokio::test]
async fn a_signed_completion_is_stored_and_a_forged_one_refused() {
    let setup = setup(true, 4).await;

    // Worker 1 signs with its own key: stored.
    let honest = HttpQueue::new(&setup.url, &setup.token)
        .unwrap()
        .with_signer(signer(&setup.one, "worker-1"));
    let lease = lease_one(&honest).await;
    let outcome = honest.complete(&lease, &verdict(), Instant::now()).await;
    assert_eq!(outcome.unwrap(), CompleteOutcome::Stored);
    let record = setup.state.store.get(&lease.job_id).await.unwrap().unwrap();
    assert_eq!(record.result.unwrap(), verdict());

    // Worker 1 claims to be worker 2, with its own key: refused.
    let forger = HttpQueue::new(&setup.url, &setup.token)
        .unwrap()
        .with_signer(signer(&setup.one, "worker-2"));
    let lease = lease_one(&forger).await;
    let body = refused_with(forger.complete(&lease, &verdict(), Instant::now()).await);
    assert!(body.contains("key check failed"), "{body}");
    assert!(
        body.contains("trusted for worker worker-1, not for worker-2"),
        "{body}"
    );

    // No attestation at all: refused.
    let unsigned = HttpQueue::new(&setup.url, &setup.token).unwrap();
    let body = refused_with(unsigned.complete(&lease, &verdict(), Instant::now()).await);
    assert!(body.contains("requires a signed attestation"), "{body}");

    // Another key under the id of worker 1's trusted key: refused.
    let stranger_keys = worker_keys("worker-1");
    let stranger = HttpQueue::new(&setup.url, &setup.token)
        .unwrap()
        .with_signer(signer(&stranger_keys, "worker-1"));
    let body = refused_with(stranger.complete(&lease, &verdict(), Instant::now()).await);
    assert!(body.contains("signature check failed"), "{body}");

    // A valid attestation of one verdict sent with another: refused.
    let request = lease.request.clone();
    let statement = Statement::for_verdict(&request, &verdict(), &identity("worker-1"), 10);
    let attestation = SigningKeys::new(&setup.one)
        .unwrap()
        .sign(statement)
        .unwrap();
    let mut other = Verdict::valid();
    other.axioms.insert("t".into(), vec![]);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/worker/complete", setup.url))
        .bearer_auth(&setup.token)
        .json(&CompleteRequest {
            job_id: lease.job_id.clone(),
            lease_id: lease.lease_id.clone(),
            verdict: other,
            attestation: Some(attestation.clone()),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body = response.text().await.unwrap();
    assert!(body.contains("verdict check failed"), "{body}");
    assert!(body.contains("status"), "{body}");

    // The same attestation with its own verdict, on the job it names: stored.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/worker/complete", setup.url))
        .bearer_auth(&setup.token)
        .json(&CompleteRequest {
            job_id: lease.job_id.clone(),
            lease_id: lease.lease_id.clone(),
            verdict: verdict(),
            attestation: Some(attestation),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let job = setup.state.store.get(&lease.job_id).await.unwrap().unwrap();
    assert_eq!(job.result.unwrap(), verdict());

    // Worker 2 with its own key: stored.
    let second = HttpQueue::new(&setup.url, &setup.token)
        .unwrap()
        .with_signer(signer(&setup.two, "worker-2"));
    let lease = lease_one(&second).await;
    let outcome = second.complete(&lease, &verdict(), Instant::now()).await;
    assert_eq!(outcome.unwrap(), CompleteOutcome::Stored);
    setup.farm.stop().await;
}

#[tokio::test]
async fn a_farm_that_trusts_no_key_needs_no_attestation() {
    let setup = setup(false, 1).await;
    let unsigned = HttpQueue::new(&setup.url, &setup.token).unwrap();
    let lease = lease_one(&unsigned).await;
    let outcome = unsigned.complete(&lease, &verdict(), Instant::now()).await;
    assert_eq!(outcome.unwrap(), CompleteOutcome::Stored);
    setup.farm.stop().await;
}

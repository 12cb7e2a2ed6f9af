//! `HttpQueue` against a scripted farm: each call is the documented POST
//! with the worker token and the documented body, each answer is read back,
//! and each way a call can fail is its own `QueueError`.

use leanfarm_core::{CheckRequest, ReasonCode, Verdict, VerdictReason};
use leanfarm_store::{CompleteOutcome, Lease, ReleaseOutcome, WorkerOffer};
use leanfarm_worker::{HttpQueue, JobQueue, QueueError, LEASE_WAIT_SECONDS};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request as the farm received it.
#[derive(Debug)]
struct Received {
    method_and_path: String,
    authorization: Option<String>,
    body: Value,
}

/// A farm that answers each connection with the next scripted reply
/// (status, body) and reports what it received.
async fn scripted_farm(replies: Vec<(u16, String)>) -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for (status, reply) in replies {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut bytes = Vec::new();
            let head_end = loop {
                let mut chunk = [0u8; 4096];
                let read = stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "connection closed before the request ended");
                bytes.extend_from_slice(&chunk[..read]);
                if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8(bytes[..head_end].to_vec()).unwrap();
            let header = |name: &str| {
                head.lines().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_string())
                })
            };
            let length: usize = header("content-length").unwrap().parse().unwrap();
            while bytes.len() < head_end + length {
                let mut chunk = [0u8; 4096];
                let read = stream.read(&mut chunk).await.unwrap();
                bytes.extend_from_slice(&chunk[..read]);
            }
            let first_line = head.lines().next().unwrap();
            let method_and_path = first_line.rsplit_once(' ').unwrap().0.to_string();
            let _ = sender.send(Received {
                method_and_path,
                authorization: header("authorization"),
                body: serde_json::from_slice(&bytes[head_end..]).unwrap(),
            });
            let answer = format!(
                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });
    (url, receiver)
}

fn lease() -> Lease {
    Lease {
        job_id: "job-1".into(),
        lease_id: "lease-1".into(),
        attempt: 1,
        tenant: "default".into(),
        request: serde_json::from_value::<CheckRequest>(
            json!({ "code": "theorem t : True := trivial" }),
        )
        .unwrap(),
        header_key: String::new(),
        expires_at: 0,
    }
}

#[tokio::test]
async fn lease_posts_the_offer_with_the_token_and_reads_the_leases() {
    let leases = json!({ "leases": [serde_json::to_value(lease()).unwrap()] }).to_string();
    let (url, mut received) = scripted_farm(vec![(200, leases)]).await;
    let queue = HttpQueue::new(&url, "lf_worker_token").unwrap();
    let offer = WorkerOffer {
        toolchain: Some("v4.9.0".into()),
        project: Some("mathlib".into()),
        warm_headers: vec!["import Mathlib".into()],
    };
    let leased = queue
        .lease("worker-7", 4, Duration::from_secs(30), offer)
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].job_id, "job-1");
    assert_eq!(leased[0].request, lease().request);
    let request = received.recv().await.unwrap();
    // The base URL's trailing slash is not doubled.
    assert_eq!(request.method_and_path, "POST /v1/worker/lease");
    assert_eq!(
        request.authorization.as_deref(),
        Some("Bearer lf_worker_token")
    );
    assert_eq!(
        request.body,
        json!({
            "worker_id": "worker-7",
            "max": 4,
            "lease_seconds": 30.0,
            "warm_headers": ["import Mathlib"],
            "wait_seconds": LEASE_WAIT_SECONDS,
            "toolchain": "v4.9.0",
            "project": "mathlib",
        })
    );
}

#[tokio::test]
async fn renew_is_held_only_when_the_farm_says_so() {
    let replies = vec![
        (200, json!({ "held": [true] }).to_string()),
        (200, json!({ "held": [false] }).to_string()),
        (200, json!({ "held": [] }).to_string()),
    ];
    let (url, mut received) = scripted_farm(replies).await;
    let queue = HttpQueue::new(&url, "t").unwrap();
    let lease = lease();
    assert!(queue.renew(&lease, Duration::from_secs(9)).await.unwrap());
    assert!(!queue.renew(&lease, Duration::from_secs(9)).await.unwrap());
    assert!(!queue.renew(&lease, Duration::from_secs(9)).await.unwrap());
    let request = received.recv().await.unwrap();
    assert_eq!(request.method_and_path, "POST /v1/worker/renew");
    assert_eq!(
        request.body,
        json!({ "leases": [{ "job_id": "job-1", "lease_id": "lease-1" }], "lease_seconds": 9.0 })
    );
}

#[tokio::test]
async fn complete_sends_the_verdict_and_reads_the_outcome() {
    let (url, mut received) =
        scripted_farm(vec![(200, json!({ "outcome": "stale" }).to_string())]).await;
    let queue = HttpQueue::new(&url, "t").unwrap();
    let verdict = Verdict::rejected(VerdictReason::new(ReasonCode::LeanError, "why"));
    let outcome = queue
        .complete(&lease(), &verdict, Instant::now())
        .await
        .unwrap();
    assert_eq!(outcome, CompleteOutcome::Stale);
    let request = received.recv().await.unwrap();
    assert_eq!(request.method_and_path, "POST /v1/worker/complete");
    assert_eq!(request.body["job_id"], "job-1");
    assert_eq!(request.body["lease_id"], "lease-1");
    assert_eq!(
        request.body["verdict"],
        serde_json::to_value(&verdict).unwrap()
    );
}

#[tokio::test]
async fn release_sends_the_error_and_the_backoff() {
    let (url, mut received) =
        scripted_farm(vec![(200, json!({ "outcome": "requeued" }).to_string())]).await;
    let queue = HttpQueue::new(&url, "t").unwrap();
    let outcome = queue
        .release(
            &lease(),
            "the sandbox could not start",
            Duration::from_millis(2500),
        )
        .await
        .unwrap();
    assert_eq!(outcome, ReleaseOutcome::Requeued);
    let request = received.recv().await.unwrap();
    assert_eq!(request.method_and_path, "POST /v1/worker/release");
    assert_eq!(
        request.body,
        json!({
            "job_id": "job-1",
            "lease_id": "lease-1",
            "error": "the sandbox could not start",
            "retry_after_seconds": 2.5,
        })
    );
}

#[tokio::test]
async fn an_error_status_is_refused_with_the_path_status_and_body() {
    let body = json!({ "error": { "code": "unauthorized" } }).to_string();
    let (url, _received) = scripted_farm(vec![(401, body.clone())]).await;
    let queue = HttpQueue::new(&url, "wrong").unwrap();
    let error = queue
        .renew(&lease(), Duration::from_secs(5))
        .await
        .unwrap_err();
    match &error {
        QueueError::Refused {
            path,
            status,
            body: answered,
        } => {
            assert_eq!(*path, "/v1/worker/renew");
            assert_eq!(*status, 401);
            assert_eq!(answered, &body);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.starts_with("/v1/worker/renew: the farm refused with 401"),
        "{message}"
    );
}

#[tokio::test]
async fn an_answer_that_is_not_the_promised_json_is_unreadable() {
    let (url, _received) = scripted_farm(vec![(200, "{\"leases\": 3}".to_string())]).await;
    let queue = HttpQueue::new(&url, "t").unwrap();
    let error = queue
        .lease("w", 1, Duration::from_secs(5), WorkerOffer::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            QueueError::UnreadableAnswer {
                path: "/v1/worker/lease",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_farm_that_is_not_there_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let queue = HttpQueue::new(&url, "t").unwrap();
    let error = queue
        .release(&lease(), "e", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            QueueError::Unreachable {
                path: "/v1/worker/release",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("the farm could not be reached"));
}

#[tokio::test]
async fn after_an_empty_lease_the_pause_is_short() {
    // The lease itself waited on the server; the client does not wait a poll interval.
    let queue = HttpQueue::new("http://127.0.0.1:9", "t").unwrap();
    let started = Instant::now();
    queue.wait_for_work(Duration::from_secs(30)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The URL of a port nothing listens on: a replica that is down.
async fn replica_that_is_down() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test]
async fn a_call_moves_to_the_next_replica_when_its_replica_is_down_and_stays_there() {
    let down = replica_that_is_down().await;
    let held = json!({ "held": [true] }).to_string();
    let (up, mut received) = scripted_farm(vec![(200, held.clone()), (200, held)]).await;
    let queue = HttpQueue::with_servers(&[down.clone(), up.clone()], "t").unwrap();
    assert_eq!(queue.current_server(), down);
    assert!(queue.renew(&lease(), Duration::from_secs(9)).await.unwrap());
    assert_eq!(queue.current_server(), up.trim_end_matches('/'));
    assert!(queue.renew(&lease(), Duration::from_secs(9)).await.unwrap());
    for _ in 0..2 {
        let request = received.recv().await.unwrap();
        assert_eq!(request.method_and_path, "POST /v1/worker/renew");
    }
}

#[tokio::test]
async fn a_replica_answering_503_is_left_but_a_refusal_of_the_request_is_not() {
    let unavailable = json!({ "error": { "code": "store_unavailable" } }).to_string();
    let bad_request = json!({ "error": { "code": "invalid_request" } }).to_string();
    let (first, mut first_received) =
        scripted_farm(vec![(503, unavailable), (400, bad_request)]).await;
    let stored = json!({ "outcome": "stored" }).to_string();
    let (second, mut second_received) = scripted_farm(vec![(200, stored)]).await;
    let queue = HttpQueue::with_servers(&[first.clone(), second.clone()], "t").unwrap();
    let outcome = queue
        .complete(&lease(), &Verdict::valid(), Instant::now())
        .await
        .unwrap();
    assert_eq!(outcome, CompleteOutcome::Stored);
    assert_eq!(queue.current_server(), second.trim_end_matches('/'));
    assert_eq!(
        first_received.recv().await.unwrap().method_and_path,
        "POST /v1/worker/complete"
    );
    assert_eq!(
        second_received.recv().await.unwrap().method_and_path,
        "POST /v1/worker/complete"
    );

    // A 400 is about the request: the same request fails on every replica.
    let queue = HttpQueue::with_servers(&[first, second], "t").unwrap();
    let error = queue
        .release(&lease(), "sandbox broke", Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(error, QueueError::Refused { status: 400, .. }),
        "{error}"
    );
    assert!(!error.is_replica_failure());
    assert!(error.is_refused_for_good());
    assert!(
        second_received.try_recv().is_err(),
        "a 400 was tried on another replica"
    );
}

#[tokio::test]
async fn when_every_replica_is_down_the_call_fails_and_no_replica_is_no_queue() {
    let queue = HttpQueue::with_servers(
        &[replica_that_is_down().await, replica_that_is_down().await],
        "t",
    )
    .unwrap();
    let error = queue
        .renew(&lease(), Duration::from_secs(9))
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::Unreachable { .. }), "{error}");
    assert!(error.is_replica_failure());
    assert!(!error.is_refused_for_good());
    let error = HttpQueue::with_servers(&[], "t").err().unwrap();
    assert!(matches!(error, QueueError::NoServers));
    assert_eq!(
        error.to_string(),
        "no farm url given: a worker needs at least one --server"
    );
}

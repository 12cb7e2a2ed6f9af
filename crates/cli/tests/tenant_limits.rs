//! A tenant's limits and retries across API replicas, with real
//! `leanfarm serve` processes on one real PostgreSQL: idempotency keys
//! that hold when retries race on two replicas, a request rate that holds
//! for the farm as a whole, and `max_queued` under concurrent submissions.

mod common;

use common::{api_replica, leanfarm, snippets, Server};
use leanfarm_testkit::postgres::TestDatabase;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A tenant with these limits and a user token of it.
fn tenant_with_token(store: &str, name: &str, limits: &[&str]) -> String {
    let mut args = vec!["tenant", "--store", store, "set", name];
    args.extend_from_slice(limits);
    leanfarm(&args);
    leanfarm(&["tenant", "--store", store, "key", name, "--scope", "user"])
}

/// Two API-only replicas on `store`, both sending `token`.
fn two_replicas(store: &str, token: &str) -> (tempfile::TempDir, Server, Server) {
    let data = tempfile::tempdir().unwrap();
    let mut first = api_replica(&data.path().join("first"), store, &[]);
    let mut second = api_replica(&data.path().join("second"), store, &[]);
    first.token = Some(token.to_string());
    second.token = Some(token.to_string());
    (data, first, second)
}

/// `POST /v1/checks` with these raw header values and body.
async fn submit_with_headers(
    server: &Server,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> (u16, Value) {
    let mut request = server
        .client
        .post(format!("{}/v1/checks", server.url))
        .bearer_auth(server.token.as_deref().unwrap())
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn job_ids(response: &Value) -> Vec<String> {
    response["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"))
        .iter()
        .map(|check| check["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn retries_with_one_idempotency_key_racing_on_two_replicas_admit_one_batch() {
    let db = TestDatabase::create("idempotency_http");
    let token = tenant_with_token(&db.url, "acme", &["--rps", "1000"]);
    let (_data, first, second) = two_replicas(&db.url, &token);
    let body = serde_json::to_vec(&json!({
        "snippets": snippets(&["theorem a : True := trivial", "theorem b : 1 = 1 := rfl"]),
    }))
    .unwrap();

    // Sixteen retries of one submission, half on each replica, all at once.
    let mut racers = Vec::new();
    for racer in 0..16 {
        let server = if racer % 2 == 0 { &first } else { &second };
        let body = body.clone();
        racers.push(async move {
            submit_with_headers(server, &[("idempotency-key", b"retry-1")], &body).await
        });
    }
    let answers = futures::future::join_all(racers).await;
    let mut batches = BTreeSet::new();
    for (status, response) in &answers {
        assert!(matches!(status, 200 | 202), "{status} {response}");
        batches.insert((
            response["batch_id"].as_str().unwrap().to_string(),
            job_ids(response),
        ));
    }
    assert_eq!(batches.len(), 1, "every retry names one batch: {batches:?}");
    let (batch_id, ids) = batches.into_iter().next().unwrap();
    assert_eq!(ids.len(), 2);
    let (status, all) = first.get_json("/v1/checks?limit=1000").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        job_ids(&all),
        ids,
        "the tenant has exactly the one batch's jobs"
    );

    // A later retry, on either replica, still answers with that batch.
    let (status, again) =
        submit_with_headers(&second, &[("idempotency-key", b"retry-1")], &body).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["batch_id"].as_str(), Some(batch_id.as_str()));
    assert_eq!(job_ids(&again), ids);

    // The same key with another body is refused, and queues nothing.
    let other_body = serde_json::to_vec(&json!({
        "snippets": snippets(&["theorem c : True := trivial"]),
    }))
    .unwrap();
    let (status, reused) =
        submit_with_headers(&first, &[("idempotency-key", b"retry-1")], &other_body).await;
    assert_eq!(
        (status, reused["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{reused}"
    );
    assert!(reused["message"]
        .as_str()
        .unwrap()
        .contains("another request body"));

    // Keys are per tenant: another tenant's same key is its own.
    let other_token = tenant_with_token(&db.url, "beta", &["--rps", "1000"]);
    let mut other_tenant = first;
    other_tenant.token = Some(other_token);
    let (status, theirs) =
        submit_with_headers(&other_tenant, &[("idempotency-key", b"retry-1")], &body).await;
    assert_eq!(status, 202, "{theirs}");
    assert_ne!(theirs["batch_id"].as_str(), Some(batch_id.as_str()));

    // Malformed keys are 400 with a message, and queue nothing.
    let too_long = vec![b'k'; 256];
    for bad in [
        &b""[..],
        &b"has space"[..],
        &b"tab\there"[..],
        &too_long[..],
        &b"caf\xc3\xa9"[..],
    ] {
        let (status, refused) =
            submit_with_headers(&second, &[("idempotency-key", bad)], &body).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("invalid_idempotency_key")),
            "{:?}: {refused}",
            String::from_utf8_lossy(bad)
        );
    }
    let (status, twice) = submit_with_headers(
        &second,
        &[("idempotency-key", b"a"), ("idempotency-key", b"b")],
        &body,
    )
    .await;
    assert_eq!(
        (status, twice["code"].as_str()),
        (400, Some("invalid_idempotency_key")),
        "{twice}"
    );
    let (_, all) = second.get_json("/v1/checks?limit=1000").await;
    assert_eq!(job_ids(&all), ids, "refused requests queued nothing");
}

/// Hammer both replicas with a tenant's requests for `period`; returns how
/// many were admitted and how many were refused with 429 `rate_limited`.
async fn hammer(servers: [&Server; 2], period: Duration) -> (u64, u64) {
    let deadline = Instant::now() + period;
    let mut clients = Vec::new();
    for client in 0..8 {
        let server = servers[client % 2];
        clients.push(async move {
            let (mut admitted, mut limited) = (0u64, 0u64);
            while Instant::now() < deadline {
                let (status, body) = server.get_json("/v1/checks?limit=1").await;
                match status {
                    200 => admitted += 1,
                    429 => {
                        assert_eq!(body["code"], "rate_limited", "{body}");
                        limited += 1;
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            (admitted, limited)
        });
    }
    futures::future::join_all(clients)
        .await
        .into_iter()
        .fold((0, 0), |(a, l), (admitted, limited)| {
            (a + admitted, l + limited)
        })
}

#[tokio::test]
async fn two_replicas_together_admit_a_tenants_rate_not_twice_it() {
    const RPS: f64 = 20.0;
    let db = TestDatabase::create("farm_rate");
    let token = tenant_with_token(&db.url, "metered", &["--rps", "20"]);
    let (_data, first, second) = two_replicas(&db.url, &token);
    // Both replicas have seen each other in the store (heartbeats every 2 s).
    sleep_until_heartbeats().await;
    let period = Duration::from_secs(4);
    let started = Instant::now();
    let (admitted, limited) = hammer([&first, &second], period).await;
    let seconds = started.elapsed().as_secs_f64();
    // The farm's bucket: a burst of RPS, then RPS per second.
    let farm_limit = RPS + RPS * seconds;
    eprintln!(
        "two replicas admitted {admitted} requests in {seconds:.1} s (limited {limited}); the farm's limit allows {farm_limit:.0}, per-replica buckets would allow {:.0}",
        2.0 * farm_limit
    );
    assert!(limited > 0, "the clients asked more than the rate");
    assert!(
        (admitted as f64) <= farm_limit * 1.2,
        "{admitted} admitted; the farm allows {farm_limit:.0}"
    );
    assert!(
        (admitted as f64) >= farm_limit * 0.7,
        "{admitted} admitted; the farm allows {farm_limit:.0}"
    );

    // When one replica leaves, the other takes over the whole rate.
    let mut first = first;
    first.terminate();
    sleep_until_heartbeats().await;
    let started = Instant::now();
    let (admitted, _) = hammer([&second, &second], period).await;
    let seconds = started.elapsed().as_secs_f64();
    let farm_limit = RPS + RPS * seconds;
    eprintln!("one replica admitted {admitted} requests in {seconds:.1} s; the farm's limit allows {farm_limit:.0}");
    assert!(
        (admitted as f64) >= farm_limit * 0.7 && (admitted as f64) <= farm_limit * 1.2,
        "{admitted} admitted alone; the farm allows {farm_limit:.0}"
    );
}

#[tokio::test]
async fn a_tenants_max_queued_holds_under_concurrent_submissions_on_two_replicas() {
    const MAX_QUEUED: usize = 25;
    let db = TestDatabase::create("tenant_cap_http");
    let token = tenant_with_token(&db.url, "capped", &["--rps", "1000", "--max-queued", "25"]);
    let (_data, first, second) = two_replicas(&db.url, &token);
    let body = json!({"snippets": snippets(&["theorem a : True := trivial", "theorem b : True := trivial", "theorem c : True := trivial"])});
    let mut submitters = Vec::new();
    for submitter in 0..24 {
        let server = if submitter % 2 == 0 { &first } else { &second };
        let body = body.clone();
        submitters.push(async move { server.post("/v1/checks", &body).await });
    }
    let answers = futures::future::join_all(submitters).await;
    let mut admitted = 0;
    for (status, response) in &answers {
        match status {
            202 => admitted += job_ids(response).len(),
            429 => assert_eq!(response["code"], "tenant_queue_full", "{response}"),
            other => panic!("unexpected {other}: {response}"),
        }
    }
    let (_, all) = first.get_json("/v1/checks?limit=1000").await;
    let open = job_ids(&all).len();
    assert_eq!(open, admitted);
    assert_eq!(
        open,
        MAX_QUEUED / 3 * 3,
        "a max_queued of {MAX_QUEUED} let {open} jobs in"
    );
}

/// Long enough for every replica's heartbeat (every 2 s) to have counted
/// the live replicas twice.
async fn sleep_until_heartbeats() {
    tokio::time::sleep(Duration::from_millis(4500)).await;
}

#[tokio::test]
async fn an_idempotency_key_expires_after_the_configured_time() {
    let data = tempfile::tempdir().unwrap();
    // About 1.1 s.
    let mut server = Server::start(
        data.path(),
        &["--slots", "0", "--idempotency-key-hours", "0.0003"],
    );
    server.token = None;
    let body = serde_json::to_vec(&json!({"snippets": snippets(&["theorem a : True := trivial"])}))
        .unwrap();
    let submit = |server: &Server| {
        let request = server
            .client
            .post(format!("{}/v1/checks", server.url))
            .header("content-type", "application/json")
            .header("idempotency-key", "short-lived")
            .body(body.clone());
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202);
            let value: Value = response.json().await.unwrap();
            value["batch_id"].as_str().unwrap().to_string()
        }
    };
    let first = submit(&server).await;
    assert_eq!(submit(&server).await, first, "a retry within the time");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_ne!(
        submit(&server).await,
        first,
        "a new batch once the key expired"
    );
}

//! PostgreSQL restarted under load: while it is down the API answers 503
//! with Retry-After, afterwards it recovers by itself, and no accepted job
//! is lost or run twice. The test runs a PostgreSQL server of its own (the
//! machine's, from Debian's packages, in a temporary directory) so that it
//! can stop and start it.

mod common;

use common::private_postgres::PrivatePostgres;
use common::{api_replica, snippets, tokens, Worker};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_restarted_database_means_503_then_recovery_and_nothing_lost() {
    let mut postgres = PrivatePostgres::init();
    postgres.start();
    let store = postgres.url();
    let (user, worker_token) = tokens(&store);
    let data = tempfile::tempdir().unwrap();
    let mut server = api_replica(data.path(), &store, &[]);
    server.token = Some(user);
    let worker_dir = tempfile::tempdir().unwrap();
    let _worker = Worker::start(
        &server.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "2"],
    );

    let mut accepted: Vec<String> = Vec::new();
    let mut unavailable = 0;
    let mut stopped_at = None;
    let started = Instant::now();
    let mut round = 0;
    // Submit for about six seconds; the database is down from 1.5 s to 4 s.
    while started.elapsed() < Duration::from_secs(6) {
        let elapsed = started.elapsed();
        if stopped_at.is_none() && elapsed > Duration::from_millis(1500) {
            postgres.stop();
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some_and(|at| at.elapsed() > Duration::from_millis(2500))
            && postgres.server.is_none()
        {
            postgres.start();
        }
        round += 1;
        let code = format!("-- sim: sleep 10\ntheorem t{round} : True := trivial");
        let (status, response) = server
            .post("/v1/checks", &json!({"snippets": snippets(&[&code])}))
            .await;
        match status {
            202 | 200 => accepted.extend(
                response["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_string()),
            ),
            503 => {
                assert_eq!(response["code"], "store_unavailable", "{response}");
                assert_eq!(response["retry_after_header"], true);
                unavailable += 1;
            }
            other => panic!("unexpected {other}: {response}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if postgres.server.is_none() {
        postgres.start();
    }
    assert!(unavailable > 0, "the outage was never seen");
    assert!(
        accepted.len() > 10,
        "too little accepted: {}",
        accepted.len()
    );

    // Ready again by itself, and every accepted job done exactly once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = server.get("/readyz").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let views = server.wait_final(&accepted, Duration::from_secs(90)).await;
    for view in &views {
        assert_eq!(
            (view["state"].as_str(), view["verdict"]["status"].as_str()),
            (Some("done"), Some("valid")),
            "{view}"
        );
        assert_eq!(view["attempts"], 1, "run once: {view}");
    }
    let (_, all) = server.get_json("/v1/checks?limit=1000").await;
    let all: &Vec<Value> = all["results"].as_array().unwrap();
    assert_eq!(all.len(), accepted.len(), "no job beyond the accepted ones");
}

//! The API's limits, against a real `leanfarm serve --simulate` process:
//! a cap on every field of every body, errors that are always
//! `{code, message}` JSON (unknown routes, wrong methods, oversized targets
//! and headers, bad percent-encoding and queries included), the drain on
//! SIGTERM, slow clients (a slowloris attack) and the connection cap, and
//! the operational endpoints that only operators may read.

mod common;

use common::{leanfarm, snippets, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The store `leanfarm serve --data-dir DATA` opens by default.
fn store_of(data: &std::path::Path) -> String {
    format!("sqlite://{}", data.join("leanfarm.db").display())
}

/// An error answer: its status, its content type and its `{code, message}`.
async fn error_of(response: reqwest::Response) -> (u16, String, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: not JSON: {text:.200}"));
    assert!(
        body["code"].as_str().is_some_and(|code| !code.is_empty())
            && body["message"].as_str().is_some_and(|m| !m.is_empty())
            && body.as_object().unwrap().len() == 2,
        "status {status}: not {{code, message}}: {body}"
    );
    (status, content_type, body)
}

/// A message quotes no more than a short excerpt of what was sent.
fn assert_short(body: &Value) {
    let message = body["message"].as_str().unwrap();
    assert!(message.chars().count() <= 513, "{message:.300}");
    assert!(!message.contains(&"x".repeat(100)), "{message:.300}");
}

#[tokio::test]
async fn every_field_of_every_body_has_a_cap() {
    let data = tempfile::tempdir().unwrap();
    let store = store_of(data.path());
    let worker_token = leanfarm(&["tenant", "--store", &store, "farm-key", "--scope", "worker"]);
    let mut server = Server::start(data.path(), &["--slots", "1"]);
    let good = "theorem t : True := trivial";
    let huge = "x".repeat(5 << 20);

    // A 5 MB pinned statement used to be copied into each of 20 jobs and
    // echoed in every verdict: now it is refused before anything is stored.
    let batch = json!({
        "snippets": vec![json!({"code": good}); 20],
        "policy": {"pinned": {"name": "t", "statement": format!("theorem t : {huge}")}},
    });
    let (status, refused) = server.post("/v1/checks", &batch).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (413, Some("field_too_large")),
        "{refused:.300}"
    );
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("policy.pinned.statement"));
    assert_short(&refused);
    let (_, listed) = server.get_json("/v1/checks").await;
    assert_eq!(listed["results"], json!([]), "a refused batch left jobs");

    // A pinned statement that does not parse is refused at submission.
    for (pinned, why) in [
        (
            json!({"name": "t", "statement": "theorem u : True"}),
            "must declare `t`",
        ),
        (
            json!({"name": "t", "statement": "def t : True"}),
            "must start with `theorem NAME`",
        ),
        (
            json!({"name": "t", "statement": "theorem t"}),
            "has no type",
        ),
        (
            json!({"name": "1bad", "statement": "theorem 1bad : True"}),
            "Lean identifier",
        ),
    ] {
        let body = json!({"snippets": snippets(&[good]), "policy": {"pinned": pinned}});
        let (status, refused) = server.post("/v1/checks", &body).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("invalid_pinned_statement")),
            "{refused}"
        );
        assert!(
            refused["message"].as_str().unwrap().contains(why),
            "{refused}"
        );
    }
    // A pinned statement that parses is accepted.
    let body = json!({"snippets": snippets(&["theorem t : True := trivial"]), "wait": 30,
        "policy": {"pinned": {"name": "t", "statement": "theorem t : True", "preamble": "open Nat"}}});
    let (status, accepted) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 200, "{accepted}");
    let verdict = accepted["results"][0]["verdict"].clone();

    let with_policy = |policy: Value| json!({"snippets": snippets(&[good]), "policy": policy});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v1/checks",
            with_policy(
                json!({"pinned": {"name": "t", "statement": "theorem t : True", "preamble": "x".repeat(70_000)}}),
            ),
            "policy.pinned.preamble",
        ),
        (
            "/v1/checks",
            with_policy(
                json!({"pinned": {"name": "x".repeat(2000), "statement": "theorem t : True"}}),
            ),
            "policy.pinned.name",
        ),
        (
            "/v1/checks",
            with_policy(json!({"allowed_axioms": vec!["propext"; 257]})),
            "policy.allowed_axioms",
        ),
        (
            "/v1/checks",
            with_policy(json!({"allowed_axioms": ["propext", "x".repeat(1025)]})),
            "policy.allowed_axioms[1]",
        ),
        (
            "/v1/checks",
            json!({"snippets": [{"code": good}, {"id": "x".repeat(257), "code": good}]}),
            "snippets[1].id",
        ),
        (
            "/v1/checks",
            json!({"snippets": snippets(&[good]), "toolchain": "x".repeat(257)}),
            "toolchain",
        ),
        (
            "/v1/checks",
            json!({"snippets": snippets(&[good]), "project": "x".repeat(257)}),
            "project",
        ),
        (
            "/api/check",
            json!({"snippets": [{"id": "x".repeat(257), "code": good}]}),
            "snippets[0].id",
        ),
        (
            "/api/check",
            json!({"snippets": [{"id": "a", "code": good}], "infotree": "x".repeat(33)}),
            "infotree",
        ),
        (
            "/verify",
            json!({"codes": [{"custom_id": {"deep": "x".repeat(300)}, "proof": good}]}),
            "codes[0].custom_id",
        ),
        (
            "/verify",
            json!({"codes": [{"custom_id": "a", "proof": good}], "infotree_type": "x".repeat(33)}),
            "infotree",
        ),
    ];
    for (path, body, field) in cases {
        let (status, refused) = server.post(path, &body).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (413, Some("field_too_large")),
            "{path} {field}: {refused}"
        );
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("`{field}` is ")),
            "{path}: {message}"
        );
        assert_short(&refused);
    }
    // Kimina's snippets count against the batch and snippet limits too.
    let (status, refused) = server
        .post(
            "/api/check",
            &json!({"snippets": vec![json!({"id": "a", "code": good}); 1001]}),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (413, Some("batch_too_large"))
    );

    // The worker API's strings and lists.
    server.token = Some(worker_token);
    let lease = |extra: Value| {
        let mut body = json!({"worker_id": "w", "max": 1, "lease_seconds": 30, "warm_headers": [], "wait_seconds": 0});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let uuid = "0193a8f0-0000-7000-8000-000000000000";
    let worker_cases: Vec<(&str, Value, &str)> = vec![
        (
            "/v1/worker/lease",
            lease(json!({"worker_id": "x".repeat(257)})),
            "worker_id",
        ),
        (
            "/v1/worker/lease",
            lease(json!({"toolchain": "x".repeat(257)})),
            "toolchain",
        ),
        (
            "/v1/worker/lease",
            lease(json!({"warm_headers": vec!["import Lean"; 1025]})),
            "warm_headers",
        ),
        (
            "/v1/worker/lease",
            lease(json!({"warm_headers": ["x".repeat(70_000)]})),
            "warm_headers[0]",
        ),
        (
            "/v1/worker/renew",
            json!({"leases": vec![json!({"job_id": uuid, "lease_id": uuid}); 1025], "lease_seconds": 30}),
            "leases",
        ),
        (
            "/v1/worker/renew",
            json!({"leases": [{"job_id": "x".repeat(129), "lease_id": uuid}], "lease_seconds": 30}),
            "leases[0].job_id",
        ),
        (
            "/v1/worker/release",
            json!({"job_id": uuid, "lease_id": uuid, "error": "x".repeat(70_000), "retry_after_seconds": 0}),
            "error",
        ),
        (
            "/v1/worker/release",
            json!({"job_id": uuid, "lease_id": "x".repeat(129), "error": "e", "retry_after_seconds": 0}),
            "lease_id",
        ),
        (
            "/v1/worker/complete",
            json!({"job_id": "x".repeat(129), "lease_id": uuid, "verdict": verdict}),
            "job_id",
        ),
    ];
    for (path, body, field) in worker_cases {
        let (status, refused) = server.post(path, &body).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (413, Some("field_too_large")),
            "{path} {field}: {refused}"
        );
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("`{field}` is ")),
            "{refused}"
        );
        assert_short(&refused);
    }
    let (status, refused) = server
        .post("/v1/worker/lease", &lease(json!({"wait_seconds": -1})))
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("invalid_request"))
    );
    server.token = None;

    // Input quoted in a message is cut short: an unknown field's name, an id.
    let mut unknown = serde_json::Map::new();
    unknown.insert("snippets".into(), snippets(&[good]));
    unknown.insert("x".repeat(1 << 20), json!(1));
    let (status, refused) = server.post("/v1/checks", &Value::Object(unknown)).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_short(&refused);
    let (status, refused) = server
        .get_json(&format!("/v1/checks/{}", "x".repeat(4000)))
        .await;
    assert_eq!((status, refused["code"].as_str()), (404, Some("not_found")));
    assert_short(&refused);

    // `wait` outside [0, 300] and `limit=0` are refused.
    for wait in [json!(-1), json!(-0.5), json!(301)] {
        let (status, refused) = server
            .post(
                "/v1/checks",
                &json!({"snippets": snippets(&[good]), "wait": wait}),
            )
            .await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("invalid_wait")),
            "{wait}: {refused}"
        );
    }
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "state=bogus",
        "bogus=1",
        &format!("after={}", "x".repeat(200)),
    ] {
        let (status, refused) = server.get_json(&format!("/v1/checks?{query}")).await;
        assert_eq!(
            (status, refused["code"].as_str()),
            (400, Some("invalid_request")),
            "{query}: {refused}"
        );
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.contains("query") && !message.contains("body"),
            "{query}: {message}"
        );
    }
}

#[tokio::test]
async fn every_error_is_code_and_message_json() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "1"]);
    // No connection reuse: the server closes a connection after refusing a body.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", server.url);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (client.get(url("/no/such/route")), 404, "not_found"),
        (client.post(url("/healthz")), 405, "method_not_allowed"),
        (client.delete(url("/v1/checks")), 405, "method_not_allowed"),
        (
            client.get(url(&format!("/v1/checks?after={}", "a".repeat(9000)))),
            414,
            "uri_too_long",
        ),
        (
            client.get(url(&format!("/{}", "a".repeat(9000)))),
            414,
            "uri_too_long",
        ),
        (
            client
                .get(url("/healthz"))
                .header("x-padding", "a".repeat(40_000)),
            431,
            "headers_too_large",
        ),
        (client.get(url("/v1/checks/%FF%FE")), 400, "invalid_request"),
        (
            client.get(url("/v1/checks?batch_id=%FF")),
            400,
            "invalid_request",
        ),
        (
            client
                .post(url("/v1/checks"))
                .header("content-type", "application/json")
                .body(vec![b' '; 17 << 20]),
            413,
            "body_too_large",
        ),
    ];
    for (request, expected_status, expected_code) in cases {
        let (status, content_type, body) = error_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (expected_status, Some(expected_code)),
            "{body}"
        );
        assert_eq!(content_type, "application/json", "{body}");
        assert_short(&body);
    }
    // A wrong method names the right ones.
    let response = client.delete(url("/v1/checks")).send().await.unwrap();
    let mut allowed: Vec<String> = response
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().split(',').map(str::to_string).collect())
        .unwrap_or_default();
    allowed.sort();
    assert_eq!(allowed, ["GET", "HEAD", "POST"]);
    // What the HTTP layer refuses before any route: a target over its
    // 64 KiB, more than 100 headers, a head over its buffer, a request
    // that is not HTTP.
    let address = server.url.trim_start_matches("http://").to_string();
    let mut many_headers = b"GET /healthz HTTP/1.1\r\nhost: farm\r\n".to_vec();
    for index in 0..200 {
        many_headers.extend(format!("x-h{index}: v\r\n").as_bytes());
    }
    many_headers.extend(b"\r\n");
    let raw_cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            format!("GET /{} HTTP/1.1\r\nhost: farm\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            "414",
            "uri_too_long",
        ),
        (many_headers, "431", "headers_too_large"),
        (
            format!(
                "GET / HTTP/1.1\r\nhost: farm\r\nx-a: {}\r\n\r\n",
                "a".repeat(500_000)
            )
            .into_bytes(),
            "431",
            "headers_too_large",
        ),
        (b"GARBAGE\r\n\r\n".to_vec(), "400", "invalid_request"),
    ];
    for (request, status, code) in raw_cases {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let _ = stream.write_all(&request).await;
        let answer = read_answer(&mut stream, Duration::from_secs(5)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer:.300}"
        );
        assert!(
            answer.contains("content-type: application/json\r\n"),
            "{answer:.300}"
        );
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A bad percent-encoding in the query is the query's fault, not the body's.
    let (_, _, body) = error_of(
        client
            .get(url("/v1/checks?batch_id=%FF"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("query"),
        "{body}"
    );
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_is_refused_with_408() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &["--slots", "1", "--body-read-timeout-seconds", "1"],
    );
    let address = server.url.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(b"POST /v1/checks HTTP/1.1\r\nhost: farm\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"snippets\"")
        .await
        .unwrap();
    let answer = read_answer(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"body_timeout\""), "{answer}");
}

/// Everything the server sends on `stream` until it closes it (or `within` ends).
async fn read_answer(stream: &mut TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A slowloris client: sends a request's headers one byte at a time, one
/// byte per second; returns when the server closes the connection, with
/// how long that took (`None` if it never did within `give_up`).
async fn slowloris(address: String, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&address).await.ok()?;
    let request = b"GET /healthz HTTP/1.1\r\nhost: farm\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    for byte in request.iter().cycle().take(1000) {
        if started.elapsed() > give_up {
            return None;
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // The server answered something (it never should before the
            // headers end): not dropped.
            Ok(Ok(_)) => return None,
            Err(_still_open) => {}
        }
    }
    None
}

#[tokio::test]
async fn slow_clients_are_dropped_and_the_farm_keeps_answering() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            "--slots",
            "1",
            "--header-read-timeout-seconds",
            "3",
            "--max-connections",
            "64",
        ],
    );
    let address = server.url.trim_start_matches("http://").to_string();
    let slow: Vec<_> = (0..40)
        .map(|_| tokio::spawn(slowloris(address.clone(), Duration::from_secs(20))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While forty clients trickle their headers, a normal client is served.
    for _ in 0..5 {
        let started = Instant::now();
        let (status, response) = server
            .post(
                "/v1/checks",
                &json!({"snippets": snippets(&["theorem t : True := trivial"]), "wait": 10}),
            )
            .await;
        assert_eq!(status, 200, "{response}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Each slow client is dropped once its header read timeout runs out.
    for client in slow {
        let dropped_after = client
            .await
            .unwrap()
            .expect("a slow client was never dropped");
        assert!(
            dropped_after >= Duration::from_secs(2) && dropped_after < Duration::from_secs(8),
            "dropped after {dropped_after:?}"
        );
    }
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn connections_beyond_the_cap_get_a_json_503_and_the_rest_are_served_after() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            "--slots",
            "1",
            "--header-read-timeout-seconds",
            "2",
            "--max-connections",
            "8",
        ],
    );
    let address = server.url.trim_start_matches("http://").to_string();
    // Eight idle connections hold the cap.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"GET /heal").await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut extra = TcpStream::connect(&address).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: farm\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut extra, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "too_many_connections", "{body}");
    // Once the header read timeout drops the idle ones, clients are served again.
    for stream in &mut held {
        let rest = read_answer(stream, Duration::from_secs(6)).await;
        assert!(!rest.contains("200 OK"), "{rest}");
    }
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn sigterm_drains_running_checks_while_refusing_new_work() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &["--slots", "1"]);
    let slow = json!({"snippets": snippets(&["-- sim: sleep 3000\ntheorem t : True := trivial"]), "wait": 60});
    let waiting = {
        let (url, client) = (server.url.clone(), server.client.clone());
        tokio::spawn(async move {
            let response = client
                .post(format!("{url}/v1/checks"))
                .json(&slow)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        })
    };
    // Wait until the slow check runs.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, running) = server.get_json("/v1/checks?state=running").await;
        if running["results"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the slow check never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // While the check runs: new work is refused, readiness is withdrawn,
    // reads are still answered.
    let (status, refused) = server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&["theorem t : True := trivial"])}),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (503, Some("shutting_down")),
        "{refused}"
    );
    assert_eq!(refused["retry_after_header"], true, "{refused}");
    let (status, kimina) = server
        .post(
            "/api/check",
            &json!({"snippets": [{"id": "a", "code": "theorem t : True := trivial"}]}),
        )
        .await;
    assert_eq!(
        (status, kimina["code"].as_str()),
        (503, Some("shutting_down"))
    );
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!(
        (status, ready["ready"].as_bool()),
        (503, Some(false)),
        "{ready}"
    );
    assert_eq!(server.get("/healthz").await.0, 200);

    // The running check finishes and its waiting client gets the verdict.
    let (status, answered) = waiting.await.unwrap();
    assert_eq!(status, 200, "{answered}");
    assert_eq!(
        answered["results"][0]["verdict"]["status"], "valid",
        "{answered}"
    );
    // Then the process exits, cleanly.
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "the farm did not exit after draining"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        stopping.elapsed() >= Duration::from_millis(2000),
        "exited before the check finished"
    );
}

#[tokio::test]
async fn metrics_and_workers_need_an_operator_token_under_require_auth() {
    let data = tempfile::tempdir().unwrap();
    let store = store_of(data.path());
    leanfarm(&["tenant", "--store", &store, "set", "acme"]);
    let user = leanfarm(&[
        "tenant", "--store", &store, "key", "acme", "--scope", "user",
    ]);
    let worker = leanfarm(&["tenant", "--store", &store, "farm-key", "--scope", "worker"]);
    let operator = leanfarm(&[
        "tenant", "--store", &store, "farm-key", "--scope", "operator",
    ]);
    let mut server = Server::start(data.path(), &["--slots", "1", "--require-auth"]);
    server.token = Some(user.clone());
    let (status, _) = server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&["theorem t : True := trivial"]), "wait": 30}),
        )
        .await;
    assert_eq!(status, 200);
    for path in ["/metrics", "/v1/workers"] {
        for (token, expected) in [
            (None, 401),
            (Some(user.clone()), 403),
            (Some(worker.clone()), 403),
            (Some("lf_not_a_token".to_string()), 401),
        ] {
            server.token = token.clone();
            let (status, body) = server.get_json(path).await;
            assert_eq!(status, expected, "{path} with {token:?}: {body}");
            assert!(body["code"].is_string(), "{body}");
        }
        server.token = Some(operator.clone());
        let (status, text) = server.get(path).await;
        assert_eq!(status, 200, "{path}: {text}");
    }
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("tenant=\"acme\""), "{metrics}");
}

#[tokio::test]
async fn metrics_on_their_own_listener_need_no_token() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let server = Server::start(
        data.path(),
        &[
            "--slots",
            "1",
            "--require-auth",
            "--metrics-addr",
            &metrics_addr,
        ],
    );
    // The API's own /metrics still needs an operator token ...
    assert_eq!(server.get("/metrics").await.0, 401);
    // ... the metrics listener serves them to anyone who reaches it, and nothing else.
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.text().await.unwrap().contains("lean_farm_"));
    for path in ["/v1/checks", "/v1/workers", "/readyz"] {
        let (status, _, body) = error_of(
            client
                .get(format!("http://{metrics_addr}{path}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
}

//! Getting results out of a real `leanfarm serve --simulate` process:
//! listing by verdict status and batch, a batch's progress, long polls,
//! the export as JSONL and CSV (through the API and `leanfarm results`),
//! and the server-sent events of a batch's verdicts; each for its own
//! tenant only.

mod common;

use common::{leanfarm, Server};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Two valid proofs, one `sorry` and one Lean error, waited for.
async fn mixed_batch(server: &Server) -> (String, Vec<Value>) {
    let body = json!({
        "snippets": [
            {"id": "good-1", "code": "theorem a : True := trivial"},
            {"id": "sorry", "code": "theorem b : 1 = 2 := by sorry"},
            {"id": "good-2", "code": "theorem c : True := trivial"},
            {"id": "error, \"quoted\"", "code": "theorem d : 1 = 2 := by\n  -- sim: error unsolved goals\n  rfl"}
        ],
        "wait": 60
    });
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 200, "{response}");
    let batch = response["batch_id"].as_str().unwrap().to_string();
    (batch, response["results"].as_array().unwrap().clone())
}

fn custom_ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| check["custom_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn checks_are_listed_by_verdict_status_and_batch_in_either_order_with_paging() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    let (batch, _) = mixed_batch(&server).await;
    let (other_batch, _) = mixed_batch(&server).await;
    let (status, first) = server
        .get_json(&format!("/v1/checks?status=valid&batch={batch}&limit=1"))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(custom_ids(&first), ["good-1"]);
    let after = first["next_after"].as_str().unwrap();
    let (_, second) = server
        .get_json(&format!(
            "/v1/checks?batch={batch}&limit=1&status=valid&after={after}"
        ))
        .await;
    assert_eq!(custom_ids(&second), ["good-2"]);
    let (_, sorry) = server
        .get_json(&format!("/v1/checks?batch_id={other_batch}&status=sorry"))
        .await;
    assert_eq!(custom_ids(&sorry), ["sorry"]);
    assert_eq!(sorry["results"][0]["batch_id"], other_batch.as_str());
    let (_, every_valid) = server.get_json("/v1/checks?status=valid").await;
    assert_eq!(every_valid["results"].as_array().unwrap().len(), 4);
    let (status, error) = server.get_json("/v1/checks?status=maybe").await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["code"], "invalid_request");
}

#[tokio::test]
async fn a_batch_shows_its_counts_and_progress_and_waits_until_final() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    let (batch, results) = mixed_batch(&server).await;
    let (status, view) = server.get_json(&format!("/v1/batches/{batch}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["batch_id"], batch.as_str());
    assert_eq!(view["total"], 4);
    assert_eq!(view["finished"], 4);
    assert_eq!(view["progress"], 1.0);
    assert_eq!(view["all_final"], true);
    assert_eq!(
        view["states"],
        json!({"queued": 0, "running": 0, "done": 4, "dead": 0})
    );
    assert_eq!(
        view["statuses"],
        json!({"valid": 2, "sorry": 1, "lean_error": 1})
    );

    // A slow batch: at once it is not final; with `wait` it is.
    let slow = json!({"snippets": [
        {"code": "-- sim: sleep 1500\ntheorem s : True := trivial"},
        {"code": "theorem f : True := trivial"}
    ]});
    let (status, submitted) = server.post("/v1/checks", &slow).await;
    assert_eq!(status, 202, "{submitted}");
    let slow_batch = submitted["batch_id"].as_str().unwrap();
    let (_, early) = server.get_json(&format!("/v1/batches/{slow_batch}")).await;
    assert_eq!(early["all_final"], false, "{early}");
    assert!(early["progress"].as_f64().unwrap() < 1.0);
    let started = Instant::now();
    let (status, waited) = server
        .get_json(&format!("/v1/batches/{slow_batch}?wait=30"))
        .await;
    assert_eq!(status, 200, "{waited}");
    assert_eq!(waited["all_final"], true, "{waited}");
    assert!(started.elapsed() < Duration::from_secs(20));

    // One check's long poll.
    let (_, submitted) = server.post("/v1/checks", &slow).await;
    let id = submitted["results"][0]["id"].as_str().unwrap();
    let (status, check) = server.get_json(&format!("/v1/checks/{id}?wait=30")).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["state"], "done", "{check}");
    assert_eq!(check["verdict"]["status"], "valid");
    // A short wait on a slow check answers with what there is.
    let (_, submitted) = server.post("/v1/checks", &slow).await;
    let id = submitted["results"][0]["id"].as_str().unwrap();
    let started = Instant::now();
    let (status, check) = server.get_json(&format!("/v1/checks/{id}?wait=0.2")).await;
    assert_eq!(status, 200, "{check}");
    assert_ne!(check["state"], "done", "{check}");
    assert!(started.elapsed() < Duration::from_secs(1));

    for bad in ["wait=-1", "wait=301", "wait=soon"] {
        let (status, error) = server.get_json(&format!("/v1/batches/{batch}?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {error}");
    }
    let (status, error) = server.get_json(&format!("/v1/checks/{id}?wait=301")).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_wait"))
    );
    let (status, error) = server.get_json("/v1/batches/no-such-batch").await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["code"], "not_found");
    let (status, _) = server
        .get_json(&format!(
            "/v1/checks/{}",
            results[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_batch_exports_as_jsonl_and_csv_through_the_api_and_the_command() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    let (batch, results) = mixed_batch(&server).await;

    let response = server
        .client
        .get(format!(
            "{}/v1/batches/{batch}/results?format=jsonl",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines, results,
        "the export holds the checks as the API shows them"
    );

    let (status, csv) = server
        .get(&format!("/v1/batches/{batch}/results?format=csv"))
        .await;
    assert_eq!(status, 200);
    let rows: Vec<&str> = csv.split("\r\n").filter(|row| !row.is_empty()).collect();
    assert_eq!(
        rows[0],
        "id,custom_id,state,status,reason_code,reason_message,attempts,created_at,finished_at,toolchain,project,error"
    );
    assert_eq!(rows.len(), 5);
    assert!(rows[1].starts_with(&format!(
        "{},good-1,done,valid,,,1,",
        results[0]["id"].as_str().unwrap()
    )));
    assert!(
        rows[2].contains(",sorry,done,sorry,uses_sorry,"),
        "{}",
        rows[2]
    );
    // A field with a comma or a quote is quoted, its quotes doubled.
    assert!(
        rows[4].contains(",\"error, \"\"quoted\"\"\",done,lean_error,"),
        "{}",
        rows[4]
    );

    let (status, only_valid) = server
        .get(&format!("/v1/batches/{batch}/results?status=valid"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(only_valid.lines().count(), 2);

    let (status, error) = server
        .get_json(&format!("/v1/batches/{batch}/results?format=xml"))
        .await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = server.get_json("/v1/batches/missing/results").await;
    assert_eq!(status, 404);

    let exported = leanfarm(&[
        "results",
        &batch,
        "--format",
        "csv",
        "--server",
        &server.url,
    ]);
    assert_eq!(
        exported.replace("\r\n", "\n"),
        csv.trim().replace("\r\n", "\n")
    );
    let file = data.path().join("export.jsonl");
    leanfarm(&[
        "results",
        &batch,
        "--server",
        &server.url,
        "--output",
        file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let missing = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["results", "no-such-batch", "--server", &server.url])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no batch with id `no-such-batch`"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[tokio::test]
async fn another_tenants_batch_is_not_found() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    leanfarm(&["tenant", "--store", &store, "set", "acme"]);
    leanfarm(&["tenant", "--store", &store, "set", "other"]);
    let acme = leanfarm(&["tenant", "--store", &store, "key", "acme"]);
    let other = leanfarm(&["tenant", "--store", &store, "key", "other"]);
    let mut server = Server::start(data.path(), &["--slots", "2", "--require-auth"]);
    server.token = Some(acme.clone());
    let (batch, _) = mixed_batch(&server).await;
    server.token = Some(other.clone());
    for path in [
        format!("/v1/batches/{batch}"),
        format!("/v1/batches/{batch}/results"),
        format!("/v1/batches/{batch}/events"),
    ] {
        let (status, body) = server.get_json(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, listed) = server.get_json(&format!("/v1/checks?batch={batch}")).await;
    assert_eq!(listed["results"], json!([]));
    server.token = None;
    let (status, _) = server.get_json(&format!("/v1/batches/{batch}")).await;
    assert_eq!(status, 401);
    let refused = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args([
            "results",
            &batch,
            "--server",
            &server.url,
            "--token",
            &other,
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4));
    let exported = leanfarm(&["results", &batch, "--server", &server.url, "--token", &acme]);
    assert_eq!(exported.lines().count(), 4);
}

/// Read a server-sent event stream to its end: (event, data) pairs.
async fn read_events(server: &Server, path: &str) -> Vec<(String, Value)> {
    let mut response = server
        .client
        .get(format!("{}{path}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(chunk) = tokio::time::timeout_at(deadline.into(), response.chunk())
        .await
        .expect("the stream ends within 60 s")
        .unwrap()
    {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text.split("\n\n")
        .filter_map(|block| {
            let event = block
                .lines()
                .find_map(|line| line.strip_prefix("event: "))?;
            let data = block.lines().find_map(|line| line.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[tokio::test]
async fn a_batch_streams_each_verdict_once_as_it_finishes_then_ends() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    let body = json!({"snippets": [
        {"id": "slow", "code": "-- sim: sleep 1500\ntheorem s : True := trivial"},
        {"id": "fast", "code": "theorem f : 1 = 2 := by sorry"},
        {"id": "slower", "code": "-- sim: sleep 2500\ntheorem t : True := trivial"}
    ]});
    let (status, submitted) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 202, "{submitted}");
    let batch = submitted["batch_id"].as_str().unwrap();
    let events = read_events(&server, &format!("/v1/batches/{batch}/events")).await;
    let verdicts: Vec<&str> = events
        .iter()
        .filter(|(event, _)| event == "verdict")
        .map(|(_, check)| check["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["fast", "slow", "slower"],
        "in the order they finished"
    );
    for (event, check) in &events {
        if event == "verdict" {
            assert_eq!(check["state"], "done");
        }
    }
    let (last, end) = events.last().unwrap();
    assert_eq!(last, "end");
    assert_eq!(end["all_final"], true);
    assert_eq!(end["statuses"], json!({"valid": 2, "sorry": 1}));
    // A finished batch's stream sends everything at once and ends.
    let again = read_events(&server, &format!("/v1/batches/{batch}/events")).await;
    assert_eq!(again.len(), 4);
}

#[tokio::test]
async fn cancelling_ends_queued_and_running_checks_and_frees_the_worker() {
    let data = tempfile::tempdir().unwrap();
    // One slot and a short lease: the running check's worker renews every second.
    let server = Server::start(data.path(), &["--slots", "1", "--lease-seconds", "3"]);
    let body = json!({"snippets": [
        {"id": "long", "code": "-- sim: sleep 120000\ntheorem s : True := trivial"},
        {"id": "waiting-1", "code": "theorem a : True := trivial"},
        {"id": "waiting-2", "code": "theorem b : True := trivial"}
    ], "timeout": 300});
    let (status, submitted) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 202, "{submitted}");
    let batch = submitted["batch_id"].as_str().unwrap().to_string();
    let long_id = submitted["results"][0]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, check) = server.get_json(&format!("/v1/checks/{long_id}")).await;
        if check["state"] == "running" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the long check never started: {check}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = server
        .client
        .delete(format!("{}/v1/batches/{batch}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cancellation: Value = response.json().await.unwrap();
    assert_eq!(cancellation["running"], 1, "{cancellation}");
    assert_eq!(cancellation["queued"], 2, "{cancellation}");
    assert_eq!(cancellation["job_ids"].as_array().unwrap().len(), 3);
    let (_, view) = server.get_json(&format!("/v1/batches/{batch}")).await;
    assert_eq!(view["all_final"], true, "{view}");
    assert_eq!(view["statuses"], json!({"server_error": 3}));
    let (_, check) = server.get_json(&format!("/v1/checks/{long_id}")).await;
    assert_eq!(check["verdict"]["reason"]["code"], "cancelled", "{check}");
    assert_eq!(check["verdict"]["status"], "server_error");

    // The only slot is free again long before the 120 s check would have
    // ended: the worker stopped it at its next renewal.
    let started = Instant::now();
    let (status, next) = server
        .post(
            "/v1/checks",
            &json!({"snippets": [{"code": "theorem n : True := trivial"}], "wait": 60}),
        )
        .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["results"][0]["verdict"]["status"], "valid");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // The cancelled verdict stays: the stopped check's late result never replaced it.
    let (_, check) = server.get_json(&format!("/v1/checks/{long_id}")).await;
    assert_eq!(check["verdict"]["reason"]["code"], "cancelled", "{check}");

    // Cancelling one check; a final check is left as it is; unknown is 404.
    let (_, single) = server
        .post(
            "/v1/checks",
            &json!({"snippets": [{"code": "-- sim: sleep 120000\ntheorem q : True := trivial"}], "timeout": 300}),
        )
        .await;
    let single_id = single["results"][0]["id"].as_str().unwrap();
    let delete = |path: String| {
        let client = server.client.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let response = client.delete(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, cancelled) = delete(format!("/v1/checks/{single_id}")).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["job_ids"], json!([single_id]));
    let done_id = next["results"][0]["id"].as_str().unwrap();
    let (status, nothing) = delete(format!("/v1/checks/{done_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(nothing["job_ids"], json!([]));
    let (_, still) = server.get_json(&format!("/v1/checks/{done_id}")).await;
    assert_eq!(still["verdict"]["status"], "valid");
    let (status, _) = delete("/v1/checks/no-such-check".into()).await;
    assert_eq!(status, 404);
    let (status, _) = delete("/v1/batches/no-such-batch".into()).await;
    assert_eq!(status, 404);
}

/// One server-sent event: its name, id (if any) and data.
type Event = (String, Option<String>, Value);

/// Open a batch's event stream (resuming after `last_event_id`, if given)
/// and read whole events until the stream ends, or, with `drop_after`, until
/// that many verdicts came: then the connection is dropped, and a partly
/// received event is lost as it would be for any client.
async fn stream_events(
    server: &Server,
    batch: &str,
    last_event_id: Option<&str>,
    drop_after: Option<usize>,
) -> Vec<Event> {
    let mut request = server
        .client
        .get(format!("{}/v1/batches/{batch}/events", server.url));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let mut response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut pending = String::new();
    let mut events: Vec<Event> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(chunk) = tokio::time::timeout_at(deadline.into(), response.chunk())
        .await
        .expect("the stream ends within 60 s")
        .unwrap()
    {
        pending.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(name).map(str::to_string))
            };
            if let (Some(event), Some(data)) = (field("event: "), field("data: ")) {
                events.push((event, field("id: "), serde_json::from_str(&data).unwrap()));
            }
            let verdicts = events
                .iter()
                .filter(|(event, ..)| event == "verdict")
                .count();
            if drop_after.is_some_and(|wanted| verdicts >= wanted) {
                return events;
            }
        }
    }
    events
}

fn verdict_custom_ids(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|(event, ..)| event == "verdict")
        .map(|(_, _, check)| check["custom_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_dropped_event_stream_resumes_from_last_event_id_losing_and_repeating_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    let snippets: Vec<Value> = (0..8)
        .map(|index| {
            json!({"id": format!("p{index}"), "code": format!("-- sim: sleep {}\ntheorem t{index} : True := trivial", 300 * index)})
        })
        .collect();
    let (status, submitted) = server
        .post("/v1/checks", &json!({"snippets": snippets}))
        .await;
    assert_eq!(status, 202, "{submitted}");
    let batch = submitted["batch_id"].as_str().unwrap().to_string();

    // The first connection drops after two verdicts, mid-batch.
    let first = stream_events(&server, &batch, None, Some(2)).await;
    let first_ids = verdict_custom_ids(&first);
    assert!(first_ids.len() >= 2, "{first:?}");
    let (_, last_id, _) = first
        .iter()
        .rev()
        .find(|(event, ..)| event == "verdict")
        .unwrap();
    let last_id = last_id.clone().expect("every verdict has an event id");
    // Verdicts finish while no one listens.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    // The reconnection sends exactly the verdicts not yet delivered.
    let second = stream_events(&server, &batch, Some(&last_id), None).await;
    let second_ids = verdict_custom_ids(&second);
    assert_eq!(second.last().unwrap().0, "end", "{second:?}");
    let mut all: Vec<String> = first_ids.iter().chain(&second_ids).cloned().collect();
    let delivered = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        delivered,
        all.len(),
        "a verdict came twice: {first_ids:?} then {second_ids:?}"
    );
    assert_eq!(
        all,
        (0..8).map(|index| format!("p{index}")).collect::<Vec<_>>(),
        "a verdict was lost: {first_ids:?} then {second_ids:?}"
    );
    // Event ids follow the order of delivery, across the two connections.
    let ids: Vec<String> = first
        .iter()
        .chain(&second)
        .filter_map(|(_, id, _)| id.clone())
        .collect();
    let places: Vec<(i64, String)> = ids
        .iter()
        .map(|id| {
            let (time, check) = id.split_once(':').unwrap();
            (time.parse().unwrap(), check.to_string())
        })
        .collect();
    assert!(places.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");

    // Resuming after the last verdict sends only the end; an empty id
    // starts over; a malformed one is 400.
    let after_all = stream_events(&server, &batch, Some(ids.last().unwrap()), None).await;
    assert_eq!(after_all.len(), 1, "{after_all:?}");
    assert_eq!(after_all[0].0, "end");
    let from_start = stream_events(&server, &batch, Some(""), None).await;
    assert_eq!(verdict_custom_ids(&from_start).len(), 8);
    for malformed in ["no-colon", "abc:def", "12:"] {
        let response = server
            .client
            .get(format!("{}/v1/batches/{batch}/events", server.url))
            .header("last-event-id", malformed)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{malformed}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "invalid_request", "{body}");
    }
}

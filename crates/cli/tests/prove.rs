//! `/v1/prove` end to end, through real processes: a `leanfarm serve
//! --simulate` farm with model routes from its TOML file, candidates
//! checked by lean-sim in the sandbox, and an OpenAI-compatible server
//! written here (real HTTP, chat completions with `usage`).

mod common;

use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STATEMENT: &str = "theorem add_comm' (a b : Nat) : a + b = b + a";

/// A farm whose stderr (JSON logs at `info`) goes to a file.
struct Farm {
    child: Child,
    url: String,
    log: PathBuf,
    data_dir: PathBuf,
    client: reqwest::Client,
}

impl Farm {
    fn start(data_dir: &Path, config: &str, extra: &[&str], env: &[(&str, &str)]) -> Farm {
        std::fs::create_dir_all(data_dir).unwrap();
        let config_path = data_dir.join("farm.toml");
        std::fs::write(&config_path, config).unwrap();
        let log = data_dir.join(format!("serve-{}.log", uuid_like()));
        let child = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
            .args(["serve", "--simulate", "--addr", "127.0.0.1:0", "--sandbox"])
            .arg(leanfarm_testkit::test_backend_name())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--config")
            .arg(&config_path)
            .args(extra)
            .envs(env.iter().copied())
            .env("LEAN_FARM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn leanfarm serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text
                .lines()
                .find(|line| line.starts_with("leanfarm: serving on "))
            {
                break line["leanfarm: serving on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string();
            }
            if let Some(line) = text.lines().find(|line| line.starts_with("leanfarm: ")) {
                panic!("leanfarm serve failed: {line}");
            }
            assert!(
                Instant::now() < deadline,
                "leanfarm serve did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Farm {
            child,
            url,
            log,
            data_dir: data_dir.to_path_buf(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(self.client.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(format!("{}{path}", self.url)))
            .await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.client.delete(format!("{}{path}", self.url)))
            .await
    }

    async fn text(&self, path: &str) -> String {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    }

    /// Submit and wait for the job's end.
    async fn prove(&self, body: &Value) -> Value {
        let (status, job) = self.post("/v1/prove", body).await;
        assert_eq!(status, 202, "{job}");
        assert_eq!(job["state"], "running");
        self.wait_end(job["id"].as_str().unwrap(), Duration::from_secs(120))
            .await
    }

    async fn wait_end(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, job) = self.get(&format!("/v1/prove/{id}?wait=5")).await;
            assert_eq!(status, 200, "{job}");
            if job["state"] != "running" {
                return job;
            }
            assert!(Instant::now() < deadline, "prove job still running: {job}");
        }
    }

    fn log_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.kill_hard();
        common::release_mounts(&self.data_dir);
    }
}

fn uuid_like() -> String {
    format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn body(route: &str, n: u32, rounds: u32, budget: Value) -> Value {
    json!({
        "statement": STATEMENT,
        "preamble": "",
        "header": "",
        "route": route,
        "strategy": {"kind": "sample", "n": n, "rounds": rounds},
        "budget": budget,
    })
}

const ROUTES: &str = r#"
[prove.routes.third]
backend = "dummy"
model = "dummy-third"
dummy = { solve_on = 3 }

[prove.routes.never]
backend = "dummy"
model = "dummy-never"
dummy = { solve_on = 0 }
"#;

fn statuses(job: &Value) -> Vec<(u64, u64, String)> {
    job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attempt| {
            (
                attempt["round"].as_u64().unwrap(),
                attempt["candidate"].as_u64().unwrap(),
                attempt["verdict"]["status"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_dummy_route_proves_on_its_third_candidate_with_artifacts_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::start(dir.path(), ROUTES, &[], &[]);
    let job = farm
        .prove(&body(
            "third",
            2,
            3,
            json!({"candidates": 16, "tokens": 100000}),
        ))
        .await;
    assert_eq!(job["state"], "proved", "{job}");
    assert_eq!(
        statuses(&job),
        vec![
            (1, 1, "lean_error".to_string()),
            (1, 2, "lean_error".to_string()),
            (2, 1, "valid".to_string()),
            (2, 2, "lean_error".to_string()),
        ]
    );
    let proof = job["proof"].as_str().unwrap();
    assert!(proof.starts_with(&format!("{STATEMENT} := by")), "{proof}");
    assert!(job["reason"].is_null());
    assert_eq!(job["usage"]["candidates"], 4);
    let tokens = job["usage"]["tokens"].as_u64().unwrap();
    let attempt_tokens: u64 = job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["tokens"].as_u64().unwrap())
        .sum();
    assert!(tokens > 0 && tokens == attempt_tokens, "{job}");
    assert_eq!(job["budget"]["candidates"], 16);
    assert_eq!(job["attempts"][0]["model"], "dummy-third");
    assert_eq!(job["attempts"][0]["route"], "third");
    // Each candidate is an ordinary check of the tenant, with the statement pinned.
    let check_id = job["attempts"][2]["check_id"].as_str().unwrap();
    let (status, check) = farm.get(&format!("/v1/checks/{check_id}")).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["verdict"]["status"], "valid");
    let wrong_id = job["attempts"][0]["check_id"].as_str().unwrap();
    let (_, wrong) = farm.get(&format!("/v1/checks/{wrong_id}")).await;
    assert!(
        wrong["verdict"]["messages"]
            .to_string()
            .contains("dummy candidate 1 is wrong"),
        "{wrong}"
    );

    // Artifacts.
    let id = job["id"].as_str().unwrap();
    let artifacts = dir
        .path()
        .join("artifacts")
        .join("jobs")
        .join(leanfarm_store::artifacts::shard(id))
        .join(id);
    let read = |name: &str| {
        std::fs::read_to_string(artifacts.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let input: Value = serde_json::from_str(&read("input.json")).unwrap();
    assert_eq!(input["statement"], STATEMENT);
    assert_eq!(read("final.lean"), proof);
    let blueprint: Value = serde_json::from_str(&read("blueprints.json")).unwrap();
    assert_eq!(blueprint["strategy"]["n"], 2);
    assert_eq!(blueprint["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(blueprint["statement_check"]["status"], "sorry");
    let lines: Vec<Value> = read("attempts.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for line in &lines {
        for field in [
            "round",
            "candidate",
            "model",
            "tokens",
            "status",
            "time_ms",
            "check_id",
        ] {
            assert!(!line[field].is_null(), "{field} missing in {line}");
        }
    }
    let summary: Value = serde_json::from_str(&read("summary.json")).unwrap();
    assert_eq!(summary["state"], "proved");
    assert_eq!(summary["usage"]["candidates"], 4);

    // One JSON log line per attempt, with the documented fields.
    let attempt_logs: Vec<Value> = farm
        .log_lines()
        .into_iter()
        .filter(|line| {
            line["fields"]["message"] == "prove attempt" && line["fields"]["job_id"] == id
        })
        .collect();
    assert_eq!(attempt_logs.len(), 4, "{attempt_logs:?}");
    for line in &attempt_logs {
        let fields = &line["fields"];
        for field in [
            "job_id",
            "session_id",
            "round",
            "candidate",
            "model",
            "tokens",
            "budget_left",
            "lean_ok",
            "error_class",
            "time_ms",
        ] {
            assert!(!fields[field].is_null(), "{field} missing in {line}");
        }
    }
    assert_eq!(
        attempt_logs
            .iter()
            .filter(|line| line["fields"]["lean_ok"] == true)
            .count(),
        1
    );

    // The event stream of a finished job: its attempts, then its end.
    let events = farm.text(&format!("/v1/prove/{id}/events")).await;
    assert_eq!(events.matches("event: attempt\n").count(), 4, "{events}");
    assert!(events.contains("event: end\n"), "{events}");

    let metrics = farm.text("/metrics").await;
    assert!(
        metrics.contains("lean_farm_prove_jobs_total{outcome=\"proved\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lean_farm_prove_time_to_proof_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lean_farm_model_calls_total{route=\"third\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_job_stops_cleanly_when_its_candidate_budget_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::start(dir.path(), ROUTES, &[], &[]);
    let job = farm
        .prove(&body("never", 2, 10, json!({"candidates": 3})))
        .await;
    assert_eq!(job["state"], "exhausted", "{job}");
    assert!(
        job["reason"]
            .as_str()
            .unwrap()
            .starts_with("budget.candidates"),
        "{job}"
    );
    assert!(job["proof"].is_null());
    assert_eq!(job["usage"]["candidates"], 3);
    assert_eq!(job["attempts"].as_array().unwrap().len(), 3);
    assert!(job["usage"]["cpu_seconds"].as_f64().unwrap() > 0.0, "{job}");
    let metrics = farm.text("/metrics").await;
    assert!(
        metrics.contains("lean_farm_prove_budget_exhaustions_total{budget=\"candidates\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lean_farm_prove_jobs_total{outcome=\"exhausted\"} 1"),
        "{metrics}"
    );

    // refine: the strategy's rounds run out first.
    let mut refine = body("never", 1, 2, json!({"candidates": 10}));
    refine["strategy"]["kind"] = json!("refine");
    let job = farm.prove(&refine).await;
    assert_eq!(job["state"], "exhausted", "{job}");
    assert!(
        job["reason"]
            .as_str()
            .unwrap()
            .starts_with("strategy.rounds"),
        "{job}"
    );
    assert_eq!(job["usage"]["candidates"], 2);
}

#[tokio::test]
async fn a_statement_that_does_not_elaborate_fails_before_any_model_call() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::start(dir.path(), ROUTES, &[], &[]);
    let mut request = body("third", 2, 2, json!({}));
    request["preamble"] = json!("-- sim: error unknown identifier 'Foo'");
    let job = farm.prove(&request).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["reason"]
            .as_str()
            .unwrap()
            .contains("does not elaborate"),
        "{job}"
    );
    assert_eq!(job["usage"]["candidates"], 0);
    assert_eq!(job["usage"]["tokens"], 0);
    assert!(job["attempts"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_code_and_cancel_stops_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let slow = format!(
        "{ROUTES}\n[prove.routes.slow]\nbackend = \"dummy\"\ndummy = {{ solve_on = 0, wrong_extra = \"-- sim: sleep 3000\" }}\n"
    );
    let farm = Farm::start(
        dir.path(),
        &slow,
        &["--prove-max-running-per-tenant", "1"],
        &[],
    );
    let cases = [
        (
            json!({"statement": "theorem t : True := trivial"}),
            400,
            "invalid_prove_request",
        ),
        (
            json!({"statement": "def x : Nat"}),
            400,
            "invalid_prove_request",
        ),
        (
            json!({"statement": STATEMENT, "route": "nowhere"}),
            400,
            "unknown_model_route",
        ),
        (
            json!({"statement": STATEMENT, "strategy": {"kind": "sample", "n": 0}}),
            400,
            "invalid_prove_request",
        ),
        (
            json!({"statement": STATEMENT, "budget": {"candidates": 0}}),
            400,
            "invalid_prove_request",
        ),
        (
            json!({"statement": STATEMENT, "strategy": {"kind": "guess"}}),
            400,
            "invalid_request",
        ),
        (
            json!({"statement": STATEMENT, "policy": {"pinned": {"name": "t", "statement": "theorem t : True"}}}),
            400,
            "invalid_prove_request",
        ),
        (
            json!({"statement": STATEMENT, "surprise": 1}),
            400,
            "invalid_request",
        ),
    ];
    for (request, status, code) in cases {
        let (got, error) = farm.post("/v1/prove", &request).await;
        assert_eq!(
            (got, error["code"].as_str().unwrap_or("")),
            (status, code),
            "{request}: {error}"
        );
        assert!(error["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()));
    }
    let (status, error) = farm.get("/v1/prove/no-such-job").await;
    assert_eq!(
        (status, error["code"].as_str().unwrap()),
        (404, "not_found")
    );

    let (status, job) = farm
        .post("/v1/prove", &body("slow", 1, 10, json!({})))
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, cancelled) = farm.delete(&format!("/v1/prove/{id}")).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    // It stays cancelled: no later write of the runner changes it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, later) = farm.get(&format!("/v1/prove/{id}")).await;
    assert_eq!(later["state"], "cancelled", "{later}");
}

#[tokio::test]
async fn a_tenants_daily_token_cap_refuses_big_budgets_and_stops_jobs_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::start(
        dir.path(),
        ROUTES,
        &["--prove-tenant-daily-tokens", "500"],
        &[],
    );
    let (status, error) = farm
        .post("/v1/prove", &body("never", 1, 50, json!({"tokens": 501})))
        .await;
    assert_eq!(
        (status, error["code"].as_str().unwrap()),
        (403, "budget_over_allowance"),
        "{error}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("500"),
        "{error}"
    );
    // Two jobs, each within the cap, together past it.
    let request = body("never", 1, 50, json!({"tokens": 400, "candidates": 50}));
    let (_, first) = farm.post("/v1/prove", &request).await;
    let (_, second) = farm.post("/v1/prove", &request).await;
    let first = farm
        .wait_end(first["id"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    let second = farm
        .wait_end(second["id"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    let reasons: Vec<&str> = [&first, &second]
        .iter()
        .map(|job| job["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|reason| reason.starts_with("tenant daily tokens")),
        "{reasons:?}"
    );
    for job in [&first, &second] {
        assert_eq!(job["state"], "exhausted", "{job}");
        assert!(
            job["usage"]["tokens"].as_u64().unwrap() <= 400 + 200,
            "{job}"
        );
    }
    let used =
        first["usage"]["tokens"].as_u64().unwrap() + second["usage"]["tokens"].as_u64().unwrap();
    assert!(used >= 500, "{used}");
    let (status, error) = farm
        .post("/v1/prove", &body("never", 1, 1, json!({"tokens": 1})))
        .await;
    assert_eq!(
        (status, error["code"].as_str().unwrap()),
        (403, "budget_over_allowance"),
        "{error}"
    );
}

/// A chat-completions server: answers 429 to its first `rate_limited`
/// calls, then the proof, with `usage`. Records each request.
struct ModelServer {
    url: String,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
    calls: Arc<AtomicUsize>,
}

async fn model_server(rate_limited: usize, hang: bool) -> ModelServer {
    model_server_answering(rate_limited, hang, &["Here:\n```lean\nby\n  simp\n```"]).await
}

/// A chat-completions server whose successful answers are `contents` in
/// turn (the last one again once they run out).
async fn model_server_answering(rate_limited: usize, hang: bool, contents: &[&str]) -> ModelServer {
    let contents: Arc<Vec<String>> =
        Arc::new(contents.iter().map(|text| text.to_string()).collect());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen, counter) = (Arc::clone(&requests), Arc::clone(&calls));
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (seen, counter) = (Arc::clone(&seen), Arc::clone(&counter));
            let contents = Arc::clone(&contents);
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let read = socket.read(&mut chunk).await.unwrap();
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let head = text[..end].to_string();
                        let length: usize = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buffer.len() >= end + 4 + length {
                            break (
                                head,
                                String::from_utf8_lossy(&buffer[end + 4..end + 4 + length])
                                    .to_string(),
                            );
                        }
                    }
                };
                let number = counter.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push((
                    head.clone(),
                    serde_json::from_str(&body).unwrap_or(Value::Null),
                ));
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let streamed = seen
                    .lock()
                    .unwrap()
                    .last()
                    .is_some_and(|(_, request)| request["stream"] == true);
                if streamed && number >= rate_limited {
                    // Server-sent chunks, the last with `usage`, then [DONE].
                    let pieces = ["Here:\n```lean\nby\n", "  simp\n", "```"];
                    let mut events = String::new();
                    for piece in pieces {
                        let chunk = json!({"object": "chat.completion.chunk", "model": "test-model-7b", "choices": [{"index": 0, "delta": {"content": piece}}]});
                        events.push_str(&format!("data: {chunk}\n\n"));
                    }
                    let last = json!({"object": "chat.completion.chunk", "model": "test-model-7b", "choices": [], "usage": {"prompt_tokens": 13, "completion_tokens": 5, "total_tokens": 18}});
                    events.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{events}",
                        events.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    return;
                }
                let (status, reply) = if number < rate_limited {
                    (
                        "429 Too Many Requests",
                        json!({"error": {"message": "slow down"}}).to_string(),
                    )
                } else {
                    (
                        "200 OK",
                        json!({
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "model": "test-model-7b",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": contents[(number - rate_limited).min(contents.len() - 1)]}, "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
                        })
                        .to_string(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    ModelServer {
        url,
        requests,
        calls,
    }
}

fn openai_route(name: &str, base_url: &str, extra: &str) -> String {
    format!(
        "[prove.routes.{name}]\nbackend = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"test-model\"\napi_key_env = \"PROVE_TEST_KEY\"\nbackoff = 0.05\nprice_in_per_1k = 1.0\nprice_out_per_1k = 2.0\n{extra}\n"
    )
}

#[tokio::test]
async fn an_openai_route_that_rate_limits_twice_recovers_and_accounts_usage() {
    let model = model_server(2, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = openai_route("remote", &model.url, "retries = 3\ntimeout = 10");
    let farm = Farm::start(
        dir.path(),
        &config,
        &[],
        &[("PROVE_TEST_KEY", "sk-test-123")],
    );
    let job = farm.prove(&body("remote", 1, 1, json!({}))).await;
    assert_eq!(job["state"], "proved", "{job}");
    assert_eq!(model.calls.load(Ordering::SeqCst), 3);
    assert_eq!(job["usage"]["tokens"], 18);
    let cost = job["usage"]["cost"].as_f64().unwrap();
    assert!((cost - 0.025).abs() < 1e-9, "{cost}");
    assert_eq!(job["attempts"][0]["model"], "test-model-7b");
    assert!(
        job["proof"].as_str().unwrap().ends_with(":= by\n  simp\n"),
        "{job}"
    );
    let requests = model.requests.lock().unwrap().clone();
    for (head, request) in &requests {
        assert!(head.starts_with("POST /v1/chat/completions "), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer sk-test-123"),
            "{head}"
        );
        assert_eq!(request["model"], "test-model");
        assert!(
            request["messages"].to_string().contains("a + b = b + a"),
            "{request}"
        );
    }
    let metrics = farm.text("/metrics").await;
    assert!(
        metrics.contains("lean_farm_model_calls_total{route=\"remote\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lean_farm_model_errors_total{route=\"remote\",class=\"rate_limited\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lean_farm_model_tokens_total{route=\"remote\",kind=\"prompt\"} 11"),
        "{metrics}"
    );
}

#[tokio::test]
async fn refine_sends_lean_errors_back_to_the_model_and_its_correction_is_proved() {
    let wrong = "```lean\nby\n  -- sim: error unsolved goals a + b = b + a\n  skip\n```";
    let model = model_server_answering(0, false, &[wrong, "```lean\nby\n  omega\n```"]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = openai_route("remote", &model.url, "retries = 0");
    let farm = Farm::start(dir.path(), &config, &[], &[("PROVE_TEST_KEY", "k")]);
    let mut request = body("remote", 1, 3, json!({}));
    request["strategy"]["kind"] = json!("refine");
    let job = farm.prove(&request).await;
    assert_eq!(job["state"], "proved", "{job}");
    assert_eq!(
        statuses(&job),
        vec![
            (1, 1, "lean_error".to_string()),
            (2, 1, "valid".to_string())
        ]
    );
    assert!(
        job["proof"].as_str().unwrap().ends_with(":= by\n  omega\n"),
        "{job}"
    );
    let requests = model.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let second = &requests[1].1["messages"];
    let roles: Vec<&str> = second
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
    assert!(
        second[2]["content"].as_str().unwrap().contains("skip"),
        "{second}"
    );
    assert!(
        second[3]["content"]
            .as_str()
            .unwrap()
            .contains("unsolved goals a + b = b + a"),
        "{second}"
    );
}

#[tokio::test]
async fn a_streaming_openai_route_assembles_the_reply_and_reads_usage_from_the_last_chunk() {
    let model = model_server(1, false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = openai_route("streamed", &model.url, "stream = true\nretries = 2");
    let farm = Farm::start(dir.path(), &config, &[], &[("PROVE_TEST_KEY", "k")]);
    let job = farm.prove(&body("streamed", 1, 1, json!({}))).await;
    assert_eq!(job["state"], "proved", "{job}");
    assert!(
        job["proof"].as_str().unwrap().ends_with(":= by\n  simp\n"),
        "{job}"
    );
    assert_eq!(job["usage"]["tokens"], 18);
    assert_eq!(model.calls.load(Ordering::SeqCst), 2);
    let requests = model.requests.lock().unwrap().clone();
    assert_eq!(requests[1].1["stream"], true);
    assert_eq!(requests[1].1["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn a_backend_that_is_down_or_hangs_fails_the_job_clearly_without_burning_its_budget() {
    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let hanging = model_server(0, true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}{}",
        openai_route("down", &down_url, "retries = 2\ntimeout = 2"),
        openai_route("hangs", &hanging.url, "retries = 1\ntimeout = 1")
    );
    let farm = Farm::start(dir.path(), &config, &[], &[("PROVE_TEST_KEY", "k")]);
    for (route, calls) in [("down", 3), ("hangs", 2)] {
        let started = Instant::now();
        let job = farm.prove(&body(route, 2, 3, json!({}))).await;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{route} took {:?}",
            started.elapsed()
        );
        assert_eq!(job["state"], "failed", "{job}");
        let reason = job["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("model route `{route}` is unavailable")),
            "{reason}"
        );
        assert_eq!(job["usage"]["candidates"], 0, "{job}");
        assert_eq!(job["usage"]["tokens"], 0, "{job}");
        assert!(job["attempts"].as_array().unwrap().is_empty(), "{job}");
        let metrics = farm.text("/metrics").await;
        // Two candidates in the round, each through every retry.
        assert!(
            metrics.contains(&format!(
                "lean_farm_model_calls_total{{route=\"{route}\"}} {}",
                2 * calls
            )),
            "{metrics}"
        );
    }
    assert_eq!(hanging.calls.load(Ordering::SeqCst), 4);
}

const SLOW_ROUTE: &str = "[prove.routes.slow]\nbackend = \"dummy\"\ndummy = { solve_on = 4, wrong_extra = \"-- sim: sleep 1500\" }\n";

/// Submit a slow job to `first`, kill `first` once a candidate has its
/// verdict and another is on its way, then follow the job on `second`
/// (started by `then`) to its proof, with no attempt made twice.
async fn survives_its_replica(mut first: Farm, then: impl FnOnce() -> Farm) {
    let (status, job) = first
        .post("/v1/prove", &body("slow", 1, 6, json!({})))
        .await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = first.get(&format!("/v1/prove/{id}")).await;
        if job["attempts"].as_array().unwrap().len() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill_hard();
    drop(first);
    let second = then();
    let job = second.wait_end(&id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "proved", "{job}");
    assert_eq!(
        statuses(&job),
        vec![
            (1, 1, "lean_error".to_string()),
            (2, 1, "lean_error".to_string()),
            (3, 1, "lean_error".to_string()),
            (4, 1, "valid".to_string()),
        ]
    );
    let check_ids: HashSet<&str> = job["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["check_id"].as_str().unwrap())
        .collect();
    assert_eq!(check_ids.len(), 4);
    // The tenant's checks: the statement check and one per candidate, no more.
    let (status, list) = second.get("/v1/checks?limit=100").await;
    assert_eq!(status, 200, "{list}");
    let listed = list["checks"]
        .as_array()
        .or_else(|| list["results"].as_array())
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(listed.len(), 5, "{list}");
    let resumed = second
        .log_lines()
        .into_iter()
        .any(|line| line["fields"]["message"] == "resuming a prove job whose replica stopped");
    assert!(resumed);
}

#[tokio::test]
async fn a_prove_job_survives_a_restart_of_its_replica_without_duplicate_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--prove-lease-seconds", "2", "--lease-seconds", "5"];
    let first = Farm::start(dir.path(), SLOW_ROUTE, &flags, &[]);
    survives_its_replica(first, || Farm::start(dir.path(), SLOW_ROUTE, &flags, &[])).await;
}

#[tokio::test]
async fn on_postgresql_another_replica_takes_over_the_job_of_a_replica_that_died() {
    let db = leanfarm_testkit::postgres::TestDatabase::create("prove_replicas");
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flags = [
        "--prove-lease-seconds",
        "2",
        "--lease-seconds",
        "5",
        "--store",
        db.url.as_str(),
    ];
    let first = Farm::start(first_dir.path(), SLOW_ROUTE, &flags, &[]);
    // The second replica runs all along: it must not take the job while
    // the first holds its lease, and takes it once the first is gone.
    let second = Farm::start(second_dir.path(), SLOW_ROUTE, &flags, &[]);
    survives_its_replica(first, move || second).await;
}

#[test]
fn leanfarm_prove_prints_the_proof_and_exits_by_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("goal.lean");
    std::fs::write(&file, format!("open Nat\n\n{STATEMENT} := by sorry\n")).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_leanfarm"))
            .arg("prove")
            .args(["--simulate"])
            .args(args)
            .env(
                "LEAN_FARM_TEST_SANDBOX",
                leanfarm_testkit::test_backend_name(),
            )
            .output()
            .expect("run leanfarm prove")
    };
    let inline = run(&[STATEMENT]);
    let stdout = String::from_utf8_lossy(&inline.stdout);
    let stderr = String::from_utf8_lossy(&inline.stderr);
    assert!(inline.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!("{STATEMENT} := by")),
        "{stdout}"
    );
    assert!(stderr.contains("proved · round 1"), "{stderr}");
    let from_file = run(&["--json", "--n", "1", file.to_str().unwrap()]);
    let job: Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(job["state"], "proved", "{job}");
    assert!(
        job["proof"]
            .as_str()
            .unwrap()
            .starts_with("open Nat\n\ntheorem"),
        "{job}"
    );
    // A request the farm refuses: exit 4, with its code.
    let unknown = run(&["--candidates", "1", "--route", "nowhere", STATEMENT]);
    assert_eq!(unknown.status.code(), Some(4), "{unknown:?}");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown_model_route"));
}

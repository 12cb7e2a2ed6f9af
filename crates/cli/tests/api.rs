//! The farm's HTTP API, over real HTTP against a real `leanfarm serve
//! --simulate` process: verdicts, waiting and polling, listing, the Kimina
//! endpoints, health, metrics, the OpenAPI document, and every input error.

mod common;

use common::{snippets, Server};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn checks_get_their_verdicts_and_can_be_read_back() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    let body = json!({
        "snippets": [
            {"id": "good", "code": "import Mathlib\ntheorem t : 1 + 1 = 2 := by norm_num"},
            {"id": "sorry", "code": "theorem t : 1 = 2 := by sorry"},
            {"id": "error", "code": "theorem t : 1 = 2 := by\n  -- sim: error unsolved goals\n  rfl"},
            {"id": "cheat", "code": "axiom cheat : False\ntheorem t : 1 = 2 := cheat.elim"}
        ],
        "wait": 60
    });
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 200, "{response}");
    let results = response["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["verdict"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["valid", "sorry", "lean_error", "lean_error"]);
    assert_eq!(results[3]["verdict"]["reason"]["code"], "forbidden_command");
    assert_eq!(results[0]["custom_id"], "good");
    assert_eq!(results[0]["verdict"]["toolchain"], "lean-sim");

    let id = results[0]["id"].as_str().unwrap();
    let (status, view) = server.get_json(&format!("/v1/checks/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(view["verdict"], results[0]["verdict"]);

    let batch = response["batch_id"].as_str().unwrap();
    let (status, page) = server
        .get_json(&format!("/v1/checks?batch_id={batch}&limit=3"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["results"].as_array().unwrap().len(), 3);
    let after = page["next_after"].as_str().unwrap();
    let (_, rest) = server
        .get_json(&format!(
            "/v1/checks?batch_id={batch}&limit=3&after={after}"
        ))
        .await;
    assert_eq!(rest["results"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_after"], Value::Null);

    let artifacts = data
        .path()
        .join("artifacts/jobs")
        .join(leanfarm_store::artifacts::shard(id))
        .join(id);
    for _ in 0..50 {
        if artifacts.join("summary.json").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary: Value =
        serde_json::from_slice(&std::fs::read(artifacts.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "valid");
    assert!(artifacts.join("input.json").exists());
}

#[tokio::test]
async fn without_wait_the_api_answers_at_once_and_the_job_finishes_later() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (status, response) = server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&["-- sim: sleep 500\ntheorem t : True := trivial"])}),
        )
        .await;
    assert_eq!(status, 202, "{response}");
    // Answered before the check ends: the in-process worker may already
    // have leased it, but no verdict is in.
    let state = &response["results"][0]["state"];
    assert!(state == "queued" || state == "running", "{response}");
    assert!(response["results"][0]["verdict"].is_null(), "{response}");
    let id = response["results"][0]["id"].as_str().unwrap().to_string();
    let views = server.wait_final(&[id], Duration::from_secs(30)).await;
    assert_eq!(views[0]["verdict"]["status"], "valid");
}

#[tokio::test]
async fn a_submission_may_name_only_a_toolchain_and_project_a_worker_offers() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "1"]);
    let submit = |target: Value| {
        let mut body = json!({"snippets": snippets(&["theorem t : True := trivial"]), "wait": 30});
        body.as_object_mut()
            .unwrap()
            .extend(target.as_object().unwrap().clone());
        body
    };
    // The in-process workers run toolchain `lean-sim`, project `simulated`.
    for target in [
        json!({"toolchain": "lean-sim"}),
        json!({"project": "simulated"}),
        json!({"toolchain": "lean-sim", "project": "simulated"}),
    ] {
        let (status, response) = server.post("/v1/checks", &submit(target)).await;
        assert_eq!(status, 200, "{response}");
        assert_eq!(response["results"][0]["verdict"]["status"], "valid");
    }
    let (status, refused) = server
        .post(
            "/v1/checks",
            &submit(json!({"toolchain": "leanprover/lean4:v4.9.0"})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "no_worker_for_target");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("toolchain `lean-sim` with project `simulated`"),
        "{refused}"
    );
    // The in-process worker is listed from its claims.
    let (status, listed) = server.get_json("/v1/workers").await;
    assert_eq!(status, 200);
    assert_eq!(listed["window_seconds"], 300);
    let workers = listed["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{listed}");
    assert_eq!(workers[0]["toolchain"], "lean-sim");
    assert!(workers[0]["worker_id"]
        .as_str()
        .unwrap()
        .starts_with("embedded-"));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_from_the_table() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "invalid_json"),
        (br#"{"snippets": "x"}"#.to_vec(), 400, "invalid_request"),
        (
            br#"{"snippets": [{"code": 1}]}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            br#"{"snippets": [], "wait": 1}"#.to_vec(),
            400,
            "empty_batch",
        ),
        (
            br#"{"snippets": [{"code": "x"}], "bogus": 1}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            br#"{"snippets": [{"code": "x"}], "timeout": -1}"#.to_vec(),
            400,
            "invalid_timeout",
        ),
        (
            br#"{"snippets": [{"code": "x"}], "timeout": 100000}"#.to_vec(),
            400,
            "invalid_timeout",
        ),
        (
            br#"{"snippets": [{"code": "a\u0000b"}]}"#.to_vec(),
            400,
            "nul_byte",
        ),
        (
            b"{\"snippets\": [{\"code\": \"\xff\xfe\"}]}".to_vec(),
            400,
            "invalid_json",
        ),
        (
            serde_json::to_vec(&json!({"snippets": [{"code": "x".repeat(2 << 20)}]})).unwrap(),
            413,
            "snippet_too_large",
        ),
        (
            serde_json::to_vec(&json!({"snippets": vec![json!({"code": "x"}); 1001]})).unwrap(),
            413,
            "batch_too_large",
        ),
        (vec![b' '; 17 << 20], 413, "body_too_large"),
    ];
    for (body, expected_status, expected_code) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (status, response) = server.post_raw("/v1/checks", body).await;
        assert_eq!(status, expected_status, "{preview}: {response}");
        assert_eq!(response["code"], expected_code, "{preview}: {response}");
        assert!(response["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, response) = server.get_json("/v1/checks/no-such-job").await;
    assert_eq!(
        (status, response["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, response) = server.get_json("/v1/checks?state=bogus").await;
    assert_eq!(
        (status, response["code"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn kimina_endpoints_keep_kimina_shapes_and_statuses() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let body = json!({
        "snippets": [
            {"id": "a", "code": "theorem t : True := trivial"},
            {"id": "b", "code": "theorem t : 1 = 1 := by sorry"},
            {"id": "c", "code": "theorem t : 2 + 2 = 4 := by native_decide"},
            {"id": "d", "code": "theorem t : True := by\n  -- sim: spin\n  trivial"},
            {"id": "e", "code": "-- sim: crash\ntheorem t : True := trivial"}
        ],
        "timeout": 2, "debug": false, "reuse": true, "infotree": null
    });
    let (status, response) = server.post("/api/check", &body).await;
    assert_eq!(status, 200, "{response}");
    let results = response["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a", "b", "c", "d", "e"]
    );
    assert_eq!(results[0]["error"], Value::Null);
    assert_eq!(results[0]["response"]["env"], 0);
    assert!(results[1]["response"]["sorries"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    let policy_error = results[2]["response"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["severity"] == "error")
        .unwrap();
    assert!(policy_error["data"]
        .as_str()
        .unwrap()
        .contains("native_decide"));
    assert!(
        results[3]["error"].as_str().unwrap().contains("timed out"),
        "{}",
        results[3]
    );
    assert!(
        results[4]["response"]["message"].as_str().is_some(),
        "{}",
        results[4]
    );

    let verify =
        json!({"codes": [{"custom_id": 7, "proof": "theorem t : True := trivial"}], "timeout": 10});
    let (status, response) = server.post("/verify", &verify).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["results"][0]["custom_id"], 7);
    assert!(response["results"][0]["response"]["time"].is_number());

    let (status, health) = server.get_json("/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    assert_eq!(server.get("/healthz").await.0, 200);
    let (status, ready) = server.get_json("/readyz").await;
    assert_eq!((status, ready["ready"].as_bool()), (200, Some(true)));
    server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&["theorem t : True := trivial"]), "wait": 30}),
        )
        .await;
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        "lean_farm_jobs_total{status=\"valid\"} 1",
        "lean_farm_jobs_duration_seconds_count 1",
        "lean_farm_queue_size{state=\"done\"} 1",
        "lean_farm_active_workers 1",
        "lean_farm_repl_pool_misses_total 1",
    ] {
        assert!(
            metrics.contains(expected),
            "missing `{expected}` in\n{metrics}"
        );
    }
    let (status, document) = server.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let paths: Vec<&str> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for route in [
        "/v1/checks",
        "/v1/checks/{id}",
        "/v1/checks/{id}/artifacts/{name}",
        "/v1/checks/{id}/attestation",
        "/v1/batches",
        "/v1/batches/{id}",
        "/v1/batches/{id}/results",
        "/v1/batches/{id}/events",
        "/v1/prove",
        "/v1/prove/{id}",
        "/v1/prove/{id}/events",
        "/v1/workers",
        "/v1/overview",
        "/v1/keys",
        "/v1/search",
        "/api/check",
        "/verify",
        "/health",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/worker/lease",
        "/v1/worker/renew",
        "/v1/worker/complete",
        "/v1/worker/release",
        "/v1/operator/jobs",
        "/v1/operator/jobs/retry",
        "/v1/sessions",
        "/v1/sessions/{id}",
        "/v1/sessions/{id}/tactics",
        "/v1/sessions/{id}/finish",
        "/v1/worker/sessions/poll",
        "/v1/worker/sessions/complete",
        "/v1/worker/sessions/live",
    ] {
        assert!(paths.contains(&route), "{route} is not documented");
    }
    assert_eq!(paths.len(), 35, "a documented path has no route: {paths:?}");
}

#[tokio::test]
async fn prestarted_headers_are_warm_before_the_first_request() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &["--slots", "1", "--prestart", "import Mathlib"],
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("lean_farm_repl_pool_live 1"), "{metrics}");
    let (status, response) = server
        .post(
            "/v1/checks",
            &json!({"snippets": [{"code": "import Mathlib\ntheorem t : True := trivial"}], "wait": 30}),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        response["results"][0]["verdict"]["repl_reused"], true,
        "{response}"
    );
}

#[test]
fn a_prestart_header_that_does_not_load_stops_the_start() {
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args([
            "serve",
            "--simulate",
            "--addr",
            "127.0.0.1:0",
            "--prestart",
            "import SimMissing.Module",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the farm started although its prestart header does not load");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("does not load"), "{stderr}");
}

#[tokio::test]
async fn settings_come_from_flags_then_environment_then_the_config_file() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("farm.toml");
    std::fs::write(
        &config,
        "slots = 3\nprestart = [\"import Mathlib\"]\nlease_seconds = 5.0\n",
    )
    .unwrap();
    let config_flag = config.to_str().unwrap();

    // The file alone.
    let server = Server::start(data.path(), &["--config", config_flag]);
    let (_, ready) = server.get_json("/readyz").await;
    assert_eq!(ready["worker_slots"], 3, "{ready}");
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("lean_farm_repl_pool_live 1"), "{metrics}");
    drop(server);

    // A flag wins over the file.
    let server = Server::start(data.path(), &["--config", config_flag, "--slots", "2"]);
    let (_, ready) = server.get_json("/readyz").await;
    assert_eq!(ready["worker_slots"], 2, "{ready}");
    drop(server);

    // So does the environment (LEAN_FARM_*), set on the child only.
    let server = Server::start_with_env(
        data.path(),
        &["--config", config_flag],
        &[("LEAN_FARM_SLOTS", "1")],
    );
    let (_, ready) = server.get_json("/readyz").await;
    assert_eq!(ready["worker_slots"], 1, "{ready}");
}

#[test]
fn a_config_file_with_an_unknown_or_mistyped_setting_is_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("farm.toml");
    // `leanfarm serve` with this config file: its exit code and stderr.
    let serve_with = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_leanfarm"))
            .args(["serve", "--simulate", "--addr", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    };
    let (code, stderr) = serve_with("slots = 2\nslotz = 3\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("unknown setting `slotz`"), "{stderr}");
    let (code, stderr) = serve_with("sandbox = \"none\"\nslots = \"two\"\n");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`slots`: invalid type"), "{stderr}");
}

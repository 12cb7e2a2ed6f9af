//! Settings and limits through the real `leanfarm` binary: each limit is a
//! flag, a `LEAN_FARM_*` variable and a config-file key, with flags over
//! variables over the file over the default; a value that cannot work is
//! refused by name; the farm's queue cap holds exactly across replicas,
//! and a batch no queue could ever take is 413, not 429.

mod common;

use common::{api_replica, leanfarm, snippets, tokens, Server};
use leanfarm_testkit::postgres::TestDatabase;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `n` distinct trivial snippets.
fn batch(n: usize) -> Value {
    let codes: Vec<String> = (0..n)
        .map(|i| format!("theorem t{i} : True := trivial"))
        .collect();
    snippets(&codes.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Run `leanfarm serve --simulate` with these flags and variables until it
/// exits; its exit code and stderr.
fn serve_fails(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["serve", "--simulate", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_limit_is_a_flag_and_a_variable_with_its_default_in_the_help() {
    let output = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for (flag, variable, default) in [
        ("--cpu-limit-cores", "LEAN_FARM_CPU_LIMIT_CORES", "1"),
        ("--pids-limit", "LEAN_FARM_PIDS_LIMIT", "256"),
        ("--memory-limit-mib", "LEAN_FARM_MEMORY_LIMIT_MIB", "8192"),
        ("--max-body-bytes", "LEAN_FARM_MAX_BODY_BYTES", "16777216"),
        (
            "--max-snippet-bytes",
            "LEAN_FARM_MAX_SNIPPET_BYTES",
            "1048576",
        ),
        ("--max-batch", "LEAN_FARM_MAX_BATCH", "1000"),
        (
            "--max-timeout-seconds",
            "LEAN_FARM_MAX_TIMEOUT_SECONDS",
            "600",
        ),
        ("--max-wait-seconds", "LEAN_FARM_MAX_WAIT_SECONDS", "300"),
        ("--max-queued-jobs", "LEAN_FARM_MAX_QUEUED_JOBS", "100000"),
    ] {
        let entry = help
            .split("\n      --")
            .find(|entry| entry.starts_with(&format!("{} ", &flag[2..])))
            .unwrap_or_else(|| panic!("{flag} is not in the help:\n{help}"));
        assert!(entry.contains(&format!("[env: {variable}=]")), "{entry}");
        assert!(entry.contains(&format!("[default: {default}]")), "{entry}");
    }
}

#[tokio::test]
async fn request_limits_come_from_flags_then_environment_then_the_file() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("farm.toml");
    std::fs::write(&config, "max_batch = 2\nmax_snippet_bytes = 100\n").unwrap();
    let config_flag = config.to_str().unwrap();
    let long_snippet = json!({"snippets": [{"code": format!("theorem t : True := trivial -- {}", "x".repeat(100))}]});

    // The file alone: batches of 2, snippets of 100 bytes.
    let server = Server::start(data.path(), &["--slots", "0", "--config", config_flag]);
    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(3)}))
        .await;
    assert_eq!(
        (status, response["code"].as_str()),
        (413, Some("batch_too_large")),
        "{response}"
    );
    assert!(
        response["message"].as_str().unwrap().contains("at most 2"),
        "{response}"
    );
    let (status, response) = server.post("/v1/checks", &long_snippet).await;
    assert_eq!(
        (status, response["code"].as_str()),
        (413, Some("snippet_too_large")),
        "{response}"
    );
    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(2)}))
        .await;
    assert_eq!(status, 202, "{response}");
    drop(server);

    // The environment wins over the file, for the setting it names only.
    let server = Server::start_with_env(
        data.path(),
        &["--slots", "0", "--config", config_flag],
        &[("LEAN_FARM_MAX_BATCH", "3")],
    );
    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(3)}))
        .await;
    assert_eq!(status, 202, "{response}");
    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(4)}))
        .await;
    assert_eq!(
        (status, response["code"].as_str()),
        (413, Some("batch_too_large")),
        "{response}"
    );
    let (status, _) = server.post("/v1/checks", &long_snippet).await;
    assert_eq!(status, 413, "the file's max_snippet_bytes still holds");
    drop(server);

    // A flag wins over both.
    let server = Server::start_with_env(
        data.path(),
        &["--slots", "0", "--config", config_flag, "--max-batch", "4"],
        &[("LEAN_FARM_MAX_BATCH", "3")],
    );
    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(4)}))
        .await;
    assert_eq!(status, 202, "{response}");
    drop(server);

    // Without the file, the defaults: a 100-byte snippet is nothing.
    let server = Server::start(data.path(), &["--slots", "0"]);
    let (status, response) = server.post("/v1/checks", &long_snippet).await;
    assert_eq!(status, 202, "{response}");
}

/// The cgroup directories of one controller's `leanfarm` parent group.
fn groups_under(controller_dirs: &[&str]) -> Vec<PathBuf> {
    controller_dirs
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect()
}

#[tokio::test]
async fn the_sandbox_cpu_and_pids_limits_reach_the_repls_cgroup() {
    if leanfarm_testkit::test_backend_name() == "none" {
        return; // no cgroups without a sandbox
    }
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("farm.toml");
    // Unusual values, so that this farm's group is told from other tests'.
    std::fs::write(&config, "pids_limit = 77\ncpu_limit_cores = 0.25\n").unwrap();
    let server = Server::start_with_env(
        data.path(),
        &[
            "--slots",
            "1",
            "--prestart",
            "import Lean",
            "--config",
            config.to_str().unwrap(),
        ],
        // The variable wins over the file's 0.25.
        &[("LEAN_FARM_CPU_LIMIT_CORES", "0.37")],
    );
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.contains("lean_farm_repl_pool_live 1"), "{metrics}");
    // cgroup v2 (one tree) or v1 (a tree per controller).
    let ours: Vec<PathBuf> =
        groups_under(&["/sys/fs/cgroup/leanfarm", "/sys/fs/cgroup/pids/leanfarm"])
            .into_iter()
            .filter(|group| {
                std::fs::read_to_string(group.join("pids.max")).is_ok_and(|max| max.trim() == "77")
            })
            .collect();
    assert_eq!(ours.len(), 1, "one REPL with pids.max 77: {ours:?}");
    let name = ours[0].file_name().unwrap();
    let v2_cpu = ours[0].join("cpu.max");
    let v1_cpu = Path::new("/sys/fs/cgroup/cpu/leanfarm")
        .join(name)
        .join("cpu.cfs_quota_us");
    if v2_cpu.exists() {
        assert_eq!(
            std::fs::read_to_string(v2_cpu).unwrap().trim(),
            "37000 100000"
        );
    } else {
        assert_eq!(
            std::fs::read_to_string(&v1_cpu).unwrap().trim(),
            "37000",
            "{v1_cpu:?}"
        );
    }
}

#[test]
fn a_value_that_cannot_work_is_refused_by_name_from_any_source() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("farm.toml");
    let (code, stderr) = serve_fails(data.path(), &["--cpu-limit-cores", "0"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "invalid setting `cpu_limit_cores` (--cpu-limit-cores, LEAN_FARM_CPU_LIMIT_CORES)"
        ),
        "{stderr}"
    );

    let (code, stderr) = serve_fails(data.path(), &[], &[("LEAN_FARM_PIDS_LIMIT", "1")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid setting `pids_limit`"), "{stderr}");

    std::fs::write(&config, "max_queued_jobs = 0\n").unwrap();
    let (code, stderr) = serve_fails(data.path(), &["--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid setting `max_queued_jobs`"),
        "{stderr}"
    );
    // The same bad file value, overridden by a good flag, starts nothing bad:
    // the next setting checked is the one that fails.
    std::fs::write(&config, "max_queued_jobs = 0\nmax_timeout_seconds = -1\n").unwrap();
    let (code, stderr) = serve_fails(
        data.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--max-queued-jobs",
            "5",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid setting `max_timeout_seconds`"),
        "{stderr}"
    );

    let (code, stderr) = serve_fails(
        data.path(),
        &["--max-snippet-bytes", "2000", "--max-body-bytes", "1000"],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid setting `max_snippet_bytes`"),
        "{stderr}"
    );

    // A worker takes the same sandbox settings and refuses them alike.
    let output = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args([
            "worker",
            "--simulate",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "t",
            "--pids-limit",
            "2",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid setting `pids_limit`"), "{stderr}");
}

/// Two submitters race batches of 3 at two replicas sharing one store,
/// under a cap of 10 queued jobs (no workers: nothing leaves the queue).
/// Exactly 3 batches get in; the rest are 429 `queue_full` with
/// Retry-After. Returns the replicas.
/// `metrics_token` reads `/metrics` where the farm requires an operator's.
async fn race_two_replicas(
    first: Server,
    second: Server,
    metrics_token: Option<String>,
) -> (Server, Server) {
    let first = std::sync::Arc::new(first);
    let second = std::sync::Arc::new(second);
    let mut submitters = Vec::new();
    for server in [first.clone(), second.clone()] {
        submitters.push(tokio::spawn(async move {
            let (mut accepted, mut refused) = (0, 0);
            for _ in 0..5 {
                let (status, response) = server
                    .post("/v1/checks", &json!({"snippets": batch(3)}))
                    .await;
                match status {
                    202 => accepted += 1,
                    429 => {
                        assert_eq!(response["code"], "queue_full", "{response}");
                        assert_eq!(response["retry_after_header"], true, "{response}");
                        refused += 1;
                    }
                    _ => panic!("{status}: {response}"),
                }
            }
            (accepted, refused)
        }));
    }
    let mut accepted = 0;
    let mut refused = 0;
    for submitter in submitters {
        let (a, r) = submitter.await.unwrap();
        accepted += a;
        refused += r;
    }
    assert_eq!((accepted, refused), (3, 7));
    let mut scrape = reqwest::Client::new().get(format!("{}/metrics", first.url));
    if let Some(token) = &metrics_token {
        scrape = scrape.bearer_auth(token);
    }
    let metrics = scrape.send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("lean_farm_queue_size{state=\"queued\"} 9"),
        "{metrics}"
    );
    // A batch larger than the whole cap can never get in: 413, not 429.
    let (status, response) = first
        .post("/v1/checks", &json!({"snippets": batch(11)}))
        .await;
    assert_eq!(
        (status, response["code"].as_str()),
        (413, Some("batch_exceeds_queue_limit")),
        "{response}"
    );
    assert_eq!(response["retry_after_header"], Value::Null, "{response}");
    assert!(
        response["message"]
            .as_str()
            .unwrap()
            .contains("can never be queued"),
        "{response}"
    );
    (
        std::sync::Arc::into_inner(first).unwrap(),
        std::sync::Arc::into_inner(second).unwrap(),
    )
}

#[tokio::test]
async fn the_queue_cap_holds_across_two_replicas_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("shared.db").display());
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let flags = [
        "--slots",
        "0",
        "--store",
        store.as_str(),
        "--max-queued-jobs",
        "10",
    ];
    let first = Server::start(first_dir.path(), &flags);
    let second = Server::start(second_dir.path(), &flags);
    race_two_replicas(first, second, None).await;
}

#[tokio::test]
async fn the_queue_cap_holds_across_two_replicas_on_postgres() {
    let db = TestDatabase::create("queue_cap");
    let (user, _) = tokens(&db.url);
    let (first_dir, second_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = api_replica(first_dir.path(), &db.url, &["--max-queued-jobs", "10"]);
    let mut second = api_replica(second_dir.path(), &db.url, &["--max-queued-jobs", "10"]);
    first.token = Some(user.clone());
    second.token = Some(user);
    let operator = leanfarm(&[
        "tenant", "--store", &db.url, "farm-key", "--scope", "operator",
    ]);
    race_two_replicas(first, second, Some(operator)).await;
}

#[tokio::test]
async fn a_batch_larger_than_the_tenants_queue_is_413_and_one_that_does_not_fit_now_429() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("farm.db").display());
    leanfarm(&[
        "tenant",
        "--store",
        &store,
        "set",
        "tiny",
        "--max-queued",
        "4",
        "--rps",
        "1000",
    ]);
    let token = leanfarm(&[
        "tenant", "--store", &store, "key", "tiny", "--scope", "user",
    ]);
    let server_dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(server_dir.path(), &["--slots", "0", "--store", &store]);
    server.token = Some(token);

    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(5)}))
        .await;
    assert_eq!(
        (status, response["code"].as_str()),
        (413, Some("batch_exceeds_queue_limit")),
        "{response}"
    );
    let message = response["message"].as_str().unwrap();
    assert!(
        message.contains("tenant `tiny`") && message.contains("at most 4"),
        "{message}"
    );

    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(3)}))
        .await;
    assert_eq!(status, 202, "{response}");
    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": batch(2)}))
        .await;
    assert_eq!(
        (status, response["code"].as_str()),
        (429, Some("tenant_queue_full")),
        "{response}"
    );
    assert_eq!(response["retry_after_header"], true);
}

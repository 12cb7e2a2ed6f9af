//! A real `leanfarm serve --simulate` process, and an HTTP client for it.

#![allow(dead_code)]

pub mod private_postgres;

use leanfarm_testkit::test_backend_name;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub url: String,
    pub client: reqwest::Client,
    /// Sent as `Authorization: Bearer` when set.
    pub token: Option<String>,
    data_dir: std::path::PathBuf,
}

impl Server {
    /// Start `leanfarm serve --simulate` on a free port with these extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_on(&test_backend_name(), data_dir, extra)
    }

    /// Start `leanfarm serve --simulate` with this sandbox backend.
    pub fn start_on(backend: &str, data_dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["--simulate"];
        args.extend_from_slice(extra);
        Server::spawn(backend, data_dir, &args, &[])
    }

    /// Start `leanfarm serve` with a toolchain given in `extra`.
    pub fn start_without_simulate(backend: &str, data_dir: &Path, extra: &[&str]) -> Server {
        Server::spawn(backend, data_dir, extra, &[])
    }

    /// Start `leanfarm serve --simulate` with these environment variables.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args = vec!["--simulate"];
        args.extend_from_slice(extra);
        Server::spawn(&test_backend_name(), data_dir, &args, env)
    }

    fn spawn(backend: &str, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
            .envs(env.iter().copied())
            .args(["serve", "--addr", "127.0.0.1:0", "--sandbox", backend])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("LEAN_FARM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn leanfarm serve");
        let stderr = child.stderr.take().expect("stderr");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.strip_prefix("leanfarm: serving on ") {
                        let url = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = sender.send(Ok(url));
                        sent = true;
                        continue;
                    }
                }
                eprintln!("[leanfarm] {line}");
                if !sent && line.starts_with("leanfarm: ") {
                    let _ = sender.send(Err(line));
                    sent = true;
                }
            }
        });
        let url = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => url,
            Ok(Err(line)) => panic!("leanfarm serve failed: {line}"),
            Err(_) => panic!("leanfarm serve did not start within 60 s"),
        };
        Server {
            child,
            url,
            // No connection reuse: a server may close a connection after refusing
            // an oversized body, and the next request must not land on it.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            token: None,
            data_dir: data_dir.to_path_buf(),
        }
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, serde_json::to_vec(body).unwrap()).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .authorize(self.client.post(format!("{}{path}", self.url)))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").is_some();
        let mut value: Value = response.json().await.unwrap_or(Value::Null);
        if retry_after {
            value["retry_after_header"] = Value::Bool(true);
        }
        (status, value)
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let response = self
            .authorize(self.client.delete(format!("{}{path}", self.url)))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .authorize(self.client.get(format!("{}{path}", self.url)))
            .send()
            .await
            .expect("request");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let (status, text) = self.get(path).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Poll until every id is final (done or dead); returns their views.
    pub async fn wait_final(&self, ids: &[String], within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let mut views = Vec::new();
            for id in ids {
                let (_, view) = self.get_json(&format!("/v1/checks/{id}")).await;
                views.push(view);
            }
            if views
                .iter()
                .all(|v| matches!(v["state"].as_str(), Some("done") | Some("dead")))
            {
                return views;
            }
            assert!(
                Instant::now() < deadline,
                "jobs not final in time: {views:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill_hard();
        release_mounts(&self.data_dir);
    }
}

/// Detach the scratch mounts a killed farm or worker left under `dir`
/// (a farm restarted on the same directory would sweep them itself).
pub fn release_mounts(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    for line in mountinfo.lines() {
        let Some(point) = line.split_whitespace().nth(4) else {
            continue;
        };
        if Path::new(point).starts_with(&dir) {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
    }
}

pub fn snippets(codes: &[&str]) -> Value {
    Value::Array(
        codes
            .iter()
            .map(|code| serde_json::json!({ "code": code }))
            .collect(),
    )
}

/// A `leanfarm worker --simulate` process leasing from a farm.
pub struct Worker {
    pub child: Child,
    data_dir: std::path::PathBuf,
}

impl Worker {
    pub fn start(server_url: &str, token: &str, data_dir: &Path, extra: &[&str]) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
            .args([
                "worker",
                "--simulate",
                "--server",
                server_url,
                "--token",
                token,
                "--sandbox",
                &test_backend_name(),
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("LEAN_FARM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn leanfarm worker");
        Worker {
            child,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Start a worker that leases through `servers` (a comma list) and
    /// appends its info-level JSON log to `log`.
    pub fn start_logged(
        servers: &str,
        token: &str,
        data_dir: &Path,
        extra: &[&str],
        log: &Path,
    ) -> Worker {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the worker's log");
        let child = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
            .args([
                "worker",
                "--simulate",
                "--server",
                servers,
                "--token",
                token,
            ])
            .args(["--sandbox", &test_backend_name()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("LEAN_FARM_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn leanfarm worker");
        Worker {
            child,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Per job id, how many times worker logs (JSON lines) carry `message`.
pub fn log_events(logs: &[&Path], message: &str) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["fields"]["message"] == message {
                if let Some(job_id) = event["fields"]["job_id"].as_str() {
                    *counts.entry(job_id.to_string()).or_insert(0) += 1;
                }
            }
        }
    }
    counts
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill_hard();
        release_mounts(&self.data_dir);
    }
}

/// Run `leanfarm ARGS` to completion, whatever its exit.
pub fn leanfarm_output(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(args)
        .output()
        .expect("run leanfarm")
}

/// Run `leanfarm ARGS` to completion; its stdout, trimmed.
pub fn leanfarm(args: &[&str]) -> String {
    let output = leanfarm_output(args);
    assert!(
        output.status.success(),
        "leanfarm {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A user token (tenant `acme`) and a farm worker token.
pub fn tokens(store: &str) -> (String, String) {
    leanfarm(&["tenant", "--store", store, "set", "acme", "--rps", "1000"]);
    let user = leanfarm(&["tenant", "--store", store, "key", "acme", "--scope", "user"]);
    let worker = leanfarm(&["tenant", "--store", store, "farm-key", "--scope", "worker"]);
    (user, worker)
}

/// An API-only replica (`--slots 0 --require-auth`) on `store`.
pub fn api_replica(data: &std::path::Path, store: &str, extra: &[&str]) -> Server {
    let mut flags = vec!["--slots", "0", "--require-auth", "--store", store];
    flags.extend_from_slice(extra);
    Server::start(data, &flags)
}

/// The metric tables of docs/operations.md: each family's name (labels and
/// backticks dropped) and its "meaning" cell without Markdown (backticks
/// removed, links reduced to their text): what its HELP text must say.
pub fn documented_metrics() -> std::collections::BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/operations.md");
    let text = std::fs::read_to_string(&path).expect("read docs/operations.md");
    let mut documented = std::collections::BTreeMap::new();
    for line in text.lines() {
        let cells: Vec<&str> = line.split(" | ").collect();
        if cells.len() != 3 || !cells[0].starts_with("| `lean_farm_") {
            continue;
        }
        let name = cells[0].trim_start_matches("| `");
        let name = &name[..name.find(['{', '`']).expect("a closing backtick")];
        let meaning = cells[2].trim_end_matches(" |").replace('`', "");
        documented.insert(name.to_string(), strip_links(&meaning));
    }
    documented
}

/// `[text](target)` → `text`.
fn strip_links(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|at| open + at) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|at| close + at) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every `# HELP NAME TEXT` of a scrape, by name (TEXT unescaped).
pub fn help_texts(scrape: &str) -> std::collections::BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .map(|rest| {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            (name.to_string(), help.replace("\\\\", "\\"))
        })
        .collect()
}

/// The value of the one sample `series` (name with its labels, exactly as
/// exported) in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// A loopback address with a port free now (for a listener a child binds).
pub fn free_local_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").to_string()
}

/// Wait (up to 60 s) until the worker listener at `addr` answers `/readyz`
/// 200, then return its `/metrics` text.
pub async fn wait_ready_and_scrape(addr: &str) -> String {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.get(format!("http://{addr}/readyz")).send().await;
        if ready.is_ok_and(|reply| reply.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker at {addr} never got ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape the worker");
    assert_eq!(reply.status(), 200);
    reply.text().await.expect("the worker's metrics")
}

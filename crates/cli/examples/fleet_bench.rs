//! End-to-end throughput of a fleet: one API replica (`serve --slots 0`)
//! on PostgreSQL and W `leanfarm worker --simulate` processes of one slot
//! each, with a fixed stand-in cost per snippet (`-- sim: sleep COST`), so
//! the physical limit is W / cost.
//!
//! Run with `bench/fleet.sh [--workers 4] [--cost-ms 50] [--jobs 400] [--sandbox native]
//! [--postgres postgres://postgres@127.0.0.1:5432/postgres] [--tls on]`; with
//! `--tls on` the replica terminates TLS (a certificate made for the run)
//! and the workers and the client verify it against its CA.

use leanfarm_testkit::bench::command_line_argument;
use leanfarm_testkit::{built_binary, leanfarm_stdout};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Processes(Vec<Child>);

impl Drop for Processes {
    /// SIGTERM to all (workers and the replica tear their sandboxes down),
    /// then SIGKILL what is left after 10 s.
    fn drop(&mut self) {
        for child in &self.0 {
            // SAFETY: kill(2) on our own children's pids.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.0 {
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn admin(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect("admin sql");
}

#[tokio::main]
async fn main() {
    let workers: usize = command_line_argument("--workers", "4")
        .parse()
        .expect("--workers N");
    let cost_ms: u64 = command_line_argument("--cost-ms", "50")
        .parse()
        .expect("--cost-ms N");
    let jobs: usize = command_line_argument("--jobs", "400")
        .parse()
        .expect("--jobs N");
    let sandbox = command_line_argument("--sandbox", "native");
    let tls = command_line_argument("--tls", "off") == "on";
    let admin_url =
        command_line_argument("--postgres", "postgres://postgres@127.0.0.1:5432/postgres");
    let name = format!("leanfarm_fleet_bench_{}", std::process::id());
    admin(&admin_url, &format!("CREATE DATABASE {name}")).await;
    let (base, _) = admin_url.rsplit_once('/').expect("a database in the url");
    let store = format!("{base}/{name}");
    leanfarm_stdout(&[
        "tenant",
        "--store",
        &store,
        "set",
        "bench",
        "--rps",
        "100000",
        "--max-running",
        "100000",
    ]);
    let user = leanfarm_stdout(&[
        "tenant", "--store", &store, "key", "bench", "--scope", "user",
    ]);
    let worker_token =
        leanfarm_stdout(&["tenant", "--store", &store, "farm-key", "--scope", "worker"]);

    let data = tempfile::tempdir().expect("data dir");
    let certificates = tls.then(|| certificates(data.path()));
    let mut processes = Processes(Vec::new());
    let mut server = Command::new(built_binary("leanfarm"))
        .args([
            "serve",
            "--slots",
            "0",
            "--require-auth",
            "--addr",
            "127.0.0.1:0",
            "--store",
            &store,
        ])
        .arg("--data-dir")
        .arg(data.path().join("api"))
        .args(certificates.iter().flat_map(|(_, certificate, key)| {
            [
                "--tls-cert".into(),
                certificate.clone(),
                "--tls-key".into(),
                key.clone(),
            ]
        }))
        .env("LEAN_FARM_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = BufReader::new(server.stderr.take().expect("stderr"));
    processes.0.push(server);
    let mut url = String::new();
    for line in stderr.lines().map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("leanfarm: serving on ") {
            url = rest.split_whitespace().next().unwrap_or("").to_string();
            break;
        }
    }
    assert!(!url.is_empty(), "the API replica did not start");
    for index in 0..workers {
        let worker = Command::new(built_binary("leanfarm"))
            .args([
                "worker",
                "--simulate",
                "--slots",
                "1",
                "--server",
                &url,
                "--token",
                &worker_token,
                "--sandbox",
                &sandbox,
            ])
            .arg("--data-dir")
            .arg(data.path().join(format!("worker{index}")))
            .args(
                certificates
                    .iter()
                    .flat_map(|(ca, _, _)| ["--ca-cert".into(), ca.clone()]),
            )
            .env("LEAN_FARM_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn worker");
        processes.0.push(worker);
    }
    let mut client = reqwest::Client::builder();
    if let Some((ca, _, _)) = &certificates {
        let pem = std::fs::read(ca).expect("the ca");
        client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a ca"));
    }
    let client = client.build().expect("a client");
    // Warm each worker's REPL for the header first.
    let warm: Vec<Value> = (0..workers * 2)
        .map(|i| json!({"code": format!("import Mathlib\ntheorem warm_{i} : True := trivial")}))
        .collect();
    let _ = client
        .post(format!("{url}/v1/checks"))
        .bearer_auth(&user)
        .json(&json!({"snippets": warm, "wait": 60}))
        .send()
        .await;

    let started = Instant::now();
    let mut ids = Vec::new();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(100) {
        let snippets: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"code": format!("import Mathlib\ntheorem bench_{i} : True := by\n  -- sim: sleep {cost_ms}\n  trivial")}))
            .collect();
        let response: Value = client
            .post(format!("{url}/v1/checks"))
            .bearer_auth(&user)
            .json(&json!({"snippets": snippets}))
            .send()
            .await
            .expect("submit")
            .json()
            .await
            .expect("json");
        ids.extend(
            response["results"]
                .as_array()
                .expect("results")
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string()),
        );
    }
    // Wait for all: page through the tenant's jobs until every one is done.
    loop {
        let mut done = 0;
        let mut after: Option<String> = None;
        loop {
            let mut request = client
                .get(format!("{url}/v1/checks"))
                .bearer_auth(&user)
                .query(&[("limit", "1000"), ("state", "done")]);
            if let Some(after) = &after {
                request = request.query(&[("after", after)]);
            }
            let page: Value = request
                .send()
                .await
                .expect("list")
                .json()
                .await
                .expect("json");
            done += page["results"].as_array().map_or(0, Vec::len);
            match page["next_after"].as_str() {
                Some(next) => after = Some(next.to_string()),
                None => break,
            }
        }
        if done >= jobs + workers * 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let throughput = jobs as f64 / elapsed;
    let limit = workers as f64 * 1000.0 / cost_ms as f64;
    let scheme = if tls { "https" } else { "http" };
    println!("fleet: 1 API replica (PostgreSQL) + {workers} workers x 1 slot over {scheme}, stand-in cost {cost_ms} ms (sleep), {jobs} jobs, sandbox {sandbox}");
    println!(
        "  throughput {throughput:.1} jobs/s   physical limit {limit:.1} jobs/s   = {:.1} %",
        100.0 * throughput / limit
    );
    drop(processes);
    admin(&admin_url, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// A CA and a certificate it signed for 127.0.0.1, as PEM files in `dir`:
/// the paths of the CA, the certificate and its key.
fn certificates(
    dir: &std::path::Path,
) -> (std::ffi::OsString, std::ffi::OsString, std::ffi::OsString) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "leanfarm fleet bench ca");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("a key"))
        .expect("the ca");
    let key = KeyPair::generate().expect("a key");
    let certificate = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("the certificate");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).expect("write");
    std::fs::write(&paths.1, certificate.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    (paths.0.into(), paths.1.into(), paths.2.into())
}

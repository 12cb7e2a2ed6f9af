//! The smoke tests the deploy workflow runs after each rollout
//! (`.github/smoke.sh`) pass against a real farm, and fail against one
//! that cannot prove.

mod common;

use common::Server;
use std::path::Path;
use std::process::Command;

fn smoke(url: &str, wait_seconds: &str) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.github/smoke.sh");
    Command::new("bash")
        .arg(script)
        .arg(url)
        .env("SMOKE_WAIT", wait_seconds)
        .output()
        .expect("run .github/smoke.sh")
}

#[test]
fn the_deploy_smoke_tests_pass_on_a_healthy_farm() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let output = smoke(&server.url, "120");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("one check"), "{stdout}");
    assert!(stdout.contains("one prove"), "{stdout}");
    assert!(stdout.ends_with("smoke tests passed\n"), "{stdout}");
}

#[test]
fn the_deploy_smoke_tests_fail_on_a_farm_that_runs_no_checks() {
    // A replica without slots answers health but never gives a verdict:
    // the check's long poll ends without one, and the script says so.
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "0"]);
    let output = smoke(&server.url, "2");
    assert!(!output.status.success(), "a farm with no workers passed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the smoke check is unfinished, not valid"),
        "{stderr}"
    );
}

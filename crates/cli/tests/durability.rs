//! Nothing accepted is lost: a farm killed with SIGKILL in the middle of a
//! batch, then started again on the same data directory, completes every
//! job exactly once; SIGTERM drains or hands work back.

mod common;

use common::{snippets, Server};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_farm_killed_mid_batch_completes_every_job_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let flags = ["--slots", "2", "--lease-seconds", "1"];
    let mut server = Server::start(data.path(), &flags);
    let codes: Vec<String> = (0..20)
        .map(|i| format!("-- sim: sleep 200\ntheorem t{i} : True := trivial"))
        .collect();
    let code_refs: Vec<&str> = codes.iter().map(String::as_str).collect();
    let (status, response) = server
        .post("/v1/checks", &json!({"snippets": snippets(&code_refs)}))
        .await;
    assert_eq!(status, 202, "{response}");
    let ids: Vec<String> = response["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, list) = server
        .get_json(&format!(
            "/v1/checks?batch_id={}&limit=100",
            response["batch_id"].as_str().unwrap()
        ))
        .await;
    let done_before_kill = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "done")
        .count();
    assert!(done_before_kill < ids.len(), "the kill must land mid-batch");
    server.kill_hard();

    let server = Server::start(data.path(), &flags);
    let views = server.wait_final(&ids, Duration::from_secs(60)).await;
    for view in &views {
        assert_eq!(view["state"], "done", "{view}");
        assert_eq!(view["verdict"]["status"], "valid", "{view}");
    }
    // The ledger: exactly one result per accepted job, and nothing else.
    let (_, all) = server.get_json("/v1/checks?limit=1000").await;
    let all = all["results"].as_array().unwrap();
    assert_eq!(all.len(), ids.len());
    assert!(all
        .iter()
        .all(|r| r["state"] == "done" && r["verdict"].is_object()));
}

#[tokio::test]
async fn sigterm_hands_back_unfinished_work_and_exits() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path(), &["--slots", "1", "--drain-seconds", "1"]);
    let (_, response) = server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&["-- sim: sleep 3000\ntheorem t : True := trivial"])}),
        )
        .await;
    let id = response["results"][0]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = std::time::Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );

    // Handed back, not lost: the next farm runs it again, as a second attempt.
    let server = Server::start(data.path(), &["--slots", "1"]);
    let views = server.wait_final(&[id], Duration::from_secs(30)).await;
    assert_eq!(views[0]["verdict"]["status"], "valid", "{}", views[0]);
    assert_eq!(views[0]["attempts"], 2, "{}", views[0]);
}

/// Processes whose cgroup says they were sandboxed by the farm `farm_pid`.
fn sandboxed_by(farm_pid: u32) -> Vec<u32> {
    let tag = format!("sandbox-{farm_pid}-");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|text| text.contains(&tag))
        })
        .collect()
}

#[tokio::test]
async fn a_farm_killed_with_sigkill_takes_its_native_sandboxes_with_it() {
    a_killed_farm_leaves_nothing("native").await;
}

#[tokio::test]
async fn a_farm_killed_with_sigkill_takes_its_gvisor_sandboxes_with_it() {
    a_killed_farm_leaves_nothing("gvisor").await;
}

async fn a_killed_farm_leaves_nothing(backend: &str) {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_on(backend, data.path(), &["--slots", "2"]);
    let farm_pid = server.child.id();
    let spinning = json!({"snippets": snippets(&[
        "theorem a : True := by\n  -- sim: spin\n  trivial",
        "theorem b : True := by\n  -- sim: setsid-daemon\n  -- sim: spin\n  trivial",
    ]), "timeout": 600});
    let (status, response) = server.post("/v1/checks", &spinning).await;
    assert_eq!(status, 202, "{response}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sandboxed_by(farm_pid).len() < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the snippets never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill_hard();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = sandboxed_by(farm_pid);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "outlived the farm: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

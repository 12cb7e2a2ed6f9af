//! A configured toolchain (not --simulate): the REPL program, the Lean
//! project and the toolchain directory are mounted read-only in the sandbox,
//! and the REPL gets the environment `lake env` would give it. lean-sim
//! stands in for the REPL binary and reports what it sees.

mod common;

use common::{snippets, Server};
use serde_json::json;

#[tokio::test]
async fn natively_the_repl_sees_the_project_and_toolchain_as_lake_env_would_set_them() {
    the_repl_sees_the_project_and_toolchain("native").await;
}

#[tokio::test]
async fn under_gvisor_the_repl_sees_the_project_and_toolchain_as_lake_env_would_set_them() {
    the_repl_sees_the_project_and_toolchain("gvisor").await;
}

async fn the_repl_sees_the_project_and_toolchain(backend: &str) {
    let lean_sim = leanfarm_testkit::lean_sim_path();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("proofs");
    for package in ["mathlib", "aesop"] {
        std::fs::create_dir_all(
            project.join(format!(".lake/packages/{package}/.lake/build/lib/lean")),
        )
        .unwrap();
    }
    std::fs::create_dir_all(project.join(".lake/build/lib/lean")).unwrap();
    std::fs::write(project.join("lakefile.lean"), "-- a project").unwrap();
    let toolchain = root.path().join("lean-v4.9.0");
    std::fs::create_dir_all(toolchain.join("bin")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_without_simulate(
        backend,
        data.path(),
        &[
            "--repl",
            lean_sim.to_str().unwrap(),
            "--lean-project",
            project.to_str().unwrap(),
            "--lean-toolchain",
            toolchain.to_str().unwrap(),
        ],
    );
    let code = format!(
        "theorem t : True := by\n  -- sim: env LEAN_PATH\n  -- sim: env LEAN_SYSROOT\n  -- sim: read {}\n  -- sim: write {}/x y\n  trivial",
        project.join("lakefile.lean").display(),
        project.display()
    );
    let (status, response) = server
        .post(
            "/v1/checks",
            &json!({"snippets": snippets(&[&code]), "wait": 30}),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    let verdict = &response["results"][0]["verdict"];
    assert_eq!(verdict["status"], "valid", "{verdict}");
    assert_eq!(verdict["project"], "proofs");
    assert_eq!(verdict["toolchain"], "lean-sim");
    let reports: Vec<&str> = verdict["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_str().unwrap())
        .collect();
    let p = project.display();
    assert_eq!(
        reports[0],
        format!("env LEAN_PATH: {p}/.lake/build/lib/lean:{p}/.lake/packages/aesop/.lake/build/lib/lean:{p}/.lake/packages/mathlib/.lake/build/lib/lean")
    );
    assert_eq!(
        reports[1],
        format!("env LEAN_SYSROOT: {}", toolchain.display())
    );
    assert!(reports[2].ends_with(": ok: -- a project"), "{}", reports[2]);
    // Read-only (native) or refused (gVisor checks permissions first).
    assert!(reports[3].contains(": failed:"), "{}", reports[3]);
    assert!(
        !project.join("x").exists(),
        "the sandbox wrote into the project"
    );
}

//! `leanfarm keys` and `leanfarm verify` through the real binary: a key made
//! by `keys generate` signs a statement, `verify` accepts it (exit 0) and
//! refuses any change to it (exit 1), naming the check that failed; and a
//! farm that trusts a worker's key stores that worker's signed verdicts.

mod common;

use leanfarm_attest::{KeyFile, SigningKeys, Statement, WorkerIdentity};
use leanfarm_core::{CheckRequest, Verdict};
use std::path::Path;
use std::process::{Command, Output};

fn leanfarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(args)
        .output()
        .expect("run leanfarm")
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

const SNIPPET: &str = "theorem t : 1 = 1 := rfl\n";

/// A key file made by `keys generate`, its public half, and an attestation signed with it.
fn setup(directory: &Path) -> (String, String) {
    let secret = directory.join("worker.keys.json");
    let output = leanfarm(&["keys", "generate", "--out", path(&secret), "--key-id", "k1"]);
    assert!(output.status.success(), "{output:?}");
    let public_text = String::from_utf8(output.stdout).unwrap();
    let keys = KeyFile::read(&secret).unwrap();
    let secret_hex = keys.keys[0].secret_key.clone().unwrap().0;
    assert!(
        !public_text.contains(&secret_hex),
        "the secret is never printed"
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains(&secret_hex));
    let public = directory.join("public.json");
    std::fs::write(&public, &public_text).unwrap();

    let request: CheckRequest =
        serde_json::from_value(serde_json::json!({ "code": SNIPPET })).unwrap();
    let mut verdict = Verdict::valid();
    verdict.toolchain = "lean".into();
    verdict.project = "project".into();
    let worker = WorkerIdentity {
        worker_id: "worker-1".into(),
        toolchain_sha256: "unhashed".into(),
        project_sha256: "unhashed".into(),
    };
    let statement = Statement::for_verdict(&request, &verdict, &worker, keys.keys[0].not_before);
    let attestation = SigningKeys::new(&keys).unwrap().sign(statement).unwrap();
    (path(&public).to_string(), attestation.to_json())
}

#[test]
fn a_valid_attestation_exits_zero_and_any_change_exits_non_zero_naming_the_check() {
    let directory = tempfile::tempdir().unwrap();
    let (public, attestation) = setup(directory.path());
    let file = directory.path().join("attestation.json");
    std::fs::write(&file, &attestation).unwrap();
    let snippet = directory.path().join("snippet.lean");
    std::fs::write(&snippet, SNIPPET).unwrap();

    let output = leanfarm(&[
        "verify",
        path(&file),
        "--keys",
        &public,
        "--snippet",
        path(&snippet),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("valid: valid"), "{stdout}");
    assert!(stdout.contains("key k1 of worker worker-1"), "{stdout}");

    let refused = |text: &str, extra: &[&str]| -> String {
        let tampered = directory.path().join("tampered.json");
        std::fs::write(&tampered, text).unwrap();
        let mut args = vec!["verify", path(&tampered), "--keys", &public];
        args.extend_from_slice(extra);
        let output = leanfarm(&args);
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let forged = attestation.replace(r#"\"status\":\"valid\""#, r#"\"status\":\"sorry\""#);
    assert_ne!(forged, attestation);
    let stderr = refused(&forged, &[]);
    assert!(stderr.contains("signature check failed"), "{stderr}");

    let renamed = attestation.replace(r#"\"key_id\":\"k1\""#, r#"\"key_id\":\"k2\""#);
    assert_ne!(renamed, attestation);
    let stderr = refused(&renamed, &[]);
    assert!(stderr.contains("key check failed: key k2"), "{stderr}");

    let stderr = refused(&format!(" {attestation}"), &[]);
    assert!(stderr.contains("envelope check failed"), "{stderr}");

    let other_snippet = directory.path().join("other.lean");
    std::fs::write(&other_snippet, "theorem u : 2 = 2 := rfl\n").unwrap();
    let stderr = refused(&attestation, &["--snippet", path(&other_snippet)]);
    assert!(
        stderr.contains("verdict check failed: the attestation's snippet_sha256"),
        "{stderr}"
    );
}

#[test]
fn keys_generate_refuses_to_overwrite_and_rotates_on_request() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("keys.json");
    let first = leanfarm(&["keys", "generate", "--out", path(&file), "--key-id", "a"]);
    assert!(first.status.success(), "{first:?}");
    let again = leanfarm(&["keys", "generate", "--out", path(&file), "--key-id", "b"]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(String::from_utf8_lossy(&again.stderr).contains("cannot write the key file"));
    let rotated = leanfarm(&[
        "keys",
        "generate",
        "--out",
        path(&file),
        "--key-id",
        "b",
        "--rotate",
    ]);
    assert!(rotated.status.success(), "{rotated:?}");
    let keys = KeyFile::read(&file).unwrap();
    let ids: Vec<&str> = keys.keys.iter().map(|key| key.key_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let duplicate = leanfarm(&[
        "keys",
        "generate",
        "--out",
        path(&file),
        "--key-id",
        "b",
        "--rotate",
    ]);
    assert_eq!(duplicate.status.code(), Some(2), "{duplicate:?}");
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("key id b appears more than once"));

    let public = leanfarm(&["keys", "public", path(&file), "--worker-id", "w9"]);
    assert!(public.status.success(), "{public:?}");
    let public = KeyFile::parse(&String::from_utf8(public.stdout).unwrap()).unwrap();
    assert!(public.keys.iter().all(|key| key.secret_key.is_none()));
    assert!(public
        .keys
        .iter()
        .all(|key| key.worker_id.as_deref() == Some("w9")));
}

#[test]
fn verify_with_unreadable_keys_is_a_usage_error() {
    let directory = tempfile::tempdir().unwrap();
    let attestation = directory.path().join("a.json");
    std::fs::write(&attestation, "{}").unwrap();
    let missing = directory.path().join("missing.json");
    let output = leanfarm(&["verify", path(&attestation), "--keys", path(&missing)]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read the key file"));
}

/// `serve --trusted-worker-keys` and `worker --signing-keys`, as processes:
/// the farm publishes the key and stores the signed worker's verdicts; a
/// worker that signs as another worker id with the same key stores none.
#[tokio::test]
async fn a_farm_stores_the_verdicts_of_a_worker_whose_key_it_trusts() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    let (user, worker_token) = common::tokens(&store);
    let keys = data.path().join("w1.keys.json");
    common::leanfarm(&[
        "keys",
        "generate",
        "--out",
        path(&keys),
        "--key-id",
        "w1-key",
    ]);
    let trusted = data.path().join("trusted.json");
    let public = common::leanfarm(&["keys", "public", path(&keys), "--worker-id", "w1"]);
    std::fs::write(&trusted, public).unwrap();
    let server_dir = tempfile::tempdir().unwrap();
    let mut server = common::api_replica(
        server_dir.path(),
        &store,
        &["--trusted-worker-keys", path(&trusted)],
    );
    server.token = Some(user);

    let (status, published) = server.get_json("/v1/keys").await;
    assert_eq!(status, 200);
    // The farm's own key, then the keys it trusts for remote workers.
    let published_keys = published["keys"].as_array().unwrap();
    let worker_key = published_keys
        .iter()
        .find(|key| key["key_id"] == "w1-key")
        .unwrap_or_else(|| panic!("w1-key is not published: {published}"));
    assert_eq!(worker_key["worker_id"], "w1");
    assert!(published_keys
        .iter()
        .all(|key| key.get("secret_key").is_none()));

    // A worker signing as w2 with w1's key: every completion is refused.
    let impostor_dir = tempfile::tempdir().unwrap();
    let mut impostor = common::Worker::start(
        &server.url,
        &worker_token,
        impostor_dir.path(),
        &[
            "--slots",
            "1",
            "--worker-id",
            "w2",
            "--signing-keys",
            path(&keys),
        ],
    );
    let body = serde_json::json!({"snippets": common::snippets(&["theorem t : True := trivial"]), "wait": 3});
    let (status, response) = server.post("/v1/checks", &body).await;
    // Not done within the wait: 202, the job still queued or running.
    assert_eq!(status, 202, "{response}");
    assert_ne!(response["results"][0]["state"], "done", "{response}");
    // ... though the impostor leased it and had three seconds to check it.
    let mut leased = false;
    for _ in 0..50 {
        let id = response["results"][0]["id"].as_str().unwrap();
        let (_, job) = server.get_json(&format!("/v1/checks/{id}")).await;
        assert_ne!(
            job["state"], "done",
            "the impostor's verdict was stored: {job}"
        );
        if job["attempts"].as_u64().unwrap_or(0) >= 1 {
            leased = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(leased, "the impostor never leased the job");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let id = response["results"][0]["id"].as_str().unwrap();
    let (_, job) = server.get_json(&format!("/v1/checks/{id}")).await;
    assert_ne!(
        job["state"], "done",
        "the impostor's verdict was stored: {job}"
    );
    impostor.kill_hard();

    // The worker the key belongs to: its verdict is stored.
    let worker_dir = tempfile::tempdir().unwrap();
    let _worker = common::Worker::start(
        &server.url,
        &worker_token,
        worker_dir.path(),
        &[
            "--slots",
            "1",
            "--worker-id",
            "w1",
            "--signing-keys",
            path(&keys),
        ],
    );
    let id = response["results"][0]["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let (status, job) = server.get_json(&format!("/v1/checks/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "done" {
            assert_eq!(job["verdict"]["status"], "valid", "{job}");
            // The worker's attestation is stored and shown with the verdict.
            let statement: serde_json::Value =
                serde_json::from_str(job["attestation"]["statement"].as_str().unwrap()).unwrap();
            assert_eq!(statement["worker_id"], "w1", "{job}");
            assert_eq!(statement["key_id"], "w1-key", "{job}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never completed: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

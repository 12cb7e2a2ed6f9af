//! Signed verdicts of `leanfarm serve`'s in-process workers, their
//! artifacts through the API, and retention, through real processes: the
//! farm signs with a key it generates once in its data directory (0600) and
//! publishes at `GET /v1/keys`; a check fetched from the API verifies
//! offline with `leanfarm verify` (exit 0), and fails, naming the check,
//! when a byte of its verdict, statement or snippet changes, or when its key
//! was not valid when it signed. `leanfarm gc` and the sweep of `serve`
//! delete expired final jobs and their artifacts.

mod common;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn leanfarm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(args)
        .output()
        .expect("run leanfarm")
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

const PROOF: &str = "theorem t : 1 = 1 := rfl";
const SORRY: &str = "theorem b : 1 = 2 := by sorry";

/// Submit snippets, waiting for their verdicts; the views of the checks.
async fn check(server: &common::Server, codes: &[&str]) -> Vec<Value> {
    let body = serde_json::json!({"snippets": common::snippets(codes), "wait": 60});
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 200, "{response}");
    response["results"].as_array().unwrap().clone()
}

/// `leanfarm verify FILE --keys KEYS [EXTRA]` on `text` written to a file.
fn verify(directory: &Path, text: &str, keys: &str, extra: &[&str]) -> Output {
    let file = directory.join("input.json");
    std::fs::write(&file, text).unwrap();
    let mut args = vec!["verify", path(&file), "--keys", keys];
    args.extend_from_slice(extra);
    leanfarm(&args)
}

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Change one byte of `text`: the first occurrence of `from` becomes `to`.
fn flip(text: &str, from: &str, to: &str) -> String {
    assert_eq!(from.len(), to.len());
    let flipped = text.replacen(from, to, 1);
    assert_ne!(flipped, text, "{from} not in {text}");
    flipped
}

#[tokio::test]
async fn the_farm_signs_its_verdicts_and_a_fetched_check_verifies_offline() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut server = common::Server::start(data.path(), &["--slots", "1"]);

    // The key is generated once, readable by its owner only, and published
    // without its secret.
    let key_file = data.path().join("farm-signing-keys.json");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let secret = leanfarm_attest::KeyFile::read(&key_file).unwrap().keys[0]
        .secret_key
        .clone()
        .unwrap()
        .0;
    let (status, keys_text) = server.get("/v1/keys").await;
    assert_eq!(status, 200);
    assert!(!keys_text.contains(&secret));
    let published: Value = serde_json::from_str(&keys_text).unwrap();
    let key_id = published["keys"][0]["key_id"].as_str().unwrap().to_string();
    assert!(key_id.starts_with("farm-"), "{published}");
    let keys_path = work.path().join("keys.json");
    std::fs::write(&keys_path, &keys_text).unwrap();
    let keys = path(&keys_path).to_string();

    let views = check(&server, &[PROOF, SORRY]).await;
    let id = views[0]["id"].as_str().unwrap().to_string();
    assert_eq!(views[0]["verdict"]["status"], "valid");
    assert!(views[0]["attestation"].is_object(), "{}", views[0]);
    assert_eq!(views[1]["verdict"]["status"], "sorry");
    assert!(views[1]["attestation"].is_object(), "{}", views[1]);

    // The check as GET /v1/checks/{id} returns it verifies, with its snippet.
    let (status, check_text) = server.get(&format!("/v1/checks/{id}")).await;
    assert_eq!(status, 200);
    let view: Value = serde_json::from_str(&check_text).unwrap();
    assert_eq!(
        view["artifacts"],
        serde_json::json!(["input.json", "summary.json", "messages.json"])
    );
    let snippet = work.path().join("snippet.lean");
    std::fs::write(&snippet, PROOF).unwrap();
    let output = verify(
        work.path(),
        &check_text,
        &keys,
        &["--snippet", path(&snippet)],
    );
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("valid: valid"), "{stdout}");
    assert!(stdout.contains(&format!("key {key_id}")), "{stdout}");

    // The bare attestation verifies too, and keys fetched from the farm.
    let bare: leanfarm_attest::Attestation =
        serde_json::from_value(view["attestation"].clone()).unwrap();
    let bare = bare.to_json();
    let output = verify(work.path(), &bare, &server.url, &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    // One byte of the verdict changed: the verdict check fails.
    let toolchain = view["verdict"]["toolchain"].as_str().unwrap();
    assert!(!toolchain.is_empty());
    let changed_toolchain = format!("\"toolchain\":\"X{}", &toolchain[1..]);
    let tampered = flip(
        &check_text,
        &format!("\"toolchain\":\"{toolchain}"),
        &changed_toolchain,
    );
    let stderr = refused(&verify(work.path(), &tampered, &keys, &[]));
    assert!(
        stderr.contains("verdict check failed: the attestation's toolchain"),
        "{stderr}"
    );
    let tampered = flip(&check_text, "\"status\":\"valid\"", "\"status\":\"sorry\"");
    let stderr = refused(&verify(work.path(), &tampered, &keys, &[]));
    assert!(stderr.contains("verdict check failed"), "{stderr}");

    // One byte of the signed statement changed: the signature check fails.
    let statement = view["attestation"]["statement"].as_str().unwrap();
    let digest_at = statement.find("\"snippet_sha256\":\"").unwrap() + 18;
    let digit = &statement[digest_at..digest_at + 1];
    let other = if digit == "0" { "1" } else { "0" };
    let mut forged_statement = statement.to_string();
    forged_statement.replace_range(digest_at..digest_at + 1, other);
    let mut forged = view.clone();
    forged["attestation"]["statement"] = Value::String(forged_statement);
    let stderr = refused(&verify(
        work.path(),
        &serde_json::to_string(&forged).unwrap(),
        &keys,
        &[],
    ));
    assert!(stderr.contains("signature check failed"), "{stderr}");

    // One byte of the snippet changed: the snippet check fails.
    std::fs::write(&snippet, PROOF.replace('1', "2")).unwrap();
    let stderr = refused(&verify(
        work.path(),
        &check_text,
        &keys,
        &["--snippet", path(&snippet)],
    ));
    assert!(
        stderr.contains("verdict check failed: the attestation's snippet_sha256"),
        "{stderr}"
    );

    // A key set in which the key was not yet valid when it signed: refused.
    let signed: Value = serde_json::from_str(statement).unwrap();
    let signed_at = signed["signed_at"].as_i64().unwrap();
    let mut late = published.clone();
    late["keys"][0]["not_before"] = Value::from(signed_at + 1);
    let late_keys = work.path().join("late-keys.json");
    std::fs::write(&late_keys, late.to_string()).unwrap();
    let stderr = refused(&verify(work.path(), &check_text, path(&late_keys), &[]));
    assert!(
        stderr.contains(&format!("key check failed: key {key_id} was not valid at")),
        "{stderr}"
    );
    // ... and one where it had expired.
    let mut expired = published.clone();
    expired["keys"][0]["not_before"] = Value::from(signed_at - 100);
    expired["keys"][0]["not_after"] = Value::from(signed_at);
    std::fs::write(&late_keys, expired.to_string()).unwrap();
    let stderr = refused(&verify(work.path(), &check_text, path(&late_keys), &[]));
    assert!(stderr.contains("key check failed"), "{stderr}");

    // A check without an attestation is refused, saying so.
    let mut unsigned = view.clone();
    unsigned.as_object_mut().unwrap().remove("attestation");
    let stderr = refused(&verify(work.path(), &unsigned.to_string(), &keys, &[]));
    assert!(
        stderr.contains("the check carries no attestation"),
        "{stderr}"
    );

    // The list, the batch export and the batch's checks carry it too.
    let (_, listed) = server.get_json("/v1/checks?limit=10").await;
    let listed_view = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|listed| listed["id"] == id.as_str())
        .unwrap();
    assert_eq!(listed_view["attestation"], view["attestation"]);
    let batch = view["batch_id"].as_str().unwrap();
    let (status, jsonl) = server
        .get(&format!("/v1/batches/{batch}/results?format=jsonl"))
        .await;
    assert_eq!(status, 200);
    let line: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(line["attestation"], view["attestation"]);
    let output = verify(work.path(), jsonl.lines().next().unwrap(), &keys, &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let (_, csv) = server
        .get(&format!("/v1/batches/{batch}/results?format=csv"))
        .await;
    assert!(csv.lines().next().unwrap().ends_with(",attestation"));
    assert!(csv.contains("signature"), "{csv}");

    // Kimina's answers carry it too (kimina-client ignores the key; its
    // own test runs against this signing farm).
    let (status, kimina) = server
        .post(
            "/api/check",
            &serde_json::json!({"snippets": [{"id": "p", "code": PROOF}], "timeout": 30}),
        )
        .await;
    assert_eq!(status, 200, "{kimina}");
    let attestation: leanfarm_attest::Attestation =
        serde_json::from_value(kimina["results"][0]["attestation"].clone()).unwrap();
    let output = verify(work.path(), &attestation.to_json(), &keys, &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let (status, verified) = server
        .post(
            "/verify",
            &serde_json::json!({"codes": [{"custom_id": "p", "proof": PROOF}], "timeout": 30}),
        )
        .await;
    assert_eq!(status, 200, "{verified}");
    assert!(
        verified["results"][0]["attestation"].is_object(),
        "{verified}"
    );

    // A restarted farm signs with the same key.
    server.terminate();
    drop(server);
    let server = common::Server::start(data.path(), &["--slots", "1"]);
    let (_, again) = server.get_json("/v1/keys").await;
    assert_eq!(again["keys"][0]["key_id"], key_id.as_str());
    let views = check(&server, &[PROOF]).await;
    let output = verify(work.path(), &views[0].to_string(), &keys, &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[tokio::test]
async fn a_key_file_readable_by_others_is_refused_and_a_given_key_file_is_used() {
    let data = tempfile::tempdir().unwrap();
    let key_file = data.path().join("farm-signing-keys.json");
    let generated = leanfarm(&[
        "keys",
        "generate",
        "--out",
        path(&key_file),
        "--key-id",
        "given",
    ]);
    assert!(generated.status.success(), "{generated:?}");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["serve", "--simulate", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");

    // Given by the setting, any key file is used as it is.
    let other = tempfile::tempdir().unwrap();
    let server = common::Server::start(
        other.path(),
        &["--slots", "1", "--signing-keys", path(&key_file)],
    );
    let (_, published) = server.get_json("/v1/keys").await;
    assert_eq!(published["keys"][0]["key_id"], "given");
    let views = check(&server, &[PROOF]).await;
    let statement: Value =
        serde_json::from_str(views[0]["attestation"]["statement"].as_str().unwrap()).unwrap();
    assert_eq!(statement["key_id"], "given");
    assert!(!other.path().join("farm-signing-keys.json").exists());
}

#[tokio::test]
async fn artifacts_are_read_back_by_their_tenant_or_an_operator_only() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    let (acme, _) = common::tokens(&store);
    common::leanfarm(&["tenant", "--store", &store, "set", "other"]);
    let other = common::leanfarm(&[
        "tenant", "--store", &store, "key", "other", "--scope", "user",
    ]);
    let operator = common::leanfarm(&[
        "tenant", "--store", &store, "farm-key", "--scope", "operator",
    ]);
    let mut server = common::Server::start(
        data.path(),
        &["--slots", "1", "--require-auth", "--store", &store],
    );
    server.token = Some(acme.clone());
    let views = check(&server, &[PROOF]).await;
    let id = views[0]["id"].as_str().unwrap().to_string();

    // Artifacts are written just after the verdict: wait for the summary.
    let deadline = Instant::now() + Duration::from_secs(30);
    let summary = loop {
        let (status, text) = server
            .get(&format!("/v1/checks/{id}/artifacts/summary.json"))
            .await;
        if status == 200 {
            break text;
        }
        assert_eq!(status, 404, "{text}");
        assert!(text.contains("artifact_not_found"), "{text}");
        assert!(Instant::now() < deadline, "never written: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary, views[0]["verdict"]);
    let (status, input) = server
        .get_json(&format!("/v1/checks/{id}/artifacts/input.json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(input["code"], PROOF);
    let (status, _) = server
        .get_json(&format!("/v1/checks/{id}/artifacts/messages.json"))
        .await;
    assert_eq!(status, 200);

    // Names are a closed list: anything else is unknown, traversal included.
    for name in [
        "attempts.jsonl",
        "..%2F..%2Fleanfarm.db",
        "..%2Fsummary.json",
        "%2Fetc%2Fpasswd",
        "summary.json%00",
        "SUMMARY.JSON",
        "input.json.",
    ] {
        let (status, error) = server
            .get_json(&format!("/v1/checks/{id}/artifacts/{name}"))
            .await;
        assert_eq!(status, 404, "{name}: {error}");
        assert_eq!(error["code"], "unknown_artifact", "{name}: {error}");
    }
    let (status, error) = server
        .get_json("/v1/checks/no-such-check/artifacts/summary.json")
        .await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));

    // Another tenant sees no such check; an operator reads it.
    server.token = Some(other);
    let (status, error) = server
        .get_json(&format!("/v1/checks/{id}/artifacts/summary.json"))
        .await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));
    server.token = None;
    let (status, error) = server
        .get_json(&format!("/v1/checks/{id}/artifacts/summary.json"))
        .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (401, Some("unauthorized"))
    );
    server.token = Some(operator);
    let (status, read) = server
        .get_json(&format!("/v1/checks/{id}/artifacts/summary.json"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(read, summary);

    // On disk the artifacts are sharded: jobs/<2 hex>/<id>/.
    let shard = leanfarm_store::artifacts::shard(&id);
    assert!(data
        .path()
        .join(format!("artifacts/jobs/{shard}/{id}/summary.json"))
        .is_file());
}

/// The job ids a `gc` run printed, by verb.
fn printed_ids(stdout: &str, verb: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{verb} job ")))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn leanfarm_gc_deletes_expired_jobs_and_their_artifacts_and_dry_run_deletes_nothing() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = path(data.path()).to_string();
    let mut server = common::Server::start(data.path(), &["--slots", "1"]);
    let views = check(&server, &[PROOF, SORRY]).await;
    let (proof, sorry) = (
        views[0]["id"].as_str().unwrap().to_string(),
        views[1]["id"].as_str().unwrap().to_string(),
    );
    let artifact_dir = |id: &str| {
        data.path().join(format!(
            "artifacts/jobs/{}/{id}",
            leanfarm_store::artifacts::shard(id)
        ))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(artifact_dir(&proof).join("summary.json").is_file()
        && artifact_dir(&sorry).join("summary.json").is_file())
    {
        assert!(Instant::now() < deadline, "artifacts never written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.terminate();
    drop(server);

    // With the default retention, nothing has expired.
    let output = leanfarm(&["gc", "--data-dir", &data_dir]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        stdout.contains("deleted 0 expired jobs and 0 artifacts"),
        "{stdout}"
    );

    // Other verdicts kept 0.1 s: the sorry expires, the proof does not.
    // gc reads serve's config file, and a flag still wins over the file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let config = data.path().join("farm.toml");
    std::fs::write(
        &config,
        format!("data_dir = {data_dir:?}\nretention_other_days = 0.000001\n"),
    )
    .unwrap();
    let config = path(&config).to_string();
    let output = leanfarm(&[
        "gc",
        "--config",
        &config,
        "--retention-other-days",
        "90",
        "--dry-run",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        stdout.contains("dry run: 0 expired jobs would be deleted"),
        "{stdout}"
    );
    let output = leanfarm(&["gc", "--config", &config, "--dry-run"]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(printed_ids(&stdout, "would delete"), [sorry.as_str()]);
    assert!(
        stdout.contains("dry run: 1 expired jobs would be deleted"),
        "{stdout}"
    );
    assert!(artifact_dir(&sorry).join("summary.json").is_file());

    let output = leanfarm(&[
        "gc",
        "--data-dir",
        &data_dir,
        "--retention-other-days",
        "0.000001",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(printed_ids(&stdout, "deleted"), [sorry.as_str()]);
    assert!(
        stdout.contains("deleted 1 expired jobs and 3 artifacts"),
        "{stdout}"
    );
    assert!(!artifact_dir(&sorry).join("summary.json").exists());
    assert!(artifact_dir(&proof).join("summary.json").is_file());

    // Proofs kept 0.1 s: the proof goes too, in batches of one.
    let output = leanfarm(&[
        "gc",
        "--data-dir",
        &data_dir,
        "--retention-valid-days",
        "0.000001",
        "--retention-batch-size",
        "1",
    ]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(printed_ids(&stdout, "deleted"), [proof.as_str()]);
    assert!(!artifact_dir(&proof).join("summary.json").exists());

    // A retention that keeps nothing is refused, naming the setting.
    let output = leanfarm(&["gc", "--data-dir", &data_dir, "--retention-valid-days", "0"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("retention_valid_days"));

    // The farm no longer knows the jobs.
    let server = common::Server::start(data.path(), &["--slots", "1"]);
    for id in [&proof, &sorry] {
        let (status, _) = server.get_json(&format!("/v1/checks/{id}")).await;
        assert_eq!(status, 404);
    }
}

/// `serve` sweeps periodically: on PostgreSQL, two replicas sweeping the
/// same store delete an expired job and its artifacts, and keep a proof.
#[tokio::test]
async fn two_replicas_sweeping_one_postgres_store_delete_expired_jobs() {
    let database = leanfarm_testkit::postgres::TestDatabase::create("retention_sweep");
    let artifacts = tempfile::tempdir().unwrap();
    let artifacts_dir = path(artifacts.path()).to_string();
    let sweeping = [
        "--slots",
        "1",
        "--store",
        &database.url,
        "--artifacts",
        &artifacts_dir,
        "--retention-other-days",
        "0.00002",
        "--retention-sweep-seconds",
        "1",
    ];
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let first = common::Server::start(first_dir.path(), &sweeping);
    let _second = common::Server::start(second_dir.path(), &sweeping);
    let views = check(&first, &[PROOF, SORRY]).await;
    let (proof, sorry) = (
        views[0]["id"].as_str().unwrap().to_string(),
        views[1]["id"].as_str().unwrap().to_string(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, view) = first.get_json(&format!("/v1/checks/{sorry}")).await;
        if status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "never swept: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let shard = leanfarm_store::artifacts::shard(&sorry);
    assert!(!artifacts
        .path()
        .join(format!("jobs/{shard}/{sorry}"))
        .join("summary.json")
        .exists());
    let (status, view) = first.get_json(&format!("/v1/checks/{proof}")).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["verdict"]["status"], "valid");
}

//! A farm whose artifact store is a bucket: the artifacts of a check it
//! ran land in a real S3 server (`moto_server`, started by the test) under
//! the configured prefix, and read back through the store's artifact API.

mod common;

use common::{snippets, Server};
use leanfarm_store::{ArtifactSettings, ArtifactStore};
use leanfarm_testkit::object_servers;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_checks_artifacts_land_in_the_s3_bucket_and_read_back() {
    if object_servers::skipped("farm artifacts on s3") {
        return;
    }
    let s3 = object_servers::start_s3();
    let url = format!("s3://{}/farm-one", object_servers::BUCKET);
    let credentials = [
        ("AWS_ACCESS_KEY_ID", object_servers::S3_ACCESS_KEY_ID),
        (
            "AWS_SECRET_ACCESS_KEY",
            object_servers::S3_SECRET_ACCESS_KEY,
        ),
        ("AWS_REGION", object_servers::S3_REGION),
    ];
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        data.path(),
        &[
            "--artifacts",
            &url,
            "--artifacts-endpoint",
            &s3.endpoint,
            "--artifacts-allow-http",
        ],
        &credentials,
    );
    let body = json!({"snippets": snippets(&["theorem t : True := trivial"]), "wait": 60});
    let (status, response) = server.post("/v1/checks", &body).await;
    assert_eq!(status, 200, "{response}");
    let id = response["results"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        response["results"][0]["verdict"]["status"], "valid",
        "{response}"
    );

    // This process reads the bucket with the same variables the farm had.
    for (name, value) in credentials {
        std::env::set_var(name, value);
    }
    let settings = ArtifactSettings {
        endpoint: Some(s3.endpoint.clone()),
        region: None,
        allow_http: true,
    };
    let store = ArtifactStore::open_with(&url, &settings).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let owed = ["input.json", "messages.json", "summary.json"];
    loop {
        let names = store.list(&id).await.unwrap();
        if owed
            .iter()
            .all(|name| names.iter().any(|have| have == name))
        {
            break;
        }
        assert!(Instant::now() < deadline, "artifacts of {id}: {names:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let summary: Value =
        serde_json::from_slice(&store.get(&id, "summary.json").await.unwrap().unwrap()).unwrap();
    assert!(summary.to_string().contains("valid"), "{summary}");
    // Under the prefix only: the bucket's root holds no `jobs/`.
    let root =
        ArtifactStore::open_with(&format!("s3://{}", object_servers::BUCKET), &settings).unwrap();
    assert!(root.list(&id).await.unwrap().is_empty());
}

#[test]
fn a_plain_http_endpoint_needs_allow_http() {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["serve", "--simulate", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--artifacts", "s3://bucket/x"])
        .args(["--artifacts-endpoint", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid setting `artifacts_endpoint`")
            && stderr.contains("artifacts_allow_http"),
        "{stderr}"
    );
}

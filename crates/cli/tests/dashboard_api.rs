//! The read-only endpoints behind the web console, over real HTTP against
//! `leanfarm serve --simulate`: who sees what on `/v1/overview`, what
//! `/v1/batches` and `/v1/checks/{id}/attestation` answer and refuse, and
//! how the console's files are served.

mod common;

use common::{leanfarm, Server};
use serde_json::{json, Value};

fn token(store: &str, args: &[&str]) -> String {
    leanfarm(&[&["tenant", "--store", store], args].concat())
}

/// A farm that requires tokens, with tenants `alpha` (limits set) and
/// `beta`, and their user tokens, an operator token and a farm worker token.
struct Fixture {
    server: Server,
    store: String,
    alpha: String,
    beta: String,
    operator: String,
    worker: String,
    _data: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    token(
        &store,
        &["set", "alpha", "--max-queued", "50", "--max-running", "3"],
    );
    token(&store, &["set", "beta"]);
    let alpha = token(&store, &["key", "alpha"]);
    let beta = token(&store, &["key", "beta"]);
    let operator = token(&store, &["farm-key", "--scope", "operator"]);
    let worker = token(&store, &["farm-key", "--scope", "worker"]);
    let server = Server::start(data.path(), &["--require-auth"]);
    Fixture {
        server,
        store,
        alpha,
        beta,
        operator,
        worker,
        _data: data,
    }
}

impl Fixture {
    async fn get_as(&mut self, token: Option<&str>, path: &str) -> (u16, Value) {
        self.server.token = token.map(str::to_string);
        self.server.get_json(path).await
    }

    async fn check_as(&mut self, token: &str, codes: &[&str]) -> Value {
        self.server.token = Some(token.to_string());
        let snippets: Vec<Value> = codes.iter().map(|code| json!({ "code": code })).collect();
        let (status, body) = self
            .server
            .post("/v1/checks", &json!({"snippets": snippets, "wait": 30}))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn total(overview: &Value, outcome: &str) -> u64 {
    overview["finished"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bucket| bucket["statuses"][outcome].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn the_overview_shows_a_tenant_its_own_work_and_an_operator_the_farm() {
    let mut farm = fixture();
    let (alpha, beta, operator, worker) = (
        farm.alpha.clone(),
        farm.beta.clone(),
        farm.operator.clone(),
        farm.worker.clone(),
    );
    farm.check_as(
        &alpha,
        &[
            "theorem a : True := trivial",
            "theorem b : 1 = 1 := by\n  sorry",
        ],
    )
    .await;
    farm.check_as(&beta, &["theorem c : True := trivial"]).await;

    let (status, own) = farm
        .get_as(Some(&alpha), "/v1/overview?window=60&bucket=5")
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["scope"], "tenant");
    assert_eq!(own["tenant"], "alpha");
    assert_eq!(
        own["finished"].as_array().unwrap().len(),
        12,
        "every bucket of the window"
    );
    assert_eq!((total(&own, "valid"), total(&own, "sorry")), (1, 1));
    assert_eq!(own["open_jobs"]["limits"]["max_running"], 3);
    assert!(
        own.get("farm").is_none(),
        "a tenant does not see the farm under --require-auth"
    );
    assert!(own.get("tenants").is_none());
    let (_, theirs) = farm.get_as(Some(&beta), "/v1/overview").await;
    assert_eq!((total(&theirs, "valid"), total(&theirs, "sorry")), (1, 0));

    let (status, farm_wide) = farm.get_as(Some(&operator), "/v1/overview").await;
    assert_eq!(status, 200, "{farm_wide}");
    assert_eq!(farm_wide["scope"], "operator");
    assert_eq!(total(&farm_wide, "valid"), 2);
    assert_eq!(farm_wide["farm"]["queue"]["done"], 3);
    let replica = &farm_wide["farm"]["this_replica"];
    assert_eq!(replica["toolchain"], "lean-sim");
    assert_eq!(
        replica["pool"]["hits"].as_u64().unwrap() + replica["pool"]["misses"].as_u64().unwrap(),
        3,
        "one pool lookup per check"
    );
    assert!(!farm_wide["farm"]["workers"].as_array().unwrap().is_empty());
    let tenants: Vec<&str> = farm_wide["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tenant| tenant["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["alpha", "beta"]);

    assert_eq!(farm.get_as(None, "/v1/overview").await.0, 401);
    let (status, body) = farm.get_as(Some(&worker), "/v1/overview").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    for bad in [
        "window=0",
        "bucket=0",
        "window=86400&bucket=1",
        "window=86401",
        "window=ten",
        "since=5",
    ] {
        let (status, body) = farm
            .get_as(Some(&alpha), &format!("/v1/overview?{bad}"))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {body}"
        );
    }
}

#[tokio::test]
async fn an_open_farm_shows_the_default_tenant_the_farm_but_no_tenants() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let (status, overview) = server.get_json("/v1/overview").await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["tenant"], "default");
    assert!(
        overview["farm"]["queue"].is_object(),
        "the rule of /v1/workers: open"
    );
    assert!(
        overview.get("tenants").is_none(),
        "other tenants' usage is an operator's"
    );
}

#[tokio::test]
async fn batches_are_listed_per_tenant_newest_first_and_filtered() {
    let mut farm = fixture();
    let (alpha, beta) = (farm.alpha.clone(), farm.beta.clone());
    let first = farm
        .check_as(&alpha, &["theorem a : True := trivial"])
        .await;
    let second = farm
        .check_as(
            &alpha,
            &["theorem b : True := trivial", "theorem c : True := trivial"],
        )
        .await;
    farm.check_as(&beta, &["theorem d : True := trivial"]).await;
    let (status, listed) = farm.get_as(Some(&alpha), "/v1/batches").await;
    assert_eq!(status, 200, "{listed}");
    let batches = listed["batches"].as_array().unwrap();
    let ids: Vec<&Value> = batches.iter().map(|batch| &batch["batch_id"]).collect();
    assert_eq!(ids, [&second["batch_id"], &first["batch_id"]]);
    assert_eq!(batches[0]["total"], 2);
    assert_eq!(batches[0]["progress"], 1.0);
    assert_eq!(batches[0]["statuses"]["valid"], 2);
    let (_, open) = farm.get_as(Some(&alpha), "/v1/batches?status=open").await;
    assert_eq!(open["batches"], json!([]));
    let (_, finished) = farm
        .get_as(Some(&alpha), "/v1/batches?status=finished&limit=1")
        .await;
    assert_eq!(finished["batches"][0]["batch_id"], second["batch_id"]);
    assert_eq!(finished["batches"].as_array().unwrap().len(), 1);
    let (_, theirs) = farm.get_as(Some(&beta), "/v1/batches").await;
    assert_eq!(theirs["batches"].as_array().unwrap().len(), 1, "{theirs}");
    for bad in ["status=done", "limit=0", "limit=201", "tenant=beta"] {
        let (status, body) = farm
            .get_as(Some(&alpha), &format!("/v1/batches?{bad}"))
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad}: {body}"
        );
    }
    assert_eq!(farm.get_as(None, "/v1/batches").await.0, 401);
}

#[tokio::test]
async fn an_attestation_verifies_until_its_check_is_altered_in_the_store() {
    let mut farm = fixture();
    let (alpha, beta) = (farm.alpha.clone(), farm.beta.clone());
    let answer = farm
        .check_as(&alpha, &["theorem a : True := trivial"])
        .await;
    let id = answer["results"][0]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/checks/{id}/attestation");
    let (status, signed) = farm.get_as(Some(&alpha), &path).await;
    assert_eq!(status, 200, "{signed}");
    assert_eq!(signed["signed"], true);
    assert_eq!(signed["verified"], true, "{signed}");
    assert!(signed["key_id"].as_str().unwrap().starts_with("farm-"));
    let (status, body) = farm.get_as(Some(&beta), &path).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "another tenant's check"
    );

    // The stored snippet no longer is what was signed.
    let database = farm.store.trim_start_matches("sqlite://").to_string();
    let connection = rusqlite::Connection::open(database).unwrap();
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let changed = connection
        .execute(
            "UPDATE jobs SET request = json_set(request, '$.code', 'theorem a : False := sorry') WHERE id = ?1",
            [&id],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let (_, altered) = farm.get_as(Some(&alpha), &path).await;
    assert_eq!(altered["verified"], false, "{altered}");
    assert_eq!(altered["failed_check"], "verdict");
    assert!(
        altered["message"]
            .as_str()
            .unwrap()
            .contains("snippet_sha256"),
        "{altered}"
    );

    // A check with no verdict yet is not signed.
    farm.server.token = Some(alpha.clone());
    let (status, queued) = farm
        .server
        .post(
            "/v1/checks",
            &json!({"snippets": [{"code": "theorem s : True := by\n  -- sim: sleep 3000\n  trivial"}]}),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    let open_id = queued["results"][0]["id"].as_str().unwrap();
    let (_, unsigned) = farm
        .get_as(Some(&alpha), &format!("/v1/checks/{open_id}/attestation"))
        .await;
    assert_eq!(unsigned["signed"], false, "{unsigned}");
    assert!(unsigned.get("verified").is_none());
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_policy_and_a_closed_file_list() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--require-auth"]);
    let client = reqwest::Client::new();
    let page = client.get(format!("{}/", server.url)).send().await.unwrap();
    assert_eq!(
        page.status(),
        200,
        "the console needs no token: its data does"
    );
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("script-src 'self'"),
        "{policy}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("/console/app.js"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
    for (name, kind) in [
        ("app.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("lean.js", "text/javascript"),
        ("chart.js", "text/javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let file = client
            .get(format!("{}/console/{name}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), 200, "{name}");
        assert!(
            file.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{name}"
        );
        // The SVG namespace is a name, not an address anything is loaded from.
        let text = file
            .text()
            .await
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("https://") && !text.contains("http://"),
            "{name} loads nothing from elsewhere"
        );
        assert!(
            !text.contains("innerHTML"),
            "{name} never writes markup from data"
        );
    }
    for missing in [
        "/console/index.htm",
        "/console/..%2fCargo.toml",
        "/console/",
        "/console/APP.JS",
    ] {
        let answer = client
            .get(format!("{}{missing}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{missing}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "not_found", "{missing}");
    }
}

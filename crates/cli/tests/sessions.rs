//! Tactic sessions end to end: a real `leanfarm serve --simulate` process,
//! its embedded workers holding each session's lean-sim REPL in the
//! sandbox, real HTTP.

mod common;

use common::{leanfarm, Server};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn theorem(name: &str, statement: &str) -> Value {
    json!({ "header": "import Mathlib", "theorem": { "name": name, "statement": statement } })
}

async fn open(farm: &Server, body: &Value) -> (String, Vec<Value>) {
    let (status, opened) = farm.post("/v1/sessions", body).await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["state"], "open");
    let id = opened["id"].as_str().unwrap().to_string();
    (id, opened["proof_states"].as_array().unwrap().clone())
}

async fn tactics(farm: &Server, id: &str, pairs: &[(u64, &str)]) -> (u16, Value) {
    let pairs: Vec<Value> = pairs
        .iter()
        .map(|(state, tactic)| json!({ "proof_state": state, "tactic": tactic }))
        .collect();
    farm.post(
        &format!("/v1/sessions/{id}/tactics"),
        &json!({ "pairs": pairs }),
    )
    .await
}

#[tokio::test]
async fn a_session_opens_branches_proves_and_finishes_through_the_check_path() {
    let data = tempfile::tempdir().unwrap();
    let farm = Server::start(data.path(), &[]);
    let (id, roots) = open(&farm, &theorem("t", "theorem t : 1 + 1 = 2")).await;
    assert_eq!(roots.len(), 1);
    let root = roots[0]["proof_state"].as_u64().unwrap();
    assert_eq!(roots[0]["goals"], json!(["⊢ 1 + 1 = 2"]));

    // Two expansions of the same state in one request, then the root again:
    // states are immutable, so each is a new state.
    let (status, answer) = tactics(&farm, &id, &[(root, "rfl"), (root, "decide")]).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let proved: Vec<u64> = results
        .iter()
        .map(|result| {
            assert_eq!(result["status"], "proved", "{result}");
            result["proof_state"].as_u64().unwrap()
        })
        .collect();
    assert_ne!(proved[0], proved[1]);
    let (status, again) = tactics(&farm, &id, &[(root, "norm_num")]).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["results"][0]["status"], "proved");

    // The session lists every state with its parent and tactic.
    let (status, view) = farm.get_json(&format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 200, "{view}");
    let states = view["proof_states"].as_array().unwrap();
    assert_eq!(states.len(), 4, "{view}");
    let decided = states
        .iter()
        .find(|state| state["proof_state"].as_u64() == Some(proved[1]))
        .unwrap();
    assert_eq!(decided["parent"].as_u64(), Some(root));
    assert_eq!(decided["tactic"], "decide");
    assert_eq!(view["usage"]["tactics"], 3);

    // Finishing runs the assembled proof through the ordinary check path:
    // the answer is that check's verdict, pinned to the theorem.
    let (status, finished) = farm
        .post(
            &format!("/v1/sessions/{id}/finish"),
            &json!({ "proof_state": proved[1] }),
        )
        .await;
    assert_eq!(status, 200, "{finished}");
    assert_eq!(
        finished["proof"],
        "import Mathlib\ntheorem t : 1 + 1 = 2 := by\n  decide"
    );
    let check = &finished["check"];
    assert_eq!(check["state"], "done", "{finished}");
    assert_eq!(check["verdict"]["status"], "valid", "{finished}");
    let check_id = check["id"].as_str().unwrap();
    let (status, stored) = farm.get_json(&format!("/v1/checks/{check_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(stored["verdict"]["status"], "valid");

    // A root is not a proof, and an unknown state is named.
    let (status, refused) = farm
        .post(
            &format!("/v1/sessions/{id}/finish"),
            &json!({ "proof_state": root }),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "proof_state_not_proved");
    let (status, unknown) = tactics(&farm, &id, &[(999, "rfl")]).await;
    assert_eq!(status, 422, "{unknown}");
    assert_eq!(unknown["code"], "unknown_proof_state");

    // Deleted: the session answers `session_closed`, its states stay listed.
    let (status, _) = farm.delete(&format!("/v1/sessions/{id}")).await;
    assert_eq!(status, 200);
    let (status, closed) = tactics(&farm, &id, &[(root, "rfl")]).await;
    assert_eq!(status, 409, "{closed}");
    assert_eq!(closed["code"], "session_closed");
}

#[tokio::test]
async fn goals_split_a_failing_tactic_makes_no_state_and_a_slow_one_loses_its_repl() {
    let data = tempfile::tempdir().unwrap();
    let farm = Server::start(data.path(), &[]);
    let (id, roots) = open(&farm, &theorem("t", "theorem t (n : Nat) : n + 0 = n")).await;
    let root = roots[0]["proof_state"].as_u64().unwrap();

    // Two goals from one tactic; Lean's thrown error on the same state, in
    // the same request, makes no state.
    let (status, answer) = tactics(
        &farm,
        &id,
        &[
            (root, "induction n"),
            (root, "simp\n-- sim: fail simp made no progress"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let split = &answer["results"][0];
    assert_eq!(split["status"], "goals", "{answer}");
    assert_eq!(split["goals"].as_array().unwrap().len(), 2, "{answer}");
    let failed = &answer["results"][1];
    assert_eq!(failed["status"], "error", "{answer}");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("simp made no progress"),
        "{answer}"
    );
    // Closing the goals one by one proves the theorem, and the proof checks.
    let split = split["proof_state"].as_u64().unwrap();
    let (_, answer) = tactics(&farm, &id, &[(split, "omega")]).await;
    assert_eq!(answer["results"][0]["status"], "goals", "{answer}");
    let one_left = answer["results"][0]["proof_state"].as_u64().unwrap();
    let (_, answer) = tactics(&farm, &id, &[(one_left, "omega")]).await;
    assert_eq!(answer["results"][0]["status"], "proved", "{answer}");
    let proved = answer["results"][0]["proof_state"].as_u64().unwrap();
    let (status, finished) = farm
        .post(
            &format!("/v1/sessions/{id}/finish"),
            &json!({ "proof_state": proved }),
        )
        .await;
    assert_eq!(status, 200, "{finished}");
    assert_eq!(
        finished["proof"],
        "import Mathlib\ntheorem t (n : Nat) : n + 0 = n := by\n  induction n\n  omega\n  omega"
    );
    assert_eq!(
        finished["check"]["verdict"]["status"], "valid",
        "{finished}"
    );

    // A tactic past its timeout stops its REPL; with no other REPL, the
    // session is lost, and says so.
    let mut body = theorem("u", "theorem u : 1 + 1 = 2");
    body["tactic_timeout"] = json!(1);
    let (id, roots) = open(&farm, &body).await;
    let root = roots[0]["proof_state"].as_u64().unwrap();
    let started = Instant::now();
    let (status, answer) = tactics(&farm, &id, &[(root, "rfl\n-- sim: sleep 30000")]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], "repl_lost", "{answer}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let (status, lost) = tactics(&farm, &id, &[(root, "rfl")]).await;
    assert_eq!(status, 410, "{lost}");
    assert_eq!(lost["code"], "session_lost");
}

#[tokio::test]
async fn a_cheating_tactic_is_refused_before_lean_sees_it() {
    let data = tempfile::tempdir().unwrap();
    let farm = Server::start(data.path(), &[]);
    let (id, roots) = open(&farm, &theorem("t", "theorem t : 1 + 1 = 2")).await;
    let root = roots[0]["proof_state"].as_u64().unwrap();
    let cheats = [
        "native_decide",
        "run_tac (pure ())",
        "rfl\n#eval IO.Process.exit 0",
        "set_option debug.skipKernelTC true in rfl",
    ];
    for cheat in cheats {
        let (status, answer) = tactics(&farm, &id, &[(root, cheat)]).await;
        assert_eq!(status, 200, "{answer}");
        let result = &answer["results"][0];
        assert_eq!(result["status"], "refused", "{cheat}: {result}");
        assert_eq!(result["code"], "forbidden_command", "{cheat}: {result}");
    }
    // The session is still usable, and nothing was made.
    let (_, view) = farm.get_json(&format!("/v1/sessions/{id}")).await;
    assert_eq!(view["proof_states"].as_array().unwrap().len(), 1);
    assert_eq!(view["usage"]["tactics"], 0);
    // An opening that runs code is refused too.
    let (status, refused) = farm
        .post(
            "/v1/sessions",
            &json!({ "snippet": "#eval IO.Process.exit 0\ntheorem t : True := by sorry" }),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "session_refused");
}

#[tokio::test]
async fn an_idle_session_is_closed_and_its_repl_freed() {
    let data = tempfile::tempdir().unwrap();
    let farm = Server::start(data.path(), &["--session-idle-seconds", "1"]);
    let (id, roots) = open(&farm, &theorem("t", "theorem t : 1 + 1 = 2")).await;
    let root = roots[0]["proof_state"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let (_, view) = farm.get_json(&format!("/v1/sessions/{id}")).await;
        if view["state"] != "open" {
            break view;
        }
        assert!(Instant::now() < deadline, "still open: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(view["state"], "closed");
    assert_eq!(view["reason"], "idle timeout");
    let (status, closed) = tactics(&farm, &id, &[(root, "rfl")]).await;
    assert_eq!(status, 409, "{closed}");
    assert_eq!(closed["code"], "session_closed");
}

#[tokio::test]
async fn a_tenant_sees_none_of_another_tenants_sessions() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("farm.db").display());
    leanfarm(&["tenant", "--store", &store, "set", "acme", "--rps", "1000"]);
    leanfarm(&["tenant", "--store", &store, "set", "rival", "--rps", "1000"]);
    let acme = leanfarm(&[
        "tenant", "--store", &store, "key", "acme", "--scope", "user",
    ]);
    let rival = leanfarm(&[
        "tenant", "--store", &store, "key", "rival", "--scope", "user",
    ]);
    let mut farm = Server::start(
        data.path(),
        &[
            "--store",
            &store,
            "--require-auth",
            "--max-sessions-per-tenant",
            "1",
        ],
    );
    farm.token = Some(acme.clone());
    let (id, roots) = open(&farm, &theorem("t", "theorem t : 1 + 1 = 2")).await;
    let root = roots[0]["proof_state"].as_u64().unwrap();
    // The tenant's one session is its limit.
    let (status, full) = farm
        .post("/v1/sessions", &theorem("u", "theorem u : 2 = 2"))
        .await;
    assert_eq!(status, 429, "{full}");
    assert_eq!(full["code"], "tenant_sessions_full");

    farm.token = Some(rival);
    let missing = farm.get_json("/v1/sessions/no-such-session").await;
    let foreign = farm.get_json(&format!("/v1/sessions/{id}")).await;
    assert_eq!(foreign.0, 404);
    assert_eq!(foreign.1["code"], "session_not_found");
    // Exactly the answer of a session that does not exist, but for the id.
    assert_eq!(
        foreign.1["message"].as_str().unwrap().replace(&id, "ID"),
        missing.1["message"]
            .as_str()
            .unwrap()
            .replace("no-such-session", "ID")
    );
    for (status, answer) in [
        tactics(&farm, &id, &[(root, "rfl")]).await,
        farm.post(
            &format!("/v1/sessions/{id}/finish"),
            &json!({ "proof_state": root }),
        )
        .await,
        farm.delete(&format!("/v1/sessions/{id}")).await,
    ] {
        assert_eq!(status, 404, "{answer}");
        assert_eq!(answer["code"], "session_not_found");
    }
    // The rival's attempts changed nothing.
    farm.token = Some(acme);
    let (status, answer) = tactics(&farm, &id, &[(root, "rfl")]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][0]["status"], "proved");
}

/// Two API replicas (`--slots 0`) on one PostgreSQL database and two
/// `leanfarm worker`s, each leasing through one replica: every session's
/// requests, sent through either replica, reach the worker that holds it.
#[tokio::test]
async fn sessions_are_routed_to_their_worker_through_any_replica() {
    let db = leanfarm_testkit::postgres::TestDatabase::create("sessions_routed");
    let (user, worker_token) = common::tokens(&db.url);
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut replica_a = common::api_replica(data_a.path(), &db.url, &[]);
    let mut replica_b = common::api_replica(data_b.path(), &db.url, &[]);
    replica_a.token = Some(user.clone());
    replica_b.token = Some(user);
    let (dir_1, dir_2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _worker_1 = common::Worker::start(
        &replica_a.url,
        &worker_token,
        dir_1.path(),
        &["--slots", "2", "--worker-id", "w1"],
    );
    let _worker_2 = common::Worker::start(
        &replica_b.url,
        &worker_token,
        dir_2.path(),
        &["--slots", "2", "--worker-id", "w2"],
    );
    // Four sessions, opened through alternate replicas.
    let mut sessions = Vec::new();
    for index in 0..4 {
        let replica = if index % 2 == 0 {
            &replica_a
        } else {
            &replica_b
        };
        let name = format!("t{index}");
        let statement = format!("theorem {name} : {index} + 1 = {}", index + 1);
        let (id, roots) = open(replica, &theorem(&name, &statement)).await;
        sessions.push((id, roots[0]["proof_state"].as_u64().unwrap()));
    }
    // Each session's tactics, through both replicas, land on its worker:
    // the states it made are answered in order, whichever replica asked.
    for (id, root) in &sessions {
        for replica in [&replica_a, &replica_b] {
            let (status, answer) = tactics(replica, id, &[(*root, "rfl")]).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["results"][0]["status"], "proved", "{answer}");
        }
        let (_, view) = replica_b.get_json(&format!("/v1/sessions/{id}")).await;
        assert_eq!(view["proof_states"].as_array().unwrap().len(), 3, "{view}");
    }
    // Both workers hold sessions: the table says which one holds each.
    let hosts = session_hosts(&db.url).await;
    assert_eq!(hosts.len(), 4, "{hosts:?}");
    assert!(
        hosts.iter().all(|host| host == "w1" || host == "w2"),
        "{hosts:?}"
    );
}

/// A `leanfarm worker` killed mid-session: the client gets `session_lost`
/// within the farm's host silence, never a hang; a new session opens on
/// the surviving worker.
#[tokio::test]
async fn a_killed_worker_loses_its_sessions_cleanly() {
    let db = leanfarm_testkit::postgres::TestDatabase::create("sessions_killed");
    let (user, worker_token) = common::tokens(&db.url);
    let data = tempfile::tempdir().unwrap();
    let mut replica = common::api_replica(data.path(), &db.url, &[]);
    replica.token = Some(user);
    let dir = tempfile::tempdir().unwrap();
    let mut doomed = common::Worker::start(
        &replica.url,
        &worker_token,
        dir.path(),
        &["--slots", "1", "--worker-id", "doomed"],
    );
    let (id, roots) = open(&replica, &theorem("t", "theorem t : 1 + 1 = 2")).await;
    let root = roots[0]["proof_state"].as_u64().unwrap();
    let (status, _) = tactics(&replica, &id, &[(root, "rfl")]).await;
    assert_eq!(status, 200);

    doomed.kill_hard();
    let started = Instant::now();
    let (status, lost) = tactics(&replica, &id, &[(root, "rfl")]).await;
    assert_eq!(status, 410, "{lost}");
    assert_eq!(lost["code"], "session_lost");
    // The host silence is 10 s; the tactic timeout 10 s: well under a minute.
    assert!(started.elapsed() < Duration::from_secs(60));
    let (_, view) = replica.get_json(&format!("/v1/sessions/{id}")).await;
    assert_eq!(view["state"], "lost", "{view}");

    let dir_2 = tempfile::tempdir().unwrap();
    let _survivor = common::Worker::start(
        &replica.url,
        &worker_token,
        dir_2.path(),
        &["--slots", "1", "--worker-id", "survivor"],
    );
    let (id, roots) = open(&replica, &theorem("t", "theorem t : 1 + 1 = 2")).await;
    let (status, answer) = tactics(
        &replica,
        &id,
        &[(roots[0]["proof_state"].as_u64().unwrap(), "rfl")],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        session_hosts(&db.url).await.last().map(String::as_str),
        Some("survivor")
    );
}

/// The host of each session, in the order they were created.
async fn session_hosts(url: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query(
            "SELECT host FROM tactic_sessions ORDER BY created_at, id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, Option<String>>(0).unwrap_or_default())
        .collect()
}

//! `leanfarm tenant` through the real binary: listing tenants and keys
//! (never a token), revoking by token or key id, the farm's own keys, and
//! the refusals an operator sees.

mod common;

use common::{leanfarm, Server};
use std::process::{Command, Output};

/// A fresh SQLite store in its own directory.
fn sqlite_store() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("leanfarm.db").display());
    (dir, url)
}

fn tenant(store: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args(["tenant", "--store", store])
        .args(args)
        .output()
        .expect("run leanfarm tenant")
}

/// Make a key; returns (key id, token).
fn key(store: &str, args: &[&str]) -> (String, String) {
    let output = tenant(store, args);
    assert!(output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let key_id = stderr
        .split_whitespace()
        .nth(1)
        .expect("`key KEY_ID ...` on stderr")
        .to_string();
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert!(token.starts_with("lf_"), "{token}");
    (key_id, token)
}

/// The refusal of a command: its exit code and stderr.
fn refused(store: &str, args: &[&str]) -> (Option<i32>, String) {
    let output = tenant(store, args);
    assert!(!output.status.success(), "{args:?} succeeded: {output:?}");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// The rows of `keys` (without the header), split into columns.
fn key_rows(store: &str, args: &[&str]) -> Vec<Vec<String>> {
    let listing = leanfarm(&[&["tenant", "--store", store, "keys"], args].concat());
    let mut lines = listing.lines();
    assert_eq!(lines.next(), Some("key_id\tscope\tcreated\texpires\tstate"));
    lines
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn list_shows_every_tenant_with_its_limits() {
    let (_dir, store) = sqlite_store();
    leanfarm(&[
        "tenant",
        "--store",
        &store,
        "set",
        "acme",
        "--max-running",
        "7",
    ]);
    leanfarm(&[
        "tenant",
        "--store",
        &store,
        "set",
        "beta-2",
        "--max-queued",
        "50",
        "--rps",
        "2.5",
    ]);
    let listing = leanfarm(&["tenant", "--store", &store, "list"]);
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .map(|line| line.split('\t').collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "name",
            "max_queued",
            "max_running",
            "requests_per_second",
            "created"
        ]
    );
    assert_eq!(rows[1][..4], ["acme", "100000", "7", "100"]);
    assert_eq!(rows[2][..4], ["beta-2", "50", "1000", "2.5"]);
    assert_eq!(rows.len(), 3);
}

#[test]
fn keys_lists_scope_creation_expiry_and_state_but_never_the_token() {
    let (_dir, store) = sqlite_store();
    leanfarm(&["tenant", "--store", &store, "set", "acme"]);
    leanfarm(&["tenant", "--store", &store, "set", "other"]);
    let (user_id, user_token) = key(&store, &["key", "acme"]);
    let (worker_id, worker_token) = key(
        &store,
        &["key", "acme", "--scope", "worker", "--expires-in", "30d"],
    );
    let (other_id, _) = key(&store, &["key", "other"]);
    let (operator_id, operator_token) = key(&store, &["farm-key", "--scope", "operator"]);
    let (farm_worker_id, _) = key(&store, &["farm-key", "--scope", "worker"]);

    let rows = key_rows(&store, &["acme"]);
    assert_eq!(rows.len(), 2, "acme's keys only: {rows:?}");
    let user = rows.iter().find(|row| row[0] == user_id).unwrap();
    assert_eq!(
        (&user[1][..], &user[3][..], &user[4][..]),
        ("user", "never", "active")
    );
    assert!(user[2].ends_with('Z'), "created in UTC: {}", user[2]);
    let worker = rows.iter().find(|row| row[0] == worker_id).unwrap();
    assert_eq!((&worker[1][..], &worker[4][..]), ("worker", "active"));
    assert!(
        worker[3] > worker[2] && worker[3].ends_with('Z'),
        "expires after it was created: {worker:?}"
    );
    assert!(!rows.iter().any(|row| row[0] == other_id));

    let farm = key_rows(&store, &["--farm"]);
    let mut scopes: Vec<(&str, &str)> = farm
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str()))
        .collect();
    scopes.sort();
    let mut expected = [
        (operator_id.as_str(), "operator"),
        (farm_worker_id.as_str(), "worker"),
    ];
    expected.sort();
    assert_eq!(scopes, expected);

    for args in [&["keys", "acme"][..], &["keys", "--farm"], &["list"]] {
        let output = tenant(&store, args);
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        for token in [&user_token, &worker_token, &operator_token] {
            assert!(
                !printed.contains(token.as_str()),
                "{args:?} printed a token"
            );
        }
    }
}

#[test]
fn revoke_takes_the_token_itself_or_its_key_id() {
    let (_dir, store) = sqlite_store();
    leanfarm(&["tenant", "--store", &store, "set", "acme"]);
    let (by_token_id, token) = key(&store, &["key", "acme"]);
    let (by_id, _) = key(&store, &["key", "acme", "--scope", "worker"]);
    let (untouched, _) = key(&store, &["key", "acme"]);

    assert_eq!(
        leanfarm(&["tenant", "--store", &store, "revoke", &token]),
        format!("key {by_token_id} revoked")
    );
    assert_eq!(
        leanfarm(&["tenant", "--store", &store, "revoke", &by_id]),
        format!("key {by_id} revoked")
    );
    let states: Vec<(String, String)> = key_rows(&store, &["acme"])
        .into_iter()
        .map(|row| (row[0].clone(), row[4].clone()))
        .collect();
    assert!(
        states.contains(&(by_token_id, "revoked".into())),
        "{states:?}"
    );
    assert!(states.contains(&(by_id, "revoked".into())), "{states:?}");
    assert!(states.contains(&(untouched, "active".into())), "{states:?}");

    let (code, stderr) = refused(&store, &["revoke", "lf_not-a-token"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("no key has this key id or token"),
        "{stderr}"
    );
}

#[test]
fn refusals_say_what_is_wrong() {
    let (_dir, store) = sqlite_store();
    leanfarm(&["tenant", "--store", &store, "set", "acme"]);

    let (code, stderr) = refused(&store, &["key", "ghost"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("no tenant `ghost`: create it first (`leanfarm tenant set ghost`)"),
        "{stderr}"
    );
    assert!(
        key_rows(&store, &["--farm"]).is_empty(),
        "nothing was stored"
    );

    for bad in ["Acme", "_acme", "ac me", "acme/x", "acmé"] {
        let (code, stderr) = refused(&store, &["set", bad]);
        assert_eq!(code, Some(2), "{bad}");
        assert!(
            stderr.contains(&format!("invalid tenant name `{bad}`")),
            "{bad}: {stderr}"
        );
        let (_, stderr) = refused(&store, &["key", bad]);
        assert!(stderr.contains("invalid tenant name"), "{bad}: {stderr}");
    }
    leanfarm(&["tenant", "--store", &store, "set", "default"]);

    for scope in ["operator", "admin"] {
        let (_, stderr) = refused(&store, &["key", "acme", "--scope", scope]);
        assert!(
            stderr.contains("use `leanfarm tenant farm-key --scope operator`"),
            "{scope}: {stderr}"
        );
    }
    let (_, stderr) = refused(&store, &["farm-key", "--scope", "user"]);
    assert!(stderr.contains("invalid value 'user'"), "{stderr}");
    let (_, stderr) = refused(&store, &["key", "acme", "--expires-in", "0d"]);
    assert!(stderr.contains("is not a lifetime"), "{stderr}");
    let (code, stderr) = refused(&store, &["keys", "ghost"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no tenant `ghost`"), "{stderr}");
    assert!(key_rows(&store, &["acme"]).is_empty(), "nothing was stored");
}

#[tokio::test]
async fn an_expired_token_is_refused_by_the_farm() {
    let data = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    leanfarm(&["tenant", "--store", &store, "set", "acme"]);
    let mut server = Server::start(data.path(), &["--slots", "0", "--require-auth"]);
    let (lasting_id, lasting) = key(&store, &["key", "acme"]);
    let (brief_id, brief) = key(&store, &["key", "acme", "--expires-in", "2s"]);
    server.token = Some(brief.clone());
    let (status, body) = server.get_json("/v1/checks").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, _) = server.get_json("/v1/checks").await;
    assert_eq!(status, 401, "an expired token");
    server.token = Some(lasting);
    let (status, body) = server.get_json("/v1/checks").await;
    assert_eq!(status, 200, "{body}");
    let mut states: Vec<(String, String)> = key_rows(&store, &["acme"])
        .into_iter()
        .map(|row| (row[0].clone(), row[4].clone()))
        .collect();
    states.sort();
    let mut expected = vec![
        (lasting_id, "active".to_string()),
        (brief_id, "expired".to_string()),
    ];
    expected.sort();
    assert_eq!(states, expected);
}

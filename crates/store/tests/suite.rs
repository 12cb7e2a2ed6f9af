//! The store's specification, written once and run against every backend
//! (`store_suite!`). Each test opens its own fresh store.

use leanfarm_core::{CheckRequest, CheckStatus, Policy, Verdict};
use leanfarm_store::{
    CompleteOutcome, JobState, KeyScope, ListFilter, NewJob, ReleaseOutcome, Store, TenantRecord,
    WorkerOffer,
};
use std::collections::HashSet;
use std::time::Duration;

fn job(id: &str, tenant: &str, header: &str) -> NewJob {
    NewJob {
        id: id.to_string(),
        tenant: tenant.to_string(),
        batch_id: Some("batch".to_string()),
        request: CheckRequest {
            custom_id: Some(id.to_string()),
            code: format!("theorem {id} : True := trivial"),
            timeout_seconds: 5.0,
            policy: Policy::default(),
            infotree: None,
        },
        header_key: header.to_string(),
        max_attempts: 3,
        toolchain: None,
        project: None,
    }
}

fn jobs(prefix: &str, tenant: &str, count: usize) -> Vec<NewJob> {
    (0..count)
        .map(|i| job(&format!("{prefix}{i:05}"), tenant, "import Lean"))
        .collect()
}

fn verdict() -> Verdict {
    Verdict::valid()
}

const LEASE: Duration = Duration::from_secs(30);

async fn enqueue_get_list_and_page(store: Store) {
    store.enqueue(jobs("a", "t1", 5)).await.unwrap();
    let record = store.get("a00002").await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Queued);
    assert_eq!(record.request.custom_id.as_deref(), Some("a00002"));
    assert_eq!(record.attempts, 0);
    assert!(store.get("missing").await.unwrap().is_none());
    let many = store
        .get_many(&["a00004".into(), "missing".into(), "a00000".into()])
        .await
        .unwrap();
    assert_eq!(
        many.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a00004", "a00000"]
    );
    let page = store
        .list(&ListFilter {
            limit: 2,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a00000", "a00001"]
    );
    let next = store
        .list(&ListFilter {
            limit: 10,
            after: Some("a00001".into()),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 3);
    let none = store
        .list(&ListFilter {
            limit: 10,
            tenant: Some("other".into()),
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(store.queue_counts().await.unwrap().queued, 5);
    assert_eq!(store.tenant_open_jobs("t1").await.unwrap(), 5);
}

async fn claim_renew_complete_once(store: Store) {
    store.enqueue(jobs("a", "t1", 3)).await.unwrap();
    let leases = store
        .claim("w1", 2, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(
        leases.iter().map(|l| l.job_id.as_str()).collect::<Vec<_>>(),
        ["a00000", "a00001"]
    );
    assert_eq!(leases[0].attempt, 1);
    assert_eq!(
        store.get("a00000").await.unwrap().unwrap().state,
        JobState::Running
    );
    let held = store
        .renew(
            &[
                (leases[0].job_id.clone(), leases[0].lease_id.clone()),
                ("a00000".into(), "wrong".into()),
            ],
            LEASE,
        )
        .await
        .unwrap();
    assert_eq!(held, vec![true, false]);
    assert_eq!(
        store
            .complete("a00000", &leases[0].lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );
    assert_eq!(
        store
            .complete("a00000", &leases[0].lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
    assert_eq!(
        store
            .complete("a00001", "not-the-lease", &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
    let done = store.get("a00000").await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.result.unwrap().status(), CheckStatus::Valid);
    assert!(done.finished_at.is_some());
    let counts = store.queue_counts().await.unwrap();
    assert_eq!((counts.queued, counts.running, counts.done), (1, 1, 1));
}

async fn an_expired_lease_is_claimed_again_and_the_late_result_refused(store: Store) {
    store.enqueue(vec![job("a", "t1", "h")]).await.unwrap();
    let first = store
        .claim("w1", 1, Duration::from_millis(50), &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(120)).await;
    let second = store
        .claim("w2", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.job_id, "a");
    assert_eq!(second.attempt, 2);
    assert_eq!(
        store
            .complete("a", &first.lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
    assert_eq!(
        store
            .renew(&[("a".into(), first.lease_id.clone())], LEASE)
            .await
            .unwrap(),
        vec![false]
    );
    assert_eq!(
        store
            .complete("a", &second.lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );
}

async fn release_backs_off_then_dead_letters(store: Store) {
    let mut new_job = job("a", "t1", "h");
    new_job.max_attempts = 2;
    store.enqueue(vec![new_job]).await.unwrap();
    let lease = store
        .claim("w1", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        store
            .release(
                "a",
                &lease.lease_id,
                "sandbox failed",
                Duration::from_millis(300)
            )
            .await
            .unwrap(),
        ReleaseOutcome::Requeued
    );
    assert!(
        store
            .claim("w1", 1, LEASE, &WorkerOffer::default())
            .await
            .unwrap()
            .is_empty(),
        "claimable before its backoff ended"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let lease = store
        .claim("w1", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(lease.attempt, 2);
    assert_eq!(
        store
            .release("a", "stale", "x", Duration::ZERO)
            .await
            .unwrap(),
        ReleaseOutcome::Stale
    );
    assert_eq!(
        store
            .release("a", &lease.lease_id, "sandbox failed again", Duration::ZERO)
            .await
            .unwrap(),
        ReleaseOutcome::DeadLettered
    );
    let dead = store.get("a").await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("sandbox failed again"));
    assert!(store
        .claim("w1", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .is_empty());
}

async fn a_lease_expiring_on_the_last_attempt_dead_letters(store: Store) {
    let mut new_job = job("a", "t1", "h");
    new_job.max_attempts = 1;
    store.enqueue(vec![new_job]).await.unwrap();
    store
        .claim("w1", 1, Duration::from_millis(30), &WorkerOffer::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(store
        .claim("w2", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.get("a").await.unwrap().unwrap().state, JobState::Dead);
}

async fn warm_headers_are_preferred(store: Store) {
    store
        .enqueue(vec![
            job("a", "t1", "import Mathlib"),
            job("b", "t1", "import Aesop"),
            job("c", "t1", "import Aesop"),
        ])
        .await
        .unwrap();
    let leases = store
        .claim("w1", 2, LEASE, &WorkerOffer::warm(&["import Aesop"]))
        .await
        .unwrap();
    assert_eq!(
        leases.iter().map(|l| l.job_id.as_str()).collect::<Vec<_>>(),
        ["b", "c"]
    );
    let rest = store
        .claim("w1", 5, LEASE, &WorkerOffer::warm(&["import Aesop"]))
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|l| l.job_id.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
}

async fn a_small_tenant_is_not_starved_by_a_big_one(store: Store) {
    store.enqueue(jobs("big", "big", 1000)).await.unwrap();
    store.enqueue(jobs("small", "small", 10)).await.unwrap();
    // Rule: each claim serves the tenant with the fewest running jobs (ties:
    // least recently served), so claims alternate while both have work.
    let leases = store
        .claim("w1", 20, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    let small = leases.iter().filter(|l| l.tenant == "small").count();
    assert_eq!(
        small,
        10,
        "{:?}",
        leases.iter().map(|l| &l.tenant).collect::<Vec<_>>()
    );
}

async fn concurrent_workers_complete_every_job_exactly_once(store: Store) {
    store.enqueue(jobs("j", "t1", 400)).await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut completed = Vec::new();
            loop {
                let leases = store
                    .claim(&format!("w{worker}"), 3, LEASE, &WorkerOffer::default())
                    .await
                    .unwrap();
                if leases.is_empty() {
                    return completed;
                }
                for lease in leases {
                    assert_eq!(
                        store
                            .complete(&lease.job_id, &lease.lease_id, &verdict())
                            .await
                            .unwrap(),
                        CompleteOutcome::Stored
                    );
                    completed.push(lease.job_id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), 400);
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        400,
        "a job was completed twice"
    );
    let counts = store.queue_counts().await.unwrap();
    assert_eq!((counts.queued, counts.running, counts.done), (0, 0, 400));
    assert_eq!(store.tenant_open_jobs("t1").await.unwrap(), 0);
}

async fn tenants_and_api_keys(store: Store) {
    let tenant = TenantRecord {
        name: "acme".into(),
        max_queued: 10,
        max_running: 2,
        requests_per_second: 5.0,
        created_at: 1,
    };
    store.upsert_tenant(&tenant).await.unwrap();
    assert_eq!(store.get_tenant("acme").await.unwrap(), Some(tenant));
    assert_eq!(store.get_tenant("nobody").await.unwrap(), None);
    let key_id = store
        .create_api_key("acme", KeyScope::Worker, "ab12")
        .await
        .unwrap();
    let key = store.find_api_key("ab12").await.unwrap().unwrap();
    assert_eq!(
        (
            key.key_id.as_str(),
            key.tenant.as_str(),
            key.scope,
            key.revoked
        ),
        (key_id.as_str(), "acme", KeyScope::Worker, false)
    );
    assert!(store.revoke_api_key(&key_id).await.unwrap());
    assert!(store.find_api_key("ab12").await.unwrap().unwrap().revoked);
    assert!(store.find_api_key("ffff").await.unwrap().is_none());
    assert!(!store.revoke_api_key("no-such-key").await.unwrap());
}

async fn a_tenant_never_runs_more_than_its_limit(store: Store) {
    store
        .upsert_tenant(&TenantRecord {
            name: "capped".into(),
            max_queued: 100,
            max_running: 2,
            requests_per_second: 100.0,
            created_at: 0,
        })
        .await
        .unwrap();
    store.enqueue(jobs("c", "capped", 5)).await.unwrap();
    store.enqueue(jobs("f", "free", 5)).await.unwrap();
    let leases = store
        .claim("w", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    let capped = leases.iter().filter(|l| l.tenant == "capped").count();
    assert_eq!((capped, leases.len()), (2, 7));
    assert!(store
        .claim("w", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .is_empty());
    let lease = leases.iter().find(|l| l.tenant == "capped").unwrap();
    store
        .complete(&lease.job_id, &lease.lease_id, &verdict())
        .await
        .unwrap();
    let next = store
        .claim("w", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].tenant, "capped");
}

async fn a_job_goes_only_to_a_worker_with_its_toolchain_and_project(store: Store) {
    let mut pinned = job("pinned", "t1", "h");
    pinned.toolchain = Some("v4.9".into());
    pinned.project = Some("mathlib".into());
    let mut toolchain_only = job("toolchain", "t1", "h");
    toolchain_only.toolchain = Some("v4.9".into());
    store
        .enqueue(vec![pinned, toolchain_only, job("any", "t1", "h")])
        .await
        .unwrap();
    let other = WorkerOffer {
        toolchain: Some("v4.8".into()),
        project: Some("mathlib".into()),
        ..WorkerOffer::default()
    };
    let leases = store.claim("old", 10, LEASE, &other).await.unwrap();
    assert_eq!(
        leases.iter().map(|l| l.job_id.as_str()).collect::<Vec<_>>(),
        ["any"]
    );
    let no_project = WorkerOffer {
        toolchain: Some("v4.9".into()),
        ..WorkerOffer::default()
    };
    let leases = store.claim("bare", 10, LEASE, &no_project).await.unwrap();
    assert_eq!(
        leases.iter().map(|l| l.job_id.as_str()).collect::<Vec<_>>(),
        ["toolchain"]
    );
    let right = WorkerOffer {
        toolchain: Some("v4.9".into()),
        project: Some("mathlib".into()),
        ..WorkerOffer::default()
    };
    let leases = store.claim("new", 10, LEASE, &right).await.unwrap();
    assert_eq!(
        leases.iter().map(|l| l.job_id.as_str()).collect::<Vec<_>>(),
        ["pinned"]
    );
    let record = store.get("pinned").await.unwrap().unwrap();
    assert_eq!(
        (record.toolchain.as_deref(), record.project.as_deref()),
        (Some("v4.9"), Some("mathlib"))
    );
}

async fn claims_record_what_each_worker_offers(store: Store) {
    let before = leanfarm_store::now_millis();
    let offer = |toolchain: &str, project: Option<&str>| WorkerOffer {
        toolchain: Some(toolchain.into()),
        project: project.map(Into::into),
        ..WorkerOffer::default()
    };
    // Claims record the worker even when there is nothing to lease.
    store
        .claim("w1", 1, LEASE, &offer("v4.9", Some("mathlib")))
        .await
        .unwrap();
    store
        .claim("w2", 1, LEASE, &offer("v4.8", None))
        .await
        .unwrap();
    store
        .claim("w2", 1, LEASE, &offer("v4.8", None))
        .await
        .unwrap();
    let seen = store.workers_seen(before).await.unwrap();
    let summary: Vec<(&str, Option<&str>, Option<&str>)> = seen
        .iter()
        .map(|w| {
            (
                w.worker_id.as_str(),
                w.toolchain.as_deref(),
                w.project.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("w1", Some("v4.9"), Some("mathlib")),
            ("w2", Some("v4.8"), None)
        ]
    );
    assert!(seen.iter().all(|w| w.seen_at >= before));
    assert!(seen[0].can_run(Some("v4.9"), Some("mathlib")));
    assert!(seen[0].can_run(None, None));
    assert!(!seen[0].can_run(Some("v4.8"), None));
    assert!(!seen[1].can_run(None, Some("mathlib")));

    // A worker that comes back with another toolchain is rewritten at once.
    store
        .claim("w2", 1, LEASE, &offer("v4.9", None))
        .await
        .unwrap();
    let seen = store.workers_seen(before).await.unwrap();
    assert_eq!(seen[1].toolchain.as_deref(), Some("v4.9"));
    // Nobody was seen after now.
    assert!(store
        .workers_seen(before + 3_600_000)
        .await
        .unwrap()
        .is_empty());
}

macro_rules! store_suite {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test]
                    async fn $name() {
                        let (store, _guard) = $open.await;
                        super::$name(store).await;
                    }
                };
            }
            case!(enqueue_get_list_and_page);
            case!(claim_renew_complete_once);
            case!(an_expired_lease_is_claimed_again_and_the_late_result_refused);
            case!(release_backs_off_then_dead_letters);
            case!(a_lease_expiring_on_the_last_attempt_dead_letters);
            case!(warm_headers_are_preferred);
            case!(a_small_tenant_is_not_starved_by_a_big_one);
            case!(concurrent_workers_complete_every_job_exactly_once);
            case!(tenants_and_api_keys);
            case!(a_tenant_never_runs_more_than_its_limit);
            case!(a_job_goes_only_to_a_worker_with_its_toolchain_and_project);
            case!(claims_record_what_each_worker_offers);
        }
    };
}

async fn open_sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("store.db").display()
    ))
    .await
    .unwrap();
    (store, dir)
}

store_suite!(sqlite, open_sqlite());
store_suite!(postgres, open_postgres());

/// The PostgreSQL server the tests use: LEAN_FARM_TEST_POSTGRES, or the
/// local one. Each test gets a database of its own, dropped afterwards.
fn postgres_admin_url() -> String {
    std::env::var("LEAN_FARM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a database in the url");
    format!("{base}/{name}")
}

async fn admin() -> tokio_postgres::Client {
    let url = postgres_admin_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!("PostgreSQL at {url} is needed for the store suite (.ci/run starts it): {error}")
        });
    tokio::spawn(connection);
    client
}

/// Drops its test database.
struct TestDatabase {
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A thread of its own: drop runs inside the test's runtime.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let client = admin().await;
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                })
        })
        .join();
    }
}

async fn open_postgres() -> (Store, TestDatabase) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let client = admin().await;
    // Databases left by test runs that died.
    for row in client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'leanfarm_test_%'",
            &[],
        )
        .await
        .unwrap()
    {
        let name: String = row.get(0);
        let pid = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
    let name = format!(
        "leanfarm_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let store = Store::open(&with_database(&postgres_admin_url(), &name))
        .await
        .unwrap();
    (store, TestDatabase { name })
}

#[tokio::test]
async fn a_sqlite_store_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::open(&url).await.unwrap();
    store.enqueue(jobs("a", "t1", 3)).await.unwrap();
    let lease = store
        .claim("w", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    store
        .complete(&lease.job_id, &lease.lease_id, &verdict())
        .await
        .unwrap();
    drop(store);
    let reopened = Store::open(&url).await.unwrap();
    let counts = reopened.queue_counts().await.unwrap();
    assert_eq!((counts.queued, counts.done), (2, 1));
    assert_eq!(
        reopened
            .get("a00000")
            .await
            .unwrap()
            .unwrap()
            .result
            .unwrap()
            .status(),
        CheckStatus::Valid
    );
}

#[tokio::test]
async fn unsupported_urls_are_refused_clearly() {
    for url in [
        "mysql://x",
        "sqlite://",
        "postgres://postgres@127.0.0.1:5432/x?sslmode=bogus",
    ] {
        let error = Store::open(url).await.err().unwrap();
        assert!(
            matches!(error, leanfarm_store::StoreError::UnsupportedUrl(_)),
            "{url}: {error}"
        );
    }
}

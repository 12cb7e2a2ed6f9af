//! The dashboards' read-only summaries (`finished_counts`, `recent_batches`,
//! `open_jobs_by_tenant`), specified once and run on SQLite and PostgreSQL.

use leanfarm_core::{CheckRequest, CheckStatus, Policy, ReasonCode, Verdict, VerdictReason};
use leanfarm_store::{
    now_millis, BatchListFilter, NewJob, ReleaseOutcome, Store, TenantOpenJobs, WorkerOffer,
};
use leanfarm_testkit::postgres::TestDatabase;
use std::time::Duration;

fn job(id: &str, tenant: &str, batch: &str) -> NewJob {
    NewJob {
        id: id.to_string(),
        tenant: tenant.to_string(),
        batch_id: Some(batch.to_string()),
        request: CheckRequest {
            custom_id: None,
            code: format!("theorem {id} : True := trivial"),
            timeout_seconds: 5.0,
            policy: Policy::default(),
            infotree: None,
            trace_context: None,
        },
        header_key: String::new(),
        max_attempts: 1,
        toolchain: None,
        project: None,
    }
}

const LEASE: Duration = Duration::from_secs(30);

/// t1: batch `b1` (j1 valid, j2 sorry, j3 dead) and, later, batch `b2`
/// (j4 valid, j5 left queued); t2: batch `b3` (j6 valid).
async fn fill(store: &Store) {
    store
        .enqueue(vec![
            job("j1", "t1", "b1"),
            job("j2", "t1", "b1"),
            job("j3", "t1", "b1"),
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .enqueue(vec![job("j4", "t1", "b2"), job("j6", "t2", "b3")])
        .await
        .unwrap();
    let leases = store
        .claim("w1", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leases.len(), 5);
    let sorry = Verdict::rejected(VerdictReason::new(ReasonCode::UsesSorry, "sorry"));
    for lease in &leases {
        match lease.job_id.as_str() {
            "j2" => {
                store.complete("j2", &lease.lease_id, &sorry).await.unwrap();
            }
            "j3" => {
                let outcome = store
                    .release("j3", &lease.lease_id, "sandbox broke", Duration::ZERO)
                    .await
                    .unwrap();
                assert_eq!(outcome, ReleaseOutcome::DeadLettered);
            }
            id => {
                store
                    .complete(id, &lease.lease_id, &Verdict::valid())
                    .await
                    .unwrap();
            }
        }
    }
    store.enqueue(vec![job("j5", "t1", "b2")]).await.unwrap();
}

async fn verdicts_are_counted_per_bucket_and_tenant(store: Store) {
    let start = now_millis();
    fill(&store).await;
    let total = |counts: &[leanfarm_store::FinishedCount], status: Option<CheckStatus>| -> u64 {
        counts
            .iter()
            .filter(|count| count.status == status)
            .map(|count| count.count)
            .sum()
    };
    let t1 = store
        .finished_counts(Some("t1"), start - 1000, 3_600_000)
        .await
        .unwrap();
    assert_eq!(total(&t1, Some(CheckStatus::Valid)), 2);
    assert_eq!(total(&t1, Some(CheckStatus::Sorry)), 1);
    assert_eq!(total(&t1, None), 1, "a dead job counts as dead");
    assert!(t1.iter().all(|count| count.bucket_start % 3_600_000 == 0));
    let everyone = store
        .finished_counts(None, start - 1000, 1000)
        .await
        .unwrap();
    assert_eq!(
        total(&everyone, Some(CheckStatus::Valid)),
        3,
        "t2's valid too"
    );
    assert!(everyone
        .windows(2)
        .all(|pair| pair[0].bucket_start <= pair[1].bucket_start));
    assert!(store
        .finished_counts(Some("t2"), now_millis() + 60_000, 1000)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .finished_counts(Some("nobody"), 0, 1000)
        .await
        .unwrap()
        .is_empty());
}

async fn a_tenants_batches_newest_first_and_filtered(store: Store) {
    fill(&store).await;
    let ids = |batches: Vec<leanfarm_store::BatchSummary>| {
        batches
            .into_iter()
            .map(|batch| (batch.batch_id, batch.counts.total))
            .collect::<Vec<_>>()
    };
    let all = store
        .recent_batches("t1", BatchListFilter::All, 10)
        .await
        .unwrap();
    assert_eq!(all[0].counts.states.queued, 1);
    assert_eq!(all[1].counts.states.dead, 1);
    assert_eq!(ids(all), [("b2".to_string(), 2), ("b1".to_string(), 3)]);
    assert_eq!(
        ids(store
            .recent_batches("t1", BatchListFilter::Open, 10)
            .await
            .unwrap()),
        [("b2".to_string(), 2)]
    );
    assert_eq!(
        ids(store
            .recent_batches("t1", BatchListFilter::Finished, 10)
            .await
            .unwrap()),
        [("b1".to_string(), 3)]
    );
    assert_eq!(
        ids(store
            .recent_batches("t1", BatchListFilter::All, 1)
            .await
            .unwrap()),
        [("b2".to_string(), 2)]
    );
    assert_eq!(
        ids(store
            .recent_batches("t2", BatchListFilter::All, 10)
            .await
            .unwrap()),
        [("b3".to_string(), 1)],
        "a tenant's list holds only its own batches"
    );
}

async fn open_jobs_are_counted_per_tenant(store: Store) {
    fill(&store).await;
    let open = store.open_jobs_by_tenant().await.unwrap();
    assert_eq!(
        open,
        [
            TenantOpenJobs {
                tenant: "t1".into(),
                queued: 1,
                running: 0
            },
            TenantOpenJobs {
                tenant: "t2".into(),
                queued: 0,
                running: 0
            },
        ]
    );
}

async fn open_sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    (Store::open(&url).await.unwrap(), dir)
}

async fn open_postgres() -> (Store, TestDatabase) {
    let database = TestDatabase::create("store_activity");
    (Store::open(&database.url).await.unwrap(), database)
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let (store, _guard) = super::open_sqlite().await;
                super::$name(store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let (store, _guard) = super::open_postgres().await;
                super::$name(store).await;
            })*
        }
    };
}

both_backends!(
    verdicts_are_counted_per_bucket_and_tenant,
    a_tenants_batches_newest_first_and_filtered,
    open_jobs_are_counted_per_tenant,
);

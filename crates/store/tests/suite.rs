//! The store's specification, written once and run against every backend
//! (`store_suite!`). Each test opens its own fresh store.

use leanfarm_core::{CheckRequest, CheckStatus, Policy, ReasonCode, Verdict, VerdictReason};
use leanfarm_store::artifacts::VERDICT_ARTIFACTS;
use leanfarm_store::{
    Admission, Authentication, CancelScope, CompleteOutcome, DeadJobSelector, FinishedCursor,
    IdempotencyKey, JobState, KeyOwner, KeyScope, ListFilter, NewJob, QueuePolicy, ReleaseOutcome,
    Store, StoreError, TenantKeyScope, TenantRecord, WorkerAuthority, WorkerOffer,
};
use leanfarm_testkit::postgres::TestDatabase;
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
            trace_context: None,
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

async fn a_stored_verdict_owes_its_artifacts_until_they_are_written(store: Store) {
    store
        .enqueue(vec![job("a", "t1", "h"), job("b", "t1", "h")])
        .await
        .unwrap();
    let leases = store
        .claim("w1", 2, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert!(store
        .jobs_owing_artifacts(None, 10)
        .await
        .unwrap()
        .is_empty());
    let lease_a = leases.iter().find(|lease| lease.job_id == "a").unwrap();
    assert_eq!(
        store
            .complete("a", &lease_a.lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );
    // A stale completion writes nothing, and owes nothing.
    assert_eq!(
        store
            .complete("b", "not-a-lease", &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
    let owing = store.jobs_owing_artifacts(None, 10).await.unwrap();
    assert_eq!(
        owing
            .iter()
            .map(|owed| owed.job.id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(
        owing[0].job.result.as_ref().unwrap().status(),
        CheckStatus::Valid
    );
    assert_eq!(owing[0].names, VERDICT_ARTIFACTS);
    assert_eq!(
        store
            .jobs_owing_artifacts(Some("a"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .jobs_owing_artifacts(Some("b"), 10)
        .await
        .unwrap()
        .is_empty());
    store.artifacts_written("a").await.unwrap();
    assert!(store
        .jobs_owing_artifacts(None, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Dead-letter a job with one attempt: claim it and release it.
async fn kill_job(store: &Store, job_id: &str) {
    let lease = store
        .claim("w1", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(lease.job_id, job_id);
    assert_eq!(
        store
            .release(job_id, &lease.lease_id, "sandbox broke", Duration::ZERO)
            .await
            .unwrap(),
        ReleaseOutcome::DeadLettered
    );
}

async fn dead_jobs_are_retried_by_id_batch_or_all_with_a_reason(store: Store) {
    let mut new_jobs = Vec::new();
    for (id, batch) in [("a", "one"), ("b", "two"), ("c", "two"), ("d", "three")] {
        let mut new_job = job(id, "t1", "h");
        new_job.max_attempts = 1;
        new_job.batch_id = Some(batch.to_string());
        new_jobs.push(new_job);
    }
    store.enqueue(new_jobs).await.unwrap();
    for id in ["a", "b", "c", "d"] {
        kill_job(&store, id).await;
    }
    assert_eq!(store.queue_counts().await.unwrap().dead, 4);

    let retried = store
        .retry_dead(
            &DeadJobSelector::Ids(vec!["a".into(), "zz".into()]),
            "disk replaced",
        )
        .await
        .unwrap();
    assert_eq!(retried, ["a"]);
    let a = store.get("a").await.unwrap().unwrap();
    assert_eq!(a.state, JobState::Queued);
    assert_eq!(a.attempts, 0);
    assert_eq!(a.last_error.as_deref(), Some("retried: disk replaced"));
    assert!(a.finished_at.is_none());
    // Only dead jobs are put back: `a` is queued now.
    assert!(store
        .retry_dead(&DeadJobSelector::Ids(vec!["a".into()]), "again")
        .await
        .unwrap()
        .is_empty());

    let retried = store
        .retry_dead(&DeadJobSelector::Batch("two".into()), "batch two")
        .await
        .unwrap();
    assert_eq!(retried, ["b", "c"]);
    let retried = store
        .retry_dead(&DeadJobSelector::All, "everything")
        .await
        .unwrap();
    assert_eq!(retried, ["d"]);
    let counts = store.queue_counts().await.unwrap();
    assert_eq!((counts.queued, counts.dead), (4, 0));
    assert_eq!(store.tenant_open_jobs("t1").await.unwrap(), 4);

    // Back in the queue, each with a fresh attempt, and they run.
    let leases = store
        .claim("w1", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leases.len(), 4);
    assert!(leases.iter().all(|lease| lease.attempt == 1));
    for lease in &leases {
        assert_eq!(
            store
                .complete(&lease.job_id, &lease.lease_id, &verdict())
                .await
                .unwrap(),
            CompleteOutcome::Stored
        );
    }
    assert_eq!(store.queue_counts().await.unwrap().done, 4);
}

async fn the_queue_policy_sets_every_jobs_attempts(store: Store) {
    let store = store.with_queue_policy(QueuePolicy {
        max_attempts: Some(7),
        ..QueuePolicy::default()
    });
    store.enqueue(vec![job("a", "t1", "h")]).await.unwrap();
    assert_eq!(
        store
            .enqueue_within(vec![job("b", "t1", "h")], 100)
            .await
            .unwrap(),
        Admission::Enqueued
    );
    for id in ["a", "b"] {
        assert_eq!(store.get(id).await.unwrap().unwrap().max_attempts, 7);
    }
}

/// A store that nobody reached for longer than the outage gap extends the
/// running leases by the gap (by default), or lets them expire and count
/// (`count_expiry_during_outage`).
async fn leases_do_not_run_out_during_an_outage(store: Store) {
    let outage_gap = Duration::from_millis(1500);
    let freezing = store.clone().with_queue_policy(QueuePolicy {
        outage_gap,
        ..QueuePolicy::default()
    });
    let counting = store.with_queue_policy(QueuePolicy {
        outage_gap,
        count_expiry_during_outage: true,
        ..QueuePolicy::default()
    });
    freezing.enqueue(vec![job("a", "t1", "h")]).await.unwrap();
    let held = freezing
        .claim("w1", 1, Duration::from_secs(1), &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    // The outage: nothing reaches the store for longer than the gap and the lease.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert!(
        freezing
            .claim("w2", 1, LEASE, &WorkerOffer::default())
            .await
            .unwrap()
            .is_empty(),
        "a lease ran out during the outage"
    );
    assert_eq!(
        freezing
            .complete("a", &held.lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );

    counting.enqueue(vec![job("b", "t1", "h")]).await.unwrap();
    let lost = counting
        .claim("w1", 1, Duration::from_secs(1), &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let again = counting
        .claim("w2", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.job_id.as_str(), again.attempt), ("b", 2));
    assert_eq!(
        counting
            .complete("b", &lost.lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
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

/// Fairness under concurrency: 16 workers claim and complete one job at a
/// time from a tenant with 1,000 queued jobs (enqueued first) and one with
/// 10. In submission order the small tenant would come last; served fairly
/// (fewest running, then least recently served), its 10 jobs are claimed
/// among the first claims, however the concurrent transactions interleave.
async fn a_small_tenant_is_not_starved_under_concurrent_claims(store: Store) {
    store.enqueue(jobs("big", "big", 1000)).await.unwrap();
    store.enqueue(jobs("small", "small", 10)).await.unwrap();
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let (store, order) = (store.clone(), std::sync::Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let leases = store
                    .claim(&format!("w{worker}"), 1, LEASE, &WorkerOffer::default())
                    .await
                    .unwrap();
                for lease in leases {
                    order.lock().unwrap().push(lease.tenant.clone());
                    store
                        .complete(&lease.job_id, &lease.lease_id, &verdict())
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 160);
    let small: Vec<usize> = (0..order.len()).filter(|&i| order[i] == "small").collect();
    assert_eq!(small.len(), 10, "{order:?}");
    // Strict alternation puts the last one at claim 20; concurrent claims
    // that do not see each other's uncommitted work add at most one round
    // of the 16 workers.
    assert!(small[9] < 20 + 16, "small tenant served late: {small:?}");
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

async fn a_capped_enqueue_admits_a_batch_only_while_it_fits(store: Store) {
    // A batch that fills the queue exactly is admitted.
    assert_eq!(
        store.enqueue_within(jobs("a", "t1", 6), 10).await.unwrap(),
        Admission::Enqueued
    );
    assert_eq!(
        store.enqueue_within(jobs("b", "t2", 4), 10).await.unwrap(),
        Admission::Enqueued
    );
    // One more job would pass the cap: nothing of the batch is written.
    assert_eq!(
        store.enqueue_within(jobs("c", "t1", 1), 10).await.unwrap(),
        Admission::QueueFull {
            queued: 10,
            limit: 10
        }
    );
    assert!(store.get("c00000").await.unwrap().is_none());
    assert_eq!(store.queue_counts().await.unwrap().queued, 10);
    // Running and finished jobs are not queued: claiming makes room.
    let leases = store
        .claim("w", 3, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leases.len(), 3);
    store
        .complete(&leases[0].job_id, &leases[0].lease_id, &verdict())
        .await
        .unwrap();
    assert_eq!(
        store.enqueue_within(jobs("d", "t1", 4), 10).await.unwrap(),
        Admission::QueueFull {
            queued: 7,
            limit: 10
        }
    );
    assert_eq!(
        store.enqueue_within(jobs("e", "t3", 3), 10).await.unwrap(),
        Admission::Enqueued
    );
    assert_eq!(store.queue_counts().await.unwrap().queued, 10);
    // A batch larger than the cap never fits, even in an empty queue.
    let (empty_store_batch, limit) = (jobs("f", "t1", 11), 10);
    assert!(matches!(
        store
            .enqueue_within(empty_store_batch, limit)
            .await
            .unwrap(),
        Admission::QueueFull { .. }
    ));
    assert!(store.get("f00000").await.unwrap().is_none());
}

/// Two stores on one database (two replicas), four submitters each, all
/// racing batches of 7 at a cap of 100: exactly the 14 batches that fit
/// get in (98 jobs), never a job more.
async fn concurrent_batches_never_take_the_queue_past_its_cap(first: Store, second: Store) {
    const CAP: u64 = 100;
    const BATCH: usize = 7;
    let mut submitters = Vec::new();
    for submitter in 0..8 {
        let store = if submitter % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        submitters.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            for attempt in 0..6 {
                let prefix = format!("s{submitter}a{attempt}-");
                let tenant = format!("t{}", submitter % 3);
                match store
                    .enqueue_within(jobs(&prefix, &tenant, BATCH), CAP)
                    .await
                    .unwrap()
                {
                    Admission::Enqueued => admitted += BATCH as u64,
                    Admission::QueueFull { queued, limit } => {
                        assert_eq!(limit, CAP);
                        assert!(queued + BATCH as u64 > CAP, "refused with room: {queued}");
                    }
                    other => panic!("no tenant limit or key was set: {other:?}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for submitter in submitters {
        admitted += submitter.await.unwrap();
    }
    let queued = first.queue_counts().await.unwrap().queued;
    assert_eq!(queued, admitted, "every admitted job is queued, no other");
    assert_eq!(queued, 98, "the cap of {CAP} let {queued} jobs in");
}

fn tenant(name: &str) -> TenantRecord {
    TenantRecord {
        name: name.into(),
        max_queued: 100,
        max_running: 100,
        requests_per_second: 100.0,
        created_at: 1,
    }
}

async fn tenants_and_their_keys(store: Store) {
    let acme = TenantRecord {
        name: "acme".into(),
        max_queued: 10,
        max_running: 2,
        requests_per_second: 5.0,
        created_at: 1,
    };
    store.upsert_tenant(&acme).await.unwrap();
    store.upsert_tenant(&tenant("beta-2")).await.unwrap();
    assert_eq!(store.get_tenant("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(store.get_tenant("nobody").await.unwrap(), None);
    assert_eq!(
        store.list_tenants().await.unwrap(),
        vec![acme, tenant("beta-2")]
    );
    let user = store
        .create_tenant_key("acme", TenantKeyScope::User, "ab12", None)
        .await
        .unwrap();
    let worker = store
        .create_tenant_key("acme", TenantKeyScope::Worker, "cd34", Some(i64::MAX))
        .await
        .unwrap();
    store
        .create_tenant_key("beta-2", TenantKeyScope::User, "ef56", None)
        .await
        .unwrap();
    let Authentication::Valid(key) = store.authenticate("ab12").await.unwrap() else {
        panic!("a fresh user key authenticates");
    };
    assert_eq!(
        (
            key.key_id.as_str(),
            &key.owner,
            key.scope,
            key.revoked,
            key.expires_at
        ),
        (
            user.as_str(),
            &KeyOwner::Tenant("acme".into()),
            KeyScope::User,
            false,
            None
        )
    );
    assert_eq!(key.worker_authority(), None, "a user key leases nothing");
    let Authentication::Valid(key) = store.authenticate("cd34").await.unwrap() else {
        panic!("a fresh worker key authenticates");
    };
    assert_eq!(
        (key.key_id.as_str(), key.scope, key.expires_at),
        (worker.as_str(), KeyScope::Worker, Some(i64::MAX))
    );
    assert_eq!(
        key.worker_authority(),
        Some(WorkerAuthority::Tenant("acme".into()))
    );
    assert_eq!(
        store.authenticate("ffff").await.unwrap(),
        Authentication::Unknown
    );
    let listed: HashSet<(String, KeyScope)> = store
        .list_keys(&KeyOwner::Tenant("acme".into()))
        .await
        .unwrap()
        .into_iter()
        .map(|key| (key.key_id, key.scope))
        .collect();
    assert_eq!(
        listed,
        HashSet::from([(user, KeyScope::User), (worker, KeyScope::Worker)]),
        "acme's keys, and no other tenant's"
    );
    assert!(store.list_keys(&KeyOwner::Farm).await.unwrap().is_empty());
}

async fn the_farm_owns_operator_and_farm_worker_keys(store: Store) {
    store.upsert_tenant(&tenant("acme")).await.unwrap();
    let operator = store.create_operator_key("op01", None).await.unwrap();
    let farm_worker = store.create_farm_worker_key("fw01", None).await.unwrap();
    store
        .create_tenant_key("acme", TenantKeyScope::Worker, "tw01", None)
        .await
        .unwrap();
    let Authentication::Valid(key) = store.authenticate("op01").await.unwrap() else {
        panic!("an operator key authenticates");
    };
    assert_eq!(
        (&key.owner, key.scope),
        (&KeyOwner::Farm, KeyScope::Operator)
    );
    assert_eq!(key.worker_authority(), Some(WorkerAuthority::Farm));
    let Authentication::Valid(key) = store.authenticate("fw01").await.unwrap() else {
        panic!("a farm worker key authenticates");
    };
    assert_eq!((&key.owner, key.scope), (&KeyOwner::Farm, KeyScope::Worker));
    assert_eq!(key.worker_authority(), Some(WorkerAuthority::Farm));
    let farm: HashSet<(String, KeyScope)> = store
        .list_keys(&KeyOwner::Farm)
        .await
        .unwrap()
        .into_iter()
        .map(|key| (key.key_id, key.scope))
        .collect();
    assert_eq!(
        farm,
        HashSet::from([
            (operator, KeyScope::Operator),
            (farm_worker, KeyScope::Worker)
        ])
    );
    // Every scope a tenant's key can have is a tenant's, never the operator's.
    for (digest, scope) in [("t1", TenantKeyScope::User), ("t2", TenantKeyScope::Worker)] {
        store
            .create_tenant_key("acme", scope, digest, None)
            .await
            .unwrap();
        let Authentication::Valid(key) = store.authenticate(digest).await.unwrap() else {
            panic!("a fresh key authenticates");
        };
        assert_eq!(key.owner, KeyOwner::Tenant("acme".into()));
        assert_ne!(key.scope, KeyScope::Operator);
    }
    // The old lookup shows the farm's keys with no tenant.
    let legacy = store.find_api_key("op01").await.unwrap().unwrap();
    assert_eq!(
        (legacy.tenant.as_str(), legacy.scope, legacy.revoked),
        ("", KeyScope::Operator, false)
    );
}

async fn keys_for_unknown_tenants_and_bad_names_are_refused(store: Store) {
    let unknown = store
        .create_tenant_key("ghost", TenantKeyScope::User, "aa01", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown, StoreError::UnknownTenant(name) if name == "ghost"),
        "{unknown}"
    );
    assert_eq!(
        unknown.to_string(),
        "no tenant `ghost`: create it first (`leanfarm tenant set ghost`)"
    );
    assert_eq!(
        store.authenticate("aa01").await.unwrap(),
        Authentication::Unknown
    );
    for bad in [
        "",
        "Acme",
        "-acme",
        "_acme",
        "ac me",
        "acme/x",
        "acmé",
        &"a".repeat(64),
    ] {
        let refused = store.upsert_tenant(&tenant(bad)).await.unwrap_err();
        assert!(
            matches!(&refused, StoreError::InvalidTenantName(name) if name == bad),
            "{bad}: {refused}"
        );
        let refused = store
            .create_tenant_key(bad, TenantKeyScope::Worker, "aa02", None)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, StoreError::InvalidTenantName(_)),
            "{bad}: {refused}"
        );
        assert!(leanfarm_store::validate_tenant_name(bad).is_err(), "{bad}");
    }
    assert!(store.list_tenants().await.unwrap().is_empty());
    for good in ["default", "a", "0day", "acme_corp-2", &"a".repeat(63)] {
        store.upsert_tenant(&tenant(good)).await.unwrap();
        store
            .create_tenant_key(good, TenantKeyScope::User, &format!("digest-{good}"), None)
            .await
            .unwrap();
    }
    assert_eq!(store.list_tenants().await.unwrap().len(), 5);
}

async fn an_expired_token_does_not_authenticate(store: Store) {
    store.upsert_tenant(&tenant("acme")).await.unwrap();
    let now = leanfarm_store::now_millis();
    store
        .create_tenant_key("acme", TenantKeyScope::User, "past", Some(now - 1))
        .await
        .unwrap();
    store
        .create_operator_key("past-operator", Some(now - 60_000))
        .await
        .unwrap();
    store
        .create_tenant_key("acme", TenantKeyScope::User, "soon", Some(now + 400))
        .await
        .unwrap();
    for digest in ["past", "past-operator"] {
        assert!(
            matches!(
                store.authenticate(digest).await.unwrap(),
                Authentication::Expired(_)
            ),
            "{digest}"
        );
        assert!(
            store.find_api_key(digest).await.unwrap().unwrap().revoked,
            "the old lookup never lets an expired token through"
        );
    }
    assert!(matches!(
        store.authenticate("soon").await.unwrap(),
        Authentication::Valid(_)
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(matches!(
        store.authenticate("soon").await.unwrap(),
        Authentication::Expired(_)
    ));
}

async fn revoke_by_key_id_or_by_token(store: Store) {
    store.upsert_tenant(&tenant("acme")).await.unwrap();
    let by_id = store
        .create_tenant_key("acme", TenantKeyScope::User, "ab12", None)
        .await
        .unwrap();
    let by_token = store.create_farm_worker_key("cd34", None).await.unwrap();
    assert!(store.revoke_api_key(&by_id).await.unwrap());
    assert!(matches!(
        store.authenticate("ab12").await.unwrap(),
        Authentication::Revoked(key) if key.key_id == by_id
    ));
    assert!(store.find_api_key("ab12").await.unwrap().unwrap().revoked);
    assert!(matches!(
        store.authenticate("cd34").await.unwrap(),
        Authentication::Valid(_)
    ));
    assert_eq!(store.revoke_token("cd34").await.unwrap(), Some(by_token));
    assert!(matches!(
        store.authenticate("cd34").await.unwrap(),
        Authentication::Revoked(_)
    ));
    assert_eq!(store.revoke_token("ffff").await.unwrap(), None);
    assert!(!store.revoke_api_key("no-such-key").await.unwrap());
    let listed = store
        .list_keys(&KeyOwner::Tenant("acme".into()))
        .await
        .unwrap();
    assert!(listed[0].revoked, "listed as revoked");
}

async fn a_tenant_worker_touches_only_its_tenants_jobs(store: Store) {
    store.upsert_tenant(&tenant("acme")).await.unwrap();
    store.upsert_tenant(&tenant("other")).await.unwrap();
    store.enqueue(jobs("o", "other", 3)).await.unwrap();
    let acme = WorkerAuthority::Tenant("acme".into());
    // Only other's jobs are queued: acme's worker gets none of them.
    assert!(store
        .claim_as(&acme, "acme-w", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .is_empty());
    store.enqueue(jobs("a", "acme", 2)).await.unwrap();
    let mine = store
        .claim_as(&acme, "acme-w", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|l| l.job_id.as_str()).collect::<Vec<_>>(),
        ["a00000", "a00001"]
    );
    // The farm's worker leases another tenant's job, with a valid lease id.
    let theirs = store
        .claim_as(
            &WorkerAuthority::Farm,
            "farm-w",
            1,
            LEASE,
            &WorkerOffer::default(),
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(theirs.tenant, "other");
    let not_yours = |error: StoreError| {
        assert!(
            matches!(&error, StoreError::NotYours { job_id, tenant } if job_id == &theirs.job_id && tenant == "acme"),
            "{error}"
        );
    };
    let pair = (theirs.job_id.clone(), theirs.lease_id.clone());
    not_yours(
        store
            .renew_as(&acme, std::slice::from_ref(&pair), LEASE)
            .await
            .unwrap_err(),
    );
    // Mixed with its own lease: nothing is renewed.
    let own = (mine[0].job_id.clone(), mine[0].lease_id.clone());
    not_yours(
        store
            .renew_as(&acme, &[own.clone(), pair.clone()], LEASE)
            .await
            .unwrap_err(),
    );
    not_yours(
        store
            .complete_as(&acme, &theirs.job_id, &theirs.lease_id, &verdict())
            .await
            .unwrap_err(),
    );
    not_yours(
        store
            .release_as(&acme, &theirs.job_id, &theirs.lease_id, "x", Duration::ZERO)
            .await
            .unwrap_err(),
    );
    let untouched = store.get(&theirs.job_id).await.unwrap().unwrap();
    assert_eq!(
        (untouched.state, untouched.result),
        (JobState::Running, None)
    );
    // The farm's worker still holds it and completes it.
    assert_eq!(
        store
            .renew_as(&WorkerAuthority::Farm, &[pair], LEASE)
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        store
            .complete_as(
                &WorkerAuthority::Farm,
                &theirs.job_id,
                &theirs.lease_id,
                &verdict()
            )
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );
    // Its own jobs: renewed, completed and released as any worker's.
    assert_eq!(store.renew_as(&acme, &[own], LEASE).await.unwrap(), [true]);
    assert_eq!(
        store
            .complete_as(&acme, &mine[0].job_id, &mine[0].lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );
    assert_eq!(
        store
            .release_as(
                &acme,
                &mine[1].job_id,
                &mine[1].lease_id,
                "sandbox failed",
                Duration::ZERO
            )
            .await
            .unwrap(),
        ReleaseOutcome::Requeued
    );
    // A job that does not exist is stale, as for any worker.
    assert_eq!(
        store
            .complete_as(&acme, "missing", "lease", &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
    // The farm's worker leases every tenant's jobs.
    let farm = store
        .claim("farm-w", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    let tenants: HashSet<&str> = farm.iter().map(|l| l.tenant.as_str()).collect();
    assert_eq!(tenants, HashSet::from(["acme", "other"]));
    assert_eq!(farm.len(), 3);
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

async fn active_workers_count_recent_claimers_and_lease_holders_once(store: Store) {
    let before = leanfarm_store::now_millis();
    assert_eq!(store.active_workers(before).await.unwrap(), 0);
    store.enqueue(jobs("a", "default", 2)).await.unwrap();
    // w1 holds a lease; w2 claimed and found nothing left; w1 claims again.
    let leased = store
        .claim("w1", 2, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leased.len(), 2);
    store
        .claim("w2", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(store.active_workers(before).await.unwrap(), 2);
    // Long after their claims, only the worker holding running leases counts.
    let later = before + 3_600_000;
    assert_eq!(store.active_workers(later).await.unwrap(), 1);
    for lease in &leased {
        store
            .complete(&lease.job_id, &lease.lease_id, &verdict())
            .await
            .unwrap();
    }
    assert_eq!(store.active_workers(later).await.unwrap(), 0);
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
            case!(active_workers_count_recent_claimers_and_lease_holders_once);
            case!(claim_renew_complete_once);
            case!(an_expired_lease_is_claimed_again_and_the_late_result_refused);
            case!(release_backs_off_then_dead_letters);
            case!(a_lease_expiring_on_the_last_attempt_dead_letters);
            case!(warm_headers_are_preferred);
            case!(a_small_tenant_is_not_starved_by_a_big_one);
            case!(a_small_tenant_is_not_starved_under_concurrent_claims);
            case!(the_next_job_due_by_the_clock_is_found);
            case!(concurrent_workers_complete_every_job_exactly_once);
            case!(tenants_and_their_keys);
            case!(the_farm_owns_operator_and_farm_worker_keys);
            case!(keys_for_unknown_tenants_and_bad_names_are_refused);
            case!(an_expired_token_does_not_authenticate);
            case!(revoke_by_key_id_or_by_token);
            case!(a_tenant_worker_touches_only_its_tenants_jobs);
            case!(a_tenant_never_runs_more_than_its_limit);
            case!(a_job_goes_only_to_a_worker_with_its_toolchain_and_project);
            case!(claims_record_what_each_worker_offers);
            case!(a_capped_enqueue_admits_a_batch_only_while_it_fits);
            case!(a_stored_verdict_owes_its_artifacts_until_they_are_written);
            case!(dead_jobs_are_retried_by_id_batch_or_all_with_a_reason);
            case!(the_queue_policy_sets_every_jobs_attempts);
            case!(leases_do_not_run_out_during_an_outage);
            case!(a_batch_is_listed_by_verdict_status_and_counted);
            case!(cancelling_ends_open_jobs_and_takes_a_running_jobs_lease);
            case!(an_idempotency_key_admits_one_batch_per_body_until_it_expires);
            case!(a_tenants_max_queued_is_checked_in_the_enqueue_transaction);
            case!(replicas_register_and_count_the_live_ones);
            case!(the_oldest_queued_job_is_the_first_submitted_still_queued);
            case!(a_batch_is_read_in_the_order_its_jobs_finished);
            case!(a_verdict_keeps_its_attestation_byte_for_byte);
            case!(retention_expires_and_deletes_only_final_jobs_past_their_cutoff);
            case!(a_prove_job_is_leased_by_one_replica_and_its_attempts_recorded_once);
        }
    };
}

/// An attestation is stored with its verdict, in the same completion, and
/// read back byte for byte by every read; a verdict stored without one has
/// none; a stale completion writes no attestation.
async fn a_verdict_keeps_its_attestation_byte_for_byte(store: Store) {
    store.enqueue(jobs("a", "t1", 2)).await.unwrap();
    let leases = store
        .claim("w", 2, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    let attestation = r#"{"statement":"{\"format\":\"x\"}","signature":"00ff"}"#;
    assert_eq!(
        store
            .complete_attested_as(
                &WorkerAuthority::Farm,
                &leases[0].job_id,
                &leases[0].lease_id,
                &verdict(),
                Some(attestation),
            )
            .await
            .unwrap(),
        CompleteOutcome::Stored
    );
    store
        .complete(&leases[1].job_id, &leases[1].lease_id, &verdict())
        .await
        .unwrap();
    let signed = store.get(&leases[0].job_id).await.unwrap().unwrap();
    assert_eq!(signed.attestation.as_deref(), Some(attestation));
    let unsigned = store.get(&leases[1].job_id).await.unwrap().unwrap();
    assert_eq!(unsigned.attestation, None);
    let listed = store
        .list(&ListFilter {
            limit: 10,
            ..ListFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|record| record.attestation.as_deref())
            .collect::<Vec<_>>(),
        [Some(attestation), None]
    );
    assert_eq!(
        store
            .complete_attested_as(
                &WorkerAuthority::Farm,
                &leases[1].job_id,
                &leases[1].lease_id,
                &verdict(),
                Some("forged"),
            )
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
    let still_unsigned = store.get(&leases[1].job_id).await.unwrap().unwrap();
    assert_eq!(still_unsigned.attestation, None);
}

/// Retention: final jobs expire by their verdict (a valid one has its own
/// cutoff), never while they are queued, running or owe artifacts; the
/// expiry is bounded, and deletion removes only final rows, once.
async fn retention_expires_and_deletes_only_final_jobs_past_their_cutoff(store: Store) {
    use leanfarm_store::RetentionCutoffs;
    let mut new_jobs = jobs("r", "t1", 5);
    new_jobs[2].max_attempts = 1;
    store.enqueue(new_jobs).await.unwrap();
    // r00000 valid, r00001 sorry, r00002 dead, r00003 running, r00004 queued.
    let sorry = Verdict::rejected(VerdictReason::new(ReasonCode::UsesSorry, "sorry"));
    for (index, verdict) in [verdict(), sorry].iter().enumerate() {
        let lease = store
            .claim("w", 1, LEASE, &WorkerOffer::default())
            .await
            .unwrap()
            .remove(0);
        assert_eq!(lease.job_id, format!("r{index:05}"));
        store
            .complete(&lease.job_id, &lease.lease_id, verdict)
            .await
            .unwrap();
    }
    kill_job(&store, "r00002").await;
    let running = store
        .claim("w", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(running[0].job_id, "r00003");
    let now = leanfarm_store::now_millis();
    let later = now + 60_000;
    let ids = |expired: Vec<leanfarm_store::ExpiredJob>| {
        expired.into_iter().map(|job| job.id).collect::<Vec<_>>()
    };
    let everything = RetentionCutoffs {
        valid_before: later,
        other_before: later,
    };
    // The two verdicts still owe their artifacts: only the dead job expires.
    assert_eq!(
        ids(store.expired_jobs(everything, 100).await.unwrap()),
        ["r00002"]
    );
    for job_id in ["r00000", "r00001"] {
        store.artifacts_written(job_id).await.unwrap();
    }
    let only_others = RetentionCutoffs {
        valid_before: now - 60_000,
        other_before: later,
    };
    let expired = store.expired_jobs(only_others, 100).await.unwrap();
    let mut expired_ids = ids(expired.clone());
    expired_ids.sort();
    assert_eq!(expired_ids, ["r00001", "r00002"]);
    let sorry_job = expired.iter().find(|job| job.id == "r00001").unwrap();
    assert_eq!(sorry_job.status.as_deref(), Some("sorry"));
    assert_eq!(sorry_job.state, JobState::Done);
    assert_eq!(
        store.expired_jobs(only_others, 1).await.unwrap().len(),
        1,
        "bounded"
    );
    let nothing = RetentionCutoffs {
        valid_before: now - 60_000,
        other_before: now - 60_000,
    };
    assert!(store.expired_jobs(nothing, 100).await.unwrap().is_empty());
    let mut all_ids = ids(store.expired_jobs(everything, 100).await.unwrap());
    all_ids.sort();
    assert_eq!(all_ids, ["r00000", "r00001", "r00002"]);
    // Asked to delete every job, it deletes only the final ones.
    let every_job: Vec<String> = (0..5).map(|index| format!("r{index:05}")).collect();
    assert_eq!(store.delete_final_jobs(&every_job).await.unwrap(), 3);
    assert_eq!(store.delete_final_jobs(&every_job).await.unwrap(), 0);
    assert!(store.get("r00000").await.unwrap().is_none());
    assert_eq!(
        store.get("r00003").await.unwrap().unwrap().state,
        JobState::Running
    );
    assert_eq!(
        store.get("r00004").await.unwrap().unwrap().state,
        JobState::Queued
    );
    let counts = store.queue_counts().await.unwrap();
    assert_eq!(
        (counts.queued, counts.running, counts.done, counts.dead),
        (1, 1, 0, 0)
    );
    // The queue still works: the running job completes, the queued one is claimed.
    store
        .complete(&running[0].job_id, &running[0].lease_id, &verdict())
        .await
        .unwrap();
    assert_eq!(
        store
            .claim("w", 1, LEASE, &WorkerOffer::default())
            .await
            .unwrap()[0]
            .job_id,
        "r00004"
    );
}

/// Lists filter by verdict status within a batch (with paging), and a
/// batch's counts show its jobs by state and its verdicts by status, for
/// its own tenant only.
async fn a_batch_is_listed_by_verdict_status_and_counted(store: Store) {
    let mut batch = jobs("b", "t1", 5);
    let mut other_batch = jobs("c", "t1", 2);
    for job in &mut other_batch {
        job.batch_id = Some("other".into());
    }
    batch.append(&mut other_batch);
    store.enqueue(batch).await.unwrap();
    let leases = store
        .claim("w1", 7, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    let sorry = Verdict::rejected(VerdictReason::new(ReasonCode::UsesSorry, "sorry"));
    // b00000, b00002, c00000 valid; b00001 sorry; b00003 running; b00004, c00001 queued again.
    for lease in &leases {
        let verdict = match lease.job_id.as_str() {
            "b00000" | "b00002" | "c00000" => Verdict::valid(),
            "b00001" => sorry.clone(),
            _ => continue,
        };
        store
            .complete(&lease.job_id, &lease.lease_id, &verdict)
            .await
            .unwrap();
    }
    for lease in leases
        .iter()
        .filter(|lease| ["b00004", "c00001"].contains(&lease.job_id.as_str()))
    {
        store
            .release(
                &lease.job_id,
                &lease.lease_id,
                "farm failure",
                Duration::ZERO,
            )
            .await
            .unwrap();
    }
    let ids = |records: Vec<leanfarm_store::JobRecord>| {
        records
            .into_iter()
            .map(|record| record.id)
            .collect::<Vec<_>>()
    };
    let valid_in_batch = ListFilter {
        tenant: Some("t1".into()),
        batch_id: Some("batch".into()),
        status: Some(CheckStatus::Valid),
        limit: 1,
        ..ListFilter::default()
    };
    assert_eq!(ids(store.list(&valid_in_batch).await.unwrap()), ["b00000"]);
    let second_page = ListFilter {
        after: Some("b00000".into()),
        ..valid_in_batch.clone()
    };
    assert_eq!(ids(store.list(&second_page).await.unwrap()), ["b00002"]);
    let third_page = ListFilter {
        after: Some("b00002".into()),
        ..valid_in_batch.clone()
    };
    assert!(store.list(&third_page).await.unwrap().is_empty());
    let sorry_anywhere = ListFilter {
        status: Some(CheckStatus::Sorry),
        limit: 10,
        ..ListFilter::default()
    };
    assert_eq!(ids(store.list(&sorry_anywhere).await.unwrap()), ["b00001"]);
    let other_tenant = ListFilter {
        tenant: Some("t2".into()),
        ..valid_in_batch.clone()
    };
    assert!(store.list(&other_tenant).await.unwrap().is_empty());

    let counts = store.batch_counts("t1", "batch").await.unwrap().unwrap();
    assert_eq!(counts.total, 5);
    assert_eq!(
        (
            counts.states.queued,
            counts.states.running,
            counts.states.done,
            counts.states.dead
        ),
        (1, 1, 3, 0)
    );
    assert_eq!(
        counts.statuses.into_iter().collect::<Vec<_>>(),
        [(CheckStatus::Valid, 2), (CheckStatus::Sorry, 1)]
    );
    assert!(!store
        .batch_counts("t1", "other")
        .await
        .unwrap()
        .unwrap()
        .all_final());
    assert_eq!(store.batch_counts("t2", "batch").await.unwrap(), None);
    assert_eq!(store.batch_counts("t1", "missing").await.unwrap(), None);
}

/// Cancelling a batch ends its queued and running jobs with the verdict
/// given, in one go: the running job's lease is no longer held (its
/// worker's renewal says so), its late result is stale, and the tenant's
/// open jobs fall; final jobs and other tenants' jobs are untouched.
async fn cancelling_ends_open_jobs_and_takes_a_running_jobs_lease(store: Store) {
    let mut batch = jobs("a", "t1", 3);
    let mut foreign = jobs("z", "t2", 1);
    for job in &mut foreign {
        job.batch_id = Some("batch".into());
    }
    batch.append(&mut foreign);
    store.enqueue(batch).await.unwrap();
    // a00000 is done, a00001 running, a00002 queued.
    let leases = store
        .claim_as(
            &WorkerAuthority::Tenant("t1".into()),
            "w1",
            2,
            LEASE,
            &WorkerOffer::default(),
        )
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);
    store
        .complete(&leases[0].job_id, &leases[0].lease_id, &verdict())
        .await
        .unwrap();
    let cancelled = Verdict::rejected(VerdictReason::new(ReasonCode::Cancelled, "cancelled"));
    let cancellation = store
        .cancel("t1", &CancelScope::Batch("batch".into()), &cancelled)
        .await
        .unwrap();
    assert_eq!(cancellation.job_ids, ["a00001", "a00002"]);
    assert_eq!((cancellation.queued, cancellation.running), (1, 1));
    for id in ["a00001", "a00002"] {
        let record = store.get(id).await.unwrap().unwrap();
        assert_eq!(record.state, JobState::Done);
        assert_eq!(record.result.unwrap().status(), CheckStatus::ServerError);
        assert!(record.finished_at.is_some());
    }
    assert!(store
        .get("a00000")
        .await
        .unwrap()
        .unwrap()
        .result
        .unwrap()
        .is_valid());
    assert_eq!(
        store.get("z00000").await.unwrap().unwrap().state,
        JobState::Queued
    );
    let running = &leases[1];
    assert_eq!(
        store
            .renew(&[(running.job_id.clone(), running.lease_id.clone())], LEASE)
            .await
            .unwrap(),
        [false]
    );
    assert_eq!(
        store
            .complete(&running.job_id, &running.lease_id, &verdict())
            .await
            .unwrap(),
        CompleteOutcome::Stale
    );
    assert_eq!(store.tenant_open_jobs("t1").await.unwrap(), 0);
    assert_eq!(store.tenant_open_jobs("t2").await.unwrap(), 1);
    // Nothing is open any more: a second cancellation changes nothing.
    let again = store
        .cancel("t1", &CancelScope::Job("a00002".into()), &cancelled)
        .await
        .unwrap();
    assert!(again.job_ids.is_empty());
    // Another tenant cannot cancel t2's job, by job or by batch.
    let foreign = store
        .cancel("t1", &CancelScope::Job("z00000".into()), &cancelled)
        .await
        .unwrap();
    assert!(foreign.job_ids.is_empty());
    // A queued job cancelled alone is not leased any more.
    let only = store
        .cancel("t2", &CancelScope::Job("z00000".into()), &cancelled)
        .await
        .unwrap();
    assert_eq!(only.job_ids, ["z00000"]);
    assert!(store
        .claim("w2", 10, LEASE, &WorkerOffer::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.queue_counts().await.unwrap().queued, 0);
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

/// A store on a PostgreSQL database of its own, dropped with the guard.
async fn open_postgres() -> (Store, TestDatabase) {
    let database = TestDatabase::create("store_suite");
    (Store::open(&database.url).await.unwrap(), database)
}

#[tokio::test]
async fn sqlite_concurrent_batches_never_take_the_queue_past_its_cap() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let first = Store::open(&url).await.unwrap();
    let second = Store::open(&url).await.unwrap();
    concurrent_batches_never_take_the_queue_past_its_cap(first, second).await;
}

#[tokio::test]
async fn postgres_concurrent_batches_never_take_the_queue_past_its_cap() {
    let database = TestDatabase::create("queue_cap_race");
    let first = Store::open(&database.url).await.unwrap();
    let second = Store::open(&database.url).await.unwrap();
    concurrent_batches_never_take_the_queue_past_its_cap(first, second).await;
}

/// Keys as the schema before scoped tokens held them: a farm-wide admin, a
/// worker of a made-up tenant, a user of a tenant with no record, and a
/// revoked user key.
const KEYS_BEFORE_SCOPES: &str =
    "INSERT INTO api_keys (key_id, tenant, scope, secret_sha256, revoked, created_at) VALUES
    ('k-admin', 'acme', 'admin', 'd-admin', FALSE, 1),
    ('k-worker', 'fleet', 'worker', 'd-worker', FALSE, 2),
    ('k-user', 'acme', 'user', 'd-user', FALSE, 3),
    ('k-revoked', 'acme', 'user', 'd-revoked', TRUE, 4)";

/// After the migration: admin is the farm's operator, the worker a farm
/// worker, the user key still acme's, the revoked key still revoked.
async fn keys_survive_the_scoped_tokens_migration(store: &Store) {
    let valid = |authentication: Authentication| match authentication {
        Authentication::Valid(key) => (key.key_id, key.owner, key.scope),
        other => panic!("still valid after the migration: {other:?}"),
    };
    assert_eq!(
        valid(store.authenticate("d-admin").await.unwrap()),
        ("k-admin".into(), KeyOwner::Farm, KeyScope::Operator)
    );
    assert_eq!(
        valid(store.authenticate("d-worker").await.unwrap()),
        ("k-worker".into(), KeyOwner::Farm, KeyScope::Worker)
    );
    assert_eq!(
        valid(store.authenticate("d-user").await.unwrap()),
        (
            "k-user".into(),
            KeyOwner::Tenant("acme".into()),
            KeyScope::User
        )
    );
    assert!(matches!(
        store.authenticate("d-revoked").await.unwrap(),
        Authentication::Revoked(key) if key.key_id == "k-revoked"
    ));
    assert_eq!(store.list_keys(&KeyOwner::Farm).await.unwrap().len(), 2);
}

#[tokio::test]
async fn sqlite_keys_survive_the_scoped_tokens_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(concat!(
                include_str!("../migrations/sqlite/0001_init.sql"),
                include_str!("../migrations/sqlite/0002_job_requirements.sql"),
                include_str!("../migrations/sqlite/0003_workers.sql"),
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);"
            ))
            .unwrap();
        connection.execute_batch(KEYS_BEFORE_SCOPES).unwrap();
    }
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    keys_survive_the_scoped_tokens_migration(&store).await;
}

#[tokio::test]
async fn postgres_keys_survive_the_scoped_tokens_migration() {
    let database = TestDatabase::create("scoped_tokens_migration");
    let url = database.url.clone();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(concat!(
            include_str!("../migrations/postgres/0001_init.sql"),
            include_str!("../migrations/postgres/0002_job_requirements.sql"),
            include_str!("../migrations/postgres/0003_workers.sql"),
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);"
        ))
        .await
        .unwrap();
    client.batch_execute(KEYS_BEFORE_SCOPES).await.unwrap();
    drop(client);
    let store = Store::open(&url).await.unwrap();
    keys_survive_the_scoped_tokens_migration(&store).await;
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

/// A batch of `count` jobs of `tenant`, all in the batch `batch`.
fn batch_of(batch: &str, tenant: &str, count: usize) -> Vec<NewJob> {
    jobs(&format!("{batch}-"), tenant, count)
        .into_iter()
        .map(|mut job| {
            job.batch_id = Some(batch.to_string());
            job
        })
        .collect()
}

fn key(key: &str, body: &str) -> IdempotencyKey {
    IdempotencyKey {
        key: key.to_string(),
        request_sha256: body.to_string(),
        keep_for: Duration::from_secs(3600),
    }
}

async fn an_idempotency_key_admits_one_batch_per_body_until_it_expires(store: Store) {
    let first = store
        .admit(batch_of("b1", "t1", 3), 100, Some(&key("k", "body-1")))
        .await
        .unwrap();
    assert_eq!(first, Admission::Enqueued);
    // The same key and body: the first batch again, nothing written.
    let again = store
        .admit(batch_of("b2", "t1", 3), 100, Some(&key("k", "body-1")))
        .await
        .unwrap();
    assert_eq!(
        again,
        Admission::Replayed {
            batch_id: "b1".into(),
            job_ids: vec!["b1-00000".into(), "b1-00001".into(), "b1-00002".into()],
        }
    );
    assert!(store.get("b2-00000").await.unwrap().is_none());
    assert_eq!(store.queue_counts().await.unwrap().queued, 3);
    // The same key with another body is refused, and writes nothing.
    let reused = store
        .admit(batch_of("b3", "t1", 1), 100, Some(&key("k", "body-2")))
        .await
        .unwrap();
    assert_eq!(reused, Admission::KeyReused);
    assert!(store.get("b3-00000").await.unwrap().is_none());
    // Keys are per tenant: another tenant's same key is another key.
    let other_tenant = store
        .admit(batch_of("b4", "t2", 1), 100, Some(&key("k", "body-2")))
        .await
        .unwrap();
    assert_eq!(other_tenant, Admission::Enqueued);
    // A replay is answered even when the queue is now full.
    let full_queue = store
        .admit(batch_of("b5", "t1", 3), 4, Some(&key("k", "body-1")))
        .await
        .unwrap();
    assert!(matches!(full_queue, Admission::Replayed { .. }));
    // A refused admission records no key: the retry that fits is admitted.
    let refused = store
        .admit(batch_of("b6", "t1", 3), 4, Some(&key("k2", "body-3")))
        .await
        .unwrap();
    assert!(matches!(refused, Admission::QueueFull { .. }));
    let fits = store
        .admit(batch_of("b7", "t1", 1), 100, Some(&key("k2", "body-3")))
        .await
        .unwrap();
    assert_eq!(fits, Admission::Enqueued);
    // An expired key admits a new batch.
    let short = IdempotencyKey {
        keep_for: Duration::ZERO,
        ..key("k3", "body-4")
    };
    assert_eq!(
        store
            .admit(batch_of("b8", "t1", 1), 100, Some(&short))
            .await
            .unwrap(),
        Admission::Enqueued
    );
    assert_eq!(
        store
            .admit(batch_of("b9", "t1", 1), 100, Some(&short))
            .await
            .unwrap(),
        Admission::Enqueued
    );
    assert!(store.get("b9-00000").await.unwrap().is_some());
}

async fn a_tenants_max_queued_is_checked_in_the_enqueue_transaction(store: Store) {
    store
        .upsert_tenant(&TenantRecord {
            max_queued: 5,
            ..tenant("capped")
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue_within(jobs("a", "capped", 3), 100)
            .await
            .unwrap(),
        Admission::Enqueued
    );
    let full = Admission::TenantQueueFull {
        tenant: "capped".into(),
        open: 3,
        limit: 5,
    };
    assert_eq!(
        store
            .enqueue_within(jobs("b", "capped", 3), 100)
            .await
            .unwrap(),
        full
    );
    assert!(store.get("b00000").await.unwrap().is_none());
    // Running jobs are open too: claiming makes no room.
    let leases = store
        .claim("w", 2, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(
        store
            .enqueue_within(jobs("c", "capped", 3), 100)
            .await
            .unwrap(),
        full
    );
    // A finished job does.
    store
        .complete(&leases[0].job_id, &leases[0].lease_id, &verdict())
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue_within(jobs("d", "capped", 3), 100)
            .await
            .unwrap(),
        Admission::Enqueued
    );
    assert_eq!(store.tenant_open_jobs("capped").await.unwrap(), 5);
    // A tenant without a record has no limit of its own.
    assert_eq!(
        store
            .enqueue_within(jobs("e", "free", 50), 100)
            .await
            .unwrap(),
        Admission::Enqueued
    );
}

async fn the_oldest_queued_job_is_the_first_submitted_still_queued(store: Store) {
    assert_eq!(store.oldest_queued_at().await.unwrap(), None);
    let before = leanfarm_store::now_millis();
    store.enqueue(jobs("first", "t1", 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.enqueue(jobs("second", "t1", 1)).await.unwrap();
    let first = store.get("first00000").await.unwrap().unwrap();
    let second = store.get("second00000").await.unwrap().unwrap();
    assert!(first.created_at >= before && second.created_at > first.created_at);
    assert_eq!(
        store.oldest_queued_at().await.unwrap(),
        Some(first.created_at)
    );
    // Once the first is leased it is no longer waiting: the second is oldest.
    let leases = store
        .claim("w", 1, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    assert_eq!(leases[0].job_id, "first00000");
    assert_eq!(
        store.oldest_queued_at().await.unwrap(),
        Some(second.created_at)
    );
}

async fn replicas_register_and_count_the_live_ones(store: Store) {
    let live = Duration::from_secs(30);
    assert_eq!(store.replica_heartbeat("r1", live).await.unwrap(), 1);
    assert_eq!(store.replica_heartbeat("r2", live).await.unwrap(), 2);
    assert_eq!(store.replica_heartbeat("r1", live).await.unwrap(), 2);
    store.replica_leaving("r2").await.unwrap();
    assert_eq!(store.replica_heartbeat("r1", live).await.unwrap(), 1);
    // A replica silent for longer than the window no longer counts.
    store.replica_heartbeat("r3", live).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        store
            .replica_heartbeat("r1", Duration::from_millis(20))
            .await
            .unwrap(),
        1
    );
}

/// Two stores on one database (two replicas), eight submitters racing
/// with one idempotency key and one body: one batch is admitted, every
/// other submission gets that batch back, and no job is written twice.
/// Then eight submitters race batches of 3 of a tenant whose `max_queued`
/// is 20: exactly 18 jobs get in.
async fn racing_submissions_keep_keys_and_tenant_limits(first: Store, second: Store) {
    let mut racers = Vec::new();
    for racer in 0..8 {
        let store = if racer % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        racers.push(tokio::spawn(async move {
            store
                .admit(
                    batch_of(&format!("race{racer}"), "t1", 4),
                    1000,
                    Some(&key("retry", "same-body")),
                )
                .await
                .unwrap()
        }));
    }
    let mut outcomes = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    let admitted = outcomes
        .iter()
        .filter(|outcome| **outcome == Admission::Enqueued)
        .count();
    assert_eq!(admitted, 1, "{outcomes:?}");
    let replayed: HashSet<_> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Admission::Replayed { batch_id, job_ids } => Some((batch_id.clone(), job_ids.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(replayed.len(), 1, "every retry names the one batch");
    assert_eq!(first.queue_counts().await.unwrap().queued, 4);

    first
        .upsert_tenant(&TenantRecord {
            max_queued: 20,
            ..tenant("capped")
        })
        .await
        .unwrap();
    let mut submitters = Vec::new();
    for submitter in 0..8 {
        let store = if submitter % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        submitters.push(tokio::spawn(async move {
            let mut admitted = 0u64;
            for attempt in 0..3 {
                let prefix = format!("s{submitter}a{attempt}-");
                match store
                    .enqueue_within(jobs(&prefix, "capped", 3), 1000)
                    .await
                    .unwrap()
                {
                    Admission::Enqueued => admitted += 3,
                    Admission::TenantQueueFull { open, limit, .. } => {
                        assert_eq!(limit, 20);
                        assert!(open + 3 > 20, "refused with room: {open}");
                    }
                    other => panic!("unexpected admission {other:?}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for submitter in submitters {
        admitted += submitter.await.unwrap();
    }
    let open = first.tenant_open_jobs("capped").await.unwrap();
    assert_eq!(open, admitted);
    assert_eq!(open, 18, "a max_queued of 20 let {open} jobs in");
}

#[tokio::test]
async fn sqlite_racing_submissions_keep_keys_and_tenant_limits() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let first = Store::open(&url).await.unwrap();
    let second = Store::open(&url).await.unwrap();
    racing_submissions_keep_keys_and_tenant_limits(first, second).await;
}

#[tokio::test]
async fn postgres_racing_submissions_keep_keys_and_tenant_limits() {
    let database = TestDatabase::create("submission_race");
    let first = Store::open(&database.url).await.unwrap();
    let second = Store::open(&database.url).await.unwrap();
    racing_submissions_keep_keys_and_tenant_limits(first, second).await;
}

async fn a_batch_is_read_in_the_order_its_jobs_finished(store: Store) {
    store.enqueue(batch_of("b", "t1", 4)).await.unwrap();
    store.enqueue(batch_of("other", "t1", 1)).await.unwrap();
    // Finish them in the order 2, 0, 3 (1 stays open), a few ms apart.
    let mut leases = store
        .claim("w", 5, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    leases.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    for index in [2, 0, 3, 4] {
        let lease = &leases[index];
        store
            .complete(&lease.job_id, &lease.lease_id, &verdict())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let read = |after: Option<FinishedCursor>, finished_by: Option<i64>, limit: usize| {
        let store = store.clone();
        async move {
            store
                .batch_finished("t1", "b", after.as_ref(), finished_by, limit)
                .await
                .unwrap()
        }
    };
    let all = read(None, None, 100).await;
    let ids: Vec<&str> = all.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, ["b-00002", "b-00000", "b-00003"]);
    // After a place, only what follows it; at most `limit`.
    let cursor = FinishedCursor {
        finished_at: all[0].finished_at.unwrap(),
        job_id: all[0].id.clone(),
    };
    let rest = read(Some(cursor.clone()), None, 1).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, "b-00000");
    // Only those finished by a time.
    let settled = read(None, Some(all[1].finished_at.unwrap()), 100).await;
    assert_eq!(settled.len(), 2);
    // Another tenant reads nothing of it.
    assert!(store
        .batch_finished("t2", "b", None, None, 100)
        .await
        .unwrap()
        .is_empty());
}

/// A prove job: created leased, taken by another replica only once its
/// lease ran out, written only by its lease holder; an attempt's slot is
/// recorded once; a tenant's daily usage adds up.
async fn a_prove_job_is_leased_by_one_replica_and_its_attempts_recorded_once(store: Store) {
    use leanfarm_store::{ProveAttemptRow, ProveEnd, ProveJobRow};
    let now = leanfarm_store::now_millis();
    let job = ProveJobRow {
        id: "p1".into(),
        tenant: "t1".into(),
        state: "running".into(),
        request: "{}".into(),
        usage: "{}".into(),
        proof: None,
        reason: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
    };
    store
        .create_prove_job(&job, "replica-a", now + 60_000)
        .await
        .unwrap();
    // Leased to replica-a: nobody else takes it.
    assert!(store
        .lease_prove_jobs("replica-b", now, now + 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .renew_prove_job("p1", "replica-a", now + 1, Some("{\"tokens\":1}"))
        .await
        .unwrap());
    // Its lease ran out: replica-b takes it, and replica-a can no longer write.
    let taken = store
        .lease_prove_jobs("replica-b", now + 10, now + 60_000, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].usage, "{\"tokens\":1}");
    assert!(!store
        .renew_prove_job("p1", "replica-a", now + 60_000, None)
        .await
        .unwrap());
    let attempt = |check_id: &str| ProveAttemptRow {
        job_id: "p1".into(),
        round: 1,
        candidate: 2,
        check_id: check_id.into(),
        attempt: format!("{{\"check_id\":\"{check_id}\"}}"),
    };
    let (first, inserted) = store.insert_prove_attempt(&attempt("c1")).await.unwrap();
    assert!(inserted);
    let (again, inserted) = store.insert_prove_attempt(&attempt("c2")).await.unwrap();
    assert!(!inserted);
    assert_eq!(again, first);
    let mut updated = first.clone();
    updated.attempt = "{\"done\":true}".into();
    store.update_prove_attempt(&updated).await.unwrap();
    assert_eq!(store.prove_attempts("p1").await.unwrap(), vec![updated]);
    let end = ProveEnd {
        state: "proved".into(),
        proof: Some("by simp".into()),
        reason: None,
        usage: "{}".into(),
    };
    assert!(!store
        .finish_prove_job("p1", "replica-a", &end)
        .await
        .unwrap());
    assert!(store
        .finish_prove_job("p1", "replica-b", &end)
        .await
        .unwrap());
    let stored = store.get_prove_job("p1").await.unwrap().unwrap();
    assert_eq!(
        (stored.state.as_str(), stored.proof.as_deref()),
        ("proved", Some("by simp"))
    );
    assert_eq!(
        store.cancel_prove_job("t1", "p1", "late").await.unwrap(),
        Some(false)
    );
    assert_eq!(
        store
            .cancel_prove_job("t2", "p1", "not yours")
            .await
            .unwrap(),
        None
    );
    let day = leanfarm_store::day_of(now);
    store
        .add_tenant_model_usage("t1", day, 100, 0.5)
        .await
        .unwrap();
    store
        .add_tenant_model_usage("t1", day, 20, 0.25)
        .await
        .unwrap();
    assert_eq!(
        store.tenant_model_usage("t1", day).await.unwrap(),
        (120, 0.75)
    );
    assert_eq!(
        store.tenant_model_usage("t1", day + 1).await.unwrap(),
        (0, 0.0)
    );
}

/// A store of one process hears of work another process makes runnable:
/// an enqueue and a release back to the queue each notify the listeners of
/// every store on the database; SQLite has none.
#[tokio::test]
async fn postgres_work_notifications_reach_other_processes() {
    let database = TestDatabase::create("work_notifications");
    let replica_a = Store::open(&database.url).await.unwrap();
    let replica_b = Store::open(&database.url).await.unwrap();
    let mut listener = replica_b.work_notifications().await.unwrap().unwrap();
    replica_a.enqueue(jobs("n", "t1", 2)).await.unwrap();
    heard(&mut listener).await;
    let leases = replica_a
        .claim("w", 2, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    replica_a
        .release(
            &leases[0].job_id,
            &leases[0].lease_id,
            "farm failure",
            Duration::ZERO,
        )
        .await
        .unwrap();
    heard(&mut listener).await;

    let (sqlite, _dir) = open_sqlite().await;
    assert!(sqlite.work_notifications().await.unwrap().is_none());
}

/// The next notification, within 30 s.
async fn heard(listener: &mut leanfarm_store::WorkNotifications) {
    tokio::time::timeout(Duration::from_secs(30), listener.next())
        .await
        .expect("a notification")
        .unwrap();
}

/// `next_due_after` names the first time after a point at which the clock
/// alone makes a job runnable: a release's backoff ending, a lease running out.
async fn the_next_job_due_by_the_clock_is_found(store: Store) {
    store.enqueue(jobs("d", "t1", 2)).await.unwrap();
    let leases = store
        .claim("w", 2, LEASE, &WorkerOffer::default())
        .await
        .unwrap();
    let now = leanfarm_store::now_millis();
    store
        .release(
            &leases[0].job_id,
            &leases[0].lease_id,
            "farm failure",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let due = store.next_due_after(now).await.unwrap().unwrap();
    assert!((now + 5_000..now + 6_000).contains(&due), "{due} vs {now}");
    // The running job's lease is due at its expiry (later than the backoff).
    let lease_due = store.next_due_after(due).await.unwrap().unwrap();
    assert_eq!(lease_due, leases[1].expires_at + 1);
    assert_eq!(store.next_due_after(lease_due).await.unwrap(), None);
}

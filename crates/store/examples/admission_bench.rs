//! Admissions per second on each backend, as the API admits submissions:
//! batches of 10 jobs from 8 concurrent submitters through
//! `enqueue_within` (the farm's cap and the tenant's `max_queued`, checked
//! in the enqueue transaction), then the same through `admit` with an
//! idempotency key per batch, then retries of those same keys (nothing
//! written, the batch read back).
//!
//! cargo run --release -p leanfarm-store --example admission_bench -- [BATCHES] [POSTGRES_URL]
//!
//! POSTGRES_URL (default: the local server) must allow creating a database;
//! the benchmark creates one and drops it afterwards.

use leanfarm_core::{CheckRequest, Policy};
use leanfarm_store::{Admission, IdempotencyKey, NewJob, Store, TenantRecord};
use std::time::{Duration, Instant};

const BATCH: usize = 10;
const SUBMITTERS: usize = 8;

fn batch(run: &str, submitter: usize, index: usize) -> Vec<NewJob> {
    let batch_id = format!("{run}-{submitter}-{index}");
    (0..BATCH)
        .map(|job| NewJob {
            id: format!("{batch_id}-{job}"),
            tenant: format!("tenant{}", submitter % 4),
            batch_id: Some(batch_id.clone()),
            request: CheckRequest {
                custom_id: None,
                code: "theorem t : True := trivial".into(),
                timeout_seconds: 60.0,
                policy: Policy::default(),
                infotree: None,
                trace_context: None,
            },
            header_key: "import Mathlib".into(),
            max_attempts: 3,
            toolchain: None,
            project: None,
        })
        .collect()
}

/// Batches admitted per second by `SUBMITTERS` tasks, `batches` in all.
async fn admissions(store: &Store, run: &'static str, batches: usize, keyed: bool) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for submitter in 0..SUBMITTERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for index in 0..batches / SUBMITTERS {
                let key = IdempotencyKey {
                    key: format!("key-{submitter}-{index}"),
                    request_sha256: "digest".into(),
                    keep_for: Duration::from_secs(3600),
                };
                let jobs = batch(run, submitter, index);
                let admission = store
                    .admit(jobs, u64::MAX >> 1, keyed.then_some(&key))
                    .await
                    .expect("admit");
                assert!(
                    matches!(admission, Admission::Enqueued | Admission::Replayed { .. }),
                    "{admission:?}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("submitter");
    }
    batches as f64 / started.elapsed().as_secs_f64()
}

async fn run(store: Store, label: &str, batches: usize) {
    for tenant in 0..4 {
        store
            .upsert_tenant(&TenantRecord {
                name: format!("tenant{tenant}"),
                max_queued: 10_000_000,
                max_running: 100,
                requests_per_second: 1000.0,
                created_at: 0,
            })
            .await
            .expect("tenant");
    }
    let capped = admissions(&store, "capped", batches, false).await;
    let keyed = admissions(&store, "keyed", batches, true).await;
    // The same keys again: every one is a retry of an admitted batch.
    let retried = admissions(&store, "retried", batches, true).await;
    println!(
        "{label:<9} {:>16.0} {:>16.0} {:>16.0}",
        capped, keyed, retried
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let batches: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let admin_url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    println!(
        "{batches} batches of {BATCH} jobs per column, {SUBMITTERS} concurrent submitters, 4 tenants with a max_queued"
    );
    println!(
        "{:<9} {:>16} {:>16} {:>16}",
        "backend", "capped batch/s", "keyed batch/s", "retried batch/s"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .expect("sqlite");
    run(sqlite, "sqlite", batches).await;

    let (admin, connection) = match tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
    {
        Ok(pair) => pair,
        Err(error) => {
            println!("postgres  unavailable at {admin_url}: {error}");
            return;
        }
    };
    tokio::spawn(connection);
    let name = format!("leanfarm_admission_bench_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("a database in the url");
    let postgres = Store::open(&format!("{base}/{name}"))
        .await
        .expect("postgres");
    run(postgres.clone(), "postgres", batches).await;
    drop(postgres);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");
}

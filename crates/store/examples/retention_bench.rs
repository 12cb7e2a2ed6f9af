//! Retention's store side on each backend: how fast expired final jobs are
//! found and deleted, in batches as `leanfarm gc` and the sweep of `serve`
//! do (artifact deletion, which depends on the object store, is not
//! counted here).
//!
//! cargo run --release -p leanfarm-store --example retention_bench -- [JOBS] [BATCH] [POSTGRES_URL]
//!
//! POSTGRES_URL (default: the local server) must allow creating a database;
//! the benchmark creates one and drops it afterwards.

use leanfarm_core::{CheckRequest, Policy, Verdict};
use leanfarm_store::{NewJob, RetentionCutoffs, Store, WorkerOffer};
use std::time::{Duration, Instant};

fn new_jobs(count: usize) -> Vec<NewJob> {
    (0..count)
        .map(|i| NewJob {
            id: format!("j{i:08}"),
            tenant: format!("tenant{}", i % 4),
            batch_id: None,
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

async fn run(store: Store, label: &str, jobs: usize, batch: usize) {
    for chunk in new_jobs(jobs).chunks(500) {
        store.enqueue(chunk.to_vec()).await.expect("enqueue");
    }
    let verdict = Verdict::valid();
    loop {
        let leases = store
            .claim("w", 256, Duration::from_secs(60), &WorkerOffer::default())
            .await
            .expect("claim");
        if leases.is_empty() {
            break;
        }
        for lease in leases {
            store
                .complete(&lease.job_id, &lease.lease_id, &verdict)
                .await
                .expect("complete");
            store
                .artifacts_written(&lease.job_id)
                .await
                .expect("artifacts written");
        }
    }
    let later = leanfarm_store::now_millis() + 60_000;
    let cutoffs = RetentionCutoffs {
        valid_before: later,
        other_before: later,
    };
    let started = Instant::now();
    let mut deleted = 0u64;
    loop {
        let expired = store.expired_jobs(cutoffs, batch).await.expect("expired");
        let ids: Vec<String> = expired.into_iter().map(|job| job.id).collect();
        deleted += store.delete_final_jobs(&ids).await.expect("delete");
        if ids.len() < batch {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(deleted, jobs as u64);
    println!(
        "{label}: {jobs} expired jobs deleted in batches of {batch}: {:.0} jobs/s ({seconds:.2} s)",
        jobs as f64 / seconds
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args
        .next()
        .map_or(20_000, |text| text.parse().expect("JOBS"));
    let batch: usize = args.next().map_or(500, |text| text.parse().expect("BATCH"));
    let admin = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_string());

    let directory = std::env::temp_dir().join(format!("retention-bench-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let sqlite = Store::open(&format!(
        "sqlite://{}",
        directory.join("bench.db").display()
    ))
    .await
    .expect("sqlite");
    run(sqlite, "sqlite", jobs, batch).await;
    let _ = std::fs::remove_dir_all(&directory);

    let (server, _) = admin.rsplit_once('/').expect("a database in the url");
    let name = format!("leanfarm_retention_bench_{}", std::process::id());
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to postgres");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let postgres = Store::open(&format!("{server}/{name}"))
        .await
        .expect("postgres");
    run(postgres, "postgres", jobs, batch).await;
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");
}

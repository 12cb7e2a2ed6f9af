//! Queue throughput on each backend: enqueue, then claim and complete with
//! 10, 100 and 1,000 concurrent workers (tasks sharing one `Store`, as the
//! workers of one server do).
//!
//! cargo run --release -p leanfarm-store --example queue_bench -- [JOBS] [POSTGRES_URL]
//!
//! POSTGRES_URL (default: the local server) must allow creating a database;
//! the benchmark creates one and drops it afterwards.

use leanfarm_core::{CheckRequest, Policy, Verdict};
use leanfarm_store::{NewJob, Store, WorkerOffer};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn new_jobs(run: usize, count: usize) -> Vec<NewJob> {
    (0..count)
        .map(|i| NewJob {
            id: format!("r{run:02}-{i:08}"),
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
            header_key: format!("import Mathlib\nimport H{}", i % 8),
            max_attempts: 3,
            toolchain: None,
            project: None,
        })
        .collect()
}

async fn run(store: Store, label: &str, jobs: usize) {
    let verdict = Arc::new(Verdict::valid());
    for (run, workers) in [10usize, 100, 1000].into_iter().enumerate() {
        let started = Instant::now();
        for chunk in new_jobs(run, jobs).chunks(100) {
            store.enqueue(chunk.to_vec()).await.expect("enqueue");
        }
        let enqueue_rate = jobs as f64 / started.elapsed().as_secs_f64();

        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..workers {
            let (store, verdict) = (store.clone(), Arc::clone(&verdict));
            tasks.push(tokio::spawn(async move {
                let name = format!("w{worker}");
                let mut done = 0usize;
                loop {
                    let leases = store
                        .claim(&name, 1, Duration::from_secs(60), &WorkerOffer::default())
                        .await
                        .expect("claim");
                    let Some(lease) = leases.into_iter().next() else {
                        return done;
                    };
                    store
                        .complete(&lease.job_id, &lease.lease_id, &verdict)
                        .await
                        .expect("complete");
                    done += 1;
                }
            }));
        }
        let mut completed = 0;
        for task in tasks {
            completed += task.await.expect("worker");
        }
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(completed, jobs, "every job completed exactly once");
        println!(
            "{label:<9} {workers:>7} {enqueue_rate:>16.0} {:>18.0} {:>18.0}",
            jobs as f64 / elapsed,
            2.0 * jobs as f64 / elapsed
        );
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(3000);
    let admin_url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    // e.g. `sslmode=require`: the store's connections to the bench
    // database then use TLS (the admin connection stays plain).
    let store_parameters = args.next();
    println!("{jobs} jobs per run, claim 1 + complete per job, 4 tenants");
    println!(
        "{:<9} {:>7} {:>16} {:>18} {:>18}",
        "backend", "workers", "enqueue jobs/s", "claim+complete/s", "queue ops/s"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Store::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .expect("sqlite");
    run(sqlite, "sqlite", jobs).await;

    let (admin, connection) = match tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await
    {
        Ok(pair) => pair,
        Err(error) => {
            println!("postgres  unavailable at {admin_url}: {error}");
            return;
        }
    };
    tokio::spawn(connection);
    let name = format!("leanfarm_bench_{}", std::process::id());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("a database in the url");
    let store_url = match &store_parameters {
        Some(parameters) => format!("{base}/{name}?{parameters}"),
        None => format!("{base}/{name}"),
    };
    let postgres = Store::open(&store_url).await.expect("postgres");
    let label = if store_parameters.is_some() {
        "postgres+"
    } else {
        "postgres"
    };
    run(postgres.clone(), label, jobs).await;
    drop(postgres);
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");
}

//! What the server's integration tests share: an in-memory farm state and a
//! farm started on it without in-process workers, whose jobs wait for the
//! test's own worker.

#![allow(dead_code)]

use leanfarm_server::auth::{new_token, token_digest};
use leanfarm_server::{AppState, Farm, Limits, WorkerConfig};
use leanfarm_store::{ArtifactStore, Store};
use std::sync::Arc;
use std::time::Duration;

/// A state on an in-memory SQLite store and in-memory artifacts, with the
/// default limits and no token required.
pub async fn memory_state() -> Arc<AppState> {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let artifacts = ArtifactStore::open("memory://").unwrap();
    AppState::new(store, artifacts, None, Limits::default(), false)
}

/// The worker settings a farm without a driver is started with (it runs
/// no in-process worker, so they are never used to check).
pub fn idle_worker_config() -> WorkerConfig {
    WorkerConfig {
        worker_id: "unused".into(),
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(250),
        retry_backoff: Duration::from_secs(1),
        drain_deadline: Duration::from_secs(1),
    }
}

/// A farm on `state` listening on a free port, without in-process workers.
pub async fn start_without_workers(state: &Arc<AppState>) -> Farm {
    Farm::start(
        Arc::clone(state),
        "127.0.0.1:0".parse().unwrap(),
        idle_worker_config(),
    )
    .await
    .unwrap()
}

/// A new token of a farm worker (it may lease any tenant's jobs), stored.
pub async fn farm_worker_token(state: &AppState) -> String {
    let token = new_token();
    state
        .store
        .create_farm_worker_key(&token_digest(&token), None)
        .await
        .unwrap();
    token
}

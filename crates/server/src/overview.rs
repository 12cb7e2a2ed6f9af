//! Read-only summaries for dashboards such as the web console:
//! `GET /v1/overview` (verdicts per time bucket, open jobs, and, for those
//! allowed to see the whole farm, the queue, workers, this replica's REPL
//! pool and every tenant's usage against its limits) and `GET /v1/batches`
//! (a tenant's latest batches with their progress).
//!
//! The same tenant rules as every other route: a tenant's token sees only
//! that tenant's work; the farm's queue and workers follow the rule of the
//! operational endpoints (`auth::operational`); other tenants' usage is for
//! an operator token only. Nothing here writes.

use crate::auth::{self, Reader};
use crate::error::ApiError;
use crate::submit::{workers_seen_lately, WORKER_SEEN_WINDOW};
use crate::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use leanfarm_store::{
    now_millis, BatchCounts, BatchListFilter, QueueCounts, UnixMillis, WorkerSeen,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The longest window `GET /v1/overview` counts verdicts over, in seconds.
const MAX_WINDOW_SECONDS: u64 = 86_400;
/// The most buckets one overview holds.
const MAX_BUCKETS: u64 = 720;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverviewQuery {
    /// Seconds of history to count verdicts over (default 600).
    window: Option<u64>,
    /// Width of one bucket, in seconds (default 10).
    bucket: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Scope {
    /// One tenant's view.
    Tenant,
    /// An operator token: every tenant.
    Operator,
}

#[derive(Serialize)]
pub(crate) struct Overview {
    scope: Scope,
    /// The tenant whose work is counted; absent for an operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// The server's clock, Unix milliseconds.
    now: UnixMillis,
    window_seconds: u64,
    bucket_seconds: u64,
    /// Verdicts finished per bucket, oldest first, every bucket of the
    /// window present: `{start, statuses: {valid: 3, sorry: 1, dead: 0...}}`.
    finished: Vec<FinishedBucket>,
    /// The caller's open jobs (for an operator: the whole farm's).
    open_jobs: OpenJobs,
    /// The whole farm, when the caller may see it (an operator token, or
    /// any caller of a farm that does not require tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    farm: Option<FarmView>,
    /// Every tenant's open jobs against its limits: an operator's only.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenants: Option<Vec<TenantUsage>>,
}

#[derive(Serialize)]
struct FinishedBucket {
    start: UnixMillis,
    statuses: BTreeMap<&'static str, u64>,
}

#[derive(Serialize, Default)]
struct OpenJobs {
    queued: u64,
    running: u64,
    /// The tenant's limits, when it has a record (`leanfarm tenant set`).
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<TenantLimits>,
}

#[derive(Serialize)]
struct TenantLimits {
    max_queued: u64,
    max_running: u64,
    requests_per_second: f64,
}

#[derive(Serialize)]
struct FarmView {
    queue: QueueCounts,
    /// Seconds the oldest queued job has waited; absent when none is queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_queued_age_seconds: Option<f64>,
    /// Workers that claimed work in the last `worker_window_seconds`.
    workers: Vec<WorkerSeen>,
    worker_window_seconds: u64,
    /// This replica's in-process workers; absent on an API-only replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    this_replica: Option<ReplicaWorkers>,
}

#[derive(Serialize)]
struct ReplicaWorkers {
    toolchain: String,
    project: String,
    slots: usize,
    /// Headers with an idle warm REPL now.
    warm_headers: Vec<String>,
    pool: PoolView,
}

#[derive(Serialize)]
struct PoolView {
    hits: u64,
    misses: u64,
    /// `hits / (hits + misses)`; absent before the first check.
    #[serde(skip_serializing_if = "Option::is_none")]
    hit_rate: Option<f64>,
    live_repls: u64,
    busy_repls: u64,
}

#[derive(Serialize)]
struct TenantUsage {
    tenant: String,
    queued: u64,
    running: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<TenantLimits>,
}

fn limits_of(record: &leanfarm_store::TenantRecord) -> TenantLimits {
    TenantLimits {
        max_queued: record.max_queued,
        max_running: record.max_running,
        requests_per_second: record.requests_per_second,
    }
}

/// The outcomes a bucket names, each present (0 when none): every verdict
/// status, and `dead`.
fn empty_statuses() -> BTreeMap<&'static str, u64> {
    leanfarm_core::CheckStatus::ALL
        .into_iter()
        .map(|status| (status.as_str(), 0))
        .chain([("dead", 0)])
        .collect()
}

/// `GET /v1/overview?window=S&bucket=S`.
pub(crate) async fn overview(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<Overview>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    let reader = auth::tenant_or_operator(&state, &headers).await?;
    let window_seconds = query.window.unwrap_or(600);
    let bucket_seconds = query.bucket.unwrap_or(10);
    if !(1..=MAX_WINDOW_SECONDS).contains(&window_seconds) {
        return Err(ApiError::InvalidQuery(format!(
            "`window` must be between 1 and {MAX_WINDOW_SECONDS} seconds"
        )));
    }
    if bucket_seconds == 0 || window_seconds.div_ceil(bucket_seconds) > MAX_BUCKETS {
        return Err(ApiError::InvalidQuery(format!(
            "`bucket` must be at least 1 second and divide `window` into at most {MAX_BUCKETS} buckets"
        )));
    }
    let now = now_millis();
    let bucket_millis = (bucket_seconds * 1000) as i64;
    let buckets = window_seconds.div_ceil(bucket_seconds) as i64;
    // The window ends with the bucket that holds `now`.
    let first_start = (now / bucket_millis - (buckets - 1)) * bucket_millis;
    let tenant = match &reader {
        Reader::Tenant(tenant) => Some(tenant.clone()),
        Reader::Operator => None,
    };
    let counts = state
        .store
        .finished_counts(tenant.as_deref(), first_start, bucket_millis)
        .await?;
    let mut finished: Vec<FinishedBucket> = (0..buckets)
        .map(|index| FinishedBucket {
            start: first_start + index * bucket_millis,
            statuses: empty_statuses(),
        })
        .collect();
    for count in counts {
        let index = ((count.bucket_start - first_start) / bucket_millis) as usize;
        let outcome = count.status.map_or("dead", |status| status.as_str());
        if let Some(bucket) = finished.get_mut(index) {
            *bucket.statuses.entry(outcome).or_default() += count.count;
        }
    }
    let open_by_tenant = state.store.open_jobs_by_tenant().await?;
    let open_jobs = match &tenant {
        Some(tenant) => {
            let own = open_by_tenant.iter().find(|open| &open.tenant == tenant);
            OpenJobs {
                queued: own.map_or(0, |open| open.queued),
                running: own.map_or(0, |open| open.running),
                limits: state
                    .store
                    .get_tenant(tenant)
                    .await?
                    .as_ref()
                    .map(limits_of),
            }
        }
        None => OpenJobs {
            queued: open_by_tenant.iter().map(|open| open.queued).sum(),
            running: open_by_tenant.iter().map(|open| open.running).sum(),
            limits: None,
        },
    };
    let sees_farm = reader == Reader::Operator || !state.require_auth;
    let farm = match sees_farm {
        true => Some(farm_view(&state, now).await?),
        false => None,
    };
    let tenants = match reader {
        Reader::Operator => {
            let records = state.store.list_tenants().await?;
            let mut usage: Vec<TenantUsage> = open_by_tenant
                .into_iter()
                .map(|open| TenantUsage {
                    limits: records
                        .iter()
                        .find(|record| record.name == open.tenant)
                        .map(limits_of),
                    tenant: open.tenant,
                    queued: open.queued,
                    running: open.running,
                })
                .collect();
            for record in &records {
                if !usage.iter().any(|known| known.tenant == record.name) {
                    usage.push(TenantUsage {
                        tenant: record.name.clone(),
                        queued: 0,
                        running: 0,
                        limits: Some(limits_of(record)),
                    });
                }
            }
            usage.sort_by(|a, b| a.tenant.cmp(&b.tenant));
            Some(usage)
        }
        Reader::Tenant(_) => None,
    };
    Ok(Json(Overview {
        scope: match tenant {
            Some(_) => Scope::Tenant,
            None => Scope::Operator,
        },
        tenant,
        now,
        window_seconds,
        bucket_seconds,
        finished,
        open_jobs,
        farm,
        tenants,
    }))
}

async fn farm_view(state: &AppState, now: UnixMillis) -> Result<FarmView, ApiError> {
    let queue = state.store.queue_counts().await?;
    let oldest_queued_age_seconds = state
        .store
        .oldest_queued_at()
        .await?
        .map(|created_at| ((now - created_at).max(0) as f64) / 1000.0);
    let this_replica = state.driver.as_ref().map(|driver| {
        let stats = driver.stats();
        let lookups = stats.hits + stats.misses;
        ReplicaWorkers {
            toolchain: driver.toolchain().name.clone(),
            project: driver.toolchain().project_name.clone(),
            slots: driver.slots(),
            warm_headers: driver.warm_headers(),
            pool: PoolView {
                hits: stats.hits,
                misses: stats.misses,
                hit_rate: (lookups > 0).then(|| stats.hits as f64 / lookups as f64),
                live_repls: stats.live_repls,
                busy_repls: stats.busy_repls,
            },
        }
    });
    Ok(FarmView {
        queue,
        oldest_queued_age_seconds,
        workers: workers_seen_lately(state).await?,
        worker_window_seconds: WORKER_SEEN_WINDOW.as_secs(),
        this_replica,
    })
}

/// The most batches one page of `GET /v1/batches` lists.
const MAX_BATCHES: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchesQuery {
    /// `open`, `finished` or `all` (the default).
    status: Option<String>,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct BatchesResponse {
    batches: Vec<BatchListItem>,
}

#[derive(Serialize)]
struct BatchListItem {
    batch_id: String,
    created_at: UnixMillis,
    total: u64,
    states: QueueCounts,
    statuses: BTreeMap<leanfarm_core::CheckStatus, u64>,
    finished: u64,
    progress: f64,
    all_final: bool,
}

fn list_item(batch_id: String, created_at: UnixMillis, counts: BatchCounts) -> BatchListItem {
    let finished = counts.states.done + counts.states.dead;
    BatchListItem {
        progress: match counts.total {
            0 => 1.0,
            total => finished as f64 / total as f64,
        },
        all_final: counts.all_final(),
        batch_id,
        created_at,
        total: counts.total,
        states: counts.states,
        statuses: counts.statuses,
        finished,
    }
}

/// `GET /v1/batches?status=open|finished|all&limit=N`: the tenant's latest
/// batches, newest first, with their progress.
pub(crate) async fn list_batches(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<BatchesQuery>, QueryRejection>,
) -> Result<Json<BatchesResponse>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    let filter = match query.status.as_deref() {
        None | Some("all") => BatchListFilter::All,
        Some("open") => BatchListFilter::Open,
        Some("finished") => BatchListFilter::Finished,
        Some(other) => {
            return Err(ApiError::InvalidQuery(format!(
                "`status` must be `open`, `finished` or `all`, not `{}`",
                crate::error::excerpt(other)
            )))
        }
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_BATCHES).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "`limit` must be between 1 and {MAX_BATCHES}"
        )));
    }
    let batches = state
        .store
        .recent_batches(&tenant, filter, limit)
        .await?
        .into_iter()
        .map(|batch| list_item(batch.batch_id, batch.created_at, batch.counts))
        .collect();
    Ok(Json(BatchesResponse { batches }))
}

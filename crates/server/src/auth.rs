//! Who is calling: bearer tokens, looked up by the SHA-256 of the token (the
//! store never holds a token itself), and per-tenant request rates.
//!
//! Every token belongs to a tenant or to the farm (docs/api.md, "Tokens").
//! A tenant's `user` token submits and reads that tenant's checks; a worker
//! token leases, renews and completes jobs: a tenant's only that tenant's, the
//! farm's any tenant's; an `operator` token (made only with `leanfarm tenant`,
//! never through the API) acts on the worker API for the farm and has no
//! tenant on the user API. Revoked and expired tokens do not authenticate.
//! Without `require_auth`, requests that carry no token are the `default`
//! tenant's; a token that is present is always checked.
//!
//! A tenant's request rate holds for the farm as a whole: each replica
//! registers itself in the store with a heartbeat and admits its share of
//! the rate (docs/api.md, "Tenants' limits across replicas").

use crate::error::ApiError;
use crate::AppState;
use axum::http::HeaderMap;
use leanfarm_store::{Authentication, KeyOwner, KeyRecord, KeyScope, WorkerAuthority};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The tenant of requests that carry no token, when tokens are not required.
pub(crate) const DEFAULT_TENANT: &str = "default";

/// A new token: 32 random bytes, hex, with a prefix that says what it is.
pub fn new_token() -> String {
    let bytes: Vec<u8> = (0..2)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    format!("lf_{}", hex::encode(bytes))
}

/// What the store keeps of a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the authorization header is not text".into()))?;
    match value.strip_prefix("Bearer ") {
        Some(token) if !token.trim().is_empty() => Ok(Some(token.trim())),
        _ => Err(ApiError::Unauthorized(
            "expected `Authorization: Bearer <token>`".into(),
        )),
    }
}

/// The caller's key, from its token.
async fn caller(state: &AppState, token: &str) -> Result<KeyRecord, ApiError> {
    match state.store.authenticate(&token_digest(token)).await? {
        Authentication::Valid(key) => Ok(key),
        Authentication::Unknown => Err(ApiError::Unauthorized("unknown token".into())),
        Authentication::Revoked(_) => Err(ApiError::Unauthorized("revoked token".into())),
        Authentication::Expired(_) => Err(ApiError::Unauthorized("expired token".into())),
    }
}

/// The tenant a user request acts for.
pub(crate) async fn user_tenant(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let tenant = match bearer(headers)? {
        None if state.require_auth => {
            return Err(ApiError::Unauthorized("this farm requires a token".into()))
        }
        None => DEFAULT_TENANT.to_string(),
        Some(token) => {
            let key = caller(state, token).await?;
            match (key.scope, key.owner) {
                (KeyScope::User, KeyOwner::Tenant(tenant)) => tenant,
                (KeyScope::Worker, _) => {
                    return Err(ApiError::Forbidden(
                        "a worker token cannot use the user API".into(),
                    ))
                }
                (KeyScope::Operator, _) | (KeyScope::User, KeyOwner::Farm) => {
                    return Err(ApiError::Forbidden(
                        "an operator token acts for the farm, not for a tenant: use a tenant's user token".into(),
                    ))
                }
            }
        }
    };
    state.rates.admit(state, &tenant).await?;
    Ok(tenant)
}

/// Who reads a check's artifacts: a tenant (only its own checks) or an
/// operator (any check).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    Tenant(String),
    Operator,
}

impl Reader {
    /// Whether this reader may read a check of `tenant`.
    pub(crate) fn may_read(&self, tenant: &str) -> bool {
        match self {
            Reader::Tenant(own) => own == tenant,
            Reader::Operator => true,
        }
    }
}

/// An operator token reads any check; anyone else reads as the tenant
/// `user_tenant` finds.
pub(crate) async fn tenant_or_operator(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Reader, ApiError> {
    if let Some(token) = bearer(headers)? {
        if caller(state, token).await?.scope == KeyScope::Operator {
            return Ok(Reader::Operator);
        }
    }
    user_tenant(state, headers).await.map(Reader::Tenant)
}

/// Admit a request to an operational endpoint (`/metrics`, `/v1/workers`),
/// which shows tenant names and worker ids: under `require_auth` only an
/// operator token may read it (401 without a token, 403 with another
/// scope); otherwise anyone may, though a token that is present must
/// authenticate.
pub(crate) async fn operational(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers)? {
        None if state.require_auth => Err(ApiError::Unauthorized(
            "this endpoint requires an operator token".into(),
        )),
        None => Ok(()),
        Some(token) => {
            let key = caller(state, token).await?;
            if state.require_auth && key.scope != KeyScope::Operator {
                return Err(ApiError::Forbidden(
                    "this endpoint shows the whole farm: it needs an operator token".into(),
                ));
            }
            Ok(())
        }
    }
}

/// Check that a request comes from a worker (or an operator), and whose jobs
/// it may touch.
pub(crate) async fn worker(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<WorkerAuthority, ApiError> {
    let token = bearer(headers)?
        .ok_or_else(|| ApiError::Unauthorized("the worker API requires a worker token".into()))?;
    caller(state, token)
        .await?
        .worker_authority()
        .ok_or_else(|| ApiError::Forbidden("a user token cannot use the worker API".into()))
}

/// Check that a request comes from an operator token (the farm itself).
pub(crate) async fn operator(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer(headers)?.ok_or_else(|| {
        ApiError::Unauthorized("the operator API requires an operator token".into())
    })?;
    match caller(state, token).await?.scope {
        KeyScope::Operator => Ok(()),
        KeyScope::User | KeyScope::Worker => Err(ApiError::Forbidden(
            "only an operator token may use the operator API".into(),
        )),
    }
}

/// Token buckets per tenant, refilled at this replica's share of the
/// tenant's `requests_per_second` (tenants without a record are not
/// limited): the rate divided by the API replicas live in the store
/// (`keep_replica_registered`), so that the replicas together admit the
/// tenant's rate, however many there are. The store is read only for the
/// tenant's rate (cached) and by the heartbeat, never on each request.
pub(crate) struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
    /// API replicas live at the last heartbeat, this one included (at least 1).
    live_replicas: AtomicU64,
}

impl Default for RateLimiter {
    fn default() -> RateLimiter {
        RateLimiter {
            buckets: Mutex::default(),
            live_replicas: AtomicU64::new(1),
        }
    }
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// The tenant's rate for the whole farm.
    rate: f64,
    /// When the tenant's limit was last read from the store.
    limit_read: Instant,
}

/// How long a tenant's rate is cached before it is read again.
const LIMIT_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a replica refreshes its row in the store.
pub(crate) const REPLICA_HEARTBEAT: Duration = Duration::from_secs(2);

/// A replica not refreshed for this long no longer counts as live (three
/// heartbeats missed).
const REPLICA_LIVE_WINDOW: Duration = Duration::from_secs(6);

/// Register this replica in the store every `REPLICA_HEARTBEAT`, and keep
/// the count of live replicas that the rate limiter divides by, until
/// `shutdown` turns true; then remove the row, so that the others take
/// over its share at their next heartbeat. A failed heartbeat keeps the
/// last count.
pub(crate) async fn keep_replica_registered(
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let replica_id = uuid::Uuid::new_v4().to_string();
    loop {
        match state
            .store
            .replica_heartbeat(&replica_id, REPLICA_LIVE_WINDOW)
            .await
        {
            Ok(live) => {
                let before = state
                    .rates
                    .live_replicas
                    .swap(live.max(1), Ordering::Relaxed);
                if before != live {
                    tracing::info!(
                        live_replicas = live,
                        "the tenants' rates are shared by the live api replicas"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "the replica heartbeat failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REPLICA_HEARTBEAT) => {}
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
        }
    }
    if let Err(error) = state.store.replica_leaving(&replica_id).await {
        tracing::warn!(%error, "could not remove this replica's row");
    }
}

impl RateLimiter {
    /// API replicas live at the last heartbeat (at least 1).
    pub(crate) fn live_replicas(&self) -> u64 {
        self.live_replicas.load(Ordering::Relaxed).max(1)
    }

    async fn admit(&self, state: &AppState, tenant: &str) -> Result<(), ApiError> {
        let cached = {
            let buckets = self.buckets.lock().expect("rate lock");
            buckets
                .get(tenant)
                .is_some_and(|bucket| bucket.limit_read.elapsed() < LIMIT_CACHE)
        };
        if !cached {
            let rate = state
                .store
                .get_tenant(tenant)
                .await?
                .map(|record| record.requests_per_second)
                .unwrap_or(f64::INFINITY);
            let mut buckets = self.buckets.lock().expect("rate lock");
            let live_replicas = self.live_replicas.load(Ordering::Relaxed).max(1) as f64;
            let bucket = buckets.entry(tenant.to_string()).or_insert(Bucket {
                tokens: (rate / live_replicas).max(1.0),
                refilled: Instant::now(),
                rate,
                limit_read: Instant::now(),
            });
            bucket.rate = rate;
            bucket.limit_read = Instant::now();
        }
        let mut buckets = self.buckets.lock().expect("rate lock");
        let bucket = buckets.get_mut(tenant).expect("bucket made above");
        if bucket.rate.is_infinite() {
            return Ok(());
        }
        let live_replicas = self.live_replicas.load(Ordering::Relaxed).max(1) as f64;
        let share = bucket.rate / live_replicas;
        let capacity = share.max(1.0);
        let now = Instant::now();
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.refilled).as_secs_f64() * share)
            .min(capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            state.metrics.request_rejected();
            Err(ApiError::RateLimited {
                tenant: tenant.to_string(),
                rate: bucket.rate,
            })
        }
    }
}

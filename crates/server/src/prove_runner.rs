//! Driving prove jobs on this replica: the farm the orchestrator sees
//! (`StoreFarm`: candidates go through the ordinary check path as the
//! job's tenant, attempts and usage go to the store), the lease that makes
//! one replica drive a job at a time, the resumption of jobs whose replica
//! stopped, and what follows a job's end (metrics, artifacts, log).
//!
//! It must never change a prove job's state except through `Store`, and
//! never write a job whose lease it no longer holds.

use crate::error::ApiError;
use crate::submit;
use crate::AppState;
use leanfarm_core::{CheckRequest, ReasonCode, Verdict, VerdictReason};
use leanfarm_prove::orchestrator::{self, usage_of};
use leanfarm_prove::request::BudgetCeiling;
use leanfarm_prove::{
    Attempt, Farm, FarmError, Gateway, JobContext, Outcome, PremiseSource, ProveRequest,
    TenantAllowance, Usage,
};
use leanfarm_store::{CancelScope, JobState, ProveAttemptRow, ProveEnd, ProveJobRow, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};

/// The prove settings of a farm (docs/prove.md).
#[derive(Clone, Debug)]
pub struct ProveSettings {
    /// How long a replica's lease on a prove job lasts; it renews it every
    /// third of that, and another replica resumes the job once it runs out.
    pub lease: Duration,
    /// Model tokens each tenant may use per day (UTC); `None`: no cap.
    pub tenant_daily_tokens: Option<u64>,
    /// Model cost each tenant may incur per day; `None`: no cap.
    pub tenant_daily_cost: Option<f64>,
    /// The largest budget one job may ask for.
    pub ceiling: BudgetCeiling,
    /// Prove jobs one tenant may have running at once (429
    /// `tenant_prove_jobs_full` beyond).
    pub max_running_per_tenant: u64,
}

impl Default for ProveSettings {
    fn default() -> ProveSettings {
        ProveSettings {
            lease: Duration::from_secs(30),
            tenant_daily_tokens: None,
            tenant_daily_cost: None,
            ceiling: BudgetCeiling::default(),
            max_running_per_tenant: 16,
        }
    }
}

/// The gateway, the settings, and this replica's running prove jobs.
pub struct ProveService {
    pub gateway: Gateway,
    pub settings: ProveSettings,
    pub premises: Option<Arc<dyn PremiseSource>>,
    /// This replica's name on the leases it takes.
    pub(crate) owner: String,
    /// Ids of prove jobs that changed (an attempt, a round, the end).
    pub(crate) changes: broadcast::Sender<String>,
    /// Jobs this replica drives, each with the notice that stops it.
    running: Mutex<HashMap<String, Arc<Notify>>>,
}

impl ProveService {
    pub fn new(gateway: Gateway, settings: ProveSettings) -> ProveService {
        ProveService {
            gateway,
            settings,
            premises: None,
            owner: format!("replica-{}", uuid::Uuid::now_v7()),
            changes: broadcast::channel(1024).0,
            running: Mutex::default(),
        }
    }

    /// Premises for the prompts (the retriever).
    pub fn with_premises(mut self, premises: Arc<dyn PremiseSource>) -> ProveService {
        self.premises = Some(premises);
        self
    }

    pub(crate) fn lease_until(&self) -> i64 {
        leanfarm_store::now_millis() + self.settings.lease.as_millis() as i64
    }

    pub(crate) fn changed(&self, job_id: &str) {
        let _ = self.changes.send(job_id.to_string());
    }

    /// Stop this replica's run of a job (it was cancelled).
    pub(crate) fn stop_local(&self, job_id: &str) {
        if let Some(stop) = self.running.lock().expect("prove jobs").get(job_id) {
            stop.notify_one();
        }
    }
}

/// How often a wait for a candidate's verdict reads the store when no
/// completion in this process woke it.
const VERDICT_POLL: Duration = Duration::from_millis(500);

/// The farm's prove service: the one `leanfarm serve` set, else the
/// built-in `dummy` route with the default settings.
pub(crate) fn service(state: &AppState) -> Arc<ProveService> {
    Arc::clone(state.prove.get_or_init(|| {
        let gateway = Gateway::new(&Default::default()).expect("the built-in routes are valid");
        Arc::new(ProveService::new(gateway, ProveSettings::default()))
    }))
}

/// What the tenant may still spend today under the farm's daily caps.
pub(crate) async fn allowance(
    state: &AppState,
    tenant: &str,
) -> Result<TenantAllowance, StoreError> {
    let settings = &service(state).settings;
    if settings.tenant_daily_tokens.is_none() && settings.tenant_daily_cost.is_none() {
        return Ok(TenantAllowance::default());
    }
    let day = leanfarm_store::day_of(leanfarm_store::now_millis());
    let (tokens, cost) = state.store.tenant_model_usage(tenant, day).await?;
    Ok(TenantAllowance {
        tokens_left: settings
            .tenant_daily_tokens
            .map(|cap| cap.saturating_sub(tokens)),
        cost_left: settings.tenant_daily_cost.map(|cap| (cap - cost).max(0.0)),
    })
}

/// Parse a stored attempt.
pub(crate) fn parse_attempt(row: &ProveAttemptRow) -> Result<Attempt, StoreError> {
    serde_json::from_str(&row.attempt)
        .map_err(|error| StoreError::Corrupt(format!("prove attempt of {}: {error}", row.job_id)))
}

/// A job's recorded attempts.
pub(crate) async fn attempts_of(
    state: &AppState,
    job_id: &str,
) -> Result<Vec<Attempt>, StoreError> {
    state
        .store
        .prove_attempts(job_id)
        .await?
        .iter()
        .map(parse_attempt)
        .collect()
}

fn attempt_row(job_id: &str, attempt: &Attempt) -> ProveAttemptRow {
    ProveAttemptRow {
        job_id: job_id.to_string(),
        round: attempt.round,
        candidate: attempt.candidate,
        check_id: attempt.check_id.clone(),
        attempt: serde_json::to_string(attempt).expect("an attempt serialises"),
    }
}

fn store_failure(error: StoreError) -> FarmError {
    FarmError::Store(error.to_string())
}

/// The farm as the orchestrator sees it, for one job.
struct StoreFarm {
    state: Arc<AppState>,
    service: Arc<ProveService>,
}

impl Farm for StoreFarm {
    async fn attempts(&self, job_id: &str) -> Result<Vec<Attempt>, FarmError> {
        attempts_of(&self.state, job_id)
            .await
            .map_err(store_failure)
    }

    async fn record_attempt(
        &self,
        job_id: &str,
        attempt: &Attempt,
    ) -> Result<(Attempt, bool), FarmError> {
        let (row, inserted) = self
            .state
            .store
            .insert_prove_attempt(&attempt_row(job_id, attempt))
            .await
            .map_err(store_failure)?;
        self.service.changed(job_id);
        Ok((parse_attempt(&row).map_err(store_failure)?, inserted))
    }

    async fn update_attempt(&self, job_id: &str, attempt: &Attempt) -> Result<(), FarmError> {
        self.state
            .store
            .update_prove_attempt(&attempt_row(job_id, attempt))
            .await
            .map_err(store_failure)?;
        self.service.changed(job_id);
        Ok(())
    }

    async fn submit_check(
        &self,
        tenant: &str,
        check_id: &str,
        request: CheckRequest,
    ) -> Result<(), FarmError> {
        match submit::enqueue_with_id(&self.state, tenant, check_id, request).await {
            Ok(()) => Ok(()),
            Err(
                error @ (ApiError::QueueFull { .. }
                | ApiError::TenantQueueFull { .. }
                | ApiError::StoreUnavailable(_)
                | ApiError::ShuttingDown),
            ) => Err(FarmError::Busy(error.to_string())),
            Err(error) => Err(FarmError::Refused(error.to_string())),
        }
    }

    async fn wait_verdict(
        &self,
        check_id: &str,
        wait: Duration,
    ) -> Result<Option<Verdict>, FarmError> {
        // Subscribed before the first read, so that no completion is missed;
        // woken by this check's completion in this process at once, else
        // the store is read again every `VERDICT_POLL` (another replica's
        // worker may complete it).
        let mut completions = self.state.completions.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let record = self
                .state
                .store
                .get(check_id)
                .await
                .map_err(store_failure)?;
            match record {
                Some(record) if record.state == JobState::Done => return Ok(record.result),
                Some(record) if record.state == JobState::Dead => {
                    return Ok(Some(Verdict::rejected(VerdictReason::new(
                        ReasonCode::ReplError,
                        format!(
                            "the farm gave up on this check: {}",
                            record.last_error.unwrap_or_default()
                        ),
                    ))))
                }
                Some(_) => {}
                None => return Err(FarmError::Store(format!("check {check_id} is missing"))),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let poll = (now + VERDICT_POLL).min(deadline);
            loop {
                tokio::select! {
                    received = completions.recv() => match received {
                        Ok(completed) if completed != check_id => continue,
                        _ => break,
                    },
                    _ = tokio::time::sleep_until(poll) => break,
                }
            }
        }
    }

    async fn allowance(&self, tenant: &str) -> Result<TenantAllowance, FarmError> {
        allowance(&self.state, tenant).await.map_err(store_failure)
    }

    async fn charge(&self, tenant: &str, tokens: u64, cost: f64) -> Result<(), FarmError> {
        let day = leanfarm_store::day_of(leanfarm_store::now_millis());
        self.state
            .store
            .add_tenant_model_usage(tenant, day, tokens, cost)
            .await
            .map_err(store_failure)
    }

    async fn progress(&self, job_id: &str, usage: &Usage) -> Result<(), FarmError> {
        let usage = serde_json::to_string(usage).expect("usage serialises");
        self.state
            .store
            .renew_prove_job(
                job_id,
                &self.service.owner,
                self.service.lease_until(),
                Some(&usage),
            )
            .await
            .map_err(store_failure)?;
        self.service.changed(job_id);
        Ok(())
    }
}

/// Drive a job this replica holds the lease of, in the background.
pub(crate) fn spawn_job(state: Arc<AppState>, row: ProveJobRow) {
    let service = service(&state);
    let stop = Arc::new(Notify::new());
    {
        let mut running = service.running.lock().expect("prove jobs");
        if running.contains_key(&row.id) {
            return;
        }
        running.insert(row.id.clone(), Arc::clone(&stop));
    }
    tokio::spawn(async move {
        let job_id = row.id.clone();
        drive(&state, &service, row, stop).await;
        service.running.lock().expect("prove jobs").remove(&job_id);
        service.changed(&job_id);
    });
}

async fn drive(
    state: &Arc<AppState>,
    service: &Arc<ProveService>,
    row: ProveJobRow,
    stop: Arc<Notify>,
) {
    let request: ProveRequest = match serde_json::from_str(&row.request) {
        Ok(request) => request,
        Err(error) => {
            let outcome = Outcome::Failed {
                reason: format!("the stored request cannot be read: {error}"),
            };
            finish(state, service, &row, None, outcome).await;
            return;
        }
    };
    let job = JobContext {
        job_id: row.id.clone(),
        tenant: row.tenant.clone(),
        request,
        created_at_millis: row.created_at,
        session_id: service.owner.clone(),
    };
    let farm = StoreFarm {
        state: Arc::clone(state),
        service: Arc::clone(service),
    };
    tracing::info!(job_id = %job.job_id, session_id = %job.session_id, tenant = %job.tenant, route = %job.request.route, "prove job started");
    let heartbeat = async {
        loop {
            tokio::time::sleep(service.settings.lease / 3).await;
            match state
                .store
                .renew_prove_job(&row.id, &service.owner, service.lease_until(), None)
                .await
            {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::warn!(job_id = %row.id, %error, "renewing a prove job's lease failed")
                }
            }
        }
    };
    let outcome = tokio::select! {
        outcome = orchestrator::run(&farm, &service.gateway, service.premises.as_deref(), &job) => Some(outcome),
        () = heartbeat => None,
        () = stop.notified() => None,
    };
    match outcome {
        Some(outcome) => finish(state, service, &row, Some(&job.request), outcome).await,
        None => {
            tracing::info!(job_id = %row.id, "prove job stopped on this replica: cancelled, or its lease was lost");
            cancel_open_checks(state, &row.tenant, &row.id).await;
        }
    }
}

/// Cancel the checks of a job's attempts that have no verdict yet.
pub(crate) async fn cancel_open_checks(state: &AppState, tenant: &str, job_id: &str) {
    let Ok(attempts) = attempts_of(state, job_id).await else {
        return;
    };
    for attempt in attempts.iter().filter(|attempt| attempt.verdict.is_none()) {
        if let Err(error) =
            submit::cancel(state, tenant, &CancelScope::Job(attempt.check_id.clone())).await
        {
            tracing::warn!(job_id, check_id = %attempt.check_id, %error, "cancelling a candidate's check failed");
        }
    }
}

/// The budget an exhausted job's reason names, for metrics.
fn budget_of(reason: &str) -> &'static str {
    for (prefix, budget) in [
        ("budget.candidates", "candidates"),
        ("budget.tokens", "tokens"),
        ("budget.cpu_seconds", "cpu_seconds"),
        ("budget.wall_seconds", "wall_seconds"),
        ("tenant daily tokens", "tenant_daily_tokens"),
        ("tenant daily cost", "tenant_daily_cost"),
        ("strategy.rounds", "rounds"),
    ] {
        if reason.starts_with(prefix) {
            return budget;
        }
    }
    "other"
}

async fn finish(
    state: &Arc<AppState>,
    service: &Arc<ProveService>,
    row: &ProveJobRow,
    request: Option<&ProveRequest>,
    outcome: Outcome,
) {
    let attempts = attempts_of(state, &row.id).await.unwrap_or_default();
    let usage = usage_of(&attempts, row.created_at);
    let end = ProveEnd {
        state: outcome.state().to_string(),
        proof: outcome.proof().map(str::to_string),
        reason: outcome.reason().map(str::to_string),
        usage: serde_json::to_string(&usage).expect("usage serialises"),
    };
    // The artifacts first: a job that reads as ended has them, and a crash
    // before its end is stored leaves it running, to be resumed and ended
    // (its artifacts written again) by another replica.
    if let Some(request) = request {
        if let Err(error) = write_artifacts(state, row, request, &attempts, &end, &usage).await {
            tracing::warn!(job_id = %row.id, %error, "writing a prove job's artifacts failed");
        }
    }
    match state
        .store
        .finish_prove_job(&row.id, &service.owner, &end)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(job_id = %row.id, "prove job ended elsewhere (cancelled, or its lease was lost); nothing written");
            cancel_open_checks(state, &row.tenant, &row.id).await;
            return;
        }
        Err(error) => {
            tracing::error!(job_id = %row.id, %error, "storing a prove job's end failed; another replica resumes it");
            return;
        }
    }
    cancel_open_checks(state, &row.tenant, &row.id).await;
    let budget = matches!(outcome, Outcome::Exhausted { .. })
        .then(|| budget_of(outcome.reason().unwrap_or_default()));
    state
        .metrics
        .prove_finished(outcome.state(), usage.wall_seconds, budget);
    tracing::info!(
        job_id = %row.id,
        session_id = %service.owner,
        state = outcome.state(),
        reason = outcome.reason().unwrap_or(""),
        candidates = usage.candidates,
        tokens = usage.tokens,
        cost = usage.cost,
        cpu_seconds = usage.cpu_seconds,
        wall_seconds = usage.wall_seconds,
        "prove job ended"
    );
    service.changed(&row.id);
}

/// `jobs/<id>/input.json`, `final.lean` (when proved), `blueprints.json`,
/// `attempts.jsonl` and `summary.json`.
async fn write_artifacts(
    state: &AppState,
    row: &ProveJobRow,
    request: &ProveRequest,
    attempts: &[Attempt],
    end: &ProveEnd,
    usage: &Usage,
) -> Result<(), leanfarm_store::artifacts::ArtifactError> {
    use axum::body::Bytes;
    let artifacts = &state.artifacts;
    let json =
        |value: &serde_json::Value| Bytes::from(serde_json::to_vec_pretty(value).expect("json"));
    artifacts
        .put(
            &row.id,
            "input.json",
            json(&serde_json::to_value(request).expect("json")),
        )
        .await?;
    if let Some(proof) = &end.proof {
        artifacts
            .put(&row.id, "final.lean", Bytes::from(proof.clone()))
            .await?;
    }
    let rounds: Vec<serde_json::Value> = (1..=request.strategy.rounds)
        .filter_map(|round| {
            let candidates: Vec<serde_json::Value> = attempts
                .iter()
                .filter(|attempt| attempt.round == round)
                .map(|attempt| {
                    serde_json::json!({
                        "candidate": attempt.candidate,
                        "check_id": attempt.check_id,
                        "status": attempt.verdict.as_ref().map(|verdict| verdict.status().as_str()),
                    })
                })
                .collect();
            (!candidates.is_empty())
                .then(|| serde_json::json!({"round": round, "candidates": candidates}))
        })
        .collect();
    let statement_check = attempts
        .iter()
        .find(|attempt| attempt.round == 0)
        .map(|attempt| {
            serde_json::json!({
                "check_id": attempt.check_id,
                "status": attempt.verdict.as_ref().map(|verdict| verdict.status().as_str()),
            })
        });
    let blueprint = serde_json::json!({
        "strategy": request.strategy,
        "route": request.route,
        "budget": request.budget,
        "premises": request.premises.as_ref().map(|premises| premises.k),
        "statement_check": statement_check,
        "rounds": rounds,
    });
    artifacts
        .put(&row.id, "blueprints.json", json(&blueprint))
        .await?;
    let mut lines = String::new();
    for attempt in attempts.iter().filter(|attempt| attempt.round > 0) {
        let verdict = attempt.verdict.as_ref();
        let line = serde_json::json!({
            "round": attempt.round,
            "candidate": attempt.candidate,
            "route": attempt.route,
            "model": attempt.model,
            "tokens": attempt.tokens,
            "cost": attempt.cost,
            "check_id": attempt.check_id,
            "proof": attempt.proof,
            "status": verdict.map(|verdict| verdict.status().as_str()),
            "reason": verdict.and_then(Verdict::reason).map(|reason| reason.code.as_str()),
            "time_ms": attempt.time_ms,
            "lean_seconds": attempt.lean_seconds,
        });
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    artifacts
        .put(&row.id, "attempts.jsonl", Bytes::from(lines))
        .await?;
    let summary = serde_json::json!({
        "id": row.id,
        "tenant": row.tenant,
        "state": end.state,
        "proof": end.proof,
        "reason": end.reason,
        "usage": usage,
        "budget": request.budget,
        "attempts": attempts.iter().filter(|attempt| attempt.round > 0).count(),
        "created_at": row.created_at,
        "finished_at": leanfarm_store::now_millis(),
    });
    artifacts.put(&row.id, "summary.json", json(&summary)).await
}

/// Take running prove jobs whose replica stopped (their lease ran out) and
/// drive them here, until the farm shuts down.
pub(crate) async fn resume_until_shutdown(
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = service(&state);
    let every =
        (service.settings.lease / 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let now = leanfarm_store::now_millis();
        match state
            .store
            .lease_prove_jobs(&service.owner, now, service.lease_until(), 16)
            .await
        {
            Ok(rows) => {
                for row in rows {
                    tracing::info!(job_id = %row.id, "resuming a prove job whose replica stopped");
                    spawn_job(Arc::clone(&state), row);
                }
            }
            Err(error) => tracing::warn!(%error, "looking for prove jobs to resume failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The prove jobs' and model routes' metrics.
pub(crate) fn render_metrics(state: &AppState) -> String {
    let routes: Vec<crate::metrics::RouteTotals> = service(state)
        .gateway
        .counters()
        .into_iter()
        .map(|(route, counters)| crate::metrics::RouteTotals {
            route,
            calls: counters.calls,
            prompt_tokens: counters.prompt_tokens,
            completion_tokens: counters.completion_tokens,
            errors: counters.errors.into_iter().collect(),
        })
        .collect();
    state.metrics.render_prove(&routes)
}

//! Signed verdicts on the server: `GET /v1/keys` publishes the public keys
//! the farm trusts for its workers (with their validity and the worker each
//! is bound to), and `check_completion` refuses a remote worker's completion
//! whose attestation does not verify against one of them.
//!
//! Trust is off until `AppState::trusted_worker_keys` is set (`leanfarm
//! serve --trusted-worker-keys`); then every completion through the worker
//! API must carry an attestation that verifies, names the job's snippet,
//! header, policy and the verdict it comes with.
//!
//! In-process workers are the farm itself: they sign with the farm's own
//! keys (`AppState::farm_signer`, set by `leanfarm serve`) through
//! `farm_attestation`, and `GET /v1/keys` publishes those keys' public half
//! with the trusted worker keys. This module must never serve or log a
//! secret key.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use leanfarm_attest::{now_unix_seconds, KeyError, KeyFile, Statement};
use leanfarm_core::Verdict;
use leanfarm_store::Lease;
use leanfarm_worker::protocol::CompleteRequest;
use std::sync::Arc;

/// `GET /v1/keys`: `{"keys": [{"key_id", "algorithm", "public_key",
/// "not_before", "not_after", "worker_id"?}]}`: the farm's own keys (those
/// its in-process workers sign with), then the keys it trusts for remote
/// workers; empty when it has neither.
pub(crate) async fn list_keys(State(state): State<Arc<AppState>>) -> Json<KeyFile> {
    let mut published = KeyFile::default();
    if let Some(signer) = state.farm_signer.get() {
        published.keys.extend(signer.keys.public_keys().keys);
    }
    if let Some(trusted) = state.trusted_worker_keys.get() {
        published.keys.extend(trusted.public_keys().keys);
    }
    Json(published)
}

/// The attestation of a verdict of the in-process workers, as the store
/// keeps it (canonical JSON), signed with the farm's own keys; `None` when
/// the farm has none. A verdict that cannot be signed (no key valid now)
/// is a failure of the farm, never a Lean verdict.
pub(crate) fn farm_attestation(
    state: &AppState,
    lease: &Lease,
    verdict: &Verdict,
) -> Result<Option<String>, KeyError> {
    let Some(signer) = state.farm_signer.get() else {
        return Ok(None);
    };
    let statement = Statement::for_verdict(
        &lease.request,
        verdict,
        &signer.identity,
        now_unix_seconds(),
    );
    let attestation = signer.keys.sign(statement)?;
    Ok(Some(attestation.to_json()))
}

/// Refuse (403) a completion whose attestation is missing or does not
/// verify, when the farm trusts worker keys. The message names the check
/// that failed.
pub(crate) async fn check_completion(
    state: &AppState,
    request: &CompleteRequest,
) -> Result<(), ApiError> {
    let Some(trusted) = state.trusted_worker_keys.get() else {
        return Ok(());
    };
    let attestation = request.attestation.as_ref().ok_or_else(|| {
        ApiError::Forbidden("this farm requires a signed attestation with every completion".into())
    })?;
    let refused = |error: leanfarm_attest::VerifyError| {
        ApiError::Forbidden(format!("the completion's attestation is refused: {error}"))
    };
    let statement = trusted.verify(attestation).map_err(refused)?;
    // A job that does not exist has no lease either: the store answers that.
    if let Some(record) = state.store.get(&request.job_id).await? {
        statement
            .matches(&record.request, &request.verdict)
            .map_err(|mismatch| refused(mismatch.into()))?;
    }
    Ok(())
}

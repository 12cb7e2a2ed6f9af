//! Signed verdicts on the server: `GET /v1/keys` publishes the public keys
//! the farm trusts for its workers (with their validity and the worker each
//! is bound to), and `check_completion` refuses a remote worker's completion
//! whose attestation does not verify against one of them.
//!
//! Trust is off until `AppState::trusted_worker_keys` is set (`leanfarm
//! serve --trusted-worker-keys`); then every completion through the worker
//! API must carry an attestation that verifies, names the job's snippet,
//! header, policy and the verdict it comes with. In-process workers are the
//! farm itself and are not asked to sign. This module must never hold or
//! serve a secret key: it only sees public ones.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::Json;
use leanfarm_attest::{KeyFile, TrustedKeys};
use leanfarm_worker::protocol::CompleteRequest;
use std::sync::Arc;

/// `GET /v1/keys`: `{"keys": [{"key_id", "algorithm", "public_key",
/// "not_before", "not_after", "worker_id"?}]}`, empty when the farm
/// trusts no worker keys.
pub(crate) async fn list_keys(State(state): State<Arc<AppState>>) -> Json<KeyFile> {
    Json(
        state
            .trusted_worker_keys
            .get()
            .map(TrustedKeys::public_keys)
            .unwrap_or_default(),
    )
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

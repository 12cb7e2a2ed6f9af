//! `GET /v1/checks/{id}/attestation`: whether a check's signed verdict
//! verifies against the keys this farm publishes (`GET /v1/keys`) and
//! speaks of this check (its snippet, header, policy, toolchain, project,
//! status, reason and axioms), as `leanfarm verify` would say offline.
//! For those who trust no farm, `leanfarm verify` with the keys they hold
//! remains the check to run; this route saves the round trip for a reader
//! such as the web console. Read-only; the check's tenant only.

use crate::error::{excerpt, ApiError};
use crate::{auth, input_limits, AppState};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use leanfarm_attest::{Attestation, KeyFile, TrustedKeys};
use serde::Serialize;
use std::sync::Arc;

#[derive(Serialize)]
pub(crate) struct AttestationStatus {
    check_id: String,
    /// Whether the check has a signed verdict at all.
    signed: bool,
    /// Whether it verifies and matches the check; absent when unsigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    verified: Option<bool>,
    /// The check that failed (`envelope`, `signature`, `statement`, `key`
    /// or `verdict`), when it does not verify.
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_check: Option<&'static str>,
    /// What failed, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// The signer, as the statement names it (read even when it fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_at: Option<i64>,
}

/// The keys `GET /v1/keys` publishes, as verifying keys.
fn published_keys(state: &AppState) -> Result<TrustedKeys, ApiError> {
    let mut published = KeyFile::default();
    if let Some(signer) = state.farm_signer.get() {
        published.keys.extend(signer.keys.public_keys().keys);
    }
    if let Some(trusted) = state.trusted_worker_keys.get() {
        published.keys.extend(trusted.public_keys().keys);
    }
    TrustedKeys::new(&published)
        .map_err(|error| ApiError::Internal(format!("the farm's published keys: {error}")))
}

pub(crate) async fn attestation_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<AttestationStatus>, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    if id.len() > input_limits::MAX_ID_BYTES {
        return Err(ApiError::NotFound(excerpt(&id)));
    }
    let record = match state.store.get(&id).await? {
        Some(record) if record.tenant == tenant => record,
        _ => return Err(ApiError::NotFound(excerpt(&id))),
    };
    let mut status = AttestationStatus {
        check_id: record.id.clone(),
        signed: false,
        verified: None,
        failed_check: None,
        message: None,
        key_id: None,
        worker_id: None,
        signed_at: None,
    };
    let (Some(text), Some(verdict)) = (record.attestation.as_deref(), record.result.as_ref())
    else {
        return Ok(Json(status));
    };
    status.signed = true;
    let keys = published_keys(&state)?;
    let outcome = Attestation::from_json(text).and_then(|attestation| {
        if let Ok(statement) = attestation.unverified_statement() {
            status.key_id = Some(statement.key_id.clone());
            status.worker_id = Some(statement.worker_id.clone());
            status.signed_at = Some(statement.signed_at);
        }
        let statement = keys.verify(&attestation)?;
        statement.matches(&record.request, verdict)?;
        Ok(())
    });
    match outcome {
        Ok(()) => status.verified = Some(true),
        Err(error) => {
            status.verified = Some(false);
            status.failed_check = Some(error.check());
            status.message = Some(error.to_string());
        }
    }
    Ok(Json(status))
}

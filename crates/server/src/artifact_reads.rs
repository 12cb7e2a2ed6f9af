//! `GET /v1/checks/{id}/artifacts/{name}`: a check's artifacts, read back
//! through the API. Only the check's tenant (or an operator) may read them;
//! a check of another tenant is answered as no check at all.
//!
//! Names are a closed list (`VERDICT_ARTIFACTS`): the name in the path is
//! compared with it and never used to build a key, so no name reaches the
//! object store but those of the list.

use crate::error::{excerpt, ApiError};
use crate::{auth, input_limits, AppState};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use leanfarm_store::artifacts::VERDICT_ARTIFACTS;
use std::sync::Arc;

pub(crate) async fn get_artifact(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, name)) =
        path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let reader = auth::tenant_or_operator(&state, &headers).await?;
    let Some(name) = VERDICT_ARTIFACTS
        .into_iter()
        .find(|known| *known == name.as_str())
    else {
        return Err(ApiError::UnknownArtifact(
            excerpt(&name),
            VERDICT_ARTIFACTS.join(", "),
        ));
    };
    if id.len() > input_limits::MAX_ID_BYTES {
        return Err(ApiError::NotFound(excerpt(&id)));
    }
    let record = match state.store.get(&id).await? {
        Some(record) if reader.may_read(&record.tenant) => record,
        _ => return Err(ApiError::NotFound(excerpt(&id))),
    };
    let bytes = state
        .artifacts
        .get(&record.id, name)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .ok_or_else(|| ApiError::ArtifactNotFound {
            job_id: excerpt(&record.id),
            name: name.to_string(),
        })?;
    let mut response = bytes.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

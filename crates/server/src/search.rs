//! `GET /v1/search?q=...&k=...`: premise search over the declarations index
//! that `leanfarm serve --search-index` opened (`leanfarm_retriever`).
//!
//! The query goes to the retriever as text; the retriever turns it into
//! words and never hands it to FTS5's query parser. The search runs on a
//! blocking thread: it reads a file.

use crate::error::ApiError;
use crate::views::percent_decodes_to_utf8;
use crate::{auth, AppState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use leanfarm_retriever::{Premise, MAX_RESULTS};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The longest query, in characters (as the OpenAPI `maxLength` counts).
pub(crate) const MAX_QUERY_CHARS: usize = 1024;

/// Results when the request names no `k`.
const DEFAULT_RESULTS: usize = 10;

/// The retriever as the prover's premise source: the premises of a prove
/// job's prompt come from the same index as `/v1/search`.
pub struct RetrieverPremises(pub Arc<leanfarm_retriever::Retriever>);

impl leanfarm_prove::PremiseSource for RetrieverPremises {
    fn search(&self, query: &str, k: usize) -> Vec<leanfarm_prove::Premise> {
        self.0
            .search(query, k)
            .into_iter()
            .map(|premise| leanfarm_prove::Premise {
                name: premise.name,
                kind: premise.kind,
                signature: premise.signature,
                module: premise.module,
                docstring: premise.docstring,
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    q: String,
    k: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct SearchResponse {
    premises: Vec<Premise>,
}

pub(crate) async fn search(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    if !percent_decodes_to_utf8(uri.query().unwrap_or("")) {
        return Err(ApiError::InvalidQuery(
            "a percent-encoded value is not UTF-8".into(),
        ));
    }
    let Query(query) = query.map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    auth::user_tenant(&state, &headers).await?;
    if query.q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::InvalidQuery(format!(
            "`q` is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let k = query.k.unwrap_or(DEFAULT_RESULTS);
    if !(1..=MAX_RESULTS).contains(&k) {
        return Err(ApiError::InvalidQuery(format!(
            "`k` must be between 1 and {MAX_RESULTS}"
        )));
    }
    let Some(retriever) = state.search_index.get().cloned() else {
        return Err(ApiError::SearchNotConfigured);
    };
    let premises = tokio::task::spawn_blocking(move || retriever.try_search(&query.q, k))
        .await
        .map_err(|error| ApiError::Internal(format!("search task failed: {error}")))?
        .map_err(|error| ApiError::SearchFailed(error.to_string()))?;
    Ok(Json(SearchResponse { premises }))
}

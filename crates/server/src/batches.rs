//! A batch as a researcher follows it: its progress (`GET
//! /v1/batches/{id}`, with an optional long poll), its results exported as
//! JSONL or CSV (`/results`, streamed page by page), and its verdicts as
//! server-sent events while they finish (`/events`).
//!
//! Every handler answers only for the caller's own tenant: another
//! tenant's batch is 404, exactly like a batch that does not exist. This
//! module only reads the store; it must never change a job's state.

use crate::error::{excerpt, ApiError};
use crate::submit::{cancel, wait_duration, ChangeWaiter};
use crate::views::{percent_decodes_to_utf8, CheckView};
use crate::{auth, input_limits, AppState};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use leanfarm_core::CheckStatus;
use leanfarm_store::{
    BatchCounts, CancelScope, Cancellation, FinishedCursor, JobRecord, ListFilter, QueueCounts,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Jobs read from the store per page of an export or an event stream.
const EXPORT_PAGE: usize = 500;

/// How often an event stream sends a comment line when nothing finished,
/// so that proxies keep the connection open.
const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A batch's progress as the API shows it.
#[derive(Serialize)]
pub(crate) struct BatchView {
    batch_id: String,
    /// Every job of the batch.
    total: u64,
    /// Jobs by state.
    states: QueueCounts,
    /// Verdicts so far by status (statuses with none are absent).
    statuses: BTreeMap<CheckStatus, u64>,
    /// Jobs that are final (`done` or `dead`).
    finished: u64,
    /// `finished / total`, from 0 to 1.
    progress: f64,
    /// Whether every job is final.
    all_final: bool,
}

impl BatchView {
    fn new(batch_id: &str, counts: BatchCounts) -> BatchView {
        let finished = counts.states.done + counts.states.dead;
        BatchView {
            batch_id: batch_id.to_string(),
            total: counts.total,
            progress: finished as f64 / counts.total.max(1) as f64,
            all_final: counts.all_final(),
            finished,
            states: counts.states,
            statuses: counts.statuses,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchQuery {
    /// Seconds to wait until every job of the batch is final.
    wait: Option<f64>,
}

fn batch_id_from(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    Ok(id)
}

fn query_from<T>(
    uri: &axum::http::Uri,
    query: Result<Query<T>, QueryRejection>,
) -> Result<T, ApiError> {
    if !percent_decodes_to_utf8(uri.query().unwrap_or("")) {
        return Err(ApiError::InvalidQuery(
            "a percent-encoded value is not UTF-8".into(),
        ));
    }
    let Query(query) = query.map_err(|rejection| ApiError::InvalidQuery(rejection.body_text()))?;
    Ok(query)
}

/// The batch's counts for this tenant, or 404.
async fn counts_of(
    state: &AppState,
    tenant: &str,
    batch_id: &str,
) -> Result<BatchCounts, ApiError> {
    // No batch id is longer: a longer one names no batch (and is not looked up).
    if batch_id.len() > input_limits::MAX_ID_BYTES {
        return Err(ApiError::BatchNotFound(excerpt(batch_id)));
    }
    state
        .store
        .batch_counts(tenant, batch_id)
        .await?
        .ok_or_else(|| ApiError::BatchNotFound(excerpt(batch_id)))
}

/// `GET /v1/batches/{id}`: counts by state and status, and progress; with
/// `?wait=S`, answers once every job is final or after S seconds.
pub(crate) async fn get_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<BatchQuery>, QueryRejection>,
) -> Result<Json<BatchView>, ApiError> {
    let batch_id = batch_id_from(path)?;
    let query = query_from(&uri, query)?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    let wait = wait_duration(&state, query.wait)?;
    let mut waiter = ChangeWaiter::new(&state, wait);
    let mut counts = counts_of(&state, &tenant, &batch_id).await?;
    while !counts.all_final() && waiter.changed().await {
        counts = counts_of(&state, &tenant, &batch_id).await?;
    }
    Ok(Json(BatchView::new(&batch_id, counts)))
}

/// `DELETE /v1/batches/{id}`: cancel every open check of the batch.
pub(crate) async fn cancel_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Cancellation>, ApiError> {
    let batch_id = batch_id_from(path)?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    counts_of(&state, &tenant, &batch_id).await?;
    Ok(Json(
        cancel(&state, &tenant, &CancelScope::Batch(batch_id)).await?,
    ))
}

/// The formats a batch's results export to.
#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ExportFormat {
    /// One check per line, as `GET /v1/checks/{id}` shows it.
    #[default]
    Jsonl,
    /// One row per check: `CSV_COLUMNS`.
    Csv,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    #[serde(default)]
    format: ExportFormat,
    /// Only checks whose verdict has this status.
    status: Option<CheckStatus>,
}

/// The columns of a CSV export, in order.
pub(crate) const CSV_COLUMNS: [&str; 12] = [
    "id",
    "custom_id",
    "state",
    "status",
    "reason_code",
    "reason_message",
    "attempts",
    "created_at",
    "finished_at",
    "toolchain",
    "project",
    "error",
];

/// `GET /v1/batches/{id}/results?format=jsonl|csv[&status=S]`: every check
/// of the batch, oldest first, streamed a page at a time. A failure of the
/// store in the middle of the stream cuts the response short (the chunked
/// body does not end properly), so a client never takes a partial export
/// for a whole one.
pub(crate) async fn export_results(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let batch_id = batch_id_from(path)?;
    let query = query_from(&uri, query)?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    counts_of(&state, &tenant, &batch_id).await?;
    let format = query.format;
    let first_chunk = match format {
        ExportFormat::Jsonl => Bytes::new(),
        ExportFormat::Csv => Bytes::from(format!("{}\r\n", CSV_COLUMNS.join(","))),
    };
    let filter = ListFilter {
        tenant: Some(tenant),
        batch_id: Some(batch_id.clone()),
        status: query.status,
        limit: EXPORT_PAGE,
        ..ListFilter::default()
    };
    struct Cursor {
        state: Arc<AppState>,
        filter: ListFilter,
        first_chunk: Option<Bytes>,
        finished: bool,
    }
    let cursor = Cursor {
        state: Arc::clone(&state),
        filter,
        first_chunk: Some(first_chunk),
        finished: false,
    };
    let pages = futures::stream::unfold(cursor, move |mut cursor| async move {
        if let Some(first) = cursor.first_chunk.take() {
            return Some((Ok::<Bytes, std::io::Error>(first), cursor));
        }
        if cursor.finished {
            return None;
        }
        let records = match cursor.state.store.list(&cursor.filter).await {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "a batch export failed while streaming");
                cursor.finished = true;
                return Some((Err(std::io::Error::other(error.to_string())), cursor));
            }
        };
        cursor.finished = records.len() < cursor.filter.limit;
        cursor.filter.after = records.last().map(|record| record.id.clone());
        let mut chunk = String::new();
        for record in records {
            match format {
                ExportFormat::Jsonl => {
                    let line = serde_json::to_string(&CheckView::from(record))
                        .expect("a check view serializes");
                    chunk.push_str(&line);
                    chunk.push('\n');
                }
                ExportFormat::Csv => {
                    chunk.push_str(&csv_row(&CheckView::from(record)));
                    chunk.push_str("\r\n");
                }
            }
        }
        Some((Ok(Bytes::from(chunk)), cursor))
    });
    let (content_type, extension) = match format {
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let disposition = format!("attachment; filename=\"batch-{batch_id}.{extension}\"");
    let mut response = Response::new(Body::from_stream(pages));
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response_headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// One CSV row (RFC 4180: a field with a comma, quote or line break is
/// quoted, its quotes doubled).
pub(crate) fn csv_row(view: &CheckView) -> String {
    let state = serde_json::to_value(view.state)
        .ok()
        .and_then(|value| value.as_str().map(str::to_string))
        .unwrap_or_default();
    let verdict = view.verdict.as_ref();
    let reason = verdict.and_then(|verdict| verdict.reason());
    let fields = [
        view.id.clone(),
        view.custom_id.clone().unwrap_or_default(),
        state,
        verdict.map_or(String::new(), |verdict| {
            verdict.status().as_str().to_string()
        }),
        reason.map_or(String::new(), |reason| reason.code.as_str().to_string()),
        reason.map_or(String::new(), |reason| reason.message.clone()),
        view.attempts.to_string(),
        view.created_at.to_string(),
        view.finished_at.map_or(String::new(), |at| at.to_string()),
        verdict.map_or(String::new(), |verdict| verdict.toolchain.clone()),
        verdict.map_or(String::new(), |verdict| verdict.project.clone()),
        view.error.clone().unwrap_or_default(),
    ];
    fields
        .iter()
        .map(|field| csv_field(field))
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// `GET /v1/batches/{id}/events`: server-sent events. Each check of the
/// batch that is final, or becomes final while the stream is open, is sent
/// as `event: verdict` with the check as `data`, in the order the checks
/// finished; its event id, `<finished_at>:<check id>`, is its place in that
/// order. A client that reconnects with `Last-Event-ID` gets exactly the
/// verdicts after that place: none lost, none again. So that the order is
/// settled before it is sent, a verdict goes out once it has been final
/// for `EVENTS_SETTLE` (all at once when the whole batch is final). When
/// every check is final, `event: end` with the batch's counts, and the
/// stream closes. A comment line keeps an idle stream open; the stream
/// also closes when the farm shuts down.
pub(crate) async fn batch_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let batch_id = batch_id_from(path)?;
    let tenant = auth::user_tenant(&state, &headers).await?;
    let resume_after = last_event_id(&headers)?;
    counts_of(&state, &tenant, &batch_id).await?;
    struct Events {
        state: Arc<AppState>,
        tenant: String,
        batch_id: String,
        /// The last verdict sent (or, on a resumed stream, received before).
        sent_up_to: Option<FinishedCursor>,
        waiter: ChangeWaiter,
        since_last_event: std::time::Instant,
        ended: bool,
        first: bool,
    }
    // A waiter with a deadline far away: the stream ends when the batch
    // does, or when the farm shuts down.
    let waiter = ChangeWaiter::new(&state, Duration::from_secs(u64::from(u32::MAX)));
    let events = Events {
        waiter,
        state: Arc::clone(&state),
        tenant,
        batch_id,
        sent_up_to: resume_after,
        since_last_event: std::time::Instant::now(),
        ended: false,
        first: true,
    };
    let stream = futures::stream::unfold(events, |mut events| async move {
        if events.ended {
            return None;
        }
        loop {
            if !events.first
                && (!events.waiter.changed().await
                    || events.state.shutting_down.load(Ordering::Relaxed))
            {
                events.ended = true;
                return Some((
                    Ok(Bytes::from_static(b": the farm is shutting down\n\n")),
                    events,
                ));
            }
            events.first = false;
            match next_events(
                &mut events.sent_up_to,
                &events.state,
                &events.tenant,
                &events.batch_id,
            )
            .await
            {
                Err(error) => {
                    tracing::error!(%error, "a batch event stream failed");
                    return Some((Err(std::io::Error::other(error.to_string())), events));
                }
                Ok((chunk, ended)) => {
                    events.ended = ended;
                    if !chunk.is_empty() {
                        events.since_last_event = std::time::Instant::now();
                        return Some((Ok(Bytes::from(chunk)), events));
                    }
                    if events.since_last_event.elapsed() >= EVENTS_KEEP_ALIVE {
                        events.since_last_event = std::time::Instant::now();
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), events));
                    }
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response.into_response())
}

/// How long a verdict has been final before the event stream sends it:
/// a completion committed late (its transaction slower, or its replica's
/// clock behind) then still comes in its place in the order, never after
/// a verdict already sent.
const EVENTS_SETTLE_MILLIS: i64 = 1000;

/// The longest `Last-Event-ID` accepted, in bytes.
const MAX_EVENT_ID_BYTES: usize = 200;

/// The event id of a verdict: its place in the order the batch finished.
fn event_id(cursor: &FinishedCursor) -> String {
    format!("{}:{}", cursor.finished_at, cursor.job_id)
}

/// The `Last-Event-ID` header, if any, as a place in the order; a value
/// that is not an event id of a batch stream is 400.
fn last_event_id(headers: &HeaderMap) -> Result<Option<FinishedCursor>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::InvalidRequest(
            "the last-event-id header is not an event id of a batch stream (`<finished_at>:<check id>`)".into(),
        )
    };
    let text = value.to_str().map_err(|_| invalid())?;
    if text.is_empty() {
        // The event source standard: an empty id resets the stream.
        return Ok(None);
    }
    if text.len() > MAX_EVENT_ID_BYTES {
        return Err(invalid());
    }
    let (finished_at, job_id) = text.split_once(':').ok_or_else(invalid)?;
    let finished_at: i64 = finished_at.parse().map_err(|_| invalid())?;
    if job_id.is_empty() || job_id.len() > input_limits::MAX_ID_BYTES {
        return Err(invalid());
    }
    Ok(Some(FinishedCursor {
        finished_at,
        job_id: job_id.to_string(),
    }))
}

/// The events for checks that finished after `sent_up_to` (and settled),
/// and whether the batch is finished (then the `end` event is included).
async fn next_events(
    sent_up_to: &mut Option<FinishedCursor>,
    state: &AppState,
    tenant: &str,
    batch_id: &str,
) -> Result<(String, bool), ApiError> {
    // Counts first: when every check is final now, the reads below see
    // every verdict, and the end is never announced before one of them.
    let counts = counts_of(state, tenant, batch_id).await?;
    let all_final = counts.all_final();
    let finished_by = (!all_final).then(|| leanfarm_store::now_millis() - EVENTS_SETTLE_MILLIS);
    let mut chunk = String::new();
    loop {
        let records: Vec<JobRecord> = state
            .store
            .batch_finished(
                tenant,
                batch_id,
                sent_up_to.as_ref(),
                finished_by,
                EXPORT_PAGE,
            )
            .await?;
        let last_page = records.len() < EXPORT_PAGE;
        for record in records {
            let cursor = FinishedCursor {
                finished_at: record.finished_at.unwrap_or(0),
                job_id: record.id.clone(),
            };
            let data =
                serde_json::to_string(&CheckView::from(record)).expect("a check view serializes");
            chunk.push_str(&format!(
                "event: verdict\nid: {}\ndata: {data}\n\n",
                event_id(&cursor)
            ));
            *sent_up_to = Some(cursor);
        }
        if last_page {
            break;
        }
    }
    if all_final {
        let data = serde_json::to_string(&BatchView::new(batch_id, counts))
            .expect("a batch view serializes");
        chunk.push_str(&format!("event: end\ndata: {data}\n\n"));
    }
    Ok((chunk, all_final))
}

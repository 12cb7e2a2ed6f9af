//! The farm's HTTP API as `leanfarm check` uses it: submit a batch (with an
//! idempotency key, so that a retry never queues it twice), follow its
//! progress with long polls, and export its results. Failures that pass
//! (no connection, 429, 502, 503, 504) are retried with backoff for as long
//! as an outage may last; every other failure carries the farm's
//! `{code, message}`.

use crate::CliError;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long the farm may stay unreachable (or answer only 5xx/429 on
/// reads) before the run gives up.
const OUTAGE_LIMIT: Duration = Duration::from_secs(600);

/// The first and the longest pause between two tries.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Time allowed for a request beyond the wait it asks for.
const REQUEST_SLACK: Duration = Duration::from_secs(60);

/// A request the farm did not answer with success.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// The HTTP status; none when no answer came.
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
    /// The farm's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
}

impl ApiFailure {
    /// Whether trying again later may succeed.
    pub fn passes(&self) -> bool {
        match self.status {
            // A certificate the client does not trust stays untrusted.
            None => self.code != "tls_refused",
            Some(status) => matches!(status, 429 | 502 | 503 | 504),
        }
    }

    fn no_answer(error: reqwest::Error) -> ApiFailure {
        let refused = leanfarm_worker::tls::tls_failure(&error).is_some();
        ApiFailure {
            status: None,
            code: if refused { "tls_refused" } else { "no_answer" }.to_string(),
            message: leanfarm_worker::tls::describe(&error),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(formatter, "{status} {}: {}", self.code, self.message),
            None => write!(formatter, "{}", self.message),
        }
    }
}

impl From<ApiFailure> for CliError {
    fn from(failure: ApiFailure) -> CliError {
        CliError::Request(failure.to_string())
    }
}

pub struct FarmClient {
    http: reqwest::Client,
    server: String,
    token: Option<String>,
}

impl FarmClient {
    /// A client of the farm at `server`, trusting `ca_cert`'s certificates
    /// besides the system's roots.
    pub fn new(
        server: &str,
        token: Option<String>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<FarmClient, CliError> {
        let http = leanfarm_worker::tls::client_builder(ca_cert)
            .map_err(|error| CliError::Config(format!("--ca-cert: {error}")))?
            .build()
            .map_err(|error| CliError::Config(format!("cannot build the http client: {error}")))?;
        Ok(FarmClient {
            http,
            server: server.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        wait: Duration,
    ) -> Result<String, ApiFailure> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .timeout(wait + REQUEST_SLACK)
            .send()
            .await
            .map_err(ApiFailure::no_answer)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map(|seconds| Duration::from_secs_f64(seconds.min(60.0)));
        // A body cut short is a failure to answer, never a shorter answer.
        let body = response.text().await.map_err(ApiFailure::no_answer)?;
        if status.is_success() {
            return Ok(body);
        }
        let error: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        Err(ApiFailure {
            status: Some(status.as_u16()),
            code: error["code"].as_str().unwrap_or("http_error").to_string(),
            message: error["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| body.chars().take(200).collect()),
            retry_after,
        })
    }

    fn json(body: &str) -> Result<Value, ApiFailure> {
        serde_json::from_str(body).map_err(|error| ApiFailure {
            status: None,
            code: "invalid_answer".to_string(),
            message: format!("the farm's answer is not JSON: {error}"),
            retry_after: None,
        })
    }

    /// `POST /v1/checks` without waiting: the batch's id and its jobs' ids
    /// in snippet order.
    pub async fn submit(
        &self,
        body: &Value,
        idempotency_key: &str,
    ) -> Result<(String, Vec<String>), ApiFailure> {
        let request = self
            .http
            .post(format!("{}/v1/checks", self.server))
            .header("Idempotency-Key", idempotency_key)
            .json(body);
        let answer = FarmClient::json(&self.send(request, Duration::ZERO).await?)?;
        let batch_id = answer["batch_id"].as_str().unwrap_or_default().to_string();
        let job_ids = answer["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|result| result["id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok((batch_id, job_ids))
    }

    /// `GET /v1/batches/{id}?wait=S`: the batch's progress.
    pub async fn batch(&self, batch_id: &str, wait: Duration) -> Result<Value, ApiFailure> {
        let request = self
            .http
            .get(self.url(&["v1", "batches", batch_id]))
            .query(&[("wait", wait.as_secs_f64())]);
        FarmClient::json(&self.send(request, wait).await?)
    }

    /// `GET /v1/batches/{id}/results?format=jsonl`: every check of the batch.
    pub async fn export(&self, batch_id: &str) -> Result<Vec<Value>, ApiFailure> {
        let request = self
            .http
            .get(self.url(&["v1", "batches", batch_id, "results"]))
            .query(&[("format", "jsonl")]);
        let body = self.send(request, Duration::ZERO).await?;
        body.lines()
            .filter(|line| !line.trim().is_empty())
            .map(FarmClient::json)
            .collect()
    }

    fn url(&self, segments: &[&str]) -> String {
        let mut url = self.server.clone();
        for segment in segments {
            url.push('/');
            url.push_str(&percent_encode_segment(segment));
        }
        url
    }
}

/// A path segment with every byte but unreserved ones percent-encoded.
fn percent_encode_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Tries of one request through an outage: `pause` says how long to wait
/// after a failure that passes, until the outage has lasted too long.
pub struct Backoff {
    next: Duration,
    failing_since: Option<Instant>,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            next: FIRST_BACKOFF,
            failing_since: None,
        }
    }

    /// After `failure`: the pause before the next try, or the failure
    /// itself when it does not pass or the outage is over its limit.
    pub fn pause(&mut self, failure: ApiFailure) -> Result<Duration, ApiFailure> {
        if !failure.passes() {
            return Err(failure);
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        // Backpressure (429) is the farm at work, not an outage.
        if failure.status != Some(429) && since.elapsed() > OUTAGE_LIMIT {
            return Err(ApiFailure {
                message: format!(
                    "{} (the farm has failed for {} s)",
                    failure.message,
                    since.elapsed().as_secs()
                ),
                ..failure
            });
        }
        let pause = failure.retry_after.unwrap_or(self.next);
        self.next = (self.next * 2).min(MAX_BACKOFF);
        Ok(pause)
    }
}

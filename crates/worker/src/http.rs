//! `HttpQueue`: the `JobQueue` of `leanfarm worker`, a client of a farm's
//! `/v1/worker/*` endpoints with a worker token.
//!
//! It knows every API replica it was given and uses one at a time; a call
//! that cannot reach its replica, or that the replica answers with 502, 503
//! or 504, is made again on the next replica, and the worker stays there.
//! Leases live in the store, so any replica renews or completes them.
//!
//! It holds no database or bucket credentials and must never need them:
//! the server does what follows a stored verdict (metrics, artifacts,
//! waking the requests that wait for it).

use crate::protocol::{
    CompleteRequest, CompleteResponse, LeaseRef, LeaseRequest, LeaseResponse, ReleaseRequest,
    ReleaseResponse, RenewRequest, RenewResponse,
};
use crate::queue::{JobQueue, QueueError};
use leanfarm_core::Verdict;
use leanfarm_store::{CompleteOutcome, Lease, ReleaseOutcome, WorkerOffer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a lease request waits on the server for work.
pub const LEASE_WAIT_SECONDS: f64 = 10.0;

/// How long any one call to the farm may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the start-up probe of a replica's certificate may take (a
/// replica that does not answer in time is waited for as usual).
const CERTIFICATE_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// After a lease that waited on the server and found nothing, the pause
/// before asking again.
const PAUSE_AFTER_EMPTY_LEASE: Duration = Duration::from_millis(50);

/// A client of the `/v1/worker/*` endpoints of one or more replicas.
pub struct HttpQueue {
    client: reqwest::Client,
    base_urls: Vec<String>,
    /// The replica in use, an index into `base_urls`.
    current: AtomicUsize,
    token: String,
    /// Signs each completion's verdict, when the worker has keys.
    signer: Option<crate::signing::VerdictSigner>,
}

impl HttpQueue {
    /// A client of the farm at `base_url` (e.g. `http://leanfarm:8000`).
    pub fn new(base_url: &str, token: &str) -> Result<HttpQueue, QueueError> {
        HttpQueue::with_servers(&[base_url.to_string()], token)
    }

    /// A client of the farm's replicas at `base_urls`, starting with the first.
    pub fn with_servers(base_urls: &[String], token: &str) -> Result<HttpQueue, QueueError> {
        HttpQueue::with_servers_and_ca(base_urls, token, None)
    }

    /// `with_servers`, trusting `ca_cert`'s certificates (PEM) besides the
    /// system's roots for `https://` replicas.
    pub fn with_servers_and_ca(
        base_urls: &[String],
        token: &str,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<HttpQueue, QueueError> {
        if base_urls.is_empty() {
            return Err(QueueError::NoServers);
        }
        let client = crate::tls::client_builder(ca_cert)?
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(QueueError::Client)?;
        Ok(HttpQueue {
            client,
            base_urls: base_urls
                .iter()
                .map(|url| url.trim_end_matches('/').to_string())
                .collect(),
            current: AtomicUsize::new(0),
            token: token.to_string(),
            signer: None,
        })
    }

    /// Sign every verdict this queue completes with `signer`'s keys.
    pub fn with_signer(mut self, signer: crate::signing::VerdictSigner) -> HttpQueue {
        self.signer = Some(signer);
        self
    }

    /// The replica calls go to now.
    pub fn current_server(&self) -> &str {
        &self.base_urls[self.current.load(Ordering::Relaxed) % self.base_urls.len()]
    }

    /// Refuse at once a replica whose TLS certificate is not trusted: each
    /// `https://` replica is asked for `/healthz`, and a failed TLS handshake
    /// is an error (a replica that is down or answers an error is not:
    /// the worker waits for it as usual).
    pub async fn verify_certificates(&self) -> Result<(), QueueError> {
        for base_url in self
            .base_urls
            .iter()
            .filter(|url| url.starts_with("https://"))
        {
            let probe = self
                .client
                .get(format!("{base_url}/healthz"))
                .timeout(CERTIFICATE_PROBE_TIMEOUT);
            let Err(error) = probe.send().await else {
                continue;
            };
            if let Some(problem) = crate::tls::tls_failure(&error) {
                return Err(QueueError::UntrustedServer {
                    server: base_url.clone(),
                    problem,
                });
            }
        }
        Ok(())
    }

    /// Call `path` on the current replica, and on each other one in turn
    /// while a replica fails (see `is_replica_failure`).
    async fn call<Body: serde::Serialize, Answer: serde::de::DeserializeOwned>(
        &self,
        path: &'static str,
        body: &Body,
    ) -> Result<Answer, QueueError> {
        let count = self.base_urls.len();
        let first = self.current.load(Ordering::Relaxed) % count;
        let mut last_failure = None;
        for offset in 0..count {
            let index = (first + offset) % count;
            let base_url = &self.base_urls[index];
            match self.call_one(base_url, path, body).await {
                Ok(answer) => {
                    if offset > 0 {
                        self.current.store(index, Ordering::Relaxed);
                        tracing::warn!(server = %base_url, "moved to another replica");
                    }
                    return Ok(answer);
                }
                Err(error) if error.is_replica_failure() => {
                    if count > 1 {
                        tracing::warn!(server = %base_url, %error, "replica failed; trying the next");
                    }
                    last_failure = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_failure.expect("at least one replica was tried"))
    }

    async fn call_one<Body: serde::Serialize, Answer: serde::de::DeserializeOwned>(
        &self,
        base_url: &str,
        path: &'static str,
        body: &Body,
    ) -> Result<Answer, QueueError> {
        let response = self
            .client
            .post(format!("{base_url}{path}"))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|source| QueueError::Unreachable { path, source })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(QueueError::Refused {
                path,
                status: status.as_u16(),
                body,
            });
        }
        response
            .json()
            .await
            .map_err(|source| QueueError::UnreadableAnswer { path, source })
    }
}

impl JobQueue for HttpQueue {
    async fn lease(
        &self,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: WorkerOffer,
    ) -> Result<Vec<Lease>, QueueError> {
        let request = LeaseRequest {
            worker_id: worker_id.to_string(),
            max,
            lease_seconds: lease.as_secs_f64(),
            warm_headers: offer.warm_headers,
            wait_seconds: LEASE_WAIT_SECONDS,
            toolchain: offer.toolchain,
            project: offer.project,
        };
        let answer: LeaseResponse = self.call("/v1/worker/lease", &request).await?;
        Ok(answer.leases)
    }

    async fn renew(&self, lease: &Lease, duration: Duration) -> Result<bool, QueueError> {
        let request = RenewRequest {
            leases: vec![LeaseRef {
                job_id: lease.job_id.clone(),
                lease_id: lease.lease_id.clone(),
            }],
            lease_seconds: duration.as_secs_f64(),
        };
        let answer: RenewResponse = self.call("/v1/worker/renew", &request).await?;
        Ok(answer.held.first() == Some(&true))
    }

    async fn complete(
        &self,
        lease: &Lease,
        verdict: &Verdict,
        _started: Instant,
    ) -> Result<CompleteOutcome, QueueError> {
        let request = CompleteRequest {
            job_id: lease.job_id.clone(),
            lease_id: lease.lease_id.clone(),
            verdict: verdict.clone(),
            attestation: crate::signing::attest(self.signer.as_ref(), lease, verdict)?,
        };
        let answer: CompleteResponse = self.call("/v1/worker/complete", &request).await?;
        Ok(answer.outcome)
    }

    async fn release(
        &self,
        lease: &Lease,
        error: &str,
        retry_after: Duration,
    ) -> Result<ReleaseOutcome, QueueError> {
        let request = ReleaseRequest {
            job_id: lease.job_id.clone(),
            lease_id: lease.lease_id.clone(),
            error: error.to_string(),
            retry_after_seconds: retry_after.as_secs_f64(),
        };
        let answer: ReleaseResponse = self.call("/v1/worker/release", &request).await?;
        Ok(answer.outcome)
    }

    /// The lease already waited on the server; pause only briefly.
    async fn wait_for_work(&self, _poll_interval: Duration) {
        tokio::time::sleep(PAUSE_AFTER_EMPTY_LEASE).await;
    }
}

impl crate::sessions::SessionOps for HttpQueue {
    async fn take(
        &self,
        host: &str,
        open_capacity: usize,
    ) -> Result<Vec<leanfarm_store::SessionOpRow>, QueueError> {
        let request = crate::sessions::PollRequest {
            host: host.to_string(),
            open_capacity,
            wait_seconds: crate::sessions::POLL_WAIT_SECONDS,
        };
        let answer: crate::sessions::PollResponse =
            self.call("/v1/worker/sessions/poll", &request).await?;
        Ok(answer.ops)
    }

    async fn complete(&self, done: leanfarm_store::SessionOpDone) -> Result<(), QueueError> {
        let _: crate::sessions::CompleteResponse =
            self.call("/v1/worker/sessions/complete", &done).await?;
        Ok(())
    }

    async fn live(&self, host: &str) -> Result<Vec<String>, QueueError> {
        let request = crate::sessions::LiveRequest {
            host: host.to_string(),
        };
        let answer: crate::sessions::LiveResponse =
            self.call("/v1/worker/sessions/live", &request).await?;
        Ok(answer.sessions)
    }
}

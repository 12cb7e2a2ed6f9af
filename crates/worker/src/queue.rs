//! The `JobQueue` trait: the five operations the worker loop needs from
//! wherever its jobs come from (lease, renew, complete, release, and
//! waiting for work), and the one error type they fail with.
//!
//! An implementation must never turn a Lean verdict into a failure: a
//! `QueueError` means the queue could not be reached or refused the call.

use leanfarm_core::Verdict;
use leanfarm_store::{CompleteOutcome, Lease, ReleaseOutcome, StoreError, WorkerOffer};
use std::future::Future;
use std::time::{Duration, Instant};

/// Why an operation on the queue failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The farm's HTTP client could not be built.
    #[error("cannot build the http client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request did not reach the farm, or no answer came back.
    #[error("{path}: the farm could not be reached: {}", crate::tls::describe(.source))]
    Unreachable {
        path: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The farm answered with an error status.
    #[error("{path}: the farm refused with {status}: {body}")]
    Refused {
        path: &'static str,
        status: u16,
        body: String,
    },
    /// The farm's answer is not the JSON the worker API promises.
    #[error("{path}: the farm's answer cannot be read: {source}")]
    UnreadableAnswer {
        path: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The worker's signing keys could not sign the verdict.
    #[error("cannot sign the verdict: {0}")]
    Signing(#[from] leanfarm_attest::KeyError),
    /// The store behind an in-process queue failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA certificate the client should trust cannot be used.
    #[error(transparent)]
    CaCertificate(#[from] crate::tls::CaError),
    /// A farm's TLS certificate is not one the worker trusts (or the TLS
    /// handshake failed otherwise): no call to it can succeed.
    #[error("{server}: tls handshake refused, the farm's certificate is not trusted (pass its ca with --ca-cert): {problem}")]
    UntrustedServer { server: String, problem: String },
    /// An HTTP queue was given no farm URL.
    #[error("no farm url given: a worker needs at least one --server")]
    NoServers,
}

impl QueueError {
    /// Whether the replica that was called failed (not the request): it could
    /// not be reached, or answered 502, 503 or 504. Another replica of the
    /// same farm may take the call.
    pub fn is_replica_failure(&self) -> bool {
        match self {
            QueueError::Unreachable { .. } => true,
            QueueError::Refused { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }

    /// Whether the farm refused the request for what it is (400, 404, 413,
    /// 422): sending it again, to any replica, cannot succeed. A refused
    /// token (401, 403) is not: a worker restarted with a good one can.
    pub fn is_refused_for_good(&self) -> bool {
        matches!(
            self,
            QueueError::Refused {
                status: 400 | 404 | 413 | 422,
                ..
            }
        )
    }
}

/// Where the worker loop gets its jobs and sends their outcomes.
///
/// Each method is one call; the loop retries what must not be lost.
pub trait JobQueue: Send + Sync + 'static {
    /// Lease up to `max` jobs this worker can run, each for `lease`.
    /// May wait a little for work; an empty list means none came.
    fn lease(
        &self,
        worker_id: &str,
        max: usize,
        lease: Duration,
        offer: WorkerOffer,
    ) -> impl Future<Output = Result<Vec<Lease>, QueueError>> + Send;

    /// Extend a lease by `duration`; `false` when it is no longer held.
    fn renew(
        &self,
        lease: &Lease,
        duration: Duration,
    ) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Store the verdict of a leased job; `started` is when its check began.
    fn complete(
        &self,
        lease: &Lease,
        verdict: &Verdict,
        started: Instant,
    ) -> impl Future<Output = Result<CompleteOutcome, QueueError>> + Send;

    /// Hand a job back after a failure of the farm (never a Lean verdict),
    /// runnable again after `retry_after`.
    fn release(
        &self,
        lease: &Lease,
        error: &str,
        retry_after: Duration,
    ) -> impl Future<Output = Result<ReleaseOutcome, QueueError>> + Send;

    /// Wait before leasing again after a lease found no work: until work may
    /// be there, or at most about `poll_interval`.
    fn wait_for_work(&self, poll_interval: Duration) -> impl Future<Output = ()> + Send;

    /// A check began on a leased job (for the queue's own gauges).
    fn check_started(&self) {}

    /// A check ended, whatever its outcome.
    fn check_finished(&self) {}
}

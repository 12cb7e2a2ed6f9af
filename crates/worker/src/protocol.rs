//! The worker API's wire types: the JSON bodies of
//! `POST /v1/worker/{lease,renew,complete,release}` and their answers.
//!
//! The HTTP client of this crate (`HttpQueue`) sends the requests and the
//! server's handlers parse them, so both sides read one definition. The
//! requests refuse unknown fields. This module must never change a field's
//! name or default: workers and servers of different builds talk through it.

use leanfarm_attest::Attestation;
use leanfarm_core::Verdict;
use leanfarm_store::{CompleteOutcome, Lease, ReleaseOutcome};
use serde::{Deserialize, Serialize};

/// `POST /v1/worker/lease`: ask for up to `max` jobs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    pub worker_id: String,
    /// Jobs wanted (free slots).
    pub max: usize,
    pub lease_seconds: f64,
    /// Headers the worker holds warm REPLs for; their jobs go to it first.
    #[serde(default)]
    pub warm_headers: Vec<String>,
    /// How long to wait on the server for work when there is none.
    #[serde(default)]
    pub wait_seconds: f64,
    /// The worker's toolchain and project names: jobs that require others
    /// are not leased to it.
    #[serde(default)]
    pub toolchain: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeaseResponse {
    pub leases: Vec<Lease>,
}

/// One lease, named by its job and lease ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    pub job_id: String,
    pub lease_id: String,
}

/// `POST /v1/worker/renew`: extend leases the worker holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub leases: Vec<LeaseRef>,
    pub lease_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenewResponse {
    /// Per lease, whether the worker still holds it.
    pub held: Vec<bool>,
}

/// `POST /v1/worker/complete`: store a job's verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub job_id: String,
    pub lease_id: String,
    pub verdict: Verdict,
    /// The worker's signed statement of the verdict (`leanfarm_attest`);
    /// required when the farm trusts worker keys, absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompleteResponse {
    /// `stored`, or `stale` when the lease was lost (nothing was written).
    pub outcome: CompleteOutcome,
}

/// `POST /v1/worker/release`: hand a job back after a failure of the farm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub job_id: String,
    pub lease_id: String,
    /// The infrastructure failure (never a Lean verdict).
    pub error: String,
    pub retry_after_seconds: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReleaseResponse {
    pub outcome: ReleaseOutcome,
}

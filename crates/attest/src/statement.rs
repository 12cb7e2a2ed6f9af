//! The statement an attestation signs: what was checked (the snippet, its
//! header and its policy, hashed), against what (the toolchain and project,
//! by name and content hash), the verdict (status, reason code, axioms), and
//! who signed when with which key.
//!
//! Its canonical bytes are `serde_json`'s compact form of `Statement`: the
//! fields in the order declared here, maps sorted (`BTreeMap`), no floats, no
//! optional field ever left out. The signature is over exactly those bytes.
//! This module must never read a clock, a file or a key: it only describes.

use leanfarm_core::{CheckRequest, CheckStatus, ReasonCode, Verdict};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The one statement format this crate writes and reads.
pub const STATEMENT_FORMAT: &str = "leanfarm-attestation/v1";

/// What a worker knows of its own toolchain and project beyond their names:
/// content hashes supplied by its configuration (hashing a Lean toolchain
/// or a Mathlib project on every start is not cheap, so the operator states
/// them; `UNHASHED` when nobody did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerIdentity {
    pub worker_id: String,
    pub toolchain_sha256: String,
    pub project_sha256: String,
}

/// The content hash recorded when the configuration supplies none.
pub const UNHASHED: &str = "unhashed";

/// A toolchain or project: its name and the hash of its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub name: String,
    pub content_sha256: String,
}

/// The part of a verdict an attestation vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedVerdict {
    pub status: CheckStatus,
    /// `null` exactly when the status is `valid`.
    pub reason: Option<ReasonCode>,
    /// For each theorem, the axioms it depends on.
    pub axioms: BTreeMap<String, Vec<String>>,
}

/// The signed statement of one verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always `STATEMENT_FORMAT`.
    pub format: String,
    /// SHA-256 of the snippet's source, as submitted (hex).
    pub snippet_sha256: String,
    /// SHA-256 of the snippet's import header, normalised as the farm reads it.
    pub header_sha256: String,
    /// SHA-256 of the policy's JSON, as the job carried it.
    pub policy_sha256: String,
    pub toolchain: Identity,
    pub project: Identity,
    pub verdict: AttestedVerdict,
    pub worker_id: String,
    /// When the statement was signed, in seconds since the Unix epoch.
    pub signed_at: i64,
    /// The key that signed it.
    pub key_id: String,
}

/// Which part of a statement differs from the verdict it is said to attest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the attestation's {field} does not match the verdict it comes with")]
pub struct Mismatch {
    pub field: &'static str,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 (hex) of a policy's JSON form.
pub fn policy_sha256(request: &CheckRequest) -> String {
    let policy = serde_json::to_vec(&request.policy).expect("a policy always serializes");
    sha256_hex(&policy)
}

impl AttestedVerdict {
    pub fn of(verdict: &Verdict) -> AttestedVerdict {
        AttestedVerdict {
            status: verdict.status(),
            reason: verdict.reason().map(|reason| reason.code),
            axioms: verdict.axioms.clone(),
        }
    }
}

impl Statement {
    /// The statement of `verdict` on `request`, not yet bound to a key
    /// (`key_id` is empty until `SigningKeys::sign` fills it).
    pub fn for_verdict(
        request: &CheckRequest,
        verdict: &Verdict,
        worker: &WorkerIdentity,
        signed_at: i64,
    ) -> Statement {
        Statement {
            format: STATEMENT_FORMAT.to_string(),
            snippet_sha256: sha256_hex(request.code.as_bytes()),
            header_sha256: sha256_hex(leanfarm_core::split_header(&request.code).header.as_bytes()),
            policy_sha256: policy_sha256(request),
            toolchain: Identity {
                name: verdict.toolchain.clone(),
                content_sha256: worker.toolchain_sha256.clone(),
            },
            project: Identity {
                name: verdict.project.clone(),
                content_sha256: worker.project_sha256.clone(),
            },
            verdict: AttestedVerdict::of(verdict),
            worker_id: worker.worker_id.clone(),
            signed_at,
            key_id: String::new(),
        }
    }

    /// The bytes the signature covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement always serializes")
    }

    /// Check that this statement speaks of `verdict` on `request`: the same
    /// snippet, header, policy, toolchain and project names, status,
    /// reason and axioms. Names the first field that differs.
    pub fn matches(&self, request: &CheckRequest, verdict: &Verdict) -> Result<(), Mismatch> {
        let expected = Statement::for_verdict(
            request,
            verdict,
            &WorkerIdentity {
                worker_id: self.worker_id.clone(),
                toolchain_sha256: self.toolchain.content_sha256.clone(),
                project_sha256: self.project.content_sha256.clone(),
            },
            self.signed_at,
        );
        let checks: [(&'static str, bool); 8] = [
            (
                "snippet_sha256",
                self.snippet_sha256 == expected.snippet_sha256,
            ),
            (
                "header_sha256",
                self.header_sha256 == expected.header_sha256,
            ),
            (
                "policy_sha256",
                self.policy_sha256 == expected.policy_sha256,
            ),
            ("toolchain", self.toolchain.name == expected.toolchain.name),
            ("project", self.project.name == expected.project.name),
            ("status", self.verdict.status == expected.verdict.status),
            ("reason", self.verdict.reason == expected.verdict.reason),
            ("axioms", self.verdict.axioms == expected.verdict.axioms),
        ];
        match checks.iter().find(|(_, equal)| !equal) {
            Some((field, _)) => Err(Mismatch { field }),
            None => Ok(()),
        }
    }
}

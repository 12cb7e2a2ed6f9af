//! Signing a remote worker's verdicts: the one place a `leanfarm worker`
//! turns a verdict into an attestation (`leanfarm_attest`), right before
//! `HttpQueue::complete` sends it.
//!
//! It must never log or print the keys it holds; a verdict that cannot be
//! signed (no key valid now) is a failure of the farm, never a Lean verdict.

use leanfarm_attest::{
    now_unix_seconds, Attestation, KeyError, SigningKeys, Statement, WorkerIdentity,
};
use leanfarm_core::Verdict;
use leanfarm_store::Lease;

/// A worker's signing keys and the identity it signs as.
#[derive(Debug)]
pub struct VerdictSigner {
    pub keys: SigningKeys,
    pub identity: WorkerIdentity,
}

/// The attestation of `verdict` on `lease`'s job, when the worker signs.
pub(crate) fn attest(
    signer: Option<&VerdictSigner>,
    lease: &Lease,
    verdict: &Verdict,
) -> Result<Option<Attestation>, KeyError> {
    let Some(signer) = signer else {
        return Ok(None);
    };
    let statement = Statement::for_verdict(
        &lease.request,
        verdict,
        &signer.identity,
        now_unix_seconds(),
    );
    signer.keys.sign(statement).map(Some)
}

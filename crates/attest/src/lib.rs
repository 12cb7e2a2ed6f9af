//! Signed verdicts. A worker signs the canonical statement of each verdict
//! (`Statement`) with an Ed25519 key (`SigningKeys`); anyone holding the
//! farm's public keys (`TrustedKeys`, served at `GET /v1/keys`) verifies it
//! offline, and learns which check failed when it does not verify.
//!
//! An attestation is the envelope `{"statement": "<canonical JSON>",
//! "signature": "<hex>"}` in `serde_json`'s compact form: the statement is
//! carried as the exact bytes that were signed, and the envelope itself must
//! be canonical, so that changing any byte of an attestation fails one of
//! the checks.
//!
//! The cryptography is `ed25519-dalek`'s; this crate must never implement
//! any of its own, never log or print a secret key, and never read a clock
//! except through the `signed_at` it is given.

pub mod keys;
pub mod statement;

pub use keys::{KeyEntry, KeyError, KeyFile, SecretHex};
pub use statement::{
    policy_sha256, AttestedVerdict, Identity, Mismatch, Statement, WorkerIdentity,
    STATEMENT_FORMAT, UNHASHED,
};

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde::{Deserialize, Serialize};

/// A signed statement: the statement's canonical bytes and their signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The statement's canonical JSON, exactly the bytes that were signed.
    pub statement: String,
    /// The Ed25519 signature of those bytes, 64 bytes as hex.
    pub signature: String,
}

/// Which check of an attestation failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("envelope check failed: the attestation is not an attestation's JSON ({0})")]
    EnvelopeUnreadable(String),
    #[error("envelope check failed: the attestation is not in canonical form (bytes were added, removed or reordered)")]
    EnvelopeNotCanonical,
    #[error("signature check failed: the signature is not 64 bytes of hex")]
    SignatureMalformed,
    #[error("statement check failed: the signed statement is not a statement ({0})")]
    StatementUnreadable(String),
    #[error("statement check failed: the signed statement is not in canonical form")]
    StatementNotCanonical,
    #[error("statement check failed: format {0} is not {STATEMENT_FORMAT}")]
    UnsupportedFormat(String),
    #[error("key check failed: key {key_id} is not a trusted key")]
    UnknownKey { key_id: String },
    #[error(
        "key check failed: key {key_id} was not valid at {signed_at} (seconds since the epoch)"
    )]
    KeyNotValidAt { key_id: String, signed_at: i64 },
    #[error("key check failed: key {key_id} is trusted for worker {trusted_worker}, not for {worker_id}")]
    KeyNotForWorker {
        key_id: String,
        trusted_worker: String,
        worker_id: String,
    },
    #[error("signature check failed: the signature does not verify with key {key_id}")]
    BadSignature { key_id: String },
    #[error("verdict check failed: {0}")]
    Mismatch(#[from] Mismatch),
}

impl VerifyError {
    /// The name of the check that failed: `envelope`, `signature`,
    /// `statement`, `key` or `verdict`.
    pub fn check(&self) -> &'static str {
        match self {
            VerifyError::EnvelopeUnreadable(_) | VerifyError::EnvelopeNotCanonical => "envelope",
            VerifyError::SignatureMalformed | VerifyError::BadSignature { .. } => "signature",
            VerifyError::StatementUnreadable(_)
            | VerifyError::StatementNotCanonical
            | VerifyError::UnsupportedFormat(_) => "statement",
            VerifyError::UnknownKey { .. }
            | VerifyError::KeyNotValidAt { .. }
            | VerifyError::KeyNotForWorker { .. } => "key",
            VerifyError::Mismatch(_) => "verdict",
        }
    }
}

impl Attestation {
    /// The attestation's canonical JSON (what is sent and stored).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an attestation always serializes")
    }

    /// Read an attestation from its canonical JSON (one trailing newline
    /// allowed, as files end). Anything else is refused.
    pub fn from_json(text: &str) -> Result<Attestation, VerifyError> {
        let attestation: Attestation = serde_json::from_str(text)
            .map_err(|error| VerifyError::EnvelopeUnreadable(error.to_string()))?;
        let body = text.strip_suffix('\n').unwrap_or(text);
        if attestation.to_json() != body {
            return Err(VerifyError::EnvelopeNotCanonical);
        }
        Ok(attestation)
    }

    /// The statement, read and checked to be canonical; its signature is
    /// not checked here (`TrustedKeys::verify` does).
    pub fn unverified_statement(&self) -> Result<Statement, VerifyError> {
        let statement: Statement = serde_json::from_str(&self.statement)
            .map_err(|error| VerifyError::StatementUnreadable(error.to_string()))?;
        if statement.canonical_bytes() != self.statement.as_bytes() {
            return Err(VerifyError::StatementNotCanonical);
        }
        if statement.format != STATEMENT_FORMAT {
            return Err(VerifyError::UnsupportedFormat(statement.format));
        }
        Ok(statement)
    }
}

/// The keys a worker signs with: of those valid at the time of signing,
/// the one that became valid last (so a new key takes over as soon as its
/// window opens, and the old one still verifies what it signed before).
pub struct SigningKeys {
    keys: Vec<(KeyEntry, ed25519_dalek::SigningKey)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self
            .keys
            .iter()
            .map(|(key, _)| key.key_id.as_str())
            .collect();
        formatter
            .debug_struct("SigningKeys")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// The secret keys of a key file (entries without one are skipped).
    pub fn new(file: &KeyFile) -> Result<SigningKeys, KeyError> {
        file.validate()?;
        let mut keys = Vec::new();
        for entry in &file.keys {
            if let Some(signing) = entry.signing_key()? {
                keys.push((entry.public_only(), signing));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::NoSecretKey);
        }
        Ok(SigningKeys { keys })
    }

    /// The public half, to publish or give to a verifier.
    pub fn public_keys(&self) -> KeyFile {
        KeyFile {
            keys: self.keys.iter().map(|(key, _)| key.clone()).collect(),
        }
    }

    /// Sign `statement` with the key for its `signed_at`, filling `key_id`.
    pub fn sign(&self, mut statement: Statement) -> Result<Attestation, KeyError> {
        let at = statement.signed_at;
        let (entry, signing) = self
            .keys
            .iter()
            .filter(|(key, _)| key.valid_at(at))
            .max_by_key(|(key, _)| key.not_before)
            .ok_or(KeyError::NoKeyValidAt { at })?;
        statement.key_id = entry.key_id.clone();
        let bytes = statement.canonical_bytes();
        let signature = signing.sign(&bytes);
        Ok(Attestation {
            statement: String::from_utf8(bytes).expect("JSON is UTF-8"),
            signature: hex::encode(signature.to_bytes()),
        })
    }
}

impl KeyEntry {
    fn public_only(&self) -> KeyEntry {
        KeyEntry {
            secret_key: None,
            ..self.clone()
        }
    }
}

/// The public keys a verifier trusts.
#[derive(Clone, Debug)]
pub struct TrustedKeys {
    keys: Vec<(KeyEntry, VerifyingKey)>,
}

impl TrustedKeys {
    /// Trust the public keys of a key file (secret keys in it are ignored).
    pub fn new(file: &KeyFile) -> Result<TrustedKeys, KeyError> {
        file.validate()?;
        let keys = file
            .keys
            .iter()
            .map(|entry| Ok((entry.public_only(), entry.verifying_key()?)))
            .collect::<Result<Vec<_>, KeyError>>()?;
        Ok(TrustedKeys { keys })
    }

    /// The trusted keys, without secrets (what `GET /v1/keys` publishes).
    pub fn public_keys(&self) -> KeyFile {
        KeyFile {
            keys: self.keys.iter().map(|(key, _)| key.clone()).collect(),
        }
    }

    /// Verify an attestation: its statement is canonical and of this format,
    /// its key is trusted, was valid when it signed and is not bound to
    /// another worker, and the signature covers the statement's bytes.
    pub fn verify(&self, attestation: &Attestation) -> Result<Statement, VerifyError> {
        let signature_bytes: [u8; 64] = hex::decode(&attestation.signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(VerifyError::SignatureMalformed)?;
        let statement = attestation.unverified_statement()?;
        let (entry, verifying) = self
            .keys
            .iter()
            .find(|(key, _)| key.key_id == statement.key_id)
            .ok_or_else(|| VerifyError::UnknownKey {
                key_id: statement.key_id.clone(),
            })?;
        verifying
            .verify_strict(
                attestation.statement.as_bytes(),
                &Signature::from_bytes(&signature_bytes),
            )
            .map_err(|_| VerifyError::BadSignature {
                key_id: entry.key_id.clone(),
            })?;
        if !entry.valid_at(statement.signed_at) {
            return Err(VerifyError::KeyNotValidAt {
                key_id: entry.key_id.clone(),
                signed_at: statement.signed_at,
            });
        }
        if let Some(trusted_worker) = &entry.worker_id {
            if *trusted_worker != statement.worker_id {
                return Err(VerifyError::KeyNotForWorker {
                    key_id: entry.key_id.clone(),
                    trusted_worker: trusted_worker.clone(),
                    worker_id: statement.worker_id.clone(),
                });
            }
        }
        Ok(statement)
    }

    /// Verify an attestation read from its JSON text.
    pub fn verify_json(&self, text: &str) -> Result<Statement, VerifyError> {
        self.verify(&Attestation::from_json(text)?)
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

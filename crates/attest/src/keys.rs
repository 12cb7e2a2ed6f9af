//! Key files: Ed25519 keys, each with an id and a validity window, several
//! at once so that keys can be rotated without a gap.
//!
//! One JSON format serves both sides: a worker's signing key file holds the
//! secret keys (`secret_key`), a verifier's trusted keys file only public
//! ones (`KeyFile::public_only`), optionally bound to one worker id. A
//! secret key is never printed: `Debug` shows `<redacted>`, and no error
//! message quotes a key file's content.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The only algorithm a key file may name.
pub const ALGORITHM: &str = "ed25519";

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the key file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The key file is not the JSON of a key file (the content is never quoted).
    #[error("the key file is not a key file: line {line}, column {column}")]
    NotAKeyFile { line: usize, column: usize },
    #[error("key {key_id}: algorithm {algorithm} is not supported (only ed25519)")]
    UnsupportedAlgorithm { key_id: String, algorithm: String },
    #[error("key {key_id}: the {which} key is not 32 bytes of hex")]
    MalformedKey { key_id: String, which: &'static str },
    #[error("key {key_id}: the public key is not a valid ed25519 point")]
    InvalidPublicKey { key_id: String },
    #[error("key {key_id}: the public key is not the secret key's")]
    PublicKeyMismatch { key_id: String },
    #[error("key {key_id}: its validity ends before it starts")]
    EmptyWindow { key_id: String },
    #[error("key id {key_id} appears more than once")]
    DuplicateKeyId { key_id: String },
    #[error("the key file holds no key")]
    NoKeys,
    #[error("the key file holds no secret key: a worker needs one to sign")]
    NoSecretKey,
    #[error("no signing key is valid at {at} (seconds since the epoch)")]
    NoKeyValidAt { at: i64 },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// A secret key, as hex; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHex(pub String);

impl std::fmt::Debug for SecretHex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("<redacted>")
    }
}

/// One key and when it may sign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub key_id: String,
    pub algorithm: String,
    /// The 32-byte public key, hex.
    pub public_key: String,
    /// The 32-byte secret key (RFC 8032's seed), hex: only in a signer's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<SecretHex>,
    /// Valid from this time (seconds since the epoch), inclusive.
    pub not_before: i64,
    /// Valid until this time, exclusive; `null` for no end.
    pub not_after: Option<i64>,
    /// When set, the key vouches only for statements by this worker id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

/// A key file: `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub keys: Vec<KeyEntry>,
}

fn decode_32(hex_text: &str, key_id: &str, which: &'static str) -> Result<[u8; 32], KeyError> {
    let malformed = || KeyError::MalformedKey {
        key_id: key_id.to_string(),
        which,
    };
    let bytes = hex::decode(hex_text).map_err(|_| malformed())?;
    bytes.try_into().map_err(|_| malformed())
}

impl KeyEntry {
    /// A new key from the operating system's random source.
    pub fn generate(
        key_id: &str,
        not_before: i64,
        not_after: Option<i64>,
    ) -> Result<KeyEntry, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| KeyError::Random(error.to_string()))?;
        let signing = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(KeyEntry::from_signing_key(
            key_id, &signing, not_before, not_after,
        ))
    }

    /// The entry of a known secret key (tests, and keys made elsewhere).
    pub fn from_signing_key(
        key_id: &str,
        signing: &SigningKey,
        not_before: i64,
        not_after: Option<i64>,
    ) -> KeyEntry {
        KeyEntry {
            key_id: key_id.to_string(),
            algorithm: ALGORITHM.to_string(),
            public_key: hex::encode(signing.verifying_key().as_bytes()),
            secret_key: Some(SecretHex(hex::encode(signing.to_bytes()))),
            not_before,
            not_after,
            worker_id: None,
        }
    }

    /// Whether the key may sign (and vouch) at `at`.
    pub fn valid_at(&self, at: i64) -> bool {
        at >= self.not_before && self.not_after.is_none_or(|end| at < end)
    }

    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, KeyError> {
        let bytes = decode_32(&self.public_key, &self.key_id, "public")?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey {
            key_id: self.key_id.clone(),
        })
    }

    pub(crate) fn signing_key(&self) -> Result<Option<SigningKey>, KeyError> {
        let Some(secret) = &self.secret_key else {
            return Ok(None);
        };
        let mut seed = decode_32(&secret.0, &self.key_id, "secret")?;
        let signing = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(Some(signing))
    }

    /// Check the entry on its own: algorithm, key sizes, a point on the
    /// curve, a secret key matching its public key, a non-empty window.
    fn validate(&self) -> Result<(), KeyError> {
        if self.algorithm != ALGORITHM {
            return Err(KeyError::UnsupportedAlgorithm {
                key_id: self.key_id.clone(),
                algorithm: self.algorithm.clone(),
            });
        }
        let verifying = self.verifying_key()?;
        if let Some(signing) = self.signing_key()? {
            if signing.verifying_key() != verifying {
                return Err(KeyError::PublicKeyMismatch {
                    key_id: self.key_id.clone(),
                });
            }
        }
        if self.not_after.is_some_and(|end| end <= self.not_before) {
            return Err(KeyError::EmptyWindow {
                key_id: self.key_id.clone(),
            });
        }
        Ok(())
    }
}

impl KeyFile {
    /// Parse and validate a key file's JSON.
    pub fn parse(text: &str) -> Result<KeyFile, KeyError> {
        let file: KeyFile = serde_json::from_str(text).map_err(|error| KeyError::NotAKeyFile {
            line: error.line(),
            column: error.column(),
        })?;
        file.validate()?;
        Ok(file)
    }

    pub fn read(path: &Path) -> Result<KeyFile, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        KeyFile::parse(&text)
    }

    /// Write the file, readable by its owner only when it holds a secret.
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let write_error = |source| KeyError::Write {
            path: path.display().to_string(),
            source,
        };
        let mode = if self.keys.iter().any(|key| key.secret_key.is_some()) {
            0o600
        } else {
            0o644
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(write_error)?;
        file.write_all(self.to_json().as_bytes())
            .map_err(write_error)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a key file always serializes");
        text.push('\n');
        text
    }

    /// The same keys without their secrets: what a verifier is given.
    pub fn public_only(&self) -> KeyFile {
        KeyFile {
            keys: self
                .keys
                .iter()
                .map(|key| KeyEntry {
                    secret_key: None,
                    ..key.clone()
                })
                .collect(),
        }
    }

    pub fn validate(&self) -> Result<(), KeyError> {
        if self.keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let mut seen = std::collections::BTreeSet::new();
        for key in &self.keys {
            key.validate()?;
            if !seen.insert(key.key_id.as_str()) {
                return Err(KeyError::DuplicateKeyId {
                    key_id: key.key_id.clone(),
                });
            }
        }
        Ok(())
    }
}

//! `leanfarm verify ATTESTATION --keys KEYS`: check a signed verdict offline,
//! and `leanfarm keys generate|public`: make and publish signing keys; the
//! farm's own signing keys for `leanfarm serve` (`farm_signing_keys`).
//!
//! Verification needs no farm: the attestation (bare, or the check as the
//! API returns it) and the farm's public keys (`GET /v1/keys` saved to a
//! file, or fetched from the farm's URL) are enough. It exits 0 only when
//! every check passes, and otherwise names the check that failed. This
//! module must never print a secret key: `keys generate` writes it to a file
//! readable by its owner only, and prints the public half.

use crate::CliError;
use clap::{Args, Subcommand};
use leanfarm_attest::{
    now_unix_seconds, Attestation, AttestedVerdict, KeyEntry, KeyFile, Statement, TrustedKeys,
    VerifyError,
};
use leanfarm_core::Verdict;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The attestation (`-` for standard input): the bare attestation, or a
    /// check as `GET /v1/checks/{id}` returns it (its verdict is then also
    /// compared with the signed one)
    pub attestation: PathBuf,
    /// The trusted public keys: a key file such as the body of `GET /v1/keys`,
    /// or the URL of a farm (http://HOST:PORT) whose `/v1/keys` to fetch
    #[arg(long)]
    pub keys: String,
    /// Also check that the attestation is of this snippet (its SHA-256)
    #[arg(long)]
    pub snippet: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Make a new Ed25519 signing key and write it to a key file (mode 0600).
    Generate {
        /// The key file to write
        #[arg(long)]
        out: PathBuf,
        /// The new key's id [default: key-<now>]
        #[arg(long)]
        key_id: Option<String>,
        /// Valid from (seconds since the epoch) [default: now]
        #[arg(long)]
        not_before: Option<i64>,
        /// Valid until (seconds since the epoch) [default: no end]
        #[arg(long)]
        not_after: Option<i64>,
        /// Add the key to the existing file `--out` (rotation) instead of
        /// refusing to touch it
        #[arg(long)]
        rotate: bool,
    },
    /// Print a key file's public keys (what verifiers and the farm trust).
    Public {
        /// The key file
        file: PathBuf,
        /// Bind the keys to this worker id: verifiers then refuse the
        /// keys' signatures on any other worker's statements
        #[arg(long)]
        worker_id: Option<String>,
    },
}

fn read_text(path: &Path) -> Result<String, CliError> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    text.map_err(|error| CliError::Config(format!("cannot read {}: {error}", path.display())))
}

fn read_keys(path: &Path) -> Result<KeyFile, CliError> {
    KeyFile::read(path).map_err(|error| CliError::Config(error.to_string()))
}

/// Read what `leanfarm verify` was given: the attestation, and the verdict
/// when it is a check's JSON. A bare attestation must be in canonical form
/// (any byte changed fails); a check's attestation is taken as its fields
/// say (the statement's own bytes are what the signature covers).
fn read_input(text: &str) -> Result<(Attestation, Option<Verdict>), VerifyError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| VerifyError::EnvelopeUnreadable(error.to_string()))?;
    let Some(fields) = value.as_object() else {
        return Err(VerifyError::EnvelopeUnreadable(
            "neither an attestation nor a check".to_string(),
        ));
    };
    if !fields.contains_key("attestation") {
        if fields.contains_key("id") && fields.contains_key("state") {
            return Err(VerifyError::EnvelopeUnreadable(
                "the check carries no attestation (its verdict is not final or was not signed)"
                    .to_string(),
            ));
        }
        return Attestation::from_json(text).map(|attestation| (attestation, None));
    }
    let attestation: Attestation =
        serde_json::from_value(fields["attestation"].clone()).map_err(|error| {
            VerifyError::EnvelopeUnreadable(format!("the check's attestation: {error}"))
        })?;
    let verdict =
        match fields.get("verdict") {
            None | Some(serde_json::Value::Null) => None,
            // A verdict that cannot be read cannot be the signed one.
            Some(verdict) => Some(serde_json::from_value(verdict.clone()).map_err(|_| {
                VerifyError::Mismatch(leanfarm_attest::Mismatch { field: "verdict" })
            })?),
        };
    Ok((attestation, verdict))
}

/// The first field in which a check's verdict differs from the signed one.
fn compare_verdict(statement: &Statement, verdict: &Verdict) -> Result<(), VerifyError> {
    let attested = AttestedVerdict::of(verdict);
    let checks: [(&'static str, bool); 5] = [
        ("status", statement.verdict.status == attested.status),
        ("reason", statement.verdict.reason == attested.reason),
        ("axioms", statement.verdict.axioms == attested.axioms),
        ("toolchain", statement.toolchain.name == verdict.toolchain),
        ("project", statement.project.name == verdict.project),
    ];
    match checks.iter().find(|(_, equal)| !equal) {
        Some((field, _)) => Err(VerifyError::Mismatch(leanfarm_attest::Mismatch { field })),
        None => Ok(()),
    }
}

/// Every check of the attestation in `text` (bare, or in a check's JSON),
/// and of its snippet when given.
pub fn verify_text(
    text: &str,
    trusted: &TrustedKeys,
    snippet: Option<&str>,
) -> Result<Statement, VerifyError> {
    let (attestation, verdict) = read_input(text)?;
    let statement = trusted.verify(&attestation)?;
    if let Some(verdict) = &verdict {
        compare_verdict(&statement, verdict)?;
    }
    if let Some(snippet) = snippet {
        use sha2::Digest;
        if hex::encode(sha2::Sha256::digest(snippet.as_bytes())) != statement.snippet_sha256 {
            return Err(VerifyError::Mismatch(leanfarm_attest::Mismatch {
                field: "snippet_sha256",
            }));
        }
    }
    Ok(statement)
}

/// The URL of a farm's keys: `/v1/keys` of the farm, unless the URL
/// already names a path.
fn keys_url(farm: &str) -> String {
    let without_scheme = farm.split_once("://").map_or(farm, |(_, rest)| rest);
    match without_scheme.split_once('/') {
        Some((_, path)) if !path.is_empty() => farm.to_string(),
        _ => format!("{}/v1/keys", farm.trim_end_matches('/')),
    }
}

/// The trusted keys: a key file, or fetched from a farm's `GET /v1/keys`.
async fn read_trusted_keys(keys: &str) -> Result<KeyFile, CliError> {
    if !(keys.starts_with("http://") || keys.starts_with("https://")) {
        return read_keys(Path::new(keys));
    }
    let url = keys_url(keys);
    let request_error = |error: reqwest::Error| CliError::Request(format!("{url}: {error}"));
    let response = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(request_error)?
        .get(&url)
        .send()
        .await
        .map_err(request_error)?;
    let status = response.status();
    let body = response.text().await.map_err(request_error)?;
    if !status.is_success() {
        return Err(CliError::Request(format!("{url} answered {status}")));
    }
    KeyFile::parse(&body).map_err(|error| CliError::Config(format!("the keys of {url}: {error}")))
}

pub async fn verify(args: VerifyArgs) -> Result<(), CliError> {
    let keys = read_trusted_keys(&args.keys).await?;
    let trusted = TrustedKeys::new(&keys).map_err(|error| CliError::Config(error.to_string()))?;
    let text = read_text(&args.attestation)?;
    let snippet = args.snippet.as_deref().map(read_text).transpose()?;
    let statement = verify_text(&text, &trusted, snippet.as_deref())
        .map_err(|error| CliError::AttestationInvalid(error.to_string()))?;
    println!(
        "valid: {} ({}) signed by key {} of worker {} at {}, snippet sha256 {}",
        statement.verdict.status.as_str(),
        statement
            .verdict
            .reason
            .map(|reason| reason.as_str())
            .unwrap_or("no reason"),
        statement.key_id,
        statement.worker_id,
        statement.signed_at,
        statement.snippet_sha256
    );
    Ok(())
}

/// Where `leanfarm serve` keeps its own signing keys when no key file is set.
pub const FARM_KEY_FILE: &str = "farm-signing-keys.json";

/// The farm's own signing keys, for its in-process workers: the key file
/// of the `signing_keys` setting, or else `DATA_DIR/farm-signing-keys.json`,
/// generated on the first start (mode 0600) and refused afterwards if
/// others may read it. The secret key is never logged.
pub fn farm_signing_keys(
    data_dir: &Path,
    key_file: Option<&Path>,
) -> Result<leanfarm_attest::SigningKeys, CliError> {
    let key_error = |error: leanfarm_attest::KeyError| {
        CliError::Config(format!("the farm's signing keys: {error}"))
    };
    let file = match key_file {
        Some(path) => KeyFile::read(path).map_err(key_error)?,
        None => {
            let path = data_dir.join(FARM_KEY_FILE);
            generated_key_file(&path).map_err(key_error)?
        }
    };
    let keys = leanfarm_attest::SigningKeys::new(&file).map_err(key_error)?;
    tracing::info!(key_ids = ?keys.public_keys().keys.iter().map(|key| key.key_id.clone()).collect::<Vec<_>>(), "the in-process workers sign their verdicts");
    Ok(keys)
}

/// The key file at `path`, made with one new key if there is none.
fn generated_key_file(path: &Path) -> Result<KeyFile, leanfarm_attest::KeyError> {
    use std::os::unix::fs::PermissionsExt;
    if !path.exists() {
        let now = now_unix_seconds();
        let entry = KeyEntry::generate(&format!("farm-{now}"), now, None)?;
        let file = KeyFile { keys: vec![entry] };
        match file.write(path) {
            Ok(()) => return Ok(file),
            // Another process sharing the data directory made it first.
            Err(leanfarm_attest::KeyError::Write { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
    }
    let read_error = |source| leanfarm_attest::KeyError::Read {
        path: path.display().to_string(),
        source,
    };
    let mode = std::fs::metadata(path)
        .map_err(read_error)?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(read_error(std::io::Error::other(format!(
            "it holds a secret key but its mode is {:o}: make it readable by its owner only (chmod 600)",
            mode & 0o777
        ))));
    }
    KeyFile::read(path)
}

pub fn keys(args: KeysArgs) -> Result<(), CliError> {
    let key_error = |error: leanfarm_attest::KeyError| CliError::Config(error.to_string());
    match args.command {
        KeysCommand::Generate {
            out,
            key_id,
            not_before,
            not_after,
            rotate,
        } => {
            let now = now_unix_seconds();
            let key_id = key_id.unwrap_or_else(|| format!("key-{now}"));
            let entry = KeyEntry::generate(&key_id, not_before.unwrap_or(now), not_after)
                .map_err(key_error)?;
            let mut file = if rotate {
                read_keys(&out)?
            } else {
                KeyFile::default()
            };
            file.keys.push(entry);
            file.validate().map_err(key_error)?;
            if rotate {
                // Written beside it, then moved over it: never half a file.
                let staging = out.with_extension("new");
                let _ = std::fs::remove_file(&staging);
                file.write(&staging).map_err(key_error)?;
                std::fs::rename(&staging, &out).map_err(|error| {
                    CliError::Config(format!("cannot replace {}: {error}", out.display()))
                })?;
            } else {
                file.write(&out).map_err(key_error)?;
            }
            eprintln!(
                "leanfarm: key {key_id} written to {} (secret: keep it there); its public keys:",
                out.display()
            );
            print!("{}", file.public_only().to_json());
            Ok(())
        }
        KeysCommand::Public { file, worker_id } => {
            let mut public = read_keys(&file)?.public_only();
            if let Some(worker_id) = worker_id {
                for key in &mut public.keys {
                    key.worker_id = Some(worker_id.clone());
                }
            }
            print!("{}", public.to_json());
            Ok(())
        }
    }
}

/// `leanfarm worker`'s signing settings: the key file, or its content in a
/// variable (never shown in help or logs), and the content hashes stated
/// for its toolchain and project.
#[derive(Args, Debug)]
pub struct SigningArgs {
    /// Key file whose secret keys sign every verdict (`leanfarm keys generate`)
    #[arg(long, env = "LEAN_FARM_WORKER_SIGNING_KEYS")]
    pub signing_keys: Option<PathBuf>,
    /// The key file's JSON itself, for secrets handed over in the environment
    #[arg(
        long,
        env = "LEAN_FARM_WORKER_SIGNING_KEYS_JSON",
        hide_env_values = true,
        conflicts_with = "signing_keys"
    )]
    pub signing_keys_json: Option<String>,
    /// SHA-256 of the toolchain's content, recorded in attestations [default: unhashed]
    #[arg(long, env = "LEAN_FARM_TOOLCHAIN_SHA256")]
    pub toolchain_sha256: Option<String>,
    /// SHA-256 of the Lean project's content, recorded in attestations [default: unhashed]
    #[arg(long, env = "LEAN_FARM_PROJECT_SHA256")]
    pub project_sha256: Option<String>,
}

impl SigningArgs {
    /// The queue, signing its completions when keys are given.
    pub fn apply(
        self,
        queue: leanfarm_worker::HttpQueue,
        worker_id: &str,
    ) -> Result<leanfarm_worker::HttpQueue, CliError> {
        let key_error =
            |error: leanfarm_attest::KeyError| CliError::Config(format!("signing keys: {error}"));
        let file = match (self.signing_keys, self.signing_keys_json) {
            (Some(path), _) => KeyFile::read(&path).map_err(key_error)?,
            (None, Some(json)) => KeyFile::parse(&json).map_err(key_error)?,
            (None, None) => return Ok(queue),
        };
        let keys = leanfarm_attest::SigningKeys::new(&file).map_err(key_error)?;
        let unhashed = || leanfarm_attest::UNHASHED.to_string();
        let identity = leanfarm_attest::WorkerIdentity {
            worker_id: worker_id.to_string(),
            toolchain_sha256: self.toolchain_sha256.unwrap_or_else(unhashed),
            project_sha256: self.project_sha256.unwrap_or_else(unhashed),
        };
        tracing::info!(key_ids = ?keys.public_keys().keys.iter().map(|key| key.key_id.clone()).collect::<Vec<_>>(), "verdicts are signed");
        Ok(queue.with_signer(leanfarm_worker::VerdictSigner { keys, identity }))
    }
}

/// Make the farm require attestations that verify against the key file at
/// `path`, when one is given.
pub fn trust_worker_keys(
    state: &leanfarm_server::AppState,
    path: Option<&Path>,
) -> Result<(), CliError> {
    let Some(path) = path else {
        return Ok(());
    };
    let trusted = read_keys(path)
        .and_then(|file| {
            TrustedKeys::new(&file).map_err(|error| CliError::Config(error.to_string()))
        })
        .map_err(|error| CliError::Config(format!("trusted worker keys: {error}")))?;
    let _ = state.trusted_worker_keys.set(trusted);
    Ok(())
}

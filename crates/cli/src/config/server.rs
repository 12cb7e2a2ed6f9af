//! The settings of `leanfarm serve` itself: where it listens, its data
//! directory, authentication, and the API's request and queue limits
//! (`LimitArgs`, which become `leanfarm_server::Limits`).
//!
//! The request limits' defaults are `Limits::default()`: written once in
//! the server crate, read here for clap's help and the TOML file alike.
//! This module only describes and validates settings; it must never bind a
//! socket or open a store.

use super::checker::CheckerArgs;
use super::prove::ProveArgs;
use super::queue::QueueArgs;
use super::retention::RetentionArgs;
use super::store::StoreArgs;
use super::SettingError;
use clap::Args;
use leanfarm_server::Limits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The one place each server default is written (the limits' are `Limits::default()`).
pub(crate) mod defaults {
    use leanfarm_server::Limits;
    use std::net::SocketAddr;
    use std::path::PathBuf;

    pub fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8000))
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("leanfarm-data")
    }
    pub fn max_body_bytes() -> usize {
        Limits::default().max_body_bytes
    }
    pub fn max_snippet_bytes() -> usize {
        Limits::default().max_snippet_bytes
    }
    pub fn max_batch() -> usize {
        Limits::default().max_batch
    }
    pub fn max_timeout_seconds() -> f64 {
        Limits::default().max_timeout_seconds
    }
    pub fn max_wait_seconds() -> f64 {
        Limits::default().max_wait_seconds
    }
    pub fn max_queued_jobs() -> u64 {
        Limits::default().max_queued_jobs
    }
    pub fn header_read_timeout_seconds() -> f64 {
        Limits::default().header_read_timeout.as_secs_f64()
    }
    pub fn body_read_timeout_seconds() -> f64 {
        Limits::default().body_read_timeout.as_secs_f64()
    }
    pub fn max_connections() -> usize {
        Limits::default().max_connections
    }
    pub fn session_idle_seconds() -> f64 {
        Limits::default().sessions.idle_timeout.as_secs_f64()
    }
    pub fn max_sessions_per_tenant() -> u64 {
        Limits::default().sessions.max_sessions_per_tenant
    }
    pub fn max_session_repls() -> usize {
        Limits::default().sessions.max_sessions_per_host
    }
    pub fn max_tactics_per_second() -> f64 {
        Limits::default().sessions.max_tactics_per_second
    }
    pub fn idempotency_key_hours() -> f64 {
        Limits::default().idempotency_keep.as_secs_f64() / 3600.0
    }
}

#[derive(Args, Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "LEAN_FARM_ADDR", default_value_t = defaults::addr())]
    #[serde(default = "defaults::addr")]
    pub addr: SocketAddr,
    /// Directory for the SQLite store, artifacts and scratch space
    #[arg(long, env = "LEAN_FARM_DATA_DIR", default_value_os_t = defaults::data_dir())]
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    #[serde(flatten)]
    pub checker: CheckerArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub stores: StoreArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub retention: RetentionArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub prove: ProveArgs,
    /// Every user request must carry a tenant's token (see `leanfarm tenant`); `/metrics` and `/v1/workers` then need an operator token
    #[arg(long, env = "LEAN_FARM_REQUIRE_AUTH")]
    #[serde(default)]
    pub require_auth: bool,
    /// Also serve /metrics, without a token, on this address (for a private network) [default: none]
    #[arg(long, env = "LEAN_FARM_METRICS_ADDR")]
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// Public keys (a key file, see `leanfarm keys`) that remote workers' signed verdicts must verify against; unset, completions need no attestation
    #[arg(long, env = "LEAN_FARM_TRUSTED_WORKER_KEYS")]
    #[serde(default)]
    pub trusted_worker_keys: Option<PathBuf>,
    /// Key file whose secret keys sign the in-process workers' verdicts (`leanfarm keys generate`) [default: DATA_DIR/farm-signing-keys.json, generated once, mode 0600]
    #[arg(long, env = "LEAN_FARM_SIGNING_KEYS")]
    #[serde(default)]
    pub signing_keys: Option<PathBuf>,
    /// A declarations index (`leanfarm index`) that `GET /v1/search` serves [default: none; the route answers 404]
    #[arg(long, env = "LEAN_FARM_SEARCH_INDEX")]
    #[serde(default)]
    pub search_index: Option<PathBuf>,
    /// PEM certificate chain (leaf first): the API listener then terminates TLS (https://); needs tls_key [default: plain HTTP]
    #[arg(long, env = "LEAN_FARM_TLS_CERT")]
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of tls_cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "LEAN_FARM_TLS_KEY")]
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    #[serde(skip)]
    pub telemetry: super::TelemetryArgs,
    /// Optional TOML file with any of these settings (snake_case keys)
    #[arg(long, env = "LEAN_FARM_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl ServeArgs {
    /// Refuse any setting the farm could not run with, naming it.
    pub fn validate(&self) -> Result<(), SettingError> {
        self.checker.validate()?;
        self.stores.validate()?;
        self.queue.validate()?;
        self.retention.validate()?;
        self.prove.validate()?;
        self.limits.validate()?;
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(SettingError::new(
                "tls_key",
                "is missing: tls_cert needs its private key".to_string(),
            )),
            (None, Some(_)) => Err(SettingError::new(
                "tls_cert",
                "is missing: tls_key needs its certificate chain".to_string(),
            )),
            _ => Ok(()),
        }
    }

    /// The listener's TLS identity, read from its files; `None` for plain HTTP.
    pub fn server_tls(&self) -> Result<Option<leanfarm_server::ServerTls>, SettingError> {
        let (Some(certificate), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        leanfarm_server::ServerTls::from_pem_files(certificate, key)
            .map(Some)
            .map_err(|error| SettingError::new("tls_cert", error.to_string()))
    }
}

impl Default for ServeArgs {
    /// Every setting at its default: what an empty config file gives.
    fn default() -> Self {
        toml::Table::new()
            .try_into()
            .expect("every setting of `serve` has a default")
    }
}

/// The API's size, time and queue limits (`leanfarm_server::Limits`).
#[derive(Args, Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct LimitArgs {
    /// Largest request body, in bytes (413 body_too_large beyond)
    #[arg(long, env = "LEAN_FARM_MAX_BODY_BYTES", default_value_t = defaults::max_body_bytes())]
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest snippet, in bytes (413 snippet_too_large beyond)
    #[arg(long, env = "LEAN_FARM_MAX_SNIPPET_BYTES", default_value_t = defaults::max_snippet_bytes())]
    #[serde(default = "defaults::max_snippet_bytes")]
    pub max_snippet_bytes: usize,
    /// Most snippets in one request (413 batch_too_large beyond)
    #[arg(long, env = "LEAN_FARM_MAX_BATCH", default_value_t = defaults::max_batch())]
    #[serde(default = "defaults::max_batch")]
    pub max_batch: usize,
    /// Largest timeout a snippet may ask for, in seconds (400 invalid_timeout beyond)
    #[arg(long, env = "LEAN_FARM_MAX_TIMEOUT_SECONDS", default_value_t = defaults::max_timeout_seconds())]
    #[serde(default = "defaults::max_timeout_seconds")]
    pub max_timeout_seconds: f64,
    /// Longest a request may wait for its verdicts, in seconds (a longer wait is cut to it)
    #[arg(long, env = "LEAN_FARM_MAX_WAIT_SECONDS", default_value_t = defaults::max_wait_seconds())]
    #[serde(default = "defaults::max_wait_seconds")]
    pub max_wait_seconds: f64,
    /// Queued jobs of the whole farm (every tenant and replica) beyond which a batch is refused (429 queue_full); a batch larger than this is refused for good (413)
    #[arg(long, env = "LEAN_FARM_MAX_QUEUED_JOBS", default_value_t = defaults::max_queued_jobs())]
    #[serde(default = "defaults::max_queued_jobs")]
    pub max_queued_jobs: u64,
    /// Seconds a client has to send its request headers before its connection is closed (also closes idle keep-alive connections)
    #[arg(long, env = "LEAN_FARM_HEADER_READ_TIMEOUT_SECONDS", default_value_t = defaults::header_read_timeout_seconds())]
    #[serde(default = "defaults::header_read_timeout_seconds")]
    pub header_read_timeout_seconds: f64,
    /// Seconds a client has to send its request body (408 body_timeout beyond)
    #[arg(long, env = "LEAN_FARM_BODY_READ_TIMEOUT_SECONDS", default_value_t = defaults::body_read_timeout_seconds())]
    #[serde(default = "defaults::body_read_timeout_seconds")]
    pub body_read_timeout_seconds: f64,
    /// Open connections at once; more are answered 503 too_many_connections and closed
    #[arg(long, env = "LEAN_FARM_MAX_CONNECTIONS", default_value_t = defaults::max_connections())]
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// Hours an Idempotency-Key of POST /v1/checks names the batch it admitted (a retry with it within this time gets that batch back)
    #[arg(long, env = "LEAN_FARM_IDEMPOTENCY_KEY_HOURS", default_value_t = defaults::idempotency_key_hours())]
    #[serde(default = "defaults::idempotency_key_hours")]
    pub idempotency_key_hours: f64,
    /// Seconds a tactic session may stay unused before it is closed and its REPLs stopped
    #[arg(long, env = "LEAN_FARM_SESSION_IDLE_SECONDS", default_value_t = defaults::session_idle_seconds())]
    #[serde(default = "defaults::session_idle_seconds")]
    pub session_idle_seconds: f64,
    /// Tactic sessions one tenant may hold open at once (429 tenant_sessions_full beyond)
    #[arg(long, env = "LEAN_FARM_MAX_SESSIONS_PER_TENANT", default_value_t = defaults::max_sessions_per_tenant())]
    #[serde(default = "defaults::max_sessions_per_tenant")]
    pub max_sessions_per_tenant: u64,
    /// Tactics one tenant may send per second, shared by the live API replicas (429 tactics_rate_limited beyond)
    #[arg(long, env = "LEAN_FARM_MAX_TACTICS_PER_SECOND", default_value_t = defaults::max_tactics_per_second())]
    #[serde(default = "defaults::max_tactics_per_second")]
    pub max_tactics_per_second: f64,
    /// REPLs the embedded workers hold for tactic sessions at once, beside the checking slots
    #[arg(long, env = "LEAN_FARM_MAX_SESSION_REPLS", default_value_t = defaults::max_session_repls())]
    #[serde(default = "defaults::max_session_repls")]
    pub max_session_repls: usize,
}

/// The longest an idempotency key may be kept: a year.
const MAX_IDEMPOTENCY_KEY_HOURS: f64 = 24.0 * 366.0;

impl LimitArgs {
    /// Refuse a limit that would refuse everything, naming it.
    pub fn validate(&self) -> Result<(), SettingError> {
        let at_least_one = |setting: &'static str, value: u64| {
            if value == 0 {
                Err(SettingError::new(
                    setting,
                    "must be at least 1, not 0".to_string(),
                ))
            } else {
                Ok(())
            }
        };
        at_least_one("max_body_bytes", self.max_body_bytes as u64)?;
        at_least_one("max_snippet_bytes", self.max_snippet_bytes as u64)?;
        at_least_one("max_batch", self.max_batch as u64)?;
        at_least_one("max_queued_jobs", self.max_queued_jobs)?;
        at_least_one("max_connections", self.max_connections as u64)?;
        for (setting, seconds) in [
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
            ),
            ("body_read_timeout_seconds", self.body_read_timeout_seconds),
        ] {
            if !(seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0) {
                return Err(SettingError::new(
                    setting,
                    format!("must be between 0 and 86400 seconds, not {seconds}"),
                ));
            }
        }
        if self.max_snippet_bytes > self.max_body_bytes {
            return Err(SettingError::new(
                "max_snippet_bytes",
                format!(
                    "is {}, more than max_body_bytes ({}): no request could carry such a snippet",
                    self.max_snippet_bytes, self.max_body_bytes
                ),
            ));
        }
        if !(self.max_timeout_seconds.is_finite() && self.max_timeout_seconds > 0.0) {
            return Err(SettingError::new(
                "max_timeout_seconds",
                format!("must be more than 0 s, not {}", self.max_timeout_seconds),
            ));
        }
        if !(self.max_wait_seconds.is_finite() && self.max_wait_seconds >= 0.0) {
            return Err(SettingError::new(
                "max_wait_seconds",
                format!("must be 0 s or more, not {}", self.max_wait_seconds),
            ));
        }
        let idle = self.session_idle_seconds;
        if !(idle.is_finite() && idle > 0.0) {
            return Err(SettingError::new(
                "session_idle_seconds",
                format!("must be more than 0 s, not {idle}"),
            ));
        }
        if self.max_tactics_per_second.is_nan() || self.max_tactics_per_second <= 0.0 {
            return Err(SettingError::new(
                "max_tactics_per_second",
                format!("must be more than 0, not {}", self.max_tactics_per_second),
            ));
        }
        let hours = self.idempotency_key_hours;
        if !(hours.is_finite() && hours > 0.0 && hours <= MAX_IDEMPOTENCY_KEY_HOURS) {
            return Err(SettingError::new(
                "idempotency_key_hours",
                format!("must be more than 0 and at most {MAX_IDEMPOTENCY_KEY_HOURS} hours, not {hours}"),
            ));
        }
        Ok(())
    }

    /// The server's limits these settings describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_snippet_bytes: self.max_snippet_bytes,
            max_batch: self.max_batch,
            max_timeout_seconds: self.max_timeout_seconds,
            max_wait_seconds: self.max_wait_seconds,
            max_queued_jobs: self.max_queued_jobs,
            header_read_timeout: std::time::Duration::from_secs_f64(
                self.header_read_timeout_seconds,
            ),
            body_read_timeout: std::time::Duration::from_secs_f64(self.body_read_timeout_seconds),
            max_connections: self.max_connections,
            idempotency_keep: std::time::Duration::from_secs_f64(
                self.idempotency_key_hours * 3600.0,
            ),
            sessions: leanfarm_server::SessionLimits {
                idle_timeout: std::time::Duration::from_secs_f64(self.session_idle_seconds),
                max_sessions_per_tenant: self.max_sessions_per_tenant,
                max_tactics_per_second: self.max_tactics_per_second,
                max_sessions_per_host: self.max_session_repls,
                ..Default::default()
            },
            ..Limits::default()
        }
    }
}

//! Where `leanfarm serve` keeps its state: the job store and the artifact
//! store. Defaults follow from the data directory, in `store_url` and
//! `artifacts_url`. This module only describes settings; it must never
//! open a store.

use super::SettingError;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::Path;

const STORE_SCHEMES: [&str; 4] = [
    "sqlite://",
    "sqlite::memory:",
    "postgres://",
    "postgresql://",
];

#[derive(Args, Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct StoreArgs {
    /// Store URL: sqlite://PATH or postgres://... [default: sqlite://DATA_DIR/leanfarm.db]
    #[arg(long, env = "LEAN_FARM_STORE")]
    #[serde(default)]
    pub store: Option<String>,
    /// Artifact store: a directory, file:///dir, memory://, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX (credentials from the AWS_* or GOOGLE_* variables) [default: DATA_DIR/artifacts]
    #[arg(long, env = "LEAN_FARM_ARTIFACTS")]
    #[serde(default)]
    pub artifacts: Option<String>,
    /// Base URL of the S3 or GCS service, for MinIO, other S3-compatible servers or an emulator (a GCS endpoint is reached without OAuth) [default: the provider's, or AWS_ENDPOINT]
    #[arg(long, env = "LEAN_FARM_ARTIFACTS_ENDPOINT")]
    #[serde(default)]
    pub artifacts_endpoint: Option<String>,
    /// S3 region of the artifact bucket [default: AWS_REGION, else us-east-1]
    #[arg(long, env = "LEAN_FARM_ARTIFACTS_REGION")]
    #[serde(default)]
    pub artifacts_region: Option<String>,
    /// Allow a plain http:// artifacts endpoint (tests and emulators only)
    #[arg(long, env = "LEAN_FARM_ARTIFACTS_ALLOW_HTTP")]
    #[serde(default)]
    pub artifacts_allow_http: bool,
}

impl StoreArgs {
    /// Refuse a store URL no backend takes, naming the setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        if let Some(url) = &self.store {
            if !STORE_SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
                return Err(SettingError::new(
                    "store",
                    format!("`{url}` is not sqlite://PATH, sqlite::memory: or postgres://..."),
                ));
            }
        }
        if self.artifacts.as_deref().is_some_and(str::is_empty) {
            return Err(SettingError::new("artifacts", "is empty".to_string()));
        }
        if let Some(endpoint) = &self.artifacts_endpoint {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(SettingError::new(
                    "artifacts_endpoint",
                    format!("`{endpoint}` is not an http:// or https:// url"),
                ));
            }
            if endpoint.starts_with("http://") && !self.artifacts_allow_http {
                return Err(SettingError::new(
                    "artifacts_endpoint",
                    format!("`{endpoint}` is plain http: set artifacts_allow_http too (tests and emulators only)"),
                ));
            }
        }
        Ok(())
    }

    /// The store's URL: the setting, or a SQLite file in the data directory.
    pub fn store_url(&self, data_dir: &Path) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("leanfarm.db").display()))
    }

    /// The S3 and GCS settings of the artifact store.
    pub fn artifact_settings(&self) -> leanfarm_store::ArtifactSettings {
        leanfarm_store::ArtifactSettings {
            endpoint: self.artifacts_endpoint.clone(),
            region: self.artifacts_region.clone(),
            allow_http: self.artifacts_allow_http,
        }
    }

    /// The artifact store: the setting, or a directory in the data directory.
    pub fn artifacts_url(&self, data_dir: &Path) -> String {
        self.artifacts
            .clone()
            .unwrap_or_else(|| data_dir.join("artifacts").display().to_string())
    }
}

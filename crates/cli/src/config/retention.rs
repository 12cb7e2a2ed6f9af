//! How long final jobs and their artifacts are kept
//! (`leanfarm_server::RetentionPolicy`): days for valid verdicts (proofs)
//! and for everything else, how often `serve` sweeps, and the batch size.
//! `leanfarm gc` reads the same settings. This module only describes and
//! validates settings; it must never open a store.

use super::SettingError;
use clap::Args;
use leanfarm_server::RetentionPolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The one place each retention default is written.
pub(crate) mod defaults {
    pub fn retention_valid_days() -> f64 {
        90.0
    }
    pub fn retention_other_days() -> f64 {
        14.0
    }
    pub fn retention_sweep_seconds() -> f64 {
        3600.0
    }
    pub fn retention_batch_size() -> usize {
        500
    }
}

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The longest retention a setting may ask for: 100 years.
const MAX_RETENTION_DAYS: f64 = 36_500.0;

#[derive(Args, Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct RetentionArgs {
    /// Days a job with a valid verdict (a proof) and its artifacts are kept after it finished
    #[arg(long, env = "LEAN_FARM_RETENTION_VALID_DAYS", default_value_t = defaults::retention_valid_days())]
    #[serde(default = "defaults::retention_valid_days")]
    pub retention_valid_days: f64,
    /// Days every other final job (other verdicts, cancelled, dead) and its artifacts are kept after it finished
    #[arg(long, env = "LEAN_FARM_RETENTION_OTHER_DAYS", default_value_t = defaults::retention_other_days())]
    #[serde(default = "defaults::retention_other_days")]
    pub retention_other_days: f64,
    /// Seconds between two retention sweeps of `serve` (0: no sweep; `leanfarm gc` still deletes)
    #[arg(long, env = "LEAN_FARM_RETENTION_SWEEP_SECONDS", default_value_t = defaults::retention_sweep_seconds())]
    #[serde(default = "defaults::retention_sweep_seconds")]
    pub retention_sweep_seconds: f64,
    /// Jobs looked up and deleted per batch of a retention sweep
    #[arg(long, env = "LEAN_FARM_RETENTION_BATCH_SIZE", default_value_t = defaults::retention_batch_size())]
    #[serde(default = "defaults::retention_batch_size")]
    pub retention_batch_size: usize,
}

impl Default for RetentionArgs {
    fn default() -> Self {
        RetentionArgs {
            retention_valid_days: defaults::retention_valid_days(),
            retention_other_days: defaults::retention_other_days(),
            retention_sweep_seconds: defaults::retention_sweep_seconds(),
            retention_batch_size: defaults::retention_batch_size(),
        }
    }
}

impl RetentionArgs {
    /// Refuse a value retention cannot work with, naming the setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        for (setting, days) in [
            ("retention_valid_days", self.retention_valid_days),
            ("retention_other_days", self.retention_other_days),
        ] {
            if !(days.is_finite() && days > 0.0 && days <= MAX_RETENTION_DAYS) {
                return Err(SettingError::new(
                    setting,
                    format!(
                        "must be more than 0 and at most {MAX_RETENTION_DAYS} days, not {days}"
                    ),
                ));
            }
        }
        let seconds = self.retention_sweep_seconds;
        if !(seconds.is_finite()
            && (seconds == 0.0 || (1.0..=SECONDS_PER_DAY * 7.0).contains(&seconds)))
        {
            return Err(SettingError::new(
                "retention_sweep_seconds",
                format!("must be 0 (no sweep) or between 1 and 604800 seconds, not {seconds}"),
            ));
        }
        if !(1..=100_000).contains(&self.retention_batch_size) {
            return Err(SettingError::new(
                "retention_batch_size",
                format!(
                    "must be between 1 and 100000, not {}",
                    self.retention_batch_size
                ),
            ));
        }
        Ok(())
    }

    /// The policy these settings describe.
    pub fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            valid_for: Duration::from_secs_f64(self.retention_valid_days * SECONDS_PER_DAY),
            other_for: Duration::from_secs_f64(self.retention_other_days * SECONDS_PER_DAY),
            sweep_interval: Duration::from_secs_f64(self.retention_sweep_seconds),
            batch_size: self.retention_batch_size,
        }
    }

    /// Whether `serve` sweeps periodically.
    pub fn sweeps(&self) -> bool {
        self.retention_sweep_seconds > 0.0
    }
}

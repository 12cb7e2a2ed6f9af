//! How the queue treats attempts and outages (`leanfarm_store::QueuePolicy`):
//! how many attempts a job gets, and whether a lease that runs out while
//! the store is unreachable counts against them. This module only
//! describes and validates settings; it must never open a store.

use super::SettingError;
use clap::Args;
use leanfarm_store::QueuePolicy;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The one place each queue default is written.
pub(crate) mod defaults {
    pub fn max_attempts() -> u32 {
        3
    }
    pub fn outage_gap_seconds() -> f64 {
        leanfarm_store::DEFAULT_OUTAGE_GAP.as_secs_f64()
    }
}

#[derive(Args, Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct QueueArgs {
    /// Attempts each job gets: a lease that runs out or a release after a failure of the farm uses one; then the job is dead
    #[arg(long, env = "LEAN_FARM_MAX_ATTEMPTS", default_value_t = defaults::max_attempts())]
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// A lease that runs out during an outage of the store expires and uses an attempt (by default the leases are extended by the outage)
    #[arg(long, env = "LEAN_FARM_COUNT_LEASE_EXPIRY_IN_OUTAGES")]
    #[serde(default)]
    pub count_lease_expiry_in_outages: bool,
    /// Seconds without any claim or renewal reaching the store that make an outage
    #[arg(long, env = "LEAN_FARM_OUTAGE_GAP_SECONDS", default_value_t = defaults::outage_gap_seconds())]
    #[serde(default = "defaults::outage_gap_seconds")]
    pub outage_gap_seconds: f64,
}

impl QueueArgs {
    /// Refuse a value the queue cannot work with, naming the setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.max_attempts == 0 {
            return Err(SettingError::new(
                "max_attempts",
                "must be at least 1".to_string(),
            ));
        }
        if !(self.outage_gap_seconds.is_finite() && self.outage_gap_seconds >= 2.0) {
            return Err(SettingError::new(
                "outage_gap_seconds",
                format!(
                    "must be at least 2 s (the queue's clock ticks once a second), not {}",
                    self.outage_gap_seconds
                ),
            ));
        }
        Ok(())
    }

    pub fn policy(&self) -> QueuePolicy {
        QueuePolicy {
            max_attempts: Some(self.max_attempts),
            count_expiry_during_outage: self.count_lease_expiry_in_outages,
            outage_gap: Duration::from_secs_f64(self.outage_gap_seconds),
        }
    }
}

//! The prove settings of `leanfarm serve`: the lease of a replica on a
//! prove job, the tenants' daily caps on model tokens and cost (flags,
//! variables or the file), and the model routes, which only the TOML file
//! can hold (`[prove.routes.NAME]`, see docs/prove.md). This module only
//! describes and validates settings; it must never call a model.

use super::SettingError;
use clap::Args;
use leanfarm_prove::RouteConfig;
use leanfarm_server::ProveSettings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// The one place each prove default is written.
pub(crate) mod defaults {
    pub fn prove_lease_seconds() -> f64 {
        30.0
    }
    pub fn prove_max_running_per_tenant() -> u64 {
        16
    }
}

#[derive(Args, Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub struct ProveArgs {
    /// Seconds a replica's lease on a prove job lasts; another replica resumes the job once it runs out
    #[arg(long, env = "LEAN_FARM_PROVE_LEASE_SECONDS", default_value_t = defaults::prove_lease_seconds())]
    #[serde(default = "defaults::prove_lease_seconds")]
    pub prove_lease_seconds: f64,
    /// Prove jobs one tenant may have running at once (429 tenant_prove_jobs_full beyond)
    #[arg(long, env = "LEAN_FARM_PROVE_MAX_RUNNING_PER_TENANT", default_value_t = defaults::prove_max_running_per_tenant())]
    #[serde(default = "defaults::prove_max_running_per_tenant")]
    pub prove_max_running_per_tenant: u64,
    /// Model tokens each tenant may use per day (UTC) in prove jobs [default: no cap]
    #[arg(long, env = "LEAN_FARM_PROVE_TENANT_DAILY_TOKENS")]
    #[serde(default)]
    pub prove_tenant_daily_tokens: Option<u64>,
    /// Model cost each tenant may incur per day (UTC), in the routes' price unit [default: no cap]
    #[arg(long, env = "LEAN_FARM_PROVE_TENANT_DAILY_COST")]
    #[serde(default)]
    pub prove_tenant_daily_cost: Option<f64>,
    /// The `[prove]` table of the config file (its `routes`).
    #[arg(skip)]
    #[serde(default)]
    pub prove: ProveSection,
}

/// `[prove]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProveSection {
    /// `[prove.routes.NAME]`: the model routes (`dummy` is built in).
    #[serde(default)]
    pub routes: BTreeMap<String, RouteConfig>,
}

impl ProveArgs {
    /// Refuse a value the prove jobs cannot work with, naming the setting.
    pub fn validate(&self) -> Result<(), SettingError> {
        if !(self.prove_lease_seconds.is_finite() && self.prove_lease_seconds >= 1.0) {
            return Err(SettingError::new(
                "prove_lease_seconds",
                format!("must be at least 1 s, not {}", self.prove_lease_seconds),
            ));
        }
        if self.prove_max_running_per_tenant == 0 {
            return Err(SettingError::new(
                "prove_max_running_per_tenant",
                "must be at least 1".to_string(),
            ));
        }
        if let Some(cost) = self.prove_tenant_daily_cost {
            if !(cost.is_finite() && cost >= 0.0) {
                return Err(SettingError::new(
                    "prove_tenant_daily_cost",
                    format!("must be zero or more, not {cost}"),
                ));
            }
        }
        Ok(())
    }

    pub fn settings(&self) -> ProveSettings {
        ProveSettings {
            lease: Duration::from_secs_f64(self.prove_lease_seconds),
            tenant_daily_tokens: self.prove_tenant_daily_tokens,
            tenant_daily_cost: self.prove_tenant_daily_cost,
            max_running_per_tenant: self.prove_max_running_per_tenant,
            ..ProveSettings::default()
        }
    }
}

//! `leanfarm tenant`: tenants, their limits, and their tokens, written
//! straight to the store (an operator's command, run where the store is
//! reachable).
//!
//! This is the only place operator tokens are made: the HTTP API must never
//! mint one. A tenant's keys (`key`) are `user` or `worker` keys of that
//! tenant only; the farm's own keys (`farm-key`) are farm workers, which may
//! lease every tenant's jobs, and operators. It never prints a token except
//! once, when it is made.

use crate::CliError;
use clap::{Args, Subcommand, ValueEnum};
use leanfarm_server::auth::{new_token, token_digest};
use leanfarm_store::{
    KeyOwner, KeyRecord, Store, StoreError, TenantKeyScope, TenantRecord, UnixMillis,
};

#[derive(Args, Debug)]
pub struct TenantArgs {
    /// Store URL: sqlite://PATH or postgres://...
    #[arg(long, env = "LEAN_FARM_STORE")]
    pub store: String,
    #[command(subcommand)]
    pub action: TenantAction,
}

#[derive(Subcommand, Debug)]
pub enum TenantAction {
    /// Create a tenant or change its limits.
    Set {
        /// A short slug: a-z, 0-9, `_` and `-`, at most 63 characters
        name: String,
        /// Queued plus running jobs at most
        #[arg(long, default_value_t = 100_000)]
        max_queued: u64,
        /// Running jobs at most
        #[arg(long, default_value_t = 1_000)]
        max_running: u64,
        /// Requests per second at most (per API replica)
        #[arg(long, default_value_t = 100.0)]
        rps: f64,
    },
    /// Show a tenant's limits and open jobs.
    Show { name: String },
    /// List every tenant with its limits.
    List,
    /// Create a token of one tenant and print it (it is shown only once).
    Key {
        tenant: String,
        /// user: submit and read the tenant's checks; worker: lease and
        /// complete only the tenant's jobs (farm tokens: `farm-key`)
        #[arg(long, value_parser = parse_tenant_scope, default_value = "user")]
        scope: TenantKeyScope,
        /// The token stops working after this long: e.g. 90s, 30m, 12h, 30d
        #[arg(long, value_parser = parse_lifetime)]
        expires_in: Option<u64>,
    },
    /// Create a token of the farm itself and print it (shown only once).
    FarmKey {
        /// worker: lease and complete every tenant's jobs; operator: the farm
        #[arg(long, value_enum)]
        scope: FarmScope,
        /// The token stops working after this long: e.g. 90s, 30m, 12h, 30d
        #[arg(long, value_parser = parse_lifetime)]
        expires_in: Option<u64>,
    },
    /// List the keys of a tenant (or of the farm): key id, scope, created,
    /// expiry and whether revoked; never the tokens.
    Keys {
        #[arg(required_unless_present = "farm")]
        tenant: Option<String>,
        /// The farm's own keys (farm workers and operators)
        #[arg(long, conflicts_with = "tenant")]
        farm: bool,
    },
    /// Revoke a token, given its key id or the token itself.
    Revoke { key_id_or_token: String },
}

/// The scopes of the farm's own tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FarmScope {
    Worker,
    Operator,
}

fn parse_tenant_scope(text: &str) -> Result<TenantKeyScope, String> {
    match text {
        "user" => Ok(TenantKeyScope::User),
        "worker" => Ok(TenantKeyScope::Worker),
        "operator" | "admin" => Err(
            "operator tokens belong to the farm, not a tenant: use `leanfarm tenant farm-key --scope operator`"
                .to_string(),
        ),
        other => Err(format!("unknown scope `{other}` (user or worker)")),
    }
}

const MILLIS_PER_SECOND: u64 = 1000;

/// A lifetime such as `90s`, `30m`, `12h` or `30d`, in milliseconds.
fn parse_lifetime(text: &str) -> Result<u64, String> {
    let explain = || {
        format!("`{text}` is not a lifetime: expected a positive number and a unit (s, m, h or d), e.g. 30d")
    };
    let split = text.len().checked_sub(1).ok_or_else(explain)?;
    let (number, unit) = text.split_at(split);
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(explain()),
    };
    let count: u64 = number.parse().map_err(|_| explain())?;
    if count == 0 {
        return Err(explain());
    }
    count
        .checked_mul(seconds_per_unit * MILLIS_PER_SECOND)
        .filter(|millis| *millis <= i64::MAX as u64 / 2)
        .ok_or_else(explain)
}

fn expiry_from_now(lifetime_millis: Option<u64>) -> Option<UnixMillis> {
    lifetime_millis.map(|millis| leanfarm_store::now_millis() + millis as i64)
}

/// A store failure as the command reports it: a refused name or tenant is
/// the caller's mistake (exit 2), anything else a failed request.
fn store_failure(error: StoreError) -> CliError {
    match error {
        StoreError::InvalidTenantName(_) | StoreError::UnknownTenant(_) => {
            CliError::Config(error.to_string())
        }
        other => CliError::Request(other.to_string()),
    }
}

pub async fn run(args: TenantArgs) -> Result<(), CliError> {
    let store = Store::open(&args.store)
        .await
        .map_err(|error| CliError::Startup(format!("store {}: {error}", args.store)))?;
    match args.action {
        TenantAction::Set {
            name,
            max_queued,
            max_running,
            rps,
        } => {
            if !(rps.is_finite() && rps > 0.0) {
                return Err(CliError::Config("--rps must be a positive number".into()));
            }
            leanfarm_store::validate_tenant_name(&name).map_err(store_failure)?;
            let created_at = store
                .get_tenant(&name)
                .await
                .map_err(store_failure)?
                .map_or_else(leanfarm_store::now_millis, |existing| existing.created_at);
            store
                .upsert_tenant(&TenantRecord {
                    name: name.clone(),
                    max_queued,
                    max_running,
                    requests_per_second: rps,
                    created_at,
                })
                .await
                .map_err(store_failure)?;
            println!("tenant {name}: max_queued {max_queued}, max_running {max_running}, {rps} requests/s");
        }
        TenantAction::Show { name } => {
            let Some(tenant) = store.get_tenant(&name).await.map_err(store_failure)? else {
                return Err(CliError::Config(format!("no tenant `{name}`")));
            };
            let open = store.tenant_open_jobs(&name).await.map_err(store_failure)?;
            println!(
                "tenant {}: max_queued {}, max_running {}, {} requests/s, {open} open jobs",
                tenant.name, tenant.max_queued, tenant.max_running, tenant.requests_per_second
            );
        }
        TenantAction::List => {
            let tenants = store.list_tenants().await.map_err(store_failure)?;
            println!("name\tmax_queued\tmax_running\trequests_per_second\tcreated");
            for tenant in tenants {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    tenant.name,
                    tenant.max_queued,
                    tenant.max_running,
                    tenant.requests_per_second,
                    utc_text(tenant.created_at)
                );
            }
        }
        TenantAction::Key {
            tenant,
            scope,
            expires_in,
        } => {
            let token = new_token();
            let expires_at = expiry_from_now(expires_in);
            let key_id = store
                .create_tenant_key(&tenant, scope, &token_digest(&token), expires_at)
                .await
                .map_err(store_failure)?;
            let scope_name = match scope {
                TenantKeyScope::User => "user",
                TenantKeyScope::Worker => "worker",
            };
            eprintln!(
                "key {key_id} ({scope_name} of tenant {tenant}, {}); the token, shown only once:",
                expiry_text(expires_at)
            );
            println!("{token}");
        }
        TenantAction::FarmKey { scope, expires_in } => {
            let token = new_token();
            let digest = token_digest(&token);
            let expires_at = expiry_from_now(expires_in);
            let (key_id, scope_name) = match scope {
                FarmScope::Worker => (
                    store.create_farm_worker_key(&digest, expires_at).await,
                    "worker",
                ),
                FarmScope::Operator => (
                    store.create_operator_key(&digest, expires_at).await,
                    "operator",
                ),
            };
            let key_id = key_id.map_err(store_failure)?;
            eprintln!(
                "key {key_id} ({scope_name} of the farm, {}); the token, shown only once:",
                expiry_text(expires_at)
            );
            println!("{token}");
        }
        TenantAction::Keys { tenant, farm } => {
            let owner = match tenant {
                Some(name) if !farm => KeyOwner::Tenant(name),
                _ => KeyOwner::Farm,
            };
            let keys = store.list_keys(&owner).await.map_err(store_failure)?;
            if let KeyOwner::Tenant(name) = &owner {
                let known = store.get_tenant(name).await.map_err(store_failure)?;
                if known.is_none() && keys.is_empty() {
                    return Err(CliError::Config(format!("no tenant `{name}`")));
                }
            }
            println!("key_id\tscope\tcreated\texpires\tstate");
            let now = leanfarm_store::now_millis();
            for key in keys {
                println!("{}", key_line(&key, now));
            }
        }
        TenantAction::Revoke { key_id_or_token } => {
            let key_id = if store
                .revoke_api_key(&key_id_or_token)
                .await
                .map_err(store_failure)?
            {
                key_id_or_token
            } else {
                store
                    .revoke_token(&token_digest(&key_id_or_token))
                    .await
                    .map_err(store_failure)?
                    .ok_or_else(|| {
                        CliError::Config("no key has this key id or token".to_string())
                    })?
            };
            println!("key {key_id} revoked");
        }
    }
    Ok(())
}

/// One line of `keys`: never the token, which the store does not hold.
fn key_line(key: &KeyRecord, now: UnixMillis) -> String {
    let scope = match key.scope {
        leanfarm_store::KeyScope::User => "user",
        leanfarm_store::KeyScope::Worker => "worker",
        leanfarm_store::KeyScope::Operator => "operator",
    };
    let state = if key.revoked {
        "revoked"
    } else if key.is_expired_at(now) {
        "expired"
    } else {
        "active"
    };
    let expires = key.expires_at.map_or_else(|| "never".to_string(), utc_text);
    format!(
        "{}\t{scope}\t{}\t{expires}\t{state}",
        key.key_id,
        utc_text(key.created_at)
    )
}

fn expiry_text(expires_at: Option<UnixMillis>) -> String {
    expires_at.map_or_else(
        || "never expires".to_string(),
        |at| format!("expires {}", utc_text(at)),
    )
}

/// A store timestamp as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn utc_text(millis: UnixMillis) -> String {
    let seconds = millis.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian calendar).
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        // 2024-02-29T13:14:15Z, a leap day.
        assert_eq!(utc_text(1_709_212_455_000), "2024-02-29T13:14:15Z");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn lifetimes_have_a_unit_and_a_positive_number() {
        assert_eq!(parse_lifetime("90s"), Ok(90_000));
        assert_eq!(parse_lifetime("30d"), Ok(30 * 86_400_000));
        for bad in ["", "d", "30", "0d", "-1h", "1y", "99999999999999999d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}

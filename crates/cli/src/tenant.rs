//! `leanfarm tenant`: tenants, their limits, and their tokens, written
//! straight to the store (an administrator's command, run where the store
//! is reachable).

use crate::CliError;
use clap::{Args, Subcommand};
use leanfarm_server::auth::{new_token, token_digest};
use leanfarm_store::{KeyScope, Store, TenantRecord};

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
    /// Create a token for a tenant and print it (it is shown only once).
    Key {
        tenant: String,
        /// user: submit and read checks; worker: lease and complete jobs; admin: both
        #[arg(long, value_parser = parse_scope, default_value = "user")]
        scope: KeyScope,
    },
    /// Revoke a token by its key id.
    Revoke { key_id: String },
}

fn parse_scope(text: &str) -> Result<KeyScope, String> {
    match text {
        "user" => Ok(KeyScope::User),
        "worker" => Ok(KeyScope::Worker),
        "admin" => Ok(KeyScope::Admin),
        other => Err(format!("unknown scope `{other}` (user, worker or admin)")),
    }
}

pub async fn run(args: TenantArgs) -> Result<(), CliError> {
    let store = Store::open(&args.store)
        .await
        .map_err(|error| CliError::Startup(format!("store {}: {error}", args.store)))?;
    let failed = |error: leanfarm_store::StoreError| CliError::Request(error.to_string());
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
            let created_at = store
                .get_tenant(&name)
                .await
                .map_err(failed)?
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
                .map_err(failed)?;
            println!("tenant {name}: max_queued {max_queued}, max_running {max_running}, {rps} requests/s");
        }
        TenantAction::Show { name } => {
            let Some(tenant) = store.get_tenant(&name).await.map_err(failed)? else {
                return Err(CliError::Config(format!("no tenant `{name}`")));
            };
            let open = store.tenant_open_jobs(&name).await.map_err(failed)?;
            println!(
                "tenant {}: max_queued {}, max_running {}, {} requests/s, {open} open jobs",
                tenant.name, tenant.max_queued, tenant.max_running, tenant.requests_per_second
            );
        }
        TenantAction::Key { tenant, scope } => {
            let token = new_token();
            let key_id = store
                .create_api_key(&tenant, scope, &token_digest(&token))
                .await
                .map_err(failed)?;
            eprintln!("key {key_id} ({scope:?} of tenant {tenant}); the token, shown only once:");
            println!("{token}");
        }
        TenantAction::Revoke { key_id } => {
            if !store.revoke_api_key(&key_id).await.map_err(failed)? {
                return Err(CliError::Config(format!("no key `{key_id}`")));
            }
            println!("key {key_id} revoked");
        }
    }
    Ok(())
}

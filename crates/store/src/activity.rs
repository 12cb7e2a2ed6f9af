//! Read-only summaries of recent work for dashboards (the web console's
//! overview and batch list), on both backends: verdicts finished per time
//! bucket, a tenant's latest batches, and each tenant's open jobs.
//!
//! Nothing here changes a row; every query is bounded by a time window or
//! a limit.

use crate::postgres::PostgresStore;
use crate::sqlite::{query_error, SqliteStore};
use crate::{Backend, BatchCounts, Store, StoreError, UnixMillis};
use leanfarm_core::CheckStatus;
use rusqlite::params;

/// How many final jobs finished in one time bucket with one outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedCount {
    /// The bucket's start, Unix milliseconds (a multiple of the bucket width).
    pub bucket_start: UnixMillis,
    /// The verdict's status; `None` for a dead job (no verdict).
    pub status: Option<CheckStatus>,
    pub count: u64,
}

/// Which batches `Store::recent_batches` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchListFilter {
    All,
    /// Batches with a queued or running job.
    Open,
    /// Batches whose every job is final.
    Finished,
}

/// One batch of a tenant with its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    pub batch_id: String,
    /// When its first job was submitted, Unix milliseconds.
    pub created_at: UnixMillis,
    pub counts: BatchCounts,
}

/// One tenant's open jobs, from the per-tenant queue counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantOpenJobs {
    pub tenant: String,
    pub queued: u64,
    pub running: u64,
}

fn parse_outcome(text: &str) -> Result<Option<CheckStatus>, StoreError> {
    if text == "dead" {
        return Ok(None);
    }
    CheckStatus::ALL
        .into_iter()
        .find(|known| known.as_str() == text)
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown verdict status `{text}`")))
}

impl Store {
    /// Final jobs that finished at or after `since`, counted per bucket of
    /// `bucket_millis` and per outcome (the verdict's status, or dead), of
    /// one tenant or, with `None`, of every tenant; oldest bucket first.
    pub async fn finished_counts(
        &self,
        tenant: Option<&str>,
        since: UnixMillis,
        bucket_millis: i64,
    ) -> Result<Vec<FinishedCount>, StoreError> {
        let bucket_millis = bucket_millis.max(1);
        let tenant = tenant.map(str::to_string);
        let rows = match &self.backend {
            Backend::Sqlite(store) => store.finished_counts(tenant, since, bucket_millis).await?,
            Backend::Postgres(store) => store.finished_counts(tenant, since, bucket_millis).await?,
        };
        rows.into_iter()
            .map(|(bucket_start, outcome, count)| {
                Ok(FinishedCount {
                    bucket_start,
                    status: parse_outcome(&outcome)?,
                    count,
                })
            })
            .collect()
    }

    /// A tenant's latest batches (by their first job's submission, newest
    /// first), at most `limit`, each with its progress.
    pub async fn recent_batches(
        &self,
        tenant: &str,
        filter: BatchListFilter,
        limit: usize,
    ) -> Result<Vec<BatchSummary>, StoreError> {
        let open = match filter {
            BatchListFilter::All => None,
            BatchListFilter::Open => Some(true),
            BatchListFilter::Finished => Some(false),
        };
        let limit = limit.max(1) as i64;
        let ids = match &self.backend {
            Backend::Sqlite(store) => {
                store
                    .recent_batch_ids(tenant.to_string(), open, limit)
                    .await?
            }
            Backend::Postgres(store) => store.recent_batch_ids(tenant, open, limit).await?,
        };
        let mut batches = Vec::with_capacity(ids.len());
        for (batch_id, created_at) in ids {
            // A batch deleted by retention between the two reads is skipped.
            if let Some(counts) = self.batch_counts(tenant, &batch_id).await? {
                batches.push(BatchSummary {
                    batch_id,
                    created_at,
                    counts,
                });
            }
        }
        Ok(batches)
    }

    /// Every tenant that has had jobs, with its queued and running jobs now.
    pub async fn open_jobs_by_tenant(&self) -> Result<Vec<TenantOpenJobs>, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.open_jobs_by_tenant().await,
            Backend::Postgres(store) => store.open_jobs_by_tenant().await,
        }
    }
}

impl SqliteStore {
    async fn finished_counts(
        &self,
        tenant: Option<String>,
        since: UnixMillis,
        bucket_millis: i64,
    ) -> Result<Vec<(UnixMillis, String, u64)>, StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT (finished_at / ?2) * ?2,
                            CASE WHEN state = 'done' THEN coalesce(json_extract(result, '$.status'), 'dead') ELSE 'dead' END,
                            count(*)
                     FROM jobs
                     WHERE state IN ('done', 'dead') AND finished_at >= ?1 AND (?3 IS NULL OR tenant = ?3)
                     GROUP BY 1, 2 ORDER BY 1, 2",
                )
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![since, bucket_millis, tenant], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, u64>(2)?))
                })
                .map_err(query_error)?;
            rows.collect::<Result<_, _>>().map_err(query_error)
        })
        .await
    }

    async fn recent_batch_ids(
        &self,
        tenant: String,
        open: Option<bool>,
        limit: i64,
    ) -> Result<Vec<(String, UnixMillis)>, StoreError> {
        self.run(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT batch_id, min(created_at) FROM jobs
                     WHERE tenant = ?1 AND batch_id IS NOT NULL
                     GROUP BY batch_id
                     HAVING ?2 IS NULL OR (sum(state IN ('queued', 'running')) > 0) = ?2
                     ORDER BY 2 DESC, 1 DESC LIMIT ?3",
                )
                .map_err(query_error)?;
            let rows = statement
                .query_map(params![tenant, open, limit], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(query_error)?;
            rows.collect::<Result<_, _>>().map_err(query_error)
        })
        .await
    }

    async fn open_jobs_by_tenant(&self) -> Result<Vec<TenantOpenJobs>, StoreError> {
        self.run(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT tenant, queued, running FROM tenant_queue ORDER BY tenant")
                .map_err(query_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(TenantOpenJobs {
                        tenant: row.get(0)?,
                        queued: row.get(1)?,
                        running: row.get(2)?,
                    })
                })
                .map_err(query_error)?;
            rows.collect::<Result<_, _>>().map_err(query_error)
        })
        .await
    }
}

impl PostgresStore {
    async fn finished_counts(
        &self,
        tenant: Option<String>,
        since: UnixMillis,
        bucket_millis: i64,
    ) -> Result<Vec<(UnixMillis, String, u64)>, StoreError> {
        let rows = self
            .query(
                "SELECT (finished_at / $2) * $2,
                        CASE WHEN state = 'done' THEN coalesce(result::jsonb ->> 'status', 'dead') ELSE 'dead' END,
                        count(*)
                 FROM jobs
                 WHERE state IN ('done', 'dead') AND finished_at >= $1 AND ($3::text IS NULL OR tenant = $3)
                 GROUP BY 1, 2 ORDER BY 1, 2",
                &[&since, &bucket_millis, &tenant],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get::<_, i64>(0),
                    row.get::<_, String>(1),
                    row.get::<_, i64>(2) as u64,
                )
            })
            .collect())
    }

    async fn recent_batch_ids(
        &self,
        tenant: &str,
        open: Option<bool>,
        limit: i64,
    ) -> Result<Vec<(String, UnixMillis)>, StoreError> {
        let rows = self
            .query(
                "SELECT batch_id, min(created_at) FROM jobs
                 WHERE tenant = $1 AND batch_id IS NOT NULL
                 GROUP BY batch_id
                 HAVING $2::bool IS NULL OR (count(*) FILTER (WHERE state IN ('queued', 'running')) > 0) = $2
                 ORDER BY 2 DESC, 1 DESC LIMIT $3",
                &[&tenant, &open, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect())
    }

    async fn open_jobs_by_tenant(&self) -> Result<Vec<TenantOpenJobs>, StoreError> {
        let rows = self
            .query(
                "SELECT tenant, queued, running FROM tenant_queue ORDER BY tenant",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| TenantOpenJobs {
                tenant: row.get(0),
                queued: row.get::<_, i64>(1).max(0) as u64,
                running: row.get::<_, i64>(2).max(0) as u64,
            })
            .collect())
    }
}

//! The farm's metrics and their Prometheus text exposition. Every metric is
//! recorded through this module; label values are bounded (statuses only).

use leanfarm_core::CheckStatus;
use leanfarm_driver::PoolStats;
use leanfarm_store::QueueCounts;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds of the job duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

#[derive(Default)]
pub struct Metrics {
    jobs_by_status: [AtomicU64; 6],
    durations: Mutex<Histogram>,
    active_workers: AtomicU64,
    requests_rejected: AtomicU64,
    /// Jobs finished per (tenant, status).
    jobs_by_tenant: Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    /// Prove jobs: time to proof, outcomes, budget exhaustions.
    prove: Mutex<ProveMetrics>,
}

/// Upper bounds of the time-to-proof histogram, in seconds.
const TIME_TO_PROOF_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

#[derive(Default)]
struct ProveMetrics {
    time_to_proof_buckets: [u64; TIME_TO_PROOF_BUCKETS.len()],
    time_to_proof_count: u64,
    time_to_proof_sum: f64,
    /// Prove jobs ended, by outcome (`proved`, `exhausted`, `failed`, `cancelled`).
    outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Prove jobs stopped by a budget, by budget (`candidates`, `tokens`, ...).
    exhaustions: std::collections::BTreeMap<&'static str, u64>,
}

/// A model route's counters as the gateway reports them.
pub struct RouteTotals {
    pub route: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub errors: Vec<(String, u64)>,
}

#[derive(Default)]
struct Histogram {
    bucket_counts: [u64; DURATION_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// A job finished with this verdict after `seconds` from enqueue to result.
    pub fn job_finished(&self, tenant: &str, status: CheckStatus, seconds: f64) {
        *self
            .jobs_by_tenant
            .lock()
            .expect("metrics lock")
            .entry((tenant.to_string(), status.as_str()))
            .or_default() += 1;
        let index = CheckStatus::ALL
            .iter()
            .position(|s| *s == status)
            .expect("every status is listed");
        self.jobs_by_status[index].fetch_add(1, Ordering::Relaxed);
        let mut histogram = self.durations.lock().expect("metrics lock");
        for (bucket, bound) in DURATION_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                histogram.bucket_counts[bucket] += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// A prove job ended with `outcome` after `seconds`; `budget` names the
    /// budget that stopped it, if one did.
    pub fn prove_finished(
        &self,
        outcome: &'static str,
        seconds: f64,
        budget: Option<&'static str>,
    ) {
        let mut prove = self.prove.lock().expect("metrics lock");
        *prove.outcomes.entry(outcome).or_default() += 1;
        if let Some(budget) = budget {
            *prove.exhaustions.entry(budget).or_default() += 1;
        }
        if outcome == "proved" {
            for (bucket, bound) in TIME_TO_PROOF_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    prove.time_to_proof_buckets[bucket] += 1;
                }
            }
            prove.time_to_proof_count += 1;
            prove.time_to_proof_sum += seconds;
        }
    }

    /// The prove jobs' and the model routes' metrics.
    pub fn render_prove(&self, routes: &[RouteTotals]) -> String {
        let mut out = String::new();
        let prove = self.prove.lock().expect("metrics lock");
        out.push_str("# HELP lean_farm_prove_time_to_proof_seconds Time from a prove job's submission to its proof.\n# TYPE lean_farm_prove_time_to_proof_seconds histogram\n");
        for (bucket, bound) in TIME_TO_PROOF_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "lean_farm_prove_time_to_proof_seconds_bucket{{le=\"{bound}\"}} {}",
                prove.time_to_proof_buckets[bucket]
            );
        }
        let _ = writeln!(
            out,
            "lean_farm_prove_time_to_proof_seconds_bucket{{le=\"+Inf\"}} {}",
            prove.time_to_proof_count
        );
        let _ = writeln!(
            out,
            "lean_farm_prove_time_to_proof_seconds_sum {}",
            prove.time_to_proof_sum
        );
        let _ = writeln!(
            out,
            "lean_farm_prove_time_to_proof_seconds_count {}",
            prove.time_to_proof_count
        );
        out.push_str("# HELP lean_farm_prove_jobs_total Prove jobs ended, by outcome.\n# TYPE lean_farm_prove_jobs_total counter\n");
        for outcome in ["proved", "exhausted", "failed", "cancelled"] {
            let count = prove.outcomes.get(outcome).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "lean_farm_prove_jobs_total{{outcome=\"{outcome}\"}} {count}"
            );
        }
        out.push_str("# HELP lean_farm_prove_budget_exhaustions_total Prove jobs stopped by a budget, by budget.\n# TYPE lean_farm_prove_budget_exhaustions_total counter\n");
        for (budget, count) in &prove.exhaustions {
            let _ = writeln!(
                out,
                "lean_farm_prove_budget_exhaustions_total{{budget=\"{budget}\"}} {count}"
            );
        }
        out.push_str("# HELP lean_farm_model_calls_total Model calls, retries included, by route.\n# TYPE lean_farm_model_calls_total counter\n");
        for totals in routes {
            let route = label(&totals.route);
            let _ = writeln!(
                out,
                "lean_farm_model_calls_total{{route=\"{route}\"}} {}",
                totals.calls
            );
        }
        out.push_str("# HELP lean_farm_model_tokens_total Model tokens, by route and kind (prompt, completion).\n# TYPE lean_farm_model_tokens_total counter\n");
        for totals in routes {
            let route = label(&totals.route);
            let _ = writeln!(
                out,
                "lean_farm_model_tokens_total{{route=\"{route}\",kind=\"prompt\"}} {}",
                totals.prompt_tokens
            );
            let _ = writeln!(
                out,
                "lean_farm_model_tokens_total{{route=\"{route}\",kind=\"completion\"}} {}",
                totals.completion_tokens
            );
        }
        out.push_str("# HELP lean_farm_model_errors_total Failed model calls, by route and class.\n# TYPE lean_farm_model_errors_total counter\n");
        for totals in routes {
            let route = label(&totals.route);
            for (class, count) in &totals.errors {
                let _ = writeln!(
                    out,
                    "lean_farm_model_errors_total{{route=\"{route}\",class=\"{class}\"}} {count}"
                );
            }
        }
        out
    }

    pub fn worker_started(&self) {
        self.active_workers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn worker_finished(&self) {
        self.active_workers.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn request_rejected(&self) {
        self.requests_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with gauges read at scrape time.
    pub fn render(&self, queue: Option<QueueCounts>, pool: Option<PoolStats>) -> String {
        let pool = pool.unwrap_or_default();
        let mut out = String::new();
        out.push_str("# HELP lean_farm_jobs_total Jobs finished, by verdict status.\n# TYPE lean_farm_jobs_total counter\n");
        for (index, status) in CheckStatus::ALL.iter().enumerate() {
            let count = self.jobs_by_status[index].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "lean_farm_jobs_total{{status=\"{}\"}} {count}",
                status.as_str()
            );
        }
        out.push_str("# HELP lean_farm_tenant_jobs_total Jobs finished, by tenant and verdict status.\n# TYPE lean_farm_tenant_jobs_total counter\n");
        for ((tenant, status), count) in self.jobs_by_tenant.lock().expect("metrics lock").iter() {
            let tenant = tenant
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = writeln!(
                out,
                "lean_farm_tenant_jobs_total{{tenant=\"{tenant}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP lean_farm_jobs_duration_seconds Time from enqueue to result.\n# TYPE lean_farm_jobs_duration_seconds histogram\n");
        {
            let histogram = self.durations.lock().expect("metrics lock");
            for (bucket, bound) in DURATION_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "lean_farm_jobs_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                    histogram.bucket_counts[bucket]
                );
            }
            let _ = writeln!(
                out,
                "lean_farm_jobs_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "lean_farm_jobs_duration_seconds_sum {}", histogram.sum);
            let _ = writeln!(
                out,
                "lean_farm_jobs_duration_seconds_count {}",
                histogram.count
            );
        }
        if let Some(queue) = queue {
            out.push_str("# HELP lean_farm_queue_size Jobs by queue state.\n# TYPE lean_farm_queue_size gauge\n");
            for (state, count) in [
                ("queued", queue.queued),
                ("running", queue.running),
                ("done", queue.done),
                ("dead", queue.dead),
            ] {
                let _ = writeln!(out, "lean_farm_queue_size{{state=\"{state}\"}} {count}");
            }
        }
        let gauges = [
            (
                "lean_farm_active_workers",
                "Checks running now.",
                "gauge",
                self.active_workers.load(Ordering::Relaxed),
            ),
            (
                "lean_farm_requests_rejected_total",
                "Requests refused for overload.",
                "counter",
                self.requests_rejected.load(Ordering::Relaxed),
            ),
            (
                "lean_farm_repl_pool_hits_total",
                "Snippets that found a warm REPL.",
                "counter",
                pool.hits,
            ),
            (
                "lean_farm_repl_pool_misses_total",
                "Snippets that started a REPL.",
                "counter",
                pool.misses,
            ),
            (
                "lean_farm_repl_pool_evictions_total",
                "Idle REPLs evicted.",
                "counter",
                pool.evictions,
            ),
            (
                "lean_farm_repl_pool_restarts_total",
                "REPLs replaced after a failure or cap.",
                "counter",
                pool.restarts,
            ),
            (
                "lean_farm_repl_pool_live",
                "REPL processes alive.",
                "gauge",
                pool.live_repls,
            ),
        ];
        for (name, help, kind, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out.push_str("# HELP lean_farm_repl_recycles_total REPLs retired before failing, by cause; and snippets run again on a fresh REPL after running out of memory on a reused one.\n# TYPE lean_farm_repl_recycles_total counter\n");
        for (cause, count) in [
            ("uses", pool.recycled_for_uses),
            ("memory", pool.recycled_for_memory),
            ("processes", pool.recycled_for_processes),
            ("out_of_memory_retry", pool.out_of_memory_retries),
        ] {
            let _ = writeln!(
                out,
                "lean_farm_repl_recycles_total{{cause=\"{cause}\"}} {count}"
            );
        }
        out
    }
}

/// A label value with Prometheus' escapes.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

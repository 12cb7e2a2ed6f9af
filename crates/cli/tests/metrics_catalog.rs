//! Every metric the deployment queries is one the farm exports: the Grafana
//! dashboard (`deploy/grafana/lean-farm.json`), the alerts
//! (`deploy/k8s/base/prometheusrule.yaml`) and the autoscalers (KEDA's
//! ScaledObject and the HPA's external metric) are read for `lean_farm_*`
//! names and their exact label matchers, and each is looked up in a real
//! `/metrics` scrape of `leanfarm serve --simulate` after one check.

mod common;

use common::{
    documented_metrics, free_local_addr, help_texts, leanfarm, sample, wait_ready_and_scrape,
    Server, Worker,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Labels Prometheus or Kubernetes add at scrape time, not the farm.
const SCRAPE_LABELS: [&str; 7] = [
    "namespace",
    "pod",
    "job",
    "instance",
    "service",
    "container",
    "endpoint",
];

/// One `lean_farm_*` name in a query, with its exact `label="value"` matchers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricUse {
    name: String,
    exact_labels: Vec<(String, String)>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// Every `lean_farm_*` name in `text`, with the `label="value"` matchers of
/// the selector that follows it, if any (`=~` and `!=` are not exact).
fn metric_uses(text: &str) -> Vec<MetricUse> {
    let mut uses = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("lean_farm_") {
        let preceded_by_name = rest[..start].chars().next_back().is_some_and(is_name_char);
        let after = &rest[start..];
        let length = after
            .find(|c: char| !is_name_char(c))
            .unwrap_or(after.len());
        let name = &after[..length];
        rest = &after[length..];
        if preceded_by_name || name.len() == "lean_farm_".len() {
            continue;
        }
        let mut exact_labels = Vec::new();
        if let Some(selector) = rest.strip_prefix('{') {
            let selector = &selector[..selector.find('}').unwrap_or(selector.len())];
            for matcher in selector.split(',') {
                let matcher = matcher.trim();
                let Some((label, value)) = matcher.split_once('=') else {
                    continue;
                };
                if label.ends_with('!') || value.starts_with('~') {
                    continue;
                }
                exact_labels.push((
                    label.trim().to_string(),
                    value.trim().trim_matches('"').to_string(),
                ));
            }
        }
        uses.push(MetricUse {
            name: name.to_string(),
            exact_labels,
        });
    }
    uses
}

/// Every string in a JSON document (the dashboard's queries are strings).
fn json_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| json_strings(item, out)),
        Value::Object(map) => map.values().for_each(|item| json_strings(item, out)),
        _ => {}
    }
}

/// Series names of a scrape, each with the label sets it was exported with;
/// a histogram's family name (`# TYPE NAME histogram`) counts as exported,
/// with no labels, beside its `_bucket`, `_sum` and `_count` series.
fn exported_series(scrape: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut series: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(family) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" histogram"))
        {
            series
                .entry(family.to_string())
                .or_default()
                .push(BTreeMap::new());
        }
    }
    for line in scrape.lines().filter(|line| !line.starts_with('#')) {
        let Some(name_end) = line.find(['{', ' ']) else {
            continue;
        };
        let name = &line[..name_end];
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{') {
            let inner = &line[name_end + 1..line.rfind('}').expect("closing brace")];
            for pair in inner.split("\",") {
                if let Some((label, value)) = pair.split_once("=\"") {
                    labels.insert(label.to_string(), value.trim_end_matches('"').to_string());
                }
            }
        }
        series.entry(name.to_string()).or_default().push(labels);
    }
    series
}

fn deploy_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(relative)
}

fn read(relative: &str) -> String {
    let path = deploy_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The metric uses of every file the deployment queries Prometheus from.
fn deployment_metric_uses() -> BTreeMap<String, Vec<MetricUse>> {
    let mut by_file = BTreeMap::new();
    let dashboard: Value =
        serde_json::from_str(&read("grafana/lean-farm.json")).expect("dashboard is JSON");
    let mut strings = Vec::new();
    json_strings(&dashboard, &mut strings);
    by_file.insert(
        "grafana/lean-farm.json".to_string(),
        strings.iter().flat_map(|text| metric_uses(text)).collect(),
    );
    for file in [
        "k8s/base/prometheusrule.yaml",
        "k8s/base/worker-scaledobject.yaml",
        "k8s/components/hpa/kustomization.yaml",
        "k8s/components/hpa/worker-hpa.yaml",
    ] {
        by_file.insert(file.to_string(), metric_uses(&read(file)));
    }
    by_file
}

#[test]
fn the_name_scanner_finds_names_and_exact_matchers_only() {
    let uses = metric_uses(
        r#"sum(rate(lean_farm_jobs_total{status=~"a|b"}[5m])) / max(lean_farm_queue_size{namespace="x", state="queued"}) xlean_farm_no lean_farm_* lean_farm_made_up"#,
    );
    let names: Vec<&str> = uses.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lean_farm_jobs_total",
            "lean_farm_queue_size",
            "lean_farm_made_up"
        ]
    );
    assert!(uses[0].exact_labels.is_empty());
    assert_eq!(
        uses[1].exact_labels,
        [
            ("namespace".to_string(), "x".to_string()),
            ("state".to_string(), "queued".to_string())
        ]
    );
}

#[tokio::test]
async fn every_metric_the_dashboard_alerts_and_autoscalers_query_is_exported() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--slots", "1"]);
    let (status, reply) = server
        .post(
            "/v1/checks",
            &json!({"snippets": [{"code": "theorem t : 1 + 1 = 2 := by decide"}], "wait": 60}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][0]["verdict"]["status"], "valid", "{reply}");
    let (status, api_scrape) = server.get("/metrics").await;
    assert_eq!(status, 200);
    // A remote worker's own families come from a real worker's listener.
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    let worker_token = leanfarm(&["tenant", "--store", &store, "farm-key", "--scope", "worker"]);
    let worker_dir = tempfile::tempdir().unwrap();
    let metrics_addr = free_local_addr();
    let _worker = Worker::start(
        &server.url,
        &worker_token,
        worker_dir.path(),
        &["--slots", "1", "--metrics-addr", &metrics_addr],
    );
    let worker_scrape = wait_ready_and_scrape(&metrics_addr).await;
    let scrape = format!("{api_scrape}{worker_scrape}");
    let exported = exported_series(&scrape);

    let by_file = deployment_metric_uses();
    let mut every_name = BTreeSet::new();
    let mut missing = Vec::new();
    for (file, uses) in &by_file {
        assert!(!uses.is_empty(), "{file} queries no lean_farm_* metric");
        for metric in uses {
            every_name.insert(metric.name.clone());
            let Some(label_sets) = exported.get(&metric.name) else {
                missing.push(format!("{file}: {} is not exported", metric.name));
                continue;
            };
            let farm_labels: Vec<&(String, String)> = metric
                .exact_labels
                .iter()
                .filter(|(label, _)| !SCRAPE_LABELS.contains(&label.as_str()))
                .collect();
            let matched = label_sets.iter().any(|labels| {
                farm_labels
                    .iter()
                    .all(|(label, value)| labels.get(label) == Some(value))
            });
            if !matched {
                missing.push(format!(
                    "{file}: {} has no series with {farm_labels:?}",
                    metric.name
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "queried but not exported:\n{}\nscrape:\n{scrape}",
        missing.join("\n")
    );
    // The dashboard covers the farm's whole catalogue of metric families.
    for family in [
        "lean_farm_jobs_total",
        "lean_farm_tenant_jobs_total",
        "lean_farm_jobs_duration_seconds_bucket",
        "lean_farm_queue_size",
        "lean_farm_active_workers",
        "lean_farm_requests_rejected_total",
        "lean_farm_repl_pool_hits_total",
        "lean_farm_repl_pool_misses_total",
        "lean_farm_repl_pool_live",
        "lean_farm_repl_recycles_total",
    ] {
        assert!(
            by_file["grafana/lean-farm.json"]
                .iter()
                .any(|metric| metric.name == family),
            "the dashboard does not show {family}"
        );
    }
    assert!(every_name.len() >= 10, "{every_name:?}");
}

/// The families only a remote worker exports (`leanfarm worker --metrics-addr`).
const WORKER_ONLY: [&str; 4] = [
    "lean_farm_worker_slots",
    "lean_farm_worker_repls_warm",
    "lean_farm_worker_jobs_total",
    "lean_farm_worker_ready",
];

#[tokio::test]
async fn help_texts_are_the_documented_meanings_and_the_new_metrics_count() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &["--slots", "1", "--max-timeout-seconds", "30"],
    );
    let (status, reply) = server
        .post(
            "/v1/checks",
            &json!({"snippets": [
                {"code": "theorem t : 1 + 1 = 2 := by decide"},
                {"code": "theorem u : 1 = 2 := sorry"}
            ], "timeout": 20, "wait": 60}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][1]["verdict"]["status"], "sorry", "{reply}");
    let (status, scrape) = server.get("/metrics").await;
    assert_eq!(status, 200);

    // Every HELP text is the documented meaning, and every documented
    // family of an API replica is exported.
    let documented = documented_metrics();
    let helps = help_texts(&scrape);
    for (name, help) in &helps {
        assert_eq!(
            Some(help),
            documented.get(name),
            "the HELP of {name} is not its meaning in docs/operations.md"
        );
    }
    for name in documented.keys() {
        if WORKER_ONLY.contains(&name.as_str()) {
            continue;
        }
        assert!(
            helps.contains_key(name),
            "{name} is documented, not exported:\n{scrape}"
        );
    }

    // The new families: one valid and one sorry verdict.
    assert_eq!(
        sample(&scrape, "lean_farm_jobs_success_rate"),
        Some(0.5),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            "lean_farm_jobs_by_reason_total{reason=\"uses_sorry\"}"
        ),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            "lean_farm_jobs_by_reason_total{reason=\"timeout\"}"
        ),
        Some(0.0),
        "every reason code is exported, counted or not:\n{scrape}"
    );
    // The embedded worker of this replica is the fleet.
    assert_eq!(
        sample(&scrape, "lean_farm_active_workers"),
        Some(1.0),
        "{scrape}"
    );
    // Lean's CPU time is read from the REPLs' cgroups.
    let cpu = sample(&scrape, "lean_farm_lean_cpu_seconds_total").expect("cpu seconds");
    assert!(cpu > 0.0, "no Lean CPU time counted:\n{scrape}");
    // The top finite bucket is the longest timeout a request may ask for.
    let bounds: Vec<&str> = scrape
        .lines()
        .filter_map(|line| line.strip_prefix("lean_farm_jobs_duration_seconds_bucket{le=\""))
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(
        bounds.iter().rev().take(2).collect::<Vec<_>>(),
        [&"+Inf", &"30"],
        "{scrape}"
    );
}

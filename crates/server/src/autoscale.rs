//! The autoscaling arithmetic of the deployment: how many worker pods the
//! KEDA ScaledObject (`deploy/k8s/base/worker-scaledobject.yaml`) or its HPA
//! alternative (`deploy/k8s/components/hpa`) ask for at a given queue.
//!
//! Both hand Kubernetes' HorizontalPodAutoscaler one external metric, the
//! store's jobs waiting or running, with an `AverageValue` target equal to
//! the workers' slots. The HPA then wants `ceil(jobs / slots)` pods, clamped
//! to `[min, max]`, and keeps the current count while the wanted change is
//! within its tolerance (10 %). This module states that mapping so it can
//! be tested across the whole range (1 to 500 workers in production), and
//! its tests check that the manifests use the numbers it assumes.
//!
//! It must never scale anything itself: the farm does not talk to the
//! Kubernetes API, and nothing at run time calls this module.

/// The HPA's default tolerance, in percent: no change while the metric is
/// within this much of its target (the jobs the current pods can hold).
pub const HPA_TOLERANCE_PERCENT: u64 = 10;

/// A scaling question that has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoscaleError {
    #[error("slots per worker must be at least 1")]
    NoSlotsPerWorker,
    #[error("the minimum worker count {min_workers} is above the maximum {max_workers}")]
    MinimumAboveMaximum { min_workers: u32, max_workers: u32 },
}

/// The worker pods wanted for `queued_jobs + running_jobs` with
/// `slots_per_worker` jobs per pod: enough pods for every job, never fewer
/// than `min_workers` nor more than `max_workers`.
pub fn desired_workers(
    queued_jobs: u64,
    running_jobs: u64,
    slots_per_worker: u32,
    min_workers: u32,
    max_workers: u32,
) -> Result<u32, AutoscaleError> {
    check_bounds(slots_per_worker, min_workers, max_workers)?;
    let jobs = queued_jobs.saturating_add(running_jobs);
    let pods_for_every_job = jobs.div_ceil(u64::from(slots_per_worker));
    let clamped = pods_for_every_job.clamp(u64::from(min_workers), u64::from(max_workers));
    Ok(u32::try_from(clamped).expect("clamped to a u32 maximum"))
}

/// The HPA's next pod count from `current_workers`: unchanged while the
/// jobs per current pod are within [`HPA_TOLERANCE_PERCENT`] of `slots_per_worker`,
/// otherwise [`desired_workers`].
pub fn next_workers(
    current_workers: u32,
    queued_jobs: u64,
    running_jobs: u64,
    slots_per_worker: u32,
    min_workers: u32,
    max_workers: u32,
) -> Result<u32, AutoscaleError> {
    check_bounds(slots_per_worker, min_workers, max_workers)?;
    let desired = desired_workers(
        queued_jobs,
        running_jobs,
        slots_per_worker,
        min_workers,
        max_workers,
    )?;
    if current_workers == 0 {
        return Ok(desired);
    }
    // |jobs / target - 1| <= tolerance, in integers.
    let jobs = u128::from(queued_jobs) + u128::from(running_jobs);
    let target = u128::from(slots_per_worker) * u128::from(current_workers);
    let within_tolerance =
        jobs.abs_diff(target) * 100 <= target * u128::from(HPA_TOLERANCE_PERCENT);
    let current_is_allowed = (min_workers..=max_workers).contains(&current_workers);
    if within_tolerance && current_is_allowed {
        Ok(current_workers)
    } else {
        Ok(desired)
    }
}

fn check_bounds(
    slots_per_worker: u32,
    min_workers: u32,
    max_workers: u32,
) -> Result<(), AutoscaleError> {
    if slots_per_worker == 0 {
        return Err(AutoscaleError::NoSlotsPerWorker);
    }
    if min_workers > max_workers {
        return Err(AutoscaleError::MinimumAboveMaximum {
            min_workers,
            max_workers,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Production: workers of 4 slots, 1 to 500 pods (deploy/k8s/overlays/prod).
    const SLOTS: u32 = 4;
    const MIN: u32 = 1;
    const MAX: u32 = 500;

    fn prod(queued: u64, running: u64) -> u32 {
        desired_workers(queued, running, SLOTS, MIN, MAX).unwrap()
    }

    #[test]
    fn an_empty_queue_keeps_the_minimum() {
        assert_eq!(prod(0, 0), 1);
        assert_eq!(desired_workers(0, 0, SLOTS, 0, MAX), Ok(0));
        assert_eq!(desired_workers(0, 0, SLOTS, 7, MAX), Ok(7));
    }

    #[test]
    fn every_worker_count_from_1_to_500_is_reached_at_its_exact_load() {
        for workers in 1..=MAX {
            let full = u64::from(workers) * u64::from(SLOTS);
            // Exactly full pods, split any way between queued and running.
            assert_eq!(prod(full, 0), workers, "{full} queued");
            assert_eq!(prod(0, full), workers, "{full} running");
            assert_eq!(prod(full / 2, full - full / 2), workers);
            // One job on a fresh pod still gets that pod.
            let first_job_of_pod = full - u64::from(SLOTS) + 1;
            assert_eq!(prod(first_job_of_pod, 0), workers, "{first_job_of_pod}");
            // One job more than full pods wants one pod more, up to the cap.
            assert_eq!(prod(full + 1, 0), (workers + 1).min(MAX), "{}", full + 1);
        }
    }

    #[test]
    fn the_mapping_never_shrinks_as_the_queue_grows_and_always_covers_the_jobs() {
        let mut previous = 0;
        for jobs in 0..=u64::from(MAX * SLOTS) + 100 {
            let workers = prod(jobs, 0);
            assert!(workers >= previous, "{jobs} jobs: {workers} < {previous}");
            assert!((MIN..=MAX).contains(&workers), "{jobs} jobs: {workers}");
            let capacity = u64::from(workers) * u64::from(SLOTS);
            assert!(
                capacity >= jobs.min(u64::from(MAX * SLOTS)),
                "{jobs} jobs, {workers} pods"
            );
            // And no pod more than the jobs need (above the minimum).
            if workers > MIN {
                assert!(
                    capacity - u64::from(SLOTS) < jobs,
                    "{jobs} jobs, {workers} pods"
                );
            }
            previous = workers;
        }
    }

    #[test]
    fn a_queue_beyond_the_fleet_stops_at_the_maximum() {
        assert_eq!(prod(2_001, 0), MAX);
        assert_eq!(prod(100_000, 2_000), MAX);
        assert_eq!(prod(u64::MAX, u64::MAX), MAX);
    }

    #[test]
    fn the_hpa_keeps_the_count_within_its_tolerance_and_moves_outside_it() {
        // 100 pods x 4 slots = 400 jobs is the target; 10 % either side holds.
        assert_eq!(next_workers(100, 360, 0, SLOTS, MIN, MAX), Ok(100));
        assert_eq!(next_workers(100, 440, 0, SLOTS, MIN, MAX), Ok(100));
        assert_eq!(next_workers(100, 441, 0, SLOTS, MIN, MAX), Ok(111));
        assert_eq!(next_workers(100, 359, 0, SLOTS, MIN, MAX), Ok(90));
        // A count outside the bounds is brought back even within tolerance.
        assert_eq!(next_workers(501, 2_004, 0, SLOTS, MIN, MAX), Ok(MAX));
        // From zero pods the ratio is undefined: the desired count.
        assert_eq!(next_workers(0, 9, 0, SLOTS, 0, MAX), Ok(3));
        for current in 1..=MAX {
            for jobs in [0, 1, u64::from(current) * 4, 2_000, 5_000] {
                let next = next_workers(current, jobs, 0, SLOTS, MIN, MAX).unwrap();
                assert!((MIN..=MAX).contains(&next), "{current} pods, {jobs} jobs");
            }
        }
    }

    #[test]
    fn impossible_bounds_are_refused_by_name() {
        assert_eq!(
            desired_workers(1, 0, 0, MIN, MAX),
            Err(AutoscaleError::NoSlotsPerWorker)
        );
        let error = desired_workers(1, 0, SLOTS, 10, 5).unwrap_err();
        assert_eq!(
            error,
            AutoscaleError::MinimumAboveMaximum {
                min_workers: 10,
                max_workers: 5
            }
        );
        assert_eq!(
            error.to_string(),
            "the minimum worker count 10 is above the maximum 5"
        );
        assert_eq!(
            next_workers(1, 1, 0, 0, MIN, MAX),
            Err(AutoscaleError::NoSlotsPerWorker)
        );
    }

    fn deploy_file(relative: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy")
            .join(relative);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
    }

    /// The value of the first `key: value` line holding `key`, unquoted.
    fn yaml_value(text: &str, key: &str) -> String {
        let needle = format!("{key}: ");
        text.lines()
            .find_map(|line| {
                let trimmed = line.trim_start().trim_start_matches("- ");
                trimmed.strip_prefix(&needle).map(|value| {
                    value
                        .split(" #")
                        .next()
                        .unwrap()
                        .trim()
                        .trim_matches('"')
                        .to_string()
                })
            })
            .unwrap_or_else(|| panic!("no `{key}:` in {text}"))
    }

    #[test]
    fn the_manifests_use_the_numbers_this_arithmetic_assumes() {
        let scaled_object = deploy_file("k8s/base/worker-scaledobject.yaml");
        let configmaps = deploy_file("k8s/base/configmap.yaml");
        let configmap = configmaps
            .split("\n---\n")
            .find(|document| document.contains("  name: leanfarm-worker\n"))
            .expect("the workers' ConfigMap");
        let hpa = deploy_file("k8s/components/hpa/worker-hpa.yaml");
        let prod = deploy_file("k8s/overlays/prod/kustomization.yaml");
        let staging = deploy_file("k8s/overlays/staging/kustomization.yaml");
        // One pod per LEAN_FARM_SLOTS jobs, in KEDA and in the HPA.
        assert_eq!(yaml_value(configmap, "LEAN_FARM_SLOTS"), SLOTS.to_string());
        assert_eq!(yaml_value(&scaled_object, "threshold"), SLOTS.to_string());
        assert_eq!(yaml_value(&scaled_object, "metricType"), "AverageValue");
        assert_eq!(yaml_value(&hpa, "averageValue"), SLOTS.to_string());
        assert_eq!(yaml_value(&hpa, "type"), "External");
        // The metric counts jobs waiting and running.
        let query = yaml_value(&scaled_object, "query");
        assert!(query.contains(r#"state="queued""#) && query.contains(r#"state="running""#));
        // Production: 1 to 500 pods.
        assert!(prod.contains("{op: replace, path: /spec/minReplicaCount, value: 1}"));
        assert!(prod.contains("{op: replace, path: /spec/maxReplicaCount, value: 500}"));
        // Staging's HPA target follows its own, smaller slots.
        assert!(staging.contains("{op: replace, path: /data/LEAN_FARM_SLOTS, value: \"2\"}"));
        assert!(staging.contains(
            "{op: replace, path: /spec/metrics/0/external/target/averageValue, value: \"2\"}"
        ));
    }
}

//! The warm pool and the REPL failure modes, on real `lean-sim` processes in
//! a real sandbox: reuse by header, no state shared between snippets,
//! eviction, caps, timeouts, crashes, garbage, back-pressure, cancellation.

use leanfarm_core::CheckStatus;
use leanfarm_driver::{DriverError, PoolConfig};
use leanfarm_testkit::driver::{driver, driver_with, small_pool};
use leanfarm_testkit::{reason_code, request};
use std::time::Duration;

#[tokio::test]
async fn a_repl_is_reused_for_the_same_header_and_not_for_another() {
    let farm = driver();
    let first = farm
        .driver
        .check(&request("import Mathlib\ntheorem a : True := trivial"))
        .await
        .unwrap();
    let second = farm
        .driver
        .check(&request("import Mathlib\n\ntheorem b : True := trivial"))
        .await
        .unwrap();
    let other = farm
        .driver
        .check(&request("import Aesop\ntheorem c : True := trivial"))
        .await
        .unwrap();
    assert!(!first.repl_reused);
    assert!(second.repl_reused);
    assert!(!other.repl_reused);
    let stats = farm.driver.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
    assert_eq!(stats.live_repls, 2);
    assert_eq!(stats.busy_repls, 0);
    assert_eq!(
        farm.driver.warm_headers(),
        vec![
            "import Lean\nimport Aesop".to_string(),
            "import Mathlib".to_string()
        ]
    );
}

#[tokio::test]
async fn nothing_a_snippet_declares_is_seen_by_the_next() {
    let farm = driver();
    let code = "import Mathlib\ntheorem shared_name : True := trivial";
    for _ in 0..3 {
        let verdict = farm.driver.check(&request(code)).await.unwrap();
        assert_eq!(
            verdict.status(),
            CheckStatus::Valid,
            "a redeclaration error means state leaked: {verdict:?}"
        );
    }
    assert_eq!(farm.driver.stats().hits, 2);
}

#[tokio::test]
async fn a_full_pool_replaces_an_idle_repl() {
    let farm = driver_with(
        PoolConfig {
            slots: 1,
            max_repls: 1,
            ..small_pool()
        },
        512 << 20,
    );
    farm.driver
        .check(&request("import Mathlib\ntheorem a : True := trivial"))
        .await
        .unwrap();
    let verdict = farm
        .driver
        .check(&request("import Aesop\ntheorem a : True := trivial"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid);
    let stats = farm.driver.stats();
    assert_eq!(stats.evictions, 1);
    assert_eq!(stats.live_repls, 1);
    assert_eq!(
        farm.driver.warm_headers(),
        vec!["import Lean\nimport Aesop".to_string()]
    );
}

/// Runs each header's snippet in turn on a pool of one slot and two REPLs,
/// and returns the headers left warm.
async fn warm_after(headers: &[&str]) -> Vec<String> {
    let farm = driver_with(
        PoolConfig {
            slots: 1,
            max_repls: 2,
            ..small_pool()
        },
        512 << 20,
    );
    for header in headers {
        let code = format!("{header}\ntheorem a : True := trivial");
        let verdict = farm.driver.check(&request(&code)).await.unwrap();
        assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    }
    assert_eq!(farm.driver.stats().live_repls, 2);
    farm.driver.warm_headers()
}

#[tokio::test]
async fn a_header_in_demand_outlives_a_rare_one_used_since() {
    // Mathlib was asked for three times, Aesop once but more recently: the
    // next new header replaces Aesop's REPL (plain LRU would drop Mathlib's).
    let warm = warm_after(&[
        "import Mathlib",
        "import Mathlib",
        "import Mathlib",
        "import Aesop",
        "import Batteries",
    ])
    .await;
    assert_eq!(
        warm,
        vec![
            "import Lean\nimport Batteries".to_string(),
            "import Mathlib".to_string()
        ]
    );
}

#[tokio::test]
async fn among_headers_in_equal_demand_the_least_recently_used_goes() {
    let warm = warm_after(&["import Mathlib", "import Aesop", "import Batteries"]).await;
    assert_eq!(
        warm,
        vec![
            "import Lean\nimport Aesop".to_string(),
            "import Lean\nimport Batteries".to_string()
        ]
    );
}

#[tokio::test]
async fn a_repl_is_retired_after_its_use_cap() {
    let farm = driver_with(
        PoolConfig {
            max_uses_per_repl: 2,
            ..small_pool()
        },
        512 << 20,
    );
    let mut reused = Vec::new();
    for _ in 0..3 {
        let verdict = farm
            .driver
            .check(&request("theorem a : True := trivial"))
            .await
            .unwrap();
        reused.push(verdict.repl_reused);
    }
    assert_eq!(reused, vec![false, true, false]);
    assert_eq!(farm.driver.stats().restarts, 1);
}

#[tokio::test]
async fn a_repl_is_retired_when_its_memory_grows_past_the_cap() {
    let farm = driver_with(
        PoolConfig {
            // 10 % of the 512 MiB limit below.
            recycle_memory_fraction: 0.1,
            ..small_pool()
        },
        512 << 20,
    );
    let verdict = farm
        .driver
        .check(&request("-- sim: memory 64\ntheorem a : True := trivial"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
    assert!(
        verdict.peak_memory_bytes.unwrap_or(0) >= 64 << 20,
        "{verdict:?}"
    );
    let next = farm
        .driver
        .check(&request("theorem b : True := trivial"))
        .await
        .unwrap();
    assert!(!next.repl_reused, "the grown repl must have been retired");
    assert_eq!(farm.driver.stats().restarts, 1);
}

#[tokio::test]
async fn a_timeout_kills_the_repl_and_the_pool_recovers() {
    let farm = driver();
    for hang in ["-- sim: spin", "-- sim: silent", "-- sim: fork-bomb"] {
        let mut check = request(&format!("theorem t : True := by\n  {hang}\n  trivial"));
        check.timeout_seconds = 1.0;
        let verdict = farm.driver.check(&check).await.unwrap();
        assert_eq!(
            verdict.status(),
            CheckStatus::TimeoutError,
            "{hang}: {verdict:?}"
        );
        assert_eq!(reason_code(&verdict), "timeout");
    }
    let verdict = farm
        .driver
        .check(&request("theorem t : True := trivial"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid);
    let stats = farm.driver.stats();
    assert_eq!(stats.restarts, 3);
    assert_eq!(stats.live_repls, 1);
}

#[tokio::test]
async fn crashes_garbage_and_floods_are_repl_errors() {
    let farm = driver();
    for (directive, expected_reason) in [
        ("crash", "repl_crashed"),
        ("exit 3", "repl_crashed"),
        ("exit-mid-reply", "repl_crashed"),
        ("garbage", "repl_garbage"),
        ("output-flood 4", "reply_too_large"),
    ] {
        let verdict = farm
            .driver
            .check(&request(&format!(
                "-- sim: {directive}\ntheorem t : True := trivial"
            )))
            .await
            .unwrap();
        assert_eq!(
            verdict.status(),
            CheckStatus::ReplError,
            "{directive}: {verdict:?}"
        );
        assert_eq!(
            reason_code(&verdict),
            expected_reason,
            "{directive}: {verdict:?}"
        );
    }
    assert_eq!(farm.driver.stats().live_repls, 0);
    let verdict = farm
        .driver
        .check(&request("theorem t : True := trivial"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid);
}

#[tokio::test]
async fn running_out_of_memory_is_reported_as_such() {
    let farm = driver_with(small_pool(), 96 << 20);
    let verdict = farm
        .driver
        .check(&request(
            "-- sim: alloc-unbounded\ntheorem t : True := trivial",
        ))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::ReplError, "{verdict:?}");
    assert_eq!(reason_code(&verdict), "out_of_memory", "{verdict:?}");
}

#[tokio::test]
async fn an_exhausted_pool_answers_busy_after_a_bounded_wait() {
    let farm = driver_with(
        PoolConfig {
            slots: 1,
            max_repls: 1,
            acquire_timeout: Duration::from_millis(300),
            ..small_pool()
        },
        512 << 20,
    );
    let slow = farm.driver.clone();
    let running = tokio::spawn(async move {
        slow.check(&request("-- sim: sleep 3000\ntheorem t : True := trivial"))
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = farm
        .driver
        .check(&request("theorem u : True := trivial"))
        .await;
    assert!(matches!(refused, Err(DriverError::Busy(_))), "{refused:?}");
    assert_eq!(running.await.unwrap().unwrap().status(), CheckStatus::Valid);
}

#[tokio::test]
async fn a_cancelled_check_frees_its_slot_and_kills_its_repl() {
    let farm = driver_with(
        PoolConfig {
            slots: 1,
            max_repls: 1,
            ..small_pool()
        },
        512 << 20,
    );
    let cancelled = tokio::time::timeout(
        Duration::from_millis(500),
        farm.driver
            .check(&request("-- sim: sleep 10000\ntheorem t : True := trivial")),
    )
    .await;
    assert!(cancelled.is_err());
    assert_eq!(farm.driver.stats().live_repls, 0);
    let verdict = farm
        .driver
        .check(&request("theorem t : True := trivial"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid);
}

#[tokio::test]
async fn prestarted_headers_are_warm_for_the_first_snippet() {
    let pool = PoolConfig {
        prestart_headers: vec!["import Mathlib".to_string()],
        ..small_pool()
    };
    let farm = driver_with(pool, 512 << 20);
    farm.driver.prestart().await.unwrap();
    assert_eq!(
        farm.driver.warm_headers(),
        vec!["import Mathlib".to_string()]
    );
    let verdict = farm
        .driver
        .check(&request("import Mathlib\ntheorem t : True := trivial"))
        .await
        .unwrap();
    assert!(verdict.repl_reused);
}

#[tokio::test]
async fn import_cost_is_paid_once_per_repl() {
    let farm = driver();
    let code = "import SimCost.ms300\ntheorem t : True := trivial";
    let cold = farm.driver.check(&request(code)).await.unwrap();
    let warm = farm.driver.check(&request(code)).await.unwrap();
    assert!(cold.timings.header_ms >= 300.0, "{:?}", cold.timings);
    assert_eq!(warm.timings.header_ms, 0.0);
    assert!(warm.repl_reused);
}

/// A stream of snippets that each keep 64 MiB, on one slot: a reused REPL
/// grows, and its growth must never land on an innocent snippet.
#[tokio::test]
async fn memory_kept_by_earlier_snippets_never_blames_a_later_one() {
    for fraction in [0.75, 1.0] {
        // With 1.0 nothing is recycled early: the out-of-memory retry on a
        // fresh REPL is what keeps the verdicts right.
        let farm = driver_with(
            PoolConfig {
                slots: 1,
                max_repls: 1,
                recycle_memory_fraction: fraction,
                ..small_pool()
            },
            320 << 20,
        );
        for index in 0..10 {
            let verdict = farm
                .driver
                .check(&request(&format!(
                    "-- sim: memory 64\ntheorem t{index} : True := trivial"
                )))
                .await
                .unwrap();
            assert_eq!(
                verdict.status(),
                CheckStatus::Valid,
                "snippet {index} with fraction {fraction}: {verdict:?}"
            );
        }
        let stats = farm.driver.stats();
        if fraction < 1.0 {
            assert!(stats.recycled_for_memory > 0, "{stats:?}");
        } else {
            assert!(stats.out_of_memory_retries > 0, "{stats:?}");
        }
    }
}

/// A snippet that needs more than the limit on its own is blamed, after a
/// retry on a fresh REPL, and its verdict says so.
#[tokio::test]
async fn a_snippet_that_needs_too_much_on_its_own_is_out_of_memory() {
    let farm = driver_with(
        PoolConfig {
            slots: 1,
            max_repls: 1,
            recycle_memory_fraction: 1.0,
            ..small_pool()
        },
        256 << 20,
    );
    // Warm the REPL so the big snippet runs on a reused one first.
    farm.driver
        .check(&request("theorem w : True := trivial"))
        .await
        .unwrap();
    let verdict = farm
        .driver
        .check(&request("-- sim: memory 400\ntheorem t : True := trivial"))
        .await
        .unwrap();
    assert_eq!(reason_code(&verdict), "out_of_memory", "{verdict:?}");
    assert!(
        !verdict.repl_reused,
        "the verdict is the fresh REPL's: {verdict:?}"
    );
    let message = &verdict.reason().unwrap().message;
    assert!(message.contains("fresh REPL"), "{message}");
    assert_eq!(farm.driver.stats().out_of_memory_retries, 1);
}

#[tokio::test]
async fn a_verdict_carries_the_cpu_time_its_repl_spent_on_it() {
    let test_driver = driver();
    // A REPL started for the check: its import counts too, then the body's
    // burn. The same REPL reused: only what the next check spent.
    let busy = test_driver
        .driver
        .check(&request(
            "import Mathlib\n-- sim: cpu 300\ntheorem busy : True := trivial",
        ))
        .await
        .unwrap();
    assert_eq!(busy.status(), CheckStatus::Valid, "{busy:?}");
    assert!(
        busy.timings.lean_cpu_ms >= 280.0,
        "300 ms of CPU burned, {} ms counted",
        busy.timings.lean_cpu_ms
    );
    let idle = test_driver
        .driver
        .check(&request("import Mathlib\ntheorem idle : True := trivial"))
        .await
        .unwrap();
    assert!(idle.repl_reused, "{idle:?}");
    assert!(
        idle.timings.lean_cpu_ms < busy.timings.lean_cpu_ms - 200.0,
        "a check that burns nothing is not charged the previous one's CPU: {} ms",
        idle.timings.lean_cpu_ms
    );
}

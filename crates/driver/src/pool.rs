//! The warm pool: `slots` checks at once, at most `max_repls` REPL
//! processes alive (at least `slots`), reused by header.
//!
//! A check first takes a slot (a semaphore permit; waiting is bounded by
//! `acquire_timeout`, then `Busy`). With a slot it takes an idle REPL with the
//! same header (a hit), or starts one (a miss), evicting an idle REPL when the
//! pool is full. The one evicted is the one whose header is least in demand
//! per idle copy (demand: checkouts asking for the header, halved
//! periodically so that it follows the traffic), the least recently used
//! among equals. Plain LRU lets a stream of rare headers flush the popular
//! ones; counting demand keeps them. A slot held means at least one REPL
//! is idle or there is room, so a full pool always has something to evict.
//! A checked-out REPL that is not handed back (its check failed or was
//! cancelled) is killed and its place freed.

use crate::repl::Repl;
use crate::{DriverError, PoolConfig, PoolStats};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct Pool {
    pub config: PoolConfig,
    /// A REPL whose memory passes this is retired when given back.
    recycle_memory_bytes: u64,
    permits: Arc<Semaphore>,
    state: Mutex<PoolState>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    restarts: AtomicU64,
    recycled_for_uses: AtomicU64,
    recycled_for_memory: AtomicU64,
    recycled_for_processes: AtomicU64,
    /// CPU time of the REPLs' process trees, in microseconds, counted each
    /// time a REPL comes back from a check (handed back, retired or killed).
    lean_cpu_micros: AtomicU64,
}

struct PoolState {
    idle: Vec<Repl>,
    /// Idle plus checked-out REPLs plus REPLs being started.
    live: usize,
    demand: Demand,
}

/// How many checkouts asked for each header lately.
#[derive(Default)]
struct Demand {
    counts: HashMap<String, u32>,
    since_aging: usize,
}

/// Headers tracked at most: a flood of distinct headers cannot grow the map
/// beyond this (the rarest are forgotten first).
const MAX_TRACKED_HEADERS: usize = 4096;

/// Counts are halved every this many checkouts per REPL the pool may hold.
const AGING_CHECKOUTS_PER_REPL: usize = 16;

impl Demand {
    fn record(&mut self, header: &str, aging_period: usize) {
        self.since_aging += 1;
        if self.since_aging >= aging_period
            || (self.counts.len() >= MAX_TRACKED_HEADERS && !self.counts.contains_key(header))
        {
            self.age();
        }
        if self.counts.len() < MAX_TRACKED_HEADERS || self.counts.contains_key(header) {
            *self.counts.entry(header.to_string()).or_default() += 1;
        }
    }

    fn age(&mut self) {
        self.since_aging = 0;
        self.counts.retain(|_, count| {
            *count /= 2;
            *count > 0
        });
    }

    fn of(&self, header: &str) -> u32 {
        self.counts.get(header).copied().unwrap_or(0)
    }
}

impl PoolState {
    /// The idle REPL to replace: least demand per idle copy of its header,
    /// then least recently used.
    fn victim(&self) -> Option<usize> {
        let mut copies: HashMap<&str, u32> = HashMap::new();
        for repl in &self.idle {
            *copies.entry(repl.header.as_str()).or_default() += 1;
        }
        self.idle
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| {
                let share = |repl: &Repl| {
                    f64::from(self.demand.of(&repl.header))
                        / f64::from(copies[repl.header.as_str()])
                };
                share(a)
                    .total_cmp(&share(b))
                    .then(a.last_used.cmp(&b.last_used))
            })
            .map(|(index, _)| index)
    }
}

/// A slot, and the REPL for the snippet's header if one was warm.
pub(crate) struct Checkout {
    pool: Arc<Pool>,
    pub repl: Option<Repl>,
    /// Whether `repl` came warm from the pool.
    pub reused: bool,
    /// Whether this checkout still counts toward `live`.
    holds_place: bool,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(config: PoolConfig, recycle_memory_bytes: u64) -> Arc<Pool> {
        Arc::new(Pool {
            recycle_memory_bytes,
            permits: Arc::new(Semaphore::new(config.slots.max(1))),
            config,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                live: 0,
                demand: Demand::default(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            recycled_for_uses: AtomicU64::new(0),
            recycled_for_memory: AtomicU64::new(0),
            recycled_for_processes: AtomicU64::new(0),
            lean_cpu_micros: AtomicU64::new(0),
        })
    }

    /// Take a slot and, if warm, a REPL with this header. When `repl` is
    /// `None`, the caller owns a reserved place and must start a REPL (and
    /// `attach` it) or drop the checkout.
    /// With `fresh`, a warm REPL is never taken: the caller starts a new one.
    pub async fn checkout(
        self: &Arc<Self>,
        header: &str,
        fresh: bool,
    ) -> Result<Checkout, DriverError> {
        let acquire = Arc::clone(&self.permits).acquire_owned();
        let permit = match tokio::time::timeout(self.config.acquire_timeout, acquire).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return Err(DriverError::Busy(self.config.acquire_timeout)),
        };
        let aging_period = AGING_CHECKOUTS_PER_REPL * self.max_repls();
        self.state
            .lock()
            .expect("pool lock")
            .demand
            .record(header, aging_period);
        loop {
            let (warm, evicted) = {
                let mut state = self.state.lock().expect("pool lock");
                let warm_index = if fresh {
                    None
                } else {
                    state.idle.iter().rposition(|repl| repl.header == header)
                };
                if let Some(index) = warm_index {
                    (Some(state.idle.remove(index)), None)
                } else if state.live < self.max_repls() {
                    state.live += 1;
                    (None, None)
                } else {
                    // Full: replace the idle REPL least in demand.
                    let victim = state
                        .victim()
                        .expect("a held slot implies an idle repl when the pool is full");
                    (None, Some(state.idle.remove(victim)))
                }
            };
            if let Some(evicted) = evicted {
                self.evictions.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(evicted.kill());
            }
            let warm = warm.map(|mut repl| {
                let tainted = repl.is_tainted();
                (repl, tainted)
            });
            match warm {
                Some((repl, true)) => {
                    // It printed after its last reply or died while idle.
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    self.state.lock().expect("pool lock").live -= 1;
                    tokio::spawn(repl.kill());
                    continue;
                }
                Some((repl, false)) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Checkout {
                        pool: Arc::clone(self),
                        repl: Some(repl),
                        reused: true,
                        holds_place: true,
                        _permit: permit,
                    });
                }
                None => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    return Ok(Checkout {
                        pool: Arc::clone(self),
                        repl: None,
                        reused: false,
                        holds_place: true,
                        _permit: permit,
                    });
                }
            }
        }
    }

    /// REPLs allowed alive: never fewer than the slots, so that a caller
    /// holding a slot always finds an idle REPL to evict or room to start one.
    fn max_repls(&self) -> usize {
        self.config.max_repls.max(self.config.slots).max(1)
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.state.lock().expect("pool lock");
        PoolStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            recycled_for_uses: self.recycled_for_uses.load(Ordering::Relaxed),
            recycled_for_memory: self.recycled_for_memory.load(Ordering::Relaxed),
            recycled_for_processes: self.recycled_for_processes.load(Ordering::Relaxed),
            out_of_memory_retries: 0,
            lean_cpu_micros: self.lean_cpu_micros.load(Ordering::Relaxed),
            live_repls: state.live as u64,
            busy_repls: (state.live - state.idle.len()) as u64,
        }
    }

    pub fn warm_headers(&self) -> Vec<String> {
        let state = self.state.lock().expect("pool lock");
        let mut headers: Vec<String> = state.idle.iter().map(|repl| repl.header.clone()).collect();
        headers.sort();
        headers.dedup();
        headers
    }

    /// Add the CPU time `repl` used since it was last counted, and return it.
    fn count_cpu(&self, repl: &mut Repl) -> Duration {
        let used = repl.cpu_time_since_last_read();
        self.lean_cpu_micros
            .fetch_add(used.as_micros() as u64, Ordering::Relaxed);
        used
    }

    /// Take every idle REPL out of the pool (for shutdown).
    pub fn drain_idle(&self) -> Vec<Repl> {
        let mut state = self.state.lock().expect("pool lock");
        let drained: Vec<Repl> = std::mem::take(&mut state.idle);
        state.live -= drained.len();
        drained
    }
}

impl Checkout {
    /// The CPU time the checked-out REPL used since it was last counted
    /// (added to the pool's total); zero without a REPL.
    pub fn count_cpu(&mut self) -> Duration {
        match self.repl.as_mut() {
            Some(repl) => self.pool.count_cpu(repl),
            None => Duration::ZERO,
        }
    }

    /// Hand the REPL back for reuse, unless it is worn out: too many uses,
    /// too much memory, or processes of its own left running (a snippet's
    /// child must not outlive the snippet). Without a REPL, the reserved place is freed.
    pub fn give_back(mut self) {
        self.holds_place = false;
        let Some(mut repl) = self.repl.take() else {
            self.pool.state.lock().expect("pool lock").live -= 1;
            return;
        };
        repl.uses += 1;
        repl.last_used = Instant::now();
        self.pool.count_cpu(&mut repl);
        let config = &self.pool.config;
        let cause = if repl.uses >= config.max_uses_per_repl {
            Some(&self.pool.recycled_for_uses)
        } else if repl
            .memory_bytes()
            .is_some_and(|bytes| bytes > self.pool.recycle_memory_bytes)
        {
            Some(&self.pool.recycled_for_memory)
        } else if repl.extra_processes().is_some_and(|extra| extra > 0) {
            Some(&self.pool.recycled_for_processes)
        } else {
            None
        };
        if let Some(cause) = cause {
            cause.fetch_add(1, Ordering::Relaxed);
            self.pool.restarts.fetch_add(1, Ordering::Relaxed);
            self.pool.state.lock().expect("pool lock").live -= 1;
            tokio::spawn(repl.kill());
            return;
        }
        self.pool.state.lock().expect("pool lock").idle.push(repl);
    }

    /// Take the REPL out of the pool because it failed (counted as a
    /// restart) and free its place; the caller kills it and reads its report.
    pub fn retire(mut self) -> Option<Repl> {
        self.holds_place = false;
        self.pool.state.lock().expect("pool lock").live -= 1;
        let mut repl = self.repl.take();
        if let Some(repl) = repl.as_mut() {
            self.pool.restarts.fetch_add(1, Ordering::Relaxed);
            self.pool.count_cpu(repl);
        }
        repl
    }

    /// Take the REPL out of the pool for good (a tactic session keeps it)
    /// and free its place and slot; no restart is counted.
    pub fn detach(mut self) -> Option<Repl> {
        self.holds_place = false;
        self.pool.state.lock().expect("pool lock").live -= 1;
        let mut repl = self.repl.take();
        if let Some(repl) = repl.as_mut() {
            self.pool.count_cpu(repl);
        }
        repl
    }

    /// Kill the REPL (it failed) and free its place.
    pub fn discard(mut self) {
        self.holds_place = false;
        if let Some(mut repl) = self.repl.take() {
            self.pool.restarts.fetch_add(1, Ordering::Relaxed);
            self.pool.count_cpu(&mut repl);
            tokio::spawn(repl.kill());
        }
        self.pool.state.lock().expect("pool lock").live -= 1;
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // Reached with a place held only when neither give_back nor discard
        // ran: starting the REPL failed, or the check was cancelled in the
        // middle of a conversation, so the REPL's state is unknown.
        if !self.holds_place {
            return;
        }
        self.pool.state.lock().expect("pool lock").live -= 1;
        if let Some(mut repl) = self.repl.take() {
            self.pool.restarts.fetch_add(1, Ordering::Relaxed);
            self.pool.count_cpu(&mut repl);
            drop(repl);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_fades_and_stays_bounded_under_a_flood_of_headers() {
        let mut demand = Demand::default();
        for _ in 0..50 {
            demand.record("import Mathlib", usize::MAX);
        }
        for index in 0..3 * MAX_TRACKED_HEADERS {
            demand.record(&format!("import H{index}"), usize::MAX);
            assert!(demand.counts.len() <= MAX_TRACKED_HEADERS);
        }
        // Forgetting the rare headers halved the popular one's count a few
        // times, but it is still the one most in demand.
        let mathlib = demand.of("import Mathlib");
        assert!(mathlib > 0);
        assert!(demand.counts.values().all(|&count| count <= mathlib));

        let mut demand = Demand::default();
        for _ in 0..8 {
            demand.record("import Aesop", 4);
        }
        // Halved before the 4th record (3 -> 1, then 2) and before the
        // 8th (5 -> 2, then 3).
        assert_eq!(demand.of("import Aesop"), 3);
    }
}

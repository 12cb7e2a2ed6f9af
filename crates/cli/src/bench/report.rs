//! The benchmark report, computed from the outcomes of a run and nothing
//! else: pass@k, solve rate by tag, time to proof, usage per solved
//! problem, the solves-over-time series, and the comparison with a
//! baseline report. No I/O, no clock: `leanfarm bench` gathers outcomes and
//! writes what this module computes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one prove job of a problem ended, as the runner saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptOutcome {
    /// `proved`, `exhausted`, `failed`, `cancelled`, or `error` when the
    /// farm could not be asked (the reason says why).
    pub state: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub proof: Option<String>,
    /// Seconds from the run's start to this job's end.
    pub finished_at_seconds: f64,
    /// The job's wall time as the farm counted it.
    pub wall_seconds: f64,
    pub candidates: u64,
    pub tokens: u64,
    pub cost: f64,
    pub cpu_seconds: f64,
}

impl AttemptOutcome {
    pub fn is_proved(&self) -> bool {
        self.state == "proved"
    }
}

/// Every attempt of one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemOutcome {
    pub id: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub attempts: Vec<AttemptOutcome>,
}

impl ProblemOutcome {
    pub fn solved(&self) -> bool {
        self.attempts.iter().any(AttemptOutcome::is_proved)
    }

    /// The attempt that proved it first in time.
    fn first_proof(&self) -> Option<&AttemptOutcome> {
        self.attempts
            .iter()
            .filter(|attempt| attempt.is_proved())
            .min_by(|a, b| a.finished_at_seconds.total_cmp(&b.finished_at_seconds))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagSummary {
    pub problems: usize,
    pub solved: usize,
    pub solve_rate: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub attempts: usize,
    pub candidates: u64,
    pub tokens: u64,
    pub cost: f64,
    pub cpu_seconds: f64,
}

/// Usage divided by the problems solved (zero when none is).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerSolved {
    pub tokens: f64,
    pub cost: f64,
    pub cpu_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub problems: usize,
    pub solved: usize,
    /// Solved problems over problems: pass@k with k the attempts per problem.
    pub solve_rate: f64,
    /// pass@j for j = 1..=k, the unbiased estimate from n attempts with c
    /// proofs: 1 − C(n−c, j) / C(n, j), averaged over problems.
    pub pass_at: BTreeMap<String, f64>,
    /// Of each solved problem's first proof: the farm's wall seconds.
    pub time_to_proof_seconds: Percentiles,
    pub totals: Totals,
    pub per_solved: PerSolved,
    pub by_tag: BTreeMap<String, TagSummary>,
    /// Attempts that ended in each state.
    pub attempts_by_state: BTreeMap<String, usize>,
}

/// One point of the solves-over-time curve: when the `solved`-th problem was first proved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolvePoint {
    pub seconds: f64,
    pub solved: usize,
}

/// The comparison with an earlier report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineComparison {
    pub baseline_solve_rate: f64,
    /// Percentage points lost: (baseline − now) × 100; negative is a gain.
    pub drop_points: f64,
    pub max_drop_points: f64,
    pub regressed: bool,
    pub newly_solved: Vec<String>,
    pub newly_failed: Vec<String>,
    /// Problems of the baseline this run did not have.
    pub missing: Vec<String>,
}

/// The whole report.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    /// What was run: problem set, server, route, strategy, budget, k.
    pub run: serde_json::Value,
    pub summary: Summary,
    pub solves_over_time: Vec<SolvePoint>,
    pub problems: Vec<ProblemOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineComparison>,
}

pub const REPORT_FORMAT: u32 = 1;

/// C(n, j) as a float (small n).
fn choose(n: usize, j: usize) -> f64 {
    if j > n {
        return 0.0;
    }
    (0..j).fold(1.0, |product, index| {
        product * (n - index) as f64 / (index + 1) as f64
    })
}

/// The unbiased pass@j of one problem with `n` attempts and `c` proofs.
pub fn pass_at(n: usize, c: usize, j: usize) -> f64 {
    if n == 0 || j == 0 {
        return 0.0;
    }
    if n - c < j {
        return 1.0;
    }
    1.0 - choose(n - c, j) / choose(n, j)
}

/// The value at `fraction` of sorted `values` (nearest rank).
pub fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn rate(part: usize, whole: usize) -> f64 {
    match whole {
        0 => 0.0,
        whole => part as f64 / whole as f64,
    }
}

pub fn summarize(problems: &[ProblemOutcome]) -> Summary {
    let solved = problems.iter().filter(|problem| problem.solved()).count();
    let most_attempts = problems
        .iter()
        .map(|problem| problem.attempts.len())
        .max()
        .unwrap_or(0);
    let mut pass_at_j = BTreeMap::new();
    for j in 1..=most_attempts {
        let total: f64 = problems
            .iter()
            .map(|problem| {
                let proofs = problem.attempts.iter().filter(|a| a.is_proved()).count();
                pass_at(problem.attempts.len(), proofs, j)
            })
            .sum();
        pass_at_j.insert(j.to_string(), rate_f(total, problems.len()));
    }
    let mut times: Vec<f64> = problems
        .iter()
        .filter_map(ProblemOutcome::first_proof)
        .map(|attempt| attempt.wall_seconds)
        .collect();
    times.sort_by(f64::total_cmp);
    let mut totals = Totals::default();
    let mut attempts_by_state = BTreeMap::new();
    for attempt in problems.iter().flat_map(|problem| &problem.attempts) {
        totals.attempts += 1;
        totals.candidates += attempt.candidates;
        totals.tokens += attempt.tokens;
        totals.cost += attempt.cost;
        totals.cpu_seconds += attempt.cpu_seconds;
        *attempts_by_state.entry(attempt.state.clone()).or_insert(0) += 1;
    }
    let per_solved = match solved {
        0 => PerSolved::default(),
        solved => PerSolved {
            tokens: totals.tokens as f64 / solved as f64,
            cost: totals.cost / solved as f64,
            cpu_seconds: totals.cpu_seconds / solved as f64,
        },
    };
    let mut by_tag: BTreeMap<String, TagSummary> = BTreeMap::new();
    for problem in problems {
        for tag in &problem.tags {
            let entry = by_tag.entry(tag.clone()).or_insert(TagSummary {
                problems: 0,
                solved: 0,
                solve_rate: 0.0,
            });
            entry.problems += 1;
            entry.solved += usize::from(problem.solved());
        }
    }
    for summary in by_tag.values_mut() {
        summary.solve_rate = rate(summary.solved, summary.problems);
    }
    Summary {
        problems: problems.len(),
        solved,
        solve_rate: rate(solved, problems.len()),
        pass_at: pass_at_j,
        time_to_proof_seconds: Percentiles {
            p50: percentile(&times, 0.50),
            p99: percentile(&times, 0.99),
        },
        totals,
        per_solved,
        by_tag,
        attempts_by_state,
    }
}

fn rate_f(total: f64, whole: usize) -> f64 {
    match whole {
        0 => 0.0,
        whole => total / whole as f64,
    }
}

/// The cumulative count of solved problems at each first proof, in time order.
pub fn solves_over_time(problems: &[ProblemOutcome]) -> Vec<SolvePoint> {
    let mut first_proofs: Vec<f64> = problems
        .iter()
        .filter_map(ProblemOutcome::first_proof)
        .map(|attempt| attempt.finished_at_seconds)
        .collect();
    first_proofs.sort_by(f64::total_cmp);
    first_proofs
        .into_iter()
        .enumerate()
        .map(|(index, seconds)| SolvePoint {
            seconds,
            solved: index + 1,
        })
        .collect()
}

/// This run against `baseline`: which problems changed, and whether the
/// solve rate fell by more than `max_drop_points` percentage points.
pub fn compare(
    problems: &[ProblemOutcome],
    summary: &Summary,
    baseline: &Report,
    max_drop_points: f64,
) -> BaselineComparison {
    let now: BTreeMap<&str, bool> = problems
        .iter()
        .map(|problem| (problem.id.as_str(), problem.solved()))
        .collect();
    let before: BTreeMap<&str, bool> = baseline
        .problems
        .iter()
        .map(|problem| (problem.id.as_str(), problem.solved()))
        .collect();
    let mut newly_solved = Vec::new();
    let mut newly_failed = Vec::new();
    for (id, solved_now) in &now {
        match (before.get(id), solved_now) {
            (Some(false) | None, true) => newly_solved.push(id.to_string()),
            (Some(true), false) => newly_failed.push(id.to_string()),
            _ => {}
        }
    }
    let missing = before
        .keys()
        .filter(|id| !now.contains_key(*id))
        .map(|id| id.to_string())
        .collect();
    let drop_points = (baseline.summary.solve_rate - summary.solve_rate) * 100.0;
    // A float difference of equal rates is not a drop.
    let regressed = drop_points > max_drop_points + 1e-9;
    BaselineComparison {
        baseline_solve_rate: baseline.summary.solve_rate,
        drop_points,
        max_drop_points,
        regressed,
        newly_solved,
        newly_failed,
        missing,
    }
}

/// Builds the report of a run.
pub fn build_report(
    run: serde_json::Value,
    problems: Vec<ProblemOutcome>,
    baseline: Option<(&Report, f64)>,
) -> Report {
    let summary = summarize(&problems);
    let baseline = baseline
        .map(|(baseline, max_drop_points)| compare(&problems, &summary, baseline, max_drop_points));
    Report {
        format: REPORT_FORMAT,
        run,
        solves_over_time: solves_over_time(&problems),
        summary,
        problems,
        baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(state: &str, finished_at: f64, wall: f64, tokens: u64) -> AttemptOutcome {
        AttemptOutcome {
            state: state.to_string(),
            reason: None,
            proof: None,
            finished_at_seconds: finished_at,
            wall_seconds: wall,
            candidates: 2,
            tokens,
            cost: tokens as f64 / 1000.0,
            cpu_seconds: 0.5,
        }
    }

    fn problem(id: &str, tags: &[&str], attempts: Vec<AttemptOutcome>) -> ProblemOutcome {
        ProblemOutcome {
            id: id.to_string(),
            tags: tags.iter().map(|tag| tag.to_string()).collect(),
            attempts,
        }
    }

    /// Three problems, two attempts each: a solved twice, b once (second), c never.
    fn crafted() -> Vec<ProblemOutcome> {
        vec![
            problem(
                "a",
                &["algebra"],
                vec![
                    attempt("proved", 3.0, 1.0, 100),
                    attempt("proved", 2.0, 2.0, 100),
                ],
            ),
            problem(
                "b",
                &["algebra", "number_theory"],
                vec![
                    attempt("exhausted", 4.0, 4.0, 300),
                    attempt("proved", 9.0, 5.0, 200),
                ],
            ),
            problem(
                "c",
                &["inequality"],
                vec![
                    attempt("exhausted", 5.0, 5.0, 300),
                    attempt("error", 6.0, 0.0, 0),
                ],
            ),
        ]
    }

    #[test]
    fn pass_at_follows_the_unbiased_estimator() {
        assert_eq!(pass_at(2, 2, 1), 1.0);
        assert_eq!(pass_at(2, 1, 1), 0.5);
        assert_eq!(pass_at(2, 1, 2), 1.0);
        assert_eq!(pass_at(2, 0, 2), 0.0);
        assert!((pass_at(10, 3, 5) - (1.0 - 21.0 / 252.0)).abs() < 1e-12);
        assert_eq!(pass_at(0, 0, 1), 0.0);
    }

    #[test]
    fn the_summary_counts_what_the_outcomes_say() {
        let summary = summarize(&crafted());
        assert_eq!(summary.problems, 3);
        assert_eq!(summary.solved, 2);
        assert!((summary.solve_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((summary.pass_at["1"] - (1.0 + 0.5 + 0.0) / 3.0).abs() < 1e-12);
        assert!((summary.pass_at["2"] - 2.0 / 3.0).abs() < 1e-12);
        // First proofs: a's at 2.0 s (wall 2.0), b's at 9.0 s (wall 5.0).
        assert_eq!(summary.time_to_proof_seconds.p50, Some(2.0));
        assert_eq!(summary.time_to_proof_seconds.p99, Some(5.0));
        assert_eq!(summary.totals.attempts, 6);
        assert_eq!(summary.totals.tokens, 1000);
        assert_eq!(summary.totals.candidates, 12);
        assert_eq!(summary.per_solved.tokens, 500.0);
        assert!((summary.per_solved.cost - 0.5).abs() < 1e-12);
        assert_eq!(summary.per_solved.cpu_seconds, 1.5);
        assert_eq!(summary.by_tag["algebra"].solved, 2);
        assert_eq!(summary.by_tag["algebra"].solve_rate, 1.0);
        assert_eq!(summary.by_tag["number_theory"].problems, 1);
        assert_eq!(summary.by_tag["inequality"].solve_rate, 0.0);
        assert_eq!(summary.attempts_by_state["proved"], 3);
        assert_eq!(summary.attempts_by_state["error"], 1);
    }

    #[test]
    fn nothing_solved_gives_zeros_not_nans() {
        let problems = vec![problem("x", &[], vec![attempt("exhausted", 1.0, 1.0, 10)])];
        let summary = summarize(&problems);
        assert_eq!(summary.solve_rate, 0.0);
        assert_eq!(summary.per_solved, PerSolved::default());
        assert_eq!(summary.time_to_proof_seconds, Percentiles::default());
        assert!(solves_over_time(&problems).is_empty());
        let empty = summarize(&[]);
        assert_eq!(empty.solve_rate, 0.0);
        assert!(empty.pass_at.is_empty());
    }

    #[test]
    fn solves_over_time_count_first_proofs_in_time_order() {
        let points = solves_over_time(&crafted());
        assert_eq!(
            points,
            [
                SolvePoint {
                    seconds: 2.0,
                    solved: 1
                },
                SolvePoint {
                    seconds: 9.0,
                    solved: 2
                }
            ]
        );
    }

    #[test]
    fn a_baseline_names_changes_and_flags_a_drop_beyond_the_threshold() {
        let baseline = build_report(serde_json::json!({}), crafted(), None);
        // Now: a fails, c is solved, b is unchanged, d is new and solved.
        let now = vec![
            problem("a", &[], vec![attempt("exhausted", 1.0, 1.0, 1)]),
            problem("b", &[], vec![attempt("proved", 1.0, 1.0, 1)]),
            problem("c", &[], vec![attempt("proved", 1.0, 1.0, 1)]),
        ];
        let same_rate = build_report(serde_json::json!({}), now.clone(), Some((&baseline, 0.0)));
        let comparison = same_rate.baseline.unwrap();
        assert_eq!(comparison.newly_solved, ["c"]);
        assert_eq!(comparison.newly_failed, ["a"]);
        assert!(comparison.missing.is_empty());
        assert!(comparison.drop_points.abs() < 1e-9);
        assert!(!comparison.regressed);

        let worse = vec![problem("a", &[], vec![attempt("exhausted", 1.0, 1.0, 1)])];
        let report = build_report(serde_json::json!({}), worse.clone(), Some((&baseline, 0.0)));
        let comparison = report.baseline.unwrap();
        assert!((comparison.drop_points - 200.0 / 3.0).abs() < 1e-9);
        assert!(comparison.regressed);
        assert_eq!(comparison.missing, ["b", "c"]);
        // A threshold above the drop tolerates it.
        let tolerated = build_report(serde_json::json!({}), worse, Some((&baseline, 70.0)));
        assert!(!tolerated.baseline.unwrap().regressed);
    }

    #[test]
    fn a_report_reads_back_as_it_was_written() {
        let report = build_report(serde_json::json!({"k": 2}), crafted(), None);
        let text = serde_json::to_string(&report).unwrap();
        let read: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(read, report);
    }
}

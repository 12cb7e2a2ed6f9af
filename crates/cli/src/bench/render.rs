//! report.md and its plot (solves.svg), from a [`Report`]. Pure: strings in,
//! strings out. Problem ids and reasons come from the problem set and the
//! farm, so what lands in Markdown or SVG is escaped.

use super::report::{Report, SolvePoint};
use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 320.0;
const MARGIN: f64 = 48.0;

/// A step plot of solved problems over the run's time, axes labelled.
pub fn solves_svg(points: &[SolvePoint], problems: usize, run_seconds: f64) -> String {
    let max_x = points
        .last()
        .map_or(0.0, |point| point.seconds)
        .max(run_seconds)
        .max(1e-3);
    let max_y = problems.max(1) as f64;
    let x = |seconds: f64| MARGIN + (seconds / max_x) * (WIDTH - 2.0 * MARGIN);
    let y = |solved: f64| HEIGHT - MARGIN - (solved / max_y) * (HEIGHT - 2.0 * MARGIN);
    let mut path = format!("M{:.1},{:.1}", x(0.0), y(0.0));
    let mut solved = 0.0;
    for point in points {
        let _ = write!(path, " L{:.1},{:.1}", x(point.seconds), y(solved));
        solved = point.solved as f64;
        let _ = write!(path, " L{:.1},{:.1}", x(point.seconds), y(solved));
    }
    let _ = write!(path, " L{:.1},{:.1}", x(max_x), y(solved));
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<line x1="{MARGIN}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>"#,
        bottom = HEIGHT - MARGIN,
        right = WIDTH - MARGIN
    );
    let _ = writeln!(
        svg,
        r#"<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{bottom}" stroke="black"/>"#,
        bottom = HEIGHT - MARGIN
    );
    for tick in 0..=4 {
        let fraction = tick as f64 / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{:.1}</text>"#,
            x(fraction * max_x),
            HEIGHT - MARGIN + 16.0,
            fraction * max_x
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{:.0}</text>"#,
            MARGIN - 6.0,
            y(fraction * max_y) + 4.0,
            fraction * max_y
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the run started</text>"#,
        WIDTH / 2.0,
        HEIGHT - 10.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{:.1}" text-anchor="middle" transform="rotate(-90 14 {:.1})">problems solved</text>"#,
        HEIGHT / 2.0,
        HEIGHT / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<path d="{path}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##
    );
    svg.push_str("</svg>\n");
    svg
}

/// Text safe in a Markdown table cell.
fn cell(text: &str) -> String {
    text.chars()
        .take(120)
        .map(|character| match character {
            '|' => '/',
            '\n' | '\r' => ' ',
            '<' => '‹',
            '>' => '›',
            other => other,
        })
        .collect()
}

fn seconds(value: Option<f64>) -> String {
    value.map_or("–".to_string(), |value| format!("{value:.2} s"))
}

/// report.md: the summary, pass@k, tags, usage, the plot, the baseline, and
/// every problem that was not solved.
pub fn markdown(report: &Report, svg_file: &str) -> String {
    let summary = &report.summary;
    let mut text = String::new();
    let _ = writeln!(text, "# Benchmark report\n");
    let run = &report.run;
    let _ = writeln!(
        text,
        "Problem set `{}`, route `{}`, strategy `{}`, {} attempt(s) per problem, farm {}.\n",
        cell(run["problem_set"].as_str().unwrap_or("?")),
        cell(run["route"].as_str().unwrap_or("?")),
        cell(&run["strategy"].to_string()),
        run["k"],
        cell(run["server"].as_str().unwrap_or("embedded")),
    );
    let _ = writeln!(
        text,
        "**Solved {} of {} ({:.1} %).**\n",
        summary.solved,
        summary.problems,
        summary.solve_rate * 100.0
    );
    let _ = writeln!(text, "| measure | value |\n|---|---|");
    for (j, value) in &summary.pass_at {
        let _ = writeln!(text, "| pass@{j} | {:.3} |", value);
    }
    let _ = writeln!(
        text,
        "| time to proof p50 | {} |\n| time to proof p99 | {} |",
        seconds(summary.time_to_proof_seconds.p50),
        seconds(summary.time_to_proof_seconds.p99)
    );
    let _ = writeln!(
        text,
        "| tokens per solved problem | {:.0} |\n| cost per solved problem | {:.4} |\n| Lean CPU-seconds per solved problem | {:.2} |",
        summary.per_solved.tokens, summary.per_solved.cost, summary.per_solved.cpu_seconds
    );
    let totals = &summary.totals;
    let _ = writeln!(
        text,
        "| prove jobs | {} |\n| candidates | {} |\n| tokens | {} |\n| cost | {:.4} |\n| Lean CPU-seconds | {:.2} |\n",
        totals.attempts, totals.candidates, totals.tokens, totals.cost, totals.cpu_seconds
    );
    if !summary.by_tag.is_empty() {
        let _ = writeln!(
            text,
            "## By tag\n\n| tag | solved | problems | rate |\n|---|---|---|---|"
        );
        for (tag, tag_summary) in &summary.by_tag {
            let _ = writeln!(
                text,
                "| {} | {} | {} | {:.1} % |",
                cell(tag),
                tag_summary.solved,
                tag_summary.problems,
                tag_summary.solve_rate * 100.0
            );
        }
        text.push('\n');
    }
    let _ = writeln!(
        text,
        "## Solves over time\n\n![solves over time]({svg_file})\n"
    );
    if let Some(baseline) = &report.baseline {
        let _ = writeln!(
            text,
            "## Against the baseline\n\nBaseline solve rate {:.1} %, now {:.1} %: {} {:.1} points (allowed drop {:.1}).{}\n",
            baseline.baseline_solve_rate * 100.0,
            summary.solve_rate * 100.0,
            if baseline.drop_points > 0.0 { "down" } else { "up" },
            baseline.drop_points.abs(),
            baseline.max_drop_points,
            if baseline.regressed { " **Regression.**" } else { "" }
        );
        let list = |ids: &[String]| match ids.is_empty() {
            true => "none".to_string(),
            false => ids
                .iter()
                .map(|id| format!("`{}`", cell(id)))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(text, "- newly solved: {}", list(&baseline.newly_solved));
        let _ = writeln!(text, "- newly failed: {}", list(&baseline.newly_failed));
        if !baseline.missing.is_empty() {
            let _ = writeln!(text, "- not in this run: {}", list(&baseline.missing));
        }
        text.push('\n');
    }
    let unsolved: Vec<_> = report.problems.iter().filter(|p| !p.solved()).collect();
    if !unsolved.is_empty() {
        let _ = writeln!(
            text,
            "## Not solved\n\n| problem | last state | reason |\n|---|---|---|"
        );
        for problem in unsolved {
            let last = problem.attempts.last();
            let _ = writeln!(
                text,
                "| {} | {} | {} |",
                cell(&problem.id),
                cell(last.map_or("", |a| a.state.as_str())),
                cell(last.and_then(|a| a.reason.as_deref()).unwrap_or(""))
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{build_report, AttemptOutcome, ProblemOutcome};

    fn outcome(id: &str, state: &str, reason: &str) -> ProblemOutcome {
        ProblemOutcome {
            id: id.to_string(),
            tags: vec!["algebra".into()],
            attempts: vec![AttemptOutcome {
                state: state.into(),
                reason: Some(reason.into()),
                proof: None,
                finished_at_seconds: 1.5,
                wall_seconds: 1.0,
                candidates: 1,
                tokens: 10,
                cost: 0.0,
                cpu_seconds: 0.1,
            }],
        }
    }

    #[test]
    fn the_plot_is_one_svg_with_a_step_per_solve() {
        let points = [
            SolvePoint {
                seconds: 1.0,
                solved: 1,
            },
            SolvePoint {
                seconds: 2.0,
                solved: 2,
            },
        ];
        let svg = solves_svg(&points, 4, 3.0);
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        let path = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        // Start, two points per solve, end.
        assert_eq!(path.matches('L').count(), 5);
        assert!(!svg.contains("NaN"));
        assert!(!solves_svg(&[], 0, 0.0).contains("NaN"));
    }

    #[test]
    fn markdown_escapes_what_the_problem_set_and_farm_wrote() {
        let report = build_report(
            serde_json::json!({"problem_set": "p.jsonl", "route": "dummy", "k": 1}),
            vec![
                outcome("ok", "proved", ""),
                outcome("a|b<script>", "exhausted", "budget\n| spent"),
            ],
            None,
        );
        let text = markdown(&report, "solves.svg");
        assert!(text.contains("**Solved 1 of 2 (50.0 %).**"));
        assert!(text.contains("| pass@1 | 0.500 |"));
        assert!(text.contains("![solves over time](solves.svg)"));
        assert!(
            text.contains("| a/b‹script› | exhausted | budget / spent |"),
            "{text}"
        );
        assert!(!text.contains("<script>"));
    }
}

//! Prints how fast `lex` and `body` run on about 1 MB of Lean source.
//! Run with `cargo run --release -p lean-syntax --example throughput`; each
//! figure is the fastest of five runs.

use std::time::{Duration, Instant};

const SAMPLE: &str = r##"/-- A documented theorem. -/
@[simp] theorem add_zero' (n : ℕ) : n + 0 = n := by
  induction n with
  | zero => rfl
  | succ k ih => simp [Nat.add_succ, ih] -- a comment
/- a block /- nested -/ comment -/
def greet (name : String) : String := s!"hello {name}, {1 + 2}!"
set_option maxHeartbeats 400000 in
example : ∑ i ∈ Finset.range 10, (i : ℝ) = 45 := by norm_num [Finset.sum_range_succ]
#eval greet "world" ++ r#"raw "quoted" text"# ++ toString 'x' ++ toString 0x2A
"##;

/// The fastest of five runs (the machine may be shared).
fn fastest<T>(mut run: impl FnMut() -> T) -> (T, Duration) {
    let mut best = Duration::MAX;
    let mut result = run();
    for _ in 0..5 {
        let started = Instant::now();
        result = run();
        best = best.min(started.elapsed());
    }
    (result, best)
}

fn measure(name: &str, source: &str) {
    let (tokens, lexed) = fastest(|| lean_syntax::lex(source).map(|tokens| tokens.len()));
    let (commands, split) = fastest(|| lean_syntax::body(source).map(|body| body.commands.len()));
    let megabytes = source.len() as f64 / 1_000_000.0;
    println!(
        "{name}: {:.2} MB, lex {lexed:?} ({:.0} MB/s, {tokens:?} tokens), lex+split {split:?} ({commands:?} commands)",
        megabytes,
        megabytes / lexed.as_secs_f64(),
    );
}

fn main() {
    let repeats = 1_000_000 / SAMPLE.len() + 1;
    measure("typical Lean", &SAMPLE.repeat(repeats));
    measure("attribute lists", &"@[".repeat(500_000));
    measure(
        "nested comments",
        &format!("{}{}", "/- ".repeat(170_000), "-/ ".repeat(170_000)),
    );
    measure("set_option chain", &"set_option a 1 in\n".repeat(55_000));
    measure(
        "interpolations",
        &format!("{}{}", "s!\"{".repeat(125_000), "}\"".repeat(125_000)),
    );
}

//! What the benchmarks (`examples/*_bench.rs`) share: their flags and how
//! they summarise samples.

/// The value after `--name` on the command line, else `default`.
pub fn command_line_argument(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|index| args.get(index + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

/// The sample at `fraction` (0.5 is the median) of samples sorted ascending.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

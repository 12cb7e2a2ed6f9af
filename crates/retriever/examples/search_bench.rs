//! Premise search on a generated index of Mathlib-like declarations:
//! builds it, then runs queries one at a time and from several threads, and
//! prints the build time, queries per second and p50/p99 latency.
//!
//! `bench/retriever.sh` runs it; arguments: `--declarations N` (200000),
//! `--queries N` (2000), `--threads N` (2), `--rare-words N` (8000, beside
//! 80 common name words), `--dir DIR` (a temporary one).

use leanfarm_retriever::{build_index, Retriever, Source};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAMESPACES: &[&str] = &[
    "Nat",
    "Int",
    "Rat",
    "Real",
    "Complex",
    "Finset",
    "Set",
    "List",
    "Multiset",
    "Polynomial",
    "Matrix",
    "MeasureTheory",
    "Filter",
    "Topology",
    "Metric",
    "ZMod",
    "Function",
    "Order",
    "Group",
    "Subgroup",
    "Ideal",
    "Module",
    "LinearMap",
    "Submodule",
    "Equiv",
    "Fin",
    "EReal",
    "ENNReal",
    "NNReal",
    "Asymptotics",
    "HasDerivAt",
    "Continuous",
    "Nat.Prime",
    "Int.ModEq",
    "Finset.sum",
    "Real.sqrt",
    "Real.log",
    "Real.exp",
    "IsOpen",
    "Submonoid",
];
const WORDS: &[&str] = &[
    "add",
    "mul",
    "sub",
    "div",
    "pow",
    "neg",
    "inv",
    "le",
    "lt",
    "eq",
    "ne",
    "comm",
    "assoc",
    "left",
    "right",
    "cancel",
    "zero",
    "one",
    "two",
    "sq",
    "abs",
    "sum",
    "prod",
    "mem",
    "subset",
    "card",
    "map",
    "comp",
    "id",
    "mono",
    "strictMono",
    "pos",
    "nonneg",
    "nonpos",
    "succ",
    "pred",
    "mod",
    "dvd",
    "gcd",
    "lcm",
    "sqrt",
    "log",
    "exp",
    "sin",
    "cos",
    "tendsto",
    "continuous",
    "deriv",
    "integral",
    "measurable",
    "injective",
    "surjective",
    "iff",
    "of",
    "self",
    "smul",
    "finrank",
    "image",
    "preimage",
    "union",
    "inter",
    "compl",
    "empty",
    "univ",
    "filter",
    "range",
    "ofNat",
    "cast",
    "floor",
    "ceil",
    "max",
    "min",
    "sup",
    "inf",
];
const SYMBOLS: &[&str] = &[
    "+", "*", "-", "/", "^", "≤", "<", "=", "≠", "∣", "∈", "⊆", "∪", "∩",
];
const TYPES: &[&str] = &["ℕ", "ℤ", "ℚ", "ℝ", "ℂ", "α", "Finset α", "Set α", "List α"];

/// A small deterministic generator (xorshift64*).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Name words as a library has them: the common words first, then
/// thousands of rarer made-up ones, drawn with Zipf's law (the word of rank
/// r with weight 1/r), as words are in Mathlib's names.
struct Vocabulary {
    words: Vec<String>,
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new(rare_words: usize) -> Vocabulary {
        const SYLLABLES: &[&str] = &[
            "ba", "co", "di", "fe", "gu", "ha", "ji", "ko", "lu", "ma", "ne", "po", "qui", "ra",
            "si", "to", "vu", "xe", "yo", "za",
        ];
        let mut words: Vec<String> = WORDS.iter().map(|word| word.to_string()).collect();
        for index in 0..rare_words {
            let mut word = String::new();
            let mut rest = index + SYLLABLES.len();
            while rest > 0 {
                word.push_str(SYLLABLES[rest % SYLLABLES.len()]);
                rest /= SYLLABLES.len();
            }
            words.push(word);
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|rank| {
                total += 1.0 / (rank + 1) as f64;
                total
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn pick(&self, random: &mut Random) -> &str {
        let total = *self.cumulative.last().unwrap();
        let target = (random.next() % 1_000_000_007) as f64 / 1_000_000_007.0 * total;
        let index = self.cumulative.partition_point(|sum| *sum < target);
        &self.words[index.min(self.words.len() - 1)]
    }
}

fn declaration_line(random: &mut Random, vocabulary: &Vocabulary, index: usize) -> String {
    let namespace = random.pick(NAMESPACES);
    let word_count = 2 + random.next() % 3;
    let words: Vec<&str> = (0..word_count).map(|_| vocabulary.pick(random)).collect();
    let name = format!("{namespace}.{}_{index}", words.join("_"));
    let kind = match random.next() % 10 {
        0..=6 => "theorem",
        7 | 8 => "def",
        _ => "instance",
    };
    let ty = random.pick(TYPES);
    let signature = format!(
        "{{a b c : {ty}}} (h : a {} b) : a {} (b {} c) = {}.{} a {} c",
        random.pick(SYMBOLS),
        random.pick(SYMBOLS),
        random.pick(SYMBOLS),
        namespace,
        random.pick(WORDS),
        random.pick(SYMBOLS),
    );
    let docstring = match random.next() % 3 {
        0 => format!(
            "The {} of a {} is {} when it is {}.",
            random.pick(WORDS),
            random.pick(WORDS),
            random.pick(WORDS),
            random.pick(WORDS)
        ),
        _ => String::new(),
    };
    let module = format!(
        "Mathlib.{}.{}",
        namespace.replace('.', ""),
        random.pick(WORDS)
    );
    serde_json::json!({
        "name": name, "kind": kind, "signature": signature, "docstring": docstring, "module": module
    })
    .to_string()
}

fn query(random: &mut Random, vocabulary: &Vocabulary) -> String {
    match random.next() % 4 {
        0 => format!("{} {}", vocabulary.pick(random), vocabulary.pick(random)),
        1 => format!(
            "{}.{}_{}",
            random.pick(NAMESPACES),
            vocabulary.pick(random),
            vocabulary.pick(random)
        ),
        2 => format!(
            "a {} b {} b {} a",
            random.pick(SYMBOLS),
            random.pick(SYMBOLS),
            random.pick(SYMBOLS)
        ),
        _ => format!(
            "{} {} {} {}",
            vocabulary.pick(random),
            random.pick(NAMESPACES),
            vocabulary.pick(random),
            vocabulary.pick(random)
        ),
    }
}

fn argument(name: &str, default: usize) -> usize {
    let arguments: Vec<String> = std::env::args().collect();
    arguments
        .iter()
        .position(|argument| argument == name)
        .and_then(|at| arguments.get(at + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn main() {
    let declarations = argument("--declarations", 200_000);
    let queries = argument("--queries", 2000);
    let threads = argument("--threads", 2).max(1);
    let temporary = tempfile::tempdir().expect("temporary directory");
    let arguments: Vec<String> = std::env::args().collect();
    let dir = arguments
        .iter()
        .position(|argument| argument == "--dir")
        .and_then(|at| arguments.get(at + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| temporary.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("bench directory");
    let dump = dir.join("generated.jsonl");
    let mut random = Random(0x5EED_1234_ABCD_0001);
    let vocabulary = Vocabulary::new(argument("--rare-words", 8000));
    let mut writer = std::io::BufWriter::new(std::fs::File::create(&dump).expect("dump"));
    for index in 0..declarations {
        writeln!(
            writer,
            "{}",
            declaration_line(&mut random, &vocabulary, index)
        )
        .expect("write dump");
    }
    writer.flush().expect("flush dump");
    drop(writer);
    let index_path = dir.join("generated.sqlite");
    let building = Instant::now();
    let report = build_index(&[Source::Dump(dump.clone())], &index_path).expect("build");
    let build_seconds = building.elapsed().as_secs_f64();
    let index_bytes = std::fs::metadata(&index_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "index: {} declarations built in {build_seconds:.1} s ({:.0} declarations/s), {:.1} MiB",
        report.declarations,
        report.declarations as f64 / build_seconds,
        index_bytes as f64 / (1 << 20) as f64
    );

    let retriever = Arc::new(Retriever::open(&index_path).expect("open"));
    let query_texts: Vec<String> = (0..queries)
        .map(|_| query(&mut random, &vocabulary))
        .collect();
    // Warm the page cache and the statement cache.
    for text in query_texts.iter().take(50) {
        retriever.try_search(text, 10).expect("search");
    }
    let mut latencies = Vec::with_capacity(queries);
    let mut results = 0;
    let started = Instant::now();
    for text in &query_texts {
        let one = Instant::now();
        results += retriever.try_search(text, 10).expect("search").len();
        latencies.push(one.elapsed());
    }
    let serial_seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "one thread: {queries} queries (k=10) in {serial_seconds:.2} s: {:.0} queries/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.1} results per query",
        queries as f64 / serial_seconds,
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap().as_secs_f64() * 1000.0,
        results as f64 / queries as f64
    );

    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let retriever = Arc::clone(&retriever);
            let mine: Vec<String> = query_texts
                .iter()
                .skip(thread)
                .step_by(threads)
                .cloned()
                .collect();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                for text in &mine {
                    let one = Instant::now();
                    retriever.try_search(text, 10).expect("search");
                    latencies.push(one.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("thread"))
        .collect();
    let parallel_seconds = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "{threads} threads: {queries} queries in {parallel_seconds:.2} s: {:.0} queries/s, p50 {:.2} ms, p99 {:.2} ms",
        queries as f64 / parallel_seconds,
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
    );
}

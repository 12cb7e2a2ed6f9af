//! An index built from the shipped Lean library (`bench/problems/library`)
//! and from a JSONL dump answers with the expected declarations first.

use leanfarm_retriever::{build_index, Retriever, RetrieverError, Source, MAX_RESULTS};
use std::path::{Path, PathBuf};

fn shipped_library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/problems/library")
}

fn library_index(dir: &Path) -> Retriever {
    let path = dir.join("library.sqlite");
    let report = build_index(&[Source::from_path(shipped_library())], &path).unwrap();
    assert_eq!(report.lean_files, 3);
    assert!(
        report.skipped_files.is_empty(),
        "{:?}",
        report.skipped_files
    );
    let retriever = Retriever::open(&path).unwrap();
    assert_eq!(retriever.declaration_count(), report.declarations);
    retriever
}

fn first_names(retriever: &Retriever, query: &str, k: usize) -> Vec<String> {
    retriever
        .try_search(query, k)
        .unwrap()
        .into_iter()
        .map(|premise| premise.name)
        .collect()
}

#[test]
fn name_words_find_the_declaration_first() {
    let dir = tempfile::tempdir().unwrap();
    let retriever = library_index(dir.path());
    assert_eq!(
        first_names(&retriever, "add comm", 1),
        ["Farm.Nat.add_comm"]
    );
    assert_eq!(
        first_names(&retriever, "Farm.Nat.add_comm", 1),
        ["Farm.Nat.add_comm"]
    );
    assert_eq!(
        first_names(&retriever, "mul_self_nonneg", 1),
        ["Farm.Real.mul_self_nonneg"]
    );
    assert_eq!(
        first_names(&retriever, "sqrt sq abs", 1),
        ["Farm.Real.sqrt_sq_eq_abs"]
    );
    // One word of a name finds every declaration whose name has it.
    let comm = first_names(&retriever, "comm", 10);
    assert_eq!(comm.len(), 2);
    assert!(comm.contains(&"Farm.Nat.add_comm".to_string()));
    assert!(comm.contains(&"Farm.Nat.mul_comm".to_string()));
}

#[test]
fn docstrings_signatures_and_notation_are_searched() {
    let dir = tempfile::tempdir().unwrap();
    let retriever = library_index(dir.path());
    assert_eq!(
        first_names(&retriever, "triangle inequality absolute value", 1),
        ["Farm.Real.abs_add"]
    );
    assert_eq!(
        first_names(&retriever, "Bernoulli", 1),
        ["Farm.Inequalities.one_add_mul_le_pow"]
    );
    // `∣` is the word `dvd`, as in Mathlib's names.
    let divides = first_names(&retriever, "a ∣ b → b ∣ c → a ∣ c transitive", 1);
    assert_eq!(divides, ["Farm.Nat.dvd_trans"]);
    let premise = &retriever.try_search("factorial positive", 1).unwrap()[0];
    assert_eq!(premise.name, "Farm.Nat.factorial_pos");
    assert_eq!(premise.kind, "theorem");
    assert_eq!(premise.signature, "(n : ℕ) : 0 < n.factorial");
    assert_eq!(
        premise.docstring,
        "The factorial of a natural number is positive."
    );
    assert_eq!(premise.module, "Farm.Nat");
    assert!(premise.score > 0.0);
}

#[test]
fn results_are_ranked_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let retriever = library_index(dir.path());
    let results = retriever
        .try_search("real nat theorem sq add", 1000)
        .unwrap();
    assert!(results.len() <= MAX_RESULTS);
    assert!(results.len() > 10);
    let results = retriever.try_search("real", 1000).unwrap();
    assert!(results.len() > 10);
    for pair in results.windows(2) {
        assert!(pair[0].score >= pair[1].score, "{pair:?}");
    }
    // Declarations with every word come before those with some.
    let results = retriever.try_search("sq nonneg", 5).unwrap();
    let with_both = |name: &str| name.contains("sq") && name.contains("nonneg");
    assert!(with_both(&results[0].name), "{results:?}");
    let first_without = results.iter().position(|p| !with_both(&p.name)).unwrap();
    assert!(
        results[first_without..].iter().all(|p| !with_both(&p.name)),
        "{results:?}"
    );
    assert_eq!(retriever.try_search("add", 3).unwrap().len(), 3);
    assert!(retriever.try_search("add", 0).unwrap().is_empty());
}

#[test]
fn hostile_queries_are_words_never_fts5_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let retriever = library_index(dir.path());
    for query in [
        "\"",
        "\"unbalanced",
        "add NOT comm",
        "name:add",
        "{name_words}: add",
        "NEAR(add comm, 2)",
        "add*",
        "^add",
        "') OR 1=1; DROP TABLE declarations; --",
        "\u{0}add",
        "",
        "   ",
        "+++ *** ---",
    ] {
        let result = retriever.try_search(query, 10);
        assert!(result.is_ok(), "{query:?}: {result:?}");
    }
    assert!(retriever.try_search("", 10).unwrap().is_empty());
    assert!(retriever.try_search("  ...  ", 10).unwrap().is_empty());
    // The index is intact and still answers.
    assert_eq!(
        first_names(&retriever, "add comm", 1),
        ["Farm.Nat.add_comm"]
    );
}

#[test]
fn a_dump_from_a_toolchain_is_indexed_and_a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("declarations.jsonl");
    std::fs::write(
        &dump,
        concat!(
            r#"{"name":"Nat.succ_le_iff","kind":"theorem","type":"∀ {m n : ℕ}, m.succ ≤ n ↔ m < n","doc":"","module":"Init.Data.Nat.Basic"}"#,
            "\n\n",
            r#"{"name":"HasDerivAt.add","kind":"theorem","signature":"HasDerivAt f f' x → HasDerivAt g g' x → HasDerivAt (fun y => f y + g y) (f' + g') x","docstring":"Sum rule.","module":"Mathlib.Analysis.Calculus.Deriv.Add"}"#,
            "\n"
        ),
    )
    .unwrap();
    let path = dir.path().join("dump.sqlite");
    let report = build_index(&[Source::from_path(dump.clone())], &path).unwrap();
    assert_eq!(report.dump_lines, 2);
    let retriever = Retriever::open(&path).unwrap();
    assert_eq!(first_names(&retriever, "deriv add", 1), ["HasDerivAt.add"]);
    assert_eq!(first_names(&retriever, "HasDerivAt", 1), ["HasDerivAt.add"]);
    assert_eq!(
        first_names(&retriever, "succ le iff", 1),
        ["Nat.succ_le_iff"]
    );

    std::fs::write(
        &dump,
        "{\"name\":\"ok\",\"kind\":\"def\",\"signature\":\"\"}\nnot json\n",
    )
    .unwrap();
    let error = build_index(&[Source::Dump(dump)], &dir.path().join("bad.sqlite")).unwrap_err();
    assert!(
        matches!(error, RetrieverError::DumpLine { line: 2, .. }),
        "{error}"
    );
    assert!(!dir.path().join("bad.sqlite").exists());
}

#[test]
fn a_file_that_is_not_an_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(&not_sqlite, "hello").unwrap();
    assert!(matches!(
        Retriever::open(&not_sqlite),
        Err(RetrieverError::NotAnIndex(..))
    ));
    let other_sqlite = dir.path().join("other.sqlite");
    other_sqlite_database(&other_sqlite);
    assert!(matches!(
        Retriever::open(&other_sqlite),
        Err(RetrieverError::NotAnIndex(..))
    ));
    assert!(matches!(
        Retriever::open(&dir.path().join("missing.sqlite")),
        Err(RetrieverError::NotAFile(_))
    ));
    let empty_dir = dir.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    assert!(matches!(
        build_index(&[Source::Lean(empty_dir)], &dir.path().join("none.sqlite")),
        Err(RetrieverError::NoDeclarations)
    ));
}

/// An SQLite database that is not an index: one table of its own.
fn other_sqlite_database(path: &Path) {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection
        .execute_batch("CREATE TABLE meta (key TEXT, value TEXT); INSERT INTO meta VALUES ('format_version', '0');")
        .unwrap();
}

#[test]
fn many_threads_search_at_once_through_a_bounded_set_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let retriever = std::sync::Arc::new(library_index(dir.path()));
    let threads: Vec<_> = (0..4 * leanfarm_retriever::MAX_OPEN_CONNECTIONS)
        .map(|_| {
            let retriever = std::sync::Arc::clone(&retriever);
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| first_names(&retriever, "add comm", 1))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for names in thread.join().unwrap() {
            assert_eq!(names, ["Farm.Nat.add_comm"]);
        }
    }
    let open = retriever.open_connections();
    assert!(
        (1..=leanfarm_retriever::MAX_OPEN_CONNECTIONS).contains(&open),
        "{open}"
    );
}

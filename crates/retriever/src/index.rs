//! The index file: one SQLite database with an FTS5 table, written once by
//! [`IndexWriter`] and then only read, through [`Retriever`].
//!
//! The FTS5 table holds each declaration's fields as stored (unindexed)
//! columns and, as indexed columns, the words of its name, signature,
//! docstring and module (`words.rs`). A query is never handed to FTS5's
//! query parser as written: it is cut into words, each quoted, joined by
//! `OR`, and ranked by `bm25()` with the name weighted most.

use crate::declaration::Declaration;
use crate::words::{indexed_telling_words, indexed_words, query_words};
use crate::RetrieverError;
use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// The version of the index's schema, kept in its `meta` table.
pub const FORMAT_VERSION: &str = "3";

/// The most results one search returns.
pub const MAX_RESULTS: usize = 100;

/// A word held by more than this share of the declarations (and by more
/// than [`UNCOMMON_WORD_DOCUMENTS`]) is common: it narrows a match of every
/// word, but is not searched alone.
const COMMON_WORD_SHARE: f64 = 0.05;

/// A word held by at most this many declarations is never common: ranking
/// that many takes a few milliseconds.
const UNCOMMON_WORD_DOCUMENTS: u64 = 2000;

/// The most matches one search ranks (about 5 µs each).
const RANKED_MATCHES_CAP: u64 = 2000;

/// The table's `rank`: bm25 with weights in the table's column order:
/// name, kind, signature, docstring, module (stored only), then the indexed
/// words of name, signature, docstring and module. Kept in the index's
/// FTS5 configuration, so that `ORDER BY rank LIMIT k` lets FTS5 rank the
/// matches itself and read the stored columns of the `k` best only.
const RANK: &str = "bm25(0, 0, 0, 0, 0, 10.0, 2.0, 1.0, 0.5)";

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE word_documents (word TEXT PRIMARY KEY, documents INTEGER NOT NULL) WITHOUT ROWID;
CREATE VIRTUAL TABLE declarations USING fts5(
    name UNINDEXED, kind UNINDEXED, signature UNINDEXED, docstring UNINDEXED, module UNINDEXED,
    name_words, signature_words, docstring_words, module_words,
    tokenize = 'unicode61 remove_diacritics 0'
);
";

/// A declaration found by a search, with its rank (higher is better).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Premise {
    pub name: String,
    pub kind: String,
    pub signature: String,
    pub docstring: String,
    pub module: String,
    /// The negated bm25 score: higher is a better match.
    pub score: f64,
}

/// Writes a new index to a temporary file beside `path`, renamed into place
/// by [`IndexWriter::finish`]: a reader never sees a half-built index.
pub struct IndexWriter {
    connection: Connection,
    temporary_path: PathBuf,
    path: PathBuf,
    count: u64,
}

impl IndexWriter {
    pub fn create(path: &Path) -> Result<IndexWriter, RetrieverError> {
        let file_name = path
            .file_name()
            .ok_or_else(|| RetrieverError::NotAFile(path.to_path_buf()))?
            .to_string_lossy();
        let temporary_path = path.with_file_name(format!(".{file_name}.building"));
        let _ = std::fs::remove_file(&temporary_path);
        let connection = Connection::open(&temporary_path)
            .map_err(|error| RetrieverError::sqlite(&temporary_path, error))?;
        connection
            .execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; BEGIN;")
            .and_then(|()| connection.execute_batch(SCHEMA))
            .and_then(|()| {
                connection.execute(
                    "INSERT INTO declarations(declarations, rank) VALUES ('rank', ?1)",
                    [RANK],
                )
            })
            .map_err(|error| RetrieverError::sqlite(&temporary_path, error))?;
        Ok(IndexWriter {
            connection,
            temporary_path,
            path: path.to_path_buf(),
            count: 0,
        })
    }

    pub fn add(&mut self, declaration: &Declaration) -> Result<(), RetrieverError> {
        self.connection
            .prepare_cached("INSERT INTO declarations VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .and_then(|mut statement| {
                statement.execute(params![
                    declaration.name,
                    declaration.kind,
                    declaration.signature,
                    declaration.docstring,
                    declaration.module,
                    indexed_words(&declaration.name),
                    indexed_telling_words(&declaration.signature),
                    indexed_telling_words(&declaration.docstring),
                    indexed_words(&declaration.module),
                ])
            })
            .map_err(|error| RetrieverError::sqlite(&self.temporary_path, error))?;
        self.count += 1;
        Ok(())
    }

    /// Commits, merges the FTS5 segments, and moves the file into place.
    /// Returns how many declarations it holds.
    pub fn finish(self) -> Result<u64, RetrieverError> {
        let sqlite_error = |error| RetrieverError::sqlite(&self.temporary_path, error);
        self.connection
            .execute(
                "INSERT INTO meta VALUES ('format_version', ?1), ('declarations', ?2)",
                params![FORMAT_VERSION, self.count.to_string()],
            )
            .map_err(sqlite_error)?;
        self.connection
            .execute_batch(
                "INSERT INTO declarations(declarations) VALUES ('optimize');
                 CREATE VIRTUAL TABLE temp.vocabulary USING fts5vocab(main, 'declarations', 'row');
                 INSERT INTO word_documents SELECT term, doc FROM temp.vocabulary;
                 DROP TABLE temp.vocabulary;
                 COMMIT; VACUUM;",
            )
            .map_err(sqlite_error)?;
        self.connection
            .close()
            .map_err(|(_, error)| RetrieverError::sqlite(&self.temporary_path, error))?;
        std::fs::rename(&self.temporary_path, &self.path).map_err(|error| RetrieverError::Io {
            path: self.path.clone(),
            source: error,
        })?;
        Ok(self.count)
    }
}

/// The most connections (so searches at once) one [`Retriever`] opens; a
/// search beyond waits for one to be free. Each holds its own page cache,
/// so this bounds memory as well as CPU under a flood of searches.
pub const MAX_OPEN_CONNECTIONS: usize = 8;

/// Searches an index, read-only. Cheap to share between threads: it opens
/// up to [`MAX_OPEN_CONNECTIONS`] connections and keeps them.
pub struct Retriever {
    path: PathBuf,
    declarations: u64,
    connections: Mutex<Connections>,
    connection_returned: Condvar,
}

struct Connections {
    idle: Vec<Connection>,
    open: usize,
}

impl Retriever {
    /// Opens an index written by [`IndexWriter`], read-only; refuses a file
    /// that is not one, or of another format version.
    pub fn open(path: &Path) -> Result<Retriever, RetrieverError> {
        let connection = open_read_only(path)?;
        let meta = |key: &str| -> Result<Option<String>, rusqlite::Error> {
            match connection.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            }) {
                Ok(value) => Ok(Some(value)),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(error) => Err(error),
            }
        };
        let version = meta("format_version")
            .map_err(|error| RetrieverError::NotAnIndex(path.to_path_buf(), error.to_string()))?;
        if version.as_deref() != Some(FORMAT_VERSION) {
            return Err(RetrieverError::NotAnIndex(
                path.to_path_buf(),
                format!(
                    "format version {} where {FORMAT_VERSION} is expected",
                    version.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        let declarations = meta("declarations")
            .ok()
            .flatten()
            .and_then(|count| count.parse().ok())
            .unwrap_or(0);
        Ok(Retriever {
            path: path.to_path_buf(),
            declarations,
            connections: Mutex::new(Connections {
                idle: vec![connection],
                open: 1,
            }),
            connection_returned: Condvar::new(),
        })
    }

    /// How many declarations the index holds.
    pub fn declaration_count(&self) -> u64 {
        self.declarations
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many connections are open now (at most [`MAX_OPEN_CONNECTIONS`]).
    pub fn open_connections(&self) -> usize {
        self.lock_connections().open
    }

    /// The `k` declarations that best match `query` (at most
    /// [`MAX_RESULTS`]), best first; none when the query has no word or on
    /// any failure of the index file. This is the prover's premise source.
    pub fn search(&self, query: &str, k: usize) -> Vec<Premise> {
        self.try_search(query, k).unwrap_or_default()
    }

    /// [`Retriever::search`], with the index's failures.
    pub fn try_search(&self, query: &str, k: usize) -> Result<Vec<Premise>, RetrieverError> {
        let words = query_words(query);
        let k = k.min(MAX_RESULTS);
        if words.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let connection = self.take_connection()?;
        let result = self.plan_and_search(&connection, &words, k);
        self.return_connection(connection);
        result.map_err(|error| RetrieverError::sqlite(&self.path, error))
    }

    /// Ranking costs time for every declaration a match expression
    /// reaches, so the words are chosen by how many declarations hold
    /// them: a word in none is dropped; all the known words must match in
    /// the first pass (few declarations have them all); the second pass,
    /// for the rest of `k`, takes any of the words that are not common
    /// ([`COMMON_WORD_SHARE`]).
    fn plan_and_search(
        &self,
        connection: &Connection,
        words: &[String],
        k: usize,
    ) -> Result<Vec<Premise>, rusqlite::Error> {
        let mut known: Vec<(String, u64)> = Vec::new();
        {
            let mut statement = connection
                .prepare_cached("SELECT documents FROM word_documents WHERE word = ?1")?;
            for word in words {
                let documents: Option<u64> = statement
                    .query_row([word], |row| row.get(0))
                    .map(Some)
                    .or_else(|error| match error {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        other => Err(other),
                    })?;
                if let Some(documents) = documents.filter(|documents| *documents > 0) {
                    known.push((word.clone(), documents));
                }
            }
        }
        if known.is_empty() {
            return Ok(Vec::new());
        }
        // Every word is alphanumeric (words.rs), so quoting makes each a
        // plain term: no FTS5 operator, column filter or prefix survives.
        let quote = |word: &str| format!("\"{word}\"");
        let all: Vec<String> = known.iter().map(|(word, _)| quote(word)).collect();
        let common_above =
            ((self.declarations as f64 * COMMON_WORD_SHARE) as u64).max(UNCOMMON_WORD_DOCUMENTS);
        let uncommon: Vec<String> = known
            .iter()
            .filter(|(_, documents)| *documents <= common_above)
            .map(|(word, _)| quote(word))
            .collect();
        let fewest = known.iter().map(|(_, documents)| *documents).min();
        let mut found = run_search(connection, &all.join(" "), fewest.unwrap_or(0), k)?;
        let uncommon_documents: u64 = known
            .iter()
            .map(|(_, documents)| *documents)
            .filter(|documents| *documents <= common_above)
            .sum();
        if found.len() < k && known.len() > 1 && !uncommon.is_empty() {
            let any = run_search(connection, &uncommon.join(" OR "), uncommon_documents, k)?;
            for (rowid, premise) in any {
                if found.len() == k {
                    break;
                }
                if !found.iter().any(|(seen, _)| *seen == rowid) {
                    found.push((rowid, premise));
                }
            }
        }
        Ok(found.into_iter().map(|(_, premise)| premise).collect())
    }

    fn lock_connections(&self) -> MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle connection, a new one while fewer than the most are open,
    /// else the next one returned.
    fn take_connection(&self) -> Result<Connection, RetrieverError> {
        let mut connections = self.lock_connections();
        loop {
            if let Some(connection) = connections.idle.pop() {
                return Ok(connection);
            }
            if connections.open < MAX_OPEN_CONNECTIONS {
                connections.open += 1;
                drop(connections);
                let opened = open_read_only(&self.path);
                if opened.is_err() {
                    self.lock_connections().open -= 1;
                    self.connection_returned.notify_one();
                }
                return opened;
            }
            connections = self
                .connection_returned
                .wait(connections)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn return_connection(&self, connection: Connection) {
        self.lock_connections().idle.push(connection);
        self.connection_returned.notify_one();
    }
}

/// The `k` best matches of `expression`, with their rowids. When the
/// words' document counts say it may reach more than
/// [`RANKED_MATCHES_CAP`] declarations, only the first that many (in index
/// order) are ranked: the latency stays bounded, the ranking of such
/// unselective queries is approximate.
fn run_search(
    connection: &Connection,
    expression: &str,
    estimated_matches: u64,
    k: usize,
) -> Result<Vec<(i64, Premise)>, rusqlite::Error> {
    if estimated_matches <= RANKED_MATCHES_CAP {
        let mut statement = connection.prepare_cached(
            "SELECT rowid, name, kind, signature, docstring, module, rank \
             FROM declarations WHERE declarations MATCH ?1 ORDER BY rank LIMIT ?2",
        )?;
        let rows = statement.query_map(params![expression, k as i64], |row| {
            Ok((row.get(0)?, premise_of_row(row, 1)?))
        })?;
        return rows.collect();
    }
    let mut ranked: Vec<(i64, f64)> = connection
        .prepare_cached(
            "SELECT rowid, rank FROM declarations WHERE declarations MATCH ?1 LIMIT ?2",
        )?
        .query_map(params![expression, RANKED_MATCHES_CAP as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    ranked.truncate(k);
    let mut statement = connection.prepare_cached(
        "SELECT name, kind, signature, docstring, module, ?2 FROM declarations WHERE rowid = ?1",
    )?;
    ranked
        .into_iter()
        .map(|(rowid, rank)| {
            statement
                .query_row(params![rowid, rank], |row| premise_of_row(row, 0))
                .map(|premise| (rowid, premise))
        })
        .collect()
}

/// A premise from the columns name, kind, signature, docstring, module and
/// rank, starting at column `first`.
fn premise_of_row(row: &rusqlite::Row, first: usize) -> Result<Premise, rusqlite::Error> {
    Ok(Premise {
        name: row.get(first)?,
        kind: row.get(first + 1)?,
        signature: row.get(first + 2)?,
        docstring: row.get(first + 3)?,
        module: row.get(first + 4)?,
        score: -row.get::<_, f64>(first + 5)?,
    })
}

fn open_read_only(path: &Path) -> Result<Connection, RetrieverError> {
    if !path.is_file() {
        return Err(RetrieverError::NotAFile(path.to_path_buf()));
    }
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| RetrieverError::sqlite(path, error))?;
    connection
        .execute_batch("PRAGMA query_only = ON;")
        .map_err(|error| RetrieverError::sqlite(path, error))?;
    Ok(connection)
}

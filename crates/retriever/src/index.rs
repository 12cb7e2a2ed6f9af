//! The index file: one SQLite database with an FTS5 table, written once by
//! [`IndexWriter`] and then only read, through [`Retriever`].
//!
//! The FTS5 table holds each declaration's fields as stored (unindexed)
//! columns and, as indexed columns, the words of its name, signature,
//! docstring and module (`words.rs`). A query is never handed to FTS5's
//! query parser as written: it is cut into words, each quoted, joined by
//! `OR`, and ranked by `bm25()` with the name weighted most.

use crate::declaration::Declaration;
use crate::words::{indexed_words, query_words};
use crate::RetrieverError;
use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The version of the index's schema, kept in its `meta` table.
pub const FORMAT_VERSION: &str = "1";

/// The most results one search returns.
pub const MAX_RESULTS: usize = 100;

/// bm25 weights, in the table's column order: name, kind, signature,
/// docstring, module (stored only), then the indexed words of name,
/// signature, docstring and module.
const BM25_WEIGHTS: &str = "0, 0, 0, 0, 0, 10.0, 2.0, 1.0, 0.5";

const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
                    indexed_words(&declaration.signature),
                    indexed_words(&declaration.docstring),
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
                "INSERT INTO declarations(declarations) VALUES ('optimize'); COMMIT; VACUUM;",
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

/// Searches an index, read-only. Cheap to share: it keeps a few open
/// connections and opens another when all are busy.
pub struct Retriever {
    path: PathBuf,
    declarations: u64,
    idle_connections: Mutex<Vec<Connection>>,
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
            idle_connections: Mutex::new(vec![connection]),
        })
    }

    /// How many declarations the index holds.
    pub fn declaration_count(&self) -> u64 {
        self.declarations
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        // Every word is alphanumeric (words.rs), so quoting makes each a
        // plain term: no FTS5 operator, column filter or prefix survives.
        let expression = words
            .iter()
            .map(|word| format!("\"{word}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        let connection = self.take_connection()?;
        let result = run_search(&connection, &expression, k);
        self.return_connection(connection);
        result.map_err(|error| RetrieverError::sqlite(&self.path, error))
    }

    fn take_connection(&self) -> Result<Connection, RetrieverError> {
        let idle = self
            .idle_connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => open_read_only(&self.path),
        }
    }

    fn return_connection(&self, connection: Connection) {
        let mut idle = self
            .idle_connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < 16 {
            idle.push(connection);
        }
    }
}

fn run_search(
    connection: &Connection,
    expression: &str,
    k: usize,
) -> Result<Vec<Premise>, rusqlite::Error> {
    let sql = format!(
        "SELECT name, kind, signature, docstring, module, bm25(declarations, {BM25_WEIGHTS}) AS score \
         FROM declarations WHERE declarations MATCH ?1 ORDER BY score LIMIT ?2"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map(params![expression, k as i64], |row| {
        Ok(Premise {
            name: row.get(0)?,
            kind: row.get(1)?,
            signature: row.get(2)?,
            docstring: row.get(3)?,
            module: row.get(4)?,
            score: -row.get::<_, f64>(5)?,
        })
    })?;
    rows.collect()
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

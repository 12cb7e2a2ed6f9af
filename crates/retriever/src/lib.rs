//! Premise search for the prover: a read-only SQLite FTS5 index of Lean
//! declarations (name, kind, signature, docstring, module), ranked by BM25.
//!
//! `declaration` reads declarations from `.lean` sources (with
//! `lean-syntax`) or from a JSONL dump a real toolchain writes; `build`
//! walks sources and dumps into an index; `index` writes the file once and
//! searches it (`Retriever`); `words` is how names, signatures and queries
//! become the same words.
//!
//! This crate knows nothing of HTTP or of the prover: the server serves
//! `Retriever::try_search` at `/v1/search`, and the prover calls
//! `Retriever::search`. It never writes to an index it searches.

mod build;
mod declaration;
mod index;
mod words;

pub use build::{build_index, BuildReport, Source};
pub use declaration::{
    collapse_whitespace, declaration_of_dump_line, declarations_of_source, module_of_path,
    Declaration, DumpLineError,
};
pub use index::{
    IndexWriter, Premise, Retriever, FORMAT_VERSION, MAX_OPEN_CONNECTIONS, MAX_RESULTS,
};
pub use words::{query_words, words, MAX_QUERY_WORDS};

use std::path::{Path, PathBuf};

/// Every way building or reading an index fails.
#[derive(Debug, thiserror::Error)]
pub enum RetrieverError {
    #[error("{0} is not a file")]
    NotAFile(PathBuf),
    #[error("{0} is not a declarations index: {1}")]
    NotAnIndex(PathBuf, String),
    #[error("sqlite failed on {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} line {line}: {source}")]
    DumpLine {
        path: PathBuf,
        line: usize,
        #[source]
        source: DumpLineError,
    },
    #[error("no declarations found in the given sources")]
    NoDeclarations,
}

impl RetrieverError {
    fn sqlite(path: &Path, source: rusqlite::Error) -> RetrieverError {
        RetrieverError::Sqlite {
            path: path.to_path_buf(),
            source,
        }
    }
}

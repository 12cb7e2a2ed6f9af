//! The files `leanfarm check` is given: found under the paths on the
//! command line, then read one by one. A file that cannot be a snippet
//! (unreadable, not a regular file, too large, not UTF-8, with a NUL byte)
//! is that file's error, never the run's.

use crate::CliError;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A file, or a directory under a given path, that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    #[error("cannot read: {0}")]
    Unreadable(String),
    #[error("not a regular file")]
    NotRegular,
    #[error("{size} bytes, more than the {limit} bytes a file may have (--max-file-bytes)")]
    TooLarge { size: u64, limit: u64 },
    #[error("not UTF-8 (invalid byte at offset {0})")]
    NotUtf8(usize),
    #[error("contains a NUL byte at offset {0}")]
    NulByte(usize),
}

impl FileProblem {
    /// The code a report shows for this problem.
    pub fn code(&self) -> &'static str {
        match self {
            FileProblem::Unreadable(_) => "file_unreadable",
            FileProblem::NotRegular => "file_not_regular",
            FileProblem::TooLarge { .. } => "file_too_large",
            FileProblem::NotUtf8(_) => "file_not_utf8",
            FileProblem::NulByte(_) => "file_has_nul_byte",
        }
    }
}

/// One path to report on: a file to check, or a directory that could not
/// be searched.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub problem: Option<FileProblem>,
}

/// The files named on the command line, and the `.lean` files under the
/// directories named there (in name order, each directory once, so that a
/// symbolic link loop ends). A path that does not exist stops the run.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<Found>, CliError> {
    let mut found = Vec::new();
    let mut visited = HashSet::new();
    for path in paths {
        let metadata = std::fs::metadata(path)
            .map_err(|error| CliError::Config(format!("{}: {error}", path.display())))?;
        if metadata.is_dir() {
            walk(path, &mut visited, &mut found);
        } else {
            found.push(Found {
                path: path.clone(),
                problem: None,
            });
        }
    }
    if found.is_empty() {
        return Err(CliError::Config("no .lean files found".to_string()));
    }
    Ok(found)
}

fn walk(dir: &Path, visited: &mut HashSet<PathBuf>, found: &mut Vec<Found>) {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !visited.insert(canonical) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            found.push(Found {
                path: dir.to_path_buf(),
                problem: Some(FileProblem::Unreadable(error.to_string())),
            });
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, visited, found);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "lean")
        {
            found.push(Found {
                path,
                problem: None,
            });
        }
    }
}

/// The file's text, read without ever holding more than `max_bytes` + 1
/// bytes, and only from a regular file (a FIFO or a device would block or
/// never end).
pub fn read_snippet(path: &Path, max_bytes: u64) -> Result<String, FileProblem> {
    let unreadable = |error: std::io::Error| FileProblem::Unreadable(error.to_string());
    let metadata = std::fs::metadata(path).map_err(unreadable)?;
    if !metadata.is_file() {
        return Err(FileProblem::NotRegular);
    }
    if metadata.len() > max_bytes {
        return Err(FileProblem::TooLarge {
            size: metadata.len(),
            limit: max_bytes,
        });
    }
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > max_bytes {
        // It grew since it was measured.
        return Err(FileProblem::TooLarge {
            size: bytes.len() as u64,
            limit: max_bytes,
        });
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| FileProblem::NotUtf8(error.utf8_error().valid_up_to()))?;
    if let Some(offset) = text.find('\0') {
        return Err(FileProblem::NulByte(offset));
    }
    Ok(text)
}

//! The verdict spool: the verdicts a worker has reached but not yet stored,
//! one small JSON file per job in a directory of the worker's data dir.
//!
//! A verdict counts as done only once its file is written and fsynced (file
//! and directory), so a worker killed at any later point finds it again when
//! it restarts and reports it before it leases new work. A file is removed
//! once the farm has stored the verdict or answered that the job is leased
//! elsewhere. The spool must never hold a half-written entry under its final
//! name: entries are written to a temporary name and renamed into place.

use leanfarm_core::Verdict;
use leanfarm_store::Lease;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A verdict waiting to be stored, with the lease to store it under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpooledVerdict {
    pub lease: Lease,
    pub verdict: Verdict,
}

/// Why the spool could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot create the verdict spool {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the spooled verdict {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the verdict spool {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a spooled verdict: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("a spool of capacity 0 can hold no verdict")]
    NoCapacity,
}

/// A directory of spooled verdicts, holding at most `capacity` of them (the
/// worker stops leasing while it is full).
#[derive(Clone, Debug)]
pub struct Spool {
    directory: PathBuf,
    capacity: usize,
}

impl Spool {
    /// Open (creating it if needed) the spool in `directory`; leftovers of
    /// writes cut short are removed.
    pub fn open(directory: &Path, capacity: usize) -> Result<Spool, SpoolError> {
        if capacity == 0 {
            return Err(SpoolError::NoCapacity);
        }
        std::fs::create_dir_all(directory).map_err(|source| SpoolError::Create {
            path: directory.to_path_buf(),
            source,
        })?;
        let spool = Spool {
            directory: directory.to_path_buf(),
            capacity,
        };
        for entry in spool.read_directory()? {
            if entry
                .extension()
                .is_some_and(|extension| extension == "tmp")
            {
                let _ = std::fs::remove_file(&entry);
            }
        }
        Ok(spool)
    }

    /// How many verdicts the spool may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The file of one job's verdict (the job id hex-encoded, so that any id
    /// is a safe file name).
    fn path_of(&self, job_id: &str) -> PathBuf {
        self.directory
            .join(format!("{}.json", hex::encode(job_id.as_bytes())))
    }

    /// Write `entry` durably: to a temporary file, fsynced, renamed over the
    /// job's file, and the directory fsynced. Replaces an older entry of the
    /// same job (a newer lease).
    pub fn hold(&self, entry: &SpooledVerdict) -> Result<(), SpoolError> {
        let path = self.path_of(&entry.lease.job_id);
        let temporary = path.with_extension("tmp");
        let write_error = |source| SpoolError::Write {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec(entry).map_err(|source| SpoolError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut file = std::fs::File::create(&temporary).map_err(write_error)?;
        file.write_all(&bytes).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(write_error)?;
        self.sync_directory().map_err(write_error)
    }

    /// Remove a job's entry (its verdict is stored, or the job is someone
    /// else's now). Removing an entry that is not there is not an error.
    pub fn forget(&self, job_id: &str) -> Result<(), SpoolError> {
        let path = self.path_of(job_id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(SpoolError::Write { path, source }),
        }
        self.sync_directory()
            .map_err(|source| SpoolError::Write { path, source })
    }

    /// Every entry in the spool, by job id; an unreadable one is an error.
    pub fn entries(&self) -> Result<Vec<SpooledVerdict>, SpoolError> {
        let (entries, mut unreadable) = self.readable_entries()?;
        match unreadable.is_empty() {
            true => Ok(entries),
            false => Err(unreadable.remove(0)),
        }
    }

    /// The entries that can be read, by job id, and an error for each file
    /// that cannot (a disk that lost data): those files are renamed
    /// `*.unreadable`, kept for inspection and not read again.
    pub fn readable_entries(&self) -> Result<(Vec<SpooledVerdict>, Vec<SpoolError>), SpoolError> {
        let mut entries = Vec::new();
        let mut unreadable = Vec::new();
        for path in self.read_directory()? {
            if path.extension().is_none_or(|extension| extension != "json") {
                continue;
            }
            match read_entry(&path) {
                Ok(entry) => entries.push(entry),
                Err(error) => {
                    let _ = std::fs::rename(&path, path.with_extension("unreadable"));
                    unreadable.push(error);
                }
            }
        }
        entries.sort_by(|left, right| left.lease.job_id.cmp(&right.lease.job_id));
        Ok((entries, unreadable))
    }

    fn read_directory(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let read_error = |source| SpoolError::Read {
            path: self.directory.clone(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&self.directory).map_err(read_error)? {
            paths.push(entry.map_err(read_error)?.path());
        }
        Ok(paths)
    }

    fn sync_directory(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.directory)?.sync_all()
    }
}

fn read_entry(path: &Path) -> Result<SpooledVerdict, SpoolError> {
    let bytes = std::fs::read(path).map_err(|source| SpoolError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| SpoolError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

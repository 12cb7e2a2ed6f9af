//! Recorded conversations with a real Lean REPL, as the project keeps them:
//! `NAME.in` holds the requests and `NAME.expected.out` the replies Lean
//! gave, each a blank-line separated frame. `lean-sim repl --replay DIR`
//! answers from them, and the tests check every layer against them.

use crate::split_frames;
use std::path::{Path, PathBuf};

pub struct Transcript {
    pub name: String,
    /// Request frames, as sent.
    pub requests: Vec<String>,
    /// Reply frames, as Lean printed them, one per request.
    pub replies: Vec<String>,
}

/// Every `NAME.in` / `NAME.expected.out` pair in `dir`, in name order.
pub fn read_transcripts(dir: &Path) -> std::io::Result<Vec<Transcript>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_suffix(".expected.out"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let input = std::fs::read_to_string(dir.join(format!("{name}.in")))?;
            let output = std::fs::read_to_string(dir.join(format!("{name}.expected.out")))?;
            Ok(Transcript {
                requests: split_frames(&input),
                replies: split_frames(&output),
                name,
            })
        })
        .collect()
}

/// Where the real transcripts shared with this repository are: under
/// `LEAN_FARM_SHARED_DIR`, else the `shared` directory beside the checkout.
pub fn shared_transcripts_dir() -> PathBuf {
    let shared = std::env::var("LEAN_FARM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("fixtures/lean-repl/transcripts")
}

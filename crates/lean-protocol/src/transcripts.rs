//! Recorded conversations with a real Lean REPL, as the project keeps them:
//! `NAME.in` holds the requests and `NAME.expected.out` the replies Lean
//! gave, each a blank-line separated frame. `lean-sim repl --replay DIR`
//! answers from them, and the tests check every layer against them (they
//! find the shared recordings through `leanfarm-testkit`).

use crate::split_frames;
use std::path::Path;

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

//! Where the fixtures shared with this repository are: real Lean REPL
//! transcripts and other recordings that live outside the checkout.

use std::path::PathBuf;

/// The shared directory: `LEAN_FARM_SHARED_DIR`, else the `shared`
/// directory beside the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var("LEAN_FARM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
}

/// The real REPL transcripts: `NAME.in` requests and `NAME.expected.out`
/// replies, under the shared directory.
pub fn shared_transcripts_dir() -> PathBuf {
    shared_dir().join("fixtures/lean-repl/transcripts")
}

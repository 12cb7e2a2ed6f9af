//! `leanfarm index`: build a declarations index for premise search from
//! `.lean` sources and JSONL dumps; and the opening of that index when
//! `serve` is given `--search-index`.

use crate::CliError;
use clap::Args;
use leanfarm_retriever::{build_index, Retriever, Source};
use leanfarm_server::AppState;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct IndexArgs {
    /// `.lean` files, directories of them (a file's module is its path under
    /// the directory), or `.jsonl` declaration dumps
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The index file to write (replaced once the new one is complete)
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

pub fn run(args: IndexArgs) -> Result<(), CliError> {
    let sources: Vec<Source> = args.sources.into_iter().map(Source::from_path).collect();
    let report = build_index(&sources, &args.output)
        .map_err(|error| CliError::Config(format!("cannot build the index: {error}")))?;
    for (file, why) in &report.skipped_files {
        eprintln!("leanfarm: skipped {}: {why}", file.display());
    }
    println!(
        "leanfarm: indexed {} declarations ({} .lean files, {} dump lines) into {}",
        report.declarations,
        report.lean_files,
        report.dump_lines,
        args.output.display()
    );
    Ok(())
}

/// Open the index `GET /v1/search` serves, if one is configured.
pub fn open_search_index(state: &AppState, path: Option<&Path>) -> Result<(), CliError> {
    let Some(path) = path else {
        return Ok(());
    };
    let retriever = Retriever::open(path)
        .map_err(|error| CliError::Startup(format!("search index: {error}")))?;
    tracing::info!(
        path = %path.display(),
        declarations = retriever.declaration_count(),
        "premise search is served from the index"
    );
    let _ = state.search_index.set(Arc::new(retriever));
    Ok(())
}

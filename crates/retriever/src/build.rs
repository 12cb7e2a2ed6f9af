//! Builds an index from sources: `.lean` files, directories of them (the
//! module of a file is its path under the directory), and JSONL dumps of
//! declarations (`.jsonl` files).

use crate::declaration::{declaration_of_dump_line, declarations_of_source, module_of_path};
use crate::index::IndexWriter;
use crate::RetrieverError;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Where declarations come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A `.lean` file or a directory searched for them (hidden directories,
    /// such as `.lake`, are skipped).
    Lean(PathBuf),
    /// A JSONL file, one declaration per line.
    Dump(PathBuf),
}

impl Source {
    /// A `.jsonl` path is a dump; anything else is Lean source.
    pub fn from_path(path: PathBuf) -> Source {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("jsonl") => Source::Dump(path),
            _ => Source::Lean(path),
        }
    }
}

/// What a build did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BuildReport {
    pub declarations: u64,
    pub lean_files: u64,
    pub dump_lines: u64,
    /// Lean files that could not be read or lexed, with why; left out.
    pub skipped_files: Vec<(PathBuf, String)>,
}

/// Reads every source and writes the index at `output` (replacing it once
/// complete). A dump line that is not a declaration stops the build; a
/// Lean file that does not lex is skipped and reported.
pub fn build_index(sources: &[Source], output: &Path) -> Result<BuildReport, RetrieverError> {
    let mut writer = IndexWriter::create(output)?;
    let mut report = BuildReport::default();
    for source in sources {
        match source {
            Source::Lean(path) => add_lean_sources(&mut writer, path, &mut report)?,
            Source::Dump(path) => add_dump(&mut writer, path, &mut report)?,
        }
    }
    if report.declarations == 0 {
        return Err(RetrieverError::NoDeclarations);
    }
    writer.finish()?;
    Ok(report)
}

fn add_lean_sources(
    writer: &mut IndexWriter,
    root: &Path,
    report: &mut BuildReport,
) -> Result<(), RetrieverError> {
    let io_error = |path: &Path, source| RetrieverError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(root).map_err(|error| io_error(root, error))?;
    let files = if metadata.is_dir() {
        let mut files = Vec::new();
        collect_lean_files(root, &mut files).map_err(|error| io_error(root, error))?;
        files
    } else {
        vec![root.to_path_buf()]
    };
    for file in files {
        let relative = match metadata.is_dir() {
            true => file.strip_prefix(root).unwrap_or(&file).to_path_buf(),
            false => PathBuf::from(file.file_name().unwrap_or_default()),
        };
        let module = module_of_path(&relative);
        let source = match std::fs::read_to_string(&file) {
            Ok(source) => source,
            Err(error) => {
                report.skipped_files.push((file, error.to_string()));
                continue;
            }
        };
        let declarations = match declarations_of_source(&source, &module) {
            Ok(declarations) => declarations,
            Err(error) => {
                report.skipped_files.push((file, error.to_string()));
                continue;
            }
        };
        report.lean_files += 1;
        for declaration in &declarations {
            writer.add(declaration)?;
            report.declarations += 1;
        }
    }
    Ok(())
}

/// The `.lean` files under `directory`, sorted, skipping hidden entries and
/// symbolic links.
fn collect_lean_files(directory: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<std::fs::DirEntry> =
        std::fs::read_dir(directory)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type()?;
        if entry.file_name().to_string_lossy().starts_with('.') || file_type.is_symlink() {
            continue;
        }
        if file_type.is_dir() {
            collect_lean_files(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "lean")
        {
            files.push(path);
        }
    }
    Ok(())
}

fn add_dump(
    writer: &mut IndexWriter,
    path: &Path,
    report: &mut BuildReport,
) -> Result<(), RetrieverError> {
    let io_error = |source| RetrieverError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let declaration =
            declaration_of_dump_line(&line).map_err(|source| RetrieverError::DumpLine {
                path: path.to_path_buf(),
                line: index + 1,
                source,
            })?;
        writer.add(&declaration)?;
        report.dump_lines += 1;
        report.declarations += 1;
    }
    Ok(())
}

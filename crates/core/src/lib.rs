//! The domain types of Lean Farm: what a check asks for, the policy a verdict
//! is judged by, and the verdict itself.
//!
//! This crate does no I/O and knows nothing about Lean processes, HTTP or
//! databases. Every other crate speaks in these types.

pub mod policy;
pub mod verdict;

pub use policy::{PinnedStatement, Policy, StatementError};
pub use verdict::{
    CheckStatus, ReasonCode, Severity, Timings, Verdict, VerdictMessage, VerdictReason,
    VerdictSorry,
};

use serde::{Deserialize, Serialize};

/// One snippet of Lean source to check, with the options that shape its verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Caller's own identifier for the snippet (Kimina's `id`/`custom_id`).
    #[serde(default)]
    pub custom_id: Option<String>,
    /// The full Lean source, import header included.
    pub code: String,
    /// Wall-clock budget for checking the body, in seconds.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: f64,
    /// What the verdict demands beyond "Lean reported no error".
    #[serde(default)]
    pub policy: Policy,
    /// Return Lean's info tree (passed through to the REPL).
    #[serde(default)]
    pub infotree: Option<String>,
}

pub fn default_timeout_seconds() -> f64 {
    60.0
}

/// A snippet split into its import header and its body.
///
/// Lean only accepts `import` lines at the top of a file, so the header is the
/// leading run of `import` lines (with blank lines and comments between them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitSnippet<'a> {
    /// The import lines, normalised (one `import X` per line, in order, deduplicated).
    pub header: String,
    /// The rest of the snippet, starting at `body_line_offset`.
    pub body: &'a str,
    /// How many lines of the original snippet precede the body; positions that
    /// Lean reports against the body are shifted by this much.
    pub body_line_offset: u32,
}

/// Split a snippet into its import header and body.
pub fn split_header(code: &str) -> SplitSnippet<'_> {
    let mut imports: Vec<&str> = Vec::new();
    // The header ends after the last `import` line; comments that follow it
    // belong to the body (they may carry meaning for tools reading the body).
    let mut consumed_bytes = 0usize;
    let mut consumed_lines = 0u32;
    let mut scanned_bytes = 0usize;
    let mut in_block_comment = false;
    for (scanned_lines, line) in (0u32..).zip(code.split_inclusive('\n')) {
        let trimmed = line.trim();
        if in_block_comment {
            if trimmed.contains("-/") {
                in_block_comment = false;
            }
        } else if trimmed.is_empty() || trimmed.starts_with("--") {
            // blank line or line comment inside the header
        } else if let Some(comment) = trimmed.strip_prefix("/-") {
            if !comment.contains("-/") {
                in_block_comment = true;
            }
        } else if let Some(rest) = trimmed.strip_prefix("import ") {
            for module in rest.split_whitespace() {
                if module.starts_with("--") {
                    break;
                }
                if !imports.contains(&module) {
                    imports.push(module);
                }
            }
            consumed_bytes = scanned_bytes + line.len();
            consumed_lines = scanned_lines + 1;
        } else {
            break;
        }
        scanned_bytes += line.len();
    }
    let header = imports
        .iter()
        .map(|module| format!("import {module}"))
        .collect::<Vec<_>>()
        .join("\n");
    SplitSnippet {
        header,
        body: &code[consumed_bytes..],
        body_line_offset: consumed_lines,
    }
}

/// The header a REPL for this snippet loads, which is also the key of the
/// warm REPLs that can run it: the snippet's imports, plus `import Lean` when
/// they do not already bring Lean's meta API, which the farm's audit needs.
pub fn header_key(code: &str) -> String {
    repl_header(&split_header(code).header)
}

/// `header_key` for a header already split off.
pub fn repl_header(snippet_header: &str) -> String {
    let brings_lean = snippet_header.lines().any(|line| {
        matches!(
            line.trim_start_matches("import ").trim(),
            "Lean" | "Mathlib"
        )
    });
    if brings_lean {
        return snippet_header.to_string();
    }
    if snippet_header.is_empty() {
        "import Lean".to_string()
    } else {
        format!("import Lean\n{snippet_header}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_key_adds_lean_where_the_audit_needs_it() {
        assert_eq!(header_key("theorem t : True := trivial"), "import Lean");
        assert_eq!(
            header_key("import Mathlib\ntheorem t : True := trivial"),
            "import Mathlib"
        );
        assert_eq!(
            header_key("import Aesop\ndef x := 1"),
            "import Lean\nimport Aesop"
        );
    }

    #[test]
    fn header_is_the_leading_imports() {
        let code = "import Mathlib\nimport Aesop\n\ntheorem t : 1 = 1 := rfl\n";
        let split = split_header(code);
        assert_eq!(split.header, "import Mathlib\nimport Aesop");
        assert_eq!(split.body, "\ntheorem t : 1 = 1 := rfl\n");
        assert_eq!(split.body_line_offset, 2);
    }

    #[test]
    fn comments_between_imports_stay_in_the_header() {
        let code = "-- a proof\n/- block\n comment -/\nimport Mathlib\nimport Mathlib\ndef x := 1";
        let split = split_header(code);
        assert_eq!(split.header, "import Mathlib");
        assert_eq!(split.body, "def x := 1");
        assert_eq!(split.body_line_offset, 5);
    }

    #[test]
    fn comments_after_the_last_import_belong_to_the_body() {
        let code = "import Mathlib\n-- sim: crash\ntheorem t : True := trivial";
        let split = split_header(code);
        assert_eq!(split.header, "import Mathlib");
        assert_eq!(split.body, "-- sim: crash\ntheorem t : True := trivial");
        assert_eq!(split.body_line_offset, 1);
        let split = split_header("-- sim: crash\ntheorem t : True := trivial");
        assert_eq!(split.header, "");
        assert_eq!(split.body_line_offset, 0);
    }

    #[test]
    fn no_header() {
        let split = split_header("theorem t : True := trivial");
        assert_eq!(split.header, "");
        assert_eq!(split.body_line_offset, 0);
    }
}

//! The domain types of Lean Farm: what a check asks for, the policy a verdict
//! is judged by, and the verdict itself.
//!
//! This crate does no I/O and knows nothing about Lean processes, HTTP or
//! databases. Every other crate speaks in these types.

pub mod policy;
pub mod verdict;

pub use policy::{PinnedStatement, Policy, ReplayMode, StatementError};
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
    /// The W3C `traceparent` of the submission's trace, set by the server
    /// when it traces (never taken from a client), so that the worker that
    /// checks the job continues the same trace. It never changes a verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<String>,
}

pub fn default_timeout_seconds() -> f64 {
    60.0
}

/// A snippet split into its import header and its body.
///
/// The header is read as Lean's header parser reads it (`lean_syntax::header`):
/// a run of `import Module` commands with only whitespace and comments
/// between them. Lean reads `/- ... -/` as whitespace, so an import line
/// could carry a command after a comment; the split never lets anything but
/// module names into the header, and reports such a header as a problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitSnippet<'a> {
    /// The import lines, normalised (one `import X` per line, in order,
    /// deduplicated).
    pub header: String,
    /// The rest of the snippet from the start of the line the body begins
    /// on; what the header took of that line is blanked, so Lean's positions
    /// in the body are those of the snippet, shifted by `body_line_offset`.
    pub body: std::borrow::Cow<'a, str>,
    /// How many lines of the original snippet precede the body; positions that
    /// Lean reports against the body are shifted by this much.
    pub body_line_offset: u32,
    /// Why the header is not only imports, when it is not.
    pub header_problem: Option<String>,
}

/// Split a snippet into its import header and body.
pub fn split_header(code: &str) -> SplitSnippet<'_> {
    let whole_body = |problem: String| SplitSnippet {
        header: String::new(),
        body: code.into(),
        body_line_offset: 0,
        header_problem: Some(problem),
    };
    let header = match lean_syntax::header(code) {
        Ok(header) => header,
        Err(error) => return whole_body(error.to_string()),
    };
    let Some(last) = header.imports.last() else {
        return SplitSnippet {
            header: String::new(),
            body: code.into(),
            body_line_offset: 0,
            header_problem: None,
        };
    };
    if let Some(import) = header
        .imports
        .iter()
        .find(|import| import.is_public || import.is_meta || import.imports_all)
    {
        return whole_body(format!(
            "line {}: only plain `import Module` lines are accepted, not `{}`",
            import.start.line,
            import.to_lean_line()
        ));
    }
    // The body starts on a line of its own: the first token after the
    // header must not share the last import's line.
    let import_line = last.start.line;
    let body_tokens = lean_syntax::Lexer::starting_at(code, header.body_start)
        .and_then(|mut lexer| lexer.next_token().ok().flatten());
    if let Some(token) = body_tokens {
        if token.start.line == import_line {
            return whole_body(format!(
                "line {import_line}: an import line may hold only module names and comments, but `{}` follows the import",
                excerpt(token.text(code))
            ));
        }
    }
    // The body keeps its line: the header's part of it becomes spaces (one
    // per character, as Lean counts columns).
    let line_start = code[..header.body_start].rfind('\n').map_or(0, |i| i + 1);
    let blank = code[line_start..header.body_start].chars().count();
    let body_line_offset = code[..line_start].matches('\n').count() as u32;
    let body = if blank == 0 {
        std::borrow::Cow::Borrowed(&code[line_start..])
    } else {
        std::borrow::Cow::Owned(" ".repeat(blank) + &code[header.body_start..])
    };
    let mut modules: Vec<&str> = Vec::new();
    for import in &header.imports {
        if !modules.contains(&import.module.as_str()) {
            modules.push(&import.module);
        }
    }
    SplitSnippet {
        header: modules
            .iter()
            .map(|module| format!("import {module}"))
            .collect::<Vec<_>>()
            .join("\n"),
        body,
        body_line_offset,
        header_problem: None,
    }
}

fn excerpt(text: &str) -> String {
    let mut short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
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
    fn a_command_after_an_import_on_its_line_is_a_header_problem() {
        for code in [
            "import Mathlib /- hidden -/ set_option debug.skipKernelTC true\ntheorem t : True := trivial",
            "import Mathlib; axiom cheat : False",
            "import Lean elab \"#x\" : command => pure ()",
        ] {
            let split = split_header(code);
            assert!(split.header_problem.is_some(), "{code}");
            assert_eq!(split.header, "", "nothing of it reaches a REPL: {code}");
        }
        let split = split_header("import all Mathlib\ntheorem t : True := trivial");
        assert!(split.header_problem.is_some());
    }

    #[test]
    fn a_block_comment_after_an_import_keeps_the_body_in_place() {
        let split = split_header("import Mathlib /-\n-/ axiom cheat : False");
        assert_eq!(split.header_problem, None);
        assert_eq!(split.header, "import Mathlib");
        assert_eq!(
            split.body,
            format!("{} /-\n-/ axiom cheat : False", " ".repeat(14))
        );
        assert_eq!(split.body_line_offset, 0);
    }

    #[test]
    fn a_comment_trailing_an_import_is_fine() {
        let split = split_header("import Mathlib -- for ring\ntheorem t : True := trivial");
        assert_eq!(split.header_problem, None);
        assert_eq!(split.header, "import Mathlib");
        assert_eq!(
            split.body,
            format!(
                "{} -- for ring\ntheorem t : True := trivial",
                " ".repeat(14)
            )
        );
        assert_eq!(split.body_line_offset, 0);
    }

    #[test]
    fn no_header() {
        let split = split_header("theorem t : True := trivial");
        assert_eq!(split.header, "");
        assert_eq!(split.body_line_offset, 0);
    }
}

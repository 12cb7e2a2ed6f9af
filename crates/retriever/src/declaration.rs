//! A Lean declaration as the index holds it, and the two ways to get them:
//! from `.lean` sources (read with `lean-syntax`'s lexer and command
//! splitter) and from a JSONL dump that a real toolchain writes.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The most bytes of a signature or docstring the index keeps.
pub const MAX_TEXT_BYTES: usize = 4096;

/// One declaration: what a premise is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Declaration {
    /// The full name, namespaces included: `Nat.add_comm`.
    pub name: String,
    /// `theorem`, `def`, `abbrev`, `instance`, `axiom`, `opaque`,
    /// `structure`, `class`, `inductive`, ... as the source or dump says.
    pub kind: String,
    /// The type signature: binders and type, `(n m : ℕ) : n + m = m + n`.
    #[serde(alias = "type")]
    pub signature: String,
    /// The docstring, without its `/--` and `-/`; empty when there is none.
    #[serde(default, alias = "doc")]
    pub docstring: String,
    /// The module that declares it: `Mathlib.Algebra.Group.Basic`.
    #[serde(default)]
    pub module: String,
}

/// Keywords that declare a named constant.
const DECLARATION_KEYWORDS: &[&str] = &[
    "theorem",
    "lemma",
    "def",
    "abbrev",
    "instance",
    "axiom",
    "opaque",
    "structure",
    "class",
    "inductive",
];

/// Whitespace runs collapsed to one space, cut to [`MAX_TEXT_BYTES`] on a
/// character boundary.
pub fn collapse_whitespace(text: &str) -> String {
    let mut collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !collapsed.is_char_boundary(end) {
            end -= 1;
        }
        collapsed.truncate(end);
    }
    collapsed
}

/// The module name of a file at `relative_path` under a source root:
/// `Mathlib/Algebra/Order.lean` → `Mathlib.Algebra.Order`.
pub fn module_of_path(relative_path: &std::path::Path) -> String {
    let without_extension = relative_path.with_extension("");
    without_extension
        .components()
        .map(|component| component.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// The text of a doc comment token, without `/--`, `-/` and outer blanks.
fn docstring_text(doc_comment: &str) -> String {
    let inner = doc_comment
        .strip_prefix("/--")
        .unwrap_or(doc_comment)
        .strip_suffix("-/")
        .unwrap_or(doc_comment);
    collapse_whitespace(inner)
}

/// The declarations of one Lean source, in order. `module` names it.
/// Namespaces (`namespace`/`end`) prefix names; `private` declarations,
/// anonymous instances and `example`s are left out (no other file can use
/// them by name). A source Lean's lexer rejects is an error.
pub fn declarations_of_source(
    source: &str,
    module: &str,
) -> Result<Vec<Declaration>, lean_syntax::LexError> {
    let body = lean_syntax::body(source)?;
    let tokens = &body.tokens;
    let text = |index: usize| tokens[index].text(source);
    let mut scopes: Vec<(bool, String)> = Vec::new();
    let mut declarations = Vec::new();
    for command in &body.commands {
        let head = command.innermost();
        let keyword = head.keyword.as_str();
        let end = command.token_range.end;
        let after_keyword = head.keyword_token + 1;
        match keyword {
            "namespace" if after_keyword < end => {
                scopes.push((true, text(after_keyword).to_string()));
                continue;
            }
            "section" | "namespace" => {
                scopes.push((false, String::new()));
                continue;
            }
            "end" => {
                scopes.pop();
                continue;
            }
            _ => {}
        }
        if !DECLARATION_KEYWORDS.contains(&keyword) || head.modifiers.iter().any(|m| m == "private")
        {
            continue;
        }
        let name_token = match keyword {
            // `class inductive Foo`, `class abbrev Foo`.
            "class"
                if after_keyword < end && matches!(text(after_keyword), "inductive" | "abbrev") =>
            {
                after_keyword + 1
            }
            _ => after_keyword,
        };
        if name_token >= end || tokens[name_token].kind != lean_syntax::TokenKind::Identifier {
            continue;
        }
        let local_name = text(name_token);
        let constructors_follow = keyword == "inductive" || text(after_keyword) == "inductive";
        let signature_tokens =
            signature_range(source, tokens, name_token + 1..end, constructors_follow);
        let signature = match (signature_tokens.start, signature_tokens.end) {
            (start, stop) if start < stop => {
                collapse_whitespace(&source[tokens[start].span.start..tokens[stop - 1].span.end])
            }
            _ => String::new(),
        };
        let docstring = head
            .doc_comment
            .clone()
            .map(|range| docstring_text(&source[range]))
            .unwrap_or_default();
        let kind = match keyword {
            "lemma" => "theorem",
            other => other,
        };
        declarations.push(Declaration {
            name: qualified_name(&scopes, local_name),
            kind: kind.to_string(),
            signature,
            docstring,
            module: module.to_string(),
        });
    }
    Ok(declarations)
}

/// The name under the open namespaces; `_root_.x` is `x`.
fn qualified_name(scopes: &[(bool, String)], local_name: &str) -> String {
    if let Some(root_name) = local_name.strip_prefix("_root_.") {
        return root_name.to_string();
    }
    let mut parts: Vec<&str> = scopes
        .iter()
        .filter(|(is_namespace, _)| *is_namespace)
        .map(|(_, name)| name.as_str())
        .collect();
    parts.push(local_name);
    parts.join(".")
}

/// The tokens of a signature: from after the name to the first `:=` or
/// `where` outside brackets (or the command's end); for an inductive type,
/// also to its first constructor's `|` (elsewhere `|` is an absolute value).
fn signature_range(
    source: &str,
    tokens: &[lean_syntax::Token],
    range: Range<usize>,
    constructors_follow: bool,
) -> Range<usize> {
    let mut depth: usize = 0;
    for index in range.clone() {
        let token = &tokens[index];
        let text = token.text(source);
        if token.kind == lean_syntax::TokenKind::Symbol {
            match text {
                "(" | "[" | "{" | "⦃" | "⟨" | "@[" | "#[" => depth += 1,
                ")" | "]" | "}" | "⦄" | "⟩" => depth = depth.saturating_sub(1),
                ":=" if depth == 0 => return range.start..index,
                "|" if depth == 0 && constructors_follow => return range.start..index,
                _ => {}
            }
        } else if depth == 0 && token.is_word(source, "where") {
            return range.start..index;
        }
    }
    range
}

/// Errors of a JSONL dump line.
#[derive(Debug, thiserror::Error)]
pub enum DumpLineError {
    #[error("not a declaration: {0}")]
    NotADeclaration(#[source] serde_json::Error),
    #[error("a declaration needs a non-empty `{0}`")]
    EmptyField(&'static str),
}

/// One line of a declarations dump:
/// `{"name","kind","signature"|"type","docstring"|"doc","module"}`.
pub fn declaration_of_dump_line(line: &str) -> Result<Declaration, DumpLineError> {
    let mut declaration: Declaration =
        serde_json::from_str(line).map_err(DumpLineError::NotADeclaration)?;
    if declaration.name.trim().is_empty() {
        return Err(DumpLineError::EmptyField("name"));
    }
    if declaration.kind.trim().is_empty() {
        return Err(DumpLineError::EmptyField("kind"));
    }
    declaration.signature = collapse_whitespace(&declaration.signature);
    declaration.docstring = collapse_whitespace(&declaration.docstring);
    Ok(declaration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_carry_namespaces_signatures_and_docstrings() {
        let source = r#"
import Mathlib

namespace Nat

/-- Addition is commutative. -/
@[simp] protected theorem add_comm' (n m : ℕ) :
    n + m = m + n := by
  omega

private lemma helper : True := trivial

section Basic
def double (n : ℕ) : ℕ := 2 * n
end Basic

end Nat

structure Point where
  x : ℕ
  y : ℕ

instance : Inhabited Point := ⟨⟨0, 0⟩⟩
theorem abs_add (a b : ℝ) : |a + b| ≤ |a| + |b| := abs_add a b
inductive Color : Type
  | red | green
theorem _root_.top_level {α : Type} (a : α) : a = a := rfl
example : 1 = 1 := rfl
"#;
        let declarations = declarations_of_source(source, "Demo.Basic").unwrap();
        let names: Vec<&str> = declarations.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Nat.add_comm'",
                "Nat.double",
                "Point",
                "abs_add",
                "Color",
                "top_level"
            ]
        );
        let add_comm = &declarations[0];
        assert_eq!(add_comm.kind, "theorem");
        assert_eq!(add_comm.signature, "(n m : ℕ) : n + m = m + n");
        assert_eq!(add_comm.docstring, "Addition is commutative.");
        assert_eq!(add_comm.module, "Demo.Basic");
        assert_eq!(declarations[1].signature, "(n : ℕ) : ℕ");
        assert_eq!(declarations[2].kind, "structure");
        assert_eq!(declarations[2].signature, "");
        assert_eq!(declarations[3].signature, "(a b : ℝ) : |a + b| ≤ |a| + |b|");
        assert_eq!(declarations[4].signature, ": Type");
        assert_eq!(declarations[5].signature, "{α : Type} (a : α) : a = a");
    }

    #[test]
    fn a_module_is_named_by_its_path() {
        assert_eq!(
            module_of_path(std::path::Path::new("Mathlib/Algebra/Order.lean")),
            "Mathlib.Algebra.Order"
        );
    }

    #[test]
    fn dump_lines_accept_the_toolchains_field_names_and_refuse_empty_names() {
        let declaration = declaration_of_dump_line(
            r#"{"name":"Nat.succ_le_iff","kind":"theorem","type":"∀ {m n : ℕ},\n m.succ ≤ n ↔ m < n","doc":"","module":"Init.Data.Nat"}"#,
        )
        .unwrap();
        assert_eq!(declaration.signature, "∀ {m n : ℕ}, m.succ ≤ n ↔ m < n");
        assert!(matches!(
            declaration_of_dump_line(r#"{"name":" ","kind":"def","signature":""}"#),
            Err(DumpLineError::EmptyField("name"))
        ));
        assert!(matches!(
            declaration_of_dump_line("[1]"),
            Err(DumpLineError::NotADeclaration(_))
        ));
    }
}

//! The import header of a Lean file, read as Lean's `Module.header` parser
//! reads it (`src/Lean/Parser/Module.lean` in leanprover/lean4).
//!
//! Lean's header is `many import` where `import` is
//! `atomic(optional "public" >> optional "meta" >> "import") >> optional "all" >> ident`:
//! one module per `import`, with only whitespace and comments between them.
//! The header ends at the first token that does not continue that grammar,
//! wherever it is on the line: `import A; axiom x : False` has the header
//! `import A` and a body starting at `;`, and a command written after a block
//! comment on an import line is body. This module must never count anything
//! but imports as header, and never drop a token from both header and body.
//! `module` and `prelude` are not header here: they start the body (where a
//! screen sees them as unknown commands).

use std::fmt;
use std::ops::Range;

use crate::lexer::{LexError, Lexer, Position, Token, TokenKind};

/// One `import` of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The module name as written, e.g. `Mathlib.Tactic` or `«My Lib».Basic`.
    pub module: String,
    /// The name's components with `«»` removed: `["My Lib", "Basic"]`.
    pub components: Vec<String>,
    /// `public import`.
    pub is_public: bool,
    /// `meta import`.
    pub is_meta: bool,
    /// `import all`.
    pub imports_all: bool,
    /// Byte range of the whole import, from `public`/`meta`/`import` to the name.
    pub span: Range<usize>,
    pub start: Position,
}

impl Import {
    /// The import as one line of Lean source.
    pub fn to_lean_line(&self) -> String {
        let mut line = String::new();
        if self.is_public {
            line.push_str("public ");
        }
        if self.is_meta {
            line.push_str("meta ");
        }
        line.push_str("import ");
        if self.imports_all {
            line.push_str("all ");
        }
        line.push_str(&self.module);
        line
    }
}

/// The header and where the body starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Imports in order of first appearance, without repeats (same components
    /// and modifiers).
    pub imports: Vec<Import>,
    /// Byte offset where the body starts: right after the last import's
    /// module name, or past the end of that line when only spaces follow it
    /// there; 0 without imports.
    pub body_start: usize,
    /// Lean position of `body_start`.
    pub body_start_position: Position,
    /// Lines wholly before the body (`body_start_position.line - 1`).
    pub body_line_offset: u32,
}

impl Header {
    /// The imports as Lean source, one per line.
    pub fn to_lean_source(&self) -> String {
        let lines: Vec<String> = self.imports.iter().map(Import::to_lean_line).collect();
        lines.join("\n")
    }
}

/// Why the header is not valid Lean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// `import` followed by something that is not a module name (or nothing).
    MissingModuleName {
        offset: usize,
        position: Position,
        found: Option<String>,
    },
    /// A module name with a trailing dot, `import Mathlib.`.
    TrailingDotInModuleName { offset: usize, position: Position },
    /// The header itself is not lexically valid.
    Lex(LexError),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::MissingModuleName {
                position,
                found: Some(found),
                ..
            } => write!(
                formatter,
                "expected a module name after `import` at {position}, found `{found}`"
            ),
            HeaderError::MissingModuleName {
                position,
                found: None,
                ..
            } => write!(
                formatter,
                "expected a module name after `import` at {position}, found the end of the input"
            ),
            HeaderError::TrailingDotInModuleName { position, .. } => {
                write!(formatter, "module name ends with a dot at {position}")
            }
            HeaderError::Lex(error) => write!(formatter, "in the import header: {error}"),
        }
    }
}

impl std::error::Error for HeaderError {}

impl From<LexError> for HeaderError {
    fn from(error: LexError) -> Self {
        HeaderError::Lex(error)
    }
}

/// Reads the import header of `source`. Only the header is lexed: a lexical
/// error after it is the body's (see [`crate::body`]).
pub fn header(source: &str) -> Result<Header, HeaderError> {
    let mut lexer = Lexer::new(source);
    let mut imports: Vec<Import> = Vec::new();
    let mut header_end = 0usize;
    let mut header_end_position = Position::START;
    // A lexical error after the imports is the body's to report.
    while let Ok(Some(mut token)) = lexer.next_token() {
        let import_start = token.span.start;
        let import_start_position = token.start;
        let mut is_public = false;
        let mut is_meta = false;
        if token.is_word(source, "public") {
            is_public = true;
            let Ok(Some(next)) = lexer.next_token() else {
                break;
            };
            token = next;
        }
        if token.is_word(source, "meta") {
            is_meta = true;
            let Ok(Some(next)) = lexer.next_token() else {
                break;
            };
            token = next;
        }
        if !token.is_word(source, "import") {
            break;
        }
        let after_import = (lexer.offset(), lexer.position());
        let mut module_token = next_module_token(&mut lexer, source, after_import)?;
        let mut imports_all = false;
        if module_token.is_word(source, "all") {
            // `all` is a keyword of the header's token table: `import all`
            // must be followed by the module name.
            imports_all = true;
            let after_all = (lexer.offset(), lexer.position());
            module_token = next_module_token(&mut lexer, source, after_all)?;
        }
        if module_token.kind != TokenKind::Identifier {
            return Err(HeaderError::MissingModuleName {
                offset: module_token.span.start,
                position: module_token.start,
                found: Some(module_token.text(source).to_string()),
            });
        }
        if source[module_token.span.end..].starts_with('.') {
            return Err(HeaderError::TrailingDotInModuleName {
                offset: module_token.span.end,
                position: module_token.end,
            });
        }
        let module = module_token.text(source).to_string();
        let import = Import {
            components: name_components(&module),
            module,
            is_public,
            is_meta,
            imports_all,
            span: import_start..module_token.span.end,
            start: import_start_position,
        };
        let is_repeat = imports.iter().any(|earlier| {
            earlier.components == import.components
                && earlier.is_public == import.is_public
                && earlier.is_meta == import.is_meta
                && earlier.imports_all == import.imports_all
        });
        if !is_repeat {
            imports.push(import);
        }
        header_end = module_token.span.end;
        header_end_position = module_token.end;
    }
    let (body_start, body_start_position) =
        past_blank_line_end(source, header_end, header_end_position);
    Ok(Header {
        imports,
        body_start,
        body_start_position,
        body_line_offset: body_start_position.line - 1,
    })
}

fn next_module_token(
    lexer: &mut Lexer<'_>,
    source: &str,
    after: (usize, Position),
) -> Result<Token, HeaderError> {
    match lexer.next_token()? {
        Some(token) => Ok(token),
        None => Err(HeaderError::MissingModuleName {
            offset: after.0.min(source.len()),
            position: after.1,
            found: None,
        }),
    }
}

/// When only spaces follow `offset` up to a newline, the offset after it.
fn past_blank_line_end(source: &str, offset: usize, position: Position) -> (usize, Position) {
    if offset == 0 {
        return (offset, position);
    }
    let rest = &source[offset..];
    let spaces = rest.len() - rest.trim_start_matches([' ', '\t', '\r']).len();
    if rest[spaces..].starts_with('\n') {
        let next_line = Position {
            line: position.line + 1,
            column: 0,
        };
        return (offset + spaces + 1, next_line);
    }
    (offset, position)
}

/// Splits a lexed identifier into its components, removing `«»`.
pub fn name_components(identifier: &str) -> Vec<String> {
    let mut components = Vec::new();
    let mut current = String::new();
    let mut inside_escape = false;
    for character in identifier.chars() {
        match character {
            '«' if !inside_escape => inside_escape = true,
            '»' if inside_escape => inside_escape = false,
            '.' if !inside_escape => components.push(std::mem::take(&mut current)),
            _ => current.push(character),
        }
    }
    components.push(current);
    components
}

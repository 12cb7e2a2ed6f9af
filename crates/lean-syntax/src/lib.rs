//! Lean 4's lexical grammar for screening snippets before Lean sees them.
//!
//! Three readers of Lean source, each following Lean's own parser:
//!
//! - [`lex`]: tokens with byte spans and Lean positions (line from 1, column
//!   from 0 in codepoints). Comments and whitespace are not tokens; doc
//!   comments `/-- -/` and module docs `/-! -/` are (they are tokens in Lean
//!   too). The code inside `{...}` of interpolated strings (`s!"..."`,
//!   `m!"..."`, `f!"..."`, any `ident!"..."`, `throwError "..."`) is lexed as
//!   code, and its tokens are in the list with `interpolation_depth > 0`.
//! - [`header`]: the imports before the first command.
//! - [`body`]/[`commands`] (and [`body_after_header`], which starts at the
//!   header's end and keeps whole-source positions): the commands, split by a conservative heuristic,
//!   with their modifiers, attributes, keyword, `set_option` option and value,
//!   and the chain of commands joined by ` in `; and every attribute anywhere.
//!
//! Lean functions followed (leanprover/lean4):
//! `src/Lean/Parser/Basic.lean`: `whitespace`, `finishCommentBlock`,
//! `tokenFnAux`, `identFnAux`, `isIdCont`, `nameLitAux`, `strLitFnAux`,
//! `quotedCharCoreFn`, `isQuotableCharDefault`, `stringGapFn`,
//! `charLitFnAux`, `isRawStrLitStart`, `rawStrLitFnAux`, `numberFnAux`,
//! `decimalNumberFn`, `takeDigitsFn`;
//! `src/Lean/Parser/StrInterpolation.lean`: `interpolatedStrFn`,
//! `isQuotableCharForStrInterpolant`;
//! `src/Init/Meta/Defs.lean`: `isLetterLike`, `isSubScriptAlnum`,
//! `isIdFirst`, `isIdRest`, `isIdBeginEscape`, `isIdEndEscape`;
//! `src/Lean/Parser/Module.lean`: `Module.import`, `Module.header`,
//! `parseCommand` (its error recovery is why command words split commands
//! even inside brackets). See `docs/lean-syntax.md` for what is accepted and
//! the known limits.
//!
//! This crate has no dependencies and does no I/O. It must never panic on any
//! input, never take more than linear time, and never read a construct so
//! that code Lean would see is hidden inside a string or comment here.

mod chars;
mod commands;
mod header;
mod lexer;

pub use chars::{
    is_identifier_first, is_identifier_rest, is_letter_like, is_subscript_alphanumeric,
};
pub use commands::{
    body, body_after_header, commands, Attribute, Body, Command, CommandHead, SetOption,
    COMMAND_KEYWORDS, CONTINUATION_WORDS, MODIFIERS,
};
pub use header::{header, name_components, Header, HeaderError, Import};
pub use lexer::{lex, LexError, LexErrorKind, Lexer, Position, Token, TokenKind};

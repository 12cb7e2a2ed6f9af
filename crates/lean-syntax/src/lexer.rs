//! The Lean 4 lexer: source text to tokens with byte spans and Lean positions.
//!
//! Lean has no separate lexer; its parser calls `tokenFn` and `whitespace`
//! (`src/Lean/Parser/Basic.lean` in leanprover/lean4). This module follows
//! those functions so that a token starts exactly where Lean's would:
//! `whitespace` and `finishCommentBlock` (comments, nested block comments,
//! the one character Lean skips after `/-`), `tokenFnAux` (which literal a
//! character starts), `strLitFnAux`, `quotedCharCoreFn`, `stringGapFn`,
//! `charLitFnAux`, `rawStrLitFnAux`/`isRawStrLitStart`, `numberFnAux` and
//! `takeDigitsFn`, `identFnAux`/`isIdCont`, `nameLitAux`, and
//! `interpolatedStrFn` (`src/Lean/Parser/StrInterpolation.lean`).
//!
//! What it must never do: panic, loop without consuming input, or read a
//! construct differently from Lean in a way that hides code (a comment or a
//! string that ends elsewhere than Lean ends it). When the input is not
//! lexically valid Lean the answer is a [`LexError`], never a guess.

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use crate::chars::{
    is_identifier_first, is_identifier_rest, IDENTIFIER_ESCAPE_BEGIN, IDENTIFIER_ESCAPE_END,
};

/// A position as Lean reports it: `line` counts from 1, `column` from 0 and
/// counts Unicode codepoints (not bytes, not UTF-16 units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 0 };
}

impl fmt::Display for Position {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.line, self.column)
    }
}

/// What a token is. Keywords (`theorem`, `by`, `fun`, `set_option`, ...) are
/// [`TokenKind::Identifier`]s: Lean's token table is extensible, so the
/// lexer does not decide which words are reserved; readers compare the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A possibly dotted name: `foo`, `Nat.succ`, `«weird name».x`, `h'`,
    /// `α₁`, `get!`; also every alphabetic keyword.
    Identifier,
    /// `#` immediately followed by an identifier part: `#eval`, `#print`,
    /// `#guard_msgs`.
    HashKeyword,
    /// Punctuation and operators: `:=`, `@[`, `#[`, `(`, `⟨`, `∑'`, `+`, ...
    /// Characters that no other kind accepts are one-character symbols.
    Symbol,
    /// `42`, `1_000`, `0x2A`, `0b101`, `0o17`, and field indices (`2` in `h.2`).
    Number,
    /// `1.5`, `2e10`, `1.5E-3`, `3.`.
    Scientific,
    /// A string literal `"..."` whose escapes are valid.
    String,
    /// A raw string literal `r"..."`, `r#"..."#`, `r##"..."##`.
    RawString,
    /// A piece of an interpolated string: from the opening `"` or a closing
    /// `}` to the next `{` or the closing `"`. The code between the pieces is
    /// lexed as ordinary tokens with a higher `interpolation_depth`.
    InterpolatedStringChunk,
    /// A character literal: `'a'`, `'\n'`, `'"'`, `'\''`, `'\x41'`, `'\u0041'`.
    Char,
    /// A name literal: `` `foo ``, `` `Foo.bar ``, ``` ``foo ```.
    NameLiteral,
    /// A doc comment `/-- ... -/` (a token in Lean, attached to declarations).
    DocComment,
    /// A module doc `/-! ... -/` (a command in Lean).
    ModuleDoc,
}

/// One token. `span` is a byte range into the lexed source; `start` and `end`
/// are the Lean positions of its first character and of the character after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Range<usize>,
    pub start: Position,
    pub end: Position,
    /// How many interpolated strings enclose this token (0 for ordinary code).
    pub interpolation_depth: u32,
}

impl Token {
    /// The token's text in `source` (the string it was lexed from).
    pub fn text<'source>(&self, source: &'source str) -> &'source str {
        &source[self.span.clone()]
    }

    /// Whether this token is the identifier or keyword `word` exactly.
    pub fn is_word(&self, source: &str, word: &str) -> bool {
        matches!(self.kind, TokenKind::Identifier | TokenKind::HashKeyword)
            && self.text(source) == word
    }

    /// Whether this is a plain string literal holding a `{`: it may be the
    /// argument of an interpolating syntax this lexer does not recognise
    /// (`throwErrorAt stx "..."`, `trace[cls] "..."`, a library's own), whose
    /// `{...}` Lean would elaborate as code. A screen that must not miss code
    /// refuses such strings.
    pub fn may_hide_interpolated_code(&self, source: &str) -> bool {
        self.kind == TokenKind::String && self.text(source).contains('{')
    }

    /// Whether this token is the symbol `symbol` exactly.
    pub fn is_symbol(&self, source: &str, symbol: &str) -> bool {
        self.kind == TokenKind::Symbol && self.text(source) == symbol
    }
}

/// Why the source is not lexically valid Lean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LexErrorKind {
    UnterminatedComment,
    UnterminatedString,
    UnterminatedRawString,
    UnterminatedInterpolatedString,
    UnterminatedCharacter,
    UnterminatedIdentifierEscape,
    InvalidEscape,
    InvalidHexadecimalEscape,
    StringGapWithSecondNewline,
    MissingDigits,
    MissingExponentDigits,
}

impl LexErrorKind {
    fn message(self) -> &'static str {
        match self {
            LexErrorKind::UnterminatedComment => "unterminated comment",
            LexErrorKind::UnterminatedString => "unterminated string literal",
            LexErrorKind::UnterminatedRawString => "unterminated raw string literal",
            LexErrorKind::UnterminatedInterpolatedString => "unterminated interpolated string",
            LexErrorKind::UnterminatedCharacter => "missing end of character literal",
            LexErrorKind::UnterminatedIdentifierEscape => "unterminated identifier escape",
            LexErrorKind::InvalidEscape => "invalid escape sequence",
            LexErrorKind::InvalidHexadecimalEscape => "invalid hexadecimal digit in escape",
            LexErrorKind::StringGapWithSecondNewline => {
                "unexpected additional newline in string gap"
            }
            LexErrorKind::MissingDigits => "missing digits in numeral",
            LexErrorKind::MissingExponentDigits => "missing exponent digits in scientific literal",
        }
    }
}

/// A lexical error and where it is: for an unterminated construct, where the
/// construct starts; otherwise the offending character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LexError {
    pub kind: LexErrorKind,
    /// Byte offset into the source.
    pub offset: usize,
    pub position: Position,
}

impl fmt::Display for LexError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} at {}", self.kind.message(), self.position)
    }
}

impl std::error::Error for LexError {}

/// Lexes all of `source`.
pub fn lex(source: &str) -> Result<Vec<Token>, LexError> {
    Lexer::new(source).collect()
}

/// Lean's `Char.isWhitespace`: only these four characters. Any other space
/// (for example U+00A0) is not whitespace to Lean and becomes a symbol here.
fn is_lean_whitespace(character: char) -> bool {
    matches!(character, ' ' | '\t' | '\r' | '\n')
}

/// Identifiers after which a string literal is an interpolated string even
/// without a `!`: Lean's `throwError` and `dbg_trace` syntaxes take
/// `interpolatedStr(term)`.
const INTERPOLATING_KEYWORDS: [&str; 2] = ["throwError", "dbg_trace"];

/// Multi-character symbols, matched longest first. A character that starts
/// none of them is a one-character symbol. Mathlib's tokens that end in `'`
/// (`∑'`, `∏'`, the preimage `⁻¹'`, the image `''`) are here so that the `'`
/// is not read as the start of a character literal, as Lean's token table
/// would not.
const MULTI_CHARACTER_SYMBOLS: [&str; 45] = [
    "''", "⁻¹'", "...", "..", ":=", "::", "=>", "->", "<-", "<->", "<;>", "<|>", "<|", "|>.", "|>",
    "@[", "#[", "%[", "$[", "`(", "++", "&&", "||", "==", "!=", "<=", ">=", "^^^", "&&&", "|||",
    ">>>", "<<<", ">>=", ">>", "<<", "<*>", "<*", "*>", "<$>", "∑'", "∏'", "⁻¹", "%$", "?_", "=?",
];

/// [`MULTI_CHARACTER_SYMBOLS`] by their first byte, built once.
fn symbols_starting_with(first_byte: u8) -> &'static [&'static str] {
    static BY_FIRST_BYTE: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    let table = BY_FIRST_BYTE.get_or_init(|| {
        let mut table = vec![Vec::new(); 256];
        for symbol in MULTI_CHARACTER_SYMBOLS {
            table[usize::from(symbol.as_bytes()[0])].push(symbol);
        }
        table
    });
    &table[usize::from(first_byte)]
}

#[derive(Debug, Clone, Copy)]
struct OpenInterpolation {
    /// `{`s opened inside the interpolated code and not yet closed.
    nested_braces: usize,
    string_start: usize,
    string_start_position: Position,
}

#[derive(Debug, Clone, Copy)]
struct PreviousToken {
    end: usize,
    opens_interpolation: bool,
    is_dot: bool,
}

/// A lexer over one source text; an iterator of tokens that stops after the
/// first error.
#[derive(Debug, Clone)]
pub struct Lexer<'source> {
    source: &'source str,
    offset: usize,
    position: Position,
    interpolations: Vec<OpenInterpolation>,
    previous: Option<PreviousToken>,
    finished: bool,
}

impl<'source> Lexer<'source> {
    pub fn new(source: &'source str) -> Self {
        Lexer {
            source,
            offset: 0,
            position: Position::START,
            interpolations: Vec::new(),
            previous: None,
            finished: false,
        }
    }

    /// A lexer that starts at byte `offset` of `source` (for example a
    /// header's `body_start`), with Lean positions still counted from the
    /// start of `source`. `None` when `offset` is not a character boundary.
    pub fn starting_at(source: &'source str, offset: usize) -> Option<Self> {
        if !source.is_char_boundary(offset) {
            return None;
        }
        let before = &source[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let mut lexer = Lexer::new(source);
        lexer.offset = offset;
        lexer.position = Position {
            line: before.matches('\n').count() as u32 + 1,
            column: source[line_start..offset].chars().count() as u32,
        };
        Some(lexer)
    }

    /// Byte offset of the next character not yet consumed.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Lean position of the next character not yet consumed.
    pub fn position(&self) -> Position {
        self.position
    }

    fn peek(&self) -> Option<char> {
        match self.source.as_bytes().get(self.offset) {
            None => None,
            Some(byte) if byte.is_ascii() => Some(*byte as char),
            Some(_) => self.source[self.offset..].chars().next(),
        }
    }

    fn peek_nth(&self, skip: usize) -> Option<char> {
        self.source[self.offset..].chars().nth(skip)
    }

    fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.offset += character.len_utf8();
        if character == '\n' {
            self.position.line += 1;
            self.position.column = 0;
        } else {
            self.position.column += 1;
        }
        Some(character)
    }

    fn error(&self, kind: LexErrorKind, offset: usize, position: Position) -> LexError {
        LexError {
            kind,
            offset,
            position,
        }
    }

    fn error_here(&self, kind: LexErrorKind) -> LexError {
        self.error(kind, self.offset, self.position)
    }

    /// Lean's `whitespace`: spaces, line comments and (nested) block comments,
    /// stopping before a doc comment `/--` or module doc `/-!`, which are tokens.
    /// Tabs and carriage returns are skipped here although Lean reports them
    /// as errors; an error there cannot make Lean read a token differently.
    pub fn skip_whitespace_and_comments(&mut self) -> Result<(), LexError> {
        loop {
            match (self.peek(), self.peek_nth(1)) {
                (Some(character), _) if is_lean_whitespace(character) => {
                    self.bump();
                }
                (Some('-'), Some('-')) => {
                    while let Some(character) = self.peek() {
                        if character == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                (Some('/'), Some('-')) => {
                    if matches!(self.peek_nth(2), Some('-') | Some('!')) {
                        return Ok(());
                    }
                    let start = self.offset;
                    let start_position = self.position;
                    self.bump();
                    self.bump();
                    // Lean's `whitespace` moves past the character after `/-`
                    // before it starts counting nesting (`s.next input i`).
                    if self.bump().is_none() {
                        return Err(self.error(
                            LexErrorKind::UnterminatedComment,
                            start,
                            start_position,
                        ));
                    }
                    self.finish_comment_block(start, start_position)?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// Lean's `finishCommentBlock` with nesting 1: consumes through the `-/`
    /// that closes the comment, counting nested `/-`.
    fn finish_comment_block(
        &mut self,
        start: usize,
        start_position: Position,
    ) -> Result<(), LexError> {
        let mut nesting = 1usize;
        let unterminated = self.error(LexErrorKind::UnterminatedComment, start, start_position);
        loop {
            match self.bump() {
                None => return Err(unterminated),
                Some('-') => match self.peek() {
                    None => return Err(unterminated),
                    Some('/') => {
                        self.bump();
                        nesting -= 1;
                        if nesting == 0 {
                            return Ok(());
                        }
                    }
                    Some(_) => {}
                },
                Some('/') => match self.peek() {
                    None => return Err(unterminated),
                    Some('-') => {
                        self.bump();
                        nesting += 1;
                    }
                    Some(_) => {}
                },
                Some(_) => {}
            }
        }
    }

    /// The next token, `Ok(None)` at the end of the source.
    pub fn next_token(&mut self) -> Result<Option<Token>, LexError> {
        self.skip_whitespace_and_comments()?;
        let start = self.offset;
        let start_position = self.position;
        let Some(first) = self.peek() else {
            if let Some(open) = self.interpolations.last() {
                return Err(self.error(
                    LexErrorKind::UnterminatedInterpolatedString,
                    open.string_start,
                    open.string_start_position,
                ));
            }
            return Ok(None);
        };
        let mut interpolation_depth = self.interpolations.len() as u32;
        let second = self.peek_nth(1);
        let kind = match first {
            '}' if self
                .interpolations
                .last()
                .is_some_and(|open| open.nested_braces == 0) =>
            {
                let open = self.interpolations.pop().unwrap_or(OpenInterpolation {
                    nested_braces: 0,
                    string_start: start,
                    string_start_position: start_position,
                });
                interpolation_depth -= 1;
                self.bump();
                self.interpolated_chunk(open.string_start, open.string_start_position)?
            }
            '"' => {
                self.bump();
                if self
                    .previous
                    .is_some_and(|previous| previous.opens_interpolation)
                {
                    self.interpolated_chunk(start, start_position)?
                } else {
                    self.string_body(start, start_position)?;
                    TokenKind::String
                }
            }
            '\'' if second != Some('\'') => {
                self.bump();
                self.character_body(start, start_position)?;
                TokenKind::Char
            }
            '0'..='9' => self.number()?,
            '`' if second.is_some_and(starts_identifier_part) => {
                self.bump();
                self.identifier_parts(start, start_position)?;
                TokenKind::NameLiteral
            }
            '`' if second == Some('`') && self.peek_nth(2).is_some_and(starts_identifier_part) => {
                self.bump();
                self.bump();
                self.identifier_parts(start, start_position)?;
                TokenKind::NameLiteral
            }
            'r' if self.is_raw_string_start() => {
                self.bump();
                self.raw_string_body(start, start_position)?;
                TokenKind::RawString
            }
            '#' if second.is_some_and(is_identifier_first) => {
                self.bump();
                while self.peek().is_some_and(is_identifier_rest) {
                    self.bump();
                }
                TokenKind::HashKeyword
            }
            '/' if second == Some('-') && matches!(self.peek_nth(2), Some('-') | Some('!')) => {
                self.bump();
                self.bump();
                let kind = if self.bump() == Some('!') {
                    TokenKind::ModuleDoc
                } else {
                    TokenKind::DocComment
                };
                self.finish_comment_block(start, start_position)?;
                kind
            }
            character if starts_identifier_part(character) => {
                self.identifier_parts(start, start_position)?;
                TokenKind::Identifier
            }
            _ => {
                self.symbol();
                TokenKind::Symbol
            }
        };
        let span = start..self.offset;
        let text = &self.source[span.clone()];
        if kind == TokenKind::Symbol {
            if let Some(open) = self.interpolations.last_mut() {
                if text == "{" {
                    open.nested_braces += 1;
                } else if text == "}" {
                    open.nested_braces = open.nested_braces.saturating_sub(1);
                }
            }
        }
        self.previous = Some(PreviousToken {
            end: self.offset,
            opens_interpolation: kind == TokenKind::Identifier
                && (text.ends_with('!') || INTERPOLATING_KEYWORDS.contains(&text)),
            is_dot: kind == TokenKind::Symbol && text == ".",
        });
        Ok(Some(Token {
            kind,
            span,
            start: start_position,
            end: self.position,
            interpolation_depth,
        }))
    }

    /// After the opening `"` or a closing `}` of an interpolated string: up to
    /// and including the next `{` (whose code the following tokens are) or
    /// the closing `"`. Follows `interpolatedStrFn`, where `\{` is an escape.
    fn interpolated_chunk(
        &mut self,
        string_start: usize,
        string_start_position: Position,
    ) -> Result<TokenKind, LexError> {
        let unterminated = self.error(
            LexErrorKind::UnterminatedInterpolatedString,
            string_start,
            string_start_position,
        );
        loop {
            match self.bump() {
                None => return Err(unterminated),
                Some('"') => return Ok(TokenKind::InterpolatedStringChunk),
                Some('\\') => self.escape(true, true, unterminated)?,
                Some('{') => {
                    self.interpolations.push(OpenInterpolation {
                        nested_braces: 0,
                        string_start,
                        string_start_position,
                    });
                    return Ok(TokenKind::InterpolatedStringChunk);
                }
                Some(_) => {}
            }
        }
    }

    /// Lean's `strLitFnAux`, after the opening `"`.
    fn string_body(&mut self, start: usize, start_position: Position) -> Result<(), LexError> {
        let unterminated = self.error(LexErrorKind::UnterminatedString, start, start_position);
        loop {
            match self.bump() {
                None => return Err(unterminated),
                Some('"') => return Ok(()),
                Some('\\') => self.escape(true, false, unterminated)?,
                Some(_) => {}
            }
        }
    }

    /// Lean's `quotedCharCoreFn`, after the `\`: `\\ \" \' \r \n \t`, `\xHH`,
    /// `\uHHHH` (exactly four hexadecimal digits; Lean has no `\u{...}`), in
    /// strings the gap `\` newline spaces, and in interpolated strings `\{`.
    fn escape(
        &mut self,
        in_string: bool,
        in_interpolated_string: bool,
        unterminated: LexError,
    ) -> Result<(), LexError> {
        let backslash_offset = self.offset - 1;
        let backslash_position = Position {
            line: self.position.line,
            column: self.position.column.saturating_sub(1),
        };
        let Some(character) = self.peek() else {
            return Err(unterminated);
        };
        match character {
            '\\' | '"' | '\'' | 'r' | 'n' | 't' => {
                self.bump();
                Ok(())
            }
            '{' if in_interpolated_string => {
                self.bump();
                Ok(())
            }
            'x' => {
                self.bump();
                self.hexadecimal_digits(2, unterminated)
            }
            'u' => {
                self.bump();
                self.hexadecimal_digits(4, unterminated)
            }
            '\n' if in_string => self.string_gap(),
            _ => Err(self.error(
                LexErrorKind::InvalidEscape,
                backslash_offset,
                backslash_position,
            )),
        }
    }

    fn hexadecimal_digits(&mut self, count: usize, unterminated: LexError) -> Result<(), LexError> {
        for _ in 0..count {
            match self.peek() {
                None => return Err(unterminated),
                Some(digit) if digit.is_ascii_hexdigit() => {
                    self.bump();
                }
                Some(_) => return Err(self.error_here(LexErrorKind::InvalidHexadecimalEscape)),
            }
        }
        Ok(())
    }

    /// Lean's `stringGapFn`, at the newline after `\`: the newline, then
    /// spaces, but no second newline. (Lean's "expecting newline" case cannot
    /// arise: a gap is only entered at a newline.)
    fn string_gap(&mut self) -> Result<(), LexError> {
        self.bump();
        loop {
            match self.peek() {
                Some('\n') => return Err(self.error_here(LexErrorKind::StringGapWithSecondNewline)),
                Some(character) if is_lean_whitespace(character) => {
                    self.bump();
                }
                _ => return Ok(()),
            }
        }
    }

    /// Lean's `charLitFnAux`, after the opening `'`.
    fn character_body(&mut self, start: usize, start_position: Position) -> Result<(), LexError> {
        let unterminated = self.error(LexErrorKind::UnterminatedCharacter, start, start_position);
        match self.bump() {
            None => return Err(unterminated),
            Some('\\') => self.escape(false, false, unterminated)?,
            Some(_) => {}
        }
        if self.peek() == Some('\'') {
            self.bump();
            Ok(())
        } else {
            Err(unterminated)
        }
    }

    /// Lean's `isRawStrLitStart`, at the `r`: `#`s then `"`.
    fn is_raw_string_start(&self) -> bool {
        let after_r = &self.source.as_bytes()[self.offset + 1..];
        let hashes = after_r.iter().take_while(|byte| **byte == b'#').count();
        after_r.get(hashes) == Some(&b'"')
    }

    /// Lean's `rawStrLitFnAux`, after the `r`.
    fn raw_string_body(&mut self, start: usize, start_position: Position) -> Result<(), LexError> {
        let unterminated = self.error(LexErrorKind::UnterminatedRawString, start, start_position);
        let mut hashes = 0usize;
        while self.peek() == Some('#') {
            self.bump();
            hashes += 1;
        }
        if self.bump() != Some('"') {
            return Err(unterminated);
        }
        loop {
            match self.bump() {
                None => return Err(unterminated),
                Some('"') => {
                    let mut closing = 0usize;
                    loop {
                        if closing == hashes {
                            return Ok(());
                        }
                        match self.peek() {
                            Some('#') => {
                                self.bump();
                                closing += 1;
                            }
                            Some('"') => {
                                self.bump();
                                closing = 0;
                            }
                            Some(_) => break,
                            None => return Err(unterminated),
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// Lean's `numberFnAux`; a field index (`2` in `h.2`) is digits only.
    fn number(&mut self) -> Result<TokenKind, LexError> {
        let start = self.offset;
        if self
            .previous
            .is_some_and(|previous| previous.is_dot && previous.end == start)
        {
            while self.peek().is_some_and(|digit| digit.is_ascii_digit()) {
                self.bump();
            }
            return Ok(TokenKind::Number);
        }
        let first = self.bump();
        if first == Some('0') {
            let base_digit: Option<fn(char) -> bool> = match self.peek() {
                Some('b') | Some('B') => Some(|digit| matches!(digit, '0' | '1')),
                Some('o') | Some('O') => Some(|digit| matches!(digit, '0'..='7')),
                Some('x') | Some('X') => Some(|digit: char| digit.is_ascii_hexdigit()),
                _ => None,
            };
            if let Some(is_digit) = base_digit {
                self.bump();
                self.take_digits(is_digit, true)?;
                return Ok(TokenKind::Number);
            }
        }
        self.take_digits(|digit| digit.is_ascii_digit(), false)?;
        if !matches!(self.peek(), Some('.') | Some('e') | Some('E')) {
            return Ok(TokenKind::Number);
        }
        if self.peek() == Some('.') {
            self.bump();
            if self.peek().is_some_and(|digit| digit.is_ascii_digit()) {
                self.take_digits(|digit| digit.is_ascii_digit(), false)?;
            }
        }
        if matches!(self.peek(), Some('e') | Some('E')) {
            self.bump();
            if matches!(self.peek(), Some('+') | Some('-')) {
                self.bump();
            }
            if !self.peek().is_some_and(|digit| digit.is_ascii_digit()) {
                return Err(self.error_here(LexErrorKind::MissingExponentDigits));
            }
            self.take_digits(|digit| digit.is_ascii_digit(), false)?;
        }
        Ok(TokenKind::Scientific)
    }

    /// Lean's `takeDigitsFn`: digits and `_` separators; a `_` must be
    /// followed by a digit, and `need_digit` asks for at least one.
    fn take_digits(
        &mut self,
        is_digit: fn(char) -> bool,
        need_digit: bool,
    ) -> Result<(), LexError> {
        let mut need_digit = need_digit;
        loop {
            match self.peek() {
                Some('_') => {
                    self.bump();
                    need_digit = true;
                }
                Some(digit) if is_digit(digit) => {
                    self.bump();
                    need_digit = false;
                }
                _ => break,
            }
        }
        if need_digit {
            return Err(self.error_here(LexErrorKind::MissingDigits));
        }
        Ok(())
    }

    /// Lean's `identFnAux`: parts (`isIdFirst isIdRest*` or `«...»`) joined
    /// by `.` when the character after the dot can start a part.
    fn identifier_parts(&mut self, start: usize, start_position: Position) -> Result<(), LexError> {
        loop {
            match self.peek() {
                Some(IDENTIFIER_ESCAPE_BEGIN) => {
                    let escape_offset = self.offset;
                    let escape_position = self.position;
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(self.error(
                                    LexErrorKind::UnterminatedIdentifierEscape,
                                    escape_offset,
                                    escape_position,
                                ))
                            }
                            Some(IDENTIFIER_ESCAPE_END) => break,
                            Some(_) => {}
                        }
                    }
                }
                Some(character) if is_identifier_first(character) => {
                    self.bump();
                    while self.peek().is_some_and(is_identifier_rest) {
                        self.bump();
                    }
                }
                _ => {
                    // Unreachable for well-formed calls; never loop on it.
                    debug_assert!(self.offset > start, "identifier at {start_position}");
                    return Ok(());
                }
            }
            if self.peek() == Some('.') && self.peek_nth(1).is_some_and(starts_identifier_part) {
                self.bump();
            } else {
                return Ok(());
            }
        }
    }

    fn symbol(&mut self) {
        let rest = &self.source[self.offset..];
        let first_byte = rest.as_bytes()[0];
        let longest = symbols_starting_with(first_byte)
            .iter()
            .filter(|symbol| rest.starts_with(**symbol))
            .map(|symbol| symbol.chars().count())
            .max()
            .unwrap_or(1);
        for _ in 0..longest {
            self.bump();
        }
    }
}

fn starts_identifier_part(character: char) -> bool {
    is_identifier_first(character) || character == IDENTIFIER_ESCAPE_BEGIN
}

impl Iterator for Lexer<'_> {
    type Item = Result<Token, LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.next_token() {
            Ok(Some(token)) => Some(Ok(token)),
            Ok(None) => {
                self.finished = true;
                None
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

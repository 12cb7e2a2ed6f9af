//! Splits Lean source into commands, conservatively, for an allow-list.
//!
//! Deciding exactly where a Lean command ends needs Lean's whole (extensible)
//! parser. This module uses a token heuristic that errs towards *more*
//! commands: a screen that refuses unknown commands then refuses rather than
//! misses. A new command starts at a token that is
//!
//! - a `#` keyword (`#eval`, `#print`, ...; not the term notations `#s`,
//!   `#α`: one character or a non-ASCII one), a module doc `/-! -/`, or `@[`;
//! - a declaration modifier (`private`, `protected`, `noncomputable`,
//!   `partial`, `unsafe`, `nonrec`, `public`, `meta`), or `local`/`scoped`
//!   followed by a command keyword;
//! - a word of [`COMMAND_KEYWORDS`], at any bracket depth and even inside an
//!   interpolated string: Lean recovers from a parse error by parsing a
//!   command at the next token it can, so a command keyword inside brackets
//!   is still a command to Lean when the brackets do not parse;
//! - a doc comment `/-- -/` followed (after attributes and modifiers) by a
//!   token that starts a command;
//! - an identifier at column 0 that is not one of the words that continue a
//!   declaration (`by`, `where`, `deriving`, `termination_by`, ...).
//!
//! Exceptions, where a command word continues the current command: `open
//! scoped`/`open private`, `class inductive`/`class abbrev`, `deriving
//! instance`, and, inside an attribute list (`@[...]`, `attribute [...]`),
//! attribute names that are command words (`instance`, `class`, `export`,
//! `macro`, `local`, `scoped`) right after `[`, `@[`, `,`, `local`, `scoped`
//! or `-`.
//!
//! The `in` combinator: after `set_option`, `open`, `variable`, `omit`,
//! `include`, `#guard_msgs`, `attribute`, `seal`, `unseal`, `universe` or
//! `export`, the first ` in ` outside brackets is followed by an inner
//! command; after any other command, an `in` followed by a command start is.
//! A [`Command`] lists the chain of heads, outermost first.
//!
//! What this module must never do: hide a token from every command. Every
//! token of the source belongs to exactly one [`Command`]'s `token_range`.

use std::collections::HashSet;
use std::ops::Range;

use crate::header::Header;
use crate::lexer::{lex, LexError, Lexer, Position, Token, TokenKind};

/// Lean 4 and Mathlib words that start a command.
pub const COMMAND_KEYWORDS: &[&str] = &[
    "theorem",
    "lemma",
    "def",
    "example",
    "abbrev",
    "instance",
    "axiom",
    "opaque",
    "structure",
    "class",
    "inductive",
    "coinductive",
    "mutual",
    "namespace",
    "section",
    "end",
    "open",
    "export",
    "universe",
    "variable",
    "omit",
    "include",
    "set_option",
    "attribute",
    "notation",
    "notation3",
    "infix",
    "infixl",
    "infixr",
    "prefix",
    "postfix",
    "macro",
    "macro_rules",
    "syntax",
    "elab",
    "elab_rules",
    "declare_syntax_cat",
    "initialize",
    "builtin_initialize",
    "run_cmd",
    "run_elab",
    "run_meta",
    "import",
    "module",
    "prelude",
    "add_decl_doc",
    "alias",
    "irreducible_def",
    "unif_hint",
    "register_option",
    "register_builtin_option",
    "register_simp_attr",
    "register_label_attr",
    "assert_not_exists",
    "assert_not_imported",
    "suppress_compilation",
    "library_note",
    "initialize_simps_projections",
    "compile_inductive",
    "proof_wanted",
    "recall",
    "seal",
    "unseal",
    "grind_pattern",
    "simproc",
    "dsimproc",
    "simproc_decl",
    "dsimproc_decl",
    "builtin_simproc",
    "builtin_dsimproc",
    "binder_predicate",
    "declare_config_elab",
    "declare_simp_like_tactic",
    "mk_iff_of_inductive_prop",
    "gen_injective_theorems%",
    "deriving",
    "local",
    "scoped",
    "variable?",
    "declare_aesop_rule_sets",
    "add_aesop_rules",
    "erase_aesop_rules",
    "extend_docs",
    "register_tactic_tag",
    "tactic_extension",
    "register_linter_set",
    "declare_command_config_elab",
    "builtin_declare_syntax_cat",
];

/// Declaration modifiers: they start a command wherever they appear.
pub const MODIFIERS: &[&str] = &[
    "private",
    "protected",
    "noncomputable",
    "partial",
    "unsafe",
    "nonrec",
    "public",
    "meta",
];

/// Words that, at column 0, continue the declaration before them.
pub const CONTINUATION_WORDS: &[&str] = &[
    "by",
    "where",
    "deriving",
    "termination_by",
    "decreasing_by",
    "with",
    "then",
    "else",
    "do",
    "fun",
    "at",
    "from",
    "in",
    "if",
    "match",
    "calc",
    "have",
    "show",
    "let",
    "using",
    "extends",
    "partial_fixpoint",
    "_",
];

/// Commands whose own syntax ends where ` in ` may follow.
const TAKES_IN: &[&str] = &[
    "set_option",
    "open",
    "variable",
    "omit",
    "include",
    "#guard_msgs",
    "attribute",
    "seal",
    "unseal",
    "universe",
    "export",
];

/// Command words that are also attribute names.
const ATTRIBUTE_NAMES_THAT_ARE_COMMAND_WORDS: &[&str] =
    &["instance", "class", "export", "macro", "local", "scoped"];

/// One attribute: an entry of `@[...]` or of `attribute [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute's name: the first identifier of the entry other than
    /// the kinds `local`/`scoped` (`simp` in `@[local simp 100]`, `simp` in
    /// `attribute [-simp]`); the entry's text when it has none.
    pub name: String,
    /// The entry's full text, `local simp 100`.
    pub text: String,
    pub span: Range<usize>,
    pub start: Position,
}

/// `set_option NAME VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOption {
    pub name: String,
    /// The value token's text; `None` when the input ends first.
    pub value: Option<String>,
}

/// The start of a command: its prefix (doc comment, attributes, modifiers)
/// and its keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandHead {
    /// The keyword token's text (`theorem`, `#eval`, `set_option`, `/-!` for
    /// a module doc, or whatever word stands there); empty when the input
    /// ends after the prefix.
    pub keyword: String,
    /// Whether `keyword` is a `#` keyword, a module doc, or in [`COMMAND_KEYWORDS`].
    pub keyword_is_known: bool,
    /// Token index of the keyword (equal to the token count when missing).
    pub keyword_token: usize,
    /// Byte range of the doc comment before the keyword, if any.
    pub doc_comment: Option<Range<usize>>,
    pub attributes: Vec<Attribute>,
    /// Modifiers in order: `private`, `noncomputable`, `local`, `scoped`, ...
    pub modifiers: Vec<String>,
    pub set_option: Option<SetOption>,
    /// Tokens from this head's first token to the end of the command.
    pub token_range: Range<usize>,
    pub span: Range<usize>,
    pub start: Position,
}

/// One command, with the chain of `in` heads: `heads[0]` is the outermost
/// (`set_option x v in ...`), each next one the command after its ` in `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub heads: Vec<CommandHead>,
    /// Indices into [`Body::tokens`].
    pub token_range: Range<usize>,
    pub span: Range<usize>,
    pub start: Position,
}

impl Command {
    /// The innermost command of the `in` chain (the command itself without `in`).
    pub fn innermost(&self) -> &CommandHead {
        // A command always has at least one head.
        &self.heads[self.heads.len() - 1]
    }
}

/// The tokens of a source, its commands, and every attribute anywhere in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub tokens: Vec<Token>,
    pub commands: Vec<Command>,
    /// Every entry of every `@[...]` and `attribute [...]`, wherever it is.
    pub attributes: Vec<Attribute>,
}

/// Lexes `source` and splits it into commands.
pub fn body(source: &str) -> Result<Body, LexError> {
    body_of_tokens(source, lex(source)?)
}

/// Lexes and splits `source` from its header's `body_start` on: the imports
/// are not commands, and positions stay those of the whole source.
pub fn body_after_header(source: &str, header: &Header) -> Result<Body, LexError> {
    // `body_start` always lies on a character boundary of the source the
    // header was read from; for another source, start at its beginning.
    let lexer = Lexer::starting_at(source, header.body_start.min(source.len()))
        .unwrap_or_else(|| Lexer::new(source));
    body_of_tokens(source, lexer.collect::<Result<Vec<_>, _>>()?)
}

fn body_of_tokens(source: &str, tokens: Vec<Token>) -> Result<Body, LexError> {
    let splitter = Splitter::new(source, &tokens);
    let commands = splitter.commands();
    let attributes = splitter.all_attributes();
    Ok(Body {
        tokens,
        commands,
        attributes,
    })
}

/// The commands of `source` (see the module documentation for the heuristic).
pub fn commands(source: &str) -> Result<Vec<Command>, LexError> {
    Ok(body(source)?.commands)
}

struct Splitter<'a> {
    source: &'a str,
    tokens: &'a [Token],
    /// For each opening bracket, the index after its closing bracket (or the
    /// token count when it is never closed); computed once so that no walk
    /// over a group is repeated.
    group_ends: Vec<usize>,
    /// [`COMMAND_KEYWORDS`], for a lookup per identifier.
    command_keywords: HashSet<&'static str>,
    /// Whether each token is inside an attribute list (`@[...]`,
    /// `attribute [...]`), where command words may be attribute names.
    inside_attribute_list: Vec<bool>,
}

impl<'a> Splitter<'a> {
    fn new(source: &'a str, tokens: &'a [Token]) -> Self {
        let mut splitter = Splitter {
            source,
            tokens,
            group_ends: vec![tokens.len(); tokens.len()],
            command_keywords: COMMAND_KEYWORDS.iter().copied().collect(),
            inside_attribute_list: Vec::new(),
        };
        let mut open_groups = Vec::new();
        for index in 0..tokens.len() {
            if splitter.is_opener(index) {
                open_groups.push(index);
            } else if splitter.is_closer(index) {
                if let Some(open) = open_groups.pop() {
                    splitter.group_ends[open] = index + 1;
                }
            }
        }
        // Nesting depth of attribute lists, by differences: linear however
        // the lists nest.
        let mut depth_changes = vec![0isize; tokens.len() + 1];
        for index in 0..tokens.len() {
            if splitter.opens_attribute_list(index) {
                depth_changes[index + 1] += 1;
                depth_changes[splitter.group_ends[index]] -= 1;
            }
        }
        let mut depth = 0isize;
        splitter.inside_attribute_list = depth_changes[..tokens.len()]
            .iter()
            .map(|change| {
                depth += change;
                depth > 0
            })
            .collect();
        splitter
    }

    fn text(&self, index: usize) -> &str {
        self.tokens
            .get(index)
            .map_or("", |token| token.text(self.source))
    }

    fn is_word(&self, index: usize, word: &str) -> bool {
        self.tokens
            .get(index)
            .is_some_and(|token| token.is_word(self.source, word))
    }

    fn is_symbol(&self, index: usize, symbol: &str) -> bool {
        self.tokens
            .get(index)
            .is_some_and(|token| token.is_symbol(self.source, symbol))
    }

    fn is_identifier_in(&self, index: usize, words: &[&str]) -> bool {
        self.tokens.get(index).is_some_and(|token| {
            token.kind == TokenKind::Identifier && words.contains(&token.text(self.source))
        })
    }

    fn is_command_keyword(&self, index: usize) -> bool {
        self.tokens.get(index).is_some_and(|token| {
            token.kind == TokenKind::Identifier
                && self.command_keywords.contains(token.text(self.source))
        })
    }

    fn is_opener(&self, index: usize) -> bool {
        let text = self.text(index);
        self.tokens[index].kind == TokenKind::Symbol
            && (text.ends_with(['(', '[', '{'])
                || matches!(text, "⟨" | "⦃" | "⟦" | "⁅" | "‹" | "⌊" | "⌈"))
    }

    fn is_closer(&self, index: usize) -> bool {
        self.tokens[index].kind == TokenKind::Symbol
            && matches!(
                self.text(index),
                ")" | "]" | "}" | "⟩" | "⦄" | "⟧" | "⁆" | "›" | "⌋" | "⌉"
            )
    }

    /// The index after the bracket group opened at `open` (or the token count).
    fn after_group(&self, open: usize) -> usize {
        self.group_ends[open]
    }

    /// Whether the token at `index` opens an attribute list: `@[`, or `[`
    /// right after the word `attribute`.
    fn opens_attribute_list(&self, index: usize) -> bool {
        self.is_symbol(index, "@[")
            || (index > 0 && self.is_symbol(index, "[") && self.is_word(index - 1, "attribute"))
    }

    /// Whether a `#` keyword may be a command. Every Lean and Mathlib `#`
    /// command is `#` and at least two ASCII-initial characters; `#s`
    /// (`Finset.card`) and `#α` (`Cardinal.mk`) are Mathlib term notations.
    fn is_hash_command(&self, index: usize) -> bool {
        let word = &self.text(index)[1..];
        word.starts_with(|first: char| first.is_ascii_alphabetic()) && word.chars().count() >= 2
    }

    /// Whether a command word at `index` continues the tokens before it.
    fn continues_previous(&self, index: usize) -> bool {
        if index == 0 {
            return false;
        }
        let previous = index - 1;
        let word = self.text(index);
        (self.is_word(previous, "open") && matches!(word, "scoped" | "private"))
            || (self.is_word(previous, "class")
                && matches!(word, "inductive" | "abbrev" | "structure"))
            || (self.is_word(previous, "deriving") && word == "instance")
            || (self.inside_attribute_list[index]
                && ATTRIBUTE_NAMES_THAT_ARE_COMMAND_WORDS.contains(&word)
                && (matches!(self.text(previous), "[" | "@[" | "," | "-")
                    || self.is_identifier_in(previous, &["local", "scoped"])))
    }

    /// Whether a new command starts at token `index`.
    fn starts_command(&self, index: usize) -> bool {
        let token = &self.tokens[index];
        match token.kind {
            TokenKind::HashKeyword => self.is_hash_command(index),
            TokenKind::ModuleDoc => true,
            TokenKind::Symbol => self.is_symbol(index, "@["),
            TokenKind::DocComment => {
                let keyword = self.skip_prefix(index).keyword;
                // A second doc comment is conservatively a start; checking it
                // would recurse once per comment.
                keyword < self.tokens.len()
                    && (self.tokens[keyword].kind == TokenKind::DocComment
                        || self.starts_command(keyword))
            }
            TokenKind::Identifier => {
                let word = token.text(self.source);
                if self.continues_previous(index) {
                    return false;
                }
                if MODIFIERS.contains(&word) {
                    return true;
                }
                if matches!(word, "local" | "scoped") {
                    let next = self.skip_scoped_namespace(index + 1);
                    return next < self.tokens.len()
                        && (self.is_command_keyword(next)
                            || self.is_identifier_in(next, MODIFIERS));
                }
                if word == "deriving" {
                    return self.is_word(index + 1, "instance");
                }
                if self.command_keywords.contains(word) {
                    return true;
                }
                token.start.column == 0
                    && token.interpolation_depth == 0
                    && !CONTINUATION_WORDS.contains(&word)
            }
            _ => false,
        }
    }

    /// Whether a token inside a command's prefix (in its attribute lists)
    /// starts a command of its own.
    fn breaks_prefix(&self, index: usize) -> bool {
        let token = &self.tokens[index];
        match token.kind {
            TokenKind::HashKeyword => self.is_hash_command(index),
            TokenKind::ModuleDoc => true,
            TokenKind::Identifier if self.inside_attribute_list[index] => {
                (self.is_command_keyword(index) || self.is_identifier_in(index, MODIFIERS))
                    && !self.continues_previous(index)
            }
            TokenKind::Identifier => {
                // Outside the lists the prefix is doc comment, modifiers,
                // `local`, `scoped` and `scoped[Namespace]`.
                self.is_command_keyword(index)
                    && !self.is_identifier_in(index, &["local", "scoped", "deriving"])
                    && !self.continues_previous(index)
            }
            _ => false,
        }
    }

    /// After `scoped`, Mathlib's `scoped[Namespace]`.
    fn skip_scoped_namespace(&self, index: usize) -> usize {
        if self.is_symbol(index, "[") {
            self.after_group(index)
        } else {
            index
        }
    }

    /// Reads the prefix (doc comment, attributes, modifiers) starting at
    /// `start` and returns where the keyword is.
    fn skip_prefix(&self, start: usize) -> Prefix {
        let mut prefix = Prefix {
            keyword: start,
            doc_comment: None,
            attribute_lists: Vec::new(),
            modifiers: Vec::new(),
        };
        let mut index = start;
        while index < self.tokens.len() {
            let token = &self.tokens[index];
            if token.kind == TokenKind::DocComment && index == start {
                prefix.doc_comment = Some(token.span.clone());
                index += 1;
            } else if self.is_symbol(index, "@[") {
                prefix.attribute_lists.push(index);
                index = self.after_group(index);
            } else if self.is_identifier_in(index, MODIFIERS) {
                prefix.modifiers.push(self.text(index).to_string());
                index += 1;
            } else if self.is_identifier_in(index, &["local", "scoped"]) {
                let next = self.skip_scoped_namespace(index + 1);
                if !(self.is_command_keyword(next) || self.is_identifier_in(next, MODIFIERS)) {
                    break;
                }
                prefix.modifiers.push(self.text(index).to_string());
                index = next;
            } else {
                break;
            }
        }
        prefix.keyword = index;
        prefix
    }

    /// The entries of the attribute list whose opening token (`@[` or the `[`
    /// after `attribute`) is at `open`. A nested attribute list is not valid
    /// Lean; it ends the entry it appears in and is left to its own reading,
    /// so that every token is read by one list only (linear time).
    fn attribute_group(&self, open: usize) -> Vec<Attribute> {
        let after = self.after_group(open);
        let inner_end = if after > open + 1 && self.is_closer(after - 1) {
            after - 1
        } else {
            after
        };
        let mut attributes = Vec::new();
        let mut entry_start = open + 1;
        let mut depth = 0usize;
        let mut index = open + 1;
        while index <= inner_end {
            let nested_list = index < inner_end && self.opens_attribute_list(index);
            let at_separator =
                index == inner_end || nested_list || (depth == 0 && self.is_symbol(index, ","));
            if at_separator {
                if entry_start < index {
                    attributes.push(self.attribute(entry_start..index));
                }
                index = if nested_list {
                    self.after_group(index)
                } else {
                    index + 1
                };
                entry_start = index;
                continue;
            }
            if self.is_opener(index) {
                depth += 1;
            } else if self.is_closer(index) {
                depth = depth.saturating_sub(1);
            }
            index += 1;
        }
        attributes
    }

    fn attribute(&self, entry: Range<usize>) -> Attribute {
        let first = &self.tokens[entry.start];
        let last = &self.tokens[entry.end - 1];
        let span = first.span.start..last.span.end;
        let text = self.source[span.clone()].to_string();
        let name = entry
            .clone()
            .find(|index| {
                self.tokens[*index].kind == TokenKind::Identifier
                    && !self.is_identifier_in(*index, &["local", "scoped"])
            })
            .map_or_else(|| text.clone(), |index| self.text(index).to_string());
        Attribute {
            name,
            text,
            span,
            start: first.start,
        }
    }

    fn all_attributes(&self) -> Vec<Attribute> {
        let mut attributes = Vec::new();
        for index in 0..self.tokens.len() {
            if self.opens_attribute_list(index) {
                attributes.extend(self.attribute_group(index));
            }
        }
        attributes
    }

    fn head(&self, start: usize, prefix: Prefix) -> CommandHead {
        let keyword_token = prefix.keyword;
        let keyword_kind = self.tokens.get(keyword_token).map(|token| token.kind);
        let keyword = match keyword_kind {
            Some(TokenKind::ModuleDoc) => "/-!".to_string(),
            _ => self.text(keyword_token).to_string(),
        };
        let keyword_is_known = matches!(
            keyword_kind,
            Some(TokenKind::HashKeyword) | Some(TokenKind::ModuleDoc)
        ) || self.is_command_keyword(keyword_token);
        let set_option = (keyword == "set_option").then(|| SetOption {
            name: self.text(keyword_token + 1).to_string(),
            value: self
                .tokens
                .get(keyword_token + 2)
                .map(|token| token.text(self.source).to_string()),
        });
        let mut attributes = Vec::new();
        for open in prefix.attribute_lists {
            attributes.extend(self.attribute_group(open));
        }
        if keyword == "attribute" && self.is_symbol(keyword_token + 1, "[") {
            attributes.extend(self.attribute_group(keyword_token + 1));
        }
        CommandHead {
            keyword,
            keyword_is_known,
            keyword_token,
            doc_comment: prefix.doc_comment,
            attributes,
            modifiers: prefix.modifiers,
            set_option,
            token_range: start..start,
            span: 0..0,
            start: self.tokens[start].start,
        }
    }

    fn commands(&self) -> Vec<Command> {
        let count = self.tokens.len();
        let mut commands = Vec::new();
        let mut start = 0usize;
        while start < count {
            let mut heads = Vec::new();
            let mut head_start = start;
            let end = loop {
                let prefix = self.skip_prefix(head_start);
                let head = self.head(head_start, prefix);
                let takes_in = TAKES_IN.contains(&head.keyword.as_str());
                let keyword_token = head.keyword_token;
                let mut index = head_start + 1;
                heads.push(head);
                let mut depth = 0usize;
                let mut inner_start = None;
                while index < count {
                    if index < keyword_token {
                        // Inside the prefix: a command word in an attribute
                        // list is where Lean's error recovery would resume.
                        if self.breaks_prefix(index) {
                            break;
                        }
                        index += 1;
                        continue;
                    }
                    if index == keyword_token {
                        index += 1;
                        continue;
                    }
                    if depth == 0
                        && self.is_word(index, "in")
                        && index + 1 < count
                        && (takes_in || self.starts_command(index + 1))
                    {
                        inner_start = Some(index + 1);
                        break;
                    }
                    if self.starts_command(index) {
                        break;
                    }
                    if self.is_opener(index) {
                        depth += 1;
                    } else if self.is_closer(index) {
                        depth = depth.saturating_sub(1);
                    }
                    index += 1;
                }
                match inner_start {
                    Some(next) => head_start = next,
                    None => break index.min(count),
                }
            };
            for head in &mut heads {
                if head.keyword_token >= end {
                    // The prefix was cut short by a command inside it.
                    head.keyword = String::new();
                    head.keyword_is_known = false;
                    head.keyword_token = end;
                    head.set_option = None;
                }
                head.token_range.end = end;
                head.span =
                    self.tokens[head.token_range.start].span.start..self.tokens[end - 1].span.end;
            }
            commands.push(Command {
                token_range: start..end,
                span: self.tokens[start].span.start..self.tokens[end - 1].span.end,
                start: self.tokens[start].start,
                heads,
            });
            start = end;
        }
        commands
    }
}

struct Prefix {
    keyword: usize,
    doc_comment: Option<Range<usize>>,
    /// Token indices of the `@[` of each attribute list.
    attribute_lists: Vec<usize>,
    modifiers: Vec<String>,
}

//! The lexer's specification: each Lean construct, the tricks that hide code
//! from a naive scan, and the errors.

use lean_syntax::{lex, LexErrorKind, Position, TokenKind};

/// `(kind, text)` of every token.
fn tokens(source: &str) -> Vec<(TokenKind, std::string::String)> {
    lex(source)
        .unwrap_or_else(|error| panic!("{source:?}: {error}"))
        .iter()
        .map(|token| (token.kind, token.text(source).to_string()))
        .collect()
}

fn texts(source: &str) -> Vec<std::string::String> {
    tokens(source).into_iter().map(|(_, text)| text).collect()
}

fn error_kind(source: &str) -> LexErrorKind {
    match lex(source) {
        Ok(tokens) => panic!("{source:?} lexed as {tokens:?}"),
        Err(error) => error.kind,
    }
}

use TokenKind::*;

#[test]
fn identifiers_are_dotted_names_with_lean_letters() {
    assert_eq!(
        tokens("Nat.succ_le_iff h' α₁ x₂' get! ok? ℕ 𝒜 _x héllo"),
        vec![
            (Identifier, "Nat.succ_le_iff".into()),
            (Identifier, "h'".into()),
            (Identifier, "α₁".into()),
            (Identifier, "x₂'".into()),
            (Identifier, "get!".into()),
            (Identifier, "ok?".into()),
            (Identifier, "ℕ".into()),
            (Identifier, "𝒜".into()),
            (Identifier, "_x".into()),
            (Identifier, "héllo".into()),
        ]
    );
}

#[test]
fn lambda_pi_sigma_and_the_dagger_are_not_letters() {
    assert_eq!(texts("λx"), vec!["λ", "x"]);
    assert_eq!(texts("Πx"), vec!["Π", "x"]);
    assert_eq!(texts("Σx"), vec!["Σ", "x"]);
    // `x✝` is how Lean prints an inaccessible name; `✝` is no identifier character.
    assert_eq!(
        tokens("x✝"),
        vec![(Identifier, "x".into()), (Symbol, "✝".into())]
    );
}

#[test]
fn guillemet_parts_may_hold_anything_but_the_closing_guillemet() {
    assert_eq!(
        tokens("«weird name -/ \" --».«x».y z"),
        vec![
            (Identifier, "«weird name -/ \" --».«x».y".into()),
            (Identifier, "z".into())
        ]
    );
    assert_eq!(
        error_kind("def «open"),
        LexErrorKind::UnterminatedIdentifierEscape
    );
}

#[test]
fn a_dot_joins_parts_only_before_a_part_start() {
    assert_eq!(texts("h.2.1"), vec!["h", ".", "2", ".", "1"]);
    assert_eq!(texts("x.«y»"), vec!["x.«y»"]);
    assert_eq!(texts("f.(g)"), vec!["f", ".", "(", "g", ")"]);
    assert_eq!(texts("a..b"), vec!["a", "..", "b"]);
}

#[test]
fn hash_keywords_and_attribute_brackets_are_single_tokens() {
    assert_eq!(
        tokens("#eval #print axioms #guard_msgs @[simp] #[1]"),
        vec![
            (HashKeyword, "#eval".into()),
            (HashKeyword, "#print".into()),
            (Identifier, "axioms".into()),
            (HashKeyword, "#guard_msgs".into()),
            (Symbol, "@[".into()),
            (Identifier, "simp".into()),
            (Symbol, "]".into()),
            (Symbol, "#[".into()),
            (Number, "1".into()),
            (Symbol, "]".into()),
        ]
    );
}

#[test]
fn numbers_follow_lean_numeral_syntax() {
    assert_eq!(
        tokens("42 1_000 0x2A 0XfF 0b101 0o17 1.5 2e10 1.5E-3 3. 0"),
        vec![
            (Number, "42".into()),
            (Number, "1_000".into()),
            (Number, "0x2A".into()),
            (Number, "0XfF".into()),
            (Number, "0b101".into()),
            (Number, "0o17".into()),
            (Scientific, "1.5".into()),
            (Scientific, "2e10".into()),
            (Scientific, "1.5E-3".into()),
            (Scientific, "3.".into()),
            (Number, "0".into()),
        ]
    );
    assert_eq!(error_kind("0x"), LexErrorKind::MissingDigits);
    assert_eq!(error_kind("0b2"), LexErrorKind::MissingDigits);
    assert_eq!(error_kind("1_"), LexErrorKind::MissingDigits);
    assert_eq!(error_kind("2e"), LexErrorKind::MissingExponentDigits);
    assert_eq!(error_kind("2e+x"), LexErrorKind::MissingExponentDigits);
}

#[test]
fn strings_take_lean_escapes() {
    let source = r#""a\n\t\\\"\'\r\x41\u03B1" "{not code}""#;
    assert_eq!(
        tokens(source),
        vec![
            (String, r#""a\n\t\\\"\'\r\x41\u03B1""#.into()),
            (String, r#""{not code}""#.into())
        ]
    );
    assert_eq!(error_kind(r#""\q""#), LexErrorKind::InvalidEscape);
    assert_eq!(
        error_kind(r#""\x4""#),
        LexErrorKind::InvalidHexadecimalEscape
    );
    // Lean's `\u` takes exactly four hexadecimal digits; there is no `\u{...}`.
    assert_eq!(
        error_kind(r#""\u{41}""#),
        LexErrorKind::InvalidHexadecimalEscape
    );
    // `\{` is an escape only in interpolated strings.
    assert_eq!(error_kind(r#""\{""#), LexErrorKind::InvalidEscape);
}

#[test]
fn a_string_gap_is_a_backslash_newline_and_indentation() {
    let source = "\"one \\\n    two\" x";
    assert_eq!(texts(source), vec!["\"one \\\n    two\"", "x"]);
    assert_eq!(
        error_kind("\"one \\\n\n two\""),
        LexErrorKind::StringGapWithSecondNewline
    );
    assert_eq!(error_kind("'\\\n'"), LexErrorKind::InvalidEscape);
    assert_eq!(
        error_kind("\"gap at the end \\\n  "),
        LexErrorKind::UnterminatedString
    );
}

#[test]
fn character_literals_include_quotes_and_escapes() {
    assert_eq!(
        tokens(r#"'a' '\n' '"' '\'' '\x41' '\u0041' 'α'"#),
        vec![
            (Char, "'a'".into()),
            (Char, r"'\n'".into()),
            (Char, "'\"'".into()),
            (Char, r"'\''".into()),
            (Char, r"'\x41'".into()),
            (Char, r"'\u0041'".into()),
            (Char, "'α'".into()),
        ]
    );
    assert_eq!(error_kind("'ab'"), LexErrorKind::UnterminatedCharacter);
    assert_eq!(error_kind("'"), LexErrorKind::UnterminatedCharacter);
    assert_eq!(
        error_kind(r"'\u{41}'"),
        LexErrorKind::InvalidHexadecimalEscape
    );
}

#[test]
fn a_char_literal_holding_a_quote_does_not_open_a_string() {
    // A scan that takes `"` as a string start would hide `#eval` here.
    let source = "def q := '\"'\n#eval evil\ndef r := '\"'";
    assert_eq!(
        texts(source),
        vec!["def", "q", ":=", "'\"'", "#eval", "evil", "def", "r", ":=", "'\"'"]
    );
}

#[test]
fn raw_strings_end_only_at_their_own_hashes() {
    let source = r####"r"a\n" r#"say "hi" -/ /-"# r##"a "# b"## x"####;
    assert_eq!(
        tokens(source),
        vec![
            (RawString, r#"r"a\n""#.into()),
            (RawString, r###"r#"say "hi" -/ /-"#"###.into()),
            (RawString, r####"r##"a "# b"##"####.into()),
            (Identifier, "x".into()),
        ]
    );
    assert_eq!(
        error_kind(r##"r#"never closed" x"##),
        LexErrorKind::UnterminatedRawString
    );
    // `r` not followed by `#*"` is an identifier.
    assert_eq!(texts("r #x"), vec!["r", "#x"]);
}

#[test]
fn name_literals_single_and_double_backtick() {
    assert_eq!(
        tokens("`foo `Foo.bar ``baz `«a b» `(x)"),
        vec![
            (NameLiteral, "`foo".into()),
            (NameLiteral, "`Foo.bar".into()),
            (NameLiteral, "``baz".into()),
            (NameLiteral, "`«a b»".into()),
            (Symbol, "`(".into()),
            (Identifier, "x".into()),
            (Symbol, ")".into()),
        ]
    );
}

#[test]
fn comments_are_skipped_and_may_nest() {
    assert_eq!(texts("a -- b \" c\nd"), vec!["a", "d"]);
    assert_eq!(texts("a /- x /- y -/ \" z -/ b"), vec!["a", "b"]);
    assert_eq!(
        error_kind("a /- x /- y -/ b"),
        LexErrorKind::UnterminatedComment
    );
    // Lean skips the character right after `/-` before counting nesting.
    assert_eq!(texts("a /-/- -/ b"), vec!["a", "b"]);
    assert_eq!(error_kind("/-"), LexErrorKind::UnterminatedComment);
}

#[test]
fn doc_comments_and_module_docs_are_tokens() {
    assert_eq!(
        tokens("/-- doc /- nested -/ -/ theorem /-! module -/"),
        vec![
            (DocComment, "/-- doc /- nested -/ -/".into()),
            (Identifier, "theorem".into()),
            (ModuleDoc, "/-! module -/".into()),
        ]
    );
    assert_eq!(
        error_kind("/-- never closed"),
        LexErrorKind::UnterminatedComment
    );
}

#[test]
fn comment_markers_inside_strings_are_text() {
    assert_eq!(
        texts(r#"def s := "/- not a comment" #eval x"#),
        vec!["def", "s", ":=", "\"/- not a comment\"", "#eval", "x"]
    );
    assert_eq!(
        texts(r#"def s := "-- not a comment" #eval x"#),
        vec!["def", "s", ":=", "\"-- not a comment\"", "#eval", "x"]
    );
}

#[test]
fn quotes_inside_comments_are_text() {
    assert_eq!(
        texts("a /- \" -/ #eval b -- \"\n c"),
        vec!["a", "#eval", "b", "c"]
    );
}

#[test]
fn interpolated_strings_expose_their_code() {
    let source = r#"s!"a{x + 1}b{(by_elab evil)}c" m!"{y}" f!"{z}" foo!"{w}""#;
    let lexed = lex(source).unwrap();
    let code: Vec<(&str, u32)> = lexed
        .iter()
        .filter(|token| token.kind != InterpolatedStringChunk)
        .map(|token| (token.text(source), token.interpolation_depth))
        .collect();
    assert_eq!(
        code,
        vec![
            ("s!", 0),
            ("x", 1),
            ("+", 1),
            ("1", 1),
            ("(", 1),
            ("by_elab", 1),
            ("evil", 1),
            (")", 1),
            ("m!", 0),
            ("y", 1),
            ("f!", 0),
            ("z", 1),
            ("foo!", 0),
            ("w", 1),
        ]
    );
    let chunks: Vec<&str> = lexed
        .iter()
        .filter(|token| token.kind == InterpolatedStringChunk)
        .map(|token| token.text(source))
        .collect();
    assert_eq!(
        chunks,
        vec!["\"a{", "}b{", "}c\"", "\"{", "}\"", "\"{", "}\"", "\"{", "}\""]
    );
}

#[test]
fn interpolated_code_may_hold_braces_strings_and_nested_interpolation() {
    let source = r#"s!"{ {a := 1} } { "}" } {s!"{#eval x}"} \{" y"#;
    let lexed = lex(source).unwrap();
    let texts: Vec<(&str, u32)> = lexed
        .iter()
        .map(|token| (token.text(source), token.interpolation_depth))
        .collect();
    assert_eq!(
        texts,
        vec![
            ("s!", 0),
            ("\"{", 0),
            ("{", 1),
            ("a", 1),
            (":=", 1),
            ("1", 1),
            ("}", 1),
            ("} {", 0),
            ("\"}\"", 1),
            ("} {", 0),
            ("s!", 1),
            ("\"{", 1),
            ("#eval", 2),
            ("x", 2),
            ("}\"", 1),
            (r#"} \{" "#.trim_end(), 0),
            ("y", 0),
        ]
    );
}

#[test]
fn throw_error_takes_an_interpolated_string() {
    let source = r#"throwError "bad {#eval x}""#;
    let lexed = lex(source).unwrap();
    assert!(lexed
        .iter()
        .any(|token| token.text(source) == "#eval" && token.interpolation_depth == 1));
}

#[test]
fn an_unterminated_interpolation_is_an_error_at_the_string() {
    let error = lex("x s!\"a{b").unwrap_err();
    assert_eq!(error.kind, LexErrorKind::UnterminatedInterpolatedString);
    assert_eq!(error.offset, 4);
    assert_eq!(error.position, Position { line: 1, column: 4 });
    assert_eq!(
        error_kind("s!\"a{b}"),
        LexErrorKind::UnterminatedInterpolatedString
    );
}

#[test]
fn unterminated_string_is_reported_where_it_starts() {
    let error = lex("def x := 1\ndef s := \"abc").unwrap_err();
    assert_eq!(error.kind, LexErrorKind::UnterminatedString);
    assert_eq!(error.position, Position { line: 2, column: 9 });
    assert_eq!(error.offset, 20);
    assert_eq!(error.to_string(), "unterminated string literal at 2:9");
}

#[test]
fn positions_count_codepoints_from_column_zero() {
    let source = "theorem α₁ : ∀ x, x = x := by\n  intro «a b»; rfl";
    let lexed = lex(source).unwrap();
    let position_of = |text: &str| {
        lexed
            .iter()
            .find(|token| token.text(source) == text)
            .map(|token| (token.start.line, token.start.column, token.end.column))
            .unwrap()
    };
    assert_eq!(position_of("theorem"), (1, 0, 7));
    assert_eq!(position_of("α₁"), (1, 8, 10));
    assert_eq!(position_of(":"), (1, 11, 12));
    assert_eq!(position_of("∀"), (1, 13, 14));
    assert_eq!(position_of("by"), (1, 27, 29));
    assert_eq!(position_of("intro"), (2, 2, 7));
    assert_eq!(position_of("«a b»"), (2, 8, 13));
    assert_eq!(position_of("rfl"), (2, 15, 18));
    // Byte spans are bytes.
    let alpha = lexed
        .iter()
        .find(|token| token.text(source) == "α₁")
        .unwrap();
    assert_eq!(alpha.span, 8..13);
}

#[test]
fn mathlib_tokens_ending_in_a_quote_are_symbols_not_char_literals() {
    assert_eq!(texts("∑' i, f i"), vec!["∑'", "i", ",", "f", "i"]);
    assert_eq!(texts("∏' i, f i"), vec!["∏'", "i", ",", "f", "i"]);
    assert_eq!(
        texts("f '' s ∪ f ⁻¹' t"),
        vec!["f", "''", "s", "∪", "f", "⁻¹'", "t"]
    );
    assert_eq!(texts("(f⁻¹) x"), vec!["(", "f", "⁻¹", ")", "x"]);
}

#[test]
fn symbols_take_the_longest_known_match() {
    assert_eq!(
        texts("a := b => c <;> d |>.e ⟨x, y⟩ ← → ↔ ... :: ·"),
        vec![
            "a", ":=", "b", "=>", "c", "<;>", "d", "|>.", "e", "⟨", "x", ",", "y", "⟩", "←", "→",
            "↔", "...", "::", "·"
        ]
    );
}

#[test]
fn non_breaking_space_is_not_whitespace_to_lean() {
    assert_eq!(texts("a\u{a0}b"), vec!["a", "\u{a0}", "b"]);
}

#[test]
fn plain_strings_with_braces_are_flagged_as_possible_interpolations() {
    // `throwErrorAt` takes an interpolated string after a term; the lexer
    // cannot know, so it flags the string for the screen.
    let source = r#"throwErrorAt stx "{(by_elab evil)}" "no braces" s!"{x}""#;
    let lexed = lex(source).unwrap();
    let flagged: Vec<&str> = lexed
        .iter()
        .filter(|token| token.may_hide_interpolated_code(source))
        .map(|token| token.text(source))
        .collect();
    assert_eq!(flagged, vec![r#""{(by_elab evil)}""#]);
}

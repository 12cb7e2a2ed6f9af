//! No input makes the lexer, header reader or splitter panic or loop, deep
//! nesting does not exhaust the stack, and on every input the tokens are
//! consistent with the source they came from.

use lean_syntax::{body, header, lex, Position};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Pieces of Lean source that start and end the constructs the lexer tracks.
const FRAGMENTS: &[&str] = &[
    "\"",
    "'",
    "r#\"",
    "\"#",
    "r\"",
    "s!\"",
    "m!",
    "{",
    "}",
    "/-",
    "-/",
    "/--",
    "/-!",
    "--",
    "\n",
    " ",
    "\\",
    "\\n",
    "\\x4",
    "\\u00",
    "«",
    "»",
    ".",
    "#eval",
    "@[",
    "]",
    "[",
    "(",
    ")",
    "`",
    "``",
    "0x",
    "1.5e",
    "_",
    "theorem",
    "set_option",
    "in",
    "open",
    "import",
    "a",
    "α₁",
    "h'",
    "∑'",
    "⟨",
    "⟩",
    "\t",
    "\r",
    "é",
    "✝",
    "0",
    "#",
    "r",
    "attribute",
    "local",
    "private",
    "/",
    "-",
    "throwError",
    ",",
    ":=",
    "\u{a0}",
    "𝒜",
];

/// The Lean position of byte `offset`, computed from scratch.
fn position_of(source: &str, offset: usize) -> Position {
    let before = &source[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    Position {
        line,
        column: source[line_start..offset].chars().count() as u32,
    }
}

fn check_everything(source: &str) {
    if let Ok(tokens) = lex(source) {
        let mut previous_end = 0;
        for token in &tokens {
            assert!(token.span.start >= previous_end, "{source:?}: {token:?}");
            assert!(token.span.end > token.span.start, "{source:?}: {token:?}");
            assert!(source.is_char_boundary(token.span.start));
            assert!(source.is_char_boundary(token.span.end));
            assert_eq!(
                token.start,
                position_of(source, token.span.start),
                "{source:?}"
            );
            assert_eq!(token.end, position_of(source, token.span.end), "{source:?}");
            previous_end = token.span.end;
        }
        let read = body(source).expect("lexed once, lexes again");
        assert_eq!(read.tokens, tokens);
        let mut next = 0;
        for command in &read.commands {
            assert_eq!(command.token_range.start, next, "{source:?}");
            assert!(command.token_range.end > next, "{source:?}");
            assert!(!command.heads.is_empty());
            next = command.token_range.end;
        }
        assert_eq!(next, tokens.len(), "{source:?}");
    } else {
        assert!(body(source).is_err());
    }
    if let Ok(read) = header(source) {
        assert!(read.body_start <= source.len());
        assert_eq!(
            read.body_start_position,
            position_of(source, read.body_start)
        );
        if let Ok(after) = lean_syntax::body_after_header(source, &read) {
            for token in &after.tokens {
                assert!(token.span.start >= read.body_start, "{source:?}");
                assert_eq!(
                    token.start,
                    position_of(source, token.span.start),
                    "{source:?}"
                );
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let length = random.below(80);
        let bytes: Vec<u8> = (0..length).map(|_| random.next() as u8).collect();
        check_everything(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_lean_fragments_never_panic() {
    let mut random = Random(0x0123_4567_89ab_cdef);
    for _ in 0..20000 {
        let pieces = 1 + random.below(24);
        let source: String = (0..pieces)
            .map(|_| FRAGMENTS[random.below(FRAGMENTS.len())])
            .collect();
        check_everything(&source);
    }
}

#[test]
fn deep_nesting_is_an_error_or_a_result_not_a_stack_overflow() {
    let nested_interpolation = "s!\"{".repeat(100_000);
    assert!(lex(&nested_interpolation).is_err());
    let closed_interpolation = format!("{}{}", "s!\"{".repeat(50_000), "}\"".repeat(50_000));
    assert!(lex(&closed_interpolation).is_ok());
    let nested_comments = format!("{}{}", "/- ".repeat(100_000), "-/ ".repeat(100_000));
    assert!(lex(&nested_comments).unwrap().is_empty());
    let in_chain = format!(
        "{}theorem t : True := trivial",
        "set_option a 1 in\n".repeat(50_000)
    );
    let read = body(&in_chain).unwrap();
    assert_eq!(read.commands.len(), 1);
    assert_eq!(read.commands[0].heads.len(), 50_001);
    // A doc comment followed by a doc comment is not Lean; the second one
    // stands where a keyword should, which no screen knows.
    let doc_comments = "/-- d -/ ".repeat(50_000);
    let read = body(&doc_comments).unwrap();
    assert_eq!(read.commands.len(), 25_000);
    assert!(read
        .commands
        .iter()
        .all(|command| !command.heads[0].keyword_is_known));
}

#[test]
fn adversarial_brackets_are_read_in_one_pass() {
    // Each of these would not finish in any reasonable time if a group were
    // walked once per enclosing group; `examples/throughput.rs` prints how
    // long they take.
    for source in [
        "@[".repeat(50_000),
        "attribute [".repeat(25_000),
        format!("{}{}", "@[a ".repeat(25_000), "]".repeat(25_000)),
        "/-- x -/ @[a] ".repeat(12_000),
        "local ".repeat(50_000),
        "scoped[".repeat(25_000),
    ] {
        check_tokens_cover(&source);
    }
}

fn check_tokens_cover(source: &str) {
    let read = body(source).unwrap();
    let covered: usize = read
        .commands
        .iter()
        .map(|command| command.token_range.len())
        .sum();
    assert_eq!(covered, read.tokens.len());
}

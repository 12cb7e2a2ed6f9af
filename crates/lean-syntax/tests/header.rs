//! The import header: exactly the imports, as Lean's `Module.header` reads them.

use lean_syntax::{header, HeaderError, LexErrorKind, Position};

fn modules(source: &str) -> Vec<String> {
    header(source)
        .unwrap_or_else(|error| panic!("{source:?}: {error}"))
        .imports
        .into_iter()
        .map(|import| import.module)
        .collect()
}

#[test]
fn imports_in_order_without_repeats_and_the_body_after_them() {
    let source = "import Mathlib\n-- a comment\n/- a block\ncomment -/\nimport Aesop\nimport Mathlib\n\ntheorem t : True := trivial\n";
    let read = header(source).unwrap();
    let names: Vec<&str> = read
        .imports
        .iter()
        .map(|import| import.module.as_str())
        .collect();
    assert_eq!(names, vec!["Mathlib", "Aesop"]);
    assert_eq!(
        &source[read.body_start..],
        "\ntheorem t : True := trivial\n"
    );
    assert_eq!(read.body_line_offset, 6);
    assert_eq!(read.body_start_position, Position { line: 7, column: 0 });
    assert_eq!(read.to_lean_source(), "import Mathlib\nimport Aesop");
}

#[test]
fn no_imports_means_the_body_is_everything() {
    let read = header("-- hello\ntheorem t : True := trivial").unwrap();
    assert!(read.imports.is_empty());
    assert_eq!(read.body_start, 0);
    assert_eq!(read.body_line_offset, 0);
    assert!(header("").unwrap().imports.is_empty());
}

#[test]
fn a_command_after_a_comment_on_an_import_line_is_body() {
    let source =
        "import Mathlib /- x -/ set_option debug.skipKernelTC true\ntheorem t : False := sorry";
    let read = header(source).unwrap();
    assert_eq!(modules(source), vec!["Mathlib"]);
    assert_eq!(read.body_start, "import Mathlib".len());
    assert!(source[read.body_start..].contains("set_option debug.skipKernelTC true"));
    assert_eq!(read.body_line_offset, 0);
    assert_eq!(
        read.body_start_position,
        Position {
            line: 1,
            column: 14
        }
    );
}

#[test]
fn a_semicolon_after_an_import_ends_the_header() {
    let source = "import Mathlib; axiom x : False";
    let read = header(source).unwrap();
    assert_eq!(modules(source), vec!["Mathlib"]);
    assert_eq!(&source[read.body_start..], "; axiom x : False");
}

#[test]
fn one_module_per_import_keyword() {
    // Lean's `import` takes one name; a second name is the first body token.
    let source = "import Mathlib Aesop\n";
    let read = header(source).unwrap();
    assert_eq!(modules(source), vec!["Mathlib"]);
    assert_eq!(&source[read.body_start..], " Aesop\n");
}

#[test]
fn module_system_modifiers_are_read() {
    let source = "public import A.B\nmeta import C\nimport all D\npublic meta import all «E F».G\npublic section";
    let read = header(source).unwrap();
    let summary: Vec<(String, bool, bool, bool, Vec<String>)> = read
        .imports
        .iter()
        .map(|import| {
            (
                import.module.clone(),
                import.is_public,
                import.is_meta,
                import.imports_all,
                import.components.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "A.B".into(),
                true,
                false,
                false,
                vec!["A".into(), "B".into()]
            ),
            ("C".into(), false, true, false, vec!["C".into()]),
            ("D".into(), false, false, true, vec!["D".into()]),
            (
                "«E F».G".into(),
                true,
                true,
                true,
                vec!["E F".into(), "G".into()]
            ),
        ]
    );
    assert_eq!(&source[read.body_start..], "public section");
    assert_eq!(
        read.imports[3].to_lean_line(),
        "public meta import all «E F».G"
    );
}

#[test]
fn import_without_a_module_name_is_an_error() {
    match header("import\n") {
        Err(HeaderError::MissingModuleName { found: None, .. }) => {}
        other => panic!("{other:?}"),
    }
    match header("import Mathlib\nimport \"x\"") {
        Err(HeaderError::MissingModuleName {
            found: Some(found),
            position,
            ..
        }) => {
            assert_eq!(found, "\"x\"");
            assert_eq!(position, Position { line: 2, column: 7 });
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        header("import all\n"),
        Err(HeaderError::MissingModuleName { found: None, .. })
    ));
    assert!(matches!(
        header("import Mathlib.\n"),
        Err(HeaderError::TrailingDotInModuleName { .. })
    ));
    let message = header("import ;").unwrap_err().to_string();
    assert_eq!(
        message,
        "expected a module name after `import` at 1:7, found `;`"
    );
}

#[test]
fn a_lexical_error_in_an_import_is_a_header_error() {
    match header("import «Mathlib") {
        Err(HeaderError::Lex(error)) => {
            assert_eq!(error.kind, LexErrorKind::UnterminatedIdentifierEscape)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lexical_error_after_the_imports_belongs_to_the_body() {
    let source = "import Mathlib\ndef s := \"never closed";
    let read = header(source).unwrap();
    assert_eq!(modules(source), vec!["Mathlib"]);
    assert_eq!(&source[read.body_start..], "def s := \"never closed");
    // An unterminated comment right after the imports: the body starts
    // before it, and the body's lexing reports it.
    let source = "import Mathlib\n/- open";
    let read = header(source).unwrap();
    assert_eq!(&source[read.body_start..], "/- open");
}

#[test]
fn an_import_hidden_in_a_comment_or_string_is_not_an_import() {
    assert!(modules("/- import Evil -/ theorem t : True := trivial").is_empty());
    assert_eq!(modules("import A -- import B\n"), vec!["A"]);
    assert_eq!(
        modules("import A /- \nimport B -/\nimport C"),
        vec!["A", "C"]
    );
}

#[test]
fn the_body_after_the_header_keeps_whole_source_positions() {
    let source =
        "import Mathlib\nimport Aesop\n\n/-- doc -/\ntheorem α₁ : True := trivial\n#eval 1";
    let read = header(source).unwrap();
    let body = lean_syntax::body_after_header(source, &read).unwrap();
    let keywords: Vec<&str> = body
        .commands
        .iter()
        .map(|command| command.heads[0].keyword.as_str())
        .collect();
    assert_eq!(keywords, vec!["theorem", "#eval"]);
    let alpha = body
        .tokens
        .iter()
        .find(|token| token.text(source) == "α₁")
        .unwrap();
    assert_eq!(alpha.start, Position { line: 5, column: 8 });
    assert_eq!(body.commands[1].start, Position { line: 6, column: 0 });
    // A hidden command on an import line is the body's first command.
    let source =
        "import Mathlib /- x -/ set_option debug.skipKernelTC true in\ntheorem t : False := sorry";
    let body = lean_syntax::body_after_header(source, &header(source).unwrap()).unwrap();
    assert_eq!(body.commands.len(), 1);
    let option = body.commands[0].heads[0].set_option.clone().unwrap();
    assert_eq!(
        (option.name.as_str(), option.value.as_deref()),
        ("debug.skipKernelTC", Some("true"))
    );
    assert_eq!(body.commands[0].innermost().keyword, "theorem");
}

#[test]
fn a_lexer_cannot_start_inside_a_character() {
    assert!(lean_syntax::Lexer::starting_at("α", 1).is_none());
    assert!(lean_syntax::Lexer::starting_at("α", 2).is_some());
    assert!(lean_syntax::Lexer::starting_at("α", 3).is_none());
}

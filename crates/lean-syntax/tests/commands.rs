//! The command splitter: what a screen sees of each command, and that nothing
//! Lean could run as a command is folded into another command.

use lean_syntax::{body, commands, Command};

/// `(keyword, text)` of each command; `keyword` is the head chain joined by ` in `.
fn summary(source: &str) -> Vec<(String, String)> {
    commands(source)
        .unwrap_or_else(|error| panic!("{source:?}: {error}"))
        .iter()
        .map(|command| (keywords(command), source[command.span.clone()].to_string()))
        .collect()
}

/// `set_option`'s name and value.
type OptionAndValue<'a> = Option<(&'a str, Option<&'a str>)>;

fn keywords(command: &Command) -> String {
    command
        .heads
        .iter()
        .map(|head| head.keyword.as_str())
        .collect::<Vec<_>>()
        .join(" in ")
}

fn keyword_list(source: &str) -> Vec<String> {
    summary(source)
        .into_iter()
        .map(|(keyword, _)| keyword)
        .collect()
}

#[test]
fn declarations_split_at_their_keywords() {
    let source = "theorem a : 1 = 1 := by\n  simp [foo] at h\n  rfl\n\nlemma b (x : Nat) : x = x := rfl\ndef c := 3\nexample : True := trivial\n#eval c\n";
    assert_eq!(
        summary(source),
        vec![
            (
                "theorem".into(),
                "theorem a : 1 = 1 := by\n  simp [foo] at h\n  rfl".into()
            ),
            ("lemma".into(), "lemma b (x : Nat) : x = x := rfl".into()),
            ("def".into(), "def c := 3".into()),
            ("example".into(), "example : True := trivial".into()),
            ("#eval".into(), "#eval c".into()),
        ]
    );
}

#[test]
fn modifiers_attributes_and_doc_comments_belong_to_their_command() {
    let source = "/-- The answer. -/\n@[simp, local instance 100, -norm_num]\nprivate noncomputable def x : Nat := 42\n@[reducible] protected theorem y : True := trivial";
    let read = commands(source).unwrap();
    assert_eq!(read.len(), 2);
    let head = &read[0].heads[0];
    assert_eq!(head.keyword, "def");
    assert!(head.keyword_is_known);
    assert_eq!(
        &source[head.doc_comment.clone().unwrap()],
        "/-- The answer. -/"
    );
    assert_eq!(head.modifiers, vec!["private", "noncomputable"]);
    let attributes: Vec<(&str, &str)> = head
        .attributes
        .iter()
        .map(|attribute| (attribute.name.as_str(), attribute.text.as_str()))
        .collect();
    assert_eq!(
        attributes,
        vec![
            ("simp", "simp"),
            ("instance", "local instance 100"),
            ("norm_num", "-norm_num")
        ]
    );
    assert_eq!(read[1].heads[0].keyword, "theorem");
    assert_eq!(read[1].heads[0].modifiers, vec!["protected"]);
    assert_eq!(read[1].heads[0].attributes[0].name, "reducible");
}

#[test]
fn set_option_exposes_name_value_and_the_command_after_in() {
    let source = "set_option maxHeartbeats 400000 in\nset_option debug.skipKernelTC true in\n@[simp] theorem t : True := trivial\nset_option pp.all true";
    let read = commands(source).unwrap();
    assert_eq!(read.len(), 2);
    let chain: Vec<(&str, OptionAndValue)> = read[0]
        .heads
        .iter()
        .map(|head| {
            (
                head.keyword.as_str(),
                head.set_option
                    .as_ref()
                    .map(|option| (option.name.as_str(), option.value.as_deref())),
            )
        })
        .collect();
    assert_eq!(
        chain,
        vec![
            ("set_option", Some(("maxHeartbeats", Some("400000")))),
            ("set_option", Some(("debug.skipKernelTC", Some("true")))),
            ("theorem", None),
        ]
    );
    assert_eq!(read[0].innermost().attributes[0].name, "simp");
    assert_eq!(
        read[1].heads[0]
            .set_option
            .as_ref()
            .map(|option| option.name.as_str()),
        Some("pp.all")
    );
}

#[test]
fn open_in_and_guard_msgs_in_chain_inner_commands() {
    assert_eq!(
        keyword_list("open Nat in\ntheorem t : True := trivial\n#guard_msgs in\n#eval 1\nopen scoped BigOperators\n"),
        vec!["open in theorem", "#guard_msgs in #eval", "open"]
    );
    // After a command taking `in`, whatever follows is the inner command,
    // even a word the screen does not know.
    assert_eq!(keyword_list("open Foo in simp"), vec!["open in simp"]);
    // `in` of a `for` loop inside a definition is not a combinator.
    assert_eq!(
        keyword_list("def f (xs : List Nat) : IO Unit := do\n  for x in xs do\n    IO.println x"),
        vec!["def"]
    );
}

#[test]
fn command_words_split_even_inside_brackets_and_proofs() {
    // Lean's error recovery parses a command at the first token it can,
    // so these are commands to Lean.
    assert_eq!(
        keyword_list("theorem x : T := (#eval evil\ntheorem y : T := ( ( ] set_option debug.skipKernelTC true"),
        vec!["theorem", "#eval", "theorem", "set_option"]
    );
    assert_eq!(
        keyword_list("theorem x : True := by\n  set_option maxRecDepth 10 in\n  trivial"),
        vec!["theorem", "set_option in trivial"]
    );
    assert_eq!(
        keyword_list("theorem x : True := trivial axiom bad : False"),
        vec!["theorem", "axiom"]
    );
}

#[test]
fn commands_inside_interpolated_strings_are_exposed() {
    assert_eq!(
        keyword_list("def s := s!\"{ #eval evil }\"\ntheorem t : True := trivial"),
        vec!["def", "#eval", "theorem"]
    );
}

#[test]
fn identifiers_at_column_zero_are_possible_commands() {
    let read = commands("theorem t : True :=\nby trivial\nmy_custom_command foo\n").unwrap();
    let heads: Vec<(&str, bool)> = read
        .iter()
        .map(|command| {
            (
                command.heads[0].keyword.as_str(),
                command.heads[0].keyword_is_known,
            )
        })
        .collect();
    assert_eq!(heads, vec![("theorem", true), ("my_custom_command", false)]);
}

#[test]
fn continuations_are_not_commands() {
    assert_eq!(
        keyword_list("structure P where\n  /-- the x -/\n  x : Nat\nderiving Repr\nclass inductive C | a\ndef f : Nat → Nat\n  | 0 => 0\n  | n + 1 => f n\ntermination_by n => n\nderiving instance Repr for P"),
        vec!["structure", "class", "def", "deriving"]
    );
    assert_eq!(
        keyword_list("noncomputable section\nopen scoped Real\nopen private foo in\nend"),
        vec!["section", "open", "open in end"]
    );
}

#[test]
fn attribute_command_and_attribute_names_that_are_command_words() {
    let source = "attribute [local instance] foo\nattribute [-simp, instance 50] bar in\ntheorem t : True := trivial\n@[instance, class, export c_name, macro m] def x := 1";
    let read = body(source).unwrap();
    assert_eq!(
        read.commands.iter().map(keywords).collect::<Vec<_>>(),
        vec!["attribute", "attribute in theorem", "def"]
    );
    let names: Vec<&str> = read
        .attributes
        .iter()
        .map(|attribute| attribute.name.as_str())
        .collect();
    assert_eq!(
        names,
        vec!["instance", "simp", "instance", "instance", "class", "export", "macro"]
    );
    assert_eq!(
        read.commands[0].heads[0].attributes[0].text,
        "local instance"
    );
}

#[test]
fn every_attribute_anywhere_is_listed() {
    let source = "theorem t : True := by\n  have h : True := trivial\n  exact (@[simp] trivial)\n@[implemented_by evil] def f := 1";
    let read = body(source).unwrap();
    let names: Vec<&str> = read
        .attributes
        .iter()
        .map(|attribute| attribute.name.as_str())
        .collect();
    assert_eq!(names, vec!["simp", "implemented_by"]);
}

#[test]
fn a_command_word_inside_an_attribute_list_cuts_the_prefix() {
    let read = commands("@[simp #eval evil] theorem t : True := trivial").unwrap();
    let heads: Vec<(&str, bool)> = read
        .iter()
        .map(|command| {
            (
                command.heads[0].keyword.as_str(),
                command.heads[0].keyword_is_known,
            )
        })
        .collect();
    assert_eq!(heads, vec![("", false), ("#eval", true), ("theorem", true)]);
    let read = commands("@[simp private def evil := 1] theorem t : True := trivial").unwrap();
    let heads: Vec<(&str, Vec<std::string::String>)> = read
        .iter()
        .map(|command| {
            (
                command.heads[0].keyword.as_str(),
                command.heads[0].modifiers.clone(),
            )
        })
        .collect();
    assert_eq!(
        heads,
        vec![
            ("", vec![]),
            ("def", vec!["private".into()]),
            ("theorem", vec![])
        ]
    );
    // Modifiers after the attribute list are the command's own.
    let read = commands("@[simp] private noncomputable def x := 1").unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].heads[0].modifiers, vec!["private", "noncomputable"]);
}

#[test]
fn every_token_belongs_to_exactly_one_command() {
    let source = "import Foo\n/-! module doc -/\nnamespace N\nvariable (x : Nat) in\ntheorem a : x = x := rfl\nend N\n#print axioms a\nmacro \"m\" : term => `(1)\nlocal notation \"ℕ\" => Nat\nscoped[N] infix:50 \" ~ \" => Eq";
    let read = body(source).unwrap();
    let mut next = 0;
    for command in &read.commands {
        assert_eq!(command.token_range.start, next);
        assert!(command.token_range.end > command.token_range.start);
        next = command.token_range.end;
    }
    assert_eq!(next, read.tokens.len());
    assert_eq!(
        read.commands.iter().map(keywords).collect::<Vec<_>>(),
        vec![
            "import",
            "/-!",
            "namespace",
            "variable in theorem",
            "end",
            "#print",
            "macro",
            "notation",
            "infix"
        ]
    );
    assert_eq!(read.commands[7].heads[0].modifiers, vec!["local"]);
    assert_eq!(read.commands[8].heads[0].modifiers, vec!["scoped"]);
}

#[test]
fn escape_hatch_tokens_are_visible_wherever_they_are() {
    let source =
        "theorem t : 2 + 2 = 4 := by\n  run_tac evil\n  exact (by_elab evil)\n  native_decide";
    let read = body(source).unwrap();
    let words: Vec<&str> = read.tokens.iter().map(|token| token.text(source)).collect();
    for hatch in ["run_tac", "by_elab", "native_decide"] {
        assert!(words.contains(&hatch), "{hatch}");
    }
    assert_eq!(read.commands.len(), 1);
}

#[test]
fn lexical_errors_are_reported_not_split_around() {
    assert!(commands("theorem t : True := trivial\n/- never closed").is_err());
    assert!(commands("").unwrap().is_empty());
    assert!(commands("-- only a comment").unwrap().is_empty());
}

#[test]
fn attribute_name_exceptions_hold_only_inside_attribute_lists() {
    // Lean fails to parse `local` inside the anonymous constructor and then
    // parses `local macro ...` as a command.
    assert_eq!(
        keyword_list("example : T := ⟨a, local macro \"x\" : term => `(1)⟩"),
        vec!["example", "macro"]
    );
    assert_eq!(
        keyword_list("example : T := ⟨a, instance : Foo := evil⟩"),
        vec!["example", "instance"]
    );
    assert_eq!(
        keyword_list("@[simp, instance] def x := 1\nattribute [local instance] x"),
        vec!["def", "attribute"]
    );
}

#[test]
fn cardinality_notations_are_not_hash_commands() {
    assert_eq!(
        keyword_list("theorem c (s t : Finset ℕ) (h : s ⊆ t) : #s ≤ #t := Finset.card_le_card h\ntheorem d : #α = #β := rfl\n#check c"),
        vec!["theorem", "theorem", "#check"]
    );
}
